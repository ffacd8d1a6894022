//! Keeping a long conversation within the prompt's token budget without forgetting its start.
//!
//! History normally goes into the prompt whole, newest first, as far as the budget allows
//! (`prompt::trim_history`). When the conversation since its summary no longer fits, the oldest
//! messages would be dropped; instead they are folded, together with the summary so far, into a
//! new running summary by one extra completion (through the broker, reserved and settled like any
//! call). The summary is stored with the conversation in `history.sqlite` and goes into the
//! system prompt under its own heading; the messages it covers are no longer read back. What
//! stays is the newest part, at most half the room, so the next turns do not summarise again
//! at once. A conversation started by `/new` (or an idle reset) has no summary.
//!
//! If the summarising call fails, the turn goes on as before: plain trimming, nothing stored.

use hearth_proto::llm::{ChatMessage, CompletionRequest, Role, ToolSpec};
use hearth_proto::worker::Turn;

use crate::agent::{Broker, Store};
use crate::link::LinkError;
use crate::prompt::{self, estimate_tokens};

/// Most tokens a summary may take (the summarising call's output cap).
pub const SUMMARY_MAX_TOKENS: u32 = 400;

/// The heading the summary sits under in the system prompt.
pub const SUMMARY_HEADING: &str = "Earlier in this conversation (a summary; those messages are no longer shown):";

/// The conversation before the turn, as the history holds it.
#[derive(Debug)]
pub struct Earlier {
    /// Messages after the summary, oldest first.
    pub messages: Vec<ChatMessage>,
    /// The history id of each message, same order.
    pub ids: Vec<i64>,
    pub summary: Option<String>,
}

/// What goes into the prompt: the history to send (it fits the budget left beside the summary
/// section) and the summary section for the end of the system prompt (empty without a summary).
// The turn's pieces as the agent already holds them; a struct for one call would only rename them.
#[allow(clippy::too_many_arguments)]
pub async fn fit<B: Broker>(
    broker: &mut B,
    store: &mut Store,
    turn: &Turn,
    conversation_id: i64,
    facts: &[String],
    new: &[&str],
    tools: &[ToolSpec],
    earlier: Earlier,
) -> Result<(Vec<ChatMessage>, String), LinkError> {
    let ctx = &turn.context;
    let full = prompt::history_budget(ctx, facts, new, tools);
    let current = earlier.summary.as_deref().map(section).unwrap_or_default();
    let left = full.saturating_sub(estimate_tokens(&current));
    let cost: usize = earlier.messages.iter().map(cost).sum();
    if cost <= left {
        return Ok((earlier.messages, current));
    }

    // Keep the newest whole exchanges in half of what is left beside the largest summary.
    let max_output = SUMMARY_MAX_TOKENS.min(ctx.max_output_tokens.max(1));
    let largest = estimate_tokens(SUMMARY_HEADING) + (max_output as usize * 4).div_ceil(3) + 2;
    let keep_budget = full.saturating_sub(largest) / 2;
    let split = split_point(&earlier.messages, keep_budget);
    let (old, kept) = earlier.messages.split_at(split);
    let through = earlier.ids[split - 1];
    let request = summary_request(&ctx.member_name, earlier.summary.as_deref(), old, ctx.context_tokens, max_output);
    let summary = match broker.complete(turn.turn_id, request).await? {
        Ok(c) if c.tool_calls.is_empty() && !c.text.trim().is_empty() => c.text.trim().to_owned(),
        Ok(c) => {
            tracing::warn!(turn_id = turn.turn_id, model = %c.model, "the summary came back empty; trimming instead");
            return Ok((earlier.messages, current));
        }
        Err(e) => {
            tracing::warn!(turn_id = turn.turn_id, error = %e, "could not summarise older messages; trimming instead");
            return Ok((earlier.messages, current));
        }
    };
    match store.get().and_then(|h| h.set_summary(conversation_id, &summary, through)) {
        Ok(()) => {
            tracing::info!(turn_id = turn.turn_id, folded = split, kept = kept.len(), "older messages summarised")
        }
        // Still used for this turn; the next one summarises again.
        Err(e) => tracing::error!(turn_id = turn.turn_id, error = %e, "could not store the summary"),
    }
    Ok((kept.to_vec(), section(&summary)))
}

/// The summary under its heading, for the end of the system prompt.
pub fn section(summary: &str) -> String {
    format!("\n{SUMMARY_HEADING}\n{}\n", summary.trim())
}

/// A message's cost as `prompt::trim_history` counts it (with a paragraph separator).
fn cost(m: &ChatMessage) -> usize {
    (m.content.len() + 2).div_ceil(3)
}

/// Where the kept part starts: the newest messages whose cost fits `budget`, starting at a user
/// message so whole exchanges stay. At least the first message (its exchange) is folded.
fn split_point(messages: &[ChatMessage], budget: usize) -> usize {
    let mut split = messages.len();
    let mut spent = 0;
    for (i, m) in messages.iter().enumerate().rev() {
        spent += cost(m);
        if spent > budget || i == 0 {
            break;
        }
        if m.role == Role::User {
            split = i;
        }
    }
    split.max(1)
}

/// The one completion that folds `old` into the summary so far. The transcript is cut from its
/// oldest end to fit the budget (what does not fit was beyond any prompt anyway).
fn summary_request(
    member_name: &str,
    summary: Option<&str>,
    old: &[ChatMessage],
    context_tokens: u32,
    max_output: u32,
) -> CompletionRequest {
    let name = member_name.trim();
    let name = if name.is_empty() { "the member" } else { name };
    let system = format!(
        "You keep a short running summary of a conversation between {name} and their family assistant, so \
         the assistant can go on after older messages are put away. Write in the third person, in plain \
         sentences, at most about 200 words: what {name} asked for or told, decisions, open questions and \
         anything the assistant promised. Leave out greetings and small talk. Reply with the summary only."
    );
    let mut lines: Vec<String> = Vec::new();
    let room = (context_tokens as usize).saturating_sub(estimate_tokens(&system) + 200) * 3;
    let mut bytes = summary.map_or(0, str::len);
    for m in old.iter().rev() {
        let who = if m.role == Role::Assistant { "Assistant" } else { name };
        let line = format!("{who}: {}", m.content.trim());
        bytes += line.len() + 1;
        if bytes > room && !lines.is_empty() {
            break;
        }
        lines.push(line);
    }
    lines.reverse();
    let mut text = String::new();
    if let Some(s) = summary {
        text.push_str("The summary so far:\n");
        text.push_str(s.trim());
        text.push_str("\n\n");
    }
    text.push_str("Messages to add to it:\n");
    text.push_str(&lines.join("\n"));
    text.push_str("\n\nWrite the updated summary.");
    CompletionRequest { system, messages: vec![ChatMessage::user(text)], max_tokens: max_output, tools: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn talk(n: usize) -> Vec<ChatMessage> {
        (0..n)
            .flat_map(|i| {
                [
                    ChatMessage::user(format!("question {i:02}{}", "q".repeat(17))),
                    ChatMessage::assistant("a".repeat(28)),
                ]
            })
            .collect()
    }

    #[test]
    fn split_keeps_newest_whole_exchanges_and_folds_at_least_one() {
        let m = talk(4); // each message costs 10
        assert_eq!(split_point(&m, 0), 8);
        assert_eq!(split_point(&m, 20), 6);
        assert_eq!(split_point(&m, 39), 6);
        assert_eq!(split_point(&m, 40), 4);
        assert_eq!(split_point(&m, 1000), 2, "always folds the first exchange");
        assert_eq!(m[6].role, Role::User);
    }

    #[test]
    fn summary_request_carries_the_old_summary_and_the_messages() {
        let r = summary_request("Mia", Some("Mia likes horses."), &talk(2), 8000, 400);
        assert!(r.tools.is_empty() && r.max_tokens == 400);
        let text = &r.messages[0].content;
        assert!(
            text.contains("Mia likes horses.") && text.contains("Mia: question 00") && text.contains("Assistant: aaa")
        );
        // A tiny budget keeps the newest line only.
        let r = summary_request("Mia", None, &talk(50), 300, 400);
        assert!(r.messages[0].content.contains("Assistant: aaa") && !r.messages[0].content.contains("question 00"));
    }
}
