//! Backups while a gateway serves: `BackupCreate` (the app's button, `hearth backup create`
//! against a running gateway) and `BackupSchedule`, and the run the schedule's timer makes.
//! The backup itself is `household::backup`; this is the admin's side of it — checked
//! folders, one backup at a time, through the supervisor when members' folders are not ours to
//! read, and the audit row.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Local};
use hearth_proto::control::{BackupSummary, ControlError, ControlReply, ErrorCode};

use super::internal;
use crate::core::Engine;
use crate::household::backup::{
    BackupError, KEEP, SETTING_DIR, SETTING_EVERY_HOURS, Schedule, create_with_secrets, ensure_destination,
};
use crate::household::tree::ReaderExe;
use crate::store;

pub(super) async fn create(e: &Engine, dest_dir: &str, include_secrets: bool) -> Result<ControlReply, ControlError> {
    let dest = checked_dir(dest_dir)?;
    let d = dest.clone();
    tokio::task::spawn_blocking(move || ensure_destination(&d)).await.map_err(internal)?.map_err(backup_error)?;
    backup_into(e, dest, include_secrets, Local::now()).await.map(ControlReply::BackedUp)
}

/// One backup into `dest`, after any other in progress; audited. The schedule's timer runs this
/// too (without secrets).
pub(crate) async fn backup_into(
    e: &Engine,
    dest: PathBuf,
    include_secrets: bool,
    now: DateTime<Local>,
) -> Result<BackupSummary, ControlError> {
    let _one_at_a_time = e.backups.one_at_a_time().await;
    let data = e.dir.root().to_owned();
    let done = match e.workers.supervisor() {
        // Members' folders belong to their own accounts, which this user cannot read: root
        // makes the backup (and keeps the newest KEEP, since these folders are root's).
        Some(supervisor) => through_supervisor(supervisor, &data, &dest, include_secrets).await?,
        None => here(e, data, dest, include_secrets, now).await?,
    };
    let detail =
        format!("{} members, {} bytes, secrets: {}, to {}", done.members, done.bytes, done.includes_secrets, done.path);
    e.store.call(move |c| store::audit(c, "admin", "backup_created", None, &detail)).await.map_err(internal)?;
    Ok(done)
}

async fn through_supervisor(
    supervisor: &Path,
    data: &Path,
    dest: &Path,
    include_secrets: bool,
) -> Result<BackupSummary, ControlError> {
    if include_secrets {
        return Err(ControlError::new(
            ErrorCode::InvalidInput,
            "Members' files belong to their own OS accounts, so the Hearth supervisor makes this backup, and it never \
             handles the bot tokens or the API key. Back up without them (you paste them again after a restore), or \
             on Linux run `sudo hearth backup create --include-secrets`",
        ));
    }
    let data = std::fs::canonicalize(data).map_err(internal)?;
    let dest = std::fs::canonicalize(dest).map_err(internal)?;
    let keep = u32::try_from(KEEP).unwrap_or(u32::MAX);
    let mut client = hearth_isolation::SupervisorClient::connect(supervisor)
        .await
        .map_err(|e| ControlError::new(ErrorCode::Internal, format!("the backup needs the Hearth supervisor: {e}")))?;
    client.backup(&data, &dest, keep).await.map_err(|e| ControlError::new(ErrorCode::Internal, e.to_string()))
}

/// A backup made by this process, which can read every member's folder (no accounts, or the
/// gateway is root).
async fn here(
    e: &Engine,
    data: PathBuf,
    dest: PathBuf,
    include_secrets: bool,
    now: DateTime<Local>,
) -> Result<BackupSummary, ControlError> {
    // The values the gateway holds, wherever it keeps them (the file or the Keychain).
    let secrets = include_secrets.then(|| e.secrets.snapshot());
    // A gateway running as root reads members' folders through readers running as their
    // accounts: its worker binary is `hearth`, which serves as the reader too.
    let exe = ReaderExe::Path(e.config.worker_exe.clone());
    let done = tokio::task::spawn_blocking(move || create_with_secrets(&data, &dest, secrets.as_ref(), now, &exe))
        .await
        .map_err(internal)?;
    done.map_err(backup_error)
}

pub(super) async fn schedule(
    e: &Engine,
    dest_dir: Option<String>,
    every_hours: u32,
) -> Result<ControlReply, ControlError> {
    let schedule = match dest_dir {
        None => None,
        Some(dir) => {
            if !(1..=24 * 31).contains(&every_hours) {
                return Err(ControlError::new(
                    ErrorCode::InvalidInput,
                    format!("every {every_hours} hours is out of range; choose from 1 to 744 (a month)"),
                ));
            }
            let dir = checked_dir(&dir)?;
            let d = dir.clone();
            tokio::task::spawn_blocking(move || ensure_destination(&d))
                .await
                .map_err(internal)?
                .map_err(backup_error)?;
            Some(Schedule { dir, every: Duration::from_secs(u64::from(every_hours) * 3600) })
        }
    };
    let s = schedule.clone();
    e.store
        .call(move |c| match &s {
            Some(s) => {
                let hours = (s.every.as_secs() / 3600).to_string();
                store::set_setting(c, SETTING_DIR, &s.dir.to_string_lossy())?;
                store::set_setting(c, SETTING_EVERY_HOURS, &hours)?;
                store::audit(c, "admin", "backup_schedule", None, &format!("every {hours} h to {}", s.dir.display()))
            }
            None => {
                c.execute("DELETE FROM settings WHERE key IN (?1, ?2)", [SETTING_DIR, SETTING_EVERY_HOURS])?;
                store::audit(c, "admin", "backup_schedule", None, "off")
            }
        })
        .await
        .map_err(internal)?;
    e.backups.set(schedule);
    Ok(ControlReply::Done)
}

fn checked_dir(dir: &str) -> Result<PathBuf, ControlError> {
    let path = PathBuf::from(dir.trim());
    if !path.is_absolute() {
        return Err(ControlError::new(
            ErrorCode::InvalidInput,
            format!("{dir:?} is not a full path; choose a folder such as /media/backup-disk/hearth"),
        ));
    }
    Ok(path)
}

fn backup_error(e: BackupError) -> ControlError {
    match e {
        BackupError::NoDestination(_) => ControlError::new(ErrorCode::InvalidInput, e.to_string()),
        e => ControlError::new(ErrorCode::Internal, format!("{e}; nothing was changed")),
    }
}
