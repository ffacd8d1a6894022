//! Backups end to end: made while the real gateway serves and real workers hold their history,
//! checked and restored by the `hearth` binary, and served again by a fresh gateway.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Local;
use hearth_gateway::Gateway;
use hearth_gateway::backup::{self, Schedule};
use hearth_proto::control::{BackupSummary, ControlReply, ControlRequest};
use tokio_util::sync::CancellationToken;

use crate::support::{HEARTH, Household, eventually, test_config};

const T: Duration = Duration::from_secs(20);

fn hearth(data_dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new(HEARTH)
        .args(args)
        .env("HEARTH_DATA_DIR", data_dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("run hearth")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

async fn back_up(gateway: &Gateway, to: &Path, include_secrets: bool) -> BackupSummary {
    let request = ControlRequest::BackupCreate { dest_dir: to.display().to_string(), include_secrets };
    match gateway.control(request).await {
        Ok(ControlReply::BackedUp(summary)) => summary,
        other => panic!("{other:?}"),
    }
}

/// Removes everything inside `dir`, as a dead disk or a careless admin would.
fn wipe(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { std::fs::remove_dir_all(&path).unwrap() } else { std::fs::remove_file(&path).unwrap() }
    }
}

fn all_bytes(dir: &Path, out: &mut Vec<u8>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { all_bytes(&path, out) } else { out.extend(std::fs::read(&path).unwrap()) }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_made_while_serving_restores_every_member_with_their_memory() {
    let h = Household::new(2).await;
    h.say(0, "remember the word lighthouse");
    h.say(1, "my cat is called Miso");
    h.replies(0, 2, T).await;
    h.replies(1, 2, T).await;
    // A row is marked done just after its reply is sent; one caught before that would be
    // answered again after the restore (the crash-safety rule), which this test does not want.
    eventually(T, "every message done", async || {
        let pending: i64 =
            h.db().query_row("SELECT COUNT(*) FROM inbox WHERE state = 'pending'", [], |r| r.get(0)).unwrap();
        (pending == 0).then_some(())
    })
    .await;

    // The admin's household knowledge is part of the household.
    std::fs::write(h.dir.path().join("kb").join("wifi.md"), "# Wifi\n\nThe password is apple-tree-42.\n").unwrap();

    let out = tempfile::tempdir().unwrap();
    // The workers are still running (idle, history open) while the backup is made.
    let summary = back_up(&h.gateway, out.path(), true).await;
    let kb_copy = PathBuf::from(&summary.path).join("kb").join("wifi.md");
    assert!(std::fs::read_to_string(&kb_copy).unwrap().contains("apple-tree-42"), "kb/ is in the backup");
    assert!(!PathBuf::from(&summary.path).join("kb.sqlite").exists(), "the knowledge index is rebuilt, not backed up");
    assert_eq!(summary.members, 2);
    assert!(summary.includes_secrets);
    let path = PathBuf::from(&summary.path);
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("hearth-backup-") && name.len() == "hearth-backup-YYYYMMDD-HHMMSS".len(), "{name}");
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o700);
    let verified = hearth(h.dir.path(), &["backup", "verify", &summary.path]);
    assert!(verified.status.success(), "{}", text(&verified));
    assert!(text(&verified).contains("The backup is sound"), "{}", text(&verified));

    let Household { tg, llm, dir, gateway, members } = h;
    gateway.shutdown(Duration::from_secs(5)).await;
    drop(gateway);
    wipe(dir.path());

    let restored = hearth(dir.path(), &["backup", "restore", &summary.path]);
    assert!(restored.status.success(), "{}", text(&restored));
    let said = text(&restored);
    assert!(said.contains("Rosa, Leo") && said.contains("restored too"), "{said}");
    let mode = |p: &str| std::fs::metadata(dir.path().join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("secrets.json"), 0o600);
    assert_eq!(mode(&format!("members/{}", members[0].id)), 0o700);
    assert!(std::fs::read_to_string(dir.path().join("kb/wifi.md")).unwrap().contains("apple-tree-42"), "kb/ came back");

    let gateway = Gateway::start(test_config(dir.path(), &tg)).await.expect("the restored household starts");
    let h = Household { tg, llm, dir, gateway, members };
    let ControlReply::Members { members: listed } = h.gateway.control(ControlRequest::MemberList).await.unwrap() else {
        panic!()
    };
    assert_eq!(listed.iter().map(|m| (m.name.as_str(), m.paired)).collect::<Vec<_>>(), [("Rosa", true), ("Leo", true)]);
    let calls_before = h.llm.calls().len();
    h.say(0, "what was the word?");
    h.say(1, "what is my cat called?");
    assert_eq!(h.replies(0, 3, T).await[2].text, "You said: what was the word?");
    assert_eq!(h.replies(1, 3, T).await[2].text, "You said: what is my cat called?");
    let calls = h.llm.calls();
    let prompt =
        |asked: &str| calls[calls_before..].iter().find(|c| c.last_user_text().contains(asked)).unwrap().all_text();
    assert!(prompt("what was the word?").contains("lighthouse"), "Rosa's history came back");
    assert!(prompt("what is my cat called?").contains("Miso"), "Leo's history came back");
    assert!(!prompt("what was the word?").contains("Miso"), "and each kept their own");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_catches_a_changed_a_missing_and_an_added_file() {
    let h = Household::new(1).await;
    h.say(0, "hello");
    h.replies(0, 2, T).await;
    let out = tempfile::tempdir().unwrap();
    let summary = back_up(&h.gateway, out.path(), false).await;
    h.stop().await;
    let dir = PathBuf::from(&summary.path);
    let member = std::fs::read_dir(dir.join("members")).unwrap().next().unwrap().unwrap().path();
    let history = member.join("history.sqlite");
    assert!(history.is_file(), "the member's history is in the backup");

    // One byte changed inside the history database.
    let mut bytes = std::fs::read(&history).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0xff;
    std::fs::write(&history, &bytes).unwrap();
    let damaged = hearth(out.path(), &["backup", "verify", &summary.path]);
    assert_eq!(damaged.status.code(), Some(11), "{}", text(&damaged));
    assert!(text(&damaged).contains("history.sqlite: changed since the backup was made"), "{}", text(&damaged));

    bytes[at] ^= 0xff;
    std::fs::write(&history, &bytes).unwrap();
    assert!(hearth(out.path(), &["backup", "verify", &summary.path]).status.success());

    std::fs::remove_file(dir.join("gateway.sqlite")).unwrap();
    std::fs::write(dir.join("members/extra.txt"), "slipped in").unwrap();
    let json = hearth(out.path(), &["backup", "verify", "--json", &summary.path]);
    assert_eq!(json.status.code(), Some(11));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(
        report["problems"],
        serde_json::json!([
            "gateway.sqlite: missing",
            "members/extra.txt: not in the manifest (added after the backup was made)"
        ])
    );
    // A damaged backup is never restored.
    let target = tempfile::tempdir().unwrap();
    let refused = hearth(&target.path().join("data"), &["backup", "restore", &summary.path]);
    assert_eq!(refused.status.code(), Some(11), "{}", text(&refused));
    assert!(!target.path().join("data").exists(), "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_while_serving_and_never_deletes_a_household() {
    let h = Household::new(1).await;
    let out = tempfile::tempdir().unwrap();
    let summary = back_up(&h.gateway, out.path(), false).await;

    let refused = hearth(h.dir.path(), &["backup", "restore", "--force", &summary.path]);
    assert_eq!(refused.status.code(), Some(6), "{}", text(&refused));
    assert!(text(&refused).contains("stop it first"), "{}", text(&refused));
    // Root (these tests, and `sudo`) backs up the files directly even while a gateway serves
    // (the snapshot is consistent either way), so an unprivileged gateway is no obstacle.
    assert!(nix::unistd::geteuid().is_root(), "this test needs root; CI runs as root");
    let create = hearth(h.dir.path(), &["backup", "create", "--to", &out.path().display().to_string()]);
    assert!(create.status.success() && text(&create).contains("Backed up 1 member"), "{}", text(&create));
    let data = h.dir.path().to_owned();
    let Household { dir, gateway, .. } = h;
    gateway.shutdown(Duration::from_secs(5)).await;
    drop(gateway);

    // Stopped, but a household is there: only --force, and then it is moved aside.
    let not_empty = hearth(&data, &["backup", "restore", &summary.path]);
    assert_eq!(not_empty.status.code(), Some(6), "{}", text(&not_empty));
    assert!(text(&not_empty).contains("--force"), "{}", text(&not_empty));
    let forced = hearth(&data, &["backup", "restore", "--force", &summary.path]);
    assert!(forced.status.success(), "{}", text(&forced));
    let aside = std::fs::read_dir(data.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains(".before-restore-"))
        .expect("the old data directory was moved aside");
    assert!(aside.join("gateway.sqlite").is_file() && aside.join("secrets.json").is_file());
    assert!(text(&forced).contains(&aside.display().to_string()), "{}", text(&forced));
    std::fs::remove_dir_all(&aside).unwrap();
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_stay_out_unless_asked_and_the_restore_says_what_to_paste_again() {
    let h = Household::new(2).await;
    h.say(0, "hello");
    h.replies(0, 2, T).await;
    let out = tempfile::tempdir().unwrap();
    let plain = back_up(&h.gateway, out.path(), false).await;
    assert!(!plain.includes_secrets);
    let mut everything = Vec::new();
    all_bytes(Path::new(&plain.path), &mut everything);
    for secret in [h.members[0].bot.token.as_str(), h.members[1].bot.token.as_str(), "sk-test-key-never-logged"] {
        assert!(!contains(&everything, secret), "a secret is in the backup");
    }
    assert!(!Path::new(&plain.path).join("secrets.json").exists());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(Path::new(&plain.path).join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["includes_secrets"], false);
    assert_eq!(manifest["format"], 1);
    assert!(manifest["gateway_schema_version"].as_i64().unwrap() > 0);
    assert!(manifest["files"].as_array().unwrap().iter().all(|f| f["sha256"].as_str().unwrap().len() == 64));

    let with = back_up(&h.gateway, out.path(), true).await;
    assert!(with.includes_secrets && Path::new(&with.path).join("secrets.json").is_file());
    assert_ne!(with.path, plain.path, "two backups in the same second get their own folders");
    let (tokens, names) = (
        h.members.iter().map(|m| m.bot.token.clone()).collect::<Vec<_>>(),
        h.members.iter().map(|m| m.name.clone()).collect::<Vec<_>>(),
    );
    h.stop().await;

    let data = tempfile::tempdir().unwrap();
    let restored = hearth(&data.path().join("new"), &["backup", "restore", &plain.path]);
    assert!(restored.status.success(), "{}", text(&restored));
    let said = text(&restored);
    assert!(said.contains("The backup holds no secrets"), "{said}");
    assert!(said.contains("`hearth provider set`"), "{said}");
    for name in &names {
        assert!(said.contains(&format!("`hearth member token {name}`")), "{said}");
    }
    assert!(!data.path().join("new/secrets.json").exists());
    // Without a gateway, `hearth backup create` reads the data directory itself, into
    // `<data-dir>-backups` by default.
    let offline = hearth(&data.path().join("new"), &["backup", "create", "--json"]);
    assert!(offline.status.success(), "{}", text(&offline));
    let made: BackupSummary = serde_json::from_slice(&offline.stdout).unwrap();
    assert_eq!(made.members, 2);
    assert!(made.path.starts_with(&data.path().join("new-backups").display().to_string()), "{}", made.path);
    let mut again = Vec::new();
    all_bytes(Path::new(&made.path), &mut again);
    assert!(!tokens.iter().any(|t| contains(&again, t)));
}

/// The schedule's timer, with a period of a quarter second: a backup each period, the last
/// seven kept, nothing else in the folder touched, and a folder that is gone (a disk unplugged)
/// only logged. (A paused clock would need tokio's test-util feature, and with it a rebuild of
/// every crate that uses tokio, for one test.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_keeps_the_last_seven_and_survives_a_missing_disk() {
    let data = tempfile::tempdir().unwrap();
    hearth_gateway::store::Store::open(&data.path().join("gateway.sqlite")).unwrap();
    std::fs::create_dir_all(data.path().join("members/rosa-1")).unwrap();
    std::fs::write(data.path().join("members/rosa-1/notes.txt"), "tulips in autumn").unwrap();
    // A worker's database with a full-text index (as `memory.sqlite` has) copies and checks too.
    let memory = rusqlite::Connection::open(data.path().join("members/rosa-1/memory.sqlite")).unwrap();
    memory.pragma_update(None, "journal_mode", "WAL").unwrap();
    memory
        .execute_batch("CREATE VIRTUAL TABLE facts USING fts5(text); INSERT INTO facts VALUES ('likes tulips');")
        .unwrap();
    let disk = tempfile::tempdir().unwrap();
    let folder = disk.path().join("hearth");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("keep-me.txt"), "not a backup").unwrap();
    std::fs::create_dir(folder.join("hearth-photos")).unwrap();

    let every = Duration::from_millis(250);
    let (tx, rx) = tokio::sync::watch::channel(Some(Schedule { dir: folder.clone(), every }));
    let cancel = CancellationToken::new();
    // Every backup made, in order, and every failure.
    let made = Arc::new(Mutex::new(Vec::<String>::new()));
    let failed = Arc::new(AtomicUsize::new(0));
    let (data_dir, m, f) = (data.path().to_owned(), made.clone(), failed.clone());
    let task = tokio::spawn(backup::run_schedule(rx, cancel.clone(), Local::now, move |dir, now| {
        let (data_dir, m, f) = (data_dir.clone(), m.clone(), f.clone());
        async move {
            let done = tokio::task::spawn_blocking(move || {
                backup::create(&data_dir, &dir, false, now, &hearth_gateway::tree::ReaderExe::Path(HEARTH.into()))
            })
            .await
            .unwrap();
            match &done {
                Ok(s) => m.lock().unwrap().push(Path::new(&s.path).file_name().unwrap().to_string_lossy().into_owned()),
                Err(_) => _ = f.fetch_add(1, Ordering::SeqCst),
            }
            done.map_err(|e| e.to_string())
        }
    }));
    let backups = || {
        let mut names: Vec<String> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("hearth-backup-"))
            .collect();
        names.sort();
        names
    };
    let newest_seven = || {
        let made = made.lock().unwrap();
        let mut last: Vec<String> = made[made.len().saturating_sub(7)..].to_vec();
        last.sort();
        last
    };

    eventually(T, "ten scheduled backups", async || (made.lock().unwrap().len() >= 10).then_some(())).await;
    // The disk goes away: runs fail, the schedule keeps going, and backs up again once it is back.
    let moved = disk.path().join("unplugged");
    std::fs::rename(&folder, &moved).unwrap();
    let before = made.lock().unwrap().len();
    eventually(T, "two failed runs", async || (failed.load(Ordering::SeqCst) >= 2).then_some(())).await;
    assert!(!task.is_finished());
    std::fs::rename(&moved, &folder).unwrap();
    eventually(T, "a backup after the disk is back", async || (made.lock().unwrap().len() > before + 1).then_some(()))
        .await;

    // Turned off: the run in progress finishes (and prunes), then no more.
    tx.send_replace(None);
    eventually(T, "the newest seven kept", async || (backups() == newest_seven()).then_some(())).await;
    let count = made.lock().unwrap().len();
    // The one wait for nothing left in these suites: the schedule's timer is tokio's own, which
    // only tokio's paused clock could move (see above), so "no backups while off" is four periods
    // of real time in which one would have been made.
    tokio::time::sleep(every * 4).await;
    assert_eq!(made.lock().unwrap().len(), count, "no backups while off");
    assert_eq!(backups().len(), 7);
    assert!(folder.join("keep-me.txt").is_file() && folder.join("hearth-photos").is_dir(), "nothing else is touched");
    assert!(backup::verify(&folder.join(backups().last().unwrap())).unwrap().problems.is_empty());
    cancel.cancel();
    task.await.unwrap();
    drop(memory);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_is_a_household_setting() {
    let h = Household::new(0).await;
    let out = tempfile::tempdir().unwrap();
    let folder = out.path().join("hearth");
    let set = ControlRequest::BackupSchedule { dest_dir: Some(folder.display().to_string()), every_hours: 24 };
    assert_eq!(h.gateway.control(set).await.unwrap(), ControlReply::Done);
    assert!(folder.is_dir(), "the folder is created when its parent exists");
    let setting = |key: &str| -> Option<String> {
        h.db().query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0)).ok()
    };
    assert_eq!(setting("backup.dir").as_deref(), Some(folder.to_str().unwrap()));
    assert_eq!(setting("backup.every_hours").as_deref(), Some("24"));

    let gone = ControlRequest::BackupSchedule { dest_dir: Some("/nonexistent-disk/hearth".into()), every_hours: 24 };
    let err = h.gateway.control(gone).await.unwrap_err();
    assert!(err.message.contains("is the disk connected?"), "{}", err.message);
    let zero = ControlRequest::BackupSchedule { dest_dir: Some(folder.display().to_string()), every_hours: 0 };
    assert!(h.gateway.control(zero).await.unwrap_err().message.contains("1 to 744"));

    let off = ControlRequest::BackupSchedule { dest_dir: None, every_hours: 0 };
    assert_eq!(h.gateway.control(off).await.unwrap(), ControlReply::Done);
    assert_eq!(setting("backup.dir"), None);
    h.stop().await;
}
