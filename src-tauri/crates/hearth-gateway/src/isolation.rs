//! How strongly members are separated, decided once at start ([`resolve`]), and what each level
//! needs from the machine before the first worker starts: a worker binary every member account
//! may run, a data folder they may traverse, and the socket account-level workers connect to.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use hearth_isolation::IsolationLevel;

use crate::config::IsolationChoice;
use crate::paths::DataDir;

/// Decides the level once, at start. Asking for more than the machine allows is an error that
/// says why; `auto` takes the strongest level available. As root the gateway manages accounts
/// itself; otherwise it needs a `hearth supervisor` that answers at `supervisor_socket`, and
/// then returns that socket for the workers to be started through.
pub(crate) async fn resolve(
    choice: IsolationChoice,
    supervisor_socket: Option<&Path>,
) -> anyhow::Result<(IsolationLevel, Option<PathBuf>)> {
    if choice == IsolationChoice::Process {
        return Ok((IsolationLevel::Process, None));
    }
    if hearth_isolation::accounts::can_manage_accounts() {
        if let Some(path) = supervisor_socket {
            tracing::info!(supervisor = %path.display(), "running as root: member accounts are managed in-process and the supervisor is not used");
        }
        let support = hearth_isolation::sandbox::support();
        let sandbox = support.available();
        return pick_level(choice, sandbox, &support.detail).map(|level| (level, None));
    }
    let Some(path) = supervisor_socket else {
        return match choice {
            IsolationChoice::Auto => Ok((IsolationLevel::Process, None)),
            _ => anyhow::bail!(
                "isolation \"account\" needs root to create an OS account per member: run Hearth as root, or run `hearth supervisor` as root and start the gateway with --supervisor-socket (HEARTH_SUPERVISOR_SOCKET); or use --isolation process for development"
            ),
        };
    };
    match hearth_isolation::SupervisorClient::connect(path).await {
        Ok(client) => {
            let level = pick_level(choice, client.sandbox(), client.sandbox_detail())?;
            Ok((level, Some(path.to_owned())))
        }
        Err(e) if choice == IsolationChoice::Auto => {
            tracing::warn!(error = %e, "the Hearth supervisor did not answer, so members get no OS accounts of their own");
            Ok((IsolationLevel::Process, None))
        }
        Err(e) => Err(anyhow::Error::new(e).context("member accounts need the Hearth supervisor")),
    }
}

/// The level for a choice once accounts are possible, given whether the sandbox is.
fn pick_level(choice: IsolationChoice, sandbox: bool, detail: &str) -> anyhow::Result<IsolationLevel> {
    match choice {
        IsolationChoice::Process => Ok(IsolationLevel::Process),
        IsolationChoice::Auto if sandbox => Ok(IsolationLevel::AccountSandbox),
        IsolationChoice::Auto => {
            tracing::warn!(detail, "the kernel sandbox is not available; workers get OS accounts only");
            Ok(IsolationLevel::Account)
        }
        IsolationChoice::Account => Ok(IsolationLevel::Account),
        IsolationChoice::AccountSandbox if !sandbox => {
            anyhow::bail!("isolation \"sandbox\" is not available here: {detail}")
        }
        IsolationChoice::AccountSandbox => Ok(IsolationLevel::AccountSandbox),
    }
}

/// Member accounts must be able to run the worker binary: it and every directory above it need
/// the "others may execute" bit. (`/root/...` is the usual way this fails.)
pub(crate) fn exe_runnable_by_members(exe: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let exe =
        std::fs::canonicalize(exe).map_err(|e| format!("the worker binary {} cannot be found: {e}", exe.display()))?;
    let mut path = Some(exe.as_path());
    while let Some(p) = path {
        let mode = std::fs::metadata(p).map_err(|e| format!("cannot check {}: {e}", p.display()))?.permissions().mode();
        if mode & 0o001 == 0 {
            return Err(format!(
                "member accounts cannot run the worker binary {}: {} is not accessible to other users (mode {:o}). \
                 Install hearth where every user can run it (e.g. /usr/local/bin), or use --isolation process for development",
                exe.display(),
                p.display(),
                mode & 0o777
            ));
        }
        path = p.parent();
    }
    Ok(())
}

/// The data directory is the gateway's: 0700 at level "process"; 0711 (traversable, not
/// listable) when member accounts must reach their own directory inside it.
pub(crate) fn data_dir_mode(level: IsolationLevel) -> u32 {
    if level == IsolationLevel::Process { 0o700 } else { 0o711 }
}

/// The socket account-level workers connect to. Anyone may connect (0666 in a 0711 directory);
/// only a connection whose kernel-reported uid is a member's freshly started worker is kept.
pub(crate) fn bind_worker_socket(dir: &DataDir) -> anyhow::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.worker_socket();
    crate::data_dir::prepare_subdir(dir.root(), "workers", 0o711)?;
    // We hold the data directory's lock, so a socket file here is a leftover of a crash.
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path).with_context(|| format!("bind {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_binary_behind_a_private_directory_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("private");
        std::fs::create_dir(&private).unwrap();
        let exe = private.join("hearth");
        std::fs::write(&exe, b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        let err = exe_runnable_by_members(&exe).unwrap_err();
        assert!(err.contains("private") && err.contains("/usr/local/bin"), "{err}");
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(exe_runnable_by_members(&exe), Ok(()));
    }
}
