//! The tools a member's assistant may call, run here in the worker (as the member's account, on
//! the member's own files); the gateway only passes definitions and calls through.
//!
//! - `remember(fact)`, `recall(query)`, `forget(query | id)`: the member's memory
//!   ([`crate::memory`]).
//!
//! A tool answers text for the model. A failure is text too ([`ToolError`]): the model reads
//! what went wrong and can try again or tell the member, so a bad call never fails the turn.

use std::path::PathBuf;
use std::time::Duration;

use hearth_proto::llm::{ToolCall, ToolSpec};
use serde_json::{Value, json};

use crate::memory::{self, Memory, Saved};

/// Longest one tool may run; past it the model is told it timed out.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a tool call produced no result; its `Display` is what the model reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    #[error("there is no tool called {0:?}")]
    Unknown(String),
    #[error("the arguments are not valid: {0}")]
    BadArguments(String),
    #[error("the tool took longer than {} seconds and was stopped", .0.as_secs())]
    TimedOut(Duration),
    #[error("the tool failed: {0}")]
    Failed(String),
}

/// The tools offered to the model on every chat step.
pub fn specs() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "remember".into(),
            description: "Save one lasting fact about the person you are talking with, so you know it in \
                          later conversations: names of family and pets, birthdays, likes and dislikes, \
                          health notes they share, plans. One short sentence per fact, written so it makes \
                          sense on its own. Do not save passing small talk."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": { "fact": { "type": "string", "description": "The fact, one sentence." } },
                "required": ["fact"]
            }),
        },
        ToolSpec {
            name: "recall".into(),
            description: "Search the facts you saved about this person. The most relevant ones are already \
                          in your instructions; use this to look for others."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": { "query": { "type": "string", "description": "Words to look for." } },
                "required": ["query"]
            }),
        },
        ToolSpec {
            name: "forget".into(),
            description: "Forget saved facts: the one with this id, or every fact containing all the given \
                          words. Use it when the person asks you to forget something or a fact is no longer \
                          true."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "query": { "type": "string", "description": "Words every fact to forget contains." },
                    "id": { "type": "integer", "description": "The id of one fact, as recall shows it." }
                }
            }),
        },
    ]
}

/// Runs one call under [`TOOL_TIMEOUT`].
pub async fn run(member_dir: PathBuf, call: &ToolCall, now: i64) -> Result<String, ToolError> {
    run_within(TOOL_TIMEOUT, dispatch(member_dir, call.clone(), now)).await
}

/// `work` or [`ToolError::TimedOut`] after `limit`. Work on a blocking thread is abandoned, not
/// stopped: it finishes on its own (a SQLite statement does) and its result is dropped.
pub async fn run_within(
    limit: Duration,
    work: impl Future<Output = Result<String, ToolError>>,
) -> Result<String, ToolError> {
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => Err(ToolError::TimedOut(limit)),
    }
}

/// One tool's work on the member's memory, run on a blocking thread.
type MemoryOp = Box<dyn FnOnce(&mut Memory) -> Result<String, ToolError> + Send>;

async fn dispatch(member_dir: PathBuf, call: ToolCall, now: i64) -> Result<String, ToolError> {
    let args: Value = if call.arguments.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str(&call.arguments).map_err(|e| ToolError::BadArguments(format!("not JSON ({e})")))?
    };
    if !args.is_object() {
        return Err(ToolError::BadArguments("expected a JSON object".into()));
    }
    let name = call.name.clone();
    let op: MemoryOp = match name.as_str() {
        "remember" => {
            let fact = string_arg(&args, "fact")?;
            if fact.chars().count() > memory::MAX_FACT_CHARS {
                return Err(ToolError::BadArguments(format!(
                    "the fact is longer than {} characters; save a shorter one",
                    memory::MAX_FACT_CHARS
                )));
            }
            Box::new(move |m| remember(m, &fact, now))
        }
        "recall" => {
            let query = string_arg(&args, "query")?;
            Box::new(move |m| recall(m, &query))
        }
        "forget" => {
            let id = args.get("id").and_then(Value::as_i64);
            let query = args.get("query").and_then(Value::as_str).map(str::trim).unwrap_or("").to_owned();
            if id.is_none() && query.is_empty() {
                return Err(ToolError::BadArguments("give an id or some words".into()));
            }
            Box::new(move |m| forget(m, id, &query))
        }
        other => return Err(ToolError::Unknown(other.to_owned())),
    };
    tokio::task::spawn_blocking(move || {
        let mut memory = Memory::open(&member_dir).map_err(|e| ToolError::Failed(e.to_string()))?;
        op(&mut memory)
    })
    .await
    .map_err(|e| ToolError::Failed(format!("the tool stopped unexpectedly: {e}")))?
}

fn string_arg(args: &Value, name: &str) -> Result<String, ToolError> {
    args.get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ToolError::BadArguments(format!("{name:?} must be a non-empty string")))
}

fn failed(e: memory::MemoryError) -> ToolError {
    ToolError::Failed(e.to_string())
}

fn remember(m: &mut Memory, fact: &str, now: i64) -> Result<String, ToolError> {
    Ok(match m.remember(fact, now).map_err(failed)? {
        Saved::New(id) => format!("Saved (id {id})."),
        Saved::Known(id) => format!("Already saved (id {id})."),
        Saved::Full => format!(
            "Not saved: {} facts are kept already. Forget some that no longer matter first.",
            memory::MAX_FACTS
        ),
    })
}

fn recall(m: &mut Memory, query: &str) -> Result<String, ToolError> {
    let facts = m.search(query, 10).map_err(failed)?;
    if facts.is_empty() {
        return Ok("Nothing saved matches.".into());
    }
    Ok(facts.iter().map(|f| format!("[id {}] {}", f.id, f.text)).collect::<Vec<_>>().join("\n"))
}

fn forget(m: &mut Memory, id: Option<i64>, query: &str) -> Result<String, ToolError> {
    let gone = match id {
        Some(id) => m.forget_id(id).map_err(failed)?.into_iter().collect(),
        None => m.forget_matching(query).map_err(failed)?,
    };
    if gone.is_empty() {
        return Ok("Nothing saved matches; nothing was forgotten.".into());
    }
    let list: Vec<String> = gone.iter().map(|f| format!("- {}", f.text)).collect();
    Ok(format!("Forgotten:\n{}", list.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, arguments: &str) -> ToolCall {
        ToolCall { id: "c".into(), name: name.into(), arguments: arguments.into() }
    }

    #[tokio::test]
    async fn bad_calls_are_errors_for_the_model() {
        let dir = tempfile::tempdir().unwrap();
        let d = || dir.path().to_owned();
        assert_eq!(run(d(), &call("launch", "{}"), 0).await, Err(ToolError::Unknown("launch".into())));
        for args in ["{", "[1]", "{\"fact\": 5}", "{\"fact\": \"  \"}"] {
            let e = run(d(), &call("remember", args), 0).await.unwrap_err();
            assert!(matches!(e, ToolError::BadArguments(_)), "{args}: {e:?}");
        }
        let long = json!({"fact": "x".repeat(memory::MAX_FACT_CHARS + 1)}).to_string();
        assert!(matches!(run(d(), &call("remember", &long), 0).await, Err(ToolError::BadArguments(_))));
        assert!(matches!(run(d(), &call("forget", "{}"), 0).await, Err(ToolError::BadArguments(_))));
    }

    #[tokio::test]
    async fn tools_share_the_members_memory() {
        let dir = tempfile::tempdir().unwrap();
        let d = || dir.path().to_owned();
        assert_eq!(run(d(), &call("remember", r#"{"fact":"Allergic to peanuts"}"#), 1).await.unwrap(), "Saved (id 1).");
        assert_eq!(run(d(), &call("recall", r#"{"query":"peanut butter?"}"#), 2).await.unwrap(), "[id 1] Allergic to peanuts");
        assert_eq!(run(d(), &call("forget", r#"{"id":1}"#), 3).await.unwrap(), "Forgotten:\n- Allergic to peanuts");
        assert_eq!(run(d(), &call("recall", r#"{"query":"peanuts"}"#), 4).await.unwrap(), "Nothing saved matches.");
    }

    #[tokio::test]
    async fn a_slow_tool_times_out() {
        let slow = async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok("late".to_owned())
        };
        let e = run_within(Duration::from_millis(20), slow).await.unwrap_err();
        assert_eq!(e, ToolError::TimedOut(Duration::from_millis(20)));
        assert_eq!(ToolError::TimedOut(TOOL_TIMEOUT).to_string(), "the tool took longer than 10 seconds and was stopped");
    }
}
