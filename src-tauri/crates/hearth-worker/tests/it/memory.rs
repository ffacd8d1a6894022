//! Memory per member: what the model saves is in later prompts, `/memory` lists it, `/forget`
//! removes it (after a confirmation for everything), and it stays in the member's directory.

use hearth_proto::worker::{GatewayToWorker, IncomingMessage, Turn, TurnKind, TurnOutcome};
use serde_json::json;

use crate::fake::{Gateway, chat_turn, completion, context, tool_calls};

fn command(turn_id: u64, kind: TurnKind, words: Option<&str>) -> Turn {
    let messages = words.map(|w| vec![IncomingMessage { inbox_id: 900 + turn_id as i64, text: w.into(), sent_at: 0, attachment: None }]);
    Turn { turn_id, chat_id: 100, kind, messages: messages.unwrap_or_default(), context: context() }
}

async fn reply(gw: &mut Gateway, turn: Turn) -> String {
    let id = turn.turn_id;
    gw.send(GatewayToWorker::Turn(turn)).await;
    match gw.expect_done(id).await {
        TurnOutcome::Reply { text } => text,
        other => panic!("{other:?}"),
    }
}

/// One chat turn in which the model saves `facts` and then answers "Noted.".
async fn tell(gw: &mut Gateway, turn_id: u64, text: &str, facts: &[&str]) {
    gw.send(GatewayToWorker::Turn(chat_turn(turn_id, 100, &[(turn_id as i64, text)]))).await;
    let (id, _) = gw.expect_complete(turn_id).await;
    let calls: Vec<_> = facts.iter().map(|f| ("remember", json!({ "fact": f }))).collect();
    gw.answer(id, Ok(tool_calls(&calls))).await;
    let (id, _) = gw.expect_complete(turn_id).await;
    gw.answer(id, Ok(completion("Noted."))).await;
    assert_eq!(gw.expect_done(turn_id).await, TurnOutcome::Reply { text: "Noted.".into() });
}

#[tokio::test]
async fn relevant_memories_appear_in_the_prompt() {
    let mut gw = Gateway::start().await;
    tell(&mut gw, 1, "some facts", &["Alex's dentist is Dr Park.", "Alex likes green tea."]).await;
    for i in 0..6 {
        tell(&mut gw, 10 + i, "more", &[&format!("Unrelated fact number {i}.")]).await;
    }
    // Asking about the dentist brings that fact even though it is old; the newest come too.
    gw.chat(30, 100, &[(30, "When is my dentist appointment?")], "Ask Dr Park.").await;
    // They come in the turn's note, at the start of its message.
    let note = gw.last_note();
    assert!(note.contains("- Alex's dentist is Dr Park."), "{note}");
    assert!(note.contains("- Unrelated fact number 5."), "{note}");
    assert!(!note.contains("green tea"), "only relevant and recent ones: {note}");
    gw.shutdown().await;
}

#[tokio::test]
async fn memory_lists_and_forget_removes() {
    let mut gw = Gateway::start().await;
    let empty = reply(&mut gw, command(1, TurnKind::ListMemory, None)).await;
    assert!(empty.starts_with("I don't remember anything about you yet"), "{empty}");

    tell(&mut gw, 2, "facts", &["Alex's cat is called Miso.", "Alex's sister is Jo.", "Alex hates olives."]).await;
    let list = reply(&mut gw, command(3, TurnKind::ListMemory, None)).await;
    assert!(list.starts_with("Here's what I remember about you (3):"), "{list}");
    assert!(list.contains("\n- Alex's cat is called Miso.\n- Alex's sister is Jo.\n- Alex hates olives."), "{list}");

    let gone = reply(&mut gw, command(4, TurnKind::Forget, Some("cat Miso"))).await;
    assert_eq!(gone, "Done — I've forgotten:\n- Alex's cat is called Miso.");
    let none = reply(&mut gw, command(5, TurnKind::Forget, Some("dog"))).await;
    assert!(none.starts_with("I don't remember anything with “dog”"), "{none}");

    // `/forget` alone only asks; nothing is forgotten until it is confirmed.
    let ask = reply(&mut gw, command(6, TurnKind::Forget, Some(""))).await;
    assert!(ask.contains("forget all 2 things") && ask.contains("/forget everything"), "{ask}");
    let request = gw.chat(7, 100, &[(70, "Who is my sister?")], "Jo.").await;
    assert!(gw.last_note().contains("Alex's sister is Jo."), "{request:?}");
    assert!(!gw.last_note().contains("Miso"));

    let done = reply(&mut gw, command(8, TurnKind::Forget, Some("Everything"))).await;
    assert!(done.starts_with("Done — I've forgotten everything I remembered about you (2)"), "{done}");
    gw.chat(9, 100, &[(90, "Who is my sister?")], "I don't know.").await;
    assert!(!gw.last_note().contains("What you remember"), "{}", gw.last_note());
    assert!(gw.last_note().starts_with("It is now Friday"), "{}", gw.last_note());
    let dir = gw.shutdown().await;
    assert!(dir.path().join("memory.sqlite").exists());
}

#[tokio::test]
async fn one_members_memories_never_reach_anothers_prompt() {
    let mut alex = Gateway::start().await;
    let mut sam = Gateway::start().await;
    tell(&mut alex, 1, "secret", &["Alex is planning a surprise party for Sam."]).await;
    let request = sam.chat(1, 100, &[(1, "Is anyone planning a party for me?")], "Not that I know!").await;
    assert!(!format!("{request:?}{}", sam.last_note()).contains("surprise"), "{}", sam.last_note());
    alex.chat(2, 100, &[(2, "How's the party plan?")], "Going well.").await;
    assert!(alex.last_note().contains("surprise party for Sam"), "{}", alex.last_note());
    alex.shutdown().await;
    sam.shutdown().await;
}
