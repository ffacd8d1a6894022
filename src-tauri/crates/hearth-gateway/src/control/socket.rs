//! The control socket: `run/control.sock`, which the `hearth` command (and `hearth status`
//! against the app) uses. Only the gateway's own user (or root) may open it, checked again on
//! every connection with the kernel-reported peer uid; and a command sends nothing to a socket
//! served by anyone it must not trust ([`check_server`]).

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use hearth_proto::PROTOCOL_VERSION;
use hearth_proto::control::{ControlEnvelope, ControlError, ControlReply, ControlRequest, ErrorCode};
use hearth_proto::frame::{self, FrameError};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use crate::core::Engine;

/// What answers each request: the gateway's own `control`.
pub(crate) type Handler = Arc<
    dyn Fn(ControlRequest) -> Pin<Box<dyn Future<Output = Result<ControlReply, ControlError>> + Send>> + Send + Sync,
>;

/// Binds `run/control.sock` (directory 0700 and checked like the data folder, socket 0600) and
/// serves it until shutdown, each request answered by `handler`. The accept loop is watched by
/// the keeper (started again if it panics); a panic while answering is contained in the handler.
pub(crate) fn serve_socket(engine: &Engine, handler: Handler) -> anyhow::Result<()> {
    let dir = &engine.dir;
    crate::data_dir::prepare_subdir(dir.root(), "run", 0o700)?;
    let path = dir.control_socket();
    // We hold the data directory's lock, so a socket file here is a leftover of a crash.
    let _ = std::fs::remove_file(&path);
    let listener = Arc::new(UnixListener::bind(&path)?);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let (cancel, tracker) = (engine.cancel.clone(), engine.tracker.clone());
    engine.keeper.watch("the control socket", move || {
        let (listener, handler, cancel, tracker) = (listener.clone(), handler.clone(), cancel.clone(), tracker.clone());
        async move {
            loop {
                let accepted = tokio::select! {
                    _ = cancel.cancelled() => return,
                    a = listener.accept() => a,
                };
                match accepted {
                    Ok((stream, _)) => {
                        tracker.spawn(serve_connection(handler.clone(), cancel.clone(), stream));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "control socket accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    }
                }
            }
        }
    });
    Ok(())
}

async fn serve_connection(handler: Handler, cancel: CancellationToken, mut stream: UnixStream) {
    let me = nix::unistd::geteuid().as_raw();
    match stream.peer_cred() {
        Ok(cred) if cred.uid() == me || cred.uid() == 0 => {}
        Ok(cred) => {
            tracing::warn!(uid = cred.uid(), "control connection from another user refused");
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not identify a control connection; refused");
            return;
        }
    }
    loop {
        let envelope = tokio::select! {
            _ = cancel.cancelled() => return,
            r = frame::read_frame::<_, ControlEnvelope>(&mut stream) => r,
        };
        let reply: Result<ControlReply, ControlError> = match envelope {
            Ok(env) if env.version != PROTOCOL_VERSION => Err(ControlError::new(
                ErrorCode::VersionMismatch,
                format!(
                    "this hearth command speaks version {} but the running gateway speaks {PROTOCOL_VERSION}; use the same Hearth version for both",
                    env.version
                ),
            )),
            Ok(env) => handler(env.request).await,
            Err(FrameError::Closed) => return,
            Err(e) => Err(ControlError::new(ErrorCode::InvalidInput, format!("unreadable request: {e}"))),
        };
        if frame::write_frame(&mut stream, &reply).await.is_err() {
            return;
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("Hearth is not running for {0}. Start it with `hearth serve` (or open the Hearth app), then try again")]
    NotRunning(String),
    /// The socket, its folder or the process behind it belongs to someone the command must not
    /// trust with what it was about to send. Nothing was sent.
    #[error("{0}")]
    Refused(String),
    #[error("could not talk to the running gateway: {0}")]
    Io(String),
    #[error("{0}")]
    Control(#[from] ControlError),
}

/// Sends one request to the gateway serving `data_dir` — only after checking who serves it
/// ([`check_server`]): a request may carry an API key or a bot token.
pub async fn request(data_dir: &Path, request: ControlRequest) -> Result<ControlReply, ClientError> {
    let path = crate::paths::DataDir::new(data_dir).control_socket();
    let mut stream = match UnixStream::connect(&path).await {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => {
            return Err(ClientError::NotRunning(data_dir.display().to_string()));
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(ClientError::Io(format!(
                "permission denied on {}; run the command as the user Hearth runs as",
                path.display()
            )));
        }
        Err(e) => return Err(ClientError::Io(e.to_string())),
    };
    let peer = stream
        .peer_cred()
        .map_err(|e| ClientError::Io(format!("could not tell who serves {}: {e}", path.display())))?;
    check_server(data_dir, peer.uid(), nix::unistd::geteuid().as_raw())?;
    frame::write_frame(&mut stream, &ControlEnvelope { version: PROTOCOL_VERSION, request })
        .await
        .map_err(|e| ClientError::Io(e.to_string()))?;
    let reply: Result<ControlReply, ControlError> = frame::read_frame(&mut stream).await.map_err(|e| match e {
        FrameError::Closed => ClientError::Io("the gateway closed the connection (is it shutting down?)".into()),
        e => ClientError::Io(e.to_string()),
    })?;
    Ok(reply?)
}

/// Whom a command run as `me` may send to: a gateway running as itself or as root — and, run as
/// root (`sudo hearth …`), the gateway of the user who owns the data folder, since root may talk
/// to anyone's gateway. The kernel says who `server` is (SO_PEERCRED / getpeereid); the data
/// folder, `run/` and the socket must belong to that same user (or root), be no link, and `run/`
/// writable by nobody else. Anything else is refused before a byte is sent: someone may have
/// put a listener of their own where the gateway's socket should be, to catch a key.
pub(crate) fn check_server(data_dir: &Path, server: u32, me: u32) -> Result<(), ClientError> {
    use std::os::unix::fs::MetadataExt;
    let dir = crate::paths::DataDir::new(data_dir);
    let who = |uid: u32| match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => format!("uid {uid} ({})", u.name),
        _ => format!("uid {uid}"),
    };
    let refuse = |what: String| {
        Err(ClientError::Refused(format!(
            "{what}. Nothing was sent: someone else may be listening in Hearth's place. Check {} (`ls -la {}`), and \
             run this command as the user Hearth runs as",
            dir.run_dir().display(),
            dir.run_dir().display()
        )))
    };
    let meta = |p: &Path| {
        std::fs::symlink_metadata(p).map_err(|e| ClientError::Io(format!("could not check {}: {e}", p.display())))
    };
    // The folder's own owner, through a link to it if the command was given one.
    let owner = std::fs::metadata(data_dir)
        .map_err(|e| ClientError::Io(format!("could not check {}: {e}", data_dir.display())))?
        .uid();
    let trusted = |uid: u32| uid == me || uid == 0 || (me == 0 && uid == owner);
    if !trusted(server) {
        return refuse(format!(
            "the control socket {} is served by {}, not by you ({}){}",
            dir.control_socket().display(),
            who(server),
            who(me),
            if me == 0 { format!(", root or the data folder's owner ({})", who(owner)) } else { " or root".into() }
        ));
    }
    for (path, dir_only) in [(dir.run_dir(), true), (dir.control_socket(), false)] {
        let m = meta(&path)?;
        if m.file_type().is_symlink() {
            return refuse(format!("{} is a symbolic link", path.display()));
        }
        if m.uid() != server && m.uid() != 0 {
            return refuse(format!(
                "{} belongs to {}, but the gateway behind it runs as {}",
                path.display(),
                who(m.uid()),
                who(server)
            ));
        }
        if dir_only && (!m.is_dir() || m.mode() & 0o022 != 0) {
            return refuse(format!(
                "{} is not a folder only its owner may change (mode {:04o})",
                path.display(),
                m.mode() & 0o7777
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ourselves_root_or_as_root_the_folders_owner_may_serve_us() {
        use std::os::unix::fs::PermissionsExt;
        let data = tempfile::tempdir().unwrap();
        let dir = crate::paths::DataDir::new(data.path());
        std::fs::create_dir(dir.run_dir()).unwrap();
        std::fs::set_permissions(dir.run_dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let _listener = std::os::unix::net::UnixListener::bind(dir.control_socket()).unwrap();
        let owner = nix::unistd::geteuid().as_raw();
        // The folder's owner serves; the command runs as the owner, or as root.
        check_server(data.path(), owner, owner).unwrap();
        check_server(data.path(), owner, 0).unwrap();
        // Someone else serves.
        let err = check_server(data.path(), 4242, owner).unwrap_err().to_string();
        assert!(err.contains("served by uid 4242") && err.contains("Nothing was sent"), "{err}");
        if owner != 0 {
            // Root's gateway may serve anyone; nobody but the owner's may serve root.
            check_server(data.path(), 0, owner).unwrap();
            assert!(check_server(data.path(), 4242, 0).is_err());
        }
        // `run/` loosened: refused even for the right uid.
        std::fs::set_permissions(dir.run_dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_server(data.path(), owner, owner).unwrap_err().to_string();
        assert!(err.contains("not a folder only its owner may change (mode 0777)"), "{err}");
    }
}
