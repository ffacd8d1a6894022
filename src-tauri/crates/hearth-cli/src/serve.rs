//! `hearth serve`: the gateway in the foreground until SIGINT or SIGTERM, then a drain of up to
//! ten seconds. Logs go to stderr and to `<data dir>/logs/` (`RUST_LOG`, default `info`; read
//! them with `hearth logs`); no secret is ever logged.

use std::path::PathBuf;
use std::time::Duration;

use hearth_gateway::{Gateway, GatewayConfig, IsolationChoice};
use tokio::signal::unix::{SignalKind, signal};

use crate::args::{Isolation, ServeArgs};
use crate::failure::Failure;

/// How long running answers may take to finish after a stop signal.
const GRACE: Duration = Duration::from_secs(10);

pub async fn run(data_dir: PathBuf, args: ServeArgs) -> Result<(), Failure> {
    // Everything the gateway writes is its own, the log folder included.
    // SAFETY: umask only changes this process's file creation mask.
    unsafe { libc::umask(0o077) };
    // The folder is checked before anything is written in it, the log included (the gateway
    // checks it again, and sets its mode, once it knows the isolation level).
    hearth_gateway::data_dir::prepare(&data_dir, None).map_err(|e| Failure::refused(e.to_string()))?;
    let file = hearth_gateway::logs::RollingFile::open(&data_dir)
        .map_err(|e| eprintln!("warning: logging to stderr only; cannot write logs in {}: {e}", data_dir.display()))
        .ok();
    init_logging("info", file.map(|f| &*Box::leak(Box::new(f))));
    // Signals first, so a SIGTERM that arrives while the gateway starts is not fatal.
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| Failure::unexpected(format!("listen for SIGTERM: {e}")))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| Failure::unexpected(format!("listen for SIGINT: {e}")))?;

    let exe = std::env::current_exe()
        .map_err(|e| Failure::unexpected(format!("find the hearth binary to run workers with: {e}")))?;
    let mut config = GatewayConfig::new(data_dir, exe);
    config.isolation = isolation_choice(args.isolation);
    config.supervisor_socket = args.supervisor_socket.filter(|p| !p.as_os_str().is_empty());
    config.turn_cap = args.turn_cap as usize;
    config.telegram_api_url = std::env::var("HEARTH_TELEGRAM_API_URL").ok().filter(|u| !u.trim().is_empty());
    if let Some(url) = &config.telegram_api_url {
        tracing::info!(%url, "using another Telegram Bot API server (HEARTH_TELEGRAM_API_URL)");
    }
    let gateway = Gateway::start(config).await.map_err(|e| {
        if let Some(busy) = e.downcast_ref::<hearth_gateway::AlreadyServing>() {
            return Failure { code: "conflict", message: busy.to_string(), exit: crate::failure::EXIT_CONFLICT };
        }
        match e.downcast_ref::<hearth_gateway::data_dir::DataDirError>() {
            Some(unsafe_folder) => Failure::refused(unsafe_folder.to_string()),
            None => Failure::unexpected(format!("{e:#}")),
        }
    })?;
    eprintln!("Hearth is serving {}. Press Ctrl-C to stop.", gateway.data_dir().display());

    let which = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        // A task that kept panicking stopped the gateway (its log says which): exit non-zero so
        // the service manager starts Hearth again; the inbox keeps what was not answered.
        reason = gateway.failed() => {
            gateway.shutdown(GRACE).await;
            return Err(Failure::unexpected(format!("the gateway stopped: {reason}")));
        }
    };
    tracing::info!("{which} received; finishing answers in progress (up to {}s)", GRACE.as_secs());
    // A second signal stops waiting.
    tokio::select! {
        () = gateway.shutdown(GRACE) => {}
        _ = term.recv() => tracing::warn!("second signal; stopping now"),
        _ = int.recv() => tracing::warn!("second signal; stopping now"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// The gateway's name for the level asked for on the command line.
pub fn isolation_choice(level: Isolation) -> IsolationChoice {
    match level {
        Isolation::Auto => IsolationChoice::Auto,
        Isolation::Process => IsolationChoice::Process,
        Isolation::Account => IsolationChoice::Account,
        Isolation::Sandbox => IsolationChoice::AccountSandbox,
    }
}

/// Logs to stderr, and to the data directory's log files when given, filtered by `RUST_LOG`
/// (else `default`).
pub fn init_logging(default: &str, file: Option<&'static hearth_gateway::logs::RollingFile>) {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let file = file.map(|f| tracing_subscriber::fmt::layer().with_writer(move || f).with_ansi(false));
    let _ = tracing_subscriber::registry().with(filter).with(stderr).with(file).try_init();
}
