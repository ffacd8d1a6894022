//! A panic in the gateway is contained and loses no message. Panics are injected on purpose
//! through `GatewayConfig::faults` (a test-only hook): in the core loop while another member's
//! turn runs, and in a turn after its worker answered. Every message is still answered, what
//! panics twice is closed with a kind sentence, and the gateway goes on serving.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_gateway::config::{FaultSite, PanicAt};
use hearth_testkit::llm::Rule;

use crate::support::{Household, eventually};

const T: Duration = Duration::from_secs(20);
const SORRY: &str =
    "Sorry — something went wrong on my side with that message, and I couldn't answer it. Please send it again.";

/// Panics at sites whose text contains a marker: "once" markers the first time only, "always"
/// markers every time. Counts every panic it asked for.
fn injector(panics: Arc<Mutex<HashMap<String, u32>>>) -> PanicAt {
    Arc::new(move |site: FaultSite<'_>| {
        let (kind, marker, text) = match site {
            FaultSite::InboxRow { text, .. } => ("row", "loop-", text),
            FaultSite::TurnReply { text, .. } => ("turn", "turn-", text),
        };
        let always = text.contains(&format!("{marker}always"));
        if !always && !text.contains(&format!("{marker}once")) {
            return false;
        }
        let mut seen = panics.lock().unwrap();
        let n = seen.entry(format!("{kind}:{text}")).or_default();
        let panic = always || *n == 0;
        *n += u32::from(panic);
        panic
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_in_the_core_loop_and_in_a_turn_lose_no_message() {
    let panics = Arc::new(Mutex::new(HashMap::new()));
    let hook = injector(panics.clone());
    let h = Household::with(2, move |c| c.faults.panic_at = Some(hook)).await;
    let (rosa, leo) = (0, 1);

    // Leo's turn is in flight — his model call is slow — when the core loop panics on Rosa's
    // message. The row is tried again at once; Leo's turn is not disturbed.
    h.llm.add_rule(Rule::matching("turn-once").delay(Duration::from_millis(1500)));
    h.say(leo, "hello turn-once");
    h.llm.wait_for_calls(1, T).await.unwrap();
    h.say(rosa, "hello loop-once");
    let got = h.replies(rosa, 2, T).await;
    assert_eq!(got[1].text, "You said: hello loop-once");
    // Leo's turn panicked after his worker answered, before the reply went out: the turn runs
    // again, and the worker hands back the answer it stored (no second model call).
    let got = h.replies(leo, 2, T).await;
    assert_eq!(got[1].text, "You said: hello turn-once");
    let leos_calls = h.llm.calls().iter().filter(|c| c.all_text().contains("hello turn-once")).count();
    assert_eq!(leos_calls, 1, "the retried turn did not call the model again");

    // What panics on its second try too is closed, with a kind sentence — in the loop and in a
    // turn alike — and nothing else of the member's is held up by it.
    h.say(rosa, "loop-always");
    h.say(leo, "turn-always");
    assert_eq!(h.replies(rosa, 3, T).await[2].text, SORRY);
    assert_eq!(h.replies(leo, 3, T).await[2].text, SORRY);
    h.say(rosa, "still there?");
    h.say(leo, "and me?");
    assert_eq!(h.replies(rosa, 4, T).await[3].text, "You said: still there?");
    assert_eq!(h.replies(leo, 4, T).await[3].text, "You said: and me?");

    // Every row is closed; the two that panicked twice as failed; no lane is stuck busy.
    let counts = panics.lock().unwrap().clone();
    assert_eq!(counts.get("row:hello loop-once"), Some(&1));
    assert_eq!(counts.get("turn:You said: hello turn-once"), Some(&1));
    assert_eq!(counts.get("row:loop-always"), Some(&2));
    assert_eq!(counts.get("turn:You said: turn-always"), Some(&2));
    eventually(T, "every inbox row closed", async || {
        let open: i64 = h.db().query_row("SELECT COUNT(*) FROM inbox WHERE state = 'pending'", [], |r| r.get(0)).unwrap();
        (open == 0).then_some(())
    })
    .await;
    let failed: i64 = h
        .db()
        .query_row("SELECT COUNT(*) FROM inbox WHERE state = 'failed' AND outcome = 'panicked'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(failed, 2);
    let status = h.status().await;
    assert_eq!(status.turns_in_flight, 0, "{status:?}");
    assert!(h.gateway.failure().is_none(), "a few contained panics do not stop the gateway");
    h.stop().await;
}
