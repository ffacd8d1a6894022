//! The broker: every LLM call goes through here, and only here are provider keys used.
//!
//! A call is three steps: reserve the worst case (prompt estimate plus `max_tokens`, at the
//! model's full input and output price) against every cap that applies — the one place caps
//! are checked, atomically under one lock, so no number of concurrent calls can overshoot; call
//! the provider with retries; then settle the real cost from the usage the provider reported
//! (or release the reservation when the call failed). The ledger row is written at reserve time
//! and completed at settle time; a row left open by a crash is released at the next start.
//!
//! When a cap would be exceeded the broker routes down to the member's fallback model if one is
//! set and fits, and otherwise refuses with a typed error. Threshold crossings (80 %, 100 %) and
//! refusals are reported as [`SpendEvent`]s so the gateway can tell the member and ask the admin.
//!
//! The broker owns the spend state ([`SpendState`]: caps, the rate card, fallbacks, members' own
//! models, the household's zone) and is its one writer: the admin's changes come through the
//! small setter API below (`set_member_caps`, `set_household_cap`, …), reads through
//! [`Broker::spend`]. [`spend`] is the pure arithmetic it decides with.
//!
//! Images: a request reaches [`Broker::complete`] with its images already inline (the turn
//! resolved the worker's references); each is reserved at its token cost and counted in the
//! ledger row, and a model the rate card marks as unable to see is refused before any call.
//! Transcriptions (`speech.rs`) are reserved and settled the same way, per audio minute, and
//! voice replies (`voice.rs`) per character spoken; `metered.rs` holds the steps those two share.
//!
//! Every call to a provider holds one of the household's connection slots while it is open
//! (`connections.rs`, `hearth provider connections N`); a call waiting for one holds no turn slot.

pub mod connections;
mod metered;
pub mod speech;
pub mod spend;
mod stopped;
pub mod voice;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use hearth_llm::{ApiKey, Attempt, CallLimits, LlmError, Provider, RetryPolicy};
use hearth_proto::control::{ProviderKind, ProviderSummary};
use hearth_proto::llm::{BrokerError, BrokerErrorKind, Completion, CompletionRequest, ImageSource};
use parking_lot::{Mutex, RwLock};
use rusqlite::Connection;
use tokio::sync::mpsc;

use crate::store::{self, LedgerKind, LedgerReservation, LedgerSettlement, Store, StoreError};
use spend::{
    AudioRateEntry, Budget, CapHit, CapKind, Crossing, Hold, PeriodKind, Price, RateCardEntry, Scope, VoiceRateEntry,
};

/// Output tokens a worker may ask for in one call, whatever it requests.
pub const MAX_OUTPUT_TOKENS: u32 = 4096;

pub(crate) const SETTING_TIMEZONE: &str = "household.timezone";
/// Where the household's provider is stored (its key is a secret).
pub(crate) const SETTING_PROVIDER_KIND: &str = "provider.kind";
pub(crate) const SETTING_PROVIDER_URL: &str = "provider.base_url";
pub(crate) const SETTING_PROVIDER_MODEL: &str = "provider.model";
pub(crate) const SETTING_HOUSEHOLD_CAP: &str = "household.cap_monthly_micros";

/// What the gateway hears about spend.
#[derive(Debug, Clone)]
pub enum SpendEvent {
    /// A settled call took the member across 80 % or 100 % of a cap (once per cap and period).
    Crossing { member_id: String, crossing: Crossing },
    /// A call was refused because a cap would have been exceeded.
    CapHit { member_id: String, hit: CapHit },
    /// A call was settled (or released): the member's spend today may have changed.
    Settled { member_id: String },
}

#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    store: Store,
    // Read for a moment at the start of each call, never held across an await.
    provider: RwLock<Option<Provider>>,
    limits: CallLimits,
    retry: RetryPolicy,
    stream: bool,
    // Reserve and settle are short, synchronous bookkeeping; never held across an await. Holding
    // one lock for check-and-charge is what makes caps exact under concurrency. parking_lot's
    // locks do not poison, so a panic elsewhere cannot wedge every later call.
    spend: Mutex<SpendState>,
    events: mpsc::UnboundedSender<SpendEvent>,
    /// Whether a paired admin exists to ask when someone hits a cap.
    admin_available: AtomicBool,
    /// The admin's speech-recognition choice; read for a moment per transcription.
    speech: RwLock<speech::SpeechSetting>,
    /// The admin's voice-reply choice; read for a moment per spoken reply.
    voice: RwLock<voice::VoiceSetting>,
    /// Whether the provider answers, for the admins' alerts and the heartbeat
    /// ([`Broker::provider_health`]); told only when it changes.
    health: tokio::sync::watch::Sender<ProviderHealth>,
    /// Chat calls that failed in a row (an outage, not a refusal at a cap: those never call).
    failures: Mutex<u32>,
    /// The bound on provider calls open at once (`connections.rs`).
    connections: connections::Connections,
}

/// Whether the household's provider answers, as its chat calls show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderHealth {
    /// No call finished since the start.
    Unknown,
    Answering,
    /// [`OUTAGE_CALLS`] calls in a row failed; the last one's error, short.
    Down(String),
}

/// Failed calls in a row that make the provider "down".
pub const OUTAGE_CALLS: u32 = 3;

/// Everything about money the broker decides with.
pub struct SpendState {
    pub budget: Budget,
    /// Admin-set prices first, then the shipped defaults (lookup prefers admin entries).
    pub rate_card: Vec<RateCardEntry>,
    pub fallbacks: HashMap<String, String>,
    /// Members' own models on the household's provider, instead of the provider's model.
    pub models: HashMap<String, String>,
    /// Speech models' per-minute prices: the admin's first, then the shipped defaults.
    pub audio_rate_card: Vec<AudioRateEntry>,
    /// Text-to-speech models' prices per million characters: the admin's first, then defaults.
    pub voice_rate_card: Vec<VoiceRateEntry>,
    /// Models the admin marked as unable to see images (`hearth price set MODEL --no-vision`).
    pub no_vision: Vec<String>,
}

impl SpendState {
    /// Whether the admin marked `model` as unable to see images. Names match as prices do
    /// (case, provider prefix, dated snapshot): marking "gpt-3.5-turbo" covers
    /// "openai/gpt-3.5-turbo-0125"'s family the same way its price would.
    pub fn sees_images(&self, model: &str) -> bool {
        let flags: Vec<AudioRateEntry> = self
            .no_vision
            .iter()
            .map(|m| AudioRateEntry {
                model: m.clone(),
                price: spend::AudioPrice::ZERO,
                source: spend::PriceSource::Admin,
            })
            .collect();
        spend::price::lookup(&flags, model).is_none()
    }
}

/// An open ledger row plus the budget hold behind it: settled or released exactly once.
#[must_use = "a reservation must be settled or released"]
struct Reservation {
    ledger_id: i64,
    hold: Hold,
    price: Price,
    model: String,
}

impl Broker {
    pub fn new(
        http: reqwest::Client,
        store: Store,
        limits: CallLimits,
        retry: RetryPolicy,
        stream: bool,
        spend: SpendState,
        events: mpsc::UnboundedSender<SpendEvent>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                http,
                store,
                provider: RwLock::new(None),
                limits,
                retry,
                stream,
                spend: Mutex::new(spend),
                events,
                admin_available: AtomicBool::new(false),
                speech: RwLock::new(speech::SpeechSetting::Default),
                voice: RwLock::new(voice::VoiceSetting::Default),
                health: tokio::sync::watch::channel(ProviderHealth::Unknown).0,
                failures: Mutex::new(0),
                connections: connections::Connections::new(connections::DEFAULT_MAX_CONNECTIONS),
            }),
        }
    }

    /// How many provider calls may be open at once, from now on (`connections.rs`).
    pub fn set_max_connections(&self, max: u32) {
        self.inner.connections.set_max(max);
    }

    /// The bound on provider calls open at once, and how many are open now.
    pub fn connections(&self) -> (u32, u32) {
        (self.inner.connections.max(), self.inner.connections.open_now())
    }

    pub fn set_provider(&self, provider: Option<Provider>) {
        *self.inner.provider.write() = provider.map(|p| Provider { stream: self.inner.stream, ..p });
    }

    pub fn provider_summary(&self) -> Option<ProviderSummary> {
        self.inner.provider.read().as_ref().map(|p| ProviderSummary {
            kind: p.kind,
            base_url: p.base_url.clone(),
            model: p.model.clone(),
        })
    }

    /// The gateway's database, for the worker pool's audit rows.
    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Follows whether the provider answers (see [`ProviderHealth`]).
    pub fn provider_health(&self) -> tokio::sync::watch::Receiver<ProviderHealth> {
        self.inner.health.subscribe()
    }

    /// Counts a finished chat call towards [`ProviderHealth`]: an answer resets the count, an
    /// outage adds to it; a refusal about this one request (a 400 or 413 — too long, an image
    /// the model cannot take) says nothing about the provider.
    fn note_outcome(&self, result: &Result<Completion, LlmError>) {
        let next = match result {
            Ok(_) => {
                *self.inner.failures.lock() = 0;
                ProviderHealth::Answering
            }
            Err(LlmError::Status { status: 400 | 413 | 422, .. }) => return,
            Err(e) => {
                let mut failures = self.inner.failures.lock();
                *failures = failures.saturating_add(1);
                if *failures < OUTAGE_CALLS {
                    return;
                }
                ProviderHealth::Down(outage_detail(e))
            }
        };
        self.inner.health.send_if_modified(|h| {
            // A provider still down keeps the first error the admins read.
            let changed = std::mem::discriminant(h) != std::mem::discriminant(&next);
            if changed {
                *h = next;
            }
            changed
        });
    }

    pub fn set_admin_available(&self, yes: bool) {
        self.inner.admin_available.store(yes, Ordering::Relaxed);
    }

    /// Reads the spend state (reports, checks, texts).
    pub fn spend<R>(&self, f: impl FnOnce(&SpendState) -> R) -> R {
        f(&self.inner.spend.lock())
    }

    /// The household's zone: spend periods, quiet hours and a turn's "now" are read in it.
    pub fn timezone(&self) -> Tz {
        self.inner.spend.lock().budget.timezone()
    }

    // The writers of the spend state: each one admin change (or a cap raise the admin granted).

    /// A member's daily and monthly caps (`None`: no cap).
    pub fn set_member_caps(&self, member_id: &str, daily: Option<u64>, monthly: Option<u64>) {
        self.inner.spend.lock().budget.set_member_caps(member_id, daily, monthly);
    }

    pub fn set_household_cap(&self, monthly: Option<u64>) {
        self.inner.spend.lock().budget.set_household_cap(monthly);
    }

    pub fn set_timezone(&self, tz: Tz) {
        self.inner.spend.lock().budget.set_timezone(tz);
    }

    /// A member's own model on the household's provider (`None`: the provider's).
    pub fn set_member_model(&self, member_id: &str, model: Option<String>) {
        let models = &mut self.inner.spend.lock().models;
        match model {
            Some(m) => models.insert(member_id.to_owned(), m),
            None => models.remove(member_id),
        };
    }

    /// The cheaper model a member routes down to at a cap (`None`: refuse instead).
    pub fn set_fallback(&self, member_id: &str, model: Option<String>) {
        let fallbacks = &mut self.inner.spend.lock().fallbacks;
        match model {
            Some(m) => fallbacks.insert(member_id.to_owned(), m),
            None => fallbacks.remove(member_id),
        };
    }

    /// The admin's prices (as stored), ahead of the shipped defaults.
    pub fn set_admin_prices(&self, admin: &[store::StoredPrice]) {
        self.inner.spend.lock().rate_card = rate_card(admin);
    }

    /// Extra room under one cap for one period (the admin said +$1 or +$5).
    pub fn grant(&self, member_id: &str, kind: CapKind, period_key: &str, extra_micros: u64) {
        self.inner.spend.lock().budget.grant(member_id, kind, period_key, extra_micros);
    }

    /// A removed member's caps, fallback and model.
    pub fn forget_member(&self, member_id: &str) {
        let mut s = self.inner.spend.lock();
        s.budget.set_member_caps(member_id, None, None);
        s.fallbacks.remove(member_id);
        s.models.remove(member_id);
    }

    /// The price the broker would charge for `model` with the current provider, if known.
    pub fn price_of(&self, model: &str) -> Option<Price> {
        let base_url = self.inner.provider.read().as_ref().map(|p| p.base_url.clone()).unwrap_or_default();
        let spend = self.inner.spend.lock();
        price_for(&spend.rate_card, &base_url, model)
    }

    /// One completion for `member_id`, answering in `chat_id`.
    pub async fn complete(&self, member_id: &str, chat_id: i64, req: CompletionRequest) -> Result<Completion, BrokerError> {
        self.complete_watching(member_id, chat_id, req, &mut |_: &str| {}, None).await
    }

    /// [`Broker::complete`], telling `on_text` the answer's text as the provider streams it (a
    /// turn's draft in the member's chat). Reserved and settled exactly as any call. When `stop`
    /// is cancelled (the member pressed Stop) the provider stream is dropped at once and the
    /// call is settled from what was received (`stopped.rs`).
    pub async fn complete_watching(
        &self,
        member_id: &str,
        chat_id: i64,
        mut req: CompletionRequest,
        on_text: hearth_llm::OnText<'_>,
        stop: Option<&tokio_util::sync::CancellationToken>,
    ) -> Result<Completion, BrokerError> {
        if stop.is_some_and(|s| s.is_cancelled()) {
            return Err(stopped::stopped_error());
        }
        let provider = self.inner.provider.read().clone().ok_or_else(|| BrokerError {
            kind: BrokerErrorKind::NotConfigured,
            message: "no AI provider is configured; run `hearth provider set` or use the setup wizard".into(),
        })?;
        if req.messages.is_empty() {
            return Err(BrokerError {
                kind: BrokerErrorKind::BadRequest,
                message: "a completion needs at least one message".into(),
            });
        }
        req.max_tokens = req.max_tokens.clamp(1, MAX_OUTPUT_TOKENS);
        // The turn resolves a worker's image references before the broker; one that slipped
        // through would have no bytes to send.
        if req.messages.iter().flat_map(|m| &m.images).any(|i| matches!(i, ImageSource::Attachment { .. })) {
            return Err(BrokerError {
                kind: BrokerErrorKind::BadRequest,
                message: "an image reference reached the broker unresolved".into(),
            });
        }

        // One of the household's connection slots, held until the call is answered. Taken before
        // the reservation, so a call waiting for one holds no money either; a press of Stop
        // meanwhile ends the call before anything is reserved or sent.
        let slot = match stop {
            Some(stop) => tokio::select! {
                slot = self.inner.connections.open() => Some(slot),
                () = stop.cancelled() => None,
            },
            None => Some(self.inner.connections.open().await),
        };
        let Some(_slot) = slot else { return Err(stopped::stopped_error()) };
        let reservation = self.reserve(member_id, chat_id, &provider, &req, Utc::now()).await?;
        let provider = Provider { model: reservation.model.clone(), ..provider };
        let started = Instant::now();
        let mut attempts = 0u32;
        let mut on_attempt = |_: Attempt| attempts += 1;
        let mut received = 0usize;
        let mut watch = |text: &str| {
            received = text.len();
            on_text(text)
        };
        let call = hearth_llm::complete_with_retry_watching(
            &self.inner.http,
            &provider,
            &req,
            &self.inner.limits,
            &self.inner.retry,
            &mut on_attempt,
            &mut watch,
        );
        let result = match stop {
            // Dropping the call's future closes the provider's connection.
            Some(stop) => tokio::select! { r = call => Some(r), () = stop.cancelled() => None },
            None => Some(call.await),
        };
        let latency_ms = started.elapsed().as_millis() as u64;
        let model = reservation.model.clone();
        let Some(result) = result else {
            let used = stopped::stopped_completion(&req, &model, received);
            self.settle(member_id, reservation, &Ok(used), attempts, latency_ms).await;
            return Err(stopped::stopped_error());
        };
        self.settle(member_id, reservation, &result, attempts, latency_ms).await;
        self.note_outcome(&result);
        result.map_err(|e| {
            tracing::warn!(member = member_id, error = %e, "LLM call failed");
            let images = req.messages.iter().any(|m| !m.images.is_empty());
            to_broker_error(&e, images.then_some(model.as_str()))
        })
    }

    /// Sets aside the worst case of one call against every cap, routing down to the fallback
    /// model when the member's own would not fit. No call is made without this.
    async fn reserve(
        &self,
        member_id: &str,
        chat_id: i64,
        provider: &Provider,
        req: &CompletionRequest,
        now: DateTime<Utc>,
    ) -> Result<Reservation, BrokerError> {
        let images = req.messages.iter().map(|m| m.images.len() as u64).sum::<u64>();
        // Images count at their size (hearth-llm's estimate), more for a model that bills more.
        let prompt_tokens = hearth_llm::estimate_prompt_tokens(req);
        let image_tokens: u64 =
            req.messages.iter().flat_map(|m| &m.images).map(hearth_llm::estimate_image_tokens).sum();
        let output_tokens = req.max_tokens as u64;
        let (model, price, hold) = {
            let mut spend = self.inner.spend.lock();
            let tz = spend.budget.timezone();
            let (daily, monthly) = spend.budget.member_caps(member_id);
            let capped = daily.is_some() || monthly.is_some() || spend.budget.household_cap().is_some();
            // The member's own model, else the household's.
            let own = spend.models.get(member_id).cloned().unwrap_or_else(|| provider.model.clone());
            if images > 0 && !spend.sees_images(&own) {
                return Err(images_unsupported(&own));
            }
            let prompt_for = |model: &str| prompt_tokens + image_tokens * extra_image_factor(model);
            // Only Anthropic charges for writing its prompt cache; elsewhere a prompt token
            // costs at most the input price (`Price::without_cache_writes`).
            let priced = |p: Price| if provider.kind == ProviderKind::Anthropic { p } else { p.without_cache_writes() };
            let price = match price_for(&spend.rate_card, &provider.base_url, &own).map(priced) {
                Some(p) => p,
                None if capped => {
                    return Err(BrokerError {
                        kind: BrokerErrorKind::NoPrice { model: own.clone() },
                        message: format!(
                            "model {own} has no price, so spend caps cannot be kept; \
                             set one with `hearth price set {own}`"
                        ),
                    });
                }
                // No caps apply: usage is still recorded, cost as zero.
                None => Price::ZERO,
            };
            match spend.budget.reserve(member_id, price.worst_case_micros(prompt_for(&own), output_tokens), now) {
                Ok(hold) => (own, price, hold),
                Err(hit) => {
                    let fallback = spend.fallbacks.get(member_id).cloned().and_then(|m| {
                        if images > 0 && !spend.sees_images(&m) {
                            return None;
                        }
                        let p = priced(price_for(&spend.rate_card, &provider.base_url, &m)?);
                        let hold = spend
                            .budget
                            .reserve(member_id, p.worst_case_micros(prompt_for(&m), output_tokens), now)
                            .ok()?;
                        Some((m, p, hold))
                    });
                    match fallback {
                        Some((m, p, hold)) => {
                            tracing::info!(member = member_id, model = %m, "routing down to the fallback model");
                            (m, p, hold)
                        }
                        None => {
                            drop(spend);
                            return Err(self.cap_refusal(member_id, hit, tz));
                        }
                    }
                }
            }
        };
        let row = LedgerReservation {
            member_id: member_id.to_owned(),
            chat_id: Some(chat_id),
            provider: provider.kind.as_str().to_owned(),
            model: model.clone(),
            reserved_input_tokens: prompt_tokens + image_tokens * extra_image_factor(&model),
            reserved_output_tokens: output_tokens,
            reserved_micros: hold.amount(),
            day_key: hold.day_key().to_owned(),
            month_key: hold.month_key().to_owned(),
            kind: LedgerKind::Chat,
            audio_seconds: 0,
            images,
            characters: 0,
        };
        match self.inner.store.call(move |c| store::ledger_reserve(c, &row, store::now_unix())).await {
            Ok(ledger_id) => Ok(Reservation { ledger_id, hold, price, model }),
            Err(e) => {
                self.inner.spend.lock().budget.release(hold);
                Err(BrokerError {
                    kind: BrokerErrorKind::ProviderError,
                    message: format!("could not record the call: {e}"),
                })
            }
        }
    }

    /// A call refused at a cap (a completion or a transcription): reported for the gateway to
    /// tell the member and ask the admin, and answered with when the cap resets.
    fn cap_refusal(&self, member_id: &str, hit: CapHit, tz: Tz) -> BrokerError {
        let _ = self.inner.events.send(SpendEvent::CapHit { member_id: member_id.to_owned(), hit: hit.clone() });
        BrokerError {
            kind: BrokerErrorKind::CapExceeded {
                resets_at: Some(hit.resets_at.with_timezone(&tz).to_rfc3339()),
                admin_asked: self.inner.admin_available.load(Ordering::Relaxed),
            },
            message: hit.to_string(),
        }
    }

    /// Charges what the call really cost (or nothing, if it failed) and completes the ledger row.
    async fn settle(
        &self,
        member_id: &str,
        r: Reservation,
        result: &Result<Completion, LlmError>,
        attempts: u32,
        latency_ms: u64,
    ) {
        let settlement = match result {
            Ok(c) => {
                let cost = r.price.cost_micros(&c.usage);
                let crossings = self.inner.spend.lock().budget.settle(r.hold, cost);
                for crossing in crossings {
                    let _ = self.inner.events.send(SpendEvent::Crossing { member_id: member_id.to_owned(), crossing });
                }
                LedgerSettlement {
                    model: c.model.clone(),
                    input_tokens: c.usage.input_tokens,
                    output_tokens: c.usage.output_tokens,
                    cached_input_tokens: c.usage.cached_input_tokens,
                    cache_write_tokens: c.usage.cache_write_tokens,
                    attempts,
                    latency_ms,
                    outcome: stopped::outcome_of(c).into(),
                    cost_micros: cost,
                }
            }
            Err(e) => {
                self.inner.spend.lock().budget.release(r.hold);
                LedgerSettlement {
                    model: r.model,
                    input_tokens: 0,
                    output_tokens: 0,
                    cached_input_tokens: 0,
                    cache_write_tokens: 0,
                    attempts,
                    latency_ms,
                    outcome: e.kind(),
                    cost_micros: 0,
                }
            }
        };
        let id = r.ledger_id;
        if let Err(e) =
            self.inner.store.call(move |c| store::ledger_settle(c, id, &settlement, store::now_unix())).await
        {
            // The row stays "reserved" and is released at the next start; nothing is charged twice.
            tracing::error!(ledger_id = id, error = %e, "could not settle a ledger row");
        }
        let _ = self.inner.events.send(SpendEvent::Settled { member_id: member_id.to_owned() });
    }
}

/// What the admins read about a provider that stopped answering: the kind of failure, never
/// the provider's own words (they may quote the request).
fn outage_detail(e: &LlmError) -> String {
    match e {
        LlmError::Timeout { .. } => "it stopped answering in time".into(),
        LlmError::Network(_) => "it could not be reached".into(),
        LlmError::Status { status: 401 | 403, .. } => "it refused the API key".into(),
        LlmError::Status { status: 429, .. } => "it said too many requests".into(),
        LlmError::Status { status, .. } => format!("it answered with error {status}"),
        LlmError::Malformed(_) | LlmError::Redirected { .. } => "its answers could not be read".into(),
        LlmError::Config(_) => "its settings are incomplete".into(),
    }
}

/// The price of `model` at `base_url`: a price the admin set wins; otherwise a model on a local
/// server (Ollama, LM Studio) is free; otherwise the shipped default, if there is one.
pub fn price_for(card: &[RateCardEntry], base_url: &str, model: &str) -> Option<Price> {
    // `rate_card` puts the admin's entries first: they are the card's prefix.
    let admin = card.iter().take_while(|e| matches!(e.source, spend::PriceSource::Admin)).count();
    if let Some(e) = spend::price::lookup(&card[..admin], model) {
        return Some(e.price);
    }
    if spend::price::is_local_provider(base_url) {
        return Some(Price::ZERO);
    }
    spend::price::lookup(card, model).map(|e| e.price)
}

/// Admin prices (from the database) ahead of the shipped defaults.
pub fn rate_card(admin: &[store::StoredPrice]) -> Vec<RateCardEntry> {
    let mut card: Vec<RateCardEntry> = admin
        .iter()
        .map(|p| RateCardEntry {
            model: p.model.clone(),
            price: Price {
                input: p.input,
                output: p.output,
                cached_input: p.cached_input,
                cache_write: p.cache_write.unwrap_or_else(|| spend::price::default_cache_write(p.input)),
            },
            source: spend::PriceSource::Admin,
        })
        .collect();
    card.extend(spend::price::default_rate_card());
    card
}

pub fn parse_cap_kind(s: &str) -> Option<CapKind> {
    CapKind::ALL.into_iter().find(|k| k.as_str() == s)
}

/// Builds the spend state from the database: prices, caps, fallbacks, members' own models, the
/// time zone, what was
/// already spent today and this month, and grants for those periods.
pub fn load_spend(conn: &Connection, now: DateTime<Utc>) -> Result<SpendState, StoreError> {
    let tz = store::get_setting(conn, SETTING_TIMEZONE)?
        .and_then(|name| spend::period::parse_timezone(&name).ok())
        .unwrap_or_else(spend::period::system_timezone);
    let mut budget = Budget::new(tz);
    let mut fallbacks = HashMap::new();
    let mut models = HashMap::new();
    for m in store::list_members(conn)? {
        budget.set_member_caps(&m.id, m.cap_daily_micros, m.cap_monthly_micros);
        if let Some(f) = m.fallback_model {
            fallbacks.insert(m.id.clone(), f);
        }
        if let Some(model) = m.model {
            models.insert(m.id, model);
        }
    }
    let household = store::get_setting(conn, SETTING_HOUSEHOLD_CAP)?.and_then(|v| v.parse::<u64>().ok());
    budget.set_household_cap(household);

    let day = spend::period::period_at(PeriodKind::Day, tz, now);
    let month = spend::period::period_at(PeriodKind::Month, tz, now);
    let (per_day, per_month) = store::spent_in(conn, &day.key, &month.key)?;
    for (member, micros) in per_day {
        budget.load_spent(Scope::Member(member), PeriodKind::Day, &day.key, micros);
    }
    let mut household_month = 0u64;
    for (member, micros) in per_month {
        household_month += micros;
        budget.load_spent(Scope::Member(member), PeriodKind::Month, &month.key, micros);
    }
    budget.load_spent(Scope::Household, PeriodKind::Month, &month.key, household_month);
    for (member, kind, key, extra) in store::grants_for(conn, &[&day.key, &month.key])? {
        if let Some(kind) = parse_cap_kind(&kind) {
            budget.grant(&member, kind, &key, extra);
        }
    }
    let rate_card = rate_card(&store::list_prices(conn)?);
    let audio_rate_card = speech::audio_rate_card(&speech::stored_audio_prices(conn)?);
    let voice_rate_card = spend::voice_price::voice_rate_card(&voice::stored_voice_prices(conn)?);
    let no_vision = speech::stored_no_vision(conn)?;
    Ok(SpendState { budget, rate_card, fallbacks, models, audio_rate_card, voice_rate_card, no_vision })
}

/// How many more times an image's estimate `model` may bill beyond what the estimate already
/// counts (hearth-llm's `image_token_factor`: 0 for every model but gpt-4o-mini and its
/// snapshots), so the usage it reports still fits what was set aside.
fn extra_image_factor(model: &str) -> u64 {
    hearth_llm::image_token_factor(model) - 1
}

fn images_unsupported(model: &str) -> BrokerError {
    BrokerError {
        kind: BrokerErrorKind::ImagesUnsupported { model: model.to_owned() },
        message: format!(
            "model {model} cannot see images; choose one that can, or unmark it with `hearth price set {model} --vision`"
        ),
    }
}

/// Whether a provider's 400 says the model cannot take image input ("model does not support
/// image input", "image_url is only supported by certain models", "Invalid content type.
/// image_url is only supported…").
/// A 400 about a bad image ("You uploaded an unsupported image", "Invalid image") is not one.
fn refuses_images(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    (m.contains("image") || m.contains("vision"))
        && ["does not support", "doesn't support", "not supported", "only supported", "no vision", "not a vision"]
            .iter()
            .any(|p| m.contains(p))
}

/// `images_model`: the model, when the request showed it images.
fn to_broker_error(e: &LlmError, images_model: Option<&str>) -> BrokerError {
    if let (LlmError::Status { status: 400, message, .. }, Some(model)) = (e, images_model)
        && refuses_images(message)
    {
        return BrokerError { message: e.to_string(), ..images_unsupported(model) };
    }
    let kind = match e {
        LlmError::Timeout { .. } => BrokerErrorKind::Timeout,
        LlmError::Status { status, .. } if *status == 429 || *status >= 500 => BrokerErrorKind::ProviderUnavailable,
        LlmError::Network(_) => BrokerErrorKind::ProviderUnavailable,
        LlmError::Status { .. } | LlmError::Malformed(_) | LlmError::Redirected { .. } => {
            BrokerErrorKind::ProviderError
        }
        LlmError::Config(_) => BrokerErrorKind::NotConfigured,
    };
    BrokerError { kind, message: e.to_string() }
}

/// Builds the provider from stored settings and its key.
pub fn provider_from(kind: ProviderKind, base_url: String, model: String, key: String) -> Provider {
    Provider { kind, base_url, model, api_key: ApiKey::new(key), stream: true }
}

/// Limits suited to a family chat: generous for slow local models, but a stalled call is cut.
pub fn default_limits() -> CallLimits {
    CallLimits {
        connect: Duration::from_secs(10),
        first_byte: Duration::from_secs(90),
        idle: Duration::from_secs(60),
        total: Duration::from_secs(180),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_gpt_4o_mini_bills_images_larger() {
        assert_eq!(extra_image_factor("gpt-4o-mini"), 33);
        assert_eq!(extra_image_factor("openai/gpt-4o-mini-2024-07-18"), 33);
        assert_eq!(extra_image_factor("gpt-4o"), 0);
        assert_eq!(extra_image_factor("claude-sonnet-4-5"), 0);
    }

    #[test]
    fn a_400_about_a_blind_model_is_told_from_a_bad_image() {
        for blind in [
            "model does not support image input",
            "Invalid content type. image_url is only supported by certain models.",
            "This model doesn't support images",
            "image input is not supported",
        ] {
            assert!(refuses_images(blind), "{blind}");
        }
        for other in [
            "You uploaded an unsupported image. Please make sure your image is valid.",
            "Invalid image.",
            "max_tokens is too large",
        ] {
            assert!(!refuses_images(other), "{other}");
        }
        let e =
            LlmError::Status { status: 400, retry_after: None, message: "model does not support image input".into() };
        assert_eq!(to_broker_error(&e, Some("m")).kind, BrokerErrorKind::ImagesUnsupported { model: "m".into() });
        assert_eq!(to_broker_error(&e, None).kind, BrokerErrorKind::ProviderError);
    }
}
