//! A completion the member stopped (issue 16, Stop): what the ledger is told and what the worker
//! is answered.
//!
//! The provider stream was dropped mid-answer, so no usage was reported. The call is charged a
//! safe over-estimate instead: the whole prompt as hearth-llm estimates it (as at reservation),
//! and one token per byte of the text received (`estimate_text_tokens`, never fewer tokens than
//! the provider counts) up to the call's `max_tokens` (the provider stops there, and the
//! reservation holds no more). The ledger row says `stopped`.

use hearth_proto::llm::{BrokerError, BrokerErrorKind, Completion, CompletionRequest, Usage};

/// The `finish_reason` that marks a completion settled as stopped (no provider sends it).
pub(super) const STOPPED_BY_MEMBER: &str = "stopped_by_member";

/// What a stopped call is settled as: `text_bytes` of answer received from `model`.
pub(super) fn stopped_completion(req: &CompletionRequest, model: &str, text_bytes: usize) -> Completion {
    Completion {
        text: String::new(),
        model: model.to_owned(),
        usage: Usage {
            // Images included, at the count this model bills them.
            input_tokens: hearth_llm::estimate_prompt_tokens_for(req, model),
            output_tokens: (text_bytes as u64).min(u64::from(req.max_tokens)),
            cached_input_tokens: 0,
            cache_write_tokens: 0,
        },
        finish_reason: Some(STOPPED_BY_MEMBER.to_owned()),
        tool_calls: Vec::new(),
    }
}

/// What the worker hears about a call the member stopped; the gateway answers the member itself
/// (`core/turn.rs`), so the worker's sentence for it is never sent.
pub(super) fn stopped_error() -> BrokerError {
    BrokerError { kind: BrokerErrorKind::ProviderError, message: "the member stopped this answer".into() }
}

/// The ledger outcome of a settled completion.
pub(super) fn outcome_of(c: &Completion) -> &'static str {
    if c.finish_reason.as_deref() == Some(STOPPED_BY_MEMBER) { "stopped" } else { "ok" }
}

#[cfg(test)]
mod tests {
    use hearth_proto::llm::ChatMessage;

    use super::*;

    #[test]
    fn a_stopped_call_is_charged_no_less_than_it_used() {
        let req = CompletionRequest {
            system: "be kind".into(),
            messages: vec![ChatMessage::user("tell me a long story")],
            max_tokens: 500,
            tools: Vec::new(),
        };
        let c = stopped_completion(&req, "m", 120);
        assert!(c.usage.input_tokens >= hearth_llm::estimate_prompt_tokens(&req));
        assert_eq!(c.usage.output_tokens, 120, "a token per byte received");
        assert_eq!(stopped_completion(&req, "m", 9000).usage.output_tokens, 500, "no more than the call could write");
        assert_eq!(outcome_of(&c), "stopped");
        assert_eq!(outcome_of(&Completion { finish_reason: Some("stop".into()), ..c }), "ok");
    }
}
