//! Each member's disk quota end to end: the real gateway and worker against the fakes, with the
//! gateway's clock manual so "at most once a minute" needs no waiting.

use std::time::Duration;

use hearth_gateway::clock::Clock;
use hearth_gateway::quota::QUOTA_NOTE;
use hearth_proto::control::{ControlReply, ControlRequest, GatewayEvent};

use crate::support::{Household, eventually};

const T: Duration = Duration::from_secs(20);

/// The outcome of the member's newest inbox row, once it is done.
fn last_outcome(h: &Household) -> Option<String> {
    h.db()
        .query_row("SELECT state, outcome FROM inbox ORDER BY id DESC LIMIT 1", [], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })
        .ok()
        .and_then(|(state, outcome)| if state == "done" { outcome } else { None })
}

/// Events that name the disk quota, among those received so far.
fn quota_events(rx: &mut tokio::sync::broadcast::Receiver<GatewayEvent>) -> Vec<GatewayEvent> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        if matches!(e, GatewayEvent::DiskQuotaReached { .. }) {
            out.push(e);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_over_the_disk_quota_is_told_kindly_the_admin_once_and_turns_resume_when_under() {
    let clock = Clock::manual(chrono::Utc::now());
    let c = clock.clone();
    let h = Household::with(1, move |config| config.clock = c).await;
    let mut events = h.gateway.subscribe();
    let quota = ControlRequest::HouseholdDiskQuota { mb: 1 };
    assert_eq!(h.gateway.control(quota).await.unwrap(), ControlReply::Done);
    h.say(0, "hello");
    assert_eq!(h.replies(0, 2, T).await[1].text, "You said: hello");
    // Each turn asks for a measurement as it finishes, after its reply went out: the lane idle,
    // that request has been made by the clock as it is now, before the test moves the clock.
    h.settled().await;
    let disk = h.status().await.members[0].disk.expect("measured when the quota was set");
    assert_eq!(disk.quota_bytes, Some(1 << 20));
    assert!(!disk.over(), "{disk:?}");

    // The member's folder grows past the quota, as a worker writing files would make it.
    let folder = h.dir.path().join("members").join(&h.members[0].id);
    std::fs::write(folder.join("big.bin"), vec![7u8; 3 << 20]).unwrap();
    // Measured after a turn at most once a minute (by the gateway's clock).
    clock.advance(chrono::Duration::seconds(61));
    h.say(0, "one more");
    assert_eq!(h.replies(0, 3, T).await[2].text, "You said: one more", "the folder was last measured small");
    h.settled().await;
    eventually(T, "the folder measured over the quota", async || {
        h.status().await.members[0].disk.filter(|d| d.over()).map(|_| ())
    })
    .await;

    // Now a kind note instead of a turn, no model call; then quietly, however often they write.
    let calls = h.llm.calls().len();
    h.say(0, "are you there?");
    assert_eq!(h.replies(0, 4, T).await[3].text, QUOTA_NOTE);
    h.say(0, "hello??");
    // Taken in and closed (the last row is then this one, not "are you there?"), before the test
    // frees the space: handled after that, it would already ask for the measurement "back?" must.
    h.settled().await;
    eventually(T, "the second message closed quietly", async || {
        (last_outcome(&h).as_deref() == Some("over_quota")).then_some(())
    })
    .await;
    assert_eq!(h.replies(0, 4, T).await.len(), 4, "the note comes once an hour, not per message");
    assert_eq!(h.llm.calls().len(), calls, "no model call while over the quota");

    // The admin is told once: one audit row, one event.
    let told = |h: &Household| -> i64 {
        h.db().query_row("SELECT COUNT(*) FROM audit WHERE action = 'disk_quota_reached'", [], |r| r.get(0)).unwrap()
    };
    assert_eq!(told(&h), 1);
    let reached = quota_events(&mut events);
    assert!(
        matches!(reached.as_slice(), [GatewayEvent::DiskQuotaReached { name, bytes, quota_bytes: 1_048_576, .. }]
            if name == "Rosa" && *bytes > 3 << 20),
        "{reached:?}"
    );

    // Space freed: a refused message asks for a fresh measurement, and once it is in, turns resume.
    std::fs::remove_file(folder.join("big.bin")).unwrap();
    clock.advance(chrono::Duration::seconds(61));
    h.say(0, "back?");
    eventually(T, "the folder measured within the quota again", async || {
        h.status().await.members[0].disk.filter(|d| !d.over()).map(|_| ())
    })
    .await;
    h.say(0, "back now");
    let replies = h.replies(0, 5, T).await;
    assert_eq!(replies[4].text, "You said: back now");
    assert_eq!(told(&h), 1, "being under again is not news");
    assert!(quota_events(&mut events).is_empty());

    // 0 lifts the quota; the status says so.
    let off = ControlRequest::HouseholdDiskQuota { mb: 0 };
    assert_eq!(h.gateway.control(off).await.unwrap(), ControlReply::Done);
    assert_eq!(h.status().await.members[0].disk.and_then(|d| d.quota_bytes), None);
    let too_big = ControlRequest::HouseholdDiskQuota { mb: u32::MAX };
    assert!(h.gateway.control(too_big).await.unwrap_err().message.contains("0 for no limit"));
    h.stop().await;
}
