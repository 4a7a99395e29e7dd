//! The listening socket of a network input (TCP or Unix) and its accept loop, shared by the
//! inputs so that stopping, draining and socket-file clean-up work the same in each.

use std::future::Future;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::engine::metrics::InputMetrics;

/// Default `Max_Connections` of the network inputs (logrouter's own limit; Fluent Bit has none):
/// far above what a host's containers open.
pub const DEFAULT_MAX_CONNECTIONS: u64 = 8192;

pub enum Listener {
    Tcp(TcpListener),
    /// The socket file is removed when the listener is dropped.
    Unix(UnixListener, #[allow(dead_code)] SocketFile),
}

/// The socket file of a Unix listener, removed when the listener closes.
pub struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub enum Accepted {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Listener {
    pub async fn tcp(listen: &str, port: u16) -> std::io::Result<Self> {
        TcpListener::bind((listen, port)).await.map(Listener::Tcp)
    }

    /// Binds `path`. A socket left there by an earlier run is replaced; any other file is not
    /// ours and is an error.
    pub fn unix(path: &Path, mode: Option<u32>) -> std::io::Result<Self> {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "the path exists and is not a socket",
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        let file = SocketFile(path.to_path_buf());
        if let Some(mode) = mode {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        }
        Ok(Listener::Unix(listener, file))
    }

    /// The bound address as shown in logs (with the real port when 0 was asked for).
    pub fn shown(&self, configured: &str) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map_or_else(|_| configured.to_string(), |a| a.to_string()),
            Listener::Unix(..) => configured.to_string(),
        }
    }

    async fn accept(&self) -> std::io::Result<Accepted> {
        match self {
            Listener::Tcp(l) => l.accept().await.map(|(s, _)| Accepted::Tcp(s)),
            Listener::Unix(l, _) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
        }
    }

    /// Accepts connections and runs `serve` on each until `stop` fires; then closes the
    /// listener (removing its socket file) and waits for the connections to finish. With
    /// `max_connections` (0: no limit) open, a new connection is closed at once and counted:
    /// clients retry, and the ones already connected are not starved of descriptors.
    pub async fn serve<F, Fut>(
        self,
        input: &str,
        stop: &CancellationToken,
        max_connections: usize,
        metrics: &InputMetrics,
        mut serve: F,
    ) where
        F: FnMut(Accepted) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let connections = TaskTracker::new();
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => break,
                a = self.accept() => a,
            };
            if accepted.is_ok() && max_connections > 0 && connections.len() >= max_connections {
                let n = metrics.refused_connections.get();
                metrics.refused_connections.inc();
                if n.is_multiple_of(1000) {
                    tracing::warn!(
                        "[input:{input}] {max_connections} connections are open (Max_Connections): closing a new one ({} so far)",
                        n + 1
                    );
                }
                continue;
            }
            match accepted {
                Ok(Accepted::Tcp(stream)) => {
                    // Replies (acks) must not wait for Nagle's algorithm.
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve(Accepted::Tcp(stream)));
                }
                Ok(unix) => {
                    connections.spawn(serve(unix));
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!("[input:{input}] accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        drop(self);
        connections.close();
        connections.wait().await;
    }
}
