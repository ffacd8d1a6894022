//! `hearth logs`: the last lines of the gateway's log (`<data dir>/logs/`, written by `hearth
//! serve` or the app) and, with `--follow`, what is written next, until Ctrl-C.

use std::path::Path;

use hearth_gateway::logs;
use tokio::signal::unix::{SignalKind, signal};

use crate::args::LogsArgs;
use crate::failure::{EXIT_NOT_RUNNING, Failure};

pub async fn run(data_dir: &Path, args: LogsArgs) -> Result<(), Failure> {
    if logs::files(data_dir).is_empty() {
        return Err(Failure {
            code: "not_running",
            message: format!(
                "there is no log in {} yet: it appears once `hearth serve` or the Hearth app has run on this data \
                 directory (another one? use --data-dir)",
                logs::dir(data_dir).display()
            ),
            exit: EXIT_NOT_RUNNING,
        });
    }
    let lines = logs::tail(data_dir, args.lines).map_err(|e| Failure::unexpected(format!("read the log: {e}")))?;
    for line in lines {
        println!("{line}");
    }
    if args.follow {
        let mut int =
            signal(SignalKind::interrupt()).map_err(|e| Failure::unexpected(format!("listen for Ctrl-C: {e}")))?;
        let mut term =
            signal(SignalKind::terminate()).map_err(|e| Failure::unexpected(format!("listen for SIGTERM: {e}")))?;
        let stop = async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        };
        let mut out = std::io::stdout();
        logs::follow(data_dir, &mut out, stop).await.map_err(|e| Failure::unexpected(format!("follow the log: {e}")))?;
    }
    Ok(())
}
