//! `hearth supervisor`: the root daemon an unprivileged gateway asks to create member accounts
//! and start workers as them — the only part of Hearth that needs root when the gateway does not
//! run as root (macOS, or a Linux install that keeps the gateway unprivileged).
//!
//! The daemon ([`serve`]) listens on a socket in a root-owned directory. Anyone may connect (the
//! socket is 0666) but a connection is served only if the kernel says its peer runs as the
//! admin's uid — the gateway's user, named at start or learnt once ([`crate::admin`]); every
//! other connection is closed unread. What it will do
//! for the admin is deliberately narrow, so a compromised gateway gains no more than it already
//! has (the members' accounts), never root:
//!
//! - it runs workers only as `hearth-*` accounts it creates or verifies itself (never root,
//!   never a uid it is given);
//! - only inside `<data_dir>/members/<id>`, where `data_dir` belongs to the admin and nobody
//!   else can write to it; everything below `data_dir` is reached through descriptors
//!   ([`crate::dirs::prepare_member_dir_at`]), so swapping a directory for a link redirects
//!   nothing;
//! - only a binary that nobody but root and the admin can change (the file and every directory
//!   above it; with `--admin-group`, members of that group too, so a drag-installed
//!   `/Applications/Hearth.app` qualifies) — never one a member's account could replace;
//! - it signals only the workers it started (tracked and reaped here), and on removal whatever
//!   still runs as the removed member's account;
//! - it backs the household up only from the admin's data directory into a folder of the
//!   admin's, both opened and checked once and used only through those descriptors, with the
//!   code the binary serving it supplies ([`BackupFn`]: each folder read with its owner's
//!   rights, never root's), and never reads or writes a secret doing so;
//! - it measures a member's folder for the gateway's disk quota ([`dirs::usage_at`]: a walk
//!   through descriptors that reads no file).
//!
//! The binary's arguments are the admin's to choose, so the admin can run anything root has
//! installed as a member's account: the gateway is trusted with members' accounts (it already
//! holds their conversations' keys). What the supervisor guards is root.
//!
//! A worker is connected to the gateway's worker socket by its own process, as the member,
//! between fork and exec ([`WorkerLink::Connect`]), so no descriptor crosses the supervisor
//! socket, and nothing secret does either. Like the gateway's own, the workers it starts lead
//! sessions of their own with no controlling terminal — not the terminal `hearth supervisor`
//! may have been started from — and their stderr comes back through a pipe into this daemon's
//! log, tagged and cleaned ([`crate::spawn`]).
//!
//! [`SupervisorClient`] is the gateway's side: one connection, one request at a time.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_proto::control::{BackupSummary, IsolationLevel};
use hearth_proto::frame::{self, FrameError};
use hearth_proto::supervisor::{
    SUPERVISOR_PROTOCOL_VERSION, SpawnRequest, Spawned, SupervisedAccount, SupervisedWorker, SupervisorError,
    SupervisorErrorCode, SupervisorReply, SupervisorRequest, SupervisorStatus,
};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use nix::sys::stat::{FileStat, Mode};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accounts::{self, Account};
use crate::admin::{Admin, AdminRule, changeable_parent, others_may_change};
use crate::sandbox::{self, SandboxPlan, SandboxSupport};
use crate::spawn::{WorkerCommand, WorkerLink, spawn_worker};
use crate::{IsolationError, dirs};

/// Where `hearth supervisor` listens on Linux unless told otherwise (`/run/hearth` is made 0755).
pub const DEFAULT_SOCKET_LINUX: &str = "/run/hearth/supervisor.sock";
/// Where it listens on macOS (`/var/run` is root's, 0755); the LaunchDaemon plist says the same.
pub const DEFAULT_SOCKET_MACOS: &str = "/var/run/hearth-supervisor.sock";
/// Where `hearth supervisor` listens, and an unprivileged gateway looks, unless told otherwise.
pub const DEFAULT_SOCKET: &str = if cfg!(target_os = "macos") { DEFAULT_SOCKET_MACOS } else { DEFAULT_SOCKET_LINUX };

/// How long a worker has to exit after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// How long the client waits for one answer (a spawn may wait for the account database lock).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long it waits for a backup: a household's histories may take a while to copy.
const BACKUP_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Makes a backup as root into folders the supervisor opened and checked: a new backup folder
/// in the destination, with only the newest `keep` kept there. The binary that serves the
/// supervisor supplies it (`hearth` runs the code of `hearth backup create`, reading each folder
/// with its owner's rights): the household's files are not this crate's business. Blocking;
/// called off the runtime.
pub type BackupFn = Arc<dyn Fn(&BackupJob<'_>) -> Result<BackupSummary, String> + Send + Sync>;

/// One backup for the admin: both folders opened by the supervisor — the data directory (the
/// admin's, nobody else can write to it) and the destination (likewise) — with their paths
/// only for naming things. All work happens relative to these descriptors.
pub struct BackupJob<'a> {
    pub data: &'a OwnedFd,
    pub data_path: &'a Path,
    pub dest: &'a OwnedFd,
    pub dest_path: &'a Path,
    pub keep: usize,
}

fn err(code: SupervisorErrorCode, message: impl Into<String>) -> SupervisorError {
    SupervisorError::new(code, message)
}

fn refused(message: impl Into<String>) -> SupervisorError {
    err(SupervisorErrorCode::Refused, message)
}

fn invalid(message: impl Into<String>) -> SupervisorError {
    err(SupervisorErrorCode::InvalidInput, message)
}

fn failed(e: impl std::fmt::Display) -> SupervisorError {
    err(SupervisorErrorCode::Failed, e.to_string())
}

/// The uid of a user name from the account database, for `--admin-user`.
pub fn user_uid(name: &str) -> Option<u32> {
    nix::unistd::User::from_name(name).ok().flatten().map(|u| u.uid.as_raw())
}

/// The gid of a group name, or a number taken as a gid, for `--admin-group`.
pub fn group_gid(name: &str) -> Option<u32> {
    match name.trim().parse::<u32>() {
        Ok(gid) => Some(gid),
        Err(_) => nix::unistd::Group::from_name(name).ok().flatten().map(|g| g.gid.as_raw()),
    }
}

// ---------------------------------------------------------------------------------------------
// The daemon

/// Serves the supervisor socket at `socket` for the gateway running as `admin` until
/// `shutdown` completes; then stops every worker it started (SIGTERM, SIGKILL after
/// [`STOP_GRACE`]) and removes the socket. Must run as root.
///
/// The socket's directory is created (0755) if missing; it must belong to root and be writable
/// by nobody else, so no one can put another socket in its place. A leftover socket file from a
/// crash is replaced; a live supervisor already serving it is an error.
pub async fn serve(socket: &Path, admin: Admin, shutdown: impl Future<Output = ()>) -> io::Result<()> {
    serve_with(socket, admin, None, shutdown).await
}

/// [`serve`], able to make backups with `backup`.
pub async fn serve_with(
    socket: &Path,
    admin: Admin,
    backup: Option<BackupFn>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    if !accounts::can_manage_accounts() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the Hearth supervisor must run as root: it creates member accounts and starts workers as them",
        ));
    }
    let rule = AdminRule::load(admin.clone())?;
    let listener = bind(socket)?;
    let supervisor = Supervisor::new(rule, backup);
    // Should this future be dropped rather than shut down, the workers go with it.
    let _abandon = supervisor.inner.abandoned.clone().drop_guard();
    tracing::info!(socket = %socket.display(), ?admin, pinned = ?supervisor.inner.admin.pinned(), sandbox = %supervisor.inner.sandbox.detail, "supervisor serving");
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, _)) => {
                let s = supervisor.clone();
                supervisor.inner.tracker.spawn(s.connection(stream));
            }
            Err(e) => {
                tracing::warn!(error = %e, "supervisor socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(listener);
    let _ = std::fs::remove_file(socket);
    supervisor.shutdown().await;
    tracing::info!("supervisor stopped");
    Ok(())
}

/// Binds the socket (0666) in a root-owned directory nobody else can write to.
fn bind(socket: &Path) -> io::Result<tokio::net::UnixListener> {
    let bad = |msg: String| io::Error::new(io::ErrorKind::InvalidInput, msg);
    if !socket.is_absolute() {
        return Err(bad(format!("the supervisor socket {} must be an absolute path", socket.display())));
    }
    let parent = socket.parent().ok_or_else(|| bad("the supervisor socket needs a directory".into()))?;
    if !parent.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o755).create(parent)?;
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755))?;
    }
    let meta = std::fs::symlink_metadata(parent)?;
    let mode = meta.mode() & 0o7777;
    if !meta.is_dir() || meta.uid() != 0 || mode & 0o022 != 0 {
        return Err(bad(format!(
            "the supervisor socket's directory {} must be a directory of root's that nobody else can write to (it is owned by uid {} with mode {mode:04o}); choose another --socket or fix it with `chown root {} && chmod 755 {}`",
            parent.display(),
            meta.uid(),
            parent.display(),
            parent.display()
        )));
    }
    match std::fs::symlink_metadata(socket) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(socket).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("another Hearth supervisor is already serving {}", socket.display()),
                ));
            }
            std::fs::remove_file(socket)?;
        }
        Ok(_) => {
            return Err(bad(format!(
                "{} exists and is not a socket; move it away or choose another --socket",
                socket.display()
            )));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = tokio::net::UnixListener::bind(socket)?;
    // Anyone may connect; the peer's uid decides whether the connection is served.
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

#[derive(Clone)]
struct Supervisor {
    inner: Arc<Inner>,
}

struct Inner {
    /// Whose connections are served: the gateway's user.
    admin: AdminRule,
    /// How to make a backup, when the serving binary knows.
    backup: Option<BackupFn>,
    /// What the kernel offers, read once at start.
    sandbox: SandboxSupport,
    // std Mutexes below: each is held for a lookup or an update, never across an await.
    workers: Mutex<HashMap<String, Supervised>>,
    /// Accounts created or verified since start (for `Status`).
    accounts: Mutex<BTreeMap<String, Account>>,
    /// One operation at a time per member (spawn, stop, remove). These are tokio mutexes: an
    /// operation holds its member's lock across awaits (a stop waits for the process to go).
    member_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    tracker: TaskTracker,
    /// Ends the connection tasks (shutdown).
    cancel: CancellationToken,
    /// Ends the reaping tasks, killing their children: `serve` was dropped without a shutdown.
    abandoned: CancellationToken,
}

/// A worker this supervisor started and has not reaped yet.
struct Supervised {
    /// Tells a later worker of the same member from this one.
    generation: u64,
    pid: u32,
    uid: u32,
    level: IsolationLevel,
    started: Instant,
    /// Signals for its process group, delivered by the task that owns (and reaps) the child.
    signals: mpsc::UnboundedSender<Signal>,
    /// Becomes `true` once the child has been reaped.
    gone: watch::Receiver<bool>,
}

static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Supervisor {
    fn new(admin: AdminRule, backup: Option<BackupFn>) -> Self {
        Self {
            inner: Arc::new(Inner {
                admin,
                backup,
                sandbox: sandbox::support(),
                workers: Mutex::new(HashMap::new()),
                accounts: Mutex::new(BTreeMap::new()),
                member_locks: Mutex::new(HashMap::new()),
                tracker: TaskTracker::new(),
                cancel: CancellationToken::new(),
                abandoned: CancellationToken::new(),
            }),
        }
    }

    fn sandbox_available(&self) -> bool {
        self.inner.sandbox.available()
    }

    async fn connection(self, mut stream: UnixStream) {
        let admin = match stream.peer_cred() {
            Ok(cred) => {
                let (s, uid) = (self.clone(), cred.uid());
                match tokio::task::spawn_blocking(move || s.inner.admin.admit(uid)).await {
                    Ok(Ok(())) => uid,
                    Ok(Err(why)) => {
                        tracing::warn!(uid, pid = ?cred.pid(), why, "closed a supervisor connection that is not the admin's");
                        return;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the admission check failed; connection closed");
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not identify a supervisor connection; closed");
                return;
            }
        };
        let mut greeted = false;
        loop {
            let request = tokio::select! {
                _ = self.inner.cancel.cancelled() => return,
                r = frame::read_frame::<_, SupervisorRequest>(&mut stream) => r,
            };
            let mut last = false;
            let reply = match request {
                Ok(SupervisorRequest::Hello { version }) if version == SUPERVISOR_PROTOCOL_VERSION => {
                    greeted = true;
                    Ok(self.hello())
                }
                Ok(SupervisorRequest::Hello { version }) => {
                    last = true;
                    Err(err(
                        SupervisorErrorCode::VersionMismatch,
                        format!(
                            "the gateway speaks supervisor protocol version {version} but this `hearth supervisor` speaks {SUPERVISOR_PROTOCOL_VERSION}; run the same Hearth version for both (restart the supervisor after an upgrade)"
                        ),
                    ))
                }
                Ok(_) if !greeted => {
                    last = true;
                    Err(invalid("the first request on a supervisor connection must be hello"))
                }
                Ok(request) => self.handle(request, admin).await,
                Err(FrameError::Closed) => return,
                Err(e) => {
                    last = true;
                    Err(invalid(format!("unreadable request: {e}")))
                }
            };
            if frame::write_frame(&mut stream, &reply).await.is_err() || last {
                return;
            }
        }
    }

    fn hello(&self) -> SupervisorReply {
        SupervisorReply::Hello {
            version: SUPERVISOR_PROTOCOL_VERSION,
            sandbox: self.sandbox_available(),
            sandbox_detail: self.inner.sandbox.detail.clone(),
        }
    }

    /// One request from the admin, uid `admin`.
    async fn handle(&self, request: SupervisorRequest, admin: u32) -> Result<SupervisorReply, SupervisorError> {
        match request {
            SupervisorRequest::Hello { .. } => Ok(self.hello()),
            SupervisorRequest::Spawn(r) => {
                let member = r.member_id.clone();
                let result = self.spawn(r, admin).await;
                match &result {
                    Ok(s) => {
                        tracing::info!(member, pid = s.pid, uid = s.uid, level = s.level.as_str(), "worker started")
                    }
                    Err(e) => tracing::warn!(member, error = %e, "worker not started"),
                }
                result.map(SupervisorReply::Spawned)
            }
            SupervisorRequest::Stop { member_id, pid } => {
                check_member_id(&member_id)?;
                let lock = self.member_lock(&member_id);
                let _held = lock.lock().await;
                let was_running = self.stop(&member_id, pid).await?;
                Ok(SupervisorReply::Stopped { was_running })
            }
            SupervisorRequest::Remove { member_id, data_dir, archive_stamp } => {
                let result = self.remove(&member_id, data_dir, archive_stamp, admin).await;
                match &result {
                    Ok(_) => tracing::info!(member = member_id, "member removed"),
                    Err(e) => tracing::warn!(member = member_id, error = %e, "member not removed"),
                }
                result
            }
            SupervisorRequest::Status => Ok(SupervisorReply::Status(self.status(admin))),
            SupervisorRequest::Backup { data_dir, dest_dir, keep } => {
                let result = self.backup(data_dir, dest_dir, keep, admin).await;
                match &result {
                    Ok(b) => tracing::info!(path = %b.path, members = b.members, bytes = b.bytes, "household backed up"),
                    Err(e) => tracing::warn!(error = %e, "household not backed up"),
                }
                result.map(SupervisorReply::BackedUp)
            }
            SupervisorRequest::Usage { data_dir, member_id } => {
                check_member_id(&member_id)?;
                let usage = tokio::task::spawn_blocking(move || {
                    let (data, _) = open_data_dir(&data_dir, admin)?;
                    dirs::usage_at(&data, &member_id).map_err(failed)
                })
                .await
                .map_err(failed)??;
                Ok(SupervisorReply::Usage { bytes: usage.bytes, files: usage.files })
            }
        }
    }

    fn member_lock(&self, member_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.inner.member_locks.lock().unwrap().entry(member_id.to_owned()).or_default().clone()
    }

    async fn spawn(&self, r: SpawnRequest, admin: u32) -> Result<Spawned, SupervisorError> {
        check_member_id(&r.member_id)?;
        if !r.gateway_socket.is_absolute() {
            return Err(invalid(format!("the gateway socket {} is not an absolute path", r.gateway_socket.display())));
        }
        if r.sandbox && !self.sandbox_available() {
            return Err(refused(format!(
                "the kernel sandbox is not available here ({}); ask for isolation \"account\" instead",
                self.inner.sandbox.detail
            )));
        }
        let lock = self.member_lock(&r.member_id);
        let _held = lock.lock().await;
        // One worker per member: a stale one (its gateway gone, or given up on) makes way.
        self.stop(&r.member_id, None).await?;

        let (id, data_path, exe, want_sandbox) = (r.member_id.clone(), r.data_dir.clone(), r.exe.clone(), r.sandbox);
        let admin_group = self.inner.admin.group();
        let (exe, account, member_dir, plan) = tokio::task::spawn_blocking(move || {
            let exe = check_exe(&exe, admin, admin_group)?;
            let (data, _) = open_data_dir(&data_path, admin)?;
            let account = accounts::ensure_account_in(&id, &data_path).map_err(failed)?;
            if account.uid == admin {
                return Err(refused(format!(
                    "{} has the admin's own uid {admin}; it cannot be a member's",
                    account.name
                )));
            }
            let dir = dirs::prepare_member_dir_at(&data, &data_path, &id, Some(&account)).map_err(failed)?;
            let plan = match want_sandbox {
                true => Some(Arc::new(
                    SandboxPlan::prepare(&dir, &exe)
                        .map_err(|e| failed(format!("could not prepare the sandbox: {e}")))?,
                )),
                false => None,
            };
            Ok((exe, account, dir, plan))
        })
        .await
        .map_err(failed)??;
        self.inner.accounts.lock().unwrap().insert(r.member_id.clone(), account.clone());

        let cmd = WorkerCommand {
            exe,
            args: r.args.into_iter().map(OsString::from).collect(),
            member_id: r.member_id.clone(),
            member_dir,
            account: Some(account.clone()),
            sandbox: plan,
            link: WorkerLink::Connect(r.gateway_socket),
        };
        let worker = spawn_worker(&cmd).map_err(failed)?;
        let spawned = Spawned { pid: worker.pid, uid: account.uid, gid: account.gid, level: worker.level };
        self.track(r.member_id, worker.child, spawned);
        Ok(spawned)
    }

    /// Keeps the child in a task of its own that reaps it and delivers signals to its process
    /// group while it is not reaped yet — so a signal can never reach a recycled process id.
    fn track(&self, member_id: String, mut child: tokio::process::Child, spawned: Spawned) {
        let generation = GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (signals, mut signal_rx) = mpsc::unbounded_channel::<Signal>();
        let (gone_tx, gone) = watch::channel(false);
        self.inner.workers.lock().unwrap().insert(
            member_id.clone(),
            Supervised {
                generation,
                pid: spawned.pid,
                uid: spawned.uid,
                level: spawned.level,
                started: Instant::now(),
                signals,
                gone,
            },
        );
        let inner = self.inner.clone();
        let pid = nix::unistd::Pid::from_raw(spawned.pid as i32);
        let abandoned = self.inner.abandoned.clone();
        self.inner.tracker.spawn(async move {
            let status = loop {
                tokio::select! {
                    status = child.wait() => break status,
                    () = abandoned.cancelled() => {
                        let _ = nix::sys::signal::killpg(pid, Signal::SIGKILL);
                        break child.wait().await;
                    }
                    Some(signal) = signal_rx.recv() => {
                        // Not reaped yet, so the group id is still this worker's.
                        if matches!(child.try_wait(), Ok(None)) {
                            let _ = nix::sys::signal::killpg(pid, signal);
                        }
                    }
                }
            };
            tracing::info!(member = member_id, pid = spawned.pid, status = ?status.ok(), "worker exited");
            {
                let mut workers = inner.workers.lock().unwrap();
                if workers.get(&member_id).is_some_and(|w| w.generation == generation) {
                    workers.remove(&member_id);
                }
            }
            let _ = gone_tx.send(true);
        });
    }

    /// Stops the member's worker (only the one with `pid`, if given): SIGTERM to its process
    /// group, SIGKILL after [`STOP_GRACE`]. Returns whether one was running.
    async fn stop(&self, member_id: &str, pid: Option<u32>) -> Result<bool, SupervisorError> {
        let found = {
            let workers = self.inner.workers.lock().unwrap();
            workers
                .get(member_id)
                .filter(|w| pid.is_none_or(|p| p == w.pid))
                .map(|w| (w.signals.clone(), w.gone.clone(), w.pid))
        };
        let Some((signals, mut gone, pid)) = found else { return Ok(false) };
        let _ = signals.send(Signal::SIGTERM);
        if wait_gone(&mut gone, STOP_GRACE).await {
            return Ok(true);
        }
        tracing::warn!(member = member_id, pid, "worker did not exit after SIGTERM; killing it");
        let _ = signals.send(Signal::SIGKILL);
        if wait_gone(&mut gone, Duration::from_secs(5)).await {
            return Ok(true);
        }
        Err(failed(format!("the worker of {member_id} (pid {pid}) did not exit even after SIGKILL")))
    }

    async fn remove(
        &self,
        member_id: &str,
        data_dir: PathBuf,
        stamp: String,
        admin: u32,
    ) -> Result<SupervisorReply, SupervisorError> {
        check_member_id(member_id)?;
        if !dirs::is_safe_stamp(&stamp) {
            return Err(invalid(format!("the archive stamp {stamp:?} is not a safe file name")));
        }
        let lock = self.member_lock(member_id);
        let _held = lock.lock().await;
        self.stop(member_id, None).await?;
        let id = member_id.to_owned();
        let (archived_to, account_removed) = tokio::task::spawn_blocking(move || {
            let (data, st) = open_data_dir(&data_dir, admin)?;
            let account = accounts::find_account(&id).map_err(failed)?;
            if let Some(a) = &account {
                if a.uid == 0 || a.uid == admin {
                    return Err(refused(format!("{} has uid {}; Hearth will not touch it", a.name, a.uid)));
                }
                // Anything the worker left running (a helper that escaped its process group)
                // would keep the account from being deleted.
                kill_processes_of(a.uid, a.gid).map_err(|e| failed(format!("could not stop the processes of {}: {e}", a.name)))?;
            }
            let archived = dirs::archive_member_dir_at(&data, &data_dir, &id, &stamp, (st.st_uid, st.st_gid)).map_err(|e| {
                failed(format!(
                    "could not archive the member's directory: {e}. Their account is kept, so their files never pass to a future account; fix the cause and remove the member again"
                ))
            })?;
            if account.is_some() {
                remove_account_retrying(&id).map_err(failed)?;
            }
            Ok((archived, account.is_some()))
        })
        .await
        .map_err(failed)??;
        self.inner.accounts.lock().unwrap().remove(member_id);
        self.inner.member_locks.lock().unwrap().remove(member_id);
        Ok(SupervisorReply::Removed { archived_to, account_removed })
    }

    async fn backup(
        &self,
        data_dir: PathBuf,
        dest_dir: PathBuf,
        keep: u32,
        admin: u32,
    ) -> Result<BackupSummary, SupervisorError> {
        let Some(make) = self.inner.backup.clone() else {
            return Err(refused("this supervisor cannot make backups; run `sudo hearth backup create`"));
        };
        tokio::task::spawn_blocking(move || {
            let (data, _) = open_data_dir(&data_dir, admin)?;
            let (dest, _) = open_backup_dest(&dest_dir, admin)?;
            let job = BackupJob {
                data: &data,
                data_path: &data_dir,
                dest: &dest,
                dest_path: &dest_dir,
                keep: keep.max(1) as usize,
            };
            make(&job).map_err(failed)
        })
        .await
        .map_err(failed)?
    }

    fn status(&self, admin: u32) -> SupervisorStatus {
        let mut workers: Vec<SupervisedWorker> = self
            .inner
            .workers
            .lock()
            .unwrap()
            .iter()
            .map(|(id, w)| SupervisedWorker {
                member_id: id.clone(),
                pid: w.pid,
                uid: w.uid,
                level: w.level,
                running_secs: w.started.elapsed().as_secs(),
            })
            .collect();
        workers.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        let accounts = self
            .inner
            .accounts
            .lock()
            .unwrap()
            .iter()
            .map(|(id, a)| SupervisedAccount { member_id: id.clone(), name: a.name.clone(), uid: a.uid, gid: a.gid })
            .collect();
        SupervisorStatus {
            version: SUPERVISOR_PROTOCOL_VERSION,
            admin_uid: admin,
            sandbox: self.sandbox_available(),
            accounts,
            workers,
        }
    }

    /// Stops serving and every worker it started (all at once, so the graces do not add up).
    async fn shutdown(&self) {
        self.inner.cancel.cancel();
        let members: Vec<String> = self.inner.workers.lock().unwrap().keys().cloned().collect();
        let mut stops = tokio::task::JoinSet::new();
        for member in members {
            let s = self.clone();
            stops.spawn(async move { s.stop(&member, None).await });
        }
        while let Some(result) = stops.join_next().await {
            if let Ok(Err(e)) = result {
                tracing::warn!(error = %e, "a worker did not stop");
            }
        }
        self.inner.tracker.close();
        if tokio::time::timeout(Duration::from_secs(10), self.inner.tracker.wait()).await.is_err() {
            tracing::warn!("some supervisor tasks did not finish within 10s");
        }
    }
}

async fn wait_gone(gone: &mut watch::Receiver<bool>, limit: Duration) -> bool {
    // An error means the reaping task itself is gone (runtime shutdown), and with it the child
    // (`kill_on_drop`).
    tokio::time::timeout(limit, gone.wait_for(|g| *g)).await.is_ok()
}

fn check_member_id(id: &str) -> Result<(), SupervisorError> {
    if dirs::is_safe_member_id(id) && id.len() <= accounts::MAX_ACCOUNT_MEMBER_ID {
        Ok(())
    } else {
        Err(invalid(format!(
            "member id {id:?} is not a safe account name: use at most {} lower-case letters, digits and '-'",
            accounts::MAX_ACCOUNT_MEMBER_ID
        )))
    }
}

/// The worker binary, resolved: a regular file that only root and the admin (and, with
/// `--admin-group`, that group) can change, in directories only they can change (a sticky
/// directory such as /tmp is fine: only an entry's owner may rename it there), and that member
/// accounts may execute. What matters is that no member's account — nor any other user — could
/// swap it for code that then runs as every member: the admin is trusted with members' accounts
/// anyway (see the module's doc), so the admin's own `/Applications/Hearth.app` passes.
fn check_exe(exe: &Path, admin: u32, admin_group: Option<u32>) -> Result<PathBuf, SupervisorError> {
    if !exe.is_absolute() {
        return Err(invalid(format!("the worker binary {} is not an absolute path", exe.display())));
    }
    let real = std::fs::canonicalize(exe)
        .map_err(|e| refused(format!("cannot find the worker binary {}: {e}", exe.display())))?;
    let meta = std::fs::metadata(&real).map_err(|e| refused(format!("cannot read {}: {e}", real.display())))?;
    if !meta.is_file() {
        return Err(refused(format!("the worker binary {} is not a regular file", real.display())));
    }
    let mode = meta.mode() & 0o7777;
    if others_may_change(meta.uid(), meta.gid(), mode, false, admin, admin_group) {
        return Err(refused(format!(
            "the worker binary {} could be changed by someone other than root or the admin (owner uid {}, group {}, mode {mode:04o}), so the supervisor will not run it; install Hearth so that only root can change it: `chown root {} && chmod 755 {}`",
            real.display(),
            meta.uid(),
            meta.gid(),
            real.display(),
            real.display()
        )));
    }
    if mode & 0o001 == 0 {
        return Err(refused(format!(
            "member accounts cannot execute the worker binary {} (mode {mode:04o}); run `chmod o+x {}`",
            real.display(),
            real.display()
        )));
    }
    match changeable_parent(&real, admin, admin_group) {
        Ok(None) => Ok(real),
        Ok(Some((dir, meta))) => Err(refused(format!(
            "the worker binary {} lies in {}, which someone other than root or the admin could change (owner uid {}, group {}, mode {:04o}), so they could replace the binary; install Hearth where only root can write",
            real.display(),
            dir.display(),
            meta.uid(),
            meta.gid(),
            meta.mode() & 0o7777
        ))),
        Err((dir, e)) => Err(refused(format!("cannot read {}: {e}", dir.display()))),
    }
}

/// Where root may put a backup for the admin: a real directory (not a link) of the admin's that
/// nobody else can write to, so the supervisor writes nowhere the admin could not. Opened once;
/// the backup is written relative to this descriptor (the checks are on what was opened, so
/// swapping the folder afterwards redirects nothing).
fn open_backup_dest(dest: &Path, admin: u32) -> Result<(OwnedFd, FileStat), SupervisorError> {
    if !dest.is_absolute() {
        return Err(invalid(format!("the backup folder {} is not an absolute path", dest.display())));
    }
    let fd = crate::fsat::open_dir_path(dest, false).map_err(|e| match e.kind() {
        io::ErrorKind::NotADirectory => {
            refused(format!("the backup folder {} is not a directory (a link is not followed)", dest.display()))
        }
        _ => refused(format!("cannot use the backup folder {}: {e}", dest.display())),
    })?;
    let st = nix::sys::stat::fstat(&fd).map_err(failed)?;
    let mode = crate::fsat::mode_bits(&st);
    if st.st_uid != admin || mode & 0o022 != 0 {
        return Err(refused(format!(
            "the backup folder {} must be yours (uid {admin}) and writable by nobody else, but it belongs to uid {} with mode {mode:04o}; choose a folder of your own",
            dest.display(),
            st.st_uid
        )));
    }
    Ok((fd, st))
}

/// Opens the gateway's data directory — never through a link at its last component — and checks
/// that it belongs to the admin and nobody else can write to it.
fn open_data_dir(path: &Path, admin_uid: u32) -> Result<(OwnedFd, FileStat), SupervisorError> {
    if !path.is_absolute() {
        return Err(invalid(format!("the data directory {} is not an absolute path", path.display())));
    }
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::open(path, flags, Mode::empty()).map_err(|e| match e {
        // A link at the last component: ELOOP or ENOTDIR, depending on the kernel's order of checks.
        Errno::ELOOP | Errno::ENOTDIR if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) => {
            refused(format!("the data directory {} is a symbolic link; pass the real path", path.display()))
        }
        Errno::ENOTDIR => refused(format!("the data directory {} is not a directory", path.display())),
        Errno::ENOENT => refused(format!("the data directory {} does not exist", path.display())),
        e => failed(format!("cannot open the data directory {}: {e}", path.display())),
    })?;
    let st = nix::sys::stat::fstat(&fd).map_err(failed)?;
    if st.st_uid != admin_uid {
        return Err(refused(format!(
            "the data directory {} belongs to uid {}, not to the gateway's user (uid {admin_uid}); the supervisor works only in its admin's own data directory",
            path.display(),
            st.st_uid
        )));
    }
    let mode = st.st_mode as u32 & 0o7777;
    if mode & 0o022 != 0 {
        return Err(refused(format!(
            "the data directory {} can be written by other users (mode {mode:04o}); run `chmod 711 {}`",
            path.display(),
            path.display()
        )));
    }
    Ok((fd, st))
}

/// Deletes the account, retrying briefly: the kernel may take a moment to let go of processes
/// that were just killed, and `userdel` refuses while any is left.
fn remove_account_retrying(member_id: &str) -> Result<(), IsolationError> {
    let mut tries = 0;
    loop {
        match accounts::remove_account(member_id) {
            Ok(()) => return Ok(()),
            Err(e) if tries < 20 => {
                tries += 1;
                tracing::debug!(error = %e, "account removal failed; retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Kills every process running as `uid`: a forked child becomes that account and sends SIGKILL
/// to every process it may signal — exactly that account's (uid is never 0 here).
fn kill_processes_of(uid: u32, gid: u32) -> io::Result<()> {
    if uid == 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "refusing to kill root's processes"));
    }
    // SAFETY: after fork the child makes only async-signal-safe system calls and leaves with
    // `_exit`; the parent waits for exactly that child.
    unsafe {
        let pid = libc::fork();
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            let mut ok = libc::setgroups(0, std::ptr::null()) == 0;
            #[cfg(target_os = "linux")]
            {
                ok = ok && libc::setresgid(gid, gid, gid) == 0 && libc::setresuid(uid, uid, uid) == 0;
            }
            #[cfg(not(target_os = "linux"))]
            {
                ok = ok && libc::setgid(gid) == 0 && libc::setuid(uid) == 0;
            }
            if ok && libc::getuid() == uid && libc::geteuid() == uid {
                libc::kill(-1, libc::SIGKILL);
                libc::_exit(0);
            }
            libc::_exit(1);
        }
        let mut status = 0;
        loop {
            if libc::waitpid(pid, &mut status, 0) == pid {
                break;
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e);
            }
        }
        // Where kill(-1) includes the sender itself, the child dies of it: that is success too.
        let done = (libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0)
            || (libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL);
        if !done {
            return Err(io::Error::other("the helper could not become the member's account"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The client

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "the Hearth supervisor is not running at {}: start it as root (`sudo hearth supervisor --admin-user $USER`; on macOS approve Hearth in System Settings → General → Login Items)",
        path.display()
    )]
    NotRunning { path: PathBuf },
    #[error(
        "the Hearth supervisor at {} serves only its admin's uid, and this process runs as uid {uid}: run Hearth as the user named with `hearth supervisor --admin-user`",
        path.display()
    )]
    NotAdmitted { path: PathBuf, uid: u32 },
    #[error("{0}")]
    Supervisor(#[from] SupervisorError),
    #[error("could not talk to the Hearth supervisor at {}: {message}", path.display())]
    Io { path: PathBuf, message: String },
}

/// What a removal did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub archived_to: Option<PathBuf>,
    pub account_removed: bool,
}

/// One connection to the supervisor, greeted. Requests go one at a time; open several clients
/// for requests that should not wait for each other.
#[derive(Debug)]
pub struct SupervisorClient {
    stream: UnixStream,
    path: PathBuf,
    sandbox: bool,
    sandbox_detail: String,
}

impl SupervisorClient {
    /// Connects and says hello; fails clearly when nothing listens, when the supervisor does not
    /// admit this uid, or when it speaks another protocol version.
    pub async fn connect(path: &Path) -> Result<SupervisorClient, ClientError> {
        let stream = UnixStream::connect(path).await.map_err(|e| match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                ClientError::NotRunning { path: path.to_owned() }
            }
            _ => ClientError::Io { path: path.to_owned(), message: e.to_string() },
        })?;
        let mut client =
            SupervisorClient { stream, path: path.to_owned(), sandbox: false, sandbox_detail: String::new() };
        match client.request(SupervisorRequest::Hello { version: SUPERVISOR_PROTOCOL_VERSION }).await {
            Ok(SupervisorReply::Hello { sandbox, sandbox_detail, .. }) => {
                client.sandbox = sandbox;
                client.sandbox_detail = sandbox_detail;
                Ok(client)
            }
            Ok(other) => Err(client.unexpected(&other)),
            // The supervisor closes a connection from any uid but its admin's without a word.
            Err(ClientError::Io { .. }) => {
                Err(ClientError::NotAdmitted { path: path.to_owned(), uid: nix::unistd::geteuid().as_raw() })
            }
            Err(e) => Err(e),
        }
    }

    /// Whether workers can be started in the kernel sandbox.
    pub fn sandbox(&self) -> bool {
        self.sandbox
    }

    /// What the supervisor's kernel offers for the sandbox, in words.
    pub fn sandbox_detail(&self) -> &str {
        &self.sandbox_detail
    }

    pub async fn spawn(&mut self, request: SpawnRequest) -> Result<Spawned, ClientError> {
        match self.request(SupervisorRequest::Spawn(request)).await? {
            SupervisorReply::Spawned(s) => Ok(s),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Stops the member's worker (only the one with `pid`, if given); returns whether one ran.
    pub async fn stop(&mut self, member_id: &str, pid: Option<u32>) -> Result<bool, ClientError> {
        match self.request(SupervisorRequest::Stop { member_id: member_id.to_owned(), pid }).await? {
            SupervisorReply::Stopped { was_running } => Ok(was_running),
            other => Err(self.unexpected(&other)),
        }
    }

    pub async fn remove(
        &mut self,
        member_id: &str,
        data_dir: &Path,
        archive_stamp: &str,
    ) -> Result<Removal, ClientError> {
        let request = SupervisorRequest::Remove {
            member_id: member_id.to_owned(),
            data_dir: data_dir.to_owned(),
            archive_stamp: archive_stamp.to_owned(),
        };
        match self.request(request).await? {
            SupervisorReply::Removed { archived_to, account_removed } => Ok(Removal { archived_to, account_removed }),
            other => Err(self.unexpected(&other)),
        }
    }

    /// How much of the disk a member's folder takes (measured by root, which can read it).
    pub async fn usage(&mut self, data_dir: &Path, member_id: &str) -> Result<dirs::Usage, ClientError> {
        let request = SupervisorRequest::Usage { data_dir: data_dir.to_owned(), member_id: member_id.to_owned() };
        match self.request(request).await? {
            SupervisorReply::Usage { bytes, files } => Ok(dirs::Usage { bytes, files }),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Asks root to back the household in `data_dir` up into a new folder in `dest_dir` (the
    /// admin's), keeping the newest `keep` there. Without secrets.
    pub async fn backup(&mut self, data_dir: &Path, dest_dir: &Path, keep: u32) -> Result<BackupSummary, ClientError> {
        let request = SupervisorRequest::Backup { data_dir: data_dir.to_owned(), dest_dir: dest_dir.to_owned(), keep };
        match self.request_within(request, BACKUP_TIMEOUT).await? {
            SupervisorReply::BackedUp(summary) => Ok(summary),
            other => Err(self.unexpected(&other)),
        }
    }

    pub async fn status(&mut self) -> Result<SupervisorStatus, ClientError> {
        match self.request(SupervisorRequest::Status).await? {
            SupervisorReply::Status(s) => Ok(s),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn request(&mut self, request: SupervisorRequest) -> Result<SupervisorReply, ClientError> {
        self.request_within(request, REQUEST_TIMEOUT).await
    }

    async fn request_within(&mut self, request: SupervisorRequest, limit: Duration) -> Result<SupervisorReply, ClientError> {
        let io = |e: FrameError| ClientError::Io {
            path: self.path.clone(),
            message: match e {
                FrameError::Closed => "the supervisor closed the connection".to_owned(),
                e => e.to_string(),
            },
        };
        let exchange = async {
            frame::write_frame(&mut self.stream, &request).await?;
            frame::read_frame::<_, Result<SupervisorReply, SupervisorError>>(&mut self.stream).await
        };
        match tokio::time::timeout(limit, exchange).await {
            Ok(Ok(reply)) => Ok(reply?),
            Ok(Err(e)) => Err(io(e)),
            Err(_) => Err(ClientError::Io {
                path: self.path.clone(),
                message: format!("no answer within {} seconds", limit.as_secs()),
            }),
        }
    }

    fn unexpected(&self, reply: &SupervisorReply) -> ClientError {
        ClientError::Io { path: self.path.clone(), message: format!("unexpected answer {reply:?}") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_member_ids_are_refused_with_a_reason() {
        for bad in ["", "../x", "A", "a b", &"x".repeat(accounts::MAX_ACCOUNT_MEMBER_ID + 1)] {
            let e = check_member_id(bad).unwrap_err();
            assert_eq!(e.code, SupervisorErrorCode::InvalidInput, "{bad:?}");
            assert!(e.message.contains("lower-case"), "{}", e.message);
        }
        check_member_id("ana-7k2p").unwrap();
    }

    #[test]
    fn relative_paths_are_refused() {
        assert_eq!(check_exe(Path::new("hearth"), 0, None).unwrap_err().code, SupervisorErrorCode::InvalidInput);
        assert_eq!(open_data_dir(Path::new("data"), 0).unwrap_err().code, SupervisorErrorCode::InvalidInput);
    }

    #[test]
    fn backups_go_only_into_a_real_folder_of_the_admins() {
        let me = nix::unistd::geteuid().as_raw();
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        open_backup_dest(dir.path(), me).unwrap();
        assert_eq!(open_backup_dest(Path::new("backups"), me).unwrap_err().code, SupervisorErrorCode::InvalidInput);
        let e = open_backup_dest(dir.path(), me + 1).unwrap_err();
        assert!(e.message.contains("must be yours"), "{}", e.message);
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(open_backup_dest(dir.path(), me).unwrap_err().message.contains("writable by nobody else"));
        let link = dir.path().join("link");
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(open_backup_dest(&link, me).unwrap_err().message.contains("link is not followed"));
    }

    #[test]
    fn a_binary_in_a_directory_others_can_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let exe = dir.path().join("hearth");
        std::fs::write(&exe, b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = check_exe(&exe, 0, None).unwrap_err();
        assert_eq!(e.code, SupervisorErrorCode::Refused);
        // Either the file (not root's when this runs unprivileged) or its directory is named.
        assert!(e.message.contains("someone other than root"), "{}", e.message);
    }
}
