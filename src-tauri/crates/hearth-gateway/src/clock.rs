//! The gateway's "now" for reminders and for the time a turn's context carries. The system
//! clock in production; tests hold a manual one and move it forward, so "8:00 tomorrow" is a
//! call away rather than a night. Spend periods and the inbox keep the system clock.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// A cheap-to-clone clock; every clone is the same clock.
#[derive(Clone, Default)]
pub struct Clock {
    /// `None`: the system clock. `Some`: a manual time that moves only when told; the channel
    /// wakes whoever waits on [`Clock::moved`].
    manual: Option<Arc<watch::Sender<DateTime<Utc>>>>,
}

impl Clock {
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock standing at `start` until [`Clock::set`] or [`Clock::advance`] moves it.
    pub fn manual(start: DateTime<Utc>) -> Self {
        Self { manual: Some(Arc::new(watch::channel(start).0)) }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &self.manual {
            Some(tx) => *tx.borrow(),
            None => Utc::now(),
        }
    }

    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }

    /// Moves a manual clock to `to` (the system clock cannot be moved; this does nothing there).
    pub fn set(&self, to: DateTime<Utc>) {
        if let Some(tx) = &self.manual {
            tx.send_replace(to);
        }
    }

    pub fn advance(&self, by: chrono::Duration) {
        self.set(self.now() + by);
    }

    /// A receiver whose `changed()` resolves when a manual clock moves; never for the system one.
    pub(crate) fn watch(&self) -> Option<watch::Receiver<DateTime<Utc>>> {
        self.manual.as_ref().map(|tx| tx.subscribe())
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.manual {
            Some(_) => write!(f, "Clock::manual({})", self.now()),
            None => f.write_str("Clock::system"),
        }
    }
}
