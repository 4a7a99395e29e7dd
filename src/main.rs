//! The `logrouter` binary: parse the command line, load and check the config, run until
//! SIGTERM/SIGINT, exit 0 after a clean shutdown or 1 on a config or listen error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};

use logrouter::config::ConfigError;
use logrouter::engine::{Control, Plan};
use logrouter::{BANNER, COMMIT, cli, logging};

fn main() -> ExitCode {
    let mut command = cli::command();
    let m = command.clone().get_matches();
    if m.get_flag("version") {
        println!("{BANNER}\nGit commit: {COMMIT}");
        return ExitCode::SUCCESS;
    }
    let file: Option<PathBuf> = m.get_one::<PathBuf>("config").cloned().or_else(|| {
        let firelens = Path::new(cli::FIRELENS_CONFIG);
        firelens.exists().then(|| firelens.to_path_buf())
    });
    let quick = m.contains_id("input") || m.contains_id("output");
    if file.is_none() && !quick {
        let _ = command.print_help();
        eprintln!("\nno configuration: give -c FILE, or -i INPUT -o OUTPUT");
        return ExitCode::FAILURE;
    }

    let load = {
        let m = m.clone();
        let file = file.clone();
        move || {
            cli::load_config(&m, file.as_deref()).and_then(|mut config| {
                let plan = Plan::build(&mut config)?;
                Ok((plan, config.warnings))
            })
        }
    };
    let (plan, warnings) = match load() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("[error] {e}");
            eprintln!("[error] configuration file contains errors, aborting.");
            return ExitCode::FAILURE;
        }
    };

    let level = match m.get_one::<String>("log_level").map(String::as_str) {
        _ if m.get_flag("quiet") => Ok(None),
        Some(l) => logging::parse_level(l),
        None => plan
            .service
            .log_level
            .as_deref()
            .map_or(Ok(Some(tracing::Level::INFO)), logging::parse_level),
    };
    let level = match level {
        Ok(l) => l,
        Err(e) => {
            eprintln!("[error] log level: {e}");
            return ExitCode::FAILURE;
        }
    };
    logging::init(level);
    if level.is_some() {
        eprintln!("{BANNER}");
    }
    tracing::info!(
        "[logrouter] version={}, commit={COMMIT}, pid={}",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
    for w in &warnings {
        tracing::warn!("{w}");
    }

    if m.get_flag("dry_run") {
        print!("{}", plan.describe());
        eprintln!("configuration test is successful");
        return ExitCode::SUCCESS;
    }

    raise_open_files_limit();
    // The config is loaded and checked: that code is done with. (Again once started, below.)
    let _ = logrouter::monitoring::process::page_out_executable();
    // One event loop, as Fluent Bit: measured against two worker threads it costs less CPU per
    // record (no cross-thread wake-ups or work stealing) and about half the memory at full
    // speed (BENCHMARKS.md). Blocking work (file writes) still goes to tokio's blocking pool.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let (control, commands) = mpsc::channel(4);
        match signals(control, load) {
            Ok(task) => drop(tokio::spawn(task)),
            Err(e) => {
                tracing::error!("cannot install signal handlers: {e}");
                return Err(());
            }
        }
        tokio::spawn(page_out_startup_code());
        plan.run(commands).await.map_err(|e| tracing::error!("{e}"))
    });
    // A flush blocked in the kernel (a FIFO nobody reads) must not hold the exit.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(()) => ExitCode::FAILURE,
    }
}

/// Turns signals into engine commands: SIGTERM and SIGINT stop; SIGHUP reloads the config
/// with `load`, and a config that does not load is refused while the running one goes on.
/// Handlers are installed before this returns, so a signal that arrives while the inputs bind
/// is not lost.
fn signals<L>(
    control: mpsc::Sender<Control>,
    load: L,
) -> std::io::Result<impl Future<Output = ()> + Send + 'static>
where
    L: Fn() -> Result<(Plan, Vec<String>), ConfigError> + Send + Sync + 'static,
{
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let load = Arc::new(load);
    Ok(async move {
        loop {
            let command = tokio::select! {
                _ = term.recv() => { tracing::info!("[engine] caught signal (SIGTERM)"); Control::Stop }
                _ = int.recv() => { tracing::info!("[engine] caught signal (SIGINT)"); Control::Stop }
                _ = hup.recv() => {
                    tracing::info!("[reload] caught signal (SIGHUP): reloading the configuration");
                    // Loading may block (files, the ECS metadata fetch): off the runtime.
                    let (tx, rx) = oneshot::channel();
                    let load = load.clone();
                    std::thread::spawn(move || { let _ = tx.send(load()); });
                    match rx.await {
                        Ok(Ok((plan, warnings))) => {
                            for w in &warnings {
                                tracing::warn!("{w}");
                            }
                            Control::Reload(Box::new(plan))
                        }
                        Ok(Err(e)) => {
                            tracing::error!("[reload] {e}");
                            tracing::error!("[reload] the new configuration has errors; the running one is kept");
                            continue;
                        }
                        Err(_) => continue,
                    }
                }
            };
            let stop = matches!(command, Control::Stop);
            if control.send(command).await.is_err() || stop {
                break;
            }
        }
    })
}

/// Once the router has started, lets the kernel drop the start-up code from memory (the
/// runtime's, the inputs' binding, the outputs' TLS set-up): an idle router then holds little
/// more than its heap (BENCHMARKS.md, idle).
async fn page_out_startup_code() {
    tokio::time::sleep(Duration::from_secs(2)).await;
    match logrouter::monitoring::process::page_out_executable() {
        Ok(n) => tracing::debug!("[engine] start-up code paged out ({n} bytes of mappings)"),
        // Kernels before 5.4 have no MADV_PAGEOUT: memory stays as it was.
        Err(e) => tracing::debug!("[engine] start-up code not paged out: {e}"),
    }
}

/// Every client is a connection: raise the soft open-files limit to the hard limit.
fn raise_open_files_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let before = lim.rlim_cur;
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                tracing::debug!("open files limit raised from {before} to {}", lim.rlim_max);
            }
        }
    }
}
