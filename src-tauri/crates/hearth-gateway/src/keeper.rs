//! The gateway's long-lived tasks, watched: a panic in one is caught at the task's boundary and
//! the task is started again after a backoff. A task that keeps panicking — more than
//! [`Policy::limit`] times within [`Policy::window`] — stops the gateway instead, with one clear
//! log line: the process then exits non-zero (`hearth serve`) or the app shows the engine stopped,
//! and the service manager (or the admin) starts it again. Nothing in the inbox is lost either
//! way: a row is only closed once it was answered, and a restarted gateway picks up every pending
//! row and firing.
//!
//! Which tasks are watched, and how each is "restarted":
//! - poll loops, the reminder timer, the backup schedule, the kb watcher, the control socket's
//!   and the worker socket's accept loops: [`Keeper::watch`] starts them again from what they were built from (a poll
//!   loop from its bot's stored offset, which is what Telegram would resend anyway);
//! - the core loop: [`Keeper::contain`] around each event's handling, so the loop itself goes on
//!   (`core/mod.rs` says what happens to the event that panicked);
//! - a turn, a worker's connection, a control request: contained where they run, with a kind
//!   answer for whoever waits, and not counted here — one member's worker or message must not be
//!   able to stop everyone's gateway.
//!
//! A panic's message is logged; the default hook has already printed where it happened.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How watched tasks are restarted, and when the gateway gives up instead.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Wait before the first restart of a task; doubled for each panic since, up to `max_delay`.
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// Panics of one task within `window` that are still restarted; one more stops the gateway.
    pub limit: usize,
    pub window: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            limit: 5,
            window: Duration::from_secs(600),
        }
    }
}

/// Watches the gateway's tasks. Cheap to clone; every clone is the same keeper.
#[derive(Clone)]
pub struct Keeper {
    inner: Arc<Inner>,
}

struct Inner {
    policy: Policy,
    tracker: TaskTracker,
    /// The gateway's token: cancelled at shutdown, and by [`Keeper::fail`].
    cancel: CancellationToken,
    /// Why the gateway stopped on its own; `None` while it serves (or after a plain shutdown).
    failed: watch::Sender<Option<String>>,
    /// Recent panics per task name.
    panics: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Keeper {
    pub fn new(policy: Policy, tracker: TaskTracker, cancel: CancellationToken) -> Self {
        Self {
            inner: Arc::new(Inner {
                policy,
                tracker,
                cancel,
                failed: watch::channel(None).0,
                panics: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Runs the task `make` builds, and builds and runs it again whenever it panics (after a
    /// backoff), until it ends by itself, the gateway stops, or it panicked too often.
    pub fn watch<F, Fut>(&self, name: impl Into<String>, mut make: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let keeper = self.clone();
        let name = name.into();
        self.inner.tracker.spawn(async move {
            let mut delay = keeper.inner.policy.first_delay;
            loop {
                let Err(panic) = AssertUnwindSafe(make()).catch_unwind().await else { return };
                if !keeper.panicked(&name, &*panic) {
                    return;
                }
                tracing::warn!(task = %name, "starting the task again in {delay:?}");
                tokio::select! {
                    _ = keeper.inner.cancel.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(keeper.inner.policy.max_delay);
            }
        });
    }

    /// Runs a task that cannot be started again from scratch (the core loop, whose state lives
    /// in it): it contains its own work, and a panic that escapes it anyway stops the gateway.
    pub fn spawn_vital<Fut>(&self, name: &'static str, task: Fut)
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        let keeper = self.clone();
        self.inner.tracker.spawn(async move {
            if let Err(panic) = AssertUnwindSafe(task).catch_unwind().await {
                keeper.fail(format!("{name} panicked outside the work it contains: {}", panic_message(&*panic)));
            }
        });
    }

    /// Runs one unit of a task's work (an event in the core loop), catching a panic in it:
    /// `None` when it panicked. The panic counts towards `name`'s limit like a restart.
    pub fn contain<R>(&self, name: &str, work: impl FnOnce() -> R) -> Option<R> {
        match std::panic::catch_unwind(AssertUnwindSafe(work)) {
            Ok(r) => Some(r),
            Err(panic) => {
                self.panicked(name, &*panic);
                None
            }
        }
    }

    /// [`Keeper::contain`] for work that awaits.
    pub async fn contain_async<R>(&self, name: &str, work: impl Future<Output = R>) -> Option<R> {
        match AssertUnwindSafe(work).catch_unwind().await {
            Ok(r) => Some(r),
            Err(panic) => {
                self.panicked(name, &*panic);
                None
            }
        }
    }

    /// Logs a panic of `name` and counts it; over the limit the gateway stops. Returns whether
    /// the task may go on.
    fn panicked(&self, name: &str, panic: &(dyn Any + Send)) -> bool {
        let message = panic_message(panic);
        let policy = self.inner.policy;
        let recent = {
            let mut panics = self.inner.panics.lock();
            let times = panics.entry(name.to_owned()).or_default();
            let now = Instant::now();
            times.push_back(now);
            while times.front().is_some_and(|t| now.duration_since(*t) > policy.window) {
                times.pop_front();
            }
            times.len()
        };
        tracing::error!(task = %name, panic = %message, "a gateway task panicked; it was caught");
        if recent > policy.limit {
            self.fail(format!(
                "{name} panicked {recent} times within {} minutes (last: {message})",
                policy.window.as_secs().div_ceil(60)
            ));
            return false;
        }
        true
    }

    /// Stops the gateway because it cannot go on: one error line saying why, every task
    /// cancelled (what waits in the inbox stays there for the next start), and
    /// [`Keeper::failed`] resolves.
    pub fn fail(&self, reason: String) {
        tracing::error!("the gateway stops: {reason}. Whatever was not answered stays in the inbox for the next start");
        self.inner.failed.send_if_modified(|failed| {
            let first = failed.is_none();
            if first {
                *failed = Some(reason);
            }
            first
        });
        self.inner.cancel.cancel();
    }

    /// Why the gateway stopped on its own, if it did.
    pub fn failure(&self) -> Option<String> {
        self.inner.failed.borrow().clone()
    }

    /// Resolves with the reason once the gateway stopped on its own; never after a plain
    /// shutdown.
    pub async fn failed(&self) -> String {
        let mut rx = self.inner.failed.subscribe();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}

/// What a panic said, for the log.
pub fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn keeper(limit: usize) -> (Keeper, CancellationToken, TaskTracker) {
        let (tracker, cancel) = (TaskTracker::new(), CancellationToken::new());
        let policy = Policy {
            first_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
            limit,
            window: Duration::from_secs(60),
        };
        (Keeper::new(policy, tracker.clone(), cancel.clone()), cancel, tracker)
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_panics_is_started_again_until_it_ends() {
        let (keeper, cancel, tracker) = keeper(5);
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        keeper.watch("flaky", move || {
            let r = r.clone();
            async move {
                if r.fetch_add(1, Ordering::SeqCst) < 2 {
                    panic!("not yet");
                }
            }
        });
        tracker.close();
        tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await.expect("the task ends");
        assert_eq!(runs.load(Ordering::SeqCst), 3, "two panics, then a run that ended");
        assert!(!cancel.is_cancelled() && keeper.failure().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_keeps_panicking_stops_the_gateway_with_a_reason() {
        let (keeper, cancel, tracker) = keeper(2);
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        keeper.watch("poll loop ana", move || {
            r.fetch_add(1, Ordering::SeqCst);
            async { panic!("bad update") }
        });
        let reason = tokio::time::timeout(Duration::from_secs(5), keeper.failed()).await.expect("the gateway stops");
        assert!(reason.contains("poll loop ana panicked 3 times") && reason.contains("bad update"), "{reason}");
        assert!(cancel.is_cancelled());
        tracker.close();
        tracker.wait().await;
        assert_eq!(runs.load(Ordering::SeqCst), 3, "not started again after the limit");
    }

    #[test]
    fn contained_work_says_none_and_counts() {
        let (keeper, cancel, _) = keeper(1);
        assert_eq!(keeper.contain("core loop", || 7), Some(7));
        assert_eq!(keeper.contain("core loop", || -> i32 { panic!("one") }), None);
        assert!(!cancel.is_cancelled(), "one panic is within the limit");
        assert_eq!(keeper.contain("core loop", || -> i32 { panic!("two") }), None);
        assert!(cancel.is_cancelled());
        assert!(keeper.failure().unwrap().contains("core loop panicked 2 times"));
    }

    #[test]
    fn panic_messages_are_read_from_both_payloads() {
        let text = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(panic_message(&*text), "plain");
        let formatted = std::panic::catch_unwind(|| panic!("row {}", 7)).unwrap_err();
        assert_eq!(panic_message(&*formatted), "row 7");
    }
}
