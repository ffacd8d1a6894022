//! `hearth backup create | verify | restore | schedule`. The engine is `hearth_gateway::backup`;
//! this is the command line around it. `create` and `schedule` go to the running gateway (the
//! only writer of `gateway.sqlite`); with none running, `create` backs up the data directory
//! itself, holding its lock so no gateway starts meanwhile. `verify` and `restore` work on
//! files and never need a gateway (and `restore` refuses while one serves).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use hearth_gateway::backup::{self, Restored, Verified};
use hearth_proto::control::{BackupSummary, ControlReply, ControlRequest};
use serde_json::json;

use crate::admin::{ask, print_json, unexpected_reply};
use crate::failure::{EXIT_BACKUP_DAMAGED, Failure};

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Back up the whole household now: database, every member's folder, settings.
    ///
    /// Writes a new folder hearth-backup-YYYYMMDD-HHMMSS (private to you) inside DIR — by default
    /// a "-backups" folder beside the data directory (e.g. ~/.local/share/hearth-backups). Safe
    /// while Hearth serves: databases are copied as one consistent snapshot. Bot tokens and the
    /// provider key are left out unless --include-secrets; after restoring a backup without them
    /// you paste them again.
    ///
    /// --json prints {"path","members","bytes","created_at","includes_secrets"}.
    Create(BackupCreateArgs),
    /// Check a backup: every file against its checksum, every database with integrity_check.
    ///
    /// Exit code 0 when it is sound, 11 when anything is missing, changed or damaged (each
    /// problem is listed). --json prints {"ok","files","databases","bytes","problems"}.
    Verify(BackupDirArgs),
    /// Put a backup back into the data directory (Hearth must be stopped).
    ///
    /// Verifies the backup first, and reads only a backup folder that root or the household's own
    /// user owns and nobody else can write to. A data directory that already holds a household is
    /// left alone unless --force, which moves it aside to <data-dir>.before-restore-<time>
    /// (nothing is deleted). If the backup holds no secrets, Hearth lists the bot tokens and provider key to
    /// paste again once it runs.
    ///
    /// --json prints {"data_dir","moved_aside","members","secrets_restored","paste_again"}.
    Restore(BackupRestoreArgs),
    /// Back up automatically every N hours into DIR (an external disk, a synced folder).
    ///
    /// The running gateway makes the backups and keeps the last 7 in DIR (older
    /// hearth-backup-* folders there are deleted; nothing else is touched). A disk that is not
    /// connected is logged and tried again at the next one. --off stops scheduled backups.
    ///
    /// Examples:
    ///   hearth backup schedule --to /media/usb/hearth --every-hours 24
    ///   hearth backup schedule --off
    #[command(
        verbatim_doc_comment,
        about = "Back up automatically every N hours into DIR (an external disk, a synced folder)"
    )]
    Schedule(BackupScheduleArgs),
}

impl BackupCommand {
    pub fn json(&self) -> bool {
        match self {
            Self::Create(a) => a.json,
            Self::Verify(a) => a.json,
            Self::Restore(a) => a.json,
            Self::Schedule(_) => false,
        }
    }
}

#[derive(Debug, Args)]
pub struct BackupCreateArgs {
    /// The folder to write the backup into (created if its parent exists).
    #[arg(long, value_name = "DIR")]
    pub to: Option<PathBuf>,
    /// Also copy bot tokens and the provider key. Keep such a backup as safe as a password.
    #[arg(long)]
    pub include_secrets: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BackupDirArgs {
    /// The backup folder (hearth-backup-…).
    pub dir: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BackupRestoreArgs {
    /// The backup folder (hearth-backup-…).
    pub dir: PathBuf,
    /// Move a data directory that already holds a household aside instead of refusing.
    #[arg(long)]
    pub force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["to", "off"])))]
pub struct BackupScheduleArgs {
    /// The folder scheduled backups go into.
    #[arg(long, value_name = "DIR")]
    pub to: Option<PathBuf>,
    /// Hours between backups (1 to 744).
    #[arg(long, value_name = "N", default_value_t = 24)]
    pub every_hours: u32,
    /// Stop scheduled backups.
    #[arg(long, conflicts_with = "to")]
    pub off: bool,
}

pub async fn run(data_dir: &Path, command: BackupCommand) -> Result<u8, Failure> {
    match command {
        BackupCommand::Create(args) => create(data_dir, args).await.map(|()| 0),
        BackupCommand::Verify(args) => verify(args).await,
        BackupCommand::Restore(args) => restore(data_dir, args).await.map(|()| 0),
        BackupCommand::Schedule(args) => schedule(data_dir, args).await.map(|()| 0),
    }
}

fn absolute_text(path: &Path) -> Result<String, Failure> {
    let abs = std::path::absolute(path)
        .map_err(|e| Failure::invalid_input(format!("{} is not a usable folder: {e}", path.display())))?;
    abs.to_str().map(str::to_owned).ok_or_else(|| {
        Failure::invalid_input(format!("{} is not valid text; choose a folder whose name is", abs.display()))
    })
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Failure> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Failure::unexpected(e.to_string()))
}

async fn create(data_dir: &Path, args: BackupCreateArgs) -> Result<(), Failure> {
    let dest = args.to.clone().unwrap_or_else(|| backup::default_dir(data_dir));
    let dest_dir = absolute_text(&dest)?;
    let request = ControlRequest::BackupCreate { dest_dir: dest_dir.clone(), include_secrets: args.include_secrets };
    // SAFETY: geteuid has no preconditions.
    let summary = if unsafe { libc::geteuid() } == 0 {
        // Root reads every member's folder, which an unprivileged gateway (the Linux package's
        // `hearth` user, with members under accounts of their own) cannot; a snapshot is safe
        // while a gateway serves, so root backs up directly.
        create_direct(data_dir, PathBuf::from(dest_dir), args.include_secrets).await?
    } else {
        match ask(data_dir, request).await {
            Ok(ControlReply::BackedUp(summary)) => summary,
            Ok(other) => return Err(unexpected_reply(&other)),
            Err(f) if f.code == "not_running" => {
                create_direct(data_dir, PathBuf::from(dest_dir), args.include_secrets).await?
            }
            Err(mut f) if f.message.contains("Permission denied") => {
                f.message.push_str(
                    "\nmembers' folders belong to their own OS accounts, which the gateway's user cannot read: \
                     back up as root instead (sudo hearth backup create …)",
                );
                return Err(f);
            }
            Err(f) => return Err(f),
        }
    };
    if args.json {
        print_json(&summary);
        return Ok(());
    }
    println!(
        "Backed up {} member{} ({}) to {}",
        summary.members,
        if summary.members == 1 { "" } else { "s" },
        size(summary.bytes),
        summary.path
    );
    if summary.includes_secrets {
        println!("It holds the bot tokens and the provider key: keep it as safe as a password.");
    } else {
        println!("Bot tokens and the provider key are not in it (--include-secrets adds them);");
        println!("after restoring it you paste them again.");
    }
    println!("Check it any time with `hearth backup verify {}`.", summary.path);
    Ok(())
}

/// Backs the data directory up from this process: holding its lock when no gateway serves (so
/// none starts meanwhile), without it when one does (the snapshot is consistent either way).
async fn create_direct(data_dir: &Path, dest: PathBuf, include_secrets: bool) -> Result<BackupSummary, Failure> {
    let data = data_dir.to_owned();
    blocking(move || {
        if !hearth_gateway::paths::DataDir::new(&data).database().is_file() {
            return Err(Failure::invalid_input(format!(
                "there is no Hearth data in {}; check --data-dir (or HEARTH_DATA_DIR)",
                data.display()
            )));
        }
        let _lock = match backup::hold(&data) {
            Ok(lock) => Some(lock),
            Err(e) if e.downcast_ref::<hearth_gateway::AlreadyServing>().is_some() => None,
            Err(e) => return Err(Failure::unexpected(format!("{e:#}"))),
        };
        backup::ensure_destination(&dest).map_err(damaged_or_input)?;
        // Folders other users own are read by this binary running as them.
        let exe = hearth_gateway::tree::ReaderExe::This;
        backup::create(&data, &dest, include_secrets, chrono::Local::now(), &exe).map_err(damaged_or_input)
    })
    .await?
}

fn damaged_or_input(e: backup::BackupError) -> Failure {
    match e {
        backup::BackupError::NoDestination(_)
        | backup::BackupError::NoData(_)
        | backup::BackupError::NotABackup { .. }
        | backup::BackupError::Secrets(_)
        | backup::BackupError::Moved(_) => Failure::invalid_input(e.to_string()),
        e => Failure::unexpected(e.to_string()),
    }
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.0} KB", b as f64 / 1024.0),
        b => format!("{b} bytes"),
    }
}

async fn verify(args: BackupDirArgs) -> Result<u8, Failure> {
    let dir = args.dir.clone();
    let v: Verified = blocking(move || backup::verify(&dir)).await?.map_err(damaged_or_input)?;
    let ok = v.problems.is_empty();
    if args.json {
        print_json(&json!({
            "ok": ok, "files": v.files, "databases": v.databases, "bytes": v.bytes, "problems": v.problems,
        }));
    } else if ok {
        println!(
            "The backup is sound: {} files ({}) match the manifest, {} database{} pass the integrity check.",
            v.files,
            size(v.bytes),
            v.databases,
            if v.databases == 1 { "" } else { "s" }
        );
        println!(
            "Made {} by Hearth {}, {} member{}, secrets {}.",
            v.manifest.created_at,
            v.manifest.hearth_version,
            v.manifest.members.len(),
            if v.manifest.members.len() == 1 { "" } else { "s" },
            if v.manifest.includes_secrets { "included" } else { "not included" }
        );
    } else {
        println!("The backup in {} has {} problem(s):", args.dir.display(), v.problems.len());
        for p in &v.problems {
            println!("  {p}");
        }
        println!("Do not restore it; use another backup.");
    }
    Ok(if ok { 0 } else { EXIT_BACKUP_DAMAGED })
}

async fn restore(data_dir: &Path, args: BackupRestoreArgs) -> Result<(), Failure> {
    let (dir, data, force) = (args.dir.clone(), data_dir.to_owned(), args.force);
    let restored = blocking(move || backup::restore(&dir, &data, force, chrono::Local::now())).await?;
    let r: Restored = restored.map_err(|e| match e {
        backup::RestoreError::Damaged(_) => {
            Failure { code: "damaged", message: e.to_string(), exit: EXIT_BACKUP_DAMAGED }
        }
        backup::RestoreError::Serving(_) => Failure {
            code: "conflict",
            message: format!(
                "Hearth is running on {}: stop it first (the app, or `hearth serve`), then restore",
                data_dir.display()
            ),
            exit: crate::failure::EXIT_CONFLICT,
        },
        backup::RestoreError::NotEmpty(_) => {
            Failure { code: "conflict", message: e.to_string(), exit: crate::failure::EXIT_CONFLICT }
        }
        backup::RestoreError::Foreign { .. } => Failure::invalid_input(e.to_string()),
        backup::RestoreError::Backup(b) => damaged_or_input(b),
        backup::RestoreError::Other(m) => Failure::unexpected(m),
    })?;
    let mut paste = Vec::new();
    if !r.secrets_restored {
        if r.provider_key_needed {
            paste.push("the provider's API key: `hearth provider set` (same options as before)".to_owned());
        }
        for m in &r.members {
            paste.push(format!("{}'s bot token: `hearth member token {}`", m.name, m.name));
        }
    }
    if args.json {
        print_json(&json!({
            "data_dir": r.data_dir,
            "moved_aside": r.moved_aside,
            "members": r.members.iter().map(|m| &m.name).collect::<Vec<_>>(),
            "secrets_restored": r.secrets_restored,
            "paste_again": paste,
        }));
        return Ok(());
    }
    let names: Vec<&str> = r.members.iter().map(|m| m.name.as_str()).collect();
    println!(
        "Restored {} files into {}: {}.",
        r.files,
        r.data_dir.display(),
        if names.is_empty() { "no members".into() } else { names.join(", ") }
    );
    if let Some(aside) = &r.moved_aside {
        println!("What was there before is now in {} (nothing was deleted).", aside.display());
    }
    if !r.owners_set.is_empty() {
        println!("Handed back to their own OS accounts: {}.", r.owners_set.join(", "));
    }
    if r.secrets_restored {
        println!("Bot tokens and the provider key were restored too. Start Hearth again.");
    } else if paste.is_empty() {
        println!("Start Hearth again.");
    } else {
        println!("The backup holds no secrets. Start Hearth again, then paste these again:");
        for p in &paste {
            println!("  - {p}");
        }
    }
    Ok(())
}

async fn schedule(data_dir: &Path, args: BackupScheduleArgs) -> Result<(), Failure> {
    let dest_dir = match (&args.to, args.off) {
        (Some(to), false) => Some(absolute_text(to)?),
        _ => None,
    };
    let request = ControlRequest::BackupSchedule { dest_dir: dest_dir.clone(), every_hours: args.every_hours };
    match ask(data_dir, request).await? {
        ControlReply::Done => {
            match dest_dir {
                Some(dir) => println!(
                    "Hearth backs up every {} hour{} into {dir}, keeping the last {}.",
                    args.every_hours,
                    if args.every_hours == 1 { "" } else { "s" },
                    backup::KEEP
                ),
                None => println!("Scheduled backups are off."),
            }
            Ok(())
        }
        other => Err(unexpected_reply(&other)),
    }
}
