use hearth_proto::worker::TurnContext;

use super::*;
use crate::prompt;

/// The committed corpus: (message, tool it needs or "-", the member's previous message).
fn corpus() -> Vec<(&'static str, &'static str, Option<&'static str>)> {
    include_str!("../../tests/fixtures/family-corpus.tsv")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut cols = l.split('\t');
            let message = cols.next().expect("a message");
            let tool = cols.next().unwrap_or_else(|| panic!("no tool column: {l:?}"));
            (message, tool, cols.next())
        })
        .collect()
}

fn ctx(role: Role) -> TurnContext {
    TurnContext {
        member_name: "Sam".into(),
        persona: String::new(),
        now: "2026-12-07T19:04:00+01:00".into(),
        timezone: "Europe/Berlin".into(),
        context_tokens: 8000,
        max_output_tokens: 1024,
        role,
    }
}

/// The conversation before a follow-up: the previous message and a reply that names nothing.
fn earlier(previous: Option<&str>) -> Vec<ChatMessage> {
    previous.map(|p| vec![ChatMessage::user(p), ChatMessage::assistant("Done.")]).unwrap_or_default()
}

fn offered(role: Role, message: &str, previous: Option<&str>) -> Vec<ToolSpec> {
    let earlier = earlier(previous);
    let new = [message];
    offer(role, families(&Signals { new: &new, earlier: &earlier, ..Signals::default() }))
}

/// Characters of a request as the model reads them: the system prompt, every message, and each
/// tool's name, description and parameter schema.
fn prompt_chars(r: &hearth_proto::llm::CompletionRequest) -> usize {
    let tools: usize = r
        .tools
        .iter()
        .map(|t| t.name.chars().count() + t.description.chars().count() + t.parameters.to_string().chars().count())
        .sum();
    r.system.chars().count() + r.messages.iter().map(|m| m.content.chars().count()).sum::<usize>() + tools
}

/// The first request of a turn for `message`, as the agent builds it, with these tools.
fn first_request_chars(message: &str, previous: Option<&str>, tools: Vec<ToolSpec>) -> usize {
    prompt_chars(&prompt::build_request(&ctx(Role::Adult), &[], &earlier(previous), &[message], tools))
}

#[test]
fn no_message_that_needs_a_tool_loses_it() {
    let corpus = corpus();
    assert_eq!(corpus.len(), 200, "the corpus is 200 messages");
    let mut missed = Vec::new();
    for &(message, tool, previous) in &corpus {
        if tool == "-" {
            continue;
        }
        assert!(role_tools::allows(Role::Adult, tool), "the corpus names a tool no one has: {tool}");
        if !offered(Role::Adult, message, previous).iter().any(|t| t.name == tool) {
            missed.push(format!("{message:?} needs {tool}"));
        }
    }
    assert!(missed.is_empty(), "{} of the corpus lost their tool:\n{}", missed.len(), missed.join("\n"));
}

#[test]
fn the_selection_never_offers_a_tool_the_role_may_not_have() {
    for role in [Role::Adult, Role::Teen, Role::Child] {
        assert_eq!(offer(role, Families::EVERY), role_tools::specs(role), "every family is the role's whole table");
        for (message, _, previous) in corpus() {
            for t in offered(role, message, previous) {
                assert!(role_tools::allows(role, &t.name), "{role:?} offered {} for {message:?}", t.name);
            }
        }
    }
    let child: Vec<String> =
        offered(Role::Child, "add milk to the shopping list", None).into_iter().map(|t| t.name).collect();
    assert!(child.contains(&"read_file".to_owned()) && !child.contains(&"write_file".to_owned()), "{child:?}");
}

#[test]
fn small_talk_gets_only_the_always_on_tools() {
    for m in ["hello", "thanks!", "tell me a joke", "why is the sky blue?", "gracias!"] {
        let names: Vec<String> = offered(Role::Adult, m, None).into_iter().map(|t| t.name).collect();
        assert_eq!(names, ALWAYS, "{m}");
    }
}

#[test]
fn a_follow_up_keeps_the_family_the_conversation_just_used() {
    let new = ["yes please, that one too"];
    assert_eq!(families(&Signals { new: &new, ..Signals::default() }), Families::NONE);
    let used = Families::of_tools(["cancel_reminder"]);
    let f = families(&Signals { new: &new, used_last_turn: used, ..Signals::default() });
    assert_eq!(f, Families::NONE.with(Family::Reminders));
    let f = families(&Signals { new: &["and one more"], ..Signals::default() });
    assert_eq!(f, Families::NONE);
    let f = families(&Signals { new: &["thanks"], files_attached: true, ..Signals::default() });
    assert_eq!(f, Families::NONE.with(Family::Files));
}

#[test]
fn times_are_recognised_in_several_forms() {
    for t in ["at 8", "8am", "6 pm", "7:30", "17.00", "in 20 minutes", "um 8 Uhr", "At 9"] {
        assert!(names_a_time(t), "{t}");
    }
    for t in ["3/4 + 1/8", "a 10k in april", "year 6", "350 F", "15% of 84"] {
        assert!(!names_a_time(t), "{t}");
    }
}

/// The figures in BENCHMARKS.md ("Lean prompts"): mean prompt characters and estimated tokens of
/// a turn's first request over the corpus, every tool offered (the selection off) and offered
/// by need. Run: `cargo nextest run -p hearth-worker -E 'test(corpus_prompt_size)' --no-capture`.
#[test]
fn corpus_prompt_size() {
    let corpus = corpus();
    let n = corpus.len();
    let (mut before, mut after) = (0usize, 0usize);
    for &(message, _, previous) in &corpus {
        before += first_request_chars(message, previous, offer(Role::Adult, Families::EVERY));
        after += first_request_chars(message, previous, offered(Role::Adult, message, previous));
    }
    let hello_before = first_request_chars("hello", None, offer(Role::Adult, Families::EVERY));
    let hello_after = first_request_chars("hello", None, offered(Role::Adult, "hello", None));
    let tokens = |chars: usize| chars.div_ceil(4);
    println!("first request, prompt characters (estimated tokens at 4 characters each):");
    println!(
        "  \"hello\"      every tool {hello_before} ({})  by need {hello_after} ({})",
        tokens(hello_before),
        tokens(hello_after)
    );
    let (mb, ma) = (before as f64 / n as f64, after as f64 / n as f64);
    println!(
        "  corpus mean  every tool {mb:.0} ({:.0})  by need {ma:.0} ({:.0})  ratio {:.2}",
        mb / 4.0,
        ma / 4.0,
        ma / mb
    );
    assert!(hello_after < 2000, "\"hello\" is {hello_after} characters");
    assert!(after < before);
}
