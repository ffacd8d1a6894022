//! The gateway's side of member workers: at most one process per member, started on demand
//! through `hearth-isolation`, asked to exit after it has been idle a while.
//!
//! A worker is started in one of two ways: by the gateway itself (level "process", or an OS
//! account per member when the gateway runs as root), or — when the gateway is not root — by the
//! `hearth supervisor` daemon, which creates the account and starts the worker as it. Then the
//! worker is not the gateway's child: its end is seen as its socket closing, and it is stopped
//! through the supervisor. Either way an account-level worker's connection to the worker socket
//! is made by the worker's own process, as the member, before exec and before its sandbox (which
//! then refuses any socket); the worker finds it on fd 3. It is bound to the member whose account
//! the kernel reports for the connection, and only if it is the very process that was started.
//! Workers lead sessions of their own, with no controlling terminal, and their stderr reaches
//! this log through a pipe, tagged with the member and cleaned (`hearth_isolation::spawn`).
//!
//! Each worker gets an I/O task that owns its socket. Frames from the worker are trusted only as
//! far as the socket they arrive on: a worker can ask for completions during its own member's
//! running turn, and finish that turn — nothing else. The reply goes to the chat the turn came
//! from, chosen by the gateway. What the turn may ask for is the gateway's decision too
//! (`rules.rs`): by the turn's kind and the member's state, one request at a time, a bounded
//! number per turn; each frame within its kind's size (a frame over
//! [`WORKER_FRAME_MAX`] ends the connection); the reply and the reminder schedule it finishes
//! with checked (`rules::bound_outcome`, `household::reminders::check_schedule`).
//!
//! This file starts and stops workers; [`io`] is a worker's connection (its frames, what it may
//! ask for); [`rules`] is what a turn may ask for.

mod io;
pub mod rules;

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_isolation::accounts::{self, Account};
use hearth_isolation::sandbox::SandboxPlan;
use hearth_isolation::spawn::WorkerLink;
use hearth_isolation::{IsolationLevel, SpawnedWorker, SupervisorClient, WorkerCommand};
use hearth_proto::PROTOCOL_VERSION;
use hearth_proto::frame;
use hearth_proto::supervisor::SpawnRequest;
use hearth_proto::worker::{ATTACHMENT_CHUNK_BYTES, GatewayToWorker, ReminderDue, Turn, TurnOutcome, WorkerToGateway};
use parking_lot::Mutex;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::Broker;
use crate::household::kb::Knowledge;
use io::WorkerIo;
use rules::{Allowance, TurnRules};

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("could not start the worker: {0}")]
    Spawn(String),
    #[error("the worker stopped in the middle of the turn")]
    Crashed,
    #[error("the worker took longer than {0:?} for one turn and was stopped")]
    TimedOut(Duration),
    #[error("the worker spoke an incompatible protocol: {0}")]
    Protocol(String),
    #[error("the gateway is shutting down")]
    ShuttingDown,
}

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub exe: PathBuf,
    pub args: Vec<OsString>,
    pub data_dir: PathBuf,
    /// A worker with no turn for this long is asked to exit.
    pub idle: Duration,
    /// A turn that has not finished after this long is abandoned and its worker killed.
    pub turn_timeout: Duration,
    /// The level workers run at; decided once at start.
    pub level: IsolationLevel,
    /// Where account-level workers connect (`None` at level "process").
    pub socket: Option<PathBuf>,
    /// The `hearth supervisor` socket that starts account-level workers when the gateway is not
    /// root (`None`: the gateway starts them itself).
    pub supervisor: Option<PathBuf>,
}

#[derive(Clone)]
pub struct Workers {
    inner: Arc<Inner>,
}

struct Inner {
    settings: WorkerSettings,
    broker: Broker,
    // Held only to look up or change the map, never across an await.
    slots: Mutex<HashMap<String, Slot>>,
    /// Account-level workers started but not yet connected, by the uid they run as.
    pending: Mutex<HashMap<u32, oneshot::Sender<Connected>>>,
    /// Workers asked of the supervisor but not yet connected, by member id. The supervisor
    /// creates the account, so the uid is known only from its reply — which may arrive after the
    /// worker has connected; such a connection is matched by the account its kernel-reported uid
    /// belongs to, and checked against the reply afterwards.
    pending_members: Mutex<HashMap<String, oneshot::Sender<Connection>>>,
    next_turn_id: AtomicU64,
    /// The household's knowledge workers may search; set once at start, absent if it could
    /// not be opened (searches then say so).
    knowledge: std::sync::OnceLock<Knowledge>,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

/// A running worker as the rest of the gateway sees it.
struct Slot {
    generation: u64,
    pid: u32,
    to_worker: mpsc::UnboundedSender<GatewayToWorker>,
    /// The turn in progress: its id, chat, and where to deliver the outcome.
    turn: Arc<Mutex<Option<RunningTurn>>>,
    last_used: Arc<Mutex<Instant>>,
}

struct RunningTurn {
    turn_id: u64,
    chat_id: i64,
    done: oneshot::Sender<Done>,
    /// The member's state when the turn started, and how to see a pause since.
    rules: TurnRules,
    /// What the turn has asked for so far, by its kind.
    allowance: Allowance,
}

/// A turn's outcome, and the member's upcoming reminders when the turn changed them.
pub type Done = (TurnOutcome, Option<Vec<ReminderDue>>);

/// A worker's connection as the accept loop hands it over: the stream, and the uid and pid the
/// kernel reports for its peer.
type Connection = (UnixStream, u32, Option<i32>);

/// An account-level worker's connection, handed to the start waiting for its uid: the stream
/// and the pid the kernel reports.
type Connected = (UnixStream, Option<i32>);

/// The worker process behind a slot, as far as the gateway can reach it.
enum WorkerProcess {
    /// The gateway's own child (killed when dropped).
    Child(tokio::process::Child),
    /// Started by the supervisor at this socket: not the gateway's child, so it is stopped
    /// through the supervisor.
    Supervised { supervisor: PathBuf },
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

/// Queues a turn's files for the worker as [`GatewayToWorker::AttachmentChunk`] frames of at most
/// [`ATTACHMENT_CHUNK_BYTES`] each, in order; false if the worker's connection is gone.
fn send_files(tx: &mpsc::UnboundedSender<GatewayToWorker>, turn_id: u64, files: &rules::TurnFiles) -> bool {
    use base64::Engine as _;
    for file in files.iter() {
        for (i, chunk) in file.bytes.chunks(ATTACHMENT_CHUNK_BYTES).enumerate() {
            let chunk = GatewayToWorker::AttachmentChunk {
                turn_id,
                inbox_id: file.inbox_id,
                offset: (i * ATTACHMENT_CHUNK_BYTES) as u64,
                data: base64::engine::general_purpose::STANDARD.encode(chunk),
            };
            if tx.send(chunk).is_err() {
                return false;
            }
        }
    }
    true
}

/// Whether a process exists. A process of another uid answers `EPERM`, which still means it
/// is there.
fn process_exists(pid: u32) -> bool {
    !matches!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None), Err(nix::errno::Errno::ESRCH))
}

/// Waits up to `limit` for a process to be gone; returns whether it is.
async fn exited_within(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while process_exists(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Asks the supervisor to stop one worker (only that pid: a newer worker of the same member is
/// left alone).
async fn supervisor_stop(supervisor: &std::path::Path, member_id: &str, pid: u32) {
    let stopped = match SupervisorClient::connect(supervisor).await {
        Ok(mut client) => client.stop(member_id, Some(pid)).await.map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = stopped {
        tracing::warn!(member = member_id, pid, error = %e, "could not ask the supervisor to stop a worker");
    }
}

impl Workers {
    pub fn new(settings: WorkerSettings, broker: Broker, tracker: TaskTracker, cancel: CancellationToken) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings,
                broker,
                slots: Mutex::new(HashMap::new()),
                pending: Mutex::new(HashMap::new()),
                pending_members: Mutex::new(HashMap::new()),
                next_turn_id: AtomicU64::new(1),
                knowledge: std::sync::OnceLock::new(),
                tracker,
                cancel,
            }),
        }
    }

    /// Lets workers search the household's knowledge (once; later calls are ignored).
    pub fn set_knowledge(&self, knowledge: Knowledge) {
        let _ = self.inner.knowledge.set(knowledge);
    }

    pub fn next_turn_id(&self) -> u64 {
        self.inner.next_turn_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn running(&self) -> Vec<(String, u32)> {
        self.inner.slots.lock().iter().map(|(m, s)| (m.clone(), s.pid)).collect()
    }

    pub fn pid(&self, member_id: &str) -> Option<u32> {
        self.inner.slots.lock().get(member_id).map(|s| s.pid)
    }

    pub fn level(&self) -> IsolationLevel {
        self.inner.settings.level
    }

    /// The supervisor socket when `hearth supervisor` starts this gateway's workers.
    pub fn supervisor(&self) -> Option<&std::path::Path> {
        self.supervised().then(|| self.inner.settings.supervisor.as_deref()).flatten()
    }

    fn supervised(&self) -> bool {
        self.inner.settings.supervisor.is_some() && self.inner.settings.level != IsolationLevel::Process
    }

    /// Accepts account-level workers' connections and hands each to the spawn waiting for its
    /// uid. A connection from any other uid is dropped: the kernel's word on who is calling is
    /// the only identity a worker has.
    /// The listener is shared so that the accept loop can be started again after a panic.
    pub async fn serve_socket(self, listener: Arc<UnixListener>) {
        loop {
            let accepted = tokio::select! {
                _ = self.inner.cancel.cancelled() => return,
                a = listener.accept() => a,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "worker socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let cred = match stream.peer_cred() {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "could not identify a worker connection; dropped");
                    continue;
                }
            };
            let waiting = self.inner.pending.lock().remove(&cred.uid());
            if let Some(tx) = waiting {
                let _ = tx.send((stream, cred.pid()));
                continue;
            }
            let (uid, pid) = (cred.uid(), cred.pid());
            let tx = match self.pending_member_for(uid).await {
                Some(tx) => tx,
                None => {
                    tracing::warn!(uid, pid = ?pid, "dropped a worker connection from a uid no member's worker was started as");
                    continue;
                }
            };
            let _ = tx.send((stream, uid, pid));
        }
    }

    /// The supervised start waiting for a connection from `uid`: the member whose account the
    /// account database says `uid` is.
    async fn pending_member_for(&self, uid: u32) -> Option<oneshot::Sender<Connection>> {
        if self.inner.pending_members.lock().is_empty() {
            return None;
        }
        let name = tokio::task::spawn_blocking(move || {
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok().flatten().map(|u| u.name)
        })
        .await
        .ok()
        .flatten()?;
        let member = accounts::member_id_of(&name)?;
        self.inner.pending_members.lock().remove(member)
    }

    /// Runs one turn on the member's worker, starting it if needed. `rules` are what the gateway
    /// knew about the member as the turn started (`rules.rs`).
    pub async fn run_turn(&self, member_id: &str, turn: Turn, rules: TurnRules) -> Result<Done, WorkerError> {
        if self.inner.cancel.is_cancelled() {
            return Err(WorkerError::ShuttingDown);
        }
        let files = rules.files.clone();
        let (done_tx, done_rx) = oneshot::channel();
        let running = RunningTurn {
            turn_id: turn.turn_id,
            chat_id: turn.chat_id,
            done: done_tx,
            rules,
            allowance: Allowance::new(turn.kind),
        };
        let (tx, generation) = {
            let mut pending = Some(running);
            loop {
                let found = {
                    let slots = self.inner.slots.lock();
                    slots.get(member_id).map(|s| {
                        *s.turn.lock() = pending.take();
                        *s.last_used.lock() = Instant::now();
                        (s.to_worker.clone(), s.generation)
                    })
                };
                if let Some(found) = found {
                    break found;
                }
                self.start(member_id).await?;
            }
        };
        // The turn's files first, in chunks under the frame cap, then the turn that names them.
        if !send_files(&tx, turn.turn_id, &files) || tx.send(GatewayToWorker::Turn(turn)).is_err() {
            return Err(WorkerError::Crashed);
        }
        let limit = self.inner.settings.turn_timeout;
        tokio::select! {
            r = done_rx => r.map_err(|_| WorkerError::Crashed),
            _ = tokio::time::sleep(limit) => {
                tracing::warn!(member = member_id, "turn timed out; stopping the worker");
                self.kill(member_id, generation);
                Err(WorkerError::TimedOut(limit))
            }
            _ = self.inner.cancel.cancelled() => Err(WorkerError::ShuttingDown),
        }
    }

    /// Stops a member's worker now (member removed, or a stuck turn).
    pub fn stop(&self, member_id: &str) {
        if let Some(slot) = self.inner.slots.lock().remove(member_id) {
            let _ = slot.to_worker.send(GatewayToWorker::Shutdown);
        }
    }

    /// Stops a member's worker and waits until its process is gone (up to `grace`, then it is
    /// killed): an OS account cannot be deleted while a process runs as it.
    pub async fn stop_and_wait(&self, member_id: &str, grace: Duration) {
        let Some(slot) = self.inner.slots.lock().remove(member_id) else { return };
        let _ = slot.to_worker.send(GatewayToWorker::Shutdown);
        let pid = slot.pid;
        drop(slot);
        if exited_within(pid, grace).await {
            return;
        }
        match self.supervisor() {
            // Not our child: the supervisor signals its process group and waits for it.
            Some(supervisor) => supervisor_stop(supervisor, member_id, pid).await,
            None => {
                // Its own process group: take anything it started with it.
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
                exited_within(pid, Duration::from_secs(2)).await;
            }
        }
    }

    fn kill(&self, member_id: &str, generation: u64) {
        let mut slots = self.inner.slots.lock();
        if slots.get(member_id).is_some_and(|s| s.generation == generation) {
            // Dropping the sender ends the I/O task, which kills the child (kill_on_drop) or has
            // the supervisor stop it.
            slots.remove(member_id);
        }
    }

    async fn start(&self, member_id: &str) -> Result<(), WorkerError> {
        if let Some(supervisor) = self.supervisor() {
            let supervisor = supervisor.to_owned();
            return self.start_supervised(member_id, supervisor).await;
        }
        let s = &self.inner.settings;
        let spawn_err = |e: hearth_isolation::IsolationError| WorkerError::Spawn(e.to_string());
        let account = match s.level {
            IsolationLevel::Process => None,
            IsolationLevel::Account | IsolationLevel::AccountSandbox => {
                let (id, household) = (member_id.to_owned(), s.data_dir.clone());
                let acc = tokio::task::spawn_blocking(move || accounts::ensure_account_in(&id, &household))
                    .await
                    .map_err(|e| WorkerError::Spawn(e.to_string()))?
                    .map_err(spawn_err)?;
                Some(acc)
            }
        };
        let member_dir =
            hearth_isolation::dirs::prepare_member_dir(&s.data_dir, member_id, account.as_ref()).map_err(spawn_err)?;
        let sandbox = match s.level {
            IsolationLevel::AccountSandbox => Some(Arc::new(
                SandboxPlan::prepare(&member_dir, &s.exe).map_err(|e| WorkerError::Spawn(format!("sandbox: {e}")))?,
            )),
            _ => None,
        };
        let link = match (&account, &s.socket) {
            (Some(_), Some(path)) => WorkerLink::Connect(path.clone()),
            _ => WorkerLink::SocketPair,
        };
        let waiting = account.as_ref().map(|acc| {
            let (tx, rx) = oneshot::channel();
            self.inner.pending.lock().insert(acc.uid, tx);
            (acc.clone(), rx)
        });
        let cmd = WorkerCommand {
            exe: s.exe.clone(),
            args: s.args.clone(),
            member_id: member_id.to_owned(),
            member_dir,
            account: account.clone(),
            sandbox,
            link,
        };
        let mut spawned = match hearth_isolation::spawn_worker(&cmd) {
            Ok(w) => w,
            Err(e) => {
                if let Some(acc) = &account {
                    self.inner.pending.lock().remove(&acc.uid);
                }
                return Err(spawn_err(e));
            }
        };
        let mut stream = match (spawned.stream.take(), waiting) {
            (Some(stream), _) => stream,
            (None, Some((acc, rx))) => connected(&mut spawned, &acc, rx, &self.inner.pending).await?,
            (None, None) => return Err(WorkerError::Spawn("the worker was started without a socket".into())),
        };
        handshake(&mut stream, member_id).await?;
        tracing::info!(member = member_id, pid = spawned.pid, level = spawned.level.as_str(), "worker started");
        self.install(member_id, spawned.pid, stream, WorkerProcess::Child(spawned.child));
        Ok(())
    }

    /// Asks `hearth supervisor` to start the member's worker, then waits for it to connect and
    /// checks the kernel's word on who connected against what the supervisor started.
    async fn start_supervised(&self, member_id: &str, supervisor: PathBuf) -> Result<(), WorkerError> {
        let s = &self.inner.settings;
        let socket = s.socket.clone().ok_or_else(|| WorkerError::Spawn("there is no worker socket".into()))?;
        let args = s
            .args
            .iter()
            .map(|a| a.to_str().map(str::to_owned))
            .collect::<Option<Vec<String>>>()
            .ok_or_else(|| WorkerError::Spawn("the worker's arguments are not valid UTF-8".into()))?;
        let request = SpawnRequest {
            member_id: member_id.to_owned(),
            data_dir: s.data_dir.clone(),
            exe: s.exe.clone(),
            args,
            sandbox: s.level == IsolationLevel::AccountSandbox,
            gateway_socket: socket,
        };
        // Waiting before asking: the worker may connect before the supervisor's reply arrives.
        let (tx, rx) = oneshot::channel();
        self.inner.pending_members.lock().insert(member_id.to_owned(), tx);
        let forget = || {
            self.inner.pending_members.lock().remove(member_id);
        };
        let started = async { SupervisorClient::connect(&supervisor).await?.spawn(request).await }.await;
        let spawned = match started {
            Ok(spawned) => spawned,
            Err(e) => {
                forget();
                return Err(WorkerError::Spawn(e.to_string()));
            }
        };
        let ready = async {
            if spawned.level != s.level {
                return Err(WorkerError::Spawn(format!(
                    "the supervisor started the worker at level \"{}\", not \"{}\"",
                    spawned.level.as_str(),
                    s.level.as_str()
                )));
            }
            let (mut stream, uid, pid) = tokio::select! {
                r = tokio::time::timeout(Duration::from_secs(15), rx) => match r {
                    Ok(Ok(connection)) => connection,
                    _ => return Err(WorkerError::Spawn("the worker did not connect within 15 seconds".into())),
                },
                () = async { while process_exists(spawned.pid) { tokio::time::sleep(Duration::from_millis(50)).await } } => {
                    return Err(WorkerError::Spawn("the worker exited before connecting".into()));
                }
            };
            if uid != spawned.uid || pid.is_some_and(|p| p as u32 != spawned.pid) {
                return Err(WorkerError::Spawn(format!(
                    "a process connected as uid {uid} (pid {pid:?}), but the supervisor started pid {} as uid {}",
                    spawned.pid, spawned.uid
                )));
            }
            handshake(&mut stream, member_id).await?;
            Ok(stream)
        }
        .await;
        let stream = match ready {
            Ok(stream) => stream,
            Err(e) => {
                forget();
                supervisor_stop(&supervisor, member_id, spawned.pid).await;
                return Err(e);
            }
        };
        tracing::info!(member = member_id, pid = spawned.pid, uid = spawned.uid, level = spawned.level.as_str(), "worker started by the supervisor");
        self.install(member_id, spawned.pid, stream, WorkerProcess::Supervised { supervisor });
        Ok(())
    }

    /// Makes a connected, greeted worker the member's and starts its I/O task.
    fn install(&self, member_id: &str, pid: u32, stream: UnixStream, process: WorkerProcess) {
        let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
        let (to_worker, from_gateway) = mpsc::unbounded_channel();
        let slot = Slot {
            generation,
            pid,
            to_worker,
            turn: Arc::new(Mutex::new(None)),
            last_used: Arc::new(Mutex::new(Instant::now())),
        };
        let io = WorkerIo {
            member_id: member_id.to_owned(),
            generation,
            turn: slot.turn.clone(),
            last_used: slot.last_used.clone(),
            workers: self.clone(),
        };
        self.inner.slots.lock().insert(member_id.to_owned(), slot);
        self.inner.tracker.spawn(io.run_contained(process, stream, pid, from_gateway));
    }

    /// Drops the member's slot if it is still this generation's (a newer worker is left alone).
    fn forget(&self, member_id: &str, generation: u64) {
        let mut slots = self.inner.slots.lock();
        if slots.get(member_id).is_some_and(|s| s.generation == generation) {
            slots.remove(member_id);
        }
    }

    /// Asks every worker to exit (gateway shutdown).
    pub fn shutdown_all(&self) {
        let slots: Vec<Slot> = self.inner.slots.lock().drain().map(|(_, s)| s).collect();
        for s in slots {
            let _ = s.to_worker.send(GatewayToWorker::Shutdown);
        }
    }
}

/// Waits for an account-level worker to connect, and checks the kernel's word on who it is:
/// the member's uid (the accept loop only hands over that uid) and the very process spawned.
async fn connected(
    spawned: &mut SpawnedWorker,
    account: &Account,
    rx: oneshot::Receiver<Connected>,
    pending: &Mutex<HashMap<u32, oneshot::Sender<Connected>>>,
) -> Result<UnixStream, WorkerError> {
    let got = tokio::select! {
        r = tokio::time::timeout(Duration::from_secs(15), rx) => r,
        status = spawned.child.wait() => {
            pending.lock().remove(&account.uid);
            return Err(WorkerError::Spawn(format!("the worker exited before connecting ({status:?})")));
        }
    };
    let (stream, pid) = match got {
        Ok(Ok(v)) => v,
        _ => {
            pending.lock().remove(&account.uid);
            return Err(WorkerError::Spawn("the worker did not connect within 15 seconds".into()));
        }
    };
    if pid.is_some_and(|p| p as u32 != spawned.pid) {
        return Err(WorkerError::Spawn(format!(
            "a process of {} connected, but not the worker just started (pid {pid:?}, expected {})",
            account.name, spawned.pid
        )));
    }
    Ok(stream)
}

async fn handshake(stream: &mut UnixStream, member_id: &str) -> Result<(), WorkerError> {
    let hello = tokio::time::timeout(Duration::from_secs(15), frame::read_frame::<_, WorkerToGateway>(stream))
        .await
        .map_err(|_| WorkerError::Spawn("the worker did not say hello within 15 seconds".into()))?
        .map_err(|e| WorkerError::Spawn(format!("the worker exited before saying hello ({e})")))?;
    match hello {
        WorkerToGateway::Hello { version, claimed_member } if version == PROTOCOL_VERSION => {
            if claimed_member.as_deref().is_some_and(|c| c != member_id) {
                tracing::warn!(member = member_id, claimed = ?claimed_member, "a worker claimed to be another member; it is bound to the member its socket belongs to");
            }
        }
        WorkerToGateway::Hello { version, .. } => {
            return Err(WorkerError::Protocol(format!("worker speaks version {version}, gateway {PROTOCOL_VERSION}")));
        }
        other => return Err(WorkerError::Protocol(format!("expected hello, got {other:?}"))),
    }
    let welcome = GatewayToWorker::Welcome { version: PROTOCOL_VERSION, member_id: member_id.to_owned() };
    frame::write_frame(stream, &welcome).await.map_err(|e| WorkerError::Spawn(e.to_string()))
}

