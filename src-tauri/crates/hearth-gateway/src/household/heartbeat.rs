//! The heartbeat: a GET to a dead-man's switch (a healthchecks.io-style URL the admin set) every
//! few minutes while all is well, so a box that died — or a Hearth that stopped, or one whose
//! bots or provider stopped working — is noticed from outside: the service raises its own alarm
//! when the pings stop. Off by default; `hearth household heartbeat --url URL --every-minutes 5`,
//! stored as the household settings `heartbeat.url` and `heartbeat.every_minutes`.
//!
//! "All is well" is the admins' alerts' view (`core/alerts/`: no bot stopped working, the
//! provider not down, the disk not nearly full), handed in as a watch; a due ping while it is not
//! well is skipped and owed, and goes out as soon as all is well again. Nothing pings while the
//! gateway is stopped. The client follows no redirect (a 3xx is logged as a failure: the admin
//! sets the address it points to), and logs show only the URL's scheme and host — its path or
//! query is usually the service's secret.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Url;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::store::{self, Store};

pub(crate) const SETTING_URL: &str = "heartbeat.url";
pub(crate) const SETTING_EVERY: &str = "heartbeat.every_minutes";
/// The longest interval accepted: a day.
pub(crate) const MAX_EVERY_MINUTES: u32 = 1440;
/// One ping's time limit, connection included.
const PING_LIMIT: Duration = Duration::from_secs(10);
/// The longest the timer sleeps on the system clock, so a clock that jumps is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(300);

/// Where and how often to ping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Beat {
    pub(crate) url: Url,
    pub(crate) every: Duration,
}

/// Checks the admin's URL: http or https, with a host and no user or password in it.
pub(crate) fn check_url(url: &str) -> Result<Url, String> {
    let parsed =
        Url::parse(url.trim()).map_err(|e| format!("that is not a URL ({e}); give it like https://hc-ping.com/…"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err("the heartbeat URL must start with https:// (or http://) and name a server".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("the heartbeat URL must not carry a user name or password; use the service's ping URL".into());
    }
    Ok(parsed)
}

/// The URL as a log line may show it: scheme and host, never the path or query.
pub(crate) fn shown(url: &Url) -> String {
    format!("{}://{}/…", url.scheme(), url.host_str().unwrap_or(""))
}

/// The heartbeat in force, as the admin set it; its one writer is `HouseholdHeartbeat`
/// (`control/alerts.rs`), the timer reads it.
pub(crate) struct Heartbeat(watch::Sender<Option<Beat>>);

impl Default for Heartbeat {
    fn default() -> Self {
        Self(watch::channel(None).0)
    }
}

impl Heartbeat {
    pub(crate) fn set(&self, beat: Option<Beat>) {
        self.0.send_replace(beat);
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Option<Beat>> {
        self.0.subscribe()
    }
}

/// The heartbeat as stored; `None` when off or unreadable (said in the log).
pub(crate) async fn stored(store: &Store) -> Option<Beat> {
    let read = store.call(|c| Ok((store::get_setting(c, SETTING_URL)?, store::get_setting(c, SETTING_EVERY)?))).await;
    match read {
        Ok((Some(url), Some(every))) => match (check_url(&url), every.parse::<u32>()) {
            (Ok(url), Ok(m)) if (1..=MAX_EVERY_MINUTES).contains(&m) => {
                Some(Beat { url, every: Duration::from_secs(u64::from(m) * 60) })
            }
            _ => {
                tracing::error!("the stored heartbeat setting is invalid; set it again");
                None
            }
        },
        Ok(_) => None,
        Err(e) => {
            tracing::error!(error = %e, "could not read the heartbeat setting");
            None
        }
    }
}

/// What the timer needs, handed over by the wiring.
#[derive(Clone)]
pub(crate) struct Parts {
    pub(crate) setting: watch::Receiver<Option<Beat>>,
    /// The admins' alerts' "all is well".
    pub(crate) well: watch::Receiver<bool>,
    pub(crate) clock: Clock,
    pub(crate) cancel: CancellationToken,
}

/// The heartbeat's client: no redirects, a short time limit.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(PING_LIMIT)
        .user_agent(concat!("Hearth/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// Pings while a heartbeat is set and all is well, until the gateway stops. One timer while it
/// is on, none while it is off.
pub(crate) async fn run(mut p: Parts) {
    let http = client();
    let mut moved = p.clock.watch();
    // Due at once when set (or at start): the service hears that Hearth is up.
    let mut next: Option<DateTime<Utc>> = None;
    let mut owed = false;
    loop {
        let beat = p.setting.borrow_and_update().clone();
        let now = p.clock.now();
        let mut sleep = None;
        if let Some(beat) = &beat {
            let well = *p.well.borrow_and_update();
            let due = next.is_none_or(|n| now >= n);
            if (due || owed) && well {
                ping(&http, &beat.url).await;
                owed = false;
                next = Some(now + chrono::Duration::from_std(beat.every).unwrap_or(chrono::Duration::minutes(5)));
            } else if due {
                owed = true;
                next = Some(now + chrono::Duration::from_std(beat.every).unwrap_or(chrono::Duration::minutes(5)));
            }
            if !p.clock.is_manual() {
                let left = next.map_or(Duration::ZERO, |n| (n - p.clock.now()).to_std().unwrap_or_default());
                sleep = Some(left.clamp(Duration::from_millis(10), MAX_SLEEP));
            }
        }
        let look = crate::clock::next_look(moved.as_mut(), sleep);
        tokio::select! {
            _ = p.cancel.cancelled() => return,
            changed = p.setting.changed() => {
                if changed.is_err() {
                    return;
                }
                (next, owed) = (None, false);
            }
            changed = p.well.changed() => if changed.is_err() { return },
            _ = look => {}
        }
    }
}

async fn ping(http: &reqwest::Client, url: &Url) {
    // reqwest's errors name the URL; only the scheme and host are logged.
    match http.get(url.clone()).send().await {
        Ok(r) if r.status().is_success() => tracing::debug!(to = %shown(url), "heartbeat sent"),
        Ok(r) if r.status().is_redirection() => tracing::warn!(
            to = %shown(url),
            status = r.status().as_u16(),
            "the heartbeat URL answered with a redirect, which is not followed; set the address it points to"
        ),
        Ok(r) => {
            tracing::warn!(to = %shown(url), status = r.status().as_u16(), "the heartbeat service refused the ping")
        }
        Err(e) => {
            let why = if e.is_timeout() { "it did not answer in time" } else { "it could not be reached" };
            tracing::warn!(to = %shown(url), "heartbeat not delivered: {why}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_never_shown_whole() {
        let url = check_url(" https://hc-ping.com/5f1e-secret?x=1 ").unwrap();
        assert_eq!(shown(&url), "https://hc-ping.com/…");
        for bad in ["", "hc-ping.com/abc", "ftp://hc-ping.com/abc", "https://user:pw@hc-ping.com/abc", "file:///etc/x"]
        {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        assert!(check_url("http://127.0.0.1:8080/ping").is_ok());
    }
}
