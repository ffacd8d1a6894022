//! One bot's long poll: commit-then-confirm, and the bot's state as the admin should read it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_proto::backoff::{self, Jitter, Retries};
use hearth_proto::control::BotState;
use teloxide::payloads::GetUpdatesSetters;
use teloxide::requests::Requester;
use teloxide::types::{AllowedUpdate, BotCommand, Update};
use teloxide::{ApiError, Bot, RequestError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::extract_message;
use crate::store::{self, InboxRow, NewMessage, Store};

/// Everything one bot's poll loop needs.
pub struct PollLoop {
    pub member_id: String,
    pub bot_id: i64,
    pub bot: Bot,
    pub next_offset: i64,
    pub store: Store,
    pub state: Arc<Mutex<BotState>>,
    pub inbox: mpsc::UnboundedSender<Vec<InboxRow>>,
    pub poll_timeout: Duration,
    pub cancel: CancellationToken,
    /// Told when the bot's state changes (not on every poll): the gateway's events for the app.
    pub on_change: Option<StateHook>,
    /// The household bot (`store::HOUSEHOLD_ID`): it asks for `my_chat_member` updates by name
    /// (being added to a group) and registers its own commands.
    pub household: bool,
}

/// What a [`PollLoop`] calls with a bot's new state.
pub type StateHook = Arc<dyn Fn(&BotState) + Send + Sync>;

/// How long to wait after each kind of trouble.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
    /// After Telegram says the token is invalid: it will not heal by itself, so check rarely.
    pub revoked: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { min: Duration::from_secs(1), max: Duration::from_secs(60), revoked: Duration::from_secs(600) }
    }
}

impl PollLoop {
    pub async fn run(mut self, backoff: Backoff) {
        self.prepare().await;
        // Up to 25% jitter so a household's bots do not retry in lockstep; reset by any answer.
        let mut trouble = backoff::Backoff::new(backoff.min, backoff.max, Jitter::Add(0.25)).retries(None);
        loop {
            let offset = i32::try_from(self.next_offset).unwrap_or(0);
            let mut request =
                self.bot.get_updates().offset(offset).timeout(self.poll_timeout.as_secs() as u32).limit(100);
            if self.household {
                // Telegram remembers the last list a bot asked for; the household bot names
                // what it needs rather than trusting the default.
                use AllowedUpdate::{CallbackQuery, Message, MyChatMember};
                request = request.allowed_updates(vec![Message, CallbackQuery, MyChatMember]);
            }
            let result = tokio::select! {
                _ = self.cancel.cancelled() => return,
                r = request => r,
            };
            let wait = match result {
                Ok(updates) => {
                    self.set_state(BotState::Polling);
                    trouble.reset();
                    match self.commit(updates).await {
                        Ok(()) => continue,
                        Err(e) => {
                            // Not confirmed: Telegram keeps the updates and sends them again.
                            tracing::error!(member = %self.member_id, error = %e, "could not store incoming updates; will retry");
                            self.set_state(BotState::Unreachable { error: format!("could not store messages: {e}") });
                            pause(&mut trouble)
                        }
                    }
                }
                Err(RequestError::RetryAfter(secs)) => {
                    let secs = secs.seconds() as u64;
                    self.set_state(BotState::RateLimited { retry_after_secs: secs });
                    Duration::from_secs(secs.max(1))
                }
                Err(RequestError::Api(ApiError::InvalidToken)) => {
                    tracing::warn!(member = %self.member_id, "Telegram rejected the bot token");
                    self.set_state(BotState::TokenRevoked);
                    backoff.revoked
                }
                Err(RequestError::Api(ApiError::TerminatedByOtherGetUpdates)) => {
                    tracing::warn!(member = %self.member_id, "another program is polling this bot");
                    self.set_state(BotState::UsedElsewhere);
                    pause(&mut trouble)
                }
                Err(e) => {
                    tracing::warn!(member = %self.member_id, error = %e, "polling failed");
                    self.set_state(BotState::Unreachable { error: short(&e.to_string()) });
                    pause(&mut trouble)
                }
            };
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Once per start: make sure no webhook blocks polling, and register the bot's commands.
    /// Failures here are not fatal; the poll loop reports the bot's state.
    async fn prepare(&self) {
        let bot = self.bot.clone();
        let household = self.household;
        let work = async move {
            let _ = bot.delete_webhook().await;
            // A member's bot: the member's menu for every chat (`commands.rs`); an admin's own
            // chat gets theirs from the core (`core/phone.rs`).
            let menu = if household {
                bot.set_my_commands(vec![BotCommand::new("help", "What I do and who sees what")]).await.map(|_| ())
            } else {
                super::set_member_commands(&bot).await
            };
            if let Err(e) = menu {
                tracing::warn!(error = %e, "could not set the bot's command menu");
            }
        };
        tokio::select! {
            _ = self.cancel.cancelled() => {}
            _ = tokio::time::timeout(Duration::from_secs(30), work) => {}
        }
    }

    async fn commit(&mut self, updates: Vec<Update>) -> Result<(), store::StoreError> {
        let Some(max_id) = updates.iter().map(|u| u.id.0 as i64).max() else { return Ok(()) };
        let next = max_id + 1;
        let messages: Vec<NewMessage> = updates.iter().filter_map(extract_message).collect();
        let (member, bot_id) = (self.member_id.clone(), self.bot_id);
        let rows = self.store.call(move |c| store::commit_updates(c, &member, bot_id, &messages, next)).await?;
        self.next_offset = self.next_offset.max(next);
        if !rows.is_empty() {
            let _ = self.inbox.send(rows);
        }
        Ok(())
    }

    /// Records the bot's state; a change (and only a change) is told to `on_change`, so an idle
    /// bot's polls cost nothing beyond the poll.
    fn set_state(&self, state: BotState) {
        let changed = {
            let mut current = self.state.lock().unwrap();
            if *current == state {
                false
            } else {
                *current = state.clone();
                true
            }
        };
        if changed && let Some(hook) = &self.on_change {
            hook(&state);
        }
    }
}

/// The poll loop's next pause; it never runs out of attempts.
fn pause(trouble: &mut Retries) -> Duration {
    trouble.failed(None).unwrap_or_default()
}

fn short(s: &str) -> String {
    let mut out: String = s.chars().take(200).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}
