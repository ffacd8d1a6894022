//! The gateway's side of member workers: at most one process per member, started on demand
//! through `hearth-isolation`, asked to exit after it has been idle a while.
//!
//! Each worker gets an I/O task that owns its socket. Frames from the worker are trusted only as
//! far as the socket they arrive on: a worker can ask for completions during its own member's
//! running turn, and finish that turn — nothing else. The reply goes to the chat the turn came
//! from, chosen by the gateway.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_isolation::{SpawnedWorker, WorkerCommand};
use hearth_proto::frame::{self, FrameError};
use hearth_proto::worker::{GatewayToWorker, Turn, TurnOutcome, WorkerToGateway};
use hearth_proto::PROTOCOL_VERSION;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::Broker;

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
}

#[derive(Clone)]
pub struct Workers {
    inner: Arc<Inner>,
}

struct Inner {
    settings: WorkerSettings,
    broker: Broker,
    // std Mutex: held only to look up or change the map, never across an await.
    slots: Mutex<HashMap<String, Slot>>,
    next_turn_id: AtomicU64,
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
    done: oneshot::Sender<TurnOutcome>,
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

impl Workers {
    pub fn new(settings: WorkerSettings, broker: Broker, tracker: TaskTracker, cancel: CancellationToken) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings,
                broker,
                slots: Mutex::new(HashMap::new()),
                next_turn_id: AtomicU64::new(1),
                tracker,
                cancel,
            }),
        }
    }

    pub fn next_turn_id(&self) -> u64 {
        self.inner.next_turn_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn running(&self) -> Vec<(String, u32)> {
        self.inner.slots.lock().unwrap().iter().map(|(m, s)| (m.clone(), s.pid)).collect()
    }

    pub fn pid(&self, member_id: &str) -> Option<u32> {
        self.inner.slots.lock().unwrap().get(member_id).map(|s| s.pid)
    }

    /// Runs one turn on the member's worker, starting it if needed.
    pub async fn run_turn(&self, member_id: &str, turn: Turn) -> Result<TurnOutcome, WorkerError> {
        if self.inner.cancel.is_cancelled() {
            return Err(WorkerError::ShuttingDown);
        }
        let (done_tx, done_rx) = oneshot::channel();
        let running = RunningTurn { turn_id: turn.turn_id, chat_id: turn.chat_id, done: done_tx };
        let (tx, generation) = {
            let mut pending = Some(running);
            loop {
                let found = {
                    let slots = self.inner.slots.lock().unwrap();
                    slots.get(member_id).map(|s| {
                        *s.turn.lock().unwrap() = pending.take();
                        *s.last_used.lock().unwrap() = Instant::now();
                        (s.to_worker.clone(), s.generation)
                    })
                };
                if let Some(found) = found {
                    break found;
                }
                self.start(member_id).await?;
            }
        };
        if tx.send(GatewayToWorker::Turn(turn)).is_err() {
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
        if let Some(slot) = self.inner.slots.lock().unwrap().remove(member_id) {
            let _ = slot.to_worker.send(GatewayToWorker::Shutdown);
        }
    }

    fn kill(&self, member_id: &str, generation: u64) {
        let mut slots = self.inner.slots.lock().unwrap();
        if slots.get(member_id).is_some_and(|s| s.generation == generation) {
            // Dropping the sender ends the I/O task, which kills the child (kill_on_drop).
            slots.remove(member_id);
        }
    }

    async fn start(&self, member_id: &str) -> Result<(), WorkerError> {
        let s = &self.inner.settings;
        let member_dir = hearth_isolation::dirs::prepare_member_dir(&s.data_dir, member_id)
            .map_err(|e| WorkerError::Spawn(e.to_string()))?;
        let cmd = WorkerCommand { exe: s.exe.clone(), args: s.args.clone(), member_id: member_id.to_owned(), member_dir };
        let mut spawned = hearth_isolation::spawn_worker(&cmd).map_err(|e| WorkerError::Spawn(e.to_string()))?;
        handshake(&mut spawned, member_id).await?;
        tracing::info!(member = member_id, pid = spawned.pid, level = spawned.level.as_str(), "worker started");

        let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
        let (to_worker, from_gateway) = mpsc::unbounded_channel();
        let slot = Slot {
            generation,
            pid: spawned.pid,
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
        self.inner.slots.lock().unwrap().insert(member_id.to_owned(), slot);
        self.inner.tracker.spawn(io.run(spawned, from_gateway));
        Ok(())
    }

    /// Asks every worker to exit (gateway shutdown).
    pub fn shutdown_all(&self) {
        let slots: Vec<Slot> = self.inner.slots.lock().unwrap().drain().map(|(_, s)| s).collect();
        for s in slots {
            let _ = s.to_worker.send(GatewayToWorker::Shutdown);
        }
    }
}

async fn handshake(w: &mut SpawnedWorker, member_id: &str) -> Result<(), WorkerError> {
    let hello = tokio::time::timeout(Duration::from_secs(15), frame::read_frame::<_, WorkerToGateway>(&mut w.stream))
        .await
        .map_err(|_| WorkerError::Spawn("the worker did not say hello within 15 seconds".into()))?
        .map_err(|e| WorkerError::Spawn(format!("the worker exited before saying hello ({e})")))?;
    match hello {
        WorkerToGateway::Hello { version } if version == PROTOCOL_VERSION => {}
        WorkerToGateway::Hello { version } => {
            return Err(WorkerError::Protocol(format!("worker speaks version {version}, gateway {PROTOCOL_VERSION}")));
        }
        other => return Err(WorkerError::Protocol(format!("expected hello, got {other:?}"))),
    }
    let welcome = GatewayToWorker::Welcome { version: PROTOCOL_VERSION, member_id: member_id.to_owned() };
    frame::write_frame(&mut w.stream, &welcome).await.map_err(|e| WorkerError::Spawn(e.to_string()))
}

struct WorkerIo {
    member_id: String,
    generation: u64,
    turn: Arc<Mutex<Option<RunningTurn>>>,
    last_used: Arc<Mutex<Instant>>,
    workers: Workers,
}

impl WorkerIo {
    async fn run(self, spawned: SpawnedWorker, mut from_gateway: mpsc::UnboundedReceiver<GatewayToWorker>) {
        let SpawnedWorker { mut child, stream, pid, .. } = spawned;
        let (mut rd, mut wr) = stream.into_split();
        let (completions_tx, mut completions) = mpsc::unbounded_channel::<GatewayToWorker>();
        let idle = self.workers.inner.settings.idle;
        let reader = async {
            loop {
                match frame::read_frame::<_, WorkerToGateway>(&mut rd).await {
                    Ok(msg) => self.on_frame(msg, &completions_tx),
                    Err(FrameError::Closed) => return "closed its socket".to_owned(),
                    Err(e) => return format!("sent a bad frame ({e})"),
                }
            }
        };
        tokio::pin!(reader);
        let why = loop {
            let idle_check = tokio::time::sleep(idle.min(Duration::from_secs(30)));
            tokio::select! {
                why = &mut reader => break why,
                msg = from_gateway.recv() => match msg {
                    Some(msg) => {
                        let shutdown = matches!(msg, GatewayToWorker::Shutdown);
                        if frame::write_frame(&mut wr, &msg).await.is_err() { break "stopped reading".to_owned(); }
                        if shutdown { break "was asked to exit".to_owned(); }
                    }
                    None => break "was stopped by the gateway".to_owned(),
                },
                Some(msg) = completions.recv() => {
                    if frame::write_frame(&mut wr, &msg).await.is_err() { break "stopped reading".to_owned(); }
                }
                _ = idle_check => {
                    if self.idle_long_enough(idle) {
                        let _ = frame::write_frame(&mut wr, &GatewayToWorker::Shutdown).await;
                        break "was idle".to_owned();
                    }
                }
            }
        };
        self.forget();
        // A turn still open gets the crash path (its sender is dropped here).
        self.turn.lock().unwrap().take();
        drop(wr);
        // Give a politely-asked worker a moment to flush its files, then make sure it is gone.
        let status = match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
            Ok(s) => s.ok(),
            Err(_) => {
                let _ = child.kill().await;
                child.wait().await.ok()
            }
        };
        tracing::info!(member = %self.member_id, pid, ?status, "worker {why}");
    }

    /// True when no turn runs and none has for `idle`; then the slot is removed under the lock,
    /// so a turn arriving at this instant starts a fresh worker instead of racing this one.
    fn idle_long_enough(&self, idle: Duration) -> bool {
        let mut slots = self.workers.inner.slots.lock().unwrap();
        let mine = slots.get(&self.member_id).is_some_and(|s| s.generation == self.generation);
        if !mine {
            return true;
        }
        let busy = self.turn.lock().unwrap().is_some();
        if busy || self.last_used.lock().unwrap().elapsed() < idle {
            return false;
        }
        slots.remove(&self.member_id);
        true
    }

    fn forget(&self) {
        let mut slots = self.workers.inner.slots.lock().unwrap();
        if slots.get(&self.member_id).is_some_and(|s| s.generation == self.generation) {
            slots.remove(&self.member_id);
        }
    }

    fn on_frame(&self, msg: WorkerToGateway, completions: &mpsc::UnboundedSender<GatewayToWorker>) {
        *self.last_used.lock().unwrap() = Instant::now();
        match msg {
            WorkerToGateway::Complete { request_id, turn_id, request } => {
                let chat_id = {
                    let turn = self.turn.lock().unwrap();
                    turn.as_ref().filter(|t| t.turn_id == turn_id).map(|t| t.chat_id)
                };
                let Some(chat_id) = chat_id else {
                    // Only during its own running turn may a worker spend.
                    let _ = completions.send(GatewayToWorker::CompletionResult {
                        request_id,
                        result: Err(hearth_proto::llm::BrokerError {
                            kind: hearth_proto::llm::BrokerErrorKind::BadRequest,
                            message: "no such turn is running".into(),
                        }),
                    });
                    return;
                };
                let broker = self.workers.inner.broker.clone();
                let member = self.member_id.clone();
                let tx = completions.clone();
                self.workers.inner.tracker.spawn(async move {
                    let result = broker.complete(&member, chat_id, request).await;
                    let _ = tx.send(GatewayToWorker::CompletionResult { request_id, result });
                });
            }
            WorkerToGateway::TurnDone { turn_id, outcome } => {
                let mut turn = self.turn.lock().unwrap();
                if turn.as_ref().is_some_and(|t| t.turn_id == turn_id) {
                    let t = turn.take().expect("checked just above");
                    let _ = t.done.send(outcome);
                } else {
                    tracing::warn!(member = %self.member_id, turn_id, "worker finished a turn that is not running");
                }
            }
            WorkerToGateway::Hello { .. } => {
                tracing::warn!(member = %self.member_id, "worker said hello twice; ignoring");
            }
        }
    }
}
