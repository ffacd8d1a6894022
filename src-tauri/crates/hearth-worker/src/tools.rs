//! The tools a member's assistant may call, run here in the worker (as the member's account, on
//! the member's own files); the gateway only passes definitions and calls through.
//!
//! - `remember(fact)`, `recall(query)`, `forget(query | id)`: the member's memory
//!   ([`crate::memory`]).
//! - `set_reminder(text, at, repeat)`, `list_reminders()`, `cancel_reminder(id)`: the member's
//!   reminders ([`crate::reminders`]); `at` is local time in the household's zone.
//! - `list_files()`, `read_file(name)`, `write_file(name, content, append)`, `delete_file(name)`:
//!   the member's notes in `files/` ([`crate::files`]).
//! - `search_household_knowledge(query)` is run by the agent through the gateway
//!   ([`crate::knowledge`]); which tools a member has is [`crate::role_tools`]'s to say.
//!
//! A tool answers text for the model. A failure is text too ([`ToolError`]): the model reads
//! what went wrong and can try again or tell the member, so a bad call never fails the turn.

use std::path::PathBuf;
use std::time::Duration;

use hearth_proto::llm::{ToolCall, ToolSpec};
use serde_json::{Value, json};

use crate::memory::{self, Memory, Saved};
use crate::reminders::{self, Repeat, Reminders};

/// The turn's "now" and the household's zone: tools take the gateway's clock, not their own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Now {
    /// Unix seconds.
    pub unix: i64,
    pub tz: chrono_tz::Tz,
}

impl Now {
    /// From the turn's context; a value that does not parse falls back to this machine's clock
    /// and UTC rather than failing the turn.
    pub fn from_context(context: &hearth_proto::worker::TurnContext) -> Self {
        let unix = chrono::DateTime::parse_from_rfc3339(&context.now)
            .map(|t| t.timestamp())
            .unwrap_or_else(|_| chrono::Utc::now().timestamp());
        Self { unix, tz: context.timezone.parse().unwrap_or(chrono_tz::UTC) }
    }

    fn utc(self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(self.unix, 0).unwrap_or_default()
    }
}

/// Tools whose success changes what the gateway must schedule.
pub fn changes_reminders(name: &str) -> bool {
    matches!(name, "set_reminder" | "cancel_reminder")
}

/// Longest one tool may run; past it the model is told it timed out.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a tool call produced no result; its `Display` is what the model reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    #[error("there is no tool called {0:?}")]
    Unknown(String),
    /// The member's role does not have this tool (`role_tools`); it was not run.
    #[error("the tool {0:?} is not available to this member, so it was not used")]
    NotAllowed(String),
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
            // Offered with every chat turn (`tool_offer.rs`): every character counts.
            description: "Save a lasting fact about this person for later conversations: family and pets' \
                          names, birthdays, likes and dislikes, health notes they share, plans. One short \
                          sentence that makes sense on its own; not passing small talk."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": { "fact": { "type": "string", "description": "The fact, one sentence." } },
                "required": ["fact"]
            }),
        },
        ToolSpec {
            name: "recall".into(),
            description: "Search the facts saved about this person; the most relevant are already in the \
                          <hearth> note."
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
        ToolSpec {
            name: "set_reminder".into(),
            description: "Remind the person: at `at` they get a message with `text`. `at` is the (first) time, \
                          local in the household's zone, like 2026-11-22T08:00, worked out from the time in the \
                          <hearth> note; `repeat` brings it back every day, week or month."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "text": { "type": "string", "description": "What to remind them of, e.g. \"take the blue pill\"." },
                    "at": { "type": "string", "description": "Local date and time, YYYY-MM-DDTHH:MM." },
                    "repeat": { "type": "string", "enum": ["none", "daily", "weekly", "monthly"] }
                },
                "required": ["text", "at"]
            }),
        },
        ToolSpec {
            name: "list_reminders".into(),
            description: "List the person's upcoming reminders with their ids.".into(),
            parameters: json!({ "type": "object", "properties": {} }),
        },
        ToolSpec {
            name: "cancel_reminder".into(),
            description: "Cancel one reminder by its id (list_reminders shows the ids).".into(),
            parameters: json!({
                "type": "object",
                "properties": { "id": { "type": "integer", "description": "The reminder's id." } },
                "required": ["id"]
            }),
        },
    ]
}

/// Runs one call under [`TOOL_TIMEOUT`].
pub async fn run(member_dir: PathBuf, call: &ToolCall, now: Now) -> Result<String, ToolError> {
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

/// One tool's work on the member's reminders, run on a blocking thread.
type ReminderOp = Box<dyn FnOnce(&mut Reminders) -> Result<String, ToolError> + Send>;

async fn dispatch(member_dir: PathBuf, call: ToolCall, clock: Now) -> Result<String, ToolError> {
    let now = clock.unix;
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
        "set_reminder" | "list_reminders" | "cancel_reminder" => {
            let op = reminder_op(&name, &args, clock)?;
            return tokio::task::spawn_blocking(move || {
                let mut r = Reminders::open(&member_dir).map_err(|e| ToolError::Failed(e.to_string()))?;
                op(&mut r)
            })
            .await
            .map_err(|e| ToolError::Failed(format!("the tool stopped unexpectedly: {e}")))?;
        }
        "list_files" | "read_file" | "write_file" | "delete_file" => {
            return tokio::task::spawn_blocking(move || crate::files::run(&member_dir, &name, &args))
                .await
                .map_err(|e| ToolError::Failed(format!("the tool stopped unexpectedly: {e}")))?;
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

fn reminder_op(name: &str, args: &Value, clock: Now) -> Result<ReminderOp, ToolError> {
    Ok(match name {
        "set_reminder" => {
            let text = string_arg(args, "text")?;
            if text.chars().count() > reminders::MAX_TEXT_CHARS {
                return Err(ToolError::BadArguments(format!(
                    "the text is longer than {} characters; make it shorter",
                    reminders::MAX_TEXT_CHARS
                )));
            }
            let at = string_arg(args, "at")?;
            let at = reminders::parse_local(&at).ok_or_else(|| {
                ToolError::BadArguments(format!("\"at\" must be a local date and time like 2026-11-22T08:00, not {at:?}"))
            })?;
            let repeat = args.get("repeat").and_then(Value::as_str).unwrap_or("none");
            let repeat = Repeat::parse(repeat).ok_or_else(|| {
                ToolError::BadArguments(format!("\"repeat\" must be none, daily, weekly or monthly, not {repeat:?}"))
            })?;
            Box::new(move |r| match r.set(&text, at, clock.tz, repeat, clock.utc()).map_err(reminder_failed)? {
                Ok(set) => Ok(format!("Reminder set (id {}): {} — {}.", set.id, set.text, set.describe())),
                Err(e) => Err(ToolError::BadArguments(e.to_string())),
            })
        }
        "list_reminders" => Box::new(|r| {
            let all = r.upcoming().map_err(reminder_failed)?;
            if all.is_empty() {
                return Ok("No reminders are set.".into());
            }
            let lines: Vec<String> = all.iter().map(|x| format!("[id {}] {} — {}", x.id, x.text, x.describe())).collect();
            Ok(lines.join("\n"))
        }),
        _ => {
            let id = args
                .get("id")
                .and_then(Value::as_i64)
                .ok_or_else(|| ToolError::BadArguments("\"id\" must be a reminder's id (a number)".into()))?;
            Box::new(move |r| match r.cancel(id, clock.unix).map_err(reminder_failed)? {
                Some(gone) => Ok(format!("Cancelled reminder {id}: {}.", gone.text)),
                None => Ok(format!("There is no upcoming reminder with id {id}; nothing was cancelled.")),
            })
        }
    })
}

fn reminder_failed(e: reminders::ReminderError) -> ToolError {
    ToolError::Failed(e.to_string())
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

    fn at(unix: i64) -> Now {
        Now { unix, tz: chrono_tz::Europe::Berlin }
    }

    fn call(name: &str, arguments: &str) -> ToolCall {
        ToolCall { id: "c".into(), name: name.into(), arguments: arguments.into() }
    }

    #[tokio::test]
    async fn bad_calls_are_errors_for_the_model() {
        let dir = tempfile::tempdir().unwrap();
        let d = || dir.path().to_owned();
        assert_eq!(run(d(), &call("launch", "{}"), at(0)).await, Err(ToolError::Unknown("launch".into())));
        for args in ["{", "[1]", "{\"fact\": 5}", "{\"fact\": \"  \"}"] {
            let e = run(d(), &call("remember", args), at(0)).await.unwrap_err();
            assert!(matches!(e, ToolError::BadArguments(_)), "{args}: {e:?}");
        }
        let long = json!({"fact": "x".repeat(memory::MAX_FACT_CHARS + 1)}).to_string();
        assert!(matches!(run(d(), &call("remember", &long), at(0)).await, Err(ToolError::BadArguments(_))));
        assert!(matches!(run(d(), &call("forget", "{}"), at(0)).await, Err(ToolError::BadArguments(_))));
    }

    #[tokio::test]
    async fn tools_share_the_members_memory() {
        let dir = tempfile::tempdir().unwrap();
        let d = || dir.path().to_owned();
        assert_eq!(run(d(), &call("remember", r#"{"fact":"Allergic to peanuts"}"#), at(1)).await.unwrap(), "Saved (id 1).");
        assert_eq!(run(d(), &call("recall", r#"{"query":"peanut butter?"}"#), at(2)).await.unwrap(), "[id 1] Allergic to peanuts");
        assert_eq!(run(d(), &call("forget", r#"{"id":1}"#), at(3)).await.unwrap(), "Forgotten:\n- Allergic to peanuts");
        assert_eq!(run(d(), &call("recall", r#"{"query":"peanuts"}"#), at(4)).await.unwrap(), "Nothing saved matches.");
    }

    #[tokio::test]
    async fn reminders_are_set_listed_and_cancelled_in_the_households_zone() {
        let dir = tempfile::tempdir().unwrap();
        let d = || dir.path().to_owned();
        // Saturday 21 November 2026, 20:00 in Berlin.
        let now = at(chrono::DateTime::parse_from_rfc3339("2026-11-21T20:00:00+01:00").unwrap().timestamp());
        let pills = call("set_reminder", r#"{"text":"take my pills","at":"2026-11-22T08:00","repeat":"daily"}"#);
        assert_eq!(
            run(d(), &pills, now).await.unwrap(),
            "Reminder set (id 1): take my pills — every day at 08:00, next Sunday 22 November 2026 at 08:00."
        );
        let set = run(d(), &call("set_reminder", r#"{"text":"dentist","at":"2026-12-03T14:00"}"#), now).await.unwrap();
        assert_eq!(set, "Reminder set (id 2): dentist — next Thursday 3 December 2026 at 14:00.");
        assert_eq!(
            run(d(), &call("list_reminders", "{}"), now).await.unwrap(),
            "[id 1] take my pills — every day at 08:00, next Sunday 22 November 2026 at 08:00\n\
             [id 2] dentist — next Thursday 3 December 2026 at 14:00"
        );
        assert_eq!(run(d(), &call("cancel_reminder", r#"{"id":1}"#), now).await.unwrap(), "Cancelled reminder 1: take my pills.");
        assert_eq!(
            run(d(), &call("cancel_reminder", r#"{"id":1}"#), now).await.unwrap(),
            "There is no upcoming reminder with id 1; nothing was cancelled."
        );
        for (args, says) in [
            (r#"{"text":"x","at":"tomorrow at 8"}"#, "like 2026-11-22T08:00"),
            (r#"{"text":"x","at":"2026-11-22T08:00","repeat":"hourly"}"#, "none, daily, weekly or monthly"),
            (r#"{"text":"x","at":"2026-11-21T08:00"}"#, "already passed (it is now 2026-11-21T20:00)"),
            (r#"{"at":"2026-11-22T08:00"}"#, "\"text\""),
        ] {
            let e = run(d(), &call("set_reminder", args), now).await.unwrap_err();
            assert!(matches!(&e, ToolError::BadArguments(m) if m.contains(says)), "{args}: {e:?}");
        }
        assert!(changes_reminders("set_reminder") && changes_reminders("cancel_reminder"));
        assert!(!changes_reminders("list_reminders"));
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
