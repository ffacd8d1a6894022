//! `hearth`: the command line of the Hearth family AI appliance.
//!
//! - [`args`]: the command tree (clap derive) and its help text.
//! - [`serve`]: `hearth serve`, the gateway in the foreground until SIGINT/SIGTERM.
//! - [`supervisor`]: `hearth supervisor`, the root daemon that creates member accounts and starts
//!   workers for a gateway that does not run as root.
//! - [`admin`]: `provider`, `member` and `status`, spoken to a running gateway over its
//!   owner-only control socket, with human and `--json` output.
//! - [`doctor`]: `hearth doctor`, the security self-check: the isolation level in force per
//!   member and findings, each with what to do about it.
//! - [`spend`]: `price`, `household`, `usage` and `member cap|admin|fallback` — rate card, caps
//!   and spending reports, over the same socket.
//! - [`secret`]: reading a bot token or API key from stdin or an environment variable — never
//!   from the command line, where `ps` and shell history would show it.
//! - [`backup`]: `hearth backup create|verify|restore|schedule`.
//! - [`logs`]: `hearth logs`, the last lines of the gateway's log file and, with --follow, the rest.
//! - [`voice`]: `provider voice` and `provider test-speech`, and how voice settings read.
//! - [`table`]: aligned plain-text tables.
//! - [`failure`]: errors as the admin reads them, and the exit codes below.
//! - [`demo`]: `hearth demo`, a household of simulated users chatting through the real gateway and
//!   workers against the in-process fakes of Telegram and an LLM.
//!
//! `hearth worker` is internal: the gateway starts it, one process per member.
//!
//! # Exit codes
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | unexpected error |
//! | 2 | usage error (unknown command or flag) |
//! | 3 | no gateway is running for the data directory |
//! | 4 | invalid input (a malformed token, an empty key, a bad name, URL, amount or month) |
//! | 5 | not found (no such member) |
//! | 6 | conflict (the name or bot is taken) |
//! | 7 | rejected by Telegram or the provider (e.g. a revoked token) |
//! | 8 | Telegram or the provider could not be reached |
//! | 9 | `hearth doctor` found warnings and nothing critical (the report is printed) |
//! | 10 | `hearth doctor` found something critical (the report is printed) |
//! | 11 | `hearth backup verify` or `restore` found the backup missing, changed or damaged |
//! | 12 | refused for safety: the data folder, or whoever serves its control socket, is not what it must be (another user could change or impersonate it); nothing was sent |
//!
//! Errors print as `error: <message>` on stderr; with `--json` the same error is also printed on
//! stdout as `{"error":{"code":"...","message":"..."}}`.

mod admin;
mod args;
mod backup;
mod demo;
mod doctor;
mod failure;
mod household;
mod logs;
mod secret;
mod serve;
mod spend;
mod supervisor;
mod table;
mod voice;

use std::process::ExitCode;

use clap::Parser as _;

use crate::args::{Cli, Command};
use crate::failure::Failure;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        // The worker builds its own single-threaded runtime; it must not run inside ours.
        Command::Worker => match hearth_worker::run_from_env() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(failure::EXIT_UNEXPECTED)
            }
        },
        // Reads a folder for root as its owner: no runtime, nothing but the stream on stdout.
        Command::TreeReader { args } => ExitCode::from(hearth_gateway::tree::reader_main(&args)),
        command => {
            if matches!(command, Command::Demo(_)) {
                demo::quiet_workers_by_default();
            }
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: could not start the async runtime: {e}");
                    return ExitCode::from(failure::EXIT_UNEXPECTED);
                }
            };
            let json = command.json();
            let data_dir = cli.data_dir.unwrap_or_else(hearth_gateway::paths::default_data_dir);
            let result = runtime.block_on(run(command, data_dir));
            // Don't wait for stray blocking tasks (a stdin read, a slow socket) at exit.
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            match result {
                Ok(exit) => ExitCode::from(exit),
                Err(failure) => failure.report(json),
            }
        }
    }
}

/// Runs one command; `Ok` carries the exit code of a command that did its job (0, or `hearth
/// doctor`'s verdict).
async fn run(command: Command, data_dir: std::path::PathBuf) -> Result<u8, Failure> {
    let done = match command {
        Command::Doctor(cmd) => return doctor::run(&data_dir, cmd).await,
        Command::Backup(cmd) => return backup::run(&data_dir, cmd).await,
        Command::Logs(args) => logs::run(&data_dir, args).await,
        Command::Serve(args) => serve::run(data_dir, args).await,
        Command::Provider(cmd) => admin::provider(&data_dir, cmd).await,
        Command::Member(cmd) => admin::member(&data_dir, cmd).await,
        Command::Price(cmd) => spend::price(&data_dir, cmd).await,
        Command::Household(cmd) => spend::household(&data_dir, cmd).await,
        Command::Usage(cmd) => spend::usage(&data_dir, cmd).await,
        Command::Status(cmd) => admin::status(&data_dir, cmd).await,
        Command::Demo(cmd) => demo::run(cmd).await,
        Command::Supervisor(args) => supervisor::run(args).await,
        Command::Worker | Command::TreeReader { .. } => unreachable!("handled before the runtime starts"),
    };
    done.map(|()| 0)
}
