//! The agent loop with tools: the model calls, the worker runs and answers, the model answers
//! the member; errors are fed back as text; a model that never stops calling hits the step limit
//! and the member still hears something kind.

use hearth_proto::llm::{ChatMessage, Role};
use hearth_proto::worker::{GatewayToWorker, TurnOutcome};
use serde_json::json;

use crate::fake::{Gateway, chat_turn, completion, tool_calls};

#[tokio::test]
async fn tool_call_then_result_then_answer() {
    let mut gw = Gateway::start().await;
    gw.send(GatewayToWorker::Turn(chat_turn(1, 100, &[(10, "My cat is called Miso.")]))).await;

    let (id, first) = gw.expect_complete(1).await;
    let offered: Vec<&str> = first.tools.iter().map(|t| t.name.as_str()).collect();
    // A fact told in passing: only the always-on tool (`tool_offer.rs`).
    assert_eq!(offered, ["remember"]);
    gw.answer(id, Ok(tool_calls(&[("remember", json!({"fact": "Alex's cat is called Miso."}))]))).await;

    // Step two: the same conversation, then the model's call and the tool's result.
    let (id, second) = gw.expect_complete(1).await;
    assert_eq!(second.system, first.system);
    assert_eq!(second.messages.len(), 3);
    assert_eq!(second.messages[..1], first.messages[..]);
    let call = &second.messages[1];
    assert_eq!((call.role, call.tool_calls.len()), (Role::Assistant, 1));
    assert_eq!(call.tool_calls[0].name, "remember");
    assert_eq!(second.messages[2], ChatMessage::tool_result("call_0", "Saved (id 1).", false));
    gw.answer(id, Ok(completion("Miso — lovely! I'll remember that."))).await;
    assert_eq!(gw.expect_done(1).await, TurnOutcome::Reply { text: "Miso — lovely! I'll remember that.".into() });

    // The next turn carries the fact in its note (after the cacheable prefix); the history holds
    // no tool rounds.
    let request = gw.chat(2, 100, &[(11, "What's my cat called?")], "Miso.").await;
    let note = gw.last_note();
    assert!(note.contains("What you remember about Alex"), "{note}");
    assert!(note.contains("- Alex's cat is called Miso."), "{note}");
    assert!(!request.system.contains("Miso"), "{}", request.system);
    assert_eq!(
        request.messages,
        vec![
            ChatMessage::user("My cat is called Miso."),
            ChatMessage::assistant("Miso — lovely! I'll remember that."),
            ChatMessage::user("What's my cat called?"),
        ]
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn tool_errors_are_fed_back_to_the_model() {
    let mut gw = Gateway::start().await;
    gw.send(GatewayToWorker::Turn(chat_turn(1, 100, &[(10, "Launch the rocket")]))).await;
    let (id, _) = gw.expect_complete(1).await;
    let mut bad = tool_calls(&[("launch", json!({})), ("remember", json!({"fact": 42})), ("recall", json!({"query": "x"}))]);
    bad.tool_calls[2].arguments = "{not json".into();
    gw.answer(id, Ok(bad)).await;

    let (id, request) = gw.expect_complete(1).await;
    let results: Vec<(&str, bool)> =
        request.messages[2..].iter().map(|m| (m.content.as_str(), m.is_error)).collect();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0], ("error: there is no tool called \"launch\"", true));
    assert!(results[1].0.starts_with("error: the arguments are not valid: \"fact\""), "{results:?}");
    assert!(results[2].0.starts_with("error: the arguments are not valid: not JSON"), "{results:?}");
    assert!(results.iter().all(|r| r.1));
    let ids: Vec<_> = request.messages[2..].iter().map(|m| m.tool_call_id.clone().unwrap()).collect();
    assert_eq!(ids, ["call_0", "call_1", "call_2"]);
    gw.answer(id, Ok(completion("I can't launch rockets, sorry!"))).await;
    assert_eq!(gw.expect_done(1).await, TurnOutcome::Reply { text: "I can't launch rockets, sorry!".into() });
    gw.shutdown().await;
}

#[tokio::test]
async fn step_limit_gives_a_kind_reply() {
    let mut gw = Gateway::start().await;
    gw.send(GatewayToWorker::Turn(chat_turn(1, 100, &[(10, "Think hard")]))).await;
    let mut steps = 0;
    let outcome = loop {
        match gw.recv().await {
            hearth_proto::worker::WorkerToGateway::Complete { request_id, request, .. } => {
                steps += 1;
                // Each step carries every earlier round: 2 messages per round.
                assert_eq!(request.messages.len(), 1 + 2 * (steps - 1));
                gw.answer(request_id, Ok(tool_calls(&[("recall", json!({"query": "anything"}))]))).await;
            }
            hearth_proto::worker::WorkerToGateway::TurnDone { outcome, .. } => break outcome,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(steps, hearth_worker::MAX_STEPS);
    match outcome {
        TurnOutcome::Failed { user_message, detail } => {
            assert_eq!(user_message, hearth_worker::STEP_LIMIT_MESSAGE);
            assert!(detail.contains("limit of 6"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    // The question stays open: the next turn asks about it again, with no tool rounds.
    let request = gw.chat(2, 100, &[(11, "Well?")], "Here's my answer.").await;
    assert_eq!(request.messages, vec![ChatMessage::user("Think hard\n\nWell?")]);
    gw.shutdown().await;
}
