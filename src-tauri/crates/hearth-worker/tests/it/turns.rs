//! Chat turns: the request the worker builds, history across turns, idempotent replays and
//! failures.

use hearth_proto::llm::{BrokerError, BrokerErrorKind, ChatMessage};
use hearth_proto::worker::{GatewayToWorker, TurnOutcome};

use crate::fake::{Gateway, chat_turn, completion, new_turn};

#[tokio::test]
async fn chat_turn_asks_the_broker_and_replies() {
    let mut gw = Gateway::start().await;
    let request = gw.chat(1, 100, &[(10, "What's a good name for a cat?")], "How about Miso?").await;

    assert!(request.system.contains("family assistant for Alex"), "{}", request.system);
    // The time comes in the turn's note, so the system prompt stays the same from turn to turn.
    assert!(gw.last_note().contains("Friday, 21 November 2025, 08:15 (Europe/Berlin"), "{}", gw.last_note());
    assert!(!request.system.contains("2025"), "{}", request.system);
    assert_eq!(request.messages, vec![ChatMessage::user("What's a good name for a cat?")]);
    assert_eq!(request.max_tokens, 500);
    gw.shutdown().await;
}

#[tokio::test]
async fn history_is_carried_into_the_next_turn() {
    let mut gw = Gateway::start().await;
    gw.chat(1, 100, &[(10, "My cat is called Miso.")], "Lovely name!").await;
    let request = gw.chat(2, 100, &[(11, "What's my cat called?")], "Miso.").await;
    assert_eq!(
        request.messages,
        vec![
            ChatMessage::user("My cat is called Miso."),
            ChatMessage::assistant("Lovely name!"),
            ChatMessage::user("What's my cat called?"),
        ]
    );

    // Another chat of the same member has its own conversation.
    let request = gw.chat(3, 200, &[(12, "Hi")], "Hello!").await;
    assert_eq!(request.messages, vec![ChatMessage::user("Hi")]);

    // History survives a worker restart.
    let dir = gw.shutdown().await;
    let mut gw = Gateway::start_in(dir).await;
    let request = gw.chat(4, 100, &[(13, "And again?")], "Still Miso.").await;
    assert_eq!(request.messages.len(), 5);
    assert_eq!(request.messages[3], ChatMessage::assistant("Miso."));
    gw.shutdown().await;
}

#[tokio::test]
async fn collected_messages_become_one_user_message() {
    let mut gw = Gateway::start().await;
    let request = gw.chat(1, 100, &[(10, "Hi!"), (11, "Quick one:"), (12, "what's 2+2?")], "4").await;
    assert_eq!(request.messages, vec![ChatMessage::user("Hi!\n\nQuick one:\n\nwhat's 2+2?")]);
    gw.shutdown().await;
}

#[tokio::test]
async fn new_conversation_resets_the_prompt_history() {
    let mut gw = Gateway::start().await;
    gw.chat(1, 100, &[(10, "Remember: blue.")], "Got it.").await;

    gw.send(GatewayToWorker::Turn(new_turn(2, 100))).await;
    match gw.expect_done(2).await {
        TurnOutcome::Reply { text } => assert!(text.starts_with("Fresh start!"), "{text}"),
        other => panic!("{other:?}"),
    }

    let request = gw.chat(3, 100, &[(11, "What colour?")], "Which colour do you mean?").await;
    assert_eq!(request.messages, vec![ChatMessage::user("What colour?")]);
    gw.shutdown().await;
}

#[tokio::test]
async fn replayed_turn_returns_the_stored_reply_without_asking_again() {
    let mut gw = Gateway::start().await;
    gw.chat(1, 100, &[(10, "Tell me a joke")], "Why did the cat sit on the computer?").await;

    // The gateway crashed before sending the reply and replays the same inbox rows.
    gw.send(GatewayToWorker::Turn(chat_turn(7, 100, &[(10, "Tell me a joke")]))).await;
    // The very next frame is the outcome: no Complete was sent.
    assert_eq!(gw.expect_done(7).await, TurnOutcome::Reply { text: "Why did the cat sit on the computer?".into() });

    // And the replay stored nothing twice.
    let request = gw.chat(8, 100, &[(11, "Another")], "ok").await;
    assert_eq!(
        request.messages,
        vec![
            ChatMessage::user("Tell me a joke"),
            ChatMessage::assistant("Why did the cat sit on the computer?"),
            ChatMessage::user("Another"),
        ]
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn stored_but_unanswered_turn_is_asked_without_storing_twice() {
    let mut gw = Gateway::start().await;
    gw.send(GatewayToWorker::Turn(chat_turn(1, 100, &[(10, "Hello?")]))).await;
    let _ = gw.expect_complete(1).await;
    // The gateway dies mid-turn; the worker exits cleanly.
    drop(gw.stream);
    let (result, dir) = tokio::time::timeout(std::time::Duration::from_secs(10), gw.worker)
        .await
        .map(|r| (r.unwrap(), gw.dir))
        .unwrap();
    result.unwrap();

    let mut gw = Gateway::start_in(dir).await;
    let request = gw.chat(2, 100, &[(10, "Hello?"), (11, "Anyone?")], "Yes, I'm here.").await;
    assert_eq!(request.messages, vec![ChatMessage::user("Hello?\n\nAnyone?")]);
    gw.shutdown().await;
}

fn refused(kind: BrokerErrorKind) -> Result<hearth_proto::llm::Completion, BrokerError> {
    Err(BrokerError { kind, message: "provider said no".into() })
}

#[tokio::test]
async fn broker_errors_become_kind_failures_and_the_question_stays() {
    let mut gw = Gateway::start().await;
    let cases = [
        (
            BrokerErrorKind::NotConfigured,
            "I'm not set up yet — please ask whoever runs Hearth at home to choose an AI provider.",
        ),
        (BrokerErrorKind::Timeout, "I couldn't reach my AI service just now. Please try again in a minute."),
        (
            BrokerErrorKind::ProviderUnavailable,
            "I couldn't reach my AI service just now. Please try again in a minute.",
        ),
    ];
    for (i, (kind, expected)) in cases.into_iter().enumerate() {
        let turn_id = i as u64 + 1;
        gw.send(GatewayToWorker::Turn(chat_turn(turn_id, 100, &[(10 + i as i64, "Is it raining?")]))).await;
        let (request_id, _) = gw.expect_complete(turn_id).await;
        gw.answer(request_id, refused(kind)).await;
        match gw.expect_done(turn_id).await {
            TurnOutcome::Failed { user_message, detail } => {
                assert_eq!(user_message, expected);
                assert!(detail.contains("provider said no"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }

    gw.send(GatewayToWorker::Turn(chat_turn(9, 100, &[(20, "Hello?")]))).await;
    let (request_id, _) = gw.expect_complete(9).await;
    gw.answer(
        request_id,
        refused(BrokerErrorKind::CapExceeded {
            resets_at: Some("2025-12-01T00:00:00+01:00".into()),
            admin_asked: false,
        }),
    )
    .await;
    match gw.expect_done(9).await {
        TurnOutcome::Failed { user_message, .. } => {
            assert!(user_message.contains("Monday 1 December at 00:00"), "{user_message}");
            assert!(user_message.contains("raise the limit"), "{user_message}");
        }
        other => panic!("{other:?}"),
    }

    // Unanswered questions are still there for the next turn, merged into one user message;
    // no failure notice was stored as an assistant message.
    let request = gw.chat(10, 100, &[(21, "Try again?")], "It's dry today.").await;
    assert_eq!(
        request.messages,
        vec![ChatMessage::user("Is it raining?\n\nIs it raining?\n\nIs it raining?\n\nHello?\n\nTry again?")]
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_stopped_answer_is_kept_as_the_reply_and_the_question_is_not_asked_again() {
    let mut gw = Gateway::start().await;
    gw.send(GatewayToWorker::Turn(chat_turn(1, 100, &[(10, "Tell me a long story")]))).await;
    let (request_id, _) = gw.expect_complete(1).await;
    let shown = "Once upon a time a small fox\n\n— stopped";
    gw.answer_stopped(request_id, shown).await;
    // The turn ends with what the member was shown, asking nothing more.
    assert_eq!(gw.expect_done(1).await, TurnOutcome::Reply { text: shown.into() });

    let request = gw.chat(2, 100, &[(11, "And now?")], "Shall I go on?").await;
    assert_eq!(
        request.messages,
        vec![
            ChatMessage::user("Tell me a long story"),
            ChatMessage::assistant(shown),
            ChatMessage::user("And now?"),
        ]
    );

    // A replay of the stopped turn (the gateway crashed before sending) gets the same words.
    gw.send(GatewayToWorker::Turn(chat_turn(3, 100, &[(10, "Tell me a long story")]))).await;
    assert_eq!(gw.expect_done(3).await, TurnOutcome::Reply { text: shown.into() });
    gw.shutdown().await;
}

#[tokio::test]
async fn empty_completion_is_a_failure_not_an_empty_reply() {
    let mut gw = Gateway::start().await;
    gw.send(GatewayToWorker::Turn(chat_turn(1, 100, &[(10, "Hm?")]))).await;
    let (request_id, _) = gw.expect_complete(1).await;
    gw.answer(request_id, Ok(completion("  \n"))).await;
    match gw.expect_done(1).await {
        TurnOutcome::Failed { user_message, detail } => {
            assert!(!user_message.is_empty());
            assert!(detail.contains("empty reply"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    // Nothing was stored as a reply: a replay asks again.
    gw.send(GatewayToWorker::Turn(chat_turn(2, 100, &[(10, "Hm?")]))).await;
    let (request_id, request) = gw.expect_complete(2).await;
    assert_eq!(request.messages, vec![ChatMessage::user("Hm?")]);
    gw.answer(request_id, Ok(completion("Yes?"))).await;
    assert_eq!(gw.expect_done(2).await, TurnOutcome::Reply { text: "Yes?".into() });
    gw.shutdown().await;
}

#[tokio::test]
async fn broken_history_file_fails_the_turn_without_crashing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("history.sqlite"), vec![0x42u8; 8192]).unwrap();
    let mut gw = Gateway::start_in(dir).await;
    gw.send(GatewayToWorker::Turn(chat_turn(1, 100, &[(10, "Hi")]))).await;
    match gw.expect_done(1).await {
        TurnOutcome::Failed { user_message, detail } => {
            assert!(user_message.contains("whoever runs Hearth"), "{user_message}");
            assert!(detail.contains("history.sqlite"), "{detail}");
            assert!(detail.contains("not a database"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    gw.send(GatewayToWorker::Turn(new_turn(2, 100))).await;
    assert!(matches!(gw.expect_done(2).await, TurnOutcome::Failed { .. }));
    gw.shutdown().await;
}
