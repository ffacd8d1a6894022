//! Timed pauses end by themselves: one timer for the household, on the gateway's clock (manual in
//! tests). It sleeps until the earliest end among paused members (no timer at all while no pause
//! has one), then resumes whoever is due: stored and audited first (`store::resume_if_due`, which
//! leaves alone a member paused again meanwhile), then applied in the core loop like the admin's
//! own resume. The ends live in `members.paused_until`, read into the roster at start, so a pause
//! that ended while the gateway was stopped ends at its next start.

use std::time::Duration;

use hearth_proto::control::GatewayEvent;

use super::{Change, Engine, MemberUpdate};
use crate::store;

/// Longest single sleep: a system clock that jumps (NTP, a laptop waking) is noticed within this.
const MAX_SLEEP: Duration = Duration::from_secs(15 * 60);
/// Wait after the database refused, before trying again.
const RETRY: Duration = Duration::from_secs(5);

/// The timer's life: resume who is due, then sleep until the next end, a changed pause
/// (`Engine::pauses_wake`), a manual clock moving, or shutdown. Everything it knows is in the
/// roster, so starting it again after a panic loses nothing.
pub(crate) async fn run(engine: Engine) {
    let clock = engine.config.clock.clone();
    let mut moved = clock.watch();
    loop {
        let now = clock.now().timestamp();
        let timed: Vec<(String, i64)> = engine.members.read(|r| {
            r.list().into_iter().filter(|m| m.paused).filter_map(|m| Some((m.id, m.paused_until?))).collect()
        });
        let (mut next, mut failed) = (None::<i64>, false);
        for (member_id, until) in timed {
            if until <= now {
                failed |= !resume(&engine, member_id, now).await;
            } else {
                next = Some(next.map_or(until, |n| n.min(until)));
            }
        }
        let sleep = match next {
            _ if failed => Some(RETRY),
            // A manual clock does not move by itself: wait for it to be moved.
            Some(_) if clock.is_manual() => None,
            Some(at) => {
                let ms = (at * 1000 - clock.now().timestamp_millis()).max(0) as u64;
                Some(Duration::from_millis(ms).min(MAX_SLEEP))
            }
            None => None,
        };
        tokio::select! {
            _ = engine.cancel.cancelled() => return,
            _ = engine.pauses_wake.notified() => {}
            () = crate::clock::next_look(moved.as_mut(), sleep) => {}
        }
    }
}

/// Ends one member's timed pause, if it is still the pause that was due; false if the store
/// failed (tried again shortly).
async fn resume(engine: &Engine, member_id: String, now: i64) -> bool {
    let id = member_id.clone();
    let resumed = engine
        .store
        .call(move |c| {
            let resumed = store::resume_if_due(c, &id, now)?;
            if resumed {
                let name = store::find_member(c, &id)?.map(|m| m.name).unwrap_or_default();
                store::audit(c, "timer", "member_resumed", Some(&id), &format!("{name}: the timed pause ended"))?;
            }
            Ok(resumed)
        })
        .await;
    match resumed {
        Ok(true) => {
            let update = MemberUpdate::Paused { paused: false, until: None };
            if engine.change(Change::Member { member_id: member_id.clone(), update }).await.is_ok() {
                tracing::info!(member = %member_id, "a timed pause ended");
                engine.emit(GatewayEvent::Changed);
            }
        }
        // Paused again or resumed meanwhile: that change reaches the roster on its own.
        Ok(false) => {}
        Err(e) => {
            tracing::error!(member = %member_id, error = %e, "could not end a timed pause; trying again shortly");
            return false;
        }
    }
    true
}
