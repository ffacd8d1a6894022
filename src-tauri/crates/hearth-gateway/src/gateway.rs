//! [`Gateway`]: the handle the app, `hearth serve` and the tests hold. This file is wiring —
//! start (open the data folder, build the parts, hand the core loop its state, start the watched
//! tasks), shutdown, and the few calls the handle offers. What the gateway does is elsewhere:
//! the core loop in `core/`, the admin API in `control/`.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::FutureExt as _;
use hearth_proto::control::{
    ControlError, ControlReply, ControlRequest, ErrorCode, GatewayEvent, IsolationLevel, ProviderKind, StatusReport,
};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::{self, Broker, SETTING_PROVIDER_KIND, SETTING_PROVIDER_MODEL, SETTING_PROVIDER_URL};
use crate::config::GatewayConfig;
use crate::core::alerts::{self, Alerts, Condition};
use crate::core::{Core, CoreState, Engine, Event, Roster, Shared};
use crate::household::backup::{self, Backups};
use crate::household::heartbeat::{self, Heartbeat};
use crate::household::kb::Knowledge;
use crate::household::quota::{self, Quotas};
use crate::household::reminders::{self, Schedule};
use crate::isolation;
use crate::keeper::Keeper;
use crate::lock::{self, take_lock};
use crate::paths::DataDir;
use crate::routing::roles::SETTING_IDLE_RESET;
use crate::secrets::{self, Secrets, SecretsBackend};
use crate::store::{self, Store};
use crate::telegram;
use crate::workers::{WorkerSettings, Workers};

/// A cheap-to-clone handle to a running gateway.
#[derive(Clone)]
pub struct Gateway {
    engine: Engine,
}

impl Gateway {
    /// Opens the data directory, recovers what a previous run left, starts every bot and the
    /// core loop. Fails clearly if another gateway already serves this directory.
    pub async fn start(config: GatewayConfig) -> anyhow::Result<Gateway> {
        // Everything the gateway writes is its own: the database, secrets, logs.
        // SAFETY: umask only changes this process's file creation mask.
        unsafe { libc::umask(0o077) };
        raise_open_files_limit();
        let dir = DataDir::new(config.data_dir.clone());
        let (level, supervisor) = isolation::resolve(config.isolation, config.supervisor_socket.as_deref()).await?;
        // Checked (owner, who may write, ACLs, links, up to `/`) before anything is kept in it;
        // 0700, or 0711 (traversable, not listable) when member accounts must reach their own
        // folders inside. Workers (and the supervisor) get this absolute, link-free path.
        let absolute = crate::data_dir::prepare(dir.root(), Some(isolation::data_dir_mode(level)))?;
        let lock = take_lock(&dir)?;
        // A marker the last run left behind: it ended without a clean shutdown (the admins hear).
        let unclean = lock::mark_running(&dir).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not note that Hearth runs; an unexpected stop will go unnoticed");
            false
        });
        let worker_socket = match level {
            IsolationLevel::Process => None,
            _ => {
                hearth_isolation::dirs::data_dir_reachable_by_members(dir.root()).map_err(anyhow::Error::msg)?;
                isolation::exe_runnable_by_members(&config.worker_exe).map_err(anyhow::Error::msg)?;
                Some(Arc::new(isolation::bind_worker_socket(&dir)?))
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
        let keeper = Keeper::new(config.restarts, tracker.clone(), cancel.clone());
        let spend = store.call(|c| broker::load_spend(c, chrono::Utc::now())).await.context("load spend state")?;
        let (spend_tx, spend_rx) = mpsc::unbounded_channel();
        let broker = Broker::new(
            llm_http,
            store.clone(),
            config.llm_limits,
            config.llm_retry,
            config.llm_stream,
            spend,
            spend_tx,
        );
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
        let knowledge = match Knowledge::open(dir.root()) {
            Ok(kb) => {
                workers.set_knowledge(kb.clone());
                Some(kb)
            }
            Err(e) => {
                tracing::error!(error = %e, "household knowledge unavailable");
                None
            }
        };

        let (events, events_rx) = mpsc::unbounded_channel();
        let (inbox_tx, inbox_rx) = mpsc::unbounded_channel();
        let (due_tx, due_rx) = mpsc::unbounded_channel();
        let (members, pending, provider, activity, firings, idle_reset) = store
            .call(|c| {
                let released = store::ledger_release_stale(c, store::now_unix())?;
                if released > 0 {
                    tracing::info!(released, "released ledger reservations left by an interrupted run");
                }
                let provider = (
                    store::get_setting(c, SETTING_PROVIDER_KIND)?,
                    store::get_setting(c, SETTING_PROVIDER_URL)?,
                    store::get_setting(c, SETTING_PROVIDER_MODEL)?,
                );
                let idle_reset = store::get_setting(c, SETTING_IDLE_RESET)?.and_then(|v| v.parse().ok()).unwrap_or(0);
                let members = store::list_members(c)?;
                let pending = store::pending_inbox(c)?;
                Ok((members, pending, provider, store::last_activity(c)?, store::pending_firings(c)?, idle_reset))
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
        broker.set_speech(broker::speech::load_setting(&store, secrets.get(broker::speech::SPEECH_KEY)).await?);
        let connections = store.call(|c| broker::connections::load_max(c)).await.context("load provider connections")?;
        broker.set_max_connections(connections);
        broker.set_voice(broker::voice::load_setting(&store, secrets.get(broker::voice::VOICE_KEY)).await?);

        // The core loop's state: its writers go to the loop, their readers into the engine.
        let member_count = members.len();
        let member_ids: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
        let mut state =
            CoreState::new(Roster::new(members), activity.into_iter().collect(), config.turn_cap, config.queue_cap);
        state.idle_reset_hours = idle_reset;
        let notify = broadcast::channel(256).0;
        let roster = state.members.reader();
        let backups = Backups::default();
        backups.set(backup::stored_schedule(&store).await);
        let (alerts, alert_inbox) = Alerts::new();
        let beat = Heartbeat::default();
        beat.set(heartbeat::stored(&store).await);
        let quotas = Quotas::new(quota::Parts {
            store: store.clone(),
            clock: config.clock.clone(),
            data_dir: dir.root().to_owned(),
            supervisor: workers.supervisor().map(ToOwned::to_owned),
            notify: notify.clone(),
            tracker: tracker.clone(),
            name_of: Arc::new(move |id| roster.read(|r| r.name(id))),
        });
        let engine = Engine::new(Shared {
            members: state.members.reader(),
            lanes: state.lanes.reader(),
            bots: state.bots.reader(),
            activity: state.activity.reader(),
            notify,
            config,
            dir,
            store,
            secrets,
            broker,
            workers,
            http,
            api_url,
            previews: Default::default(),
            stops: Default::default(),
            events: events.clone(),
            inbox_tx,
            cancel: cancel.clone(),
            tracker: tracker.clone(),
            keeper: keeper.clone(),
            quotas,
            backups,
            alerts,
            heartbeat: beat,
            reminders_wake: Default::default(),
            pauses_wake: Default::default(),
            // Handed in rather than imported: the core sits below the admin API.
            admin_api: Arc::new(|e: Engine, request: ControlRequest| {
                Box::pin(async move { control_contained(&e, request).await })
            }),
            started: Instant::now(),
            _lock: lock,
        });
        let mut core = Core::new(engine.clone(), state);
        core.start_bots();
        let gateway = Gateway { engine: engine.clone() };

        // Poll loops, the broker and the reminder timer have channels of their own, so they need
        // not know the loop's `Event`.
        tracker.spawn(forward(inbox_rx, events.clone(), Event::Inbox, cancel.clone()));
        tracker.spawn(forward(spend_rx, events.clone(), Event::Spend, cancel.clone()));
        tracker.spawn(forward(due_rx, events.clone(), Event::Reminders, cancel.clone()));
        if !pending.is_empty() {
            tracing::info!(count = pending.len(), "resuming messages left unanswered by the previous run");
            let _ = events.send(Event::Inbox(pending));
        }
        if !firings.is_empty() {
            tracing::info!(count = firings.len(), "delivering reminders that came due before the previous run stopped");
            let _ = events.send(Event::Reminders(firings));
        }
        keeper.spawn_vital("the core loop", core.run(events_rx));
        if unclean {
            tracing::warn!("the previous run ended without a clean shutdown (a power cut, a crash, kill -9)");
            engine.alerts.raise(Condition::UncleanStop, "");
        }
        let e = engine.clone();
        keeper.watch("the admins' alerts", move || alerts::run(e.clone(), alert_inbox.clone()));
        let beat = heartbeat::Parts {
            setting: engine.heartbeat.subscribe(),
            well: engine.alerts.all_well(),
            clock: engine.config.clock.clone(),
            cancel: cancel.clone(),
        };
        keeper.watch("the heartbeat", move || heartbeat::run(beat.clone()));
        let schedule = Schedule {
            store: engine.store.clone(),
            clock: engine.config.clock.clone(),
            wake: engine.reminders_wake.clone(),
            due: due_tx,
            cancel: cancel.clone(),
        };
        keeper.watch("the reminder timer", move || reminders::run_schedule(schedule.clone()));
        let e = engine.clone();
        keeper.watch("the pause timer", move || crate::core::run_pauses(e.clone()));
        let (e, cancel2) = (engine.clone(), cancel.clone());
        keeper.watch("the backup schedule", move || {
            let e = e.clone();
            backup::run_schedule(e.backups.subscribe(), cancel2.clone(), chrono::Local::now, move |dir, now| {
                let e = e.clone();
                async move {
                    let done = crate::control::backup::backup_into(&e, dir, false, now).await.map_err(|err| err.message);
                    match &done {
                        Ok(_) => e.alerts.clear(Condition::Backup),
                        Err(why) => e.alerts.raise(Condition::Backup, why.clone()),
                    }
                    done
                }
            })
        });
        engine.quotas.start(member_ids).await;
        if let Some(kb) = knowledge {
            let cancel = cancel.clone();
            keeper.watch("the household knowledge watcher", move || kb.clone().watch(cancel.clone()));
        }
        if let Some(listener) = worker_socket {
            let workers = engine.workers.clone();
            keeper.watch("the worker socket", move || workers.clone().serve_socket(listener.clone()));
        }
        log_level(&engine, level);
        if engine.config.control_socket {
            let gw = gateway.clone();
            let handler: crate::control::socket::Handler = Arc::new(move |request| {
                let gw = gw.clone();
                Box::pin(async move { gw.control(request).await })
            });
            crate::control::socket::serve_socket(&engine, handler).context("start the control socket")?;
        }
        tracing::info!(data_dir = %engine.dir.root().display(), members = member_count, "gateway serving");
        Ok(gateway)
    }

    /// Stops taking work, lets running turns finish for up to `grace`, stops workers and bots.
    /// Messages not answered by then stay in the inbox and are answered after the next start.
    pub async fn shutdown(&self, grace: Duration) {
        let inner = &self.engine;
        inner.cancel.cancel();
        inner.workers.shutdown_all();
        inner.tracker.close();
        if tokio::time::timeout(grace, inner.tracker.wait()).await.is_err() {
            tracing::warn!(
                "some tasks did not finish within {grace:?}; their messages will be retried at the next start"
            );
        }
        let _ = std::fs::remove_file(inner.dir.control_socket());
        lock::mark_stopped(&inner.dir);
    }

    /// Events as they happen, for the app: see [`GatewayEvent`]. A receiver that falls more
    /// than 256 events behind loses the oldest (`RecvError::Lagged`) and should ask for `Status`.
    pub fn subscribe(&self) -> broadcast::Receiver<GatewayEvent> {
        self.engine.notify.subscribe()
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.engine.dir.root()
    }

    /// A snapshot of everything the admin watches.
    pub async fn status(&self) -> anyhow::Result<StatusReport> {
        crate::control::status(&self.engine).await
    }

    /// Handles one admin request (`control/`). A panic while answering is contained: the admin
    /// gets an error and the gateway goes on.
    pub async fn control(&self, request: ControlRequest) -> Result<ControlReply, ControlError> {
        control_contained(&self.engine, request).await
    }

    /// The backup schedule in force: the folder and every how many hours; `None` when off.
    pub fn scheduled_backups(&self) -> Option<(std::path::PathBuf, u32)> {
        self.engine.backups.scheduled()
    }

    /// Why the gateway stopped on its own (a task that kept panicking), if it did. A running or
    /// a plainly shut-down gateway has none.
    pub fn failure(&self) -> Option<String> {
        self.engine.keeper.failure()
    }

    /// Resolves once the gateway stopped on its own, with the reason: `hearth serve` then exits
    /// non-zero, so the service manager starts it again.
    pub async fn failed(&self) -> String {
        self.engine.keeper.failed().await
    }
}

/// Answers one admin request (`control/`), containing a panic: the admin gets an error and the
/// gateway goes on. For `Gateway::control` and the admin's commands from Telegram
/// (`core/phone.rs`, through `Shared::admin_api`).
async fn control_contained(engine: &Engine, request: ControlRequest) -> Result<ControlReply, ControlError> {
    let answer = crate::control::handle(engine, request);
    match AssertUnwindSafe(answer).catch_unwind().await {
        Ok(reply) => reply,
        Err(panic) => {
            let panic = crate::keeper::panic_message(&*panic);
            tracing::error!(%panic, "answering an admin request panicked; it was caught");
            Err(ControlError::new(
                ErrorCode::Internal,
                "Hearth ran into a bug while doing this and stopped it part-way. Check whether it took effect, then try \
                 again; the log has the details",
            ))
        }
    }
}

/// Says at start how strongly members are separated: loudly when only by directories.
fn log_level(engine: &Engine, level: IsolationLevel) {
    match level {
        IsolationLevel::Process => tracing::warn!(
            "isolation level \"process\": every member's worker runs as this OS user, so members are separated by \
             directories only. Run Hearth as root (the Linux service does) for an OS account per member."
        ),
        other => match engine.workers.supervisor() {
            Some(path) => tracing::info!(
                level = other.as_str(),
                supervisor = %path.display(),
                "each member's worker runs as their own OS account, started by the Hearth supervisor"
            ),
            None => tracing::info!(level = other.as_str(), "each member's worker runs as their own OS account"),
        },
    }
}

/// Feeds another channel into the core loop until shutdown. Nothing in it can panic: a receive
/// and a send.
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
