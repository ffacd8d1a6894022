//! The gateway: wires store, connectors, router, lanes, broker and workers together, and runs
//! the core loop.
//!
//! The core loop takes a closed set of inputs ([`Event`]): new inbox rows from connectors,
//! reminders that came due, and turns that finished. It routes each row, feeds the lanes, and starts whatever turns the lanes
//! hand out. Everything slow (a model call, a Telegram send) runs in tasks the loop spawns, so the
//! loop itself never waits on the network.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hearth_llm::{CallLimits, RetryPolicy};
use hearth_proto::control::{BotState, GatewayEvent, IsolationLevel, MemberStatus, ProviderKind, StatusReport};
use hearth_proto::worker::{IncomingMessage, Turn, TurnContext, TurnKind, TurnOutcome};
use teloxide::Bot;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::{self, Broker, SpendEvent};
use crate::spend::CapKind;
use crate::spend_text;
use crate::lanes::{LaneEntry, Lanes, Push};
use crate::paths::DataDir;
use crate::router::{Route, route};
use crate::secrets::{self, Secrets, SecretsBackend};
use crate::store::{self, DueReminder, InboxRow, MemberRow, Store};
use crate::telegram::{self, Backoff, PollLoop};
use crate::workers::{WorkerError, WorkerSettings, Workers};

/// Which isolation level to run workers at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationChoice {
    /// As root, or through a `hearth supervisor` that answers: an OS account per member, plus
    /// the sandbox where the kernel supports it. Otherwise "process", with a loud warning.
    #[default]
    Auto,
    Process,
    Account,
    AccountSandbox,
}

impl std::str::FromStr for IsolationChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "auto" => Ok(Self::Auto),
            "process" => Ok(Self::Process),
            "account" => Ok(Self::Account),
            "sandbox" | "account+sandbox" => Ok(Self::AccountSandbox),
            other => Err(format!("unknown isolation {other:?}: use auto, process, account or sandbox")),
        }
    }
}

/// Everything the gateway can be told at start. [`GatewayConfig::new`] gives the appliance
/// defaults; tests and the demo shorten the times.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub data_dir: PathBuf,
    /// Bot API root for every bot; `None` means Telegram itself.
    pub telegram_api_url: Option<String>,
    /// Binary and arguments that run a worker (`hearth worker`).
    pub worker_exe: PathBuf,
    pub worker_args: Vec<OsString>,
    /// Turns running at once across the household (`HEARTH_TURN_CAP`, default 64).
    pub turn_cap: usize,
    /// Messages one member may have waiting.
    pub queue_cap: usize,
    pub worker_idle: Duration,
    pub turn_timeout: Duration,
    pub poll_timeout: Duration,
    pub backoff: Backoff,
    pub llm_limits: CallLimits,
    pub llm_retry: RetryPolicy,
    /// Ask providers to stream their answers (usage is read from the stream's end).
    pub llm_stream: bool,
    /// Serve the owner-only control socket for the CLI.
    pub control_socket: bool,
    /// How often a stranger may get the "private bot" reply.
    pub stranger_reply_window: Duration,
    /// Tokens of conversation the worker may put in a prompt.
    pub context_tokens: u32,
    pub max_output_tokens: u32,
    /// How strongly members' workers are separated (`HEARTH_ISOLATION`).
    pub isolation: IsolationChoice,
    /// The `hearth supervisor` socket (`HEARTH_SUPERVISOR_SOCKET`): when the gateway is not
    /// root, member accounts are created and workers started through it. Ignored as root, where
    /// the gateway does this itself.
    pub supervisor_socket: Option<PathBuf>,
    /// Where `ProviderDetect` looks for model servers on this machine: (name, root URL). A name
    /// containing "ollama" is asked Ollama's `/api/tags`; any other the OpenAI-style `/v1/models`.
    pub local_providers: Vec<(String, String)>,
    /// "Now" for reminders and turn contexts: the system clock, or a manual one in tests.
    pub clock: crate::clock::Clock,
    /// Where bot tokens and provider keys are kept. `None`: `HEARTH_SECRETS` (`file` or
    /// `keychain`) when set, else [`SecretsBackend::platform_default`] — the Keychain on macOS,
    /// a 0600 file elsewhere. A throwaway household (the demo) sets `File`, so that it leaves
    /// nothing behind in the Keychain.
    pub secrets: Option<SecretsBackend>,
}

impl GatewayConfig {
    pub fn new(data_dir: PathBuf, worker_exe: PathBuf) -> Self {
        Self {
            data_dir,
            telegram_api_url: None,
            worker_exe,
            worker_args: vec!["worker".into()],
            // Each member has at most one turn at a time, so a household's lanes bound themselves;
            // this cap only guards very large installs. At 8 (OpenClaw's figure, and the first
            // draft of the spec) a 20-member fan-out came back in waves of 8 and 8 stalled models
            // held everyone up (BENCHMARKS.md).
            turn_cap: 64,
            queue_cap: 20,
            worker_idle: Duration::from_secs(300),
            turn_timeout: Duration::from_secs(600),
            poll_timeout: Duration::from_secs(25),
            backoff: Backoff::default(),
            llm_limits: broker::default_limits(),
            llm_retry: RetryPolicy::default(),
            llm_stream: true,
            control_socket: true,
            stranger_reply_window: Duration::from_secs(3600),
            context_tokens: 12_000,
            max_output_tokens: 1_024,
            isolation: IsolationChoice::Auto,
            supervisor_socket: None,
            local_providers: vec![
                ("Ollama".to_owned(), "http://127.0.0.1:11434".to_owned()),
                ("LM Studio".to_owned(), "http://127.0.0.1:1234".to_owned()),
            ],
            clock: crate::clock::Clock::system(),
            secrets: None,
        }
    }
}

/// A cheap-to-clone handle to a running gateway.
#[derive(Clone)]
pub struct Gateway {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: GatewayConfig,
    pub(crate) dir: DataDir,
    pub(crate) store: Store,
    pub(crate) secrets: Secrets,
    pub(crate) broker: Broker,
    pub(crate) workers: Workers,
    pub(crate) http: reqwest::Client,
    pub(crate) api_url: reqwest::Url,
    // std Mutexes below: each is held for a lookup or an update, never across an await.
    pub(crate) lanes: Mutex<Lanes<LaneItem>>,
    pub(crate) members: Mutex<HashMap<String, MemberRow>>,
    pub(crate) bots: Mutex<HashMap<String, BotHandle>>,
    /// When each member last wrote (Unix seconds), for the status; seeded from the inbox.
    pub(crate) last_activity: Mutex<HashMap<String, i64>>,
    /// When each paused member was last told so: at most one note per [`PAUSED_NOTE_EVERY`].
    pub(crate) paused_notes: Mutex<HashMap<String, Instant>>,
    /// Quiet-hour notes given and the idle reset setting (`roles.rs`).
    pub(crate) roles: crate::roles::RoleState,
    /// Caps already reported as reached (scope, cap, period), so each is reported once.
    pub(crate) caps_reached: Mutex<HashSet<(Option<String>, CapKind, String)>>,
    /// Events for subscribers (the app); sending with nobody listening is fine.
    pub(crate) notify: broadcast::Sender<GatewayEvent>,
    pub(crate) events: mpsc::UnboundedSender<Event>,
    pub(crate) inbox_tx: mpsc::UnboundedSender<Vec<InboxRow>>,
    pub(crate) cancel: CancellationToken,
    pub(crate) tracker: TaskTracker,
    /// One backup at a time, and the schedule (`backup.rs`).
    pub(crate) backups: crate::backup::Backups,
    /// Wakes the reminder schedule when a worker reported a changed list (`reminders.rs`).
    pub(crate) reminders_wake: crate::reminders::Wake,
    /// Each member's disk quota and what their folder measured (`quota.rs`).
    pub(crate) quotas: crate::quota::Quotas,
    started: Instant,
    /// Held for the gateway's lifetime: one gateway per data directory.
    _lock: File,
}

/// One member's bot as the gateway runs it.
pub(crate) struct BotHandle {
    pub(crate) bot: Bot,
    pub(crate) state: Arc<Mutex<BotState>>,
    /// Stops this bot's poll loop (member removed) — a child of the gateway's token.
    pub(crate) cancel: CancellationToken,
}

impl Drop for BotHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The closed set of inputs to the core loop.
#[derive(Debug)]
pub(crate) enum Event {
    /// Rows a connector just committed (or pending rows found at start).
    Inbox(Vec<InboxRow>),
    /// A member's turn ended, successfully or not.
    TurnFinished { member_id: String },
    /// A member was removed: forget whatever waits in their lane.
    MemberRemoved { member_id: String },
    /// A member was paused: what waits in their lane is dropped, with one note.
    MemberPaused { member_id: String },
    /// The admin changed how many turns may run at once.
    TurnCap { cap: usize },
    /// The broker crossed a threshold or refused a call for spend.
    Spend(SpendEvent),
    /// Reminder occurrences committed as due (or left pending by an earlier run).
    Reminders(Vec<DueReminder>),
}

/// An entry in a member's lane.
#[derive(Debug)]
pub(crate) struct LaneItem {
    /// The committed message; `None` for a due reminder, whose row is in `reminder_firings`
    /// (keyed by the member and the kind's id and instant), and for the silent fresh start of an
    /// idle reset (`TurnKind::NewConversation`).
    pub(crate) row: Option<InboxRow>,
    /// Where the answer goes: the message's chat, or for a reminder the member's paired chat.
    pub(crate) chat_id: i64,
    /// What the worker is asked to do: answer (collected with neighbours) or a command.
    pub(crate) kind: TurnKind,
    /// A command's words (`/forget <words>`); empty otherwise.
    pub(crate) words: String,
}

impl LaneEntry for LaneItem {
    /// Commands (`/new`, `/memory`, `/forget`, `/reminders`) and reminders are turns of their own.
    fn stands_alone(&self) -> bool {
        self.kind != TurnKind::Chat
    }
}

/// What a paused member is told, at most once per [`PAUSED_NOTE_EVERY`].
pub(crate) const PAUSED_NOTE: &str =
    "Your assistant is paused by your household's admin right now. I'll be back once they resume me.";
pub(crate) const PAUSED_NOTE_EVERY: Duration = Duration::from_secs(3600);
/// How long a reminder whose worker failed waits before it is tried again.
const REMINDER_RETRY: Duration = Duration::from_secs(60);

pub(crate) const SETTING_PROVIDER_KIND: &str = "provider.kind";
pub(crate) const SETTING_PROVIDER_URL: &str = "provider.base_url";
pub(crate) const SETTING_PROVIDER_MODEL: &str = "provider.model";

impl Gateway {
    /// Opens the data directory, recovers what a previous run left, starts every bot and the
    /// core loop. Fails clearly if another gateway already serves this directory.
    pub async fn start(config: GatewayConfig) -> anyhow::Result<Gateway> {
        // Everything the gateway writes is its own: the database, secrets, logs.
        // SAFETY: umask only changes this process's file creation mask.
        unsafe { libc::umask(0o077) };
        raise_open_files_limit();
        let dir = DataDir::new(config.data_dir.clone());
        let (level, supervisor) = resolve_isolation(config.isolation, config.supervisor_socket.as_deref()).await?;
        // Checked (owner, who may write, ACLs, links, up to `/`) before anything is kept in it;
        // 0700, or 0711 (traversable, not listable) when member accounts must reach their own
        // folders inside. Workers (and the supervisor) get this absolute, link-free path.
        let absolute = crate::data_dir::prepare(dir.root(), Some(data_dir_mode(level)))?;
        let lock = take_lock(&dir)?;
        let worker_socket = match level {
            IsolationLevel::Process => None,
            _ => {
                hearth_isolation::dirs::data_dir_reachable_by_members(dir.root()).map_err(anyhow::Error::msg)?;
                exe_runnable_by_members(&config.worker_exe).map_err(anyhow::Error::msg)?;
                Some(bind_worker_socket(&dir)?)
            }
        };
        let store = Store::open(&dir.database()).context("open gateway database")?;
        // Off the runtime's threads: the Keychain may wait for the admin to allow access.
        let (choice, secrets_dir) = (config.secrets, absolute.clone());
        let secrets = tokio::task::spawn_blocking(move || {
            SecretsBackend::resolve(choice).and_then(|backend| Secrets::open(&secrets_dir, backend))
        })
        .await
        .context("open secrets")?
        .context("open secrets")?;
        let api_url = reqwest::Url::parse(config.telegram_api_url.as_deref().unwrap_or(telegram::DEFAULT_API_URL))
            .context("HEARTH_TELEGRAM_API_URL is not a valid URL")?;
        let http = telegram::http_client(config.poll_timeout);
        // Providers' own client: it follows no redirect (the key would go along; `hearth_llm::http_client`).
        let llm_http = hearth_llm::http_client(&config.llm_limits).context("build HTTP client")?;

        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let spend = store.call(|c| broker::load_spend(c, chrono::Utc::now())).await.context("load spend state")?;
        let (spend_tx, spend_rx) = mpsc::unbounded_channel();
        let broker = Broker::new(llm_http, store.clone(), config.llm_limits, config.llm_retry, config.llm_stream, spend, spend_tx);
        let workers = Workers::new(
            WorkerSettings {
                exe: config.worker_exe.clone(),
                args: config.worker_args.clone(),
                idle: config.worker_idle,
                turn_timeout: config.turn_timeout,
                level,
                socket: worker_socket.as_ref().map(|_| DataDir::new(&absolute).worker_socket()),
                supervisor,
                data_dir: absolute,
            },
            broker.clone(),
            tracker.clone(),
            cancel.clone(),
        );
        // Household knowledge: a folder that cannot be prepared costs the search, not the gateway.
        match crate::kb::Knowledge::open(dir.root()) {
            Ok(kb) => {
                workers.set_knowledge(kb.clone());
                tracker.spawn(kb.watch(cancel.clone()));
            }
            Err(e) => tracing::error!(error = %e, "household knowledge unavailable"),
        }

        let (events, events_rx) = mpsc::unbounded_channel();
        let (inbox_tx, inbox_rx) = mpsc::unbounded_channel::<Vec<InboxRow>>();
        let (members, pending, provider, activity, firings) = store
            .call(|c| {
                let released = store::ledger_release_stale(c, store::now_unix())?;
                if released > 0 {
                    tracing::info!(released, "released ledger reservations left by an interrupted run");
                }
                let members = store::list_members(c)?;
                let pending = store::pending_inbox(c)?;
                let provider = (
                    store::get_setting(c, SETTING_PROVIDER_KIND)?,
                    store::get_setting(c, SETTING_PROVIDER_URL)?,
                    store::get_setting(c, SETTING_PROVIDER_MODEL)?,
                );
                Ok((members, pending, provider, store::last_activity(c)?, store::pending_firings(c)?))
            })
            .await?;
        if let (Some(kind), Some(url), Some(model)) = provider {
            match kind.parse::<ProviderKind>() {
                Ok(kind) => {
                    let key = secrets.get(secrets::PROVIDER_KEY).unwrap_or_default();
                    broker.set_provider(Some(broker::provider_from(kind, url, model, key)));
                }
                Err(e) => tracing::error!(error = %e, "stored provider setting is invalid; set it again"),
            }
        }

        let inner = Arc::new(Inner {
            lanes: Mutex::new(Lanes::new(config.turn_cap, config.queue_cap)),
            members: Mutex::new(members.iter().map(|m| (m.id.clone(), m.clone())).collect()),
            bots: Mutex::new(HashMap::new()),
            last_activity: Mutex::new(activity.into_iter().collect()),
            paused_notes: Mutex::new(HashMap::new()),
            roles: Default::default(),
            caps_reached: Mutex::new(HashSet::new()),
            notify: broadcast::channel(256).0,
            config,
            dir,
            store,
            secrets,
            broker,
            workers,
            http,
            api_url,
            events: events.clone(),
            inbox_tx,
            cancel: cancel.clone(),
            tracker: tracker.clone(),
            backups: crate::backup::Backups::new(),
            reminders_wake: Default::default(),
            quotas: Default::default(),
            started: Instant::now(),
            _lock: lock,
        });
        let gateway = Gateway { inner };
        gateway.load_role_settings().await;

        for m in &members {
            gateway.start_bot(m);
        }
        // Connectors deliver committed rows on their own channel; forward them into the loop.
        tracker.spawn(forward(inbox_rx, events.clone(), Event::Inbox, cancel.clone()));
        tracker.spawn(forward(spend_rx, events.clone(), Event::Spend, cancel.clone()));
        gateway.refresh_admin_available();
        if !pending.is_empty() {
            tracing::info!(count = pending.len(), "resuming messages left unanswered by the previous run");
            let _ = events.send(Event::Inbox(pending));
        }
        if !firings.is_empty() {
            tracing::info!(count = firings.len(), "delivering reminders that came due before the previous run stopped");
            let _ = events.send(Event::Reminders(firings));
        }
        tracker.spawn(gateway.clone().core_loop(events_rx));
        tracker.spawn(crate::reminders::run_schedule(gateway.clone()));
        gateway.start_backup_schedule().await;
        gateway.start_quotas().await;
        if let Some(listener) = worker_socket {
            tracker.spawn(gateway.inner.workers.clone().serve_socket(listener));
        }
        match level {
            IsolationLevel::Process => tracing::warn!(
                "isolation level \"process\": every member's worker runs as this OS user, so members are separated by \
                 directories only. Run Hearth as root (the Linux service does) for an OS account per member."
            ),
            other => match gateway.inner.workers.supervisor() {
                Some(path) => tracing::info!(
                    level = other.as_str(),
                    supervisor = %path.display(),
                    "each member's worker runs as their own OS account, started by the Hearth supervisor"
                ),
                None => tracing::info!(level = other.as_str(), "each member's worker runs as their own OS account"),
            },
        }
        if gateway.inner.config.control_socket {
            crate::control::serve_socket(gateway.clone()).await.context("start the control socket")?;
        }
        tracing::info!(data_dir = %gateway.inner.dir.root().display(), members = members.len(), "gateway serving");
        Ok(gateway)
    }

    /// Stops taking work, lets running turns finish for up to `grace`, stops workers and bots.
    /// Messages not answered by then stay in the inbox and are answered after the next start.
    pub async fn shutdown(&self, grace: Duration) {
        let inner = &self.inner;
        inner.cancel.cancel();
        inner.workers.shutdown_all();
        inner.bots.lock().unwrap().clear();
        inner.tracker.close();
        if tokio::time::timeout(grace, inner.tracker.wait()).await.is_err() {
            tracing::warn!("some tasks did not finish within {grace:?}; their messages will be retried at the next start");
        }
        let _ = std::fs::remove_file(inner.dir.control_socket());
    }

    /// Events as they happen, for the app: see [`GatewayEvent`]. A receiver that falls more
    /// than 256 events behind loses the oldest (`RecvError::Lagged`) and should ask for `Status`.
    pub fn subscribe(&self) -> broadcast::Receiver<GatewayEvent> {
        self.inner.notify.subscribe()
    }

    pub(crate) fn emit(&self, event: GatewayEvent) {
        // An error only means nobody is subscribed.
        let _ = self.inner.notify.send(event);
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.inner.dir.root()
    }

    /// A snapshot of everything the admin watches.
    pub async fn status(&self) -> anyhow::Result<StatusReport> {
        let inner = &self.inner;
        // "Today" is the household's day, as the caps count it.
        let since = self.inner.broker.with_spend(|s| {
            crate::spend::period::period_at(crate::spend::PeriodKind::Day, s.budget.timezone(), chrono::Utc::now()).starts_at.timestamp()
        });
        let usage: HashMap<String, _> = inner.store.call(move |c| store::usage_since(c, since)).await?.into_iter().collect();
        let now = Instant::now();
        let mut members: Vec<MemberRow> = inner.members.lock().unwrap().values().cloned().collect();
        members.sort_by_key(|m| m.seq);
        let activity = inner.last_activity.lock().unwrap().clone();
        let lanes = inner.lanes.lock().unwrap();
        let bots = inner.bots.lock().unwrap();
        let members = members
            .into_iter()
            .map(|m| MemberStatus {
                role: m.role,
                paused: m.paused,
                quiet_hours: m.quiet_hours,
                last_activity: activity.get(&m.id).map(|t| crate::control::rfc3339(*t)),
                bot: bots.get(&m.id).map(|b| b.state.lock().unwrap().clone()).unwrap_or(BotState::Starting),
                paired: m.telegram_user_id.is_some(),
                lane: lanes.state(&m.id, now),
                worker_pid: inner.workers.pid(&m.id),
                isolation: inner.workers.level(),
                today: usage.get(&m.id).copied().unwrap_or_default(),
                disk: inner.quotas.usage(&m.id),
                id: m.id,
                name: m.name,
                bot_username: m.bot_username,
            })
            .collect();
        Ok(StatusReport {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            data_dir: inner.dir.root().display().to_string(),
            uptime_secs: inner.started.elapsed().as_secs(),
            provider: inner.broker.provider_summary(),
            members,
            turns_in_flight: lanes.in_flight() as u32,
            turn_cap: lanes.turn_cap() as u32,
            worker_processes: inner.workers.running().len() as u32,
            isolation: inner.workers.level(),
        })
    }

    pub(crate) fn start_bot(&self, m: &MemberRow) {
        let inner = &self.inner;
        let Some(token) = inner.secrets.get(&secrets::bot_token_key(&m.id)) else {
            tracing::error!(member = %m.id, "no token stored for this member's bot; replace the token");
            let state = Arc::new(Mutex::new(BotState::TokenRevoked));
            let bot = telegram::bot(&inner.http, &inner.api_url, "0:missing");
            inner.bots.lock().unwrap().insert(m.id.clone(), BotHandle { bot, state, cancel: inner.cancel.child_token() });
            return;
        };
        let bot = telegram::bot(&inner.http, &inner.api_url, &token);
        let state = Arc::new(Mutex::new(BotState::Starting));
        let cancel = inner.cancel.child_token();
        let notify = inner.notify.clone();
        let (member_id, name) = (m.id.clone(), m.name.clone());
        let on_change: telegram::StateHook = Arc::new(move |state: &BotState| {
            let _ = notify.send(GatewayEvent::Changed);
            if matches!(state, BotState::TokenRevoked | BotState::UsedElsewhere) {
                let trouble =
                    GatewayEvent::BotTrouble { member_id: member_id.clone(), name: name.clone(), state: state.clone() };
                let _ = notify.send(trouble);
            }
        });
        let poll = PollLoop {
            member_id: m.id.clone(),
            bot_id: m.bot_id,
            bot: bot.clone(),
            next_offset: m.next_offset,
            store: inner.store.clone(),
            state: state.clone(),
            inbox: inner.inbox_tx.clone(),
            poll_timeout: inner.config.poll_timeout,
            cancel: cancel.clone(),
            on_change: Some(on_change),
        };
        inner.tracker.spawn(poll.run(inner.config.backoff));
        inner.bots.lock().unwrap().insert(m.id.clone(), BotHandle { bot, state, cancel });
    }

    fn bot_for(&self, member_id: &str) -> Option<Bot> {
        self.inner.bots.lock().unwrap().get(member_id).map(|b| b.bot.clone())
    }

    async fn core_loop(self, mut events: mpsc::UnboundedReceiver<Event>) {
        loop {
            let event = tokio::select! {
                _ = self.inner.cancel.cancelled() => return,
                e = events.recv() => match e { Some(e) => e, None => return },
            };
            match event {
                Event::Inbox(rows) => {
                    for row in rows {
                        self.on_inbox_row(row).await;
                    }
                }
                Event::TurnFinished { member_id } => self.inner.lanes.lock().unwrap().finish(&member_id),
                Event::MemberRemoved { member_id } => {
                    // A removed member's firings went with them (ON DELETE CASCADE).
                    let dropped = self.inner.lanes.lock().unwrap().drain(&member_id);
                    self.finish_rows(inbox_ids(&dropped), "done", "member_removed");
                }
                Event::MemberPaused { member_id } => {
                    // Reminders still come while paused (they cost nothing and may be a pill):
                    // only the member's messages are dropped.
                    let dropped = self.inner.lanes.lock().unwrap().drain(&member_id);
                    let (reminders, messages): (Vec<_>, Vec<_>) = dropped.into_iter().partition(|i| i.row.is_none());
                    if let Some(first) = messages.first() {
                        let chat = first.chat_id;
                        self.paused_reply(&member_id, chat, inbox_ids(&messages));
                    }
                    let mut lanes = self.inner.lanes.lock().unwrap();
                    for item in reminders {
                        lanes.push(&member_id, item);
                    }
                }
                Event::Reminders(due) => {
                    for d in due {
                        self.on_reminder_due(d);
                    }
                }
                Event::TurnCap { cap } => self.inner.lanes.lock().unwrap().set_turn_cap(cap),
                Event::Spend(SpendEvent::Settled { .. }) => {}
                Event::Spend(e) => self.on_spend(e),
            }
            self.dispatch();
            // Every input may change what a status snapshot shows; with no input, no event.
            self.emit(GatewayEvent::Changed);
        }
    }

    /// Tells a paused member so (at most once per [`PAUSED_NOTE_EVERY`]) and closes their rows
    /// with outcome "paused": nothing of theirs reaches a worker or a model.
    fn paused_reply(&self, member_id: &str, chat_id: i64, ids: Vec<i64>) {
        let now = Instant::now();
        let tell = {
            let mut notes = self.inner.paused_notes.lock().unwrap();
            let due = notes.get(member_id).is_none_or(|t| now.duration_since(*t) >= PAUSED_NOTE_EVERY);
            if due {
                notes.insert(member_id.to_owned(), now);
            }
            due
        };
        match ids.split_first() {
            Some((first, rest)) if tell => {
                self.finish_rows(rest.to_vec(), "done", "paused");
                self.reply_and_finish(member_id, chat_id, PAUSED_NOTE.to_owned(), *first, "paused");
            }
            _ => self.finish_rows(ids, "done", "paused"),
        }
    }

    /// Routes one committed row. Pairing is decided here, in order, so a message sent right
    /// after `/start <code>` is already the member's.
    async fn on_inbox_row(&self, row: InboxRow) {
        let member = self.inner.members.lock().unwrap().get(&row.member_id).cloned();
        let Some(member) = member else {
            self.finish_rows(vec![row.id], "done", "member_removed");
            return;
        };
        // The gateway's clock (manual in tests), so an idle reset can be tested without waiting.
        let now = self.inner.config.clock.now().timestamp();
        let mut idle_since = None;
        if member.telegram_user_id == Some(row.msg.from_id) {
            idle_since = self.inner.last_activity.lock().unwrap().insert(member.id.clone(), now);
        }
        let route = route(member.telegram_user_id, &row);
        // A paused member's messages go nowhere near a worker. Pairing still works (the admin may
        // pair a new phone first), and a button press is the admin answering a cap question.
        let held = matches!(route, Route::Pair { .. } | Route::Stranger | Route::Ignore | Route::Button { .. });
        if member.paused && !held {
            self.paused_reply(&member.id, row.msg.chat_id, vec![row.id]);
            return;
        }
        // Resting time (a child's quiet hours): answered here, no worker, no model.
        if !held && let Some(quiet) = self.quiet_now(&member) {
            let text = self.inner.roles.first_note(&member.id, quiet.began_on).then(|| crate::roles::resting_note(&quiet.until));
            match text {
                Some(text) => self.reply_and_finish(&member.id, row.msg.chat_id, text, row.id, "quiet"),
                None => self.finish_rows(vec![row.id], "done", "quiet"),
            }
            return;
        }
        // A folder over the disk quota (`quota.rs`): a note instead of a turn; reminders still come.
        if matches!(route, Route::Chat | Route::NewConversation | Route::Memory | Route::Forget { .. } | Route::Reminders { .. })
            && let Some(tell) = self.over_quota(&member.id)
        {
            match tell {
                true => self.reply_and_finish(&member.id, row.msg.chat_id, crate::quota::QUOTA_NOTE.to_owned(), row.id, "over_quota"),
                false => self.finish_rows(vec![row.id], "done", "over_quota"),
            }
            return;
        }
        // Back after long enough away (`context.reset_after_idle_hours`): a fresh conversation
        // first, the way `/new` starts one, but without its confirmation.
        if route == Route::Chat
            && let (Some(limit), Some(since)) = (self.inner.roles.idle_reset_secs(), idle_since)
            && now - since > limit
        {
            tracing::info!(member = %member.id, idle_secs = now - since, "idle long enough: a fresh conversation");
            let fresh = LaneItem { row: None, chat_id: row.msg.chat_id, kind: TurnKind::NewConversation, words: String::new() };
            self.inner.lanes.lock().unwrap().push(&member.id, fresh);
        }
        match route {
            r @ (Route::Chat
            | Route::NewConversation
            | Route::Memory
            | Route::Forget { .. }
            | Route::Reminders { .. }) => {
                // Memory and reminders are the worker's: the gateway only queues the command in
                // lane order.
                let (kind, words) = match r {
                    Route::NewConversation => (TurnKind::NewConversation, String::new()),
                    Route::Memory => (TurnKind::ListMemory, String::new()),
                    Route::Forget { words } => (TurnKind::Forget, words),
                    Route::Reminders { words } => (TurnKind::Reminders, words),
                    _ => (TurnKind::Chat, String::new()),
                };
                let id = row.id;
                let chat = row.msg.chat_id;
                let item = LaneItem { row: Some(row), chat_id: chat, kind, words };
                let pushed = self.inner.lanes.lock().unwrap().push(&member.id, item);
                if pushed == Push::Full {
                    let text = format!(
                        "I still have {} of your messages to get through — give me a moment, then send the rest.",
                        self.inner.config.queue_cap
                    );
                    self.reply_and_finish(&member.id, chat, text, id, "queue_full");
                }
            }
            Route::Pair { code } => self.pair(&member, row, code).await,
            Route::Greet => {
                let text = format!("Hi {}! I'm your assistant. Just write to me — ask anything, or /new for a fresh start.", member.name);
                self.reply_and_finish(&member.id, row.msg.chat_id, text, row.id, "greeted");
            }
            Route::Help => {
                let mut text = "Write to me like you'd text a friend and I'll help: questions, ideas, plans, homework, recipes.\n\n/new — start a fresh conversation\n/memory — what I remember about you\n/forget — forget some or all of it\n/reminders — your reminders\n/usage — what you've spent and what's left\n/help — this message".to_owned();
                if member.is_admin {
                    text.push_str("\n/family — everyone's spending at a glance (you're an admin)");
                }
                self.reply_and_finish(&member.id, row.msg.chat_id, text, row.id, "helped");
            }
            Route::Usage => {
                let text = self.inner.broker.with_spend(|s| {
                    let tz = s.budget.timezone();
                    spend_text::usage(&s.budget.standing(&member.id, chrono::Utc::now()), tz)
                });
                self.reply_and_finish(&member.id, row.msg.chat_id, text, row.id, "usage");
            }
            Route::Family => {
                let text = if member.is_admin {
                    let mut members: Vec<MemberRow> = self.inner.members.lock().unwrap().values().cloned().collect();
                    members.sort_by_key(|m| m.seq);
                    let now = chrono::Utc::now();
                    self.inner.broker.with_spend(|s| {
                        let rows: Vec<_> = members.iter().map(|m| (m.name.clone(), s.budget.standing(&m.id, now))).collect();
                        spend_text::family(&rows, &s.budget.household_standing(now))
                    })
                } else {
                    "Only an admin can see the whole family's spending. /usage shows yours.".to_owned()
                };
                self.reply_and_finish(&member.id, row.msg.chat_id, text, row.id, "family");
            }
            Route::Button { data } => self.on_button(&member, row, data),
            Route::Unsupported => {
                let text = "I can only read text messages for now — could you type that out for me?".to_owned();
                self.reply_and_finish(&member.id, row.msg.chat_id, text, row.id, "unsupported");
            }
            Route::Stranger => self.stranger(&member, row, false),
            Route::Ignore => self.finish_rows(vec![row.id], "done", "ignored"),
        }
    }

    /// Queues a committed reminder occurrence in its member's lane, to go to their paired chat.
    fn on_reminder_due(&self, due: DueReminder) {
        let chat = self.inner.members.lock().unwrap().get(&due.member_id).map(|m| m.chat_id);
        let Some(chat) = chat else { return }; // removed: the firing went with the member
        let Some(chat_id) = chat else {
            self.finish_firing(due, "done", "no_chat");
            return;
        };
        let kind = TurnKind::Reminder { id: due.reminder_id, due_at: due.due_at };
        let item = LaneItem { row: None, chat_id, kind, words: String::new() };
        if self.inner.lanes.lock().unwrap().push(&due.member_id, item) == Push::Full {
            // Left pending: delivered after the next start.
            tracing::warn!(member = %due.member_id, "lane full; a reminder waits for the next start");
        }
    }

    fn finish_firing(&self, due: DueReminder, state: &'static str, outcome: &'static str) {
        let store = self.inner.store.clone();
        self.inner.tracker.spawn(async move {
            if let Err(e) = store.call(move |c| store::finish_firing(c, &due, state, outcome)).await {
                tracing::error!(error = %e, "could not close a reminder firing; it comes again at the next start");
            }
        });
    }

    /// Admins who can be asked over Telegram: marked admin and paired.
    fn admins(&self) -> Vec<MemberRow> {
        let mut admins: Vec<MemberRow> =
            self.inner.members.lock().unwrap().values().filter(|m| m.is_admin && m.chat_id.is_some()).cloned().collect();
        admins.sort_by_key(|m| m.seq);
        admins
    }

    pub(crate) fn refresh_admin_available(&self) {
        self.inner.broker.set_admin_available(!self.admins().is_empty());
    }

    fn send_to_member(&self, member_id: &str, text: String) {
        let chat = self.inner.members.lock().unwrap().get(member_id).and_then(|m| m.chat_id);
        let (Some(chat), Some(bot)) = (chat, self.bot_for(member_id)) else { return };
        self.inner.tracker.spawn(async move {
            if let Err(e) = telegram::send_plain(&bot, chat, &text).await {
                tracing::warn!(error = %e, "could not send a spend notice");
            }
        });
    }

    /// Heads-ups at 80 %, and questions to the admin when a cap refuses a call. Each is sent
    /// once per cap and period; the notices table remembers across restarts.
    fn on_spend(&self, event: SpendEvent) {
        match &event {
            SpendEvent::Crossing { member_id, crossing } if crossing.percent >= 100 => {
                self.cap_reached(member_id, crossing.kind, &crossing.period_key);
            }
            SpendEvent::CapHit { member_id, hit } => self.cap_reached(member_id, hit.kind, &hit.period_key),
            _ => {}
        }
        let gw = self.clone();
        self.inner.tracker.spawn(async move {
            match event {
                SpendEvent::Crossing { member_id, crossing } => {
                    if crossing.percent != 80 {
                        return;
                    }
                    let (mid, kind, key) = (member_id.clone(), crossing.kind.as_str(), crossing.period_key.clone());
                    let new = gw.inner.store.call(move |c| store::insert_notice(c, &mid, kind, &key, 80)).await.unwrap_or(false);
                    if !new {
                        return;
                    }
                    let text = gw.inner.broker.with_spend(|s| {
                        let tz = s.budget.timezone();
                        let now = chrono::Utc::now();
                        let resets = match crossing.kind {
                            CapKind::MemberDaily => s.budget.standing(&member_id, now).daily.resets_at,
                            CapKind::MemberMonthly => s.budget.standing(&member_id, now).monthly.resets_at,
                            CapKind::HouseholdMonthly => s.budget.household_standing(now).resets_at,
                        };
                        spend_text::heads_up(crossing.kind, crossing.spent_micros, crossing.limit_micros, resets, tz)
                    });
                    if crossing.kind == CapKind::HouseholdMonthly {
                        for admin in gw.admins() {
                            gw.send_to_member(&admin.id, text.clone());
                        }
                    } else {
                        gw.send_to_member(&member_id, text);
                    }
                }
                SpendEvent::Settled { .. } => {}
                SpendEvent::CapHit { member_id, hit } => {
                    let (mid, kind, key) = (member_id.clone(), hit.kind.as_str(), hit.period_key.clone());
                    let opened = gw.inner.store.call(move |c| store::open_approval(c, &mid, kind, &key)).await;
                    let Ok(Some(approval)) = opened else { return };
                    let name = gw.inner.members.lock().unwrap().get(&member_id).map(|m| m.name.clone()).unwrap_or_default();
                    let question = spend_text::admin_question(&name, hit.kind, hit.limit_micros);
                    for admin in gw.admins() {
                        let (Some(chat), Some(bot)) = (admin.chat_id, gw.bot_for(&admin.id)) else { continue };
                        let buttons = vec![
                            telegram::Button { label: "+$1".into(), data: spend_text::button_data(approval, 1_000_000) },
                            telegram::Button { label: "+$5".into(), data: spend_text::button_data(approval, 5_000_000) },
                            telegram::Button { label: "Leave it".into(), data: spend_text::button_data(approval, 0) },
                        ];
                        if let Err(e) = telegram::send_with_buttons(&bot, chat, &question, buttons).await {
                            tracing::warn!(admin = %admin.id, error = %e, "could not ask the admin");
                        }
                    }
                }
            }
        });
    }

    /// Tells subscribers that a member (or the household) reached a cap: once per cap and period,
    /// whether it was reached by a settled call or found by a refused one.
    fn cap_reached(&self, member_id: &str, kind: CapKind, period_key: &str) {
        let household = kind == CapKind::HouseholdMonthly;
        let scope = (!household).then(|| member_id.to_owned());
        let first = {
            let mut seen = self.inner.caps_reached.lock().unwrap();
            if seen.len() > 1024 {
                // Old periods; at worst one cap is reported a second time.
                seen.clear();
            }
            seen.insert((scope.clone(), kind, period_key.to_owned()))
        };
        if !first {
            return;
        }
        let name = if household {
            "The household".to_owned()
        } else {
            self.inner.members.lock().unwrap().get(member_id).map(|m| m.name.clone()).unwrap_or_default()
        };
        let period = match kind.period_kind() {
            crate::spend::PeriodKind::Day => "day",
            crate::spend::PeriodKind::Month => "month",
        };
        self.emit(GatewayEvent::CapReached { member_id: scope, name, period: period.to_owned() });
    }

    /// An admin tapped +$1, +$5 or "Leave it" under a cap question.
    fn on_button(&self, presser: &MemberRow, row: InboxRow, data: String) {
        let gw = self.clone();
        let presser = presser.clone();
        self.inner.tracker.spawn(async move {
            let bot = gw.bot_for(&presser.id);
            let callback = row.msg.callback_id.clone().unwrap_or_default();
            let answer = async |text: &str| {
                if let Some(bot) = &bot {
                    telegram::answer_callback(bot, &callback, Some(text)).await;
                }
            };
            let parsed = spend_text::parse_button(&data);
            let Some((approval_id, extra)) = parsed.filter(|_| presser.is_admin) else {
                answer("Only an admin can answer this.").await;
                gw.finish_rows(vec![row.id], "done", "button_refused");
                return;
            };
            let resolution = if extra > 0 { format!("raised:{extra}") } else { "ignored".to_owned() };
            let resolved = gw.inner.store.call(move |c| store::resolve_approval(c, approval_id, &resolution)).await;
            match resolved {
                Ok(Some(a)) if a.resolution.is_none() => {
                    let kind = broker::parse_cap_kind(&a.kind).unwrap_or(CapKind::MemberDaily);
                    let name = gw.inner.members.lock().unwrap().get(&a.member_id).map(|m| m.name.clone()).unwrap_or_default();
                    let by = format!("telegram:{}", row.msg.from_id);
                    if extra > 0 {
                        gw.inner.broker.with_spend(|s| s.budget.grant(&a.member_id, kind, &a.period_key, extra));
                        let (mid, k, key, b) = (a.member_id.clone(), a.kind.clone(), a.period_key.clone(), by.clone());
                        let stored = gw
                            .inner
                            .store
                            .call(move |c| {
                                store::insert_grant(c, &mid, &k, &key, extra, &b)?;
                                store::audit(c, &b, "cap_raised", Some(&mid), &format!("{k} {key} +{extra} micro-USD"))
                            })
                            .await;
                        if let Err(e) = stored {
                            tracing::error!(error = %e, "a cap raise could not be stored; it holds until restart");
                        }
                        answer(&format!("Raised by {}", crate::spend::format_usd(extra))).await;
                        gw.send_to_member(&a.member_id, spend_text::member_raised(kind, extra));
                    } else {
                        let mid = a.member_id.clone();
                        let _ = gw.inner.store.call(move |c| store::audit(c, &by, "cap_raise_declined", Some(&mid), "")).await;
                        answer("Left as it is").await;
                    }
                    if let (Some(bot), Some(message_id)) = (&bot, row.msg.message_id) {
                        let text = spend_text::admin_answered(&name, kind, (extra > 0).then_some(extra));
                        telegram::close_question(bot, row.msg.chat_id, message_id as i32, &text).await;
                    }
                }
                Ok(Some(_)) => answer("This was already answered.").await,
                Ok(None) => answer("That question is no longer open.").await,
                Err(e) => {
                    tracing::error!(error = %e, "could not record the answer");
                    answer("Something went wrong; please try again.").await;
                }
            }
            gw.finish_rows(vec![row.id], "done", "button");
        });
    }

    async fn pair(&self, member: &MemberRow, row: InboxRow, code: String) {
        let (mid, user, chat) = (member.id.clone(), row.msg.from_id, row.msg.chat_id);
        let now = store::now_unix();
        let from_name = row.msg.from_name.clone();
        let accepted = self
            .inner
            .store
            .call(move |c| {
                let ok = store::redeem_pairing(c, &mid, &code, user, now)?;
                if ok {
                    store::bind_telegram_user(c, &mid, user, chat, now)?;
                    store::audit(c, &format!("telegram:{user}"), "paired", Some(&mid), &format!("Telegram user {from_name} paired"))?;
                }
                Ok(ok)
            })
            .await;
        match accepted {
            Ok(true) => {
                if let Some(m) = self.inner.members.lock().unwrap().get_mut(&member.id) {
                    m.telegram_user_id = Some(user);
                    m.chat_id = Some(chat);
                }
                self.refresh_admin_available();
                tracing::info!(member = %member.id, "paired");
                self.emit(GatewayEvent::Paired {
                    member_id: member.id.clone(),
                    name: member.name.clone(),
                    telegram_name: row.msg.from_name.clone(),
                });
                let text = format!(
                    "You're all set, {}! This is your own assistant — only you can talk to it here. Ask me anything.",
                    member.name
                );
                self.reply_and_finish(&member.id, chat, text, row.id, "paired");
            }
            Ok(false) => self.stranger(member, row, true),
            Err(e) => {
                tracing::error!(error = %e, "pairing failed");
                self.finish_rows(vec![row.id], "failed", "pairing_error");
            }
        }
    }

    /// The stranger policy: at most one short reply per hour per person, an audit row with it,
    /// and nothing else — no worker, no model.
    fn stranger(&self, member: &MemberRow, row: InboxRow, tried_code: bool) {
        let gw = self.clone();
        let member_id = member.id.clone();
        let window = self.inner.config.stranger_reply_window.as_secs() as i64;
        self.inner.tracker.spawn(async move {
            let (bot_id, user, name) = (row.bot_id, row.msg.from_id, row.msg.from_name.clone());
            let mid = member_id.clone();
            let may = gw
                .inner
                .store
                .call(move |c| {
                    let may = store::stranger_may_reply(c, bot_id, user, store::now_unix(), window)?;
                    if may {
                        let what = if tried_code { "stranger_bad_code" } else { "stranger" };
                        store::audit(c, &format!("telegram:{user}"), what, Some(&mid), &format!("message from unpaired user {name}"))?;
                    }
                    Ok(may)
                })
                .await
                .unwrap_or(false);
            if may {
                let text = if tried_code {
                    "That pairing code isn't valid (codes work once and expire after an hour). Ask whoever runs Hearth at home for a new one."
                } else {
                    "Sorry, this is a private family assistant."
                };
                if let Some(bot) = gw.bot_for(&member_id) {
                    let _ = telegram::send_plain(&bot, row.msg.chat_id, text).await;
                }
            }
            gw.finish_rows(vec![row.id], "done", "stranger");
        });
    }

    fn reply_and_finish(&self, member_id: &str, chat_id: i64, text: String, row_id: i64, outcome: &'static str) {
        let gw = self.clone();
        let member_id = member_id.to_owned();
        self.inner.tracker.spawn(async move {
            let sent = match gw.bot_for(&member_id) {
                Some(bot) => telegram::send_plain(&bot, chat_id, &text).await.map_err(|e| e.to_string()),
                None => Err("bot stopped".into()),
            };
            match sent {
                Ok(()) => gw.finish_rows(vec![row_id], "done", outcome),
                Err(e) => {
                    tracing::warn!(member = %member_id, error = %e, "could not send a reply");
                    gw.finish_rows(vec![row_id], "failed", "send_failed");
                }
            }
        });
    }

    pub(crate) fn finish_rows(&self, ids: Vec<i64>, state: &'static str, outcome: &'static str) {
        if ids.is_empty() {
            return;
        }
        let store = self.inner.store.clone();
        self.inner.tracker.spawn(async move {
            if let Err(e) = store.call(move |c| store::finish_inbox(c, &ids, state, outcome)).await {
                tracing::error!(error = %e, "could not close inbox rows; they will be retried at the next start");
            }
        });
    }

    /// Starts every turn the lanes will hand out now.
    fn dispatch(&self) {
        loop {
            let next = self.inner.lanes.lock().unwrap().next_turn(Instant::now());
            let Some((member_id, items)) = next else { return };
            let gw = self.clone();
            self.inner.tracker.spawn(async move {
                gw.run_turn(&member_id, items).await;
                // The worker may have written: its folder is measured for the quota (rate-limited).
                gw.measure_soon(&member_id);
                let _ = gw.inner.events.send(Event::TurnFinished { member_id });
            });
        }
    }

    async fn run_turn(&self, member_id: &str, items: Vec<LaneItem>) {
        let member = self.inner.members.lock().unwrap().get(member_id).cloned();
        let ids = inbox_ids(&items);
        let (Some(member), Some(bot)) = (member, self.bot_for(member_id)) else {
            self.finish_rows(ids, "done", "member_removed");
            return;
        };
        let chat_id = items[0].chat_id;
        let kind = items[0].kind;
        let rows: Vec<&InboxRow> = items.iter().filter_map(|i| i.row.as_ref()).collect();
        // The household's zone, as the caps count days in it (`hearth household timezone`).
        let tz = self.inner.broker.with_spend(|s| s.budget.timezone());
        let turn = Turn {
            turn_id: self.inner.workers.next_turn_id(),
            chat_id,
            kind,
            messages: match kind {
                TurnKind::NewConversation | TurnKind::ListMemory | TurnKind::Reminder { .. } => Vec::new(),
                TurnKind::Forget | TurnKind::Reminders => rows
                    .iter()
                    .take(1)
                    .map(|r| IncomingMessage { inbox_id: r.id, text: items[0].words.clone(), sent_at: r.msg.sent_at })
                    .collect(),
                TurnKind::Chat => rows
                    .iter()
                    .map(|r| IncomingMessage {
                        inbox_id: r.id,
                        text: r.msg.text.clone().unwrap_or_default(),
                        sent_at: r.msg.sent_at,
                    })
                    .collect(),
            },
            context: TurnContext {
                member_name: member.name.clone(),
                persona: member.persona.clone(),
                now: self.inner.config.clock.now().with_timezone(&tz).to_rfc3339(),
                timezone: tz.name().to_owned(),
                context_tokens: self.inner.config.context_tokens,
                max_output_tokens: self.inner.config.max_output_tokens,
                role: member.role,
            },
        };
        let firing = match kind {
            TurnKind::Reminder { id, due_at } => {
                Some(DueReminder { member_id: member_id.to_owned(), reminder_id: id, due_at })
            }
            _ => None,
        };
        // A fresh start the gateway asked for itself (idle reset) has no row and says nothing.
        let silent = kind == TurnKind::NewConversation && items[0].row.is_none();
        let typing = self.inner.cancel.child_token();
        if firing.is_none() && !silent {
            self.inner.tracker.spawn(telegram::show_typing(bot.clone(), chat_id, typing.clone()));
        }
        let outcome = self.inner.workers.run_turn(member_id, turn, self.turn_rules(&member)).await;
        typing.cancel();
        let outcome = match outcome {
            Ok((outcome, Some(due))) => {
                // Before the turn counts as finished, so the member's next turn sees it applied.
                let (store, member) = (self.inner.store.clone(), member_id.to_owned());
                match store.call(move |c| store::replace_reminder_schedule(c, &member, &due)).await {
                    Ok(()) => self.inner.reminders_wake.changed(),
                    Err(e) => tracing::error!(member = member_id, error = %e, "could not store the reminder schedule"),
                }
                Ok(outcome)
            }
            Ok((outcome, None)) => Ok(outcome),
            Err(e) => Err(e),
        };
        if let Some(firing) = firing {
            self.deliver_reminder(member_id, &bot, chat_id, firing, outcome).await;
            return;
        }
        if silent {
            if let Ok(TurnOutcome::Failed { detail, .. }) = &outcome {
                tracing::warn!(member = member_id, %detail, "the idle reset failed; the conversation goes on");
            }
            return;
        }
        let (text, outcome_kind) = match outcome {
            Ok(TurnOutcome::Nothing) => {
                self.finish_rows(ids, "done", "nothing");
                return;
            }
            Ok(TurnOutcome::Reply { text }) if !text.trim().is_empty() => (text, "replied"),
            Ok(TurnOutcome::Reply { .. }) => ("I'm not sure what to say to that — could you put it another way?".to_owned(), "empty_reply"),
            Ok(TurnOutcome::Failed { user_message, detail }) => {
                tracing::warn!(member = member_id, %detail, "turn failed");
                (user_message, "turn_failed")
            }
            Err(WorkerError::ShuttingDown) => return, // left pending: answered after restart
            Err(e) => {
                tracing::error!(member = member_id, error = %e, "worker failed");
                (
                    "Sorry — something went wrong on my side while I was answering. Please send that again.".to_owned(),
                    "worker_failed",
                )
            }
        };
        match telegram::send_reply(&bot, chat_id, &text).await {
            Ok(()) => self.finish_rows(ids, "done", outcome_kind),
            Err(e) => {
                tracing::error!(member = member_id, error = %e, "could not deliver a reply");
                self.finish_rows(ids, "failed", "send_failed");
            }
        }
    }
}

impl Gateway {
    /// What a turn of `member`'s may ask for, as far as their state goes (`turn_rules.rs`):
    /// nothing from the model while paused or resting as it starts, and nothing after a pause
    /// in the middle of it.
    fn turn_rules(&self, member: &MemberRow) -> crate::turn_rules::TurnRules {
        use hearth_proto::llm::Refusal;
        let refused = if member.paused {
            Some(Refusal::Paused)
        } else if self.quiet_now(member).is_some() {
            Some(Refusal::Resting)
        } else {
            None
        };
        // Weak: the rules sit in the worker pool, which the gateway owns.
        let (inner, id) = (Arc::downgrade(&self.inner), member.id.clone());
        let paused_now = Arc::new(move || {
            inner.upgrade().is_none_or(|inner| inner.members.lock().unwrap().get(&id).is_none_or(|m| m.paused))
        });
        crate::turn_rules::TurnRules { refused, paused_now, clock: self.inner.config.clock.clone() }
    }

    /// Sends a reminder the worker looked up, then closes its firing. Nothing is sent for an
    /// occurrence cancelled meanwhile, nor an apology when the worker failed: a reminder is not
    /// an answer the member waits for.
    async fn deliver_reminder(
        &self,
        member_id: &str,
        bot: &Bot,
        chat_id: i64,
        firing: DueReminder,
        outcome: Result<TurnOutcome, WorkerError>,
    ) {
        let text = match outcome {
            Ok(TurnOutcome::Reply { text }) if !text.trim().is_empty() => text,
            Ok(TurnOutcome::Reply { .. } | TurnOutcome::Nothing) => {
                return self.finish_firing(firing, "done", "nothing");
            }
            Ok(TurnOutcome::Failed { detail, .. }) => {
                tracing::error!(member = member_id, %detail, "a reminder could not be looked up");
                return self.finish_firing(firing, "failed", "turn_failed");
            }
            Err(WorkerError::ShuttingDown) => return, // left pending: delivered after restart
            Err(e) => {
                // Left pending and tried again in a minute: a crashed worker must not end a
                // recurring reminder for good.
                tracing::error!(member = member_id, error = %e, "worker failed on a reminder; again in a minute");
                let (events, cancel) = (self.inner.events.clone(), self.inner.cancel.clone());
                self.inner.tracker.spawn(async move {
                    tokio::select! {
                        _ = cancel.cancelled() => {}
                        _ = tokio::time::sleep(REMINDER_RETRY) => {
                            let _ = events.send(Event::Reminders(vec![firing]));
                        }
                    }
                });
                return;
            }
        };
        match telegram::send_reply(bot, chat_id, &text).await {
            Ok(()) => self.finish_firing(firing, "done", "reminded"),
            Err(e) => {
                tracing::error!(member = member_id, error = %e, "could not deliver a reminder");
                self.finish_firing(firing, "failed", "send_failed");
            }
        }
    }
}

/// Inbox rows behind lane items (a reminder has none).
fn inbox_ids(items: &[LaneItem]) -> Vec<i64> {
    items.iter().filter_map(|i| i.row.as_ref().map(|r| r.id)).collect()
}

/// Feeds another channel into the core loop until shutdown: connectors and the broker have
/// channels of their own so they need not know the loop's `Event`.
async fn forward<T>(
    mut rx: mpsc::UnboundedReceiver<T>,
    events: mpsc::UnboundedSender<Event>,
    wrap: fn(T) -> Event,
    stop: CancellationToken,
) {
    loop {
        let item = tokio::select! {
            _ = stop.cancelled() => return,
            item = rx.recv() => match item { Some(item) => item, None => return },
        };
        if events.send(wrap(item)).is_err() {
            return;
        }
    }
}

/// Decides the level once, at start. Asking for more than the machine allows is an error that
/// says why; `auto` takes the strongest level available. As root the gateway manages accounts
/// itself; otherwise it needs a `hearth supervisor` that answers at `supervisor_socket`, and
/// then returns that socket for the workers to be started through.
async fn resolve_isolation(
    choice: IsolationChoice,
    supervisor_socket: Option<&std::path::Path>,
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

/// Each bot's long poll, each worker socket and SQLite's files need descriptors: about 1,800 at
/// 1,000 bots. Service managers start us at 1,024 (systemd) or 256 (launchd), so the soft limit
/// is raised to the hard one (macOS caps it at OPEN_MAX, 10,240).
fn raise_open_files_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit on this process with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        let mut want = lim.rlim_max;
        if cfg!(target_os = "macos") {
            want = want.min(10_240);
        }
        if want > lim.rlim_cur {
            let before = lim.rlim_cur;
            lim.rlim_cur = want;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                tracing::debug!(from = before, to = want, "raised the open-files limit");
            }
        }
    }
}

/// Member accounts must be able to run the worker binary: it and every directory above it need
/// the "others may execute" bit. (`/root/...` is the usual way this fails.)
fn exe_runnable_by_members(exe: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let exe = std::fs::canonicalize(exe).map_err(|e| format!("the worker binary {} cannot be found: {e}", exe.display()))?;
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
fn data_dir_mode(level: IsolationLevel) -> u32 {
    if level == IsolationLevel::Process { 0o700 } else { 0o711 }
}

/// The socket account-level workers connect to. Anyone may connect (0666 in a 0711 directory);
/// only a connection whose kernel-reported uid is a member's freshly started worker is kept.
fn bind_worker_socket(dir: &DataDir) -> anyhow::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.worker_socket();
    crate::data_dir::prepare_subdir(dir.root(), "workers", 0o711)?;
    // We hold the data directory's lock, so a socket file here is a leftover of a crash.
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path).with_context(|| format!("bind {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

/// One gateway per data directory: an exclusive, non-blocking `flock` held for the process's
/// life (the kernel drops it if we crash).
pub(crate) fn take_lock(dir: &DataDir) -> anyhow::Result<File> {
    use std::os::fd::AsRawFd;
    let path = dir.lock_file();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    // SAFETY: flock on a descriptor we own.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r != 0 {
        return Err(AlreadyServing { data_dir: dir.root().to_owned() }.into());
    }
    Ok(file)
}

/// Another gateway (the app, or `hearth serve`) holds the data directory. Returned inside the
/// `anyhow::Error` of [`Gateway::start`]; callers may downcast to it.
#[derive(Debug, thiserror::Error)]
#[error("another Hearth gateway is already serving {} (the app, or `hearth serve`). Stop it first, or use a different --data-dir", data_dir.display())]
pub struct AlreadyServing {
    pub data_dir: PathBuf,
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

    #[test]
    fn isolation_choices_parse() {
        assert_eq!("sandbox".parse::<IsolationChoice>(), Ok(IsolationChoice::AccountSandbox));
        assert_eq!("process".parse::<IsolationChoice>(), Ok(IsolationChoice::Process));
        assert!("strong".parse::<IsolationChoice>().unwrap_err().contains("auto, process, account or sandbox"));
    }
}
