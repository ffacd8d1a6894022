//! Calls priced by quantity rather than by tokens — a transcription by its seconds of audio,
//! a voice reply by its characters of text — and the steps they share with each other: reserve
//! the worst case against every cap under the same lock as a completion (`speech.rs` and
//! `voice.rs` say how much), call the service with the broker's retry policy, then settle what it
//! cost (never more than was reserved) or release it, completing the ledger row either way.
//!
//! One place for these steps keeps speech in and speech out from drifting apart in how they
//! charge: both refuse a model without a price while any cap is in force, both report crossings
//! and refusals as [`SpendEvent`]s, both leave one ledger row per call. Both also default to the
//! chat provider's own service when it is of kind openai.

use std::future::Future;
use std::time::Instant;

use chrono::Utc;
use hearth_llm::{ApiKey, LlmError};
use hearth_proto::control::ProviderKind;
use hearth_proto::llm::{BrokerError, BrokerErrorKind};

use super::spend::price::{self, CardLine};
use super::spend::{Hold, PriceSource};
use super::{Broker, SpendEvent, SpendState};
use crate::store::{self, LedgerKind, LedgerReservation, LedgerSettlement, StoreError};

/// What one metered call is, for its ledger row.
pub(super) struct Metered<'a> {
    pub member_id: &'a str,
    pub chat_id: Option<i64>,
    pub model: &'a str,
    pub kind: LedgerKind,
    /// A transcription's audio, as Telegram reported its length.
    pub audio_seconds: u64,
    /// A voice reply's text.
    pub characters: u64,
    /// Whether a refusal at a cap is reported (the admin asked, subscribers told). Not for a
    /// voice reply: the member still gets the answer, in text, so no cap stopped anything.
    pub report_cap_hits: bool,
}

/// Why a metered call was not reserved; nothing was called.
#[derive(Debug)]
pub(super) enum Unreserved {
    /// A cap would be exceeded, or the model has no price while caps are in force — refused as
    /// a completion would be.
    Capped(BrokerError),
    /// The ledger could not be written.
    Ledger,
}

/// An open ledger row plus its budget hold: settled or released exactly once.
#[must_use = "a reservation must be settled or released"]
pub(super) struct MeteredHold {
    ledger_id: i64,
    hold: Hold,
}

/// How a metered call is priced: the price the spend state has for it (`None`: no price), what
/// it is when free, and from the price what to set aside and what the call costs once it worked
/// (never more than what was set aside).
pub(super) struct Pricing<'a, P> {
    // `Sync`: the call's future holds them across awaits, and runs on any thread.
    pub price_of: &'a (dyn Fn(&SpendState) -> Option<P> + Sync),
    pub free: P,
    pub reserve: &'a (dyn Fn(P) -> u64 + Sync),
    pub cost: &'a (dyn Fn(P) -> u64 + Sync),
    /// The refusal for a model without a price while caps are in force.
    pub no_price: &'a (dyn Fn() -> BrokerError + Sync),
}

impl Broker {
    /// One metered call: reserved, `attempt` run with retries (`what` names it in the log),
    /// settled at the price it was reserved at, or released when it failed. `Err` when it was
    /// not reserved, and so not made.
    pub(super) async fn metered<P: Copy, T, Fut>(
        &self,
        call: &Metered<'_>,
        pricing: Pricing<'_, P>,
        what: &'static str,
        attempt: impl FnMut() -> Fut,
    ) -> Result<Result<T, LlmError>, Unreserved>
    where
        Fut: Future<Output = Result<T, LlmError>>,
    {
        // One of the household's connection slots while the call is open (`connections.rs`).
        let _slot = self.inner.connections.open().await;
        let (held, price) = self.reserve_metered(call, &pricing).await?;
        let started = Instant::now();
        let (result, attempts) = self.with_retries(call.member_id, call.model, what, attempt).await;
        let cost = match &result {
            Ok(_) => Ok((pricing.cost)(price)),
            Err(e) => Err(e.kind()),
        };
        let latency_ms = started.elapsed().as_millis() as u64;
        self.settle_metered(call, held, cost, attempts, latency_ms).await;
        Ok(result)
    }

    /// Sets aside what `pricing` says against every cap that applies. Without a price: free
    /// while no cap is in force (usage is still recorded), otherwise refused. Returns the price
    /// it used.
    async fn reserve_metered<P: Copy>(
        &self,
        call: &Metered<'_>,
        pricing: &Pricing<'_, P>,
    ) -> Result<(MeteredHold, P), Unreserved> {
        let now = Utc::now();
        let (price, hold) = {
            let mut spend = self.inner.spend.lock();
            let (daily, monthly) = spend.budget.member_caps(call.member_id);
            let capped = daily.is_some() || monthly.is_some() || spend.budget.household_cap().is_some();
            let price = match (pricing.price_of)(&spend) {
                Some(p) => p,
                None if capped => return Err(Unreserved::Capped((pricing.no_price)())),
                None => pricing.free,
            };
            match spend.budget.reserve(call.member_id, (pricing.reserve)(price), now) {
                Ok(hold) => (price, hold),
                Err(hit) if call.report_cap_hits => {
                    let tz = spend.budget.timezone();
                    drop(spend);
                    return Err(Unreserved::Capped(self.cap_refusal(call.member_id, hit, tz)));
                }
                Err(hit) => {
                    return Err(Unreserved::Capped(BrokerError {
                        kind: BrokerErrorKind::CapExceeded { resets_at: None, admin_asked: false },
                        message: hit.to_string(),
                    }));
                }
            }
        };
        let row = LedgerReservation {
            member_id: call.member_id.to_owned(),
            chat_id: call.chat_id,
            provider: ProviderKind::Openai.as_str().to_owned(),
            model: call.model.to_owned(),
            reserved_input_tokens: 0,
            reserved_output_tokens: 0,
            reserved_micros: hold.amount(),
            day_key: hold.day_key().to_owned(),
            month_key: hold.month_key().to_owned(),
            kind: call.kind,
            audio_seconds: call.audio_seconds,
            images: 0,
            characters: call.characters,
        };
        match self.inner.store.call(move |c| store::ledger_reserve(c, &row, store::now_unix())).await {
            Ok(ledger_id) => Ok((MeteredHold { ledger_id, hold }, price)),
            Err(e) => {
                self.inner.spend.lock().budget.release(hold);
                tracing::error!(error = %e, kind = call.kind.as_str(), "could not record a call in the ledger");
                Err(Unreserved::Ledger)
            }
        }
    }

    /// Charges what the call cost (`Ok`), or releases the hold when it failed (`Err`: its
    /// outcome, "http_404", "timeout", …), and completes its ledger row; crossings and the new
    /// standing go to the gateway.
    async fn settle_metered(
        &self,
        call: &Metered<'_>,
        held: MeteredHold,
        cost: Result<u64, String>,
        attempts: u32,
        latency_ms: u64,
    ) {
        let member_id = call.member_id;
        let (outcome, cost) = match cost {
            Ok(cost) => {
                let crossings = self.inner.spend.lock().budget.settle(held.hold, cost);
                for crossing in crossings {
                    let _ = self.inner.events.send(SpendEvent::Crossing { member_id: member_id.to_owned(), crossing });
                }
                ("ok".to_owned(), cost)
            }
            Err(outcome) => {
                self.inner.spend.lock().budget.release(held.hold);
                (outcome, 0)
            }
        };
        let settlement = LedgerSettlement {
            model: call.model.to_owned(),
            input_tokens: 0,
            output_tokens: 0,
            cached_input_tokens: 0,
            cache_write_tokens: 0,
            attempts,
            latency_ms,
            outcome,
            cost_micros: cost,
        };
        let id = held.ledger_id;
        if let Err(e) =
            self.inner.store.call(move |c| store::ledger_settle(c, id, &settlement, store::now_unix())).await
        {
            // The row stays "reserved" and is released at the next start; nothing is charged twice.
            tracing::error!(ledger_id = id, error = %e, "could not settle a ledger row");
        }
        let _ = self.inner.events.send(SpendEvent::Settled { member_id: member_id.to_owned() });
    }

    /// The chat provider's address and key when it is of kind openai: both speech services
    /// default to that provider's own (`/audio/transcriptions`, `/audio/speech`).
    pub(super) fn openai_chat_service(&self) -> Option<(String, Option<ApiKey>)> {
        match &*self.inner.provider.read() {
            Some(p) if p.kind == ProviderKind::Openai => {
                Some((p.base_url.clone(), (!p.api_key.is_empty()).then(|| p.api_key.clone())))
            }
            _ => None,
        }
    }

    /// Runs `attempt` until it works, fails for good, or the broker's retry policy says stop;
    /// returns its result and how many attempts were made. `what` names the call in the log.
    async fn with_retries<T, F, Fut>(
        &self,
        member_id: &str,
        model: &str,
        what: &'static str,
        mut attempt: F,
    ) -> (Result<T, LlmError>, u32)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, LlmError>>,
    {
        let retry = &self.inner.retry;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let error = match attempt().await {
                Ok(v) => return (Ok(v), attempts),
                Err(e) => e,
            };
            if !error.is_retryable() || attempts >= retry.max_attempts.max(1) {
                return (Err(error), attempts);
            }
            let Some(delay) = retry.delay_after(attempts, &error) else { return (Err(error), attempts) };
            tracing::info!(member = member_id, %model, attempt = attempts, ?delay, error = %error, "{what} failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }
}

/// The price of `model` at `base_url` on a per-quantity card (the admin's entries first): the
/// admin's wins; a service on this machine costs nothing (`free`); otherwise the shipped
/// default, if any.
pub(super) fn card_price<E: CardLine, P>(
    card: &[E],
    base_url: &str,
    model: &str,
    free: P,
    price_of: impl Fn(&E) -> P,
) -> Option<P> {
    let admin = card.iter().take_while(|e| matches!(e.source(), PriceSource::Admin)).count();
    if let Some(e) = price::lookup(&card[..admin], model) {
        return Some(price_of(e));
    }
    if price::is_local_provider(base_url) {
        return Some(free);
    }
    price::lookup(card, model).map(price_of)
}

/// The admin's prices kept among the settings as `<prefix><model>` → integer micro-USD:
/// (model, micro-USD). A value that does not parse (a hand edit) is left out.
pub(super) fn stored_prices(conn: &rusqlite::Connection, prefix: &str) -> Result<Vec<(String, u64)>, StoreError> {
    Ok(store::settings_with_prefix(conn, prefix)?
        .into_iter()
        .filter_map(|(model, v)| Some((model, v.parse().ok()?)))
        .collect())
}
