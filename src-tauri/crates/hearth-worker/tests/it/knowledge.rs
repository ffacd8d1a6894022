//! Household knowledge and tools per role, against a scripted gateway: the search goes over the
//! socket as `KbSearch` during the turn and its hits come back to the model; a child's turn
//! offers no file writing and a forced call to it is answered with an error, not run.

use hearth_proto::control::Role;
use hearth_proto::worker::{GatewayToWorker, KbHit, TurnOutcome, WorkerToGateway};
use serde_json::json;

use crate::fake::{Gateway, chat_turn, completion, tool_calls};

#[tokio::test]
async fn a_knowledge_search_is_answered_by_the_gateway() {
    let mut gw = Gateway::start().await;
    gw.send(GatewayToWorker::Turn(chat_turn(1, 100, &[(10, "What's the wifi password?")]))).await;
    let (id, _) = gw.expect_complete(1).await;
    gw.answer(id, Ok(tool_calls(&[("search_household_knowledge", json!({"query": "wifi password"}))]))).await;

    let (request_id, query) = match gw.recv().await {
        WorkerToGateway::KbSearch { request_id, turn_id: 1, query } => (request_id, query),
        other => panic!("expected KbSearch for turn 1, got {other:?}"),
    };
    assert_eq!(query, "wifi password");
    let hit = KbHit { file: "wifi.md".into(), heading: "Wifi".into(), snippet: "Password: swordfish".into() };
    gw.send(GatewayToWorker::KbResults { request_id, result: Ok(vec![hit]) }).await;

    let (id, second) = gw.expect_complete(1).await;
    let result = second.messages.last().unwrap();
    let quoted = format!("{}\n[wifi.md — Wifi]\nPassword: swordfish\n{}", hearth_worker::KB_QUOTE_OPEN, hearth_worker::KB_QUOTE_CLOSE);
    assert_eq!((result.content.as_str(), result.is_error), (quoted.as_str(), false));
    gw.answer(id, Ok(completion("It's swordfish."))).await;
    assert_eq!(gw.expect_done(1).await, TurnOutcome::Reply { text: "It's swordfish.".into() });

    // The gateway's refusal reaches the model as an error result.
    gw.send(GatewayToWorker::Turn(chat_turn(2, 100, &[(11, "And the bins?")]))).await;
    let (id, _) = gw.expect_complete(2).await;
    gw.answer(id, Ok(tool_calls(&[("search_household_knowledge", json!({"query": "bins"}))]))).await;
    let WorkerToGateway::KbSearch { request_id, .. } = gw.recv().await else { panic!("expected KbSearch") };
    gw.send(GatewayToWorker::KbResults { request_id, result: Err("the household knowledge is not available".into()) })
        .await;
    let (id, second) = gw.expect_complete(2).await;
    let result = second.messages.last().unwrap();
    assert!(result.is_error && result.content.contains("not available"), "{result:?}");
    gw.answer(id, Ok(completion("I don't know."))).await;
    gw.expect_done(2).await;
    gw.shutdown().await;
}

#[tokio::test]
async fn a_childs_turn_offers_no_file_writing_and_refuses_a_forced_call() {
    let mut gw = Gateway::start().await;
    let mut turn = chat_turn(1, 100, &[(10, "Write a note with our wifi password")]);
    turn.context.role = Role::Child;
    gw.send(GatewayToWorker::Turn(turn)).await;
    let (id, first) = gw.expect_complete(1).await;
    let offered: Vec<&str> = first.tools.iter().map(|t| t.name.as_str()).collect();
    assert!(offered.contains(&"remember") && offered.contains(&"search_household_knowledge"), "{offered:?}");
    assert!(!offered.contains(&"write_file") && !offered.contains(&"delete_file"), "{offered:?}");

    gw.answer(id, Ok(tool_calls(&[("write_file", json!({"name": "note.txt", "content": "hi"}))]))).await;
    let (id, second) = gw.expect_complete(1).await;
    let result = second.messages.last().unwrap();
    assert!(result.is_error, "{result:?}");
    assert_eq!(result.content, "error: the tool \"write_file\" is not available to this member, so it was not used");
    gw.answer(id, Ok(completion("I can't write notes."))).await;
    gw.expect_done(1).await;
    let dir = gw.shutdown().await;
    assert!(!dir.path().join("files/note.txt").exists(), "the refused call was not run");
}
