//! The monitoring HTTP server (`[SERVICE] HTTP_Server On`), with Fluent Bit's paths:
//! `/` build info, `/api/v1/uptime`, `/api/v1/health` (with `Health_Check On`),
//! `/api/v1/metrics` (JSON) and `/api/v1/metrics/prometheus` (also under `/api/v2/`).

mod health;
mod json;
pub mod process;
mod prometheus;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::HttpServer;
use crate::engine::metrics::Registry;

/// What the endpoints read.
struct State {
    registry: Arc<Registry>,
    started: Instant,
    started_unix: f64,
    health: Option<Mutex<health::Window>>,
}

/// A running monitoring server.
pub struct Server {
    pub settings: HttpServer,
    pub address: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Server {
    /// Binds and starts serving. `started` is when the router started (for the uptime).
    pub async fn start(
        settings: &HttpServer,
        registry: Arc<Registry>,
        started: Instant,
    ) -> std::io::Result<Server> {
        let listener = TcpListener::bind((settings.listen.as_str(), settings.port)).await?;
        let address = listener.local_addr()?;
        tracing::info!(
            "[http_server] listen iface={} tcp_port={}",
            address.ip(),
            address.port()
        );
        let started_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
            - started.elapsed().as_secs_f64();
        let state = Arc::new(State {
            registry,
            started,
            started_unix,
            health: settings
                .health
                .clone()
                .map(|h| Mutex::new(health::Window::new(h))),
        });
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(listener, state, stop.clone()));
        Ok(Server {
            settings: settings.clone(),
            address,
            stop,
            task,
        })
    }

    /// Stops accepting and waits for the requests being answered.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn serve(listener: TcpListener, state: Arc<State>, stop: CancellationToken) {
    let connections = TaskTracker::new();
    let mut sampler = tokio::time::interval(health::Window::EVERY);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = sampler.tick(), if state.health.is_some() => {
                let totals = state.registry.get().output_failures();
                if let Some(Ok(mut w)) = state.health.as_ref().map(Mutex::lock) {
                    w.sample(Instant::now(), totals);
                }
            }
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of file descriptors and the like: wait rather than spin.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                };
                let state = state.clone();
                let stop = stop.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(route(&state, &req)) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        () = stop.cancelled() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                });
            }
        }
    }
    drop(listener);
    connections.close();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), connections.wait()).await;
}

fn route(state: &State, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match req.uri().path().trim_end_matches('/') {
        "" => json(&serde_json::json!({
            "fluent-bit": {
                "version": env!("CARGO_PKG_VERSION"),
                "edition": "logrouter",
                "flags": ["FLB_HAVE_HTTP_SERVER", "FLB_HAVE_METRICS"],
            },
            "logrouter": {
                "version": env!("CARGO_PKG_VERSION"),
                "commit": crate::COMMIT,
            },
        })),
        "/api/v1/uptime" => {
            let secs = state.started.elapsed().as_secs();
            json(&serde_json::json!({
                "uptime_sec": secs,
                "uptime_hr": uptime_words(secs),
            }))
        }
        "/api/v1/health" => match &state.health {
            None => text(
                StatusCode::NOT_FOUND,
                "health check is off: set Health_Check On in [SERVICE]\n",
            ),
            Some(window) => {
                let totals = state.registry.get().output_failures();
                let healthy = window.lock().map_or(true, |w| w.healthy(totals));
                if healthy {
                    text(StatusCode::OK, "ok\n")
                } else {
                    text(StatusCode::INTERNAL_SERVER_ERROR, "error\n")
                }
            }
        },
        "/api/v1/metrics" => {
            let process = serde_json::json!({
                "uptime_seconds": state.started.elapsed().as_secs(),
                "resident_memory_bytes": process::rss_bytes(),
                "cpu_seconds": process::cpu_seconds(),
            });
            json(&json::render(&state.registry.get(), process))
        }
        "/api/v1/metrics/prometheus" | "/api/v2/metrics/prometheus" | "/api/v2/metrics" => {
            let p = prometheus::Process {
                uptime_secs: state.started.elapsed().as_secs(),
                start_time_secs: state.started_unix,
                rss_bytes: process::rss_bytes(),
                cpu_seconds: process::cpu_seconds(),
            };
            let body = prometheus::render(&state.registry.get(), &p);
            respond(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                body.into(),
            )
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// "logrouter has been running:  0 day, 1 hour, 2 minutes and 3 seconds", as Fluent Bit says it.
fn uptime_words(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86400,
        secs % 86400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    let unit = |n: u64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    format!(
        "logrouter has been running: {}, {}, {} and {}",
        unit(d, "day"),
        unit(h, "hour"),
        unit(m, "minute"),
        unit(s, "second")
    )
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    respond(status, "text/plain", Bytes::from_static(body.as_bytes()))
}

fn json(value: &serde_json::Value) -> Response<Full<Bytes>> {
    respond(StatusCode::OK, "application/json", value.to_string().into())
}

fn respond(status: StatusCode, content_type: &str, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn uptime_in_words() {
        assert_eq!(
            super::uptime_words(90061),
            "logrouter has been running: 1 day, 1 hour, 1 minute and 1 second"
        );
        assert_eq!(
            super::uptime_words(7),
            "logrouter has been running: 0 days, 0 hours, 0 minutes and 7 seconds"
        );
    }
}
