//! `hearth supervisor`: the root daemon an unprivileged gateway asks for member accounts and
//! workers (hearth-isolation's `supervisor` module does the work), in the foreground until
//! SIGINT or SIGTERM. Logs go to stderr (`RUST_LOG`, default `info`).

use std::sync::Arc;

use hearth_gateway::backup;
use hearth_isolation::admin::Admin;
use hearth_isolation::supervisor::BackupJob;
use hearth_proto::control::BackupSummary;
use tokio::signal::unix::{SignalKind, signal};

use crate::args::SupervisorArgs;
use crate::failure::{EXIT_UNEXPECTED, Failure};

pub async fn run(args: SupervisorArgs) -> Result<(), Failure> {
    crate::serve::init_logging("info", None);
    if !hearth_isolation::accounts::can_manage_accounts() {
        return Err(Failure {
            code: "needs_root",
            message: "`hearth supervisor` must run as root: it creates an OS account for each member and starts their workers as them. Start it with sudo, or as the system service".into(),
            exit: EXIT_UNEXPECTED,
        });
    }
    let admin = admin(&args)?;
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| Failure::unexpected(format!("listen for SIGTERM: {e}")))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| Failure::unexpected(format!("listen for SIGINT: {e}")))?;
    let shutdown = async {
        let which = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!("{which} received; stopping the workers this supervisor started");
    };
    let whom = match &admin {
        Admin::Uid(uid) => format!("uid {uid}"),
        Admin::FirstOfGroup { gid, pin } => format!("the first of group {gid} to connect (remembered in {})", pin.display()),
    };
    eprintln!("The Hearth supervisor is serving {} for {whom}. Press Ctrl-C to stop.", args.socket.display());
    hearth_isolation::supervisor::serve_with(&args.socket, admin, Some(Arc::new(backup)), shutdown)
        .await
        .map_err(|e| Failure::unexpected(format!("the supervisor cannot serve {}: {e}", args.socket.display())))
}

/// The admin from --admin-user, --admin-uid or --admin-group; never root (a gateway running as
/// root manages accounts itself and needs no supervisor).
fn admin(args: &SupervisorArgs) -> Result<Admin, Failure> {
    if args.admin_pin.is_some() && args.admin_group.is_none() {
        return Err(Failure::invalid_input("--admin-pin goes with --admin-group: a named admin needs no file to remember them"));
    }
    if let Some(group) = &args.admin_group {
        let gid = hearth_isolation::supervisor::group_gid(group)
            .ok_or_else(|| Failure::invalid_input(format!("there is no group called {group:?} on this system")))?;
        let pin = args.admin_pin.clone().unwrap_or_else(|| hearth_isolation::admin::DEFAULT_PIN.into());
        if !pin.is_absolute() {
            return Err(Failure::invalid_input(format!("--admin-pin {} must be an absolute path", pin.display())));
        }
        return Ok(Admin::FirstOfGroup { gid, pin });
    }
    let uid = match (&args.admin_user, &args.admin_uid) {
        (Some(name), _) => hearth_isolation::supervisor::user_uid(name)
            .ok_or_else(|| Failure::invalid_input(format!("there is no user called {name:?} on this system")))?,
        (None, Some(v)) => v.trim().parse::<u32>().map_err(|_| {
            Failure::invalid_input(format!(
                "--admin-uid {v:?} is not a number: give the uid (`id -u NAME`), or --admin-user NAME"
            ))
        })?,
        (None, None) => {
            return Err(Failure::invalid_input("name the gateway's user with --admin-user NAME or --admin-uid UID"));
        }
    };
    if uid == 0 {
        return Err(Failure::invalid_input(
            "the admin cannot be root: a gateway running as root creates member accounts itself and needs no supervisor; name the user the gateway runs as",
        ));
    }
    Ok(Admin::Uid(uid))
}

/// A backup for the gateway, made the way `sudo hearth backup create` makes one, into the
/// folders the supervisor opened and checked: each member's folder (and the gateway's own
/// files) read by this binary running as its owner, written by root through descriptors.
/// Snapshots are consistent while the gateway serves. Secrets are never included (none cross
/// the supervisor's socket); older backups beyond `keep` go, since the admin cannot delete
/// root's folders.
fn backup(job: &BackupJob<'_>) -> Result<BackupSummary, String> {
    let summary = backup::create_at(
        job.data,
        job.data_path,
        job.dest,
        job.dest_path,
        None,
        chrono::Local::now(),
        &hearth_gateway::tree::ReaderExe::This,
    )
    .map_err(|e| e.to_string())?;
    match backup::prune_at(job.dest, job.dest_path, job.keep) {
        Ok(deleted) if !deleted.is_empty() => tracing::info!(deleted = deleted.len(), "older backups deleted"),
        Ok(_) => {}
        Err(e) => tracing::warn!(dir = %job.dest_path.display(), error = %e, "could not delete older backups"),
    }
    Ok(summary)
}
