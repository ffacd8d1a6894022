//! The members' bots, and the household bot (under `store::HOUSEHOLD_ID`), as the gateway runs
//! them: one poll loop each (`telegram::PollLoop`), watched by the keeper. The core loop is the one writer of [`Bots`] — it starts a bot when a member is
//! added or their token replaced, stops it when they are removed — and everyone else reads it:
//! a turn finds the bot to answer with, the status shows each bot's state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hearth_proto::control::{BotState, GatewayEvent};
use teloxide::Bot;
use tokio_util::sync::CancellationToken;

use super::Engine;
use crate::secrets;
use crate::store::{self, HOUSEHOLD_ID, HouseholdBotRow, MemberRow};
use crate::telegram::{self, PollLoop};

/// One member's bot as the gateway runs it.
pub(crate) struct BotHandle {
    bot: Bot,
    state: Arc<Mutex<BotState>>,
    /// Stops this bot's poll loop (member removed, token replaced) — a child of the gateway's
    /// token.
    cancel: CancellationToken,
}

impl Drop for BotHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Every member's running bot, by member id.
#[derive(Default)]
pub(crate) struct Bots(HashMap<String, BotHandle>);

impl Bots {
    pub(crate) fn bot(&self, member_id: &str) -> Option<Bot> {
        self.0.get(member_id).map(|b| b.bot.clone())
    }

    /// The bot's state as its poll loop last reported it; `Starting` when there is none.
    pub(crate) fn state(&self, member_id: &str) -> BotState {
        match self.0.get(member_id) {
            // A poll loop that panicked while setting its state leaves the last state it set.
            Some(b) => b.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone(),
            None => BotState::Starting,
        }
    }

    pub(crate) fn is_running(&self, member_id: &str) -> bool {
        self.0.contains_key(member_id)
    }

    // Changes: only reachable through the core loop's `Writer<Bots>`.

    /// Starts polling `m`'s bot. Without a stored token the bot shows as revoked (the admin
    /// replaces the token) and nothing polls.
    pub(crate) fn start(&mut self, engine: &Engine, m: &MemberRow) {
        let token = engine.secrets.get(&secrets::bot_token_key(&m.id));
        let what = Polled { key: m.id.clone(), name: m.name.clone(), bot_id: m.bot_id, next_offset: m.next_offset };
        let has_token = token.is_some();
        self.spawn(engine, what, token, false);
        // An admin's own menu, once per start (everyone's is the poll loop's).
        if has_token && let Some(h) = self.0.get(&m.id) {
            super::phone::set_admin_menu(engine, m, h.bot.clone(), false);
        }
    }

    /// Starts polling the household bot, under [`HOUSEHOLD_ID`]; like a member's bot otherwise.
    pub(crate) fn start_household(&mut self, engine: &Engine, h: &HouseholdBotRow) {
        let token = engine.secrets.get(secrets::HOUSEHOLD_BOT_KEY);
        let what = Polled {
            key: HOUSEHOLD_ID.to_owned(),
            name: "the household bot".to_owned(),
            bot_id: h.bot_id,
            next_offset: h.next_offset,
        };
        self.spawn(engine, what, token, true);
    }

    fn spawn(&mut self, engine: &Engine, what: Polled, token: Option<String>, household: bool) {
        let cancel = engine.cancel.child_token();
        let Some(token) = token else {
            tracing::error!(member = %what.key, "no token stored for this bot; replace the token");
            let state = Arc::new(Mutex::new(BotState::TokenRevoked));
            if !household {
                engine.alerts.bot_state(&what.key, &BotState::TokenRevoked);
            }
            let bot = telegram::bot(&engine.http, &engine.api_url, "0:missing");
            self.0.insert(what.key, BotHandle { bot, state, cancel });
            return;
        };
        let bot = telegram::bot(&engine.http, &engine.api_url, &token);
        let state = Arc::new(Mutex::new(BotState::Starting));
        let (notify, alerts) = (engine.notify.clone(), engine.alerts.clone());
        let (member_id, name) = (what.key.clone(), what.name);
        let on_change: telegram::StateHook = Arc::new(move |state: &BotState| {
            let _ = notify.send(GatewayEvent::Changed);
            // Alerts name a member; the household bot's trouble shows in `hearth household bot`.
            if !household {
                alerts.bot_state(&member_id, state);
            }
            if matches!(state, BotState::TokenRevoked | BotState::UsedElsewhere) {
                let trouble =
                    GatewayEvent::BotTrouble { member_id: member_id.clone(), name: name.clone(), state: state.clone() };
                let _ = notify.send(trouble);
            }
        });
        let parts = PollParts {
            member_id: what.key.clone(),
            bot_id: what.bot_id,
            bot: bot.clone(),
            store: engine.store.clone(),
            state: state.clone(),
            inbox: engine.inbox_tx.clone(),
            poll_timeout: engine.config.poll_timeout,
            cancel: cancel.clone(),
            on_change,
            household,
        };
        let backoff = engine.config.backoff;
        let mut offset = Some(what.next_offset);
        engine.keeper.watch(format!("the poll loop of {}", what.key), move || {
            let parts = parts.clone();
            // The first run starts where the bot's row says; a run after a panic asks the
            // store, which holds the offset of everything committed (Telegram resends the rest,
            // and the inbox drops what it already has).
            let known = offset.take();
            async move {
                let next_offset = match known {
                    Some(o) => o,
                    None => {
                        let bot_id = parts.bot_id;
                        parts.store.call(move |c| store::bot_offset(c, bot_id)).await.ok().flatten().unwrap_or(0)
                    }
                };
                parts.into_loop(next_offset).run(backoff).await;
            }
        });
        self.0.insert(what.key, BotHandle { bot, state, cancel });
    }

    /// Stops polling a member's bot (dropping its handle cancels the loop).
    pub(crate) fn stop(&mut self, member_id: &str) {
        self.0.remove(member_id);
    }
}

/// Which bot a poll loop polls: a member's (keyed by their id) or the household's.
struct Polled {
    key: String,
    /// Who the app names when the bot is in trouble.
    name: String,
    bot_id: i64,
    next_offset: i64,
}

/// What a poll loop is built from, kept so it can be built again after a panic.
#[derive(Clone)]
struct PollParts {
    member_id: String,
    bot_id: i64,
    bot: Bot,
    store: crate::store::Store,
    state: Arc<Mutex<BotState>>,
    inbox: tokio::sync::mpsc::UnboundedSender<Vec<crate::store::InboxRow>>,
    poll_timeout: std::time::Duration,
    cancel: CancellationToken,
    on_change: telegram::StateHook,
    household: bool,
}

impl PollParts {
    fn into_loop(self, next_offset: i64) -> PollLoop {
        PollLoop {
            member_id: self.member_id,
            bot_id: self.bot_id,
            bot: self.bot,
            next_offset,
            store: self.store,
            state: self.state,
            inbox: self.inbox,
            poll_timeout: self.poll_timeout,
            cancel: self.cancel,
            on_change: Some(self.on_change),
            household: self.household,
        }
    }
}
