//! Each member's disk quota: how much their folder (`members/<id>/`) may take before their
//! assistant takes no new messages.
//!
//! A worker can write its own folder (the sandbox confines it there, `RLIMIT_FSIZE` bounds one
//! file); without a bound on the folder a misbehaving assistant could fill the data partition
//! for the whole household. The gateway measures each member's folder — whoever may read it
//! does: this process at level "process" or as root ([`hearth_isolation::dirs::usage`]), else the
//! supervisor (`SupervisorRequest::Usage`); either way a walk through descriptors that reads no
//! file and follows no link, counting allocated blocks and each file once — at start, when the
//! admin changes the quota, and after a turn ran (at most once per [`MEASURE_EVERY`] per member,
//! by the gateway's clock). A member whose last measurement is over the quota gets
//! [`QUOTA_NOTE`] instead of a turn (once an hour; each refused message asks for a fresh
//! measurement, so turns resume soon after the folder shrinks or the quota grows); reminders
//! still come, as for a paused member. The admin is told once each time a member passes the
//! quota: an audit row (`disk_quota_reached`), a warning in the log and
//! `GatewayEvent::DiskQuotaReached`. `hearth status` and `hearth doctor` show usage against the
//! quota.
//!
//! [`Quotas`] owns all of this behind a small API: the core loop asks [`Quotas::over_quota`]
//! before a turn and [`Quotas::measure_soon`] after one, the admin API sets the limit
//! (`control/assistant.rs`), status and doctor read [`Quotas::usage`].
//!
//! The quota is household-wide: `hearth household disk-quota MB` (0: none), stored as the setting
//! `members.disk_quota_mb`, [`DEFAULT_QUOTA_MB`] when never set.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hearth_proto::control::{DiskUsage, GatewayEvent};
use parking_lot::Mutex;
use tokio::sync::broadcast;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::store::{self, Store};

/// The household setting holding the quota in MB.
pub(crate) const SETTING_QUOTA_MB: &str = "members.disk_quota_mb";
/// The quota when the admin never set one: 1 GiB per member.
pub const DEFAULT_QUOTA_MB: u32 = 1024;
/// The largest quota accepted: 1 TiB.
pub(crate) const MAX_QUOTA_MB: u32 = 1 << 20;
/// A member's folder is measured at most this often after turns.
pub const MEASURE_EVERY: Duration = Duration::from_secs(60);
/// An over-quota member is told at most this often; their other messages are closed quietly.
const NOTE_EVERY: Duration = Duration::from_secs(3600);
/// What a member over the quota reads instead of an answer.
pub const QUOTA_NOTE: &str = "I've run out of room to keep our conversations and notes, so I can't take new messages \
                              for the moment. I've let the person who looks after Hearth know — I'll be back as soon \
                              as there's space again.";

/// The quota, what was measured, and how to measure: the one owner of that state, behind the
/// small API below. Cheap to clone; every clone is the same.
#[derive(Clone)]
pub(crate) struct Quotas {
    inner: Arc<Inner>,
}

struct Inner {
    // Held for a lookup or an update, never across an await.
    state: Mutex<State>,
    parts: Parts,
}

/// A member's name by id (the roster, which this module cannot see).
pub(crate) type NameOf = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// What measuring needs, handed over at start (this module knows nothing of the gateway).
pub(crate) struct Parts {
    pub(crate) store: Store,
    pub(crate) clock: Clock,
    /// The data folder, as the gateway found it.
    pub(crate) data_dir: PathBuf,
    /// The `hearth supervisor` that reads members' folders when this process may not.
    pub(crate) supervisor: Option<PathBuf>,
    /// Where the admin hears that a member passed the quota.
    pub(crate) notify: broadcast::Sender<GatewayEvent>,
    pub(crate) tracker: TaskTracker,
    /// A member's name for the admin, by id.
    pub(crate) name_of: NameOf,
}

#[derive(Default)]
struct State {
    /// `None`: no quota.
    limit: Option<u64>,
    measured: HashMap<String, Measured>,
    /// Members measuring now (one measurement at a time each).
    measuring: HashSet<String>,
    /// Members over the quota whom the admin was told about (cleared when they are under again).
    reported: HashSet<String>,
    /// When each over-quota member was last given the note.
    notes: HashMap<String, Instant>,
}

#[derive(Clone, Copy)]
struct Measured {
    bytes: u64,
    /// The gateway's clock.
    at: DateTime<Utc>,
}

fn limit_of(mb: u32) -> Option<u64> {
    (mb > 0).then(|| u64::from(mb) << 20)
}

impl Quotas {
    pub(crate) fn new(parts: Parts) -> Self {
        Self { inner: Arc::new(Inner { state: Mutex::new(State::default()), parts }) }
    }

    /// The member's folder against the quota, as last measured.
    pub(crate) fn usage(&self, member_id: &str) -> Option<DiskUsage> {
        let state = self.inner.state.lock();
        state.measured.get(member_id).map(|m| DiskUsage { bytes: m.bytes, quota_bytes: state.limit })
    }

    /// Whether the member's folder was over the quota when last measured.
    pub(crate) fn over(&self, member_id: &str) -> bool {
        self.usage(member_id).is_some_and(|u| u.over())
    }

    /// Reads the quota and measures every member's folder once. Called once at start.
    pub(crate) async fn start(&self, members: Vec<String>) {
        let stored = self.inner.parts.store.call(|c| store::get_setting(c, SETTING_QUOTA_MB)).await;
        let mb = match stored {
            Ok(v) => v.and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_QUOTA_MB),
            Err(e) => {
                tracing::error!(error = %e, "could not read the disk quota; using the default");
                DEFAULT_QUOTA_MB
            }
        };
        self.inner.state.lock().limit = limit_of(mb);
        let quotas = self.clone();
        self.inner.parts.tracker.spawn(async move { quotas.measure_all(members).await });
    }

    /// Measures each of `members`' folders, one after another.
    pub(crate) async fn measure_all(&self, members: Vec<String>) {
        for id in members {
            self.measure(&id).await;
        }
    }

    /// A new quota (the admin stored it): whoever is over it is reported anew once measured.
    pub(crate) fn set_limit_mb(&self, mb: u32) {
        let mut state = self.inner.state.lock();
        state.limit = limit_of(mb);
        state.reported.clear();
    }

    /// Measures the member's folder soon unless it was measured within [`MEASURE_EVERY`] (or
    /// is being measured): after a turn ran, and when a message was refused for the quota.
    pub(crate) fn measure_soon(&self, member_id: &str) {
        let now = self.inner.parts.clock.now();
        {
            let state = self.inner.state.lock();
            let fresh = state
                .measured
                .get(member_id)
                .is_some_and(|m| (now - m.at).to_std().is_ok_and(|age| age < MEASURE_EVERY) || now < m.at);
            if fresh || state.measuring.contains(member_id) {
                return;
            }
        }
        let (quotas, id) = (self.clone(), member_id.to_owned());
        self.inner.parts.tracker.spawn(async move { quotas.measure(&id).await });
    }

    /// Measures one member's folder now and acts on the result.
    async fn measure(&self, member_id: &str) {
        if !self.inner.state.lock().measuring.insert(member_id.to_owned()) {
            return;
        }
        let measured = self.folder_usage(member_id).await;
        let at = self.inner.parts.clock.now();
        let crossed = {
            let mut state = self.inner.state.lock();
            state.measuring.remove(member_id);
            let bytes = match measured {
                Ok(bytes) => bytes,
                Err(e) => {
                    tracing::warn!(member = member_id, error = %e, "could not measure the member's folder");
                    return;
                }
            };
            state.measured.insert(member_id.to_owned(), Measured { bytes, at });
            match state.limit {
                Some(limit) if bytes > limit => state.reported.insert(member_id.to_owned()).then_some((bytes, limit)),
                _ => {
                    if state.reported.remove(member_id) {
                        state.notes.remove(member_id);
                        tracing::info!(member = member_id, bytes, "the member's folder is within the disk quota again");
                    }
                    None
                }
            }
        };
        if let Some((bytes, limit)) = crossed {
            self.quota_reached(member_id, bytes, limit).await;
        }
    }

    /// The size of the member's folder, measured by whoever may read it.
    async fn folder_usage(&self, member_id: &str) -> Result<u64, String> {
        let data = self.inner.parts.data_dir.clone();
        match &self.inner.parts.supervisor {
            Some(supervisor) => {
                // The supervisor opens the data directory without following a link.
                let data = std::fs::canonicalize(&data).map_err(|e| e.to_string())?;
                let mut client =
                    hearth_isolation::SupervisorClient::connect(supervisor).await.map_err(|e| e.to_string())?;
                client.usage(&data, member_id).await.map(|u| u.bytes).map_err(|e| e.to_string())
            }
            None => {
                let id = member_id.to_owned();
                tokio::task::spawn_blocking(move || hearth_isolation::dirs::usage(&data, &id))
                    .await
                    .map_err(|e| e.to_string())?
                    .map(|u| u.bytes)
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Tells the admin, once, that a member passed the quota.
    async fn quota_reached(&self, member_id: &str, bytes: u64, limit: u64) {
        let name = (self.inner.parts.name_of)(member_id).unwrap_or_default();
        tracing::warn!(
            member = member_id,
            bytes,
            quota_bytes = limit,
            "a member's folder passed the disk quota: their assistant takes no new messages until it is smaller"
        );
        let detail = format!("{name}: {} MB of {} MB", bytes >> 20, limit >> 20);
        let id = member_id.to_owned();
        let audited = self
            .inner
            .parts
            .store
            .call(move |c| store::audit(c, "gateway", "disk_quota_reached", Some(&id), &detail))
            .await;
        if let Err(e) = audited {
            tracing::error!(error = %e, "could not record the disk quota in the audit log");
        }
        let event = GatewayEvent::DiskQuotaReached { member_id: member_id.to_owned(), name, bytes, quota_bytes: limit };
        let _ = self.inner.parts.notify.send(event);
    }

    /// Whether a message of the member's is refused for the quota: `None` when their folder is
    /// within it (or not measured yet); `Some(tell)` when it is refused, `tell` saying whether
    /// to send [`QUOTA_NOTE`] now (at most once per [`NOTE_EVERY`]) or close it quietly. Each
    /// refusal asks for a fresh measurement, so turns resume soon after the folder shrinks.
    pub(crate) fn over_quota(&self, member_id: &str) -> Option<bool> {
        if !self.over(member_id) {
            return None;
        }
        self.measure_soon(member_id);
        let now = Instant::now();
        let mut state = self.inner.state.lock();
        let tell = state.notes.get(member_id).is_none_or(|t| now.duration_since(*t) >= NOTE_EVERY);
        if tell {
            state.notes.insert(member_id.to_owned(), now);
        }
        Some(tell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quota_is_in_megabytes_and_zero_is_none() {
        assert_eq!(limit_of(0), None);
        assert_eq!(limit_of(1), Some(1 << 20));
        assert_eq!(limit_of(DEFAULT_QUOTA_MB), Some(1 << 30));
        let dir = tempfile::tempdir().unwrap();
        let quotas = Quotas::new(Parts {
            store: Store::open(&dir.path().join("g.sqlite")).unwrap(),
            clock: Clock::system(),
            data_dir: PathBuf::from("/nonexistent"),
            supervisor: None,
            notify: broadcast::channel(1).0,
            tracker: TaskTracker::new(),
            name_of: Arc::new(|_| None),
        });
        assert!(!quotas.over("ana"), "never measured: not refused");
        {
            let mut state = quotas.inner.state.lock();
            state.limit = limit_of(1);
            state.measured.insert("ana".into(), Measured { bytes: (1 << 20) + 1, at: Utc::now() });
            state.measured.insert("bo".into(), Measured { bytes: 1 << 20, at: Utc::now() });
        }
        assert!(quotas.over("ana"));
        assert!(!quotas.over("bo"), "exactly at the quota is within it");
        assert_eq!(quotas.usage("bo"), Some(DiskUsage { bytes: 1 << 20, quota_bytes: Some(1 << 20) }));
    }
}
