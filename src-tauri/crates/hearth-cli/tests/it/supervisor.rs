//! The unprivileged gateway: `hearth supervisor` runs as root, `hearth serve` as an ordinary uid
//! that asks it for member accounts, and the admin's own commands (`provider set`, `member add`,
//! `status`, `doctor`, `member remove`) run as that uid too — against the fake Telegram and LLM
//! on loopback. Needs root to start the supervisor and to switch uids (CI runs as root).
//!
//! The gateway's uid is a free number without an account, so nothing has to be created or
//! removed for it; the member accounts the supervisor makes are removed in a `Drop` guard.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use hearth_testkit::llm::FakeLlm;
use hearth_testkit::telegram::FakeTelegram;
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;

use crate::support::HEARTH;

const T: Duration = Duration::from_secs(30);

pub(crate) fn assert_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (it runs `hearth supervisor` and switches to another uid); CI runs as root"
    );
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A uid (and gid) in 61000–64999 — above what useradd hands out — with no account and no group.
pub(crate) fn free_high_id() -> u32 {
    loop {
        let id = 61_000 + rand::random::<u32>() % 4_000;
        let taken = |db: &str| {
            std::process::Command::new("getent").args([db, &id.to_string()]).output().unwrap().status.success()
        };
        if !taken("passwd") && !taken("group") {
            return id;
        }
    }
}

fn process_uid(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

/// A throw-away machine layout: a root-owned copy of `hearth` any uid may run (the build
/// directory need not be reachable, and the supervisor runs only what root alone can change),
/// the supervisor's socket directory, and a data directory owned by the gateway's uid.
pub(crate) struct Machine {
    /// Logs (and, for a throw-away layout, everything else).
    pub(crate) root: tempfile::TempDir,
    pub(crate) hearth: PathBuf,
    pub(crate) socket: PathBuf,
    pub(crate) data: PathBuf,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// Member ids whose accounts are removed at the end, whatever happens.
    pub(crate) members: Vec<String>,
}

impl Machine {
    pub(crate) fn new() -> Machine {
        assert_root();
        let root = tempfile::tempdir().unwrap();
        chmod(root.path(), 0o711);
        let bin = root.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        chmod(&bin, 0o755);
        let hearth = bin.join("hearth");
        std::fs::copy(HEARTH, &hearth).unwrap();
        chmod(&hearth, 0o755);
        let uid = free_high_id();
        let data = root.path().join("data");
        std::fs::create_dir(&data).unwrap();
        chmod(&data, 0o700);
        std::os::unix::fs::chown(&data, Some(uid), Some(uid)).unwrap();
        let socket = root.path().join("run").join("supervisor.sock");
        Machine { root, hearth, socket, data, uid, gid: uid, members: Vec::new() }
    }

    /// The layout an installed package gives: `/usr/bin/hearth`, the supervisor's socket in
    /// `/run/hearth`, the data in `/var/lib/hearth`, the gateway as the `hearth` service user.
    pub(crate) fn installed(uid: u32, gid: u32) -> Machine {
        assert_root();
        Machine {
            root: tempfile::tempdir().unwrap(),
            hearth: PathBuf::from("/usr/bin/hearth"),
            socket: PathBuf::from(hearth_isolation::supervisor::DEFAULT_SOCKET_LINUX),
            data: PathBuf::from("/var/lib/hearth"),
            uid,
            gid,
            members: Vec::new(),
        }
    }

    /// `hearth ARGS` as the gateway's uid, with a clean environment.
    pub(crate) fn as_admin(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.hearth);
        cmd.args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &self.data)
            .env("HEARTH_DATA_DIR", &self.data)
            .env("COLUMNS", "100")
            .current_dir(&self.data)
            .uid(self.uid)
            .gid(self.gid)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs an admin command to completion; returns (exit code, stdout, stderr).
    pub(crate) async fn run(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> (Option<i32>, String, String) {
        let mut cmd = self.as_admin(args);
        cmd.envs(env.iter().copied());
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("spawn hearth");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(input.as_bytes()).await.unwrap();
        }
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("`hearth {}` did not finish in 60 s", args.join(" ")))
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs an admin command that must succeed and print JSON.
    pub(crate) async fn json(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Value {
        let (code, stdout, stderr) = self.run(args, stdin, env).await;
        assert!(code == Some(0) || args[0] == "doctor", "`hearth {}` failed ({code:?}): {stderr}", args.join(" "));
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout} / {stderr}"))
    }

    fn log(&self, name: &str) -> PathBuf {
        self.root.path().join(format!("{name}.log"))
    }

    /// `hearth supervisor` as root, serving the gateway's uid.
    pub(crate) async fn start_supervisor(&self) -> tokio::process::Child {
        let log = std::fs::File::create(self.log("supervisor")).unwrap();
        let child = tokio::process::Command::new(&self.hearth)
            .args(["supervisor", "--socket", self.socket.to_str().unwrap(), "--admin-uid", &self.uid.to_string()])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + T;
        // The socket file appears at bind(), a moment before listen(): wait until it accepts.
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            assert!(Instant::now() < deadline, "the supervisor did not start: {}", self.read_log("supervisor"));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        child
    }

    /// `hearth serve` as the gateway's uid, waiting until it answers `hearth status`.
    pub(crate) async fn start_gateway(&self, tg: &FakeTelegram, extra: &[&str]) -> tokio::process::Child {
        let log = std::fs::File::create(self.log("serve")).unwrap();
        std::os::unix::fs::chown(self.log("serve"), Some(self.uid), Some(self.uid)).unwrap();
        let mut args = vec!["serve"];
        args.extend_from_slice(extra);
        let mut child = self
            .as_admin(&args)
            .env("HEARTH_TELEGRAM_API_URL", tg.api_url())
            .env("HEARTH_SUPERVISOR_SOCKET", &self.socket)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + T;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("hearth serve exited early ({status}): {}", self.read_log("serve"));
            }
            if self.run(&["status", "--json"], None, &[]).await.0 == Some(0) {
                return child;
            }
            assert!(Instant::now() < deadline, "hearth serve did not answer: {}", self.read_log("serve"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) fn read_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log(name)).unwrap_or_default()
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        for id in &self.members {
            if let Ok(Some(a)) = hearth_isolation::accounts::find_account(id) {
                kill_processes_of(a.uid);
            }
            for _ in 0..50 {
                if hearth_isolation::accounts::remove_account(id).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Ends the processes still running under a test account (workers this test had started), by
/// pid, so the account can be deleted.
pub(crate) fn kill_processes_of(uid: u32) {
    let Ok(dir) = std::fs::read_dir("/proc") else { return };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        if entry.metadata().is_ok_and(|m| m.uid() == uid) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// Sends SIGTERM and waits (bounded) for a clean exit.
pub(crate) async fn terminate(mut child: tokio::process::Child, what: &str, log: impl Fn() -> String) {
    let pid = child.id().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(T, child.wait())
        .await
        .unwrap_or_else(|_| panic!("{what} did not stop within 30 s: {}", log()))
        .unwrap();
    assert_eq!(status.code(), Some(0), "{what} exited with {status}: {}", log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unprivileged_gateway_gets_member_accounts_through_the_supervisor() {
    let mut m = Machine::new();
    let tg = FakeTelegram::start().await;
    let llm = FakeLlm::start().await;
    let supervisor = m.start_supervisor().await;
    let meta = std::fs::metadata(&m.socket).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o666));

    // 1. The gateway asks for level "account" and gets it from the supervisor.
    let gateway = m.start_gateway(&tg, &["--isolation", "account"]).await;
    assert_eq!(process_uid(gateway.id().unwrap()), m.uid, "the gateway itself runs unprivileged");
    let set = m
        .json(
            &[
                "provider",
                "set",
                "--kind",
                "openai",
                "--base-url",
                &llm.base_url(),
                "--model",
                "test-model",
                "--api-key-env",
                "TEST_KEY",
                "--json",
            ],
            None,
            &[("TEST_KEY", "sk-test-key")],
        )
        .await;
    assert_eq!(set["model"], "test-model");
    let bot = tg.add_bot("rosa_hearth_bot");
    let added = m.json(&["member", "add", "Rosa", "--json"], Some(&format!("{}\n", bot.token)), &[]).await;
    let id = added["id"].as_str().unwrap().to_owned();
    m.members.push(id.clone());
    let user = tg.user(1000, "Rosa");
    tg.send_text(&bot.token, &user, &format!("/start {}", added["pair_code"].as_str().unwrap()));
    let sent = tg.wait_for_sent(&bot.token, user.id, 1, T).await.unwrap();
    assert!(sent[0].text.contains("all set"), "{:?}", sent[0].text);
    tg.send_text(&bot.token, &user, "hello through the supervisor");
    let sent = tg
        .wait_for_sent(&bot.token, user.id, 2, T)
        .await
        .unwrap_or_else(|e| panic!("{e}\nserve: {}\nsupervisor: {}", m.read_log("serve"), m.read_log("supervisor")));
    assert_eq!(sent[1].text, "You said: hello through the supervisor");

    let account = hearth_isolation::accounts::find_account(&id).unwrap().expect("the supervisor made Rosa's account");
    assert_ne!(account.uid, m.uid);
    let status = m.json(&["status", "--json"], None, &[]).await;
    assert_eq!(status["isolation"], "account");
    let pid = status["members"][0]["worker_pid"].as_u64().expect("Rosa's worker runs") as u32;
    assert_eq!(process_uid(pid), account.uid, "Rosa's worker runs as her own account");
    let dir = m.data.join("members").join(&id);
    let meta = std::fs::metadata(&dir).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (account.uid, 0o700));
    assert_eq!(std::fs::metadata(dir.join("history.sqlite")).unwrap().uid(), account.uid);

    let doctor = m.json(&["doctor", "--json"], None, &[]).await;
    assert_eq!(doctor["isolation"], "account");
    let member = &doctor["members"][0];
    assert_eq!(
        (member["account"].as_str(), member["uid"].as_u64()),
        (Some(account.name.as_str()), Some(account.uid as u64))
    );
    assert_eq!(member["worker_pid"].as_u64(), Some(pid as u64));
    let all: Vec<&Value> =
        doctor["findings"].as_array().unwrap().iter().chain(member["findings"].as_array().unwrap()).collect();
    assert!(all.iter().all(|f| f["severity"] != "critical"), "{doctor:#}");
    assert!(all.iter().any(|f| f["what"].as_str().unwrap().contains("Hearth supervisor")), "{doctor:#}");

    // A backup asked of the gateway (as the app and the schedule do): the gateway's user cannot
    // read Rosa's folder, so root makes it through the supervisor, into a folder of the admin's.
    let backups = m.root.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    std::os::unix::fs::chown(&backups, Some(m.uid), Some(m.uid)).unwrap();
    chmod(&backups, 0o700);
    let made = m.json(&["backup", "create", "--to", backups.to_str().unwrap(), "--json"], None, &[]).await;
    assert_eq!((made["members"].as_u64(), made["includes_secrets"].as_bool()), (Some(1), Some(false)), "{made}");
    let path = PathBuf::from(made["path"].as_str().unwrap());
    assert!(path.starts_with(&backups), "{made}");
    let copied = path.join("members").join(&id).join("history.sqlite");
    // Root's copy, private: the admin's user reads no member's history through a backup either.
    let meta = std::fs::metadata(&copied).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o077), (0, 0), "{}", copied.display());
    let verified = std::process::Command::new(&m.hearth).args(["backup", "verify", path.to_str().unwrap(), "--json"]).output().unwrap();
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));
    // Never with secrets, and never into a folder that is not the admin's.
    let (code, _, stderr) =
        m.run(&["backup", "create", "--to", backups.to_str().unwrap(), "--include-secrets"], None, &[]).await;
    assert_ne!(code, Some(0));
    assert!(stderr.contains("supervisor makes this backup"), "{stderr}");
    let foreign = m.root.path().join("not-yours");
    std::fs::create_dir(&foreign).unwrap();
    chmod(&foreign, 0o777);
    let (code, _, stderr) = m.run(&["backup", "create", "--to", foreign.to_str().unwrap()], None, &[]).await;
    assert_ne!(code, Some(0));
    assert!(stderr.contains("must be yours"), "{stderr}");

    // 2. Restarted with the default (`auto`), the gateway takes the strongest level the
    // supervisor offers; Rosa's next worker runs sandboxed under the same account.
    terminate(gateway, "hearth serve", || m.read_log("serve")).await;
    let gateway = m.start_gateway(&tg, &[]).await;
    let status = m.json(&["status", "--json"], None, &[]).await;
    assert_eq!(status["isolation"], "account_sandbox", "{status:#}");
    tg.send_text(&bot.token, &user, "and again");
    let sent = tg
        .wait_for_sent(&bot.token, user.id, 3, T)
        .await
        .unwrap_or_else(|e| panic!("{e}\nserve: {}\nsupervisor: {}", m.read_log("serve"), m.read_log("supervisor")));
    assert!(sent[2].text.starts_with("You said:"), "{:?}", sent[2].text);
    let status = m.json(&["status", "--json"], None, &[]).await;
    let pid = status["members"][0]["worker_pid"].as_u64().unwrap() as u32;
    assert_eq!(process_uid(pid), account.uid);

    // 3. Removing Rosa removes her account, after her files went to the gateway's user.
    let removed = m.json(&["member", "remove", "Rosa", "--json"], None, &[]).await;
    assert_eq!(removed["removed"], "Rosa");
    assert!(hearth_isolation::accounts::find_account(&id).unwrap().is_none(), "the account is gone");
    assert!(!dir.exists());
    let archived = std::fs::read_dir(m.data.join("archive")).unwrap().next().unwrap().unwrap().path();
    assert!(archived.file_name().unwrap().to_str().unwrap().starts_with(&id));
    for p in [archived.clone(), archived.join("history.sqlite")] {
        assert_eq!(std::fs::metadata(&p).unwrap().uid(), m.uid, "{} belongs to the gateway's user", p.display());
    }

    terminate(gateway, "hearth serve", || m.read_log("serve")).await;
    terminate(supervisor, "hearth supervisor", || m.read_log("supervisor")).await;
    assert!(!m.socket.exists(), "the supervisor removes its socket when it stops");
}

/// What a person meets when something is missing: the supervisor without root, a bad admin
/// (user, uid, group or pin file), and a non-root gateway asked for accounts with no supervisor.
/// Also: the macOS LaunchDaemon's own command line is one this `hearth` accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_and_an_unprivileged_gateway_say_what_is_missing() {
    let m = Machine::new();
    let socket = m.root.path().join("nowhere.sock");
    let (code, _, stderr) =
        m.run(&["supervisor", "--admin-uid", "4242", "--socket", socket.to_str().unwrap()], None, &[]).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("must run as root"), "{stderr}");

    // The LaunchDaemon's arguments, exactly as launchd would pass them (but this test's socket):
    // parsed and accepted up to the need for root.
    let plist = plist::Value::from_file(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../installers/macos/com.hearth.supervisor.plist")).unwrap();
    let mut daemon: Vec<String> = plist.as_dictionary().unwrap()["ProgramArguments"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|v| v.as_string().unwrap().to_owned())
        .collect();
    let at = daemon.iter().position(|a| a == "--socket").expect("the plist names its socket") + 1;
    daemon[at] = socket.to_str().unwrap().into();
    let daemon: Vec<&str> = daemon.iter().map(String::as_str).collect();
    let (code, _, stderr) = m.run(&daemon, None, &[]).await;
    assert_eq!(code, Some(1), "the LaunchDaemon's command line: {stderr}");
    assert!(stderr.contains("must run as root"), "{stderr}");

    // As root: an unknown user or group, a relative pin file, and root as the admin are refused.
    let as_root = async |args: &[&str]| {
        let out = tokio::process::Command::new(&m.hearth).args(args).output().await.unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, stderr) =
        as_root(&["supervisor", "--admin-group", "no-such-group-zz9", "--socket", socket.to_str().unwrap()]).await;
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("no group called"), "{stderr}");
    let (code, stderr) = as_root(&[
        "supervisor",
        "--admin-group",
        "nogroup",
        "--admin-pin",
        "relative/admin",
        "--socket",
        socket.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("absolute path"), "{stderr}");
    let (code, stderr) =
        as_root(&["supervisor", "--admin-uid", "501", "--admin-pin", "/x", "--socket", socket.to_str().unwrap()]).await;
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("--admin-pin goes with --admin-group"), "{stderr}");
    let (code, stderr) =
        as_root(&["supervisor", "--admin-user", "no-such-user-zz9", "--socket", socket.to_str().unwrap()]).await;
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("no user called"), "{stderr}");
    let (code, stderr) = as_root(&["supervisor", "--admin-uid", "0", "--socket", socket.to_str().unwrap()]).await;
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("cannot be root"), "{stderr}");
    let (code, stderr) = as_root(&["supervisor", "--socket", socket.to_str().unwrap()]).await;
    assert_eq!(code, Some(2), "an admin is required: {stderr}");
    assert!(!socket.exists());

    let (code, stdout, _) = m.run(&["supervisor", "--help"], None, &[]).await;
    assert_eq!(code, Some(0));
    for needle in ["--admin-user", "--admin-uid", "--admin-group", "--admin-pin", "--socket", "root", "Login Items", "--supervisor-socket"] {
        assert!(stdout.contains(needle), "`supervisor --help` lacks {needle:?}:\n{stdout}");
    }
    let (_, stdout, _) = m.run(&["serve", "--help"], None, &[]).await;
    assert!(stdout.contains("--supervisor-socket") && stdout.contains("HEARTH_SUPERVISOR_SOCKET"), "{stdout}");

    // Not root, no supervisor: "account" is refused with the way out; a supervisor that is not
    // running is named.
    let (code, _, stderr) = m.run(&["serve", "--isolation", "account"], None, &[]).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("hearth supervisor") && stderr.contains("--supervisor-socket"), "{stderr}");
    let (code, _, stderr) =
        m.run(&["serve", "--isolation", "sandbox", "--supervisor-socket", socket.to_str().unwrap()], None, &[]).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("not running at") && stderr.contains(socket.to_str().unwrap()), "{stderr}");
}
