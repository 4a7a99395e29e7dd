//! The `logrouter` binary: parse the command line, load and check the config, run until
//! SIGTERM/SIGINT, exit 0 after a clean shutdown or 1 on a config or listen error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use logrouter::engine::Plan;
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

    let plan = cli::load_config(&m, file.as_deref()).and_then(|mut config| {
        let plan = Plan::build(&mut config)?;
        Ok((plan, config.warnings))
    });
    let (plan, warnings) = match plan {
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
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
        let stop = match stop_signal() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cannot install signal handlers: {e}");
                return Err(());
            }
        };
        plan.run(stop).await.map_err(|e| tracing::error!("{e}"))
    });
    // A flush blocked in the kernel (a FIFO nobody reads) must not hold the exit.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(()) => ExitCode::FAILURE,
    }
}

/// Resolves on SIGTERM or SIGINT. Handlers are installed before this returns, so a signal that
/// arrives while the inputs bind is not lost. SIGHUP (reload) is logged and ignored for now.
fn stop_signal() -> std::io::Result<impl Future<Output = ()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    Ok(async move {
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("[engine] caught signal (SIGTERM)"); break; }
                _ = int.recv() => { tracing::info!("[engine] caught signal (SIGINT)"); break; }
                _ = hup.recv() => tracing::warn!("[engine] caught signal (SIGHUP): reload is not implemented yet; ignored"),
            }
        }
    })
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
