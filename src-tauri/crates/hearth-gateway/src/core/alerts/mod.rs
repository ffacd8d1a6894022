//! Alerts to the admins' phones: a member's bot that stopped working, the provider failing, the
//! data folder's disk nearly full, a scheduled backup that failed, a restart after an unclean
//! stop — each told once to every admin who wants it, in their own bot's chat, with one "fixed"
//! line when it clears.
//!
//! Whoever sees a condition reports it through the cheap [`Alerts`] handle (a bot's poll loop
//! through `core/bots.rs`'s state hook, the backup schedule through the wiring, the start
//! itself for an unclean stop); the broker's [`ProviderHealth`] and the disk are watched here.
//! One task ([`run`]) is the one writer of the `alerts` table: it applies each report with
//! `rules.rs` (pure: when to tell, hold back, limit, and the words), stores the row first and
//! then sends, so a restart repeats nothing and loses no "fixed" line. It also says whether all
//! is well ([`Alerts::all_well`]) for the heartbeat. Cap questions are not alerts: they go to
//! every admin whatever their alert setting, since they need an answer (`notices.rs`).
//!
//! Recipients: paired admins whose setting (`members.alerts`) wants the message and whose own
//! bot works — an admin's broken bot cannot deliver, so the other admins are told and the app
//! shows it. Times are the gateway's clock, so tests move them.

mod rules;

use std::sync::Arc;
use std::time::Duration;

use hearth_proto::control::BotState;
use tokio::sync::{mpsc, watch};

use super::Engine;
use crate::broker::ProviderHealth;
use crate::household::disk;
use crate::store::{self, AlertRow};
use crate::telegram;
pub(crate) use rules::Condition;
use rules::{Limiter, Tell};

/// How often the data folder's disk is measured.
const DISK_EVERY: i64 = 300;
/// The longest one alert message may take to send before the next one goes.
const SEND_LIMIT: Duration = Duration::from_secs(30);
/// The longest the task sleeps on the system clock, so a clock that jumps is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(300);

/// What is reported to the alerts task.
#[derive(Debug)]
enum Report {
    Raise {
        condition: Condition,
        detail: String,
    },
    Clear {
        condition: Condition,
    },
    /// The condition can never come back (its member was removed): its row goes.
    Forget {
        condition: Condition,
    },
}

/// Reports conditions to the alerts task; cheap to clone.
#[derive(Clone)]
pub(crate) struct Alerts {
    reports: mpsc::UnboundedSender<Report>,
    well: watch::Receiver<bool>,
}

/// The task's end of [`Alerts`], kept so the task can be started again after a panic.
#[derive(Clone)]
pub(crate) struct Inbox {
    // tokio's Mutex: held by the running task across its awaits; a panic releases it.
    reports: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Report>>>,
    well: Arc<watch::Sender<bool>>,
}

impl Alerts {
    pub(crate) fn new() -> (Alerts, Inbox) {
        let (tx, rx) = mpsc::unbounded_channel();
        // Not well until the task has looked: no heartbeat before the first look.
        let (well_tx, well) = watch::channel(false);
        let inbox = Inbox { reports: Arc::new(tokio::sync::Mutex::new(rx)), well: Arc::new(well_tx) };
        (Alerts { reports: tx, well }, inbox)
    }

    pub(crate) fn raise(&self, condition: Condition, detail: impl Into<String>) {
        // An error only means the gateway is stopping.
        let _ = self.reports.send(Report::Raise { condition, detail: detail.into() });
    }

    pub(crate) fn clear(&self, condition: Condition) {
        let _ = self.reports.send(Report::Clear { condition });
    }

    pub(crate) fn forget(&self, condition: Condition) {
        let _ = self.reports.send(Report::Forget { condition });
    }

    /// A member's bot changed state: a revoked token or another poller raises its alert, polling
    /// again clears it; other states (Telegram unreachable, a 429) are no one bot's fault.
    pub(crate) fn bot_state(&self, member_id: &str, state: &BotState) {
        let condition = Condition::Bot(member_id.to_owned());
        match state {
            BotState::TokenRevoked => self.raise(condition, rules::TOKEN_REVOKED),
            BotState::UsedElsewhere => self.raise(condition, rules::USED_ELSEWHERE),
            BotState::Polling => self.clear(condition),
            _ => {}
        }
    }

    /// `true` while no bot is broken, the provider is not down and the disk has room: what the
    /// heartbeat waits for.
    pub(crate) fn all_well(&self) -> watch::Receiver<bool> {
        self.well.clone()
    }
}

/// The alerts task: applies reports, watches the provider and the disk, and tells the admins,
/// until the gateway stops.
pub(crate) async fn run(engine: Engine, inbox: Inbox) {
    let mut reports = inbox.reports.lock().await;
    let clock = engine.config.clock.clone();
    let mut moved = clock.watch();
    let mut provider = engine.broker.provider_health();
    let mut limiter = Limiter::default();
    let mut next_disk = clock.now().timestamp();
    loop {
        let now = clock.now().timestamp();
        if now >= next_disk {
            measure_disk(&engine, now).await;
            next_disk = now + DISK_EVERY;
        }
        let wake = match tell_due(&engine, &mut limiter, now).await {
            Ok((wake, well)) => {
                inbox.well.send_if_modified(|w| std::mem::replace(w, well) != well);
                wake.map_or(next_disk, |w| w.min(next_disk))
            }
            Err(e) => {
                tracing::error!(error = %e, "could not read the alerts; trying again in a minute");
                now + 60
            }
        };
        let sleep = if clock.is_manual() {
            None
        } else {
            Some(Duration::from_secs((wake - clock.now().timestamp()).max(1) as u64).min(MAX_SLEEP))
        };
        let look = crate::clock::next_look(moved.as_mut(), sleep);
        tokio::select! {
            biased;
            _ = engine.cancel.cancelled() => return,
            report = reports.recv() => match report {
                Some(report) => apply(&engine, report, clock.now().timestamp()).await,
                None => return,
            },
            changed = provider.changed() => {
                if changed.is_err() {
                    return;
                }
                let health = provider.borrow_and_update().clone();
                let now = clock.now().timestamp();
                match health {
                    ProviderHealth::Down(detail) => apply(&engine, Report::Raise { condition: Condition::Provider, detail }, now).await,
                    ProviderHealth::Answering => apply(&engine, Report::Clear { condition: Condition::Provider }, now).await,
                    ProviderHealth::Unknown => {}
                }
            }
            _ = look => {}
        }
    }
}

/// Stores what one report changes.
async fn apply(engine: &Engine, report: Report, now: i64) {
    let stored = engine
        .store
        .call(move |c| {
            let (condition, next) = match &report {
                Report::Forget { condition } => return store::delete_alert(c, &condition.key()),
                Report::Raise { condition, detail } => {
                    let key = condition.key();
                    (condition, rules::raise(store::get_alert(c, &key)?.as_ref(), &key, detail, now))
                }
                Report::Clear { condition } => {
                    (condition, rules::clear(store::get_alert(c, &condition.key())?.as_ref(), None, now))
                }
            };
            if let Some(row) = next {
                tracing::info!(alert = %condition.key(), raised = row.cleared_at.is_none(), "alert condition changed");
                store::put_alert(c, &row)?;
            }
            Ok(())
        })
        .await;
    if let Err(e) = stored {
        tracing::error!(error = %e, "could not record an alert condition");
    }
}

/// Measures the data folder's disk: nearly full raises, room again clears.
async fn measure_disk(engine: &Engine, now: i64) {
    let root = engine.dir.root().to_owned();
    let probe = engine.config.disk_fill.clone();
    let measured = tokio::task::spawn_blocking(move || match probe {
        Some(p) => (p.0)(&root),
        None => disk::used_percent(&root),
    })
    .await;
    let percent = match measured {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return tracing::warn!(error = %e, "could not measure the data folder's disk"),
        Err(e) => return tracing::warn!(error = %e, "measuring the data folder's disk failed"),
    };
    let condition = Condition::Disk;
    if percent >= disk::FULL_PERCENT {
        apply(engine, Report::Raise { condition, detail: percent.to_string() }, now).await;
    } else if percent < disk::ROOM_PERCENT {
        // The "fixed" line says how full it is now.
        let key = condition.key();
        let detail = percent.to_string();
        let stored = engine
            .store
            .call(move |c| match rules::clear(store::get_alert(c, &key)?.as_ref(), Some(&detail), now) {
                Some(row) => store::put_alert(c, &row),
                None => Ok(()),
            })
            .await;
        if let Err(e) = stored {
            tracing::error!(error = %e, "could not record an alert condition");
        }
    }
}

/// Tells whatever is due at `now`, storing each row before its message goes. Answers when
/// something next waits on time, and whether all is well.
async fn tell_due(engine: &Engine, limiter: &mut Limiter, now: i64) -> Result<(Option<i64>, bool), store::StoreError> {
    let rows = engine.store.call(|c| store::list_alerts(c)).await?;
    let mut wake: Option<i64> = None;
    let mut well = true;
    for row in rows {
        let Some(condition) = Condition::from_key(&row.key) else { continue };
        let name = match &condition {
            Condition::Bot(id) => match engine.members.read(|r| r.name(id)) {
                Some(name) => name,
                None => {
                    // Removed while Hearth was stopped.
                    let key = row.key.clone();
                    engine.store.call(move |c| store::delete_alert(c, &key)).await?;
                    continue;
                }
            },
            _ => String::new(),
        };
        let row = match rules::due(&row, condition.one_off(), now) {
            Some((tell, next)) => {
                let stored = next.clone();
                engine.store.call(move |c| store::put_alert(c, &stored)).await?;
                if tell != Tell::Nothing {
                    send(engine, limiter, tell, &condition, &next, &name, now).await;
                }
                next
            }
            None => row,
        };
        if row.cleared_at.is_none() && condition.spoils_health() {
            well = false;
        }
        if let Some(at) = rules::next_due(&row) {
            wake = Some(wake.map_or(at, |w| w.min(at)));
        }
    }
    Ok((wake, well))
}

/// Sends one alert to every admin who wants it and can get it.
async fn send(
    engine: &Engine,
    limiter: &mut Limiter,
    tell: Tell,
    condition: &Condition,
    row: &AlertRow,
    name: &str,
    now: i64,
) {
    let text = rules::text(tell, condition, &row.detail, name);
    for admin in engine.admins() {
        if !rules::wants(admin.alerts, tell, condition) || *condition == Condition::Bot(admin.id.clone()) {
            continue;
        }
        // Their own bot stopped working: it cannot deliver (the app shows it).
        let own = engine.bots.read(|b| b.state(&admin.id));
        if matches!(own, BotState::TokenRevoked | BotState::UsedElsewhere) {
            continue;
        }
        if !limiter.allow(&admin.id, now) {
            tracing::warn!(admin = %admin.id, alert = %row.key, "too many alerts this hour; this one is not sent");
            continue;
        }
        let (Some(chat), Some(bot)) = (admin.chat_id, engine.bot_for(&admin.id)) else { continue };
        match tokio::time::timeout(SEND_LIMIT, telegram::send_plain(&bot, chat, &text)).await {
            Ok(Ok(())) => tracing::info!(admin = %admin.id, alert = %row.key, "admin alerted"),
            Ok(Err(e)) => tracing::warn!(admin = %admin.id, alert = %row.key, error = %e, "could not send an alert"),
            Err(_) => tracing::warn!(admin = %admin.id, alert = %row.key, "sending an alert took too long"),
        }
    }
}
