//! Firing members' reminders on time, with one timer for the whole household.
//!
//! A reminder's text lives in the member's directory; the gateway keeps only when each is due
//! (`reminder_schedule`, as the member's worker last reported it after a turn that changed it).
//! [`run_schedule`] sleeps until the earliest due instant (no timer at all while nothing is
//! scheduled). When something is due it first *commits* the occurrence to `reminder_firings`
//! and takes it off the schedule, in one transaction, and only then hands it to the core loop,
//! which queues a [`TurnKind::Reminder`](hearth_proto::worker::TurnKind::Reminder) turn in the
//! member's lane. A gateway that stops after the commit finds the firing pending at its next
//! start and delivers it; one that stops before it finds the occurrence still scheduled and
//! overdue. The firing's key (member, reminder, due instant) makes taking it twice harmless,
//! and the worker answers a repeated occurrence without moving the reminder on.
//!
//! A reminder costs no model call: the worker looks the text up and returns it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::gateway::{Event, Gateway};
use crate::store;

/// Longest single sleep: a system clock that jumps (NTP, a laptop waking) is noticed within this.
const MAX_SLEEP: Duration = Duration::from_secs(15 * 60);
/// Wait after the database refused, before trying again.
const RETRY: Duration = Duration::from_secs(5);

/// Wakes the schedule when a worker reported a new list. `Notify` keeps one permit, so a change
/// made while the schedule is busy is not missed.
#[derive(Clone, Default)]
pub(crate) struct Wake(Arc<Notify>);

impl Wake {
    pub(crate) fn changed(&self) {
        self.0.notify_one();
    }
}

/// The schedule's life: take what is due, then sleep until the next due instant, a new list,
/// a manual clock moving, or shutdown.
pub(crate) async fn run_schedule(gw: Gateway) {
    let inner = &gw.inner;
    let clock = inner.config.clock.clone();
    let mut moved = clock.watch();
    loop {
        let now = clock.now();
        let taken = inner.store.call(move |c| store::take_due_reminders(c, now.timestamp())).await;
        let sleep = match taken {
            Ok((due, next)) => {
                if !due.is_empty() {
                    tracing::info!(count = due.len(), "reminders due");
                    if inner.events.send(Event::Reminders(due)).is_err() {
                        return;
                    }
                }
                match next {
                    // A manual clock does not move by itself: wait for it to be moved.
                    Some(_) if clock.is_manual() => None,
                    Some(at) => {
                        let ms = (at * 1000 - clock.now().timestamp_millis()).max(0) as u64;
                        Some(Duration::from_millis(ms).min(MAX_SLEEP))
                    }
                    None => None,
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "could not read the reminder schedule; trying again");
                Some(RETRY)
            }
        };
        let timer = async {
            match sleep {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let clock_moved = async {
            match moved.as_mut() {
                Some(rx) => {
                    if rx.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = inner.cancel.cancelled() => return,
            _ = inner.reminders_wake.0.notified() => {}
            _ = clock_moved => {}
            _ = timer => {}
        }
    }
}
