//! The daemon: binds the socket, admits only the admin's connections, serves their requests,
//! and owns the workers it started — each reaped by a task of its own, which is also the only
//! one that signals it, so a signal never reaches a recycled pid.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::future::Future;
use std::io;
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
use nix::sys::signal::Signal;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::checks::{check_exe, check_member_id, open_backup_dest, open_data_dir};
use super::removal::{kill_processes_of, remove_account_retrying};
use super::{BackupFn, BackupJob, STOP_GRACE, err, failed, invalid, refused};
use crate::accounts::{self, Account};
use crate::admin::{Admin, AdminRule};
use crate::dirs;
use crate::sandbox::{self, SandboxPlan, SandboxSupport};
use crate::spawn::{WorkerCommand, WorkerLink, spawn_worker};

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
