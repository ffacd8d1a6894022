//! One worker's connection, in a task of its own that owns the socket: frames from the worker
//! are trusted only as far as the socket they arrive on. A worker can ask for completions and
//! searches during its own member's running turn, within what the turn's rules grant
//! ([`super::rules`]), and finish that turn — nothing else.
//!
//! A panic in this task is caught at its boundary ([`WorkerIo::run_contained`]): the worker is
//! forgotten and stopped, the running turn takes the crash path (the member reads a kind
//! sentence), and the member's next turn starts a fresh worker.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use hearth_proto::frame::{self, FrameError};
use hearth_proto::llm::{BrokerError, BrokerErrorKind};
use hearth_proto::worker::{GatewayToWorker, ReminderDue, TurnOutcome, WORKER_FRAME_MAX, WorkerToGateway};
use parking_lot::Mutex;
use tokio::net::UnixStream;
use tokio::sync::mpsc;

use super::rules::{self, Ask};
use super::{RunningTurn, WorkerProcess, Workers, exited_within, process_exists, supervisor_stop};

/// Why an I/O task ended when the gateway dropped the worker's slot (a stuck turn): the worker
/// is stopped at once, with no grace.
const STOPPED_BY_GATEWAY: &str = "was stopped by the gateway";

pub(super) struct WorkerIo {
    pub(super) member_id: String,
    pub(super) generation: u64,
    pub(super) turn: Arc<Mutex<Option<RunningTurn>>>,
    pub(super) last_used: Arc<Mutex<Instant>>,
    pub(super) workers: Workers,
}

impl WorkerIo {
    /// Runs the connection until the worker goes; a panic in it is caught here, at the task's
    /// boundary. The worker is forgotten (a new one starts with the member's next turn), the turn
    /// in flight takes the crash path, and a worker the supervisor started is stopped through it
    /// (our own child was killed when its handle dropped: `kill_on_drop`). Not counted towards the
    /// gateway's restart limit: one member's worker must not be able to stop everyone's gateway.
    pub(super) async fn run_contained(
        self,
        process: WorkerProcess,
        stream: UnixStream,
        pid: u32,
        from_gateway: mpsc::UnboundedReceiver<GatewayToWorker>,
    ) {
        let (member_id, generation, turn, workers) =
            (self.member_id.clone(), self.generation, self.turn.clone(), self.workers.clone());
        let supervisor = match &process {
            WorkerProcess::Supervised { supervisor } => Some(supervisor.clone()),
            WorkerProcess::Child(_) => None,
        };
        let ran = AssertUnwindSafe(self.run(process, stream, pid, from_gateway)).catch_unwind().await;
        let Err(panic) = ran else { return };
        tracing::error!(
            member = %member_id,
            pid,
            panic = %crate::keeper::panic_message(&*panic),
            "a worker connection panicked; the worker is stopped and the member's next turn starts a fresh one"
        );
        workers.forget(&member_id, generation);
        turn.lock().take();
        if let Some(supervisor) = supervisor
            && process_exists(pid)
        {
            supervisor_stop(&supervisor, &member_id, pid).await;
        }
    }

    async fn run(
        self,
        process: WorkerProcess,
        stream: UnixStream,
        pid: u32,
        mut from_gateway: mpsc::UnboundedReceiver<GatewayToWorker>,
    ) {
        let (mut rd, mut wr) = stream.into_split();
        let (completions_tx, mut completions) = mpsc::unbounded_channel::<GatewayToWorker>();
        let idle = self.workers.inner.settings.idle;
        let reader = async {
            loop {
                match frame::read_frame_limited::<_, WorkerToGateway>(&mut rd, WORKER_FRAME_MAX).await {
                    Ok((msg, size)) => self.on_frame(msg, size, &completions_tx),
                    Err(FrameError::Closed) => return "closed its socket".to_owned(),
                    Err(e @ FrameError::OverLimit { .. }) => {
                        let why = format!("sent a frame over the limit ({e}); disconnected");
                        tracing::warn!(member = %self.member_id, "worker {why}");
                        self.audit(why.clone());
                        return why;
                    }
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
                    None => break STOPPED_BY_GATEWAY.to_owned(),
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
        self.turn.lock().take();
        drop(wr);
        // Give a politely-asked worker a moment to flush its files, then make sure it is gone.
        match process {
            WorkerProcess::Child(mut child) => {
                let status = match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
                    Ok(s) => s.ok(),
                    Err(_) => {
                        let _ = child.kill().await;
                        child.wait().await.ok()
                    }
                };
                tracing::info!(member = %self.member_id, pid, ?status, "worker {why}");
            }
            WorkerProcess::Supervised { supervisor } => {
                let polite = why != STOPPED_BY_GATEWAY;
                if !(polite && exited_within(pid, Duration::from_secs(5)).await) && process_exists(pid) {
                    supervisor_stop(&supervisor, &self.member_id, pid).await;
                }
                tracing::info!(member = %self.member_id, pid, "worker {why}");
            }
        }
    }

    /// True when no turn runs and none has for `idle`; then the slot is removed under the lock,
    /// so a turn arriving at this instant starts a fresh worker instead of racing this one.
    fn idle_long_enough(&self, idle: Duration) -> bool {
        let mut slots = self.workers.inner.slots.lock();
        let mine = slots.get(&self.member_id).is_some_and(|s| s.generation == self.generation);
        if !mine {
            return true;
        }
        let busy = self.turn.lock().is_some();
        if busy || self.last_used.lock().elapsed() < idle {
            return false;
        }
        slots.remove(&self.member_id);
        true
    }

    fn forget(&self) {
        self.workers.forget(&self.member_id, self.generation);
    }

    fn on_frame(&self, msg: WorkerToGateway, size: usize, completions: &mpsc::UnboundedSender<GatewayToWorker>) {
        *self.last_used.lock() = Instant::now();
        let max = msg.max_bytes();
        let oversize =
            (size > max).then(|| format!("a {} frame of {size} bytes is over its {max}-byte limit", msg.kind_name()));
        match msg {
            WorkerToGateway::Complete { request_id, turn_id, request } => {
                let chat_id = match self.admit(turn_id, Ask::Completion, oversize) {
                    Ok(chat_id) => chat_id,
                    Err(error) => {
                        let _ = completions
                            .send(GatewayToWorker::CompletionResult {
                                request_id,
                                result: Err(error.completion()),
                                stopped: None,
                            });
                        return;
                    }
                };
                let broker = self.workers.inner.broker.clone();
                let member = self.member_id.clone();
                let tx = completions.clone();
                let turn = self.turn.clone();
                let (files, draft, provider_wait) = self.files_and_draft(turn_id);
                self.workers.inner.tracker.spawn(async move {
                    // Photos named by row become bytes here, after the checks and before the
                    // broker (`rules::TurnFiles::resolve_images`).
                    let mut request = request;
                    // Only a step of the answer is shown as it is written (`rules.rs`, Drafts).
                    let draft = draft.filter(|_| !request.tools.is_empty());
                    let call = async {
                        files.resolve_images(&mut request)?;
                        let Some(draft) = &draft else { return broker.complete(&member, chat_id, request).await };
                        let (stop, mut watch) = (draft.stop_signal(), |text: &str| draft.writing(text));
                        let completion =
                            broker.complete_watching(&member, chat_id, request, &mut watch, stop.as_ref()).await?;
                        if !completion.tool_calls.is_empty() {
                            let names: Vec<String> = completion.tool_calls.iter().map(|c| c.name.clone()).collect();
                            draft.using_tools(&names);
                        }
                        Ok(completion)
                    };
                    // The wait on the provider costs the turn no slot; the worker goes on only once
                    // its turn holds one again (`core/lanes.rs`).
                    if let Some(wait) = &provider_wait {
                        wait(None);
                    }
                    // A panic in the call is this request's: the worker gets an error, not silence.
                    let result = match AssertUnwindSafe(call).catch_unwind().await {
                        Ok(result) => result,
                        Err(panic) => {
                            let panic = crate::keeper::panic_message(&*panic);
                            tracing::error!(member = %member, turn_id, %panic, "a completion panicked; the worker is told it failed");
                            Err(BrokerError { kind: BrokerErrorKind::ProviderError, message: "the gateway failed during this call".into() })
                        }
                    };
                    if let Some(wait) = &provider_wait {
                        let (go, back) = tokio::sync::oneshot::channel();
                        wait(Some(go));
                        // An error: the turn ended or the gateway stops; nothing to wait for.
                        let _ = back.await;
                    }
                    // Stopped by the member: the worker keeps what they were shown as the answer.
                    let stopped = match (&result, &draft) {
                        (Err(_), Some(draft)) => draft.stopped_text(),
                        _ => None,
                    };
                    // Before the answer goes out, so the worker's next request is not "busy".
                    finished(&turn, turn_id, Ask::Completion);
                    let _ = tx.send(GatewayToWorker::CompletionResult { request_id, result, stopped });
                });
            }
            WorkerToGateway::KbSearch { request_id, turn_id, query } => {
                let admitted = self.admit(turn_id, Ask::Search, oversize);
                let knowledge = self.workers.inner.knowledge.get().cloned();
                let tx = completions.clone();
                let member = self.member_id.clone();
                let turn = self.turn.clone();
                self.workers.inner.tracker.spawn(async move {
                    let admitted_one = admitted.is_ok();
                    let result = match (admitted, knowledge) {
                        (Err(error), _) => Err(error.search()),
                        (Ok(_), None) => Err("the household knowledge is not available".to_owned()),
                        (Ok(_), Some(kb)) => match AssertUnwindSafe(kb.search(query)).catch_unwind().await {
                            Ok(result) => result,
                            Err(_) => Err("searching the household knowledge failed".to_owned()),
                        },
                    };
                    if admitted_one {
                        finished(&turn, turn_id, Ask::Search);
                    }
                    // Counts only: the query and the hits are the household's words.
                    tracing::info!(member = %member, turn_id, hits = result.as_ref().map_or(0, Vec::len), "knowledge searched");
                    let _ = tx.send(GatewayToWorker::KbResults { request_id, result });
                });
            }
            WorkerToGateway::TurnDone { turn_id, outcome, reminders } => {
                let Some(t) = ({
                    let mut turn = self.turn.lock();
                    if turn.as_ref().is_some_and(|t| t.turn_id == turn_id) { turn.take() } else { None }
                }) else {
                    tracing::warn!(member = %self.member_id, turn_id, "worker finished a turn that is not running");
                    return;
                };
                self.finish(t, outcome, reminders);
            }
            WorkerToGateway::Hello { .. } => {
                tracing::warn!(member = %self.member_id, "worker said hello twice; ignoring");
            }
        }
    }

    /// The files, the draft and the provider-wait hook of the running turn `turn_id` (none if it
    /// is not running).
    fn files_and_draft(&self, turn_id: u64) -> TurnHooks {
        let turn = self.turn.lock();
        let Some(t) = turn.as_ref().filter(|t| t.turn_id == turn_id) else { return Default::default() };
        (t.rules.files.clone(), t.rules.draft.clone(), t.rules.provider_wait.clone())
    }

    /// Whether the running turn `turn_id` may have one more `ask` now (`rules.rs`); its chat
    /// if so. A refusal is counted, and the turn's first is warned about and audited.
    fn admit(&self, turn_id: u64, ask: Ask, oversize: Option<String>) -> Result<i64, Denied> {
        // The member's state is read before the turn's lock is taken: the two locks never nest.
        let rules = {
            let turn = self.turn.lock();
            turn.as_ref().filter(|t| t.turn_id == turn_id).map(|t| t.rules.clone())
        };
        let Some(rules) = rules else { return Err(Denied::NoTurn) };
        let paused = (rules.paused_now)();
        let mut turn = self.turn.lock();
        let Some(t) = turn.as_mut().filter(|t| t.turn_id == turn_id) else { return Err(Denied::NoTurn) };
        let denied = match oversize {
            Some(why) => Denied::TooLarge(why),
            None => match t.allowance.admit(ask, rules.refused, paused) {
                Ok(()) => return Ok(t.chat_id),
                Err(why) => Denied::Refused(why),
            },
        };
        let why = match &denied {
            Denied::Refused(r) => rules::describe(*r, ask),
            Denied::TooLarge(why) => why.clone(),
            Denied::NoTurn => unreachable!("returned above"),
        };
        if t.allowance.note_refusal() {
            let kind = t.allowance.kind().name();
            tracing::warn!(member = %self.member_id, turn_id, kind, "refused a worker's {}: {why}", ask.name());
            self.audit(format!("turn {turn_id} ({kind}): {} refused: {why}", ask.name()));
        }
        Err(denied)
    }

    /// Hands a finished turn's outcome over, after checking what the worker finished it with.
    fn finish(&self, t: RunningTurn, outcome: TurnOutcome, reminders: Option<Vec<ReminderDue>>) {
        let (member, turn_id, kind) = (&self.member_id, t.turn_id, t.allowance.kind());
        let now = t.rules.clock.now().timestamp();
        let mut refusals = t.allowance.refusals;
        let reminders = match reminders.map(|list| crate::household::reminders::check_schedule(kind, list, now)) {
            None => None,
            Some(Ok(checked)) => {
                if checked.dropped > 0 {
                    tracing::warn!(member = %member, turn_id, dropped = checked.dropped, kept = checked.kept.len(), "dropped reminder instants too far in the past or future");
                }
                Some(checked.kept)
            }
            Some(Err(why)) => {
                tracing::warn!(member = %member, turn_id, kind = kind.name(), "refused a worker's reminder schedule; keeping the one it had: {why}");
                if refusals == 0 {
                    self.audit(format!("turn {turn_id} ({}): reminder schedule refused: {why}", kind.name()));
                }
                refusals += 1;
                None
            }
        };
        let (outcome, cut) = rules::bound_outcome(outcome);
        if cut {
            tracing::warn!(member = %member, turn_id, "a worker's reply was over {} bytes; cut", hearth_proto::worker::MAX_REPLY_BYTES);
        }
        if refusals > 1 {
            tracing::warn!(member = %member, turn_id, kind = kind.name(), refusals, "the turn ended; requests refused in it");
        }
        let _ = t.done.send((outcome, reminders));
    }

    /// One `worker_refused` row in the audit log, written off this task.
    fn audit(&self, detail: String) {
        let store = self.workers.inner.broker.store().clone();
        let member = self.member_id.clone();
        self.workers.inner.tracker.spawn(async move {
            let written =
                store.call(move |c| crate::store::audit(c, "gateway", "worker_refused", Some(&member), &detail)).await;
            if let Err(e) = written {
                tracing::error!(error = %e, "could not audit a refused worker request");
            }
        });
    }
}

/// What a completion of a running turn uses: its files, its draft, its provider-wait hook.
type TurnHooks = (rules::TurnFiles, Option<Arc<dyn rules::DraftSink>>, Option<rules::ProviderWait>);

/// Marks the request admitted last for `ask` in turn `turn_id` answered, if that turn still runs.
fn finished(turn: &Mutex<Option<RunningTurn>>, turn_id: u64, ask: Ask) {
    if let Some(t) = turn.lock().as_mut().filter(|t| t.turn_id == turn_id) {
        t.allowance.finished(ask);
    }
}

/// Why a worker's request gets no answer from the broker or the index.
enum Denied {
    /// No turn with that id runs on this worker.
    NoTurn,
    /// Over its frame kind's bound.
    TooLarge(String),
    Refused(hearth_proto::llm::Refusal),
}

impl Denied {
    fn completion(self) -> BrokerError {
        match self {
            Denied::NoTurn => {
                BrokerError { kind: BrokerErrorKind::BadRequest, message: "no such turn is running".into() }
            }
            Denied::TooLarge(why) => BrokerError { kind: BrokerErrorKind::BadRequest, message: why },
            Denied::Refused(why) => rules::refused_completion(why),
        }
    }

    fn search(self) -> String {
        match self {
            Denied::NoTurn => "no such turn is running".to_owned(),
            Denied::TooLarge(_) => "the search is too long: search for a few words".to_owned(),
            Denied::Refused(why) => rules::refused_search(why),
        }
    }
}
