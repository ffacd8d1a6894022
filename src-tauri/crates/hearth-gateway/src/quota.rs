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
//! The quota is household-wide: `hearth household disk-quota MB` (0: none), stored as the setting
//! `members.disk_quota_mb`, [`DEFAULT_QUOTA_MB`] when never set.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hearth_proto::control::{ControlError, ControlReply, DiskUsage, ErrorCode, GatewayEvent};

use crate::control::internal;
use crate::gateway::Gateway;
use crate::store;

/// The household setting holding the quota in MB.
pub(crate) const SETTING_QUOTA_MB: &str = "members.disk_quota_mb";
/// The quota when the admin never set one: 1 GiB per member.
pub const DEFAULT_QUOTA_MB: u32 = 1024;
/// The largest quota accepted: 1 TiB.
const MAX_QUOTA_MB: u32 = 1 << 20;
/// A member's folder is measured at most this often after turns.
pub const MEASURE_EVERY: Duration = Duration::from_secs(60);
/// An over-quota member is told at most this often; their other messages are closed quietly.
const NOTE_EVERY: Duration = Duration::from_secs(3600);
/// What a member over the quota reads instead of an answer.
pub const QUOTA_NOTE: &str = "I've run out of room to keep our conversations and notes, so I can't take new messages \
                              for the moment. I've let the person who looks after Hearth know — I'll be back as soon \
                              as there's space again.";

/// The quota and what was measured.
#[derive(Default)]
pub(crate) struct Quotas {
    // std Mutex: held for a lookup or an update, never across an await.
    state: Mutex<State>,
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
    /// The member's folder against the quota, as last measured.
    pub(crate) fn usage(&self, member_id: &str) -> Option<DiskUsage> {
        let state = self.state.lock().unwrap();
        state.measured.get(member_id).map(|m| DiskUsage { bytes: m.bytes, quota_bytes: state.limit })
    }

    /// Whether the member's folder was over the quota when last measured.
    pub(crate) fn over(&self, member_id: &str) -> bool {
        self.usage(member_id).is_some_and(|u| u.over())
    }
}

impl Gateway {
    /// Reads the quota and measures every member's folder once. Called once at start.
    pub(crate) async fn start_quotas(&self) {
        let stored = self.inner.store.call(|c| store::get_setting(c, SETTING_QUOTA_MB)).await;
        let mb = match stored {
            Ok(v) => v.and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_QUOTA_MB),
            Err(e) => {
                tracing::error!(error = %e, "could not read the disk quota; using the default");
                DEFAULT_QUOTA_MB
            }
        };
        self.inner.quotas.state.lock().unwrap().limit = limit_of(mb);
        let gw = self.clone();
        self.inner.tracker.spawn(async move { gw.measure_all().await });
    }

    async fn measure_all(&self) {
        let ids: Vec<String> = self.inner.members.lock().unwrap().keys().cloned().collect();
        for id in ids {
            self.measure(&id).await;
        }
    }

    /// Measures the member's folder soon unless it was measured within [`MEASURE_EVERY`] (or
    /// is being measured): after a turn ran, and when a message was refused for the quota.
    pub(crate) fn measure_soon(&self, member_id: &str) {
        let now = self.inner.config.clock.now();
        {
            let state = self.inner.quotas.state.lock().unwrap();
            let fresh = state
                .measured
                .get(member_id)
                .is_some_and(|m| (now - m.at).to_std().is_ok_and(|age| age < MEASURE_EVERY) || now < m.at);
            if fresh || state.measuring.contains(member_id) {
                return;
            }
        }
        let (gw, id) = (self.clone(), member_id.to_owned());
        self.inner.tracker.spawn(async move { gw.measure(&id).await });
    }

    /// Measures one member's folder now and acts on the result.
    async fn measure(&self, member_id: &str) {
        if !self.inner.quotas.state.lock().unwrap().measuring.insert(member_id.to_owned()) {
            return;
        }
        let measured = self.folder_usage(member_id).await;
        let at = self.inner.config.clock.now();
        let crossed = {
            let mut state = self.inner.quotas.state.lock().unwrap();
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
        let data = self.inner.dir.root().to_owned();
        match self.inner.workers.supervisor() {
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
        let name = self.inner.members.lock().unwrap().get(member_id).map(|m| m.name.clone()).unwrap_or_default();
        tracing::warn!(
            member = member_id,
            bytes,
            quota_bytes = limit,
            "a member's folder passed the disk quota: their assistant takes no new messages until it is smaller"
        );
        let detail = format!("{name}: {} MB of {} MB", bytes >> 20, limit >> 20);
        let id = member_id.to_owned();
        if let Err(e) =
            self.inner.store.call(move |c| store::audit(c, "gateway", "disk_quota_reached", Some(&id), &detail)).await
        {
            tracing::error!(error = %e, "could not record the disk quota in the audit log");
        }
        self.emit(GatewayEvent::DiskQuotaReached { member_id: member_id.to_owned(), name, bytes, quota_bytes: limit });
    }

    /// Whether a message of the member's is refused for the quota: `None` when their folder is
    /// within it (or not measured yet); `Some(tell)` when it is refused, `tell` saying whether
    /// to send [`QUOTA_NOTE`] now (at most once per [`NOTE_EVERY`]) or close it quietly. Each
    /// refusal asks for a fresh measurement, so turns resume soon after the folder shrinks.
    pub(crate) fn over_quota(&self, member_id: &str) -> Option<bool> {
        if !self.inner.quotas.over(member_id) {
            return None;
        }
        self.measure_soon(member_id);
        let now = Instant::now();
        let mut state = self.inner.quotas.state.lock().unwrap();
        let tell = state.notes.get(member_id).is_none_or(|t| now.duration_since(*t) >= NOTE_EVERY);
        if tell {
            state.notes.insert(member_id.to_owned(), now);
        }
        Some(tell)
    }

    pub(crate) fn disk_usage(&self, member_id: &str) -> Option<DiskUsage> {
        self.inner.quotas.usage(member_id)
    }

    /// `hearth household disk-quota MB`: stores the quota and measures every folder against it.
    pub(crate) async fn household_disk_quota(&self, mb: u32) -> Result<ControlReply, ControlError> {
        if mb > MAX_QUOTA_MB {
            return Err(ControlError::new(
                ErrorCode::InvalidInput,
                format!("{mb} MB is more than 1 TB; choose up to {MAX_QUOTA_MB} MB, or 0 for no limit"),
            ));
        }
        self.inner
            .store
            .call(move |c| {
                store::set_setting(c, SETTING_QUOTA_MB, &mb.to_string())?;
                let detail = if mb == 0 { "no limit".to_owned() } else { format!("{mb} MB per member") };
                store::audit(c, "admin", "disk_quota", None, &detail)
            })
            .await
            .map_err(internal)?;
        {
            let mut state = self.inner.quotas.state.lock().unwrap();
            state.limit = limit_of(mb);
            // Measured again below against the new quota: whoever passes it is reported anew.
            state.reported.clear();
        }
        self.measure_all().await;
        self.emit(GatewayEvent::Changed);
        Ok(ControlReply::Done)
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
        let quotas = Quotas::default();
        assert!(!quotas.over("ana"), "never measured: not refused");
        {
            let mut state = quotas.state.lock().unwrap();
            state.limit = limit_of(1);
            state.measured.insert("ana".into(), Measured { bytes: (1 << 20) + 1, at: Utc::now() });
            state.measured.insert("bo".into(), Measured { bytes: 1 << 20, at: Utc::now() });
        }
        assert!(quotas.over("ana"));
        assert!(!quotas.over("bo"), "exactly at the quota is within it");
        assert_eq!(quotas.usage("bo"), Some(DiskUsage { bytes: 1 << 20, quota_bytes: Some(1 << 20) }));
    }
}
