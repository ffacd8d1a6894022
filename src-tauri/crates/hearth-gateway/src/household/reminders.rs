//! Firing members' reminders on time, with one timer for the whole household.
//!
//! A reminder's text lives in the member's directory; the gateway keeps only when each is due
//! (`reminder_schedule`, as the member's worker last reported it after a turn that changed it).
//! [`run_schedule`] sleeps until the earliest due instant (no timer at all while nothing is
//! scheduled). When something is due it first *commits* the occurrence to `reminder_firings`
//! and takes it off the schedule, in one transaction, and only then hands it to the core loop
//! (`core/reminders.rs`), which queues a
//! [`TurnKind::Reminder`](hearth_proto::worker::TurnKind::Reminder) turn in the member's lane. A gateway that stops after the commit finds the firing pending at its next
//! start and delivers it; one that stops before it finds the occurrence still scheduled and
//! overdue. The firing's key (member, reminder, due instant) makes taking it twice harmless,
//! and the worker answers a repeated occurrence without moving the reminder on.
//!
//! A reminder costs no model call: the worker looks the text up and returns it (and the gateway
//! refuses a reminder turn any completion: `workers/rules.rs`).
//!
//! What a worker reports is checked before it replaces anything ([`check_schedule`]): only a
//! turn that can change reminders may report them, at most [`MAX_REMINDERS`] with distinct
//! positive ids, each due within [`REMINDER_PAST_GRACE_SECS`] before and
//! [`REMINDER_MAX_AHEAD_SECS`] after now.

use std::sync::Arc;
use std::time::Duration;

use hearth_proto::worker::{MAX_REMINDERS, REMINDER_MAX_AHEAD_SECS, REMINDER_PAST_GRACE_SECS, ReminderDue, TurnKind};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::store::{self, DueReminder, Store};

/// Longest single sleep: a system clock that jumps (NTP, a laptop waking) is noticed within this.
const MAX_SLEEP: Duration = Duration::from_secs(15 * 60);
/// Wait after the database refused, before trying again.
const RETRY: Duration = Duration::from_secs(5);

/// Wakes a timer when what it waits for changed: the reminder schedule when a worker reported a
/// new list, the pause timer (`core/pauses.rs`) when a pause was set. `Notify` keeps one permit,
/// so a change made while the timer is busy is not missed.
#[derive(Clone, Default)]
pub(crate) struct Wake(Arc<Notify>);

impl Wake {
    pub(crate) fn changed(&self) {
        self.0.notify_one();
    }

    /// Resolves at the next [`Wake::changed`] (or at once for one made since the last look).
    pub(crate) async fn notified(&self) {
        self.0.notified().await;
    }
}

/// What the schedule needs: the database, the gateway's clock, its wake-up, where due
/// occurrences go (the core loop queues them), and when to stop. Cheap to clone, so a schedule
/// that panicked is started again from the same parts.
#[derive(Clone)]
pub(crate) struct Schedule {
    pub(crate) store: Store,
    pub(crate) clock: Clock,
    pub(crate) wake: Wake,
    pub(crate) due: mpsc::UnboundedSender<Vec<DueReminder>>,
    pub(crate) cancel: CancellationToken,
}

/// The schedule's life: take what is due, then sleep until the next due instant, a new list,
/// a manual clock moving, or shutdown. Everything it knows is in the database, so starting it
/// again (after a panic) loses nothing.
pub(crate) async fn run_schedule(s: Schedule) {
    let clock = s.clock.clone();
    let mut moved = clock.watch();
    loop {
        let now = clock.now();
        let taken = s.store.call(move |c| store::take_due_reminders(c, now.timestamp())).await;
        let sleep = match taken {
            Ok((due, next)) => {
                if !due.is_empty() {
                    tracing::info!(count = due.len(), "reminders due");
                    if s.due.send(due).is_err() {
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
            _ = s.cancel.cancelled() => return,
            _ = s.wake.notified() => {}
            _ = clock_moved => {}
            _ = timer => {}
        }
    }
}

/// A reported schedule the gateway keeps, and how many of its instants it dropped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Checked {
    pub(crate) kept: Vec<ReminderDue>,
    pub(crate) dropped: usize,
}

/// Checks the schedule a worker reported at the end of a turn of `kind`, at `now` (Unix
/// seconds, the gateway's clock). `Err` says why the whole list is refused — the gateway then
/// keeps the schedule it had:
/// - a turn that cannot change reminders reported one (`TurnKind::may_change_reminders`);
/// - more than [`MAX_REMINDERS`] entries (the worker refuses a reminder past that, so only a
///   broken or hostile worker sends more; keeping "the first 200" of its choosing would only
///   let it replace a good schedule with one it picked);
/// - an id that is not positive, or twice.
///
/// Otherwise single instants out of range are dropped: due more than
/// [`REMINDER_PAST_GRACE_SECS`] ago (a real worker moves a fired reminder past the turn's now,
/// and an older occurrence not yet fired was committed as a firing already, which reports the
/// next one) or more than [`REMINDER_MAX_AHEAD_SECS`] ahead. Dropping rather than refusing keeps
/// the rest of a real worker's schedule when one stale instant is in it.
pub(crate) fn check_schedule(kind: TurnKind, list: Vec<ReminderDue>, now: i64) -> Result<Checked, String> {
    if !kind.may_change_reminders() {
        return Err(format!("a {} turn cannot change reminders, yet reported {} of them", kind.name(), list.len()));
    }
    if list.len() > MAX_REMINDERS {
        return Err(format!("{} reminders reported; a member may have at most {MAX_REMINDERS}", list.len()));
    }
    let mut ids = std::collections::HashSet::with_capacity(list.len());
    if let Some(bad) = list.iter().find(|r| r.id <= 0 || !ids.insert(r.id)) {
        return Err(format!("reminder id {} is not positive or comes twice", bad.id));
    }
    let earliest = now.saturating_sub(REMINDER_PAST_GRACE_SECS);
    let latest = now.saturating_add(REMINDER_MAX_AHEAD_SECS);
    let total = list.len();
    let kept: Vec<ReminderDue> = list.into_iter().filter(|r| (earliest..=latest).contains(&r.due_at)).collect();
    Ok(Checked { dropped: total - kept.len(), kept })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn due(id: i64, due_at: i64) -> ReminderDue {
        ReminderDue { id, due_at }
    }

    #[test]
    fn only_turns_that_change_reminders_may_report_them() {
        for kind in [TurnKind::Chat, TurnKind::Reminders, TurnKind::Reminder { id: 1, due_at: NOW }] {
            assert!(check_schedule(kind, vec![due(1, NOW + 60)], NOW).is_ok(), "{kind:?}");
        }
        for kind in [TurnKind::NewConversation, TurnKind::ListMemory, TurnKind::Forget] {
            assert!(check_schedule(kind, vec![], NOW).is_err(), "{kind:?}");
        }
    }

    #[test]
    fn too_many_or_bad_ids_refuse_the_whole_list() {
        let full: Vec<_> = (1..=MAX_REMINDERS as i64).map(|id| due(id, NOW + id)).collect();
        assert_eq!(check_schedule(TurnKind::Chat, full.clone(), NOW).unwrap().kept, full);
        let over: Vec<_> = (1..=MAX_REMINDERS as i64 + 1).map(|id| due(id, NOW + id)).collect();
        assert!(check_schedule(TurnKind::Chat, over, NOW).unwrap_err().contains("at most"));
        assert!(check_schedule(TurnKind::Chat, vec![due(0, NOW + 1)], NOW).is_err());
        assert!(check_schedule(TurnKind::Chat, vec![due(-5, NOW + 1)], NOW).is_err());
        assert!(check_schedule(TurnKind::Chat, vec![due(2, NOW + 1), due(2, NOW + 2)], NOW).is_err());
    }

    #[test]
    fn instants_out_of_range_are_dropped_one_by_one() {
        let list = vec![
            due(1, NOW - REMINDER_PAST_GRACE_SECS - 1),
            due(2, NOW - REMINDER_PAST_GRACE_SECS),
            due(3, NOW + REMINDER_MAX_AHEAD_SECS),
            due(4, NOW + REMINDER_MAX_AHEAD_SECS + 1),
            due(5, 0),
            due(6, i64::MAX),
        ];
        let checked = check_schedule(TurnKind::Reminders, list, NOW).unwrap();
        assert_eq!(
            checked,
            Checked {
                kept: vec![due(2, NOW - REMINDER_PAST_GRACE_SECS), due(3, NOW + REMINDER_MAX_AHEAD_SECS)],
                dropped: 4
            }
        );
    }
}
