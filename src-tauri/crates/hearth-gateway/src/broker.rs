//! The broker: every LLM call goes through here, and only here are provider keys used.
//!
//! A call is three steps: [`reserve`] the worst case in the ledger (prompt estimate plus
//! `max_tokens`) — the one place spend caps are checked; call the provider with retries; then
//! [`settle`] the real usage into the same ledger row (or release it when the call failed). A
//! reservation left open by a crash is released at the next start.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hearth_llm::{ApiKey, Attempt, CallLimits, LlmError, Provider, RetryPolicy};
use hearth_proto::control::{ProviderKind, ProviderSummary};
use hearth_proto::llm::{BrokerError, BrokerErrorKind, Completion, CompletionRequest};

use crate::store::{self, LedgerReservation, LedgerSettlement, Store};

/// Output tokens a worker may ask for in one call, whatever it requests.
pub const MAX_OUTPUT_TOKENS: u32 = 4096;

#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    store: Store,
    // std RwLock: read for a moment at the start of each call, never held across an await.
    provider: RwLock<Option<Provider>>,
    limits: CallLimits,
    retry: RetryPolicy,
    stream: bool,
}

/// An open ledger row: spend set aside for one call, settled or released exactly once.
#[derive(Debug)]
#[must_use = "a reservation must be settled"]
pub struct Reservation {
    ledger_id: i64,
}

impl Broker {
    pub fn new(http: reqwest::Client, store: Store, limits: CallLimits, retry: RetryPolicy, stream: bool) -> Self {
        Self { inner: Arc::new(Inner { http, store, provider: RwLock::new(None), limits, retry, stream }) }
    }

    pub fn set_provider(&self, provider: Option<Provider>) {
        *self.inner.provider.write().unwrap() = provider.map(|p| Provider { stream: self.inner.stream, ..p });
    }

    pub fn provider_summary(&self) -> Option<ProviderSummary> {
        self.inner.provider.read().unwrap().as_ref().map(|p| ProviderSummary {
            kind: p.kind,
            base_url: p.base_url.clone(),
            model: p.model.clone(),
        })
    }

    /// One completion for `member_id`, answering in `chat_id`.
    pub async fn complete(&self, member_id: &str, chat_id: i64, mut req: CompletionRequest) -> Result<Completion, BrokerError> {
        let provider = self.inner.provider.read().unwrap().clone().ok_or_else(|| BrokerError {
            kind: BrokerErrorKind::NotConfigured,
            message: "no AI provider is configured; run `hearth provider set` or use the setup wizard".into(),
        })?;
        if req.messages.is_empty() {
            return Err(BrokerError { kind: BrokerErrorKind::BadRequest, message: "a completion needs at least one message".into() });
        }
        req.max_tokens = req.max_tokens.clamp(1, MAX_OUTPUT_TOKENS);

        let reservation = reserve(&self.inner.store, member_id, chat_id, &provider, &req).await?;
        let started = Instant::now();
        let mut attempts = 0u32;
        let mut on_attempt = |_: Attempt| attempts += 1;
        let result = hearth_llm::complete_with_retry(
            &self.inner.http,
            &provider,
            &req,
            &self.inner.limits,
            &self.inner.retry,
            &mut on_attempt,
        )
        .await;
        let latency_ms = started.elapsed().as_millis() as u64;
        let settlement = match &result {
            Ok(c) => LedgerSettlement {
                model: c.model.clone(),
                input_tokens: c.usage.input_tokens,
                output_tokens: c.usage.output_tokens,
                cached_input_tokens: c.usage.cached_input_tokens,
                attempts,
                latency_ms,
                outcome: "ok".into(),
            },
            Err(e) => LedgerSettlement {
                model: provider.model.clone(),
                input_tokens: 0,
                output_tokens: 0,
                cached_input_tokens: 0,
                attempts,
                latency_ms,
                outcome: e.kind(),
            },
        };
        settle(&self.inner.store, reservation, settlement).await;
        result.map_err(|e| {
            tracing::warn!(member = member_id, error = %e, "LLM call failed");
            to_broker_error(&e)
        })
    }
}

/// Sets aside the worst case of one call. Spend caps are enforced here: no call is made without
/// a reservation.
pub async fn reserve(
    store: &Store,
    member_id: &str,
    chat_id: i64,
    provider: &Provider,
    req: &CompletionRequest,
) -> Result<Reservation, BrokerError> {
    let row = LedgerReservation {
        member_id: member_id.to_owned(),
        chat_id: Some(chat_id),
        provider: provider.kind.as_str().to_owned(),
        model: provider.model.clone(),
        reserved_input_tokens: hearth_llm::estimate_prompt_tokens(req),
        reserved_output_tokens: req.max_tokens as u64,
    };
    let ledger_id = store
        .call(move |c| store::ledger_reserve(c, &row, store::now_unix()))
        .await
        .map_err(|e| BrokerError { kind: BrokerErrorKind::ProviderError, message: format!("could not record the call: {e}") })?;
    Ok(Reservation { ledger_id })
}

/// Records what the call really used (or that it failed, releasing the reservation).
pub async fn settle(store: &Store, reservation: Reservation, s: LedgerSettlement) {
    let id = reservation.ledger_id;
    if let Err(e) = store.call(move |c| store::ledger_settle(c, id, &s, store::now_unix())).await {
        // The row stays "reserved" and is released at the next start; nothing is charged twice.
        tracing::error!(ledger_id = id, error = %e, "could not settle a ledger row");
    }
}

fn to_broker_error(e: &LlmError) -> BrokerError {
    let kind = match e {
        LlmError::Timeout { .. } => BrokerErrorKind::Timeout,
        LlmError::Status { status, .. } if *status == 429 || *status >= 500 => BrokerErrorKind::ProviderUnavailable,
        LlmError::Network(_) => BrokerErrorKind::ProviderUnavailable,
        LlmError::Status { .. } | LlmError::Malformed(_) => BrokerErrorKind::ProviderError,
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
