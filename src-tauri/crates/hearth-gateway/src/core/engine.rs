//! [`Engine`]: what every part of a running gateway shares — its settings, the store, the broker,
//! the workers, the Telegram client, the channel into the core loop, and read-only views of the
//! state the loop owns. Cheap to clone; the core loop's tasks, the admin API and the `Gateway`
//! handle each hold one.
//!
//! The helpers here are the small things a turn, a notice or the loop itself does again and again:
//! find a member or their bot, send a plain reply and close its inbox rows, tell the app.

use std::collections::HashMap;
use std::fs::File;
use std::time::Instant;

use hearth_proto::control::GatewayEvent;
use teloxide::Bot;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::bots::Bots;
use super::lanes::Lanes;
use super::state::{Reader, Roster};
use super::{Change, Event, LaneItem};
use crate::broker::Broker;
use crate::config::GatewayConfig;
use crate::household::backup::Backups;
use crate::household::quota::Quotas;
use crate::household::reminders::Wake;
use crate::keeper::Keeper;
use crate::paths::DataDir;
use crate::routing::roles::{self, Quiet};
use crate::secrets::Secrets;
use crate::store::{self, DueReminder, InboxRow, MemberRow, Store};
use crate::telegram;
use crate::workers::Workers;

/// A handle to a running gateway's shared parts. Dereferences to [`Shared`].
#[derive(Clone)]
pub(crate) struct Engine(std::sync::Arc<Shared>);

impl std::ops::Deref for Engine {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What an [`Engine`] shares. Handles and settings only: the state that changes lives in the
/// core loop and is seen here through [`Reader`]s.
pub(crate) struct Shared {
    pub(crate) config: GatewayConfig,
    pub(crate) dir: DataDir,
    pub(crate) store: Store,
    pub(crate) secrets: Secrets,
    pub(crate) broker: Broker,
    pub(crate) workers: Workers,
    /// The Bot API client all bots share, and where it points.
    pub(crate) http: reqwest::Client,
    pub(crate) api_url: reqwest::Url,
    /// What each bot's server allows for showing an answer while it is written: drafts, a
    /// message edited in place, or typing only (`telegram/preview.rs`).
    pub(crate) previews: crate::telegram::PreviewSupport,
    /// The running turns' Stop buttons (`stream.rs`).
    pub(crate) stops: super::stream::Stops,
    /// Events for subscribers (the app); sending with nobody listening is fine.
    pub(crate) notify: broadcast::Sender<GatewayEvent>,
    /// Into the core loop.
    pub(crate) events: mpsc::UnboundedSender<Event>,
    /// Where poll loops deliver committed rows (forwarded into the core loop).
    pub(crate) inbox_tx: mpsc::UnboundedSender<Vec<InboxRow>>,
    pub(crate) cancel: CancellationToken,
    pub(crate) tracker: TaskTracker,
    pub(crate) keeper: Keeper,
    /// Members' disk quota and what their folders measured.
    pub(crate) quotas: Quotas,
    /// One backup at a time, and the schedule in force.
    pub(crate) backups: Backups,
    /// Wakes the reminder timer when a worker reported a changed schedule.
    pub(crate) reminders_wake: Wake,
    /// Conditions the admins are alerted about (`alerts/`).
    pub(crate) alerts: super::alerts::Alerts,
    /// The heartbeat in force (`household/heartbeat.rs`).
    pub(crate) heartbeat: crate::household::heartbeat::Heartbeat,
    /// Wakes the pause timer (`pauses.rs`) when a member was paused or resumed.
    pub(crate) pauses_wake: Wake,
    /// The admin API, for the admin's commands from Telegram (`phone.rs`).
    pub(crate) admin_api: super::phone::AdminApi,
    pub(crate) started: Instant,
    // The core loop's state, read-only.
    pub(crate) members: Reader<Roster>,
    pub(crate) lanes: Reader<Lanes<LaneItem>>,
    pub(crate) bots: Reader<Bots>,
    /// When each member last wrote (Unix seconds), for the status.
    pub(crate) activity: Reader<HashMap<String, i64>>,
    /// Held for the gateway's lifetime, by whoever still holds an engine: one gateway per data
    /// directory.
    pub(crate) _lock: File,
}

/// The core loop is gone (the gateway is stopping): a change could not be applied.
#[derive(Debug, thiserror::Error)]
#[error("the gateway is stopping, so the change was not applied; start Hearth again and retry")]
pub(crate) struct Stopping;

impl Engine {
    pub(crate) fn new(shared: Shared) -> Self {
        Self(std::sync::Arc::new(shared))
    }

    pub(crate) fn emit(&self, event: GatewayEvent) {
        // An error only means nobody is subscribed.
        let _ = self.notify.send(event);
    }

    /// Hands an admin change to the core loop and waits until it is applied, so the admin's
    /// answer describes the gateway as it now is.
    pub(crate) async fn change(&self, change: Change) -> Result<(), Stopping> {
        let (ack, applied) = oneshot::channel();
        self.events.send(Event::Admin { change, ack }).map_err(|_| Stopping)?;
        applied.await.map_err(|_| Stopping)
    }

    pub(crate) fn member(&self, member_id: &str) -> Option<MemberRow> {
        self.members.read(|r| r.get(member_id).cloned())
    }

    pub(crate) fn bot_for(&self, member_id: &str) -> Option<Bot> {
        self.bots.read(|b| b.bot(member_id))
    }

    /// Admins who can be asked over Telegram: marked admin and paired.
    pub(crate) fn admins(&self) -> Vec<MemberRow> {
        self.members.read(Roster::admins)
    }

    /// The member's quiet time in progress at the gateway's "now", if any.
    pub(crate) fn quiet_now(&self, m: &MemberRow) -> Option<Quiet> {
        roles::quiet_at(m.quiet_hours?, self.broker.timezone(), self.config.clock.now())
    }

    /// Sends `text` to a chat as plain text, then closes the row: `done` with `outcome` once
    /// sent, `failed` when it could not be.
    pub(crate) fn reply_and_finish(
        &self,
        member_id: &str,
        chat_id: i64,
        text: String,
        row_id: i64,
        outcome: &'static str,
    ) {
        self.reply_and_close(member_id, chat_id, text, row_id, "done", outcome);
    }

    /// [`Engine::reply_and_finish`] with the state the row gets once the reply is out.
    pub(crate) fn reply_and_close(
        &self,
        member_id: &str,
        chat_id: i64,
        text: String,
        row_id: i64,
        state: &'static str,
        outcome: &'static str,
    ) {
        let engine = self.clone();
        let member_id = member_id.to_owned();
        self.tracker.spawn(async move {
            let sent = match engine.bot_for(&member_id) {
                Some(bot) => telegram::send_plain(&bot, chat_id, &text).await.map_err(|e| e.to_string()),
                None => Err("bot stopped".into()),
            };
            match sent {
                Ok(()) => engine.finish_rows(vec![row_id], state, outcome),
                Err(e) => {
                    tracing::warn!(member = %member_id, error = %e, "could not send a reply");
                    engine.finish_rows(vec![row_id], "failed", "send_failed");
                }
            }
        });
    }

    /// Closes inbox rows (and forgets their text), off the caller's task.
    pub(crate) fn finish_rows(&self, ids: Vec<i64>, state: &'static str, outcome: &'static str) {
        if ids.is_empty() {
            return;
        }
        let store = self.store.clone();
        self.tracker.spawn(async move {
            if let Err(e) = store.call(move |c| store::finish_inbox(c, &ids, state, outcome)).await {
                tracing::error!(error = %e, "could not close inbox rows; they will be retried at the next start");
            }
        });
    }

    /// Closes a reminder firing, off the caller's task.
    pub(crate) fn finish_firing(&self, due: DueReminder, state: &'static str, outcome: &'static str) {
        let store = self.store.clone();
        self.tracker.spawn(async move {
            if let Err(e) = store.call(move |c| store::finish_firing(c, &due, state, outcome)).await {
                tracing::error!(error = %e, "could not close a reminder firing; it comes again at the next start");
            }
        });
    }

    /// A plain message to a member's paired chat (a spend notice), if they have one.
    pub(crate) fn send_to_member(&self, member_id: &str, text: String) {
        let chat = self.members.read(|r| r.get(member_id).and_then(|m| m.chat_id));
        let (Some(chat), Some(bot)) = (chat, self.bot_for(member_id)) else { return };
        self.tracker.spawn(async move {
            if let Err(e) = telegram::send_plain(&bot, chat, &text).await {
                tracing::warn!(error = %e, "could not send a spend notice");
            }
        });
    }
}
