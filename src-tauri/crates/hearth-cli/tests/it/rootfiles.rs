//! Root does no file work by path (issue #13, item 2): the races an attacker runs against root
//! while it backs up, restores and exports, tried in loops. The attacker is the admin's uid (the
//! gateway's user, who owns the data and backup folders) or a member's uid (who owns their
//! folder), acting from a thread of this test whose credentials are theirs. Each loop watches a
//! root-owned canary — a 0600 file and a 0700 folder — that must keep its mode, owner and
//! content, with nothing created inside the folder. Needs root (CI runs as root).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hearth_proto::frame;
use hearth_proto::supervisor::{SUPERVISOR_PROTOCOL_VERSION, SupervisorError, SupervisorReply, SupervisorRequest};

use crate::supervisor::{Machine, free_high_id, terminate};

/// Tries per race: the confirmed attack won in under a second, on the first try.
const TRIES: usize = 50;
/// Each loop stops by itself well within the test timeouts.
const LOOP_LIMIT: Duration = Duration::from_secs(60);

/// Whether a race loop goes on after `tries`: at least [`TRIES`] tries, and on until every
/// attacker has swapped at least once — a loaded machine may schedule an attacker's thread late,
/// and a race that was never run proves nothing — within [`LOOP_LIMIT`].
fn race_goes_on(tries: usize, started: Instant, swaps: &[&AtomicUsize]) -> bool {
    let raced = swaps.iter().all(|s| s.load(Ordering::Relaxed) > 0);
    (tries < TRIES || !raced) && started.elapsed() < LOOP_LIMIT
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
}

/// Runs `f` on a thread of its own whose effective uid and gid (and file-system ids) are
/// `uid`/`gid`, with no supplementary groups. A raw `setresuid` system call changes the calling
/// thread only (glibc's wrapper would change every thread of the process), so the rest of the
/// test stays root.
fn thread_as<T: Send + 'static>(uid: u32, f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
    std::thread::spawn(move || {
        let keep = -1 as libc::c_long;
        // SAFETY: credential system calls on the calling thread only.
        unsafe {
            assert_eq!(libc::syscall(libc::SYS_setgroups, 0 as libc::c_long, std::ptr::null::<libc::gid_t>()), 0);
            assert_eq!(libc::syscall(libc::SYS_setresgid, keep, uid as libc::c_long, keep), 0);
            assert_eq!(libc::syscall(libc::SYS_setresuid, keep, uid as libc::c_long, keep), 0);
        }
        f()
    })
}

/// A root-owned 0600 file and 0700 folder, somewhere an attacker would like root to touch.
struct Canary {
    dir: PathBuf,
    file: PathBuf,
    content: String,
}

impl Canary {
    fn new(at: &Path) -> Canary {
        let dir = at.join("canary");
        std::fs::create_dir(&dir).unwrap();
        chmod(&dir, 0o700);
        let file = dir.join("secret");
        let content = format!("CANARY-{:016x}", rand::random::<u64>());
        std::fs::write(&file, &content).unwrap();
        chmod(&file, 0o600);
        Canary { dir, file, content }
    }

    /// Mode, owner and content as made, and nothing new in the folder.
    fn assert_intact(&self, when: &str) {
        let meta = std::fs::symlink_metadata(&self.file).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777, meta.nlink() >= 1),
            (0, 0, 0o600, true),
            "{when}: the canary file was chowned or chmodded"
        );
        assert_eq!(std::fs::read_to_string(&self.file).unwrap(), self.content, "{when}: the canary file changed");
        let meta = std::fs::symlink_metadata(&self.dir).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o700), "{when}: the canary folder was chowned or chmodded");
        let names: Vec<String> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["secret"], "{when}: something was created in the canary folder");
    }
}

/// Whether any file below `dir` (links not followed) holds `needle`.
fn holds(dir: &Path, needle: &str) -> Option<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return None };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if meta.is_dir() {
            if let Some(found) = holds(&path, needle) {
                return Some(found);
            }
        } else if meta.is_file()
            && std::fs::read(&path).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
        {
            return Some(path);
        }
    }
    None
}

/// A household on disk as an unprivileged gateway keeps it: the data folder is the admin's
/// (0711, as the Linux package makes it), `members/` root's, the member's folder the member's
/// own account's, with a database in WAL mode, a note and a subfolder.
struct Scene {
    m: Machine,
    member_uid: u32,
    member_dir: PathBuf,
    backups: PathBuf,
    canary: Canary,
}

const MEMBER: &str = "rosa-1";

impl Scene {
    fn new() -> Scene {
        let m = Machine::new();
        let member_uid = loop {
            let id = free_high_id();
            if id != m.uid {
                break id;
            }
        };
        let data = &m.data;
        chmod(data, 0o711);
        hearth_gateway::store::Store::open(&data.join("gateway.sqlite")).unwrap();
        let kb = data.join("kb");
        std::fs::create_dir(&kb).unwrap();
        std::fs::write(kb.join("wifi.md"), "# Wifi\n\nThe password is apple-tree-42.\n").unwrap();
        let members = data.join("members");
        std::fs::create_dir(&members).unwrap();
        chmod(&members, 0o711);
        let member_dir = members.join(MEMBER);
        std::fs::create_dir_all(member_dir.join("files")).unwrap();
        std::fs::write(member_dir.join("notes.txt"), "tulips in autumn").unwrap();
        std::fs::write(member_dir.join("files/list.txt"), "milk, bread").unwrap();
        let history = rusqlite::Connection::open(member_dir.join("history.sqlite")).unwrap();
        history.pragma_update(None, "journal_mode", "WAL").unwrap();
        history.execute_batch("CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('lighthouse');").unwrap();
        drop(history);
        for p in [kb.join("wifi.md"), kb.clone(), data.join("gateway.sqlite")] {
            chown(&p, m.uid);
        }
        for p in ["files/list.txt", "files", "notes.txt", "history.sqlite", ""] {
            chown(&member_dir.join(p), member_uid);
        }
        chmod(&member_dir, 0o700);
        // The admin's backup folder sits in a folder of theirs, so they can swap it too.
        let home = m.root.path().join("home");
        std::fs::create_dir(&home).unwrap();
        chown(&home, m.uid);
        chmod(&home, 0o755);
        let backups = home.join("backups");
        std::fs::create_dir(&backups).unwrap();
        chown(&backups, m.uid);
        chmod(&backups, 0o700);
        let canary = Canary::new(m.root.path());
        Scene { m, member_uid, member_dir, backups, canary }
    }

    /// The admin renames each new `*.partial` folder root creates in `dir` away, and puts in its
    /// place either a folder of their own holding a link to the canary, or a link to the canary
    /// folder itself.
    fn swap_partials(
        &self,
        dir: &Path,
        stop: Arc<AtomicBool>,
        armed: Arc<AtomicBool>,
    ) -> (std::thread::JoinHandle<()>, Arc<AtomicUsize>) {
        let (dir, canary) = (dir.to_owned(), self.canary.clone_paths());
        let swaps = Arc::new(AtomicUsize::new(0));
        let count = swaps.clone();
        let thread = thread_as(self.m.uid, move || {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                if !armed.load(Ordering::Relaxed) {
                    std::thread::yield_now();
                    continue;
                }
                let Ok(entries) = std::fs::read_dir(&dir) else { continue };
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if !name.ends_with(".partial") || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                        continue;
                    }
                    let path = entry.path();
                    // Root's folder, or one this attacker made: only root's is worth stealing.
                    if std::fs::symlink_metadata(&path).map(|m| m.uid()).ok() != Some(0) {
                        continue;
                    }
                    n += 1;
                    if std::fs::rename(&path, dir.join(format!("stolen-{n}"))).is_err() {
                        continue;
                    }
                    if n.is_multiple_of(2) {
                        let _ = std::os::unix::fs::symlink(&canary.0, &path);
                    } else if std::fs::create_dir(&path).is_ok() {
                        let _ = std::os::unix::fs::symlink(&canary.1, path.join("zz-link"));
                        let _ = std::os::unix::fs::symlink(&canary.0, path.join("zz-dir"));
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::yield_now();
            }
        });
        (thread, swaps)
    }

    /// The admin swaps the backup folder itself, and the household's `kb/`, for links to the
    /// canary folder and back, again and again.
    fn swap_admin_folders(
        &self,
        stop: Arc<AtomicBool>,
        armed: Arc<AtomicBool>,
    ) -> (std::thread::JoinHandle<()>, Arc<AtomicUsize>) {
        let (folders, canary) = (vec![self.backups.clone(), self.m.data.join("kb")], self.canary.dir.clone());
        let swaps = Arc::new(AtomicUsize::new(0));
        let count = swaps.clone();
        let thread = thread_as(self.m.uid, move || {
            let real = |p: &Path| p.with_extension("real");
            while !stop.load(Ordering::Relaxed) {
                if !armed.load(Ordering::Relaxed) {
                    std::thread::yield_now();
                    continue;
                }
                for folder in &folders {
                    if std::fs::rename(folder, real(folder)).is_ok() {
                        let _ = std::os::unix::fs::symlink(&canary, folder);
                        count.fetch_add(1, Ordering::Relaxed);
                        std::thread::yield_now();
                        let _ = std::fs::remove_file(folder);
                        let _ = std::fs::rename(real(folder), folder);
                    }
                }
                std::thread::yield_now();
            }
        });
        (thread, swaps)
    }

    /// The member swaps their `files/` folder for a link to the canary folder and back, again
    /// and again.
    fn swap_member_folder(&self, stop: Arc<AtomicBool>) -> (std::thread::JoinHandle<()>, Arc<AtomicUsize>) {
        let (dir, canary) = (self.member_dir.clone(), self.canary.dir.clone());
        let swaps = Arc::new(AtomicUsize::new(0));
        let count = swaps.clone();
        let thread = thread_as(self.member_uid, move || {
            let (files, real) = (dir.join("files"), dir.join("files.real"));
            while !stop.load(Ordering::Relaxed) {
                if std::fs::rename(&files, &real).is_ok() {
                    let _ = std::os::unix::fs::symlink(&canary, &files);
                    count.fetch_add(1, Ordering::Relaxed);
                    std::thread::yield_now();
                    let _ = std::fs::remove_file(&files);
                    let _ = std::fs::rename(&real, &files);
                }
                std::thread::yield_now();
            }
            let _ = std::fs::remove_file(&files);
            let _ = std::fs::rename(&real, &files);
        });
        (thread, swaps)
    }

    /// What the member could plant on a Mac (or where `fs.protected_hardlinks` is off): their
    /// database's shared-memory file as a hard link to the canary. A root process that opens the
    /// database opens that file read-write, truncates it and hands it to the database's owner.
    /// (Made by root here: Linux's protection would stop the member.)
    fn plant_shm_link(&self) {
        // A reader opening the database as the member may have left a real one.
        self.remove_shm_link();
        std::fs::hard_link(&self.canary.file, self.member_dir.join("history.sqlite-shm")).unwrap();
    }

    fn remove_shm_link(&self) {
        let _ = std::fs::remove_file(self.member_dir.join("history.sqlite-shm"));
    }
}

impl Canary {
    fn clone_paths(&self) -> (PathBuf, PathBuf) {
        (self.dir.clone(), self.file.clone())
    }
}

/// One request to the supervisor on a connection made as `uid` (the supervisor admits the
/// kernel-reported uid of the connecting process, which is the thread's here).
async fn supervisor_request(
    socket: &Path,
    uid: u32,
    request: SupervisorRequest,
) -> Result<SupervisorReply, SupervisorError> {
    let path = socket.to_owned();
    let std_stream = thread_as(uid, move || std::os::unix::net::UnixStream::connect(&path).unwrap()).join().unwrap();
    std_stream.set_nonblocking(true).unwrap();
    let mut stream = tokio::net::UnixStream::from_std(std_stream).unwrap();
    frame::write_frame(&mut stream, &SupervisorRequest::Hello { version: SUPERVISOR_PROTOCOL_VERSION }).await.unwrap();
    let hello: Result<SupervisorReply, SupervisorError> = frame::read_frame(&mut stream).await.unwrap();
    assert!(matches!(hello, Ok(SupervisorReply::Hello { .. })), "{hello:?}");
    frame::write_frame(&mut stream, &request).await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), frame::read_frame(&mut stream)).await.expect("an answer").unwrap()
}

fn hearth_as_root(m: &Machine, data: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(&m.hearth)
        .args(args)
        .env("HEARTH_DATA_DIR", data)
        .env_remove("RUST_LOG")
        .output()
        .expect("run hearth")
}

/// The confirmed attack: the admin asks the supervisor for a backup into their own folder and
/// swaps root's partial backup folder while root fills it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_cannot_turn_a_supervisor_backup_against_root() {
    let s = Scene::new();
    let supervisor = s.m.start_supervisor().await;
    let stop = Arc::new(AtomicBool::new(false));
    let armed = Arc::new(AtomicBool::new(true));
    let (attacker, swaps) = s.swap_partials(&s.backups, stop.clone(), armed.clone());
    let (folders, folder_swaps) = s.swap_admin_folders(stop.clone(), armed.clone());
    let (member, member_swaps) = s.swap_member_folder(stop.clone());
    let started = Instant::now();
    let mut made = 0;
    let mut tries = 0;
    while race_goes_on(tries, started, &[&swaps, &folder_swaps, &member_swaps]) {
        let i = tries;
        tries += 1;
        let request = SupervisorRequest::Backup { data_dir: s.m.data.clone(), dest_dir: s.backups.clone(), keep: 1000 };
        if let Ok(SupervisorReply::BackedUp(_)) = supervisor_request(&s.m.socket, s.m.uid, request).await {
            made += 1;
        }
        s.canary.assert_intact(&format!("supervisor backup {i}"));
    }
    assert!(tries >= TRIES, "only {tries} tries in {LOOP_LIMIT:?}");
    stop.store(true, Ordering::Relaxed);
    attacker.join().unwrap();
    folders.join().unwrap();
    member.join().unwrap();
    assert!(swaps.load(Ordering::Relaxed) > 0, "the attacker never got to swap a folder: the race was not run");
    assert!(folder_swaps.load(Ordering::Relaxed) > 0 && member_swaps.load(Ordering::Relaxed) > 0, "no swaps");
    assert!(holds(&s.backups, &s.canary.content).is_none(), "the canary's content is in a backup");
    // The supervisor is unaffected: it still answers, and without the attacker backs up.
    let request = SupervisorRequest::Backup { data_dir: s.m.data.clone(), dest_dir: s.backups.clone(), keep: 1000 };
    let reply = supervisor_request(&s.m.socket, s.m.uid, request).await;
    let Ok(SupervisorReply::BackedUp(summary)) = reply else { panic!("{reply:?}\n{}", s.m.read_log("supervisor")) };
    assert_eq!(summary.members, 0, "no member row in this household's database");
    assert!(Path::new(&summary.path).join("members").join(MEMBER).join("history.sqlite").is_file());
    eprintln!("{made} of {TRIES} backups completed under attack");
    terminate(supervisor, "hearth supervisor", || s.m.read_log("supervisor")).await;
}

/// `sudo hearth backup create --to <a folder the admin owns>`, with the admin swapping the
/// partial folder and the member swapping a subfolder for a link and planting a hard link as
/// their database's shared-memory file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sudo_backup_create_cannot_be_raced_by_the_admin_or_a_member() {
    let s = Scene::new();
    let stop = Arc::new(AtomicBool::new(false));
    // The admin attacks every other try, so the tries between run the member's race to the end.
    let armed = Arc::new(AtomicBool::new(true));
    let (admin, admin_swaps) = s.swap_partials(&s.backups, stop.clone(), armed.clone());
    let (folders, folder_swaps) = s.swap_admin_folders(stop.clone(), armed.clone());
    let (member, member_swaps) = s.swap_member_folder(stop.clone());
    let started = Instant::now();
    let mut made = 0;
    let mut tries = 0;
    while race_goes_on(tries, started, &[&admin_swaps, &folder_swaps, &member_swaps]) {
        let i = tries;
        tries += 1;
        // Every other try with the hard link as the database's shared memory and the admin's
        // attacks; the tries between with the member's race alone.
        if i.is_multiple_of(2) {
            s.plant_shm_link()
        } else {
            s.remove_shm_link()
        }
        armed.store(i.is_multiple_of(2), Ordering::Relaxed);
        let out = hearth_as_root(&s.m, &s.m.data, &["backup", "create", "--to", s.backups.to_str().unwrap()]);
        s.canary.assert_intact(&format!("backup create {i}: {}", String::from_utf8_lossy(&out.stderr)));
        made += usize::from(out.status.success());
    }
    assert!(tries >= TRIES, "only {tries} tries in {LOOP_LIMIT:?}");
    stop.store(true, Ordering::Relaxed);
    admin.join().unwrap();
    folders.join().unwrap();
    member.join().unwrap();
    assert!(admin_swaps.load(Ordering::Relaxed) > 0, "the admin never swapped a folder");
    assert!(folder_swaps.load(Ordering::Relaxed) > 0, "the admin never swapped the backup folder or kb/");
    eprintln!("{made} of {TRIES} backups completed under attack");
    assert!(member_swaps.load(Ordering::Relaxed) > 0, "the member never swapped a folder");
    assert!(holds(&s.backups, &s.canary.content).is_none(), "the canary's content is in a backup");
    s.remove_shm_link();
    // Without attackers the same command backs everything up.
    let out = hearth_as_root(&s.m, &s.m.data, &["backup", "create", "--to", s.backups.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let made: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let path = PathBuf::from(made["path"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(path.join("members").join(MEMBER).join("files/list.txt")).unwrap(),
        "milk, bread"
    );
    let verified = hearth_as_root(&s.m, &s.m.data, &["backup", "verify", path.to_str().unwrap()]);
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stdout));
}

/// `sudo hearth backup restore` into a data folder the admin owns (the Linux package's
/// `/var/lib/hearth`), with the admin swapping what root creates there for links to the canary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_as_root_cannot_be_raced_by_the_owner_of_the_data_folder() {
    let s = Scene::new();
    let out = hearth_as_root(&s.m, &s.m.data, &["backup", "create", "--to", s.backups.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let made: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let backup = made["path"].as_str().unwrap().to_owned();
    let targets = s.m.root.path().join("targets");
    std::fs::create_dir(&targets).unwrap();
    // The attacker may list the targets (as anyone may list /var/lib).
    chmod(&targets, 0o755);

    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicUsize::new(0));
    let (count, flag, canary, at) = (swaps.clone(), stop.clone(), s.canary.dir.clone(), targets.clone());
    let attacker = thread_as(s.m.uid, move || {
        let mut n = 0usize;
        while !flag.load(Ordering::Relaxed) {
            let Ok(entries) = std::fs::read_dir(&at) else { continue };
            for target in entries.flatten().map(|e| e.path()) {
                for rel in ["members", "kb", "members/rosa-1", "members/rosa-1/files"] {
                    let path = target.join(rel);
                    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                        n += 1;
                        if std::fs::rename(&path, target.join(format!("moved-{n}"))).is_ok()
                            && std::os::unix::fs::symlink(&canary, &path).is_ok()
                        {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            std::thread::yield_now();
        }
    });
    let started = Instant::now();
    let mut tries = 0;
    while race_goes_on(tries, started, &[&swaps]) {
        let i = tries;
        tries += 1;
        let target = targets.join(format!("data-{i}"));
        std::fs::create_dir(&target).unwrap();
        chown(&target, s.m.uid);
        chmod(&target, 0o711);
        let out = hearth_as_root(&s.m, &target, &["backup", "restore", &backup]);
        s.canary.assert_intact(&format!("restore {i}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    assert!(tries >= TRIES, "only {tries} tries in {LOOP_LIMIT:?}");
    stop.store(true, Ordering::Relaxed);
    attacker.join().unwrap();
    assert!(swaps.load(Ordering::Relaxed) > 0, "the attacker never swapped a folder");

    // Without the attacker the same restore puts everything back, handed to the folder's owner.
    let target = targets.join("calm");
    std::fs::create_dir(&target).unwrap();
    chown(&target, s.m.uid);
    let out = hearth_as_root(&s.m, &target, &["backup", "restore", &backup]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let note = target.join("members").join(MEMBER).join("notes.txt");
    assert_eq!(std::fs::read_to_string(&note).unwrap(), "tulips in autumn");
    for p in [target.join("gateway.sqlite"), target.join("kb/wifi.md"), note] {
        assert_eq!(std::fs::metadata(&p).unwrap().uid(), s.m.uid, "{} is the owner's", p.display());
    }
}

/// Restore reads only backups made by root or by the household's own user, and a backup with a
/// hard link to a file outside it (plantable on a Mac, or with `fs.protected_hardlinks` off)
/// gives that file to no one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_a_foreign_backup_and_a_planted_one_gives_nothing_away() {
    let s = Scene::new();
    let out = hearth_as_root(&s.m, &s.m.data, &["backup", "create", "--to", s.backups.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let made: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let backup = PathBuf::from(made["path"].as_str().unwrap());

    // Another user's folder: refused before anything is read from it.
    let foreign = s.m.root.path().join("foreign-backup");
    let copy = std::process::Command::new("cp").args(["-a"]).arg(&backup).arg(&foreign).status().unwrap();
    assert!(copy.success());
    let stranger = loop {
        let id = free_high_id();
        if id != s.m.uid && id != s.member_uid {
            break id;
        }
    };
    chown(&foreign, stranger);
    let target = s.m.root.path().join("restored-foreign");
    let out = hearth_as_root(&s.m, &target, &["backup", "restore", foreign.to_str().unwrap()]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains(&format!("uid {stranger}")), "{said}");
    assert!(!target.exists(), "nothing was written");

    // The admin's own backup folder (made at level "process", say) with the member's note
    // replaced by a hard link to the canary, and the manifest rewritten to match it.
    let planted = s.m.root.path().join("planted-backup");
    let copy = std::process::Command::new("cp").args(["-a"]).arg(&backup).arg(&planted).status().unwrap();
    assert!(copy.success());
    let manifest_path = planted.join("manifest.json");
    let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let sha = std::process::Command::new("sha256sum").arg(&s.canary.file).output().unwrap();
    let sha = String::from_utf8_lossy(&sha.stdout).split_whitespace().next().unwrap().to_owned();
    for f in manifest["files"].as_array_mut().unwrap() {
        if f["path"] == format!("members/{MEMBER}/notes.txt") {
            f["sha256"] = sha.clone().into();
            f["bytes"] = s.canary.content.len().into();
            f["mode"] = "0644".into();
        }
    }
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let walk = std::process::Command::new("chown").args(["-hR", &format!("{0}:{0}", s.m.uid)]).arg(&planted).status();
    assert!(walk.unwrap().success());
    let note = planted.join("members").join(MEMBER).join("notes.txt");
    std::fs::remove_file(&note).unwrap();
    std::fs::hard_link(&s.canary.file, &note).unwrap();
    s.canary.assert_intact("planting");
    // Restored into the household user's own (empty) data folder, as the package's would be.
    let target = s.m.root.path().join("restored-planted");
    std::fs::create_dir(&target).unwrap();
    chown(&target, s.m.uid);
    chmod(&target, 0o711);
    let out = hearth_as_root(&s.m, &target, &["backup", "restore", planted.to_str().unwrap()]);
    s.canary.assert_intact("restoring a planted backup");
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("notes.txt: a hard link"), "{said}");
    assert!(holds(&target, &s.canary.content).is_none(), "the canary's content was restored");
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0, "nothing was restored");
}

/// An export of the member's folder as root (a gateway running as root, at level "account"):
/// the member swaps a subfolder for a link to the canary folder and plants the hard link, and
/// someone who can write the destination swaps the export's folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_as_root_carries_nothing_from_outside_the_members_folder() {
    let s = Scene::new();
    let exports = s.m.root.path().join("exports");
    std::fs::create_dir(&exports).unwrap();
    chown(&exports, s.m.uid);
    chmod(&exports, 0o700);
    let stop = Arc::new(AtomicBool::new(false));
    let (member, member_swaps) = s.swap_member_folder(stop.clone());
    // The admin moves each new export folder away and links the canary folder in its place (every
    // other try, so the tries between run the member's race to the end).
    let swaps = Arc::new(AtomicUsize::new(0));
    let armed = Arc::new(AtomicBool::new(true));
    let (count, flag, canary, at) = (swaps.clone(), stop.clone(), s.canary.dir.clone(), exports.clone());
    let on = armed.clone();
    let admin = thread_as(s.m.uid, move || {
        let mut n = 0usize;
        while !flag.load(Ordering::Relaxed) {
            if !on.load(Ordering::Relaxed) {
                std::thread::yield_now();
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&at) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                if entry.file_name().to_string_lossy().starts_with("Hearth export")
                    && std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir() && m.uid() == 0)
                {
                    n += 1;
                    if std::fs::rename(&path, at.join(format!("stolen-{n}"))).is_ok()
                        && std::os::unix::fs::symlink(&canary, &path).is_ok()
                    {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            std::thread::yield_now();
        }
    });
    let started = Instant::now();
    let now = chrono::Local::now();
    let mut made = 0;
    let mut tries = 0;
    while race_goes_on(tries, started, &[&member_swaps, &swaps]) {
        let i = tries;
        tries += 1;
        if i.is_multiple_of(2) {
            s.plant_shm_link()
        } else {
            s.remove_shm_link()
        }
        armed.store(i.is_multiple_of(2), Ordering::Relaxed);
        let (data, dest) = (s.m.data.clone(), exports.clone());
        // The member's folder is read by `hearth tree-reader` running as the member.
        let exe = hearth_gateway::tree::ReaderExe::Path(s.m.hearth.clone());
        let done = tokio::task::spawn_blocking(move || {
            hearth_gateway::export::export_member(&data, MEMBER, &dest, &format!("Rosa {i}"), &now, &exe)
        })
        .await
        .unwrap();
        s.canary.assert_intact(&format!("export {i}: {done:?}"));
        made += usize::from(done.is_ok());
    }
    assert!(tries >= TRIES, "only {tries} tries in {LOOP_LIMIT:?}");
    stop.store(true, Ordering::Relaxed);
    member.join().unwrap();
    admin.join().unwrap();
    assert!(member_swaps.load(Ordering::Relaxed) > 0 && swaps.load(Ordering::Relaxed) > 0, "no swaps happened");
    assert!(holds(&exports, &s.canary.content).is_none(), "the canary's content is in an export");
    eprintln!("{made} of {TRIES} exports completed under attack");
    // Without the attacks the member's files are all there.
    s.remove_shm_link();
    let exe = hearth_gateway::tree::ReaderExe::Path(s.m.hearth.clone());
    let (data, dest) = (s.m.data.clone(), exports.clone());
    let done = tokio::task::spawn_blocking(move || {
        hearth_gateway::export::export_member(&data, MEMBER, &dest, "Rosa", &chrono::Local::now(), &exe)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(std::fs::read_to_string(done.path.join("files/list.txt")).unwrap(), "milk, bread");
    assert!(done.path.join("history.sqlite").is_file());
}

/// A removed member's folder is handed to the gateway's user (`archive_member_dir_at`, which the
/// supervisor runs as root), while the member swaps a subfolder for a link to the canary folder
/// up to the last moment and the admin swaps what appears in `archive/`. The member also left
/// a hard link to the canary file (plantable on a Mac). Only the member's own files change hands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archiving_a_removed_members_folder_hands_over_only_their_files() {
    let s = Scene::new();
    let data = hearth_isolation::fsat::open_dir_path(&s.m.data, false).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (member, member_swaps) = s.swap_member_folder(stop.clone());
    let swaps = Arc::new(AtomicUsize::new(0));
    let (count, flag, canary, archive) = (swaps.clone(), stop.clone(), s.canary.dir.clone(), s.m.data.join("archive"));
    let admin = thread_as(s.m.uid, move || {
        let mut n = 0usize;
        while !flag.load(Ordering::Relaxed) {
            if let Ok(entries) = std::fs::read_dir(&archive) {
                for entry in entries.flatten() {
                    let path = entry.path();
                    if entry.file_name().to_string_lossy().starts_with(MEMBER)
                        && entry.file_type().is_ok_and(|t| t.is_dir())
                    {
                        n += 1;
                        if std::fs::rename(&path, archive.join(format!("moved-{n}"))).is_ok()
                            && std::os::unix::fs::symlink(&canary, &path).is_ok()
                        {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            std::thread::yield_now();
        }
    });
    let started = Instant::now();
    let mut tries = 0;
    while race_goes_on(tries, started, &[&member_swaps]) {
        let i = tries;
        tries += 1;
        // The member's folder as their worker would have left it, recreated for each try.
        if !s.member_dir.exists() {
            std::fs::create_dir_all(s.member_dir.join("files")).unwrap();
            std::fs::write(s.member_dir.join("files/list.txt"), "milk, bread").unwrap();
            for p in ["files/list.txt", "files", ""] {
                chown(&s.member_dir.join(p), s.member_uid);
            }
            chmod(&s.member_dir, 0o700);
        }
        let pinned = s.member_dir.join("pinned");
        if !pinned.exists() {
            std::fs::hard_link(&s.canary.file, &pinned).unwrap();
        }
        let (data_path, stamp) = (s.m.data.clone(), format!("try-{i}"));
        let data = data.try_clone().unwrap();
        let owner = (s.m.uid, s.m.gid);
        let done = tokio::task::spawn_blocking(move || {
            hearth_isolation::dirs::archive_member_dir_at(&data, &data_path, MEMBER, &stamp, owner)
        })
        .await
        .unwrap();
        s.canary.assert_intact(&format!("archive {i}: {done:?}"));
    }
    assert!(tries >= TRIES, "only {tries} tries in {LOOP_LIMIT:?}");
    stop.store(true, Ordering::Relaxed);
    member.join().unwrap();
    admin.join().unwrap();
    assert!(member_swaps.load(Ordering::Relaxed) > 0, "the member never swapped a folder");
    // What was archived belongs to the gateway's user — or still to the member where the admin's
    // swap stopped the archive (it then fails, and the supervisor keeps the account) — but for
    // the hard link to root's file, which nobody was given.
    let archived: Vec<PathBuf> = std::fs::read_dir(s.m.data.join("archive"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()))
        .collect();
    assert!(!archived.is_empty());
    let mut handed = 0;
    for dir in archived {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let uid = std::fs::symlink_metadata(entry.path()).unwrap().uid();
            if entry.file_name() == "pinned" {
                assert_eq!(uid, 0, "{}", entry.path().display());
            } else {
                assert!(uid == s.m.uid || uid == s.member_uid, "{} belongs to uid {uid}", entry.path().display());
                handed += usize::from(uid == s.m.uid);
            }
        }
    }
    assert!(handed > 0, "no archive was handed over at all");
    eprintln!("the admin swapped {} archived folders", swaps.load(Ordering::Relaxed));
}

/// The disk quota's measurement through the supervisor (`SupervisorRequest::Usage`): root walks
/// the member's folder reading no file and following no link, while the member swaps a
/// subfolder for a link to a large folder elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_measures_a_members_folder_without_following_links() {
    let s = Scene::new();
    let outside = s.m.root.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("big.bin"), vec![1u8; 16 << 20]).unwrap();
    std::os::unix::fs::symlink(outside.join("big.bin"), s.member_dir.join("big-link")).unwrap();
    let supervisor = s.m.start_supervisor().await;
    let request = || SupervisorRequest::Usage { data_dir: s.m.data.clone(), member_id: MEMBER.into() };
    let Ok(SupervisorReply::Usage { bytes: calm, files }) = supervisor_request(&s.m.socket, s.m.uid, request()).await
    else {
        panic!("{}", s.m.read_log("supervisor"))
    };
    assert!(calm < 4 << 20 && files >= 5, "{calm} bytes, {files} entries");
    let stop = Arc::new(AtomicBool::new(false));
    let (dir, target) = (s.member_dir.clone(), outside.clone());
    let swaps = Arc::new(AtomicUsize::new(0));
    let (count, flag) = (swaps.clone(), stop.clone());
    let member = thread_as(s.member_uid, move || {
        let (files, real) = (dir.join("files"), dir.join("files.real"));
        while !flag.load(Ordering::Relaxed) {
            if std::fs::rename(&files, &real).is_ok() {
                let _ = std::os::unix::fs::symlink(&target, &files);
                count.fetch_add(1, Ordering::Relaxed);
                std::thread::yield_now();
                let _ = std::fs::remove_file(&files);
                let _ = std::fs::rename(&real, &files);
            }
        }
    });
    let started = Instant::now();
    let mut tries = 0;
    while race_goes_on(tries, started, &[&swaps]) {
        let i = tries;
        tries += 1;
        let reply = supervisor_request(&s.m.socket, s.m.uid, request()).await;
        let Ok(SupervisorReply::Usage { bytes, .. }) = reply else { panic!("{i}: {reply:?}") };
        assert!(bytes < calm + (1 << 20), "try {i}: {bytes} bytes counted, {calm} without the race");
    }
    assert!(tries >= TRIES, "only {tries} tries in {LOOP_LIMIT:?}");
    stop.store(true, Ordering::Relaxed);
    member.join().unwrap();
    assert!(swaps.load(Ordering::Relaxed) > 0, "the member never swapped a folder");
    // Another member's id, or a data folder that is not the admin's, gets no answer.
    let elsewhere = SupervisorRequest::Usage { data_dir: outside.clone(), member_id: MEMBER.into() };
    let refused = supervisor_request(&s.m.socket, s.m.uid, elsewhere).await.unwrap_err();
    assert!(refused.message.contains("belongs to uid 0"), "{refused:?}");
    let bad = SupervisorRequest::Usage { data_dir: s.m.data.clone(), member_id: "../x".into() };
    assert!(supervisor_request(&s.m.socket, s.m.uid, bad).await.is_err());
    terminate(supervisor, "hearth supervisor", || s.m.read_log("supervisor")).await;
}
