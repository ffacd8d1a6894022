//! The core: one loop that every input goes through, and the state only it changes.
//!
//! The loop takes a closed set of inputs ([`Event`]): rows the poll loops just committed,
//! reminders that came due, turns that finished, the broker's spend news, and the admin's
//! changes. It routes each row (`routing::router`), feeds the lanes, and starts whatever turns the
//! lanes hand out. Everything slow (a model call, a Telegram send) runs in tasks it spawns, so the
//! loop never waits on the network; the one thing it awaits is the store, to redeem a pairing
//! code in order.
//!
//! **One writer.** The loop is the only writer of the state a message's path depends on: the
//! roster (members as served), the lanes, the bots, members' last activity, the paused and quiet
//! notes, the caps already announced, the idle-reset setting and the turn cap. It holds each in a
//! [`state::Writer`]; everyone else reads through a [`state::Reader`] in the [`Engine`]. The
//! admin API stores a change first and then sends it here as [`Event::Admin`] with an
//! acknowledgement it waits for (`changes.rs`), so an admin's answer always describes the
//! gateway as it now is. Spend state (caps, prices, models, the zone) is the broker's, behind its
//! own small API.
//!
//! **Panics.** Each event's handling is contained (`keeper::Keeper::contain`): a panic is
//! logged and counted, and the loop goes on with the next event. An inbox row whose handling
//! panicked is tried once more at once; if that panics too the row is closed as failed and the
//! member gets a kind sentence. A turn runs in a task of its own; if it panics, its
//! [`Event::TurnFinished`] is still sent — so a lane is never stuck busy — carrying the turn's
//! items, which go back to the front of the lane once; a second panic closes them like a row.
//!
//! Files: `engine.rs` (the shared handle and its helpers), `state.rs` (writers, readers, the
//! roster), `bots.rs`, `lanes.rs` (the scheduler), `inbox.rs` (one row: member, pairing,
//! stranger, paused, resting, a command), `household_bot.rs` (the household bot's rows: its
//! members, groups, help and admins' chats), `turn.rs` (one turn), `stream.rs` (a chat turn's answer
//! shown as a draft while it is written), `media.rs` (a turn's files:
//! fetched, heard, held), `voice.rs` (answering in voice), `albums.rs` (an album's parts into one turn), `notices.rs` (spend
//! notices and the admin's buttons), `reminders.rs` (delivering due reminders), `changes.rs` (the admin's
//! changes), `alerts/` (the admins' alerts: a task of its own, the one writer of the `alerts`
//! table), `phone.rs` (the admin's commands from Telegram: `/status`, `/pause`, `/resume`,
//! `/allow`, and each bot's command menu), `pauses.rs` (the timer that ends timed pauses).

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use futures_util::FutureExt as _;
use hearth_proto::control::{GatewayEvent, TurnActivity};
use hearth_proto::worker::TurnKind;
use tokio::sync::{mpsc, oneshot};

pub(crate) mod alerts;
mod albums;
mod bots;
mod changes;
mod engine;
mod household_bot;
mod inbox;
pub(crate) mod lanes;
mod media;
mod notices;
mod pauses;
mod phone;
mod reminders;
mod state;
mod stream;
mod turn;
mod voice;

pub(crate) use bots::Bots;
pub(crate) use changes::{Change, MemberUpdate};
pub(crate) use engine::{Engine, Shared, Stopping};
pub(crate) use pauses::run as run_pauses;
pub(crate) use state::{Roster, Writer};

use crate::broker::SpendEvent;
use crate::broker::spend::CapKind;
use crate::routing::roles::QuietNotes;
use crate::store::{self, DueReminder, InboxRow};
use lanes::{LaneEntry, Lanes};

/// The closed set of inputs to the core loop.
#[derive(Debug)]
pub(crate) enum Event {
    /// Rows a connector just committed (or pending rows found at start).
    Inbox(Vec<InboxRow>),
    /// A member's turn ended — successfully or not, or by a panic, when `panicked` holds its
    /// items to try again.
    TurnFinished { member_id: String, panicked: Option<Vec<LaneItem>> },
    /// The broker crossed a threshold or refused a call for spend.
    Spend(SpendEvent),
    /// Reminder occurrences committed as due (or left pending by an earlier run).
    Reminders(Vec<DueReminder>),
    /// An admin change, already stored; `ack` answers once it is applied.
    Admin { change: Change, ack: oneshot::Sender<()> },
    /// A transcription worked (`hint: None`) or failed in a way the admin can fix (what to
    /// set): the admin is told once, and again only after one has worked since.
    Speech { hint: Option<String> },
    /// What a member's running turn does now (`media.rs`), for the dashboard.
    Doing { member_id: String, doing: TurnActivity },
    /// The wait for the rest of a member's album ended (`albums.rs`).
    AlbumDue { member_id: String, generation: u64 },
    /// A member's running turn begins waiting on its provider (`back: None`: its slot is free
    /// meanwhile), or is back (`back`: answered once it holds a slot again; `lanes.rs`).
    ProviderWait { member_id: String, back: Option<oneshot::Sender<()>> },
}

/// An entry in a member's lane.
#[derive(Debug, Clone)]
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
    /// 0 the first time; 1 when a turn that held it panicked and it waits to be tried again.
    pub(crate) attempt: u8,
}

impl LaneEntry for LaneItem {
    /// Commands (`/new`, `/memory`, `/forget`, `/reminders`) and reminders are turns of their own.
    fn stands_alone(&self) -> bool {
        self.kind != TurnKind::Chat
    }
}

/// Inbox rows behind lane items (a reminder has none).
pub(crate) fn inbox_ids(items: &[LaneItem]) -> Vec<i64> {
    items.iter().filter_map(|i| i.row.as_ref().map(|r| r.id)).collect()
}

/// What a member reads when their message could not be handled even on a second try.
pub(crate) const SORRY: &str =
    "Sorry — something went wrong on my side with that message, and I couldn't answer it. Please send it again.";

/// The name panics in the core loop are counted under.
const LOOP: &str = "the core loop";

/// The core loop and the state it alone changes.
pub(crate) struct Core {
    engine: Engine,
    members: Writer<Roster>,
    lanes: Writer<Lanes<LaneItem>>,
    bots: Writer<Bots>,
    activity: Writer<HashMap<String, i64>>,
    /// When each paused member was last told so: at most one note per [`inbox::PAUSED_NOTE_EVERY`].
    paused_notes: HashMap<String, Instant>,
    /// The quiet period each resting member was last told about.
    quiet_notes: QuietNotes,
    /// Caps already reported as reached (scope, cap, period), so each is reported once.
    caps_reached: HashSet<(Option<String>, CapKind, String)>,
    /// `context.reset_after_idle_hours`; 0: off.
    idle_reset_hours: u32,
    /// Albums whose parts are still arriving, by member.
    albums: albums::Albums,
    /// Whether the admin has been told that speech recognition needs fixing, and it has not
    /// worked since.
    speech_told: bool,
    /// Turns back from their provider, waiting for a slot: answered by `dispatch`.
    resuming: HashMap<String, oneshot::Sender<()>>,
    /// The household bot and the groups it knows (`household_bot.rs`).
    household: household_bot::Household,
}

/// The writers [`Core::new`] takes over; their readers go into the [`Engine`] first.
pub(crate) struct CoreState {
    pub(crate) members: Writer<Roster>,
    pub(crate) lanes: Writer<Lanes<LaneItem>>,
    pub(crate) bots: Writer<Bots>,
    pub(crate) activity: Writer<HashMap<String, i64>>,
    pub(crate) idle_reset_hours: u32,
}

impl CoreState {
    pub(crate) fn new(members: Roster, activity: HashMap<String, i64>, turn_cap: usize, queue_cap: usize) -> Self {
        Self {
            members: Writer::new(members),
            lanes: Writer::new(Lanes::new(turn_cap, queue_cap)),
            bots: Writer::new(Bots::default()),
            activity: Writer::new(activity),
            idle_reset_hours: 0,
        }
    }
}

impl Core {
    pub(crate) fn new(engine: Engine, state: CoreState) -> Self {
        Self {
            engine,
            members: state.members,
            lanes: state.lanes,
            bots: state.bots,
            activity: state.activity,
            paused_notes: HashMap::new(),
            quiet_notes: QuietNotes::default(),
            caps_reached: HashSet::new(),
            idle_reset_hours: state.idle_reset_hours,
            albums: albums::Albums::new(),
            speech_told: false,
            resuming: HashMap::new(),
            household: household_bot::Household::default(),
        }
    }

    /// Starts every member's bot, and the household bot if one is set; called once, before the
    /// loop runs.
    pub(crate) fn start_bots(&mut self) {
        let members = self.members.read(Roster::list);
        for m in &members {
            self.bots.write(|b| b.start(&self.engine, m));
        }
        // At start, before anything else waits on the store.
        match self.engine.store.call_sync(|c| Ok((store::household_bot(c)?, store::list_groups(c)?))) {
            Ok((bot, groups)) => self.household = household_bot::Household::load(bot, groups),
            Err(e) => tracing::error!(error = %e, "could not read the household bot; it stays off until set again"),
        }
        if let Some(h) = self.household.bot.clone() {
            self.bots.write(|b| b.start_household(&self.engine, &h));
        }
        self.refresh_admin_available();
    }

    /// The loop: one event at a time, each contained, until shutdown.
    pub(crate) async fn run(mut self, mut events: mpsc::UnboundedReceiver<Event>) {
        let keeper = self.engine.keeper.clone();
        loop {
            let event = tokio::select! {
                _ = self.engine.cancel.cancelled() => return,
                e = events.recv() => match e { Some(e) => e, None => return },
            };
            match event {
                Event::Inbox(rows) => {
                    for row in rows {
                        self.inbox_row(row).await;
                    }
                }
                Event::TurnFinished { member_id, panicked } => {
                    keeper.contain(LOOP, || self.turn_finished(&member_id, panicked));
                }
                Event::Reminders(due) => {
                    for d in due {
                        keeper.contain(LOOP, || self.on_reminder_due(d));
                    }
                }
                Event::Spend(SpendEvent::Settled { .. }) => {}
                Event::Spend(e) => {
                    keeper.contain(LOOP, || self.on_spend(e));
                }
                Event::Speech { hint } => {
                    keeper.contain(LOOP, || self.on_speech(hint));
                }
                Event::Doing { member_id, doing } => self.lanes.write(|l| l.set_doing(&member_id, doing)),
                Event::ProviderWait { member_id, back: None } => {
                    self.lanes.write(|l| l.wait_on_provider(&member_id));
                }
                Event::ProviderWait { member_id, back: Some(go) } => {
                    match self.lanes.write(|l| l.back_from_provider(&member_id)) {
                        true => drop(go.send(())),
                        false => drop(self.resuming.insert(member_id, go)),
                    }
                }
                Event::AlbumDue { member_id, generation } => {
                    keeper.contain(LOOP, || self.album_due(&member_id, generation));
                }
                Event::Admin { change, ack } => {
                    // A panic drops `ack`: the admin hears that the change was not applied.
                    if keeper.contain(LOOP, || self.apply(change)).is_some() {
                        let _ = ack.send(());
                    }
                }
            }
            keeper.contain(LOOP, || self.dispatch());
            // Every input may change what a status snapshot shows; with no input, no event.
            self.engine.emit(GatewayEvent::Changed);
        }
    }

    /// One row, contained: tried again at once if its handling panicked, then closed as failed
    /// with a kind sentence to the member if it panicked again.
    async fn inbox_row(&mut self, row: InboxRow) {
        let keeper = self.engine.keeper.clone();
        for attempt in 0..2 {
            if keeper.contain_async(LOOP, self.on_inbox_row(row.clone())).await.is_some() {
                return;
            }
            let next = if attempt == 0 { "trying it once more" } else { "closing it as failed" };
            tracing::warn!(member = %row.member_id, row = row.id, "handling an inbox row panicked; {next}");
        }
        let from_member =
            self.members.read(|r| r.get(&row.member_id).and_then(|m| m.telegram_user_id)) == Some(row.msg.from_id);
        if from_member {
            self.engine.reply_and_close(
                &row.member_id,
                row.msg.chat_id,
                SORRY.to_owned(),
                row.id,
                "failed",
                "panicked",
            );
        } else {
            self.engine.finish_rows(vec![row.id], "failed", "panicked");
        }
    }

    fn turn_finished(&mut self, member_id: &str, panicked: Option<Vec<LaneItem>>) {
        self.lanes.write(|l| l.finish(member_id));
        self.resuming.remove(member_id);
        if let Some(items) = panicked {
            self.retry_turn(member_id, items);
        }
    }

    /// Starts every turn the lanes will hand out now, each in a task of its own that always
    /// reports back (see the module's note on panics).
    fn dispatch(&mut self) {
        // Turns back from their provider go on first.
        while let Some(member_id) = self.lanes.write(|l| l.next_resumed()) {
            if let Some(go) = self.resuming.remove(&member_id) {
                let _ = go.send(());
            }
        }
        loop {
            let next = self.lanes.write(|l| l.next_turn(Instant::now()));
            let Some((member_id, items)) = next else { return };
            let engine = self.engine.clone();
            self.engine.tracker.spawn(async move {
                let copies = items.clone();
                let ran = AssertUnwindSafe(turn::run(&engine, &member_id, items)).catch_unwind().await;
                // The worker may have written: its folder is measured for the quota (rate-limited).
                engine.quotas.measure_soon(&member_id);
                let panicked = ran.err().map(|panic| {
                    let panic = crate::keeper::panic_message(&*panic);
                    tracing::error!(member = %member_id, %panic, "a turn panicked; it was caught");
                    copies
                });
                let _ = engine.events.send(Event::TurnFinished { member_id, panicked });
            });
        }
    }

    /// A turn that panicked: its items go back to the front of the lane once; what already had
    /// its second chance is closed — a message with a kind sentence, a reminder as failed (a
    /// recurring one moves on at its next firing).
    fn retry_turn(&mut self, member_id: &str, items: Vec<LaneItem>) {
        let (again, spent): (Vec<_>, Vec<_>) = items.into_iter().partition(|i| i.attempt == 0);
        let again: Vec<LaneItem> = again.into_iter().map(|i| LaneItem { attempt: 1, ..i }).collect();
        if !again.is_empty() {
            tracing::warn!(member = member_id, items = again.len(), "trying the turn once more");
            self.lanes.write(|l| l.requeue(member_id, again));
        }
        let rows: Vec<&InboxRow> = spent.iter().filter_map(|i| i.row.as_ref()).collect();
        if let Some((first, rest)) = rows.split_first() {
            self.engine.finish_rows(rest.iter().map(|r| r.id).collect(), "failed", "panicked");
            self.engine.reply_and_close(member_id, first.msg.chat_id, SORRY.to_owned(), first.id, "failed", "panicked");
        }
        for item in &spent {
            if let TurnKind::Reminder { id, due_at } = item.kind {
                let due = DueReminder { member_id: member_id.to_owned(), reminder_id: id, due_at };
                self.engine.finish_firing(due, "failed", "panicked");
            }
        }
    }

    /// Tells the admins what to set for speech recognition, once until it works again.
    fn on_speech(&mut self, hint: Option<String>) {
        let Some(hint) = hint else {
            self.speech_told = false;
            return;
        };
        if std::mem::replace(&mut self.speech_told, true) {
            return;
        }
        tracing::warn!("a voice note could not be transcribed; the admin is told what to set");
        for admin in self.engine.admins() {
            self.engine.send_to_member(&admin.id, hint.clone());
        }
    }

    pub(crate) fn refresh_admin_available(&self) {
        let available = self.members.read(|r| !r.admins().is_empty());
        self.engine.broker.set_admin_available(available);
    }
}
