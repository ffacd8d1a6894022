//! The gateway's "now" for reminders and for the time a turn's context carries. The system
//! clock in production; tests hold a manual one and move it forward, so "8:00 tomorrow" is a
//! call away rather than a night. Spend periods and the inbox keep the system clock.
//!
//! Also the system's time zone, which a household starts in until the admin sets its own.

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

/// The system's IANA zone name, best effort: `TZ`, then `/etc/timezone`, then the
/// `/etc/localtime` link; "UTC" when none says. The household's zone until the admin sets one
/// (`hearth household timezone`); the clock itself always uses the local offset.
pub(crate) fn system_timezone() -> String {
    if let Ok(tz) = std::env::var("TZ") {
        let tz = tz.trim_start_matches(':');
        if !tz.is_empty() {
            return tz.to_owned();
        }
    }
    if let Ok(tz) = std::fs::read_to_string("/etc/timezone") {
        let tz = tz.trim();
        if !tz.is_empty() {
            return tz.to_owned();
        }
    }
    if let Ok(target) = std::fs::read_link("/etc/localtime") {
        let s = target.to_string_lossy();
        if let Some((_, zone)) = s.split_once("zoneinfo/") {
            return zone.to_owned();
        }
    }
    "UTC".to_owned()
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.manual {
            Some(_) => write!(f, "Clock::manual({})", self.now()),
            None => f.write_str("Clock::system"),
        }
    }
}
