//! Scheduled backups: one timer, pruning to the last [`KEEP`], and [`Backups`], the state a
//! running gateway keeps (one backup at a time, the schedule in force).
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Local, NaiveDateTime, TimeZone};
use hearth_isolation::fsat;
use hearth_proto::control::BackupSummary;

use super::*;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Where and how often scheduled backups run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub dir: PathBuf,
    pub every: Duration,
}

/// Deletes all but the newest `keep` finished backups in `dir`, and unfinished ones older than
/// a day. Only `hearth-backup-*` folders are touched. Returns what was deleted.
pub fn prune(dir: &Path, keep: usize) -> io::Result<Vec<PathBuf>> {
    let fd = fsat::open_dir_path(dir, true)?;
    prune_at(&fd, dir, keep)
}

/// [`prune`] in a folder already opened: every deletion goes through descriptors (`unlinkat`
/// inside folders opened without following links), so a folder swapped for a link meanwhile
/// loses only the link.
pub fn prune_at(dir: &OwnedFd, dir_path: &Path, keep: usize) -> io::Result<Vec<PathBuf>> {
    let mut finished = Vec::new();
    let mut deleted = Vec::new();
    for raw in fsat::names(dir)? {
        let Some(name) = raw.to_str().filter(|n| n.starts_with(PREFIX)) else { continue };
        let Some(st) = fsat::stat_at(dir, name)?.filter(fsat::is_dir) else { continue };
        if name.ends_with(PARTIAL) {
            let modified = std::time::UNIX_EPOCH + Duration::from_secs(st.st_mtime.max(0) as u64);
            let stale = modified.elapsed().is_ok_and(|age| age > Duration::from_secs(86_400));
            if stale {
                fsat::remove_tree_at(dir, name)?;
                deleted.push(dir_path.join(name));
            }
        } else {
            finished.push((sort_key(name), name.to_owned()));
        }
    }
    finished.sort();
    let excess = finished.len().saturating_sub(keep);
    for (_, name) in finished.into_iter().take(excess) {
        fsat::remove_tree_at(dir, &name)?;
        deleted.push(dir_path.join(name));
    }
    Ok(deleted)
}

/// Orders `hearth-backup-<stamp>` before `-<stamp>-2` before `-<stamp>-10`.
pub(super) fn sort_key(name: &str) -> (String, u32) {
    let rest = &name[PREFIX.len()..];
    let (stamp, n) = rest.split_at(rest.len().min(15));
    (stamp.to_owned(), n.trim_start_matches('-').parse().unwrap_or(1))
}

/// When the newest finished backup in `dir` was made, from its name.
pub fn newest(dir: &Path) -> Option<DateTime<Local>> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stamp = name.strip_prefix(PREFIX)?.get(..15)?.to_owned();
            if name.ends_with(PARTIAL) {
                return None;
            }
            let naive = NaiveDateTime::parse_from_str(&stamp, STAMP).ok()?;
            Local.from_local_datetime(&naive).earliest()
        })
        .max()
}

/// The shortest wait before a scheduled backup: a gateway that just started is left a minute
/// (or one period, if that is shorter).
pub(super) const FIRST_WAIT: Duration = Duration::from_secs(60);

/// How long until the next backup is due: a period after the newest one in the folder, so a
/// box that restarts more often than the period still backs up.
pub fn first_wait(newest: Option<DateTime<Local>>, now: DateTime<Local>, every: Duration) -> Duration {
    let least = FIRST_WAIT.min(every);
    let due = newest.and_then(|t| chrono::Duration::from_std(every).ok().map(|e| t + e));
    match due.map(|due| (due - now).to_std()) {
        Some(Ok(wait)) => wait.max(least),
        _ => least,
    }
}

/// Runs scheduled backups until `cancel`: one timer while a schedule is set, none otherwise. A
/// change on `schedule` restarts the timer. `backup` makes one backup in the folder at the time
/// given; a failure (a disk not connected) is logged and the next run comes as planned. After
/// each backup all but the last [`KEEP`] are deleted.
pub async fn run_schedule<F, Fut>(
    mut schedule: watch::Receiver<Option<Schedule>>,
    cancel: CancellationToken,
    clock: impl Fn() -> DateTime<Local>,
    mut backup: F,
) where
    F: FnMut(PathBuf, DateTime<Local>) -> Fut,
    Fut: Future<Output = Result<BackupSummary, String>>,
{
    loop {
        let current = schedule.borrow_and_update().clone();
        let Some(s) = current else {
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = schedule.changed() => if changed.is_err() { return } else { continue },
            }
        };
        let dir = s.dir.clone();
        let last = tokio::task::spawn_blocking(move || newest(&dir)).await.ok().flatten();
        let wait = first_wait(last, clock(), s.every);
        let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + wait, s.every);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = schedule.changed() => if changed.is_err() { return } else { break },
                _ = timer.tick() => {
                    let result = backup(s.dir.clone(), clock()).await;
                    after_scheduled(&s.dir, result).await;
                }
            }
        }
    }
}

/// Logs a scheduled run and, after a success, prunes the folder. Nothing here stops the schedule.
async fn after_scheduled(dir: &Path, result: Result<BackupSummary, String>) {
    let done = match result {
        Ok(done) => done,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "scheduled backup failed; trying again at the next one");
            return;
        }
    };
    tracing::info!(path = %done.path, bytes = done.bytes, "scheduled backup written");
    let d = dir.to_owned();
    match tokio::task::spawn_blocking(move || prune(&d, KEEP)).await {
        Ok(Ok(deleted)) if !deleted.is_empty() => {
            tracing::info!(deleted = deleted.len(), "older backups deleted (the last {KEEP} are kept)")
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(dir = %dir.display(), error = %e, "could not delete older backups"),
        Err(e) => tracing::warn!(error = %e, "deleting older backups failed"),
    }
}

/// A running gateway's backup state: one backup at a time, and the schedule its timer follows.
/// Its one writer is the admin's `BackupSchedule` (`control/backup.rs`); the timer reads it.
pub struct Backups {
    // tokio Mutex: held across the await of the blocking copy.
    running: tokio::sync::Mutex<()>,
    schedule: watch::Sender<Option<Schedule>>,
}

impl Default for Backups {
    fn default() -> Self {
        Self { running: tokio::sync::Mutex::new(()), schedule: watch::channel(None).0 }
    }
}

impl Backups {
    /// Waits for any backup in progress; the next one runs while the guard is held.
    pub(crate) async fn one_at_a_time(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.running.lock().await
    }

    /// The schedule in force (`None`: off), as the timer reads it.
    pub(crate) fn set(&self, schedule: Option<Schedule>) {
        self.schedule.send_replace(schedule);
    }

    /// Follows the schedule: what [`run_schedule`] takes.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Option<Schedule>> {
        self.schedule.subscribe()
    }

    /// The schedule in force: the folder and every how many hours; `None` when off.
    pub fn scheduled(&self) -> Option<(PathBuf, u32)> {
        self.schedule.borrow().as_ref().map(|s| (s.dir.clone(), (s.every.as_secs() / 3600) as u32))
    }
}

/// The schedule as stored (settings `backup.dir`, `backup.every_hours`); `None` when off or
/// unreadable (said in the log).
pub(crate) async fn stored_schedule(store: &crate::store::Store) -> Option<Schedule> {
    let stored =
        store.call(|c| Ok((store::get_setting(c, SETTING_DIR)?, store::get_setting(c, SETTING_EVERY_HOURS)?))).await;
    match stored {
        Ok((Some(dir), Some(hours))) => match hours.parse::<u64>() {
            Ok(h) if h > 0 => Some(Schedule { dir: PathBuf::from(dir), every: Duration::from_secs(h * 3600) }),
            _ => {
                tracing::error!(value = %hours, "stored backup.every_hours is invalid; set the schedule again");
                None
            }
        },
        Ok(_) => None,
        Err(e) => {
            tracing::error!(error = %e, "could not read the backup schedule");
            None
        }
    }
}
