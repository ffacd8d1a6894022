//! Reminders through the worker's socket: the model sets one with a tool and the turn's outcome
//! carries the schedule (ids and instants, no text); a due occurrence is answered without a
//! model call, once, with the schedule moved on; `/reminders` lists and cancels.

use chrono::DateTime;
use hearth_proto::worker::{GatewayToWorker, IncomingMessage, ReminderDue, Turn, TurnKind, TurnOutcome};
use serde_json::json;

use crate::fake::{Gateway, chat_turn, completion, context, tool_calls};

fn unix(rfc3339: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp()
}

/// A turn at local time `now` (Berlin).
fn at(mut turn: Turn, now: &str) -> Turn {
    turn.context.now = now.into();
    turn
}

fn reminder_turn(turn_id: u64, id: i64, due_at: i64, now: &str) -> Turn {
    at(
        Turn { turn_id, chat_id: 100, kind: TurnKind::Reminder { id, due_at }, messages: vec![], context: context() },
        now,
    )
}

fn command(turn_id: u64, inbox_id: i64, words: &str) -> Turn {
    let messages = vec![IncomingMessage { inbox_id, text: words.into(), sent_at: 0, attachment: None }];
    Turn { turn_id, chat_id: 100, kind: TurnKind::Reminders, messages, context: context() }
}

#[tokio::test]
async fn a_reminder_set_by_the_model_fires_once_and_moves_to_the_next_day() {
    let mut gw = Gateway::start().await;
    // Saturday 28 March 2026, 20:00 in Berlin; the clocks go forward that night.
    let turn = at(chat_turn(1, 100, &[(10, "remind me every day at 8 to take my pills")]), "2026-03-28T20:00:00+01:00");
    gw.send(GatewayToWorker::Turn(turn)).await;
    let (id, _) = gw.expect_complete(1).await;
    let call = json!({"text": "take my pills", "at": "2026-03-29T08:00", "repeat": "daily"});
    gw.answer(id, Ok(tool_calls(&[("set_reminder", call)]))).await;
    let (id, request) = gw.expect_complete(1).await;
    assert_eq!(
        request.messages[2].content,
        "Reminder set (id 1): take my pills — every day at 08:00, next Sunday 29 March 2026 at 08:00."
    );
    gw.answer(id, Ok(completion("Done — every day at 8."))).await;
    let (outcome, schedule) = gw.expect_done_with_schedule(1).await;
    assert_eq!(outcome, TurnOutcome::Reply { text: "Done — every day at 8.".into() });
    let sunday = unix("2026-03-29T08:00:00+02:00");
    assert_eq!(schedule, Some(vec![ReminderDue { id: 1, due_at: sunday }]), "the schedule carries no text");

    // A plain turn that changes nothing says nothing about reminders.
    gw.send(GatewayToWorker::Turn(chat_turn(2, 100, &[(11, "thanks")]))).await;
    let (id, _) = gw.expect_complete(2).await;
    gw.answer(id, Ok(completion("You're welcome!"))).await;
    assert_eq!(gw.expect_done_with_schedule(2).await.1, None);

    // 08:00 on Sunday: no model call, the text, and Monday's 08:00 next (a 24-hour step in local
    // time, 23 hours in UTC across the change).
    gw.send(GatewayToWorker::Turn(reminder_turn(3, 1, sunday, "2026-03-29T08:00:00+02:00"))).await;
    let (outcome, schedule) = gw.expect_done_with_schedule(3).await;
    assert_eq!(outcome, TurnOutcome::Reply { text: "⏰ Reminder: take my pills".into() });
    let monday = unix("2026-03-30T08:00:00+02:00");
    assert_eq!(schedule, Some(vec![ReminderDue { id: 1, due_at: monday }]));

    // The gateway restarted before sending: asked again, the same text; nothing moves.
    gw.send(GatewayToWorker::Turn(reminder_turn(4, 1, sunday, "2026-03-29T08:00:05+02:00"))).await;
    let (outcome, schedule) = gw.expect_done_with_schedule(4).await;
    assert_eq!(outcome, TurnOutcome::Reply { text: "⏰ Reminder: take my pills".into() });
    assert_eq!(schedule, Some(vec![ReminderDue { id: 1, due_at: monday }]));

    // Listed and cancelled by chat; a cancelled reminder's occurrence sends nothing.
    gw.send(GatewayToWorker::Turn(command(5, 12, ""))).await;
    let (outcome, schedule) = gw.expect_done_with_schedule(5).await;
    let TurnOutcome::Reply { text } = outcome else { panic!("{outcome:?}") };
    assert!(text.contains("1. take my pills — every day at 08:00, next Monday 30 March 2026 at 08:00"), "{text}");
    assert_eq!(schedule, None);
    gw.send(GatewayToWorker::Turn(command(6, 13, "cancel 1"))).await;
    let (outcome, schedule) = gw.expect_done_with_schedule(6).await;
    assert!(
        matches!(&outcome, TurnOutcome::Reply { text } if text.starts_with("Cancelled: take my pills")),
        "{outcome:?}"
    );
    assert_eq!(schedule, Some(vec![]));
    gw.send(GatewayToWorker::Turn(reminder_turn(7, 1, monday, "2026-03-30T08:00:00+02:00"))).await;
    assert_eq!(gw.expect_done_with_schedule(7).await, (TurnOutcome::Nothing, Some(vec![])));

    // The text lives in the member's directory, owner-only.
    let file = gw.dir.path().join("reminders.sqlite");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    gw.shutdown().await;
}
