//! The Linux package: `installers/linux/build-deb` packs this build's `hearth`, the package
//! installs on this machine, its systemd units verify, the services' own command lines (read
//! from the installed units, run the way systemd would: the supervisor as root, the gateway as
//! the `hearth` service user) serve a member through the fake Telegram and model, `hearth
//! doctor` finds nothing critical, a backup made while it serves restores into a fresh install
//! with the member intact, and purging removes the user but never the household's data.
//! Needs root (it installs a package and creates accounts); CI runs as root. There is no systemd
//! in CI's container, so the units are checked with `systemd-analyze verify` (and their
//! sandboxing with `systemd-analyze security --offline`) and their commands are run directly.

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hearth_testkit::llm::FakeLlm;
use hearth_testkit::telegram::FakeTelegram;
use serde_json::Value;

use crate::supervisor::{Machine, assert_root, terminate};
use crate::support::HEARTH;

const T: Duration = Duration::from_secs(30);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What systemd would run for a unit: its user, environment and command line.
struct Unit {
    user: Option<String>,
    env: Vec<(String, String)>,
    exec: Vec<String>,
}

fn unit(path: &Path) -> Unit {
    let text = std::fs::read_to_string(path).unwrap();
    let mut u = Unit { user: None, env: Vec::new(), exec: Vec::new() };
    for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
        if let Some(v) = line.strip_prefix("User=") {
            u.user = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("Environment=") {
            let (k, v) = v.split_once('=').expect("Environment=KEY=VALUE");
            u.env.push((k.to_owned(), v.to_owned()));
        } else if let Some(v) = line.strip_prefix("ExecStart=") {
            u.exec = v.split_whitespace().map(str::to_owned).collect();
        }
    }
    assert!(!u.exec.is_empty(), "{} has no ExecStart", path.display());
    u
}

/// `hearth ARGS --json` as root, as an admin would run it with sudo, on the package's data.
fn root_hearth(args: &[&str]) -> Value {
    let out = Command::new("/usr/bin/hearth")
        .args(args)
        .env("HEARTH_DATA_DIR", "/var/lib/hearth")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(out.status.success(), "sudo hearth {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// The supervisor as its unit runs it (as root), once its socket accepts.
async fn start_supervisor(sup: &Unit, m: &Machine, log: &Path) -> tokio::process::Child {
    let child = tokio::process::Command::new(&sup.exec[0])
        .args(&sup.exec[1..])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + T;
    while std::os::unix::net::UnixStream::connect(&m.socket).is_err() {
        assert!(
            Instant::now() < deadline,
            "the supervisor did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}

/// The gateway as its unit runs it (as the `hearth` user, with the unit's environment), pointed
/// at the fake Telegram, once `hearth status` answers.
async fn start_gateway(gw: &Unit, m: &Machine, tg: &FakeTelegram, log: &Path) -> tokio::process::Child {
    let mut serve = m.as_admin(&gw.exec[1..].iter().map(String::as_str).collect::<Vec<_>>());
    serve
        .envs(gw.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("HEARTH_TELEGRAM_API_URL", tg.api_url())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    let child = serve.spawn().unwrap();
    let deadline = Instant::now() + T;
    while m.run(&["status", "--json"], None, &[]).await.0 != Some(0) {
        assert!(
            Instant::now() < deadline,
            "the gateway did not answer: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child
}

/// Removes the package (purge) and what the test left in /var/lib/hearth, whatever happens.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        hearth_testkit::packages::purge();
    }
}

#[test]
fn the_units_verify_with_systemd() {
    // Against a copy whose ExecStart points at this build, so no installation is needed.
    let dir = tempfile::tempdir().unwrap();
    for name in ["hearth.service", "hearth-supervisor.service"] {
        let text = std::fs::read_to_string(repo().join("installers/linux").join(name)).unwrap();
        std::fs::write(dir.path().join(name), text.replace("/usr/bin/hearth", HEARTH)).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("hearth.service"))
        .arg(dir.path().join("hearth-supervisor.service"))
        .output()
        .expect("systemd-analyze (Debian's systemd package) is needed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");
}

/// The units keep the sandboxing systemd scores (`systemd-analyze security`, exposure 0–10,
/// lower is better): the gateway at 3.0 or better, the supervisor at 5.0 or better — the same
/// bounds `scripts/test` holds with `--threshold` — and the supervisor keeps only the
/// capabilities its work needs.
#[test]
fn the_units_stay_hardened() {
    for (name, bound) in [("hearth.service", 3.0), ("hearth-supervisor.service", 5.0)] {
        let path = repo().join("installers/linux").join(name);
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(&path)
            .output()
            .expect("systemd-analyze (Debian's systemd package) is needed");
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_else(|| {
            panic!("no overall exposure for {name}: {text}{}", String::from_utf8_lossy(&out.stderr))
        });
        let score: f64 =
            line.split(':').nth(1).and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse().ok()).unwrap();
        assert!(score <= bound, "{name} scores {score}, above {bound}:\n{text}");
    }
    let unit = std::fs::read_to_string(repo().join("installers/linux/hearth-supervisor.service")).unwrap();
    let caps = unit.lines().find_map(|l| l.strip_prefix("CapabilityBoundingSet=")).expect("a capability bounding set");
    let caps: BTreeSet<&str> = caps.split_whitespace().collect();
    let needed =
        ["CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_FOWNER", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_KILL"];
    assert_eq!(caps, needed.into_iter().collect(), "the supervisor's capabilities");
    for line in ["PrivateNetwork=yes", "RestrictAddressFamilies=AF_UNIX", "ProtectSystem=strict", "NoNewPrivileges=yes"]
    {
        assert!(unit.lines().any(|l| l == line), "the supervisor's unit lacks {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deb_installs_serves_backs_up_and_restores_into_a_fresh_install() {
    assert_root();
    hearth_testkit::packages::claim();
    let out = tempfile::tempdir().unwrap();
    let deb = run(Command::new("bash")
        .arg(repo().join("installers/linux/build-deb"))
        .args(["--binary", HEARTH, "--out"])
        .arg(out.path())
        .arg("--fast"));
    let deb = deb.trim();
    let contents = run(Command::new("dpkg-deb").args(["--contents", deb]));
    for path in
        ["./usr/bin/hearth", "./lib/systemd/system/hearth.service", "./lib/systemd/system/hearth-supervisor.service"]
    {
        assert!(contents.contains(path), "the package lacks {path}:\n{contents}");
    }
    let _installed = Installed;
    run(Command::new("dpkg").args(["-i", deb]));

    // The service user and its state directory.
    let passwd = run(Command::new("getent").args(["passwd", "hearth"]));
    let fields: Vec<&str> = passwd.trim().split(':').collect();
    let (uid, gid): (u32, u32) = (fields[2].parse().unwrap(), fields[3].parse().unwrap());
    assert!(uid != 0 && fields[6].ends_with("nologin"), "{passwd}");
    let meta = std::fs::metadata("/var/lib/hearth").unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (uid, 0o711));
    assert_eq!(std::fs::metadata("/usr/bin/hearth").unwrap().permissions().mode() & 0o7777, 0o755);
    let verify = Command::new("systemd-analyze")
        .args(["verify", "/lib/systemd/system/hearth.service", "/lib/systemd/system/hearth-supervisor.service"])
        .output()
        .unwrap();
    assert!(verify.status.success(), "installed units: {}", String::from_utf8_lossy(&verify.stderr));

    // The services, run as their units say.
    let tg = FakeTelegram::start().await;
    let llm = FakeLlm::start().await;
    let mut m = Machine::installed(uid, gid);
    let sup = unit(Path::new("/lib/systemd/system/hearth-supervisor.service"));
    assert_eq!(sup.user, None, "the supervisor runs as root");
    let supervisor = start_supervisor(&sup, &m, &out.path().join("supervisor.log")).await;
    let gw = unit(Path::new("/lib/systemd/system/hearth.service"));
    assert_eq!(gw.user.as_deref(), Some("hearth"));
    let serve_log = out.path().join("serve.log");
    let gateway = start_gateway(&gw, &m, &tg, &serve_log).await;

    // A demo round: a provider, a member with her own account, a pairing and an answer.
    m.json(
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
            "K",
            "--json",
        ],
        None,
        &[("K", "sk-test-key")],
    )
    .await;
    let bot = tg.add_bot("nan_hearth_bot");
    let added = m.json(&["member", "add", "Nan", "--json"], Some(&format!("{}\n", bot.token)), &[]).await;
    let id = added["id"].as_str().unwrap().to_owned();
    m.members.push(id.clone());
    let user = tg.user(1200, "Nan");
    tg.send_text(&bot.token, &user, &format!("/start {}", added["pair_code"].as_str().unwrap()));
    tg.wait_for_sent(&bot.token, user.id, 1, T).await.unwrap();
    tg.send_text(&bot.token, &user, "hello from the installed package");
    let sent = tg
        .wait_for_sent(&bot.token, user.id, 2, T)
        .await
        .unwrap_or_else(|e| panic!("{e}\nserve: {}", std::fs::read_to_string(&serve_log).unwrap_or_default()));
    assert_eq!(sent[1].text, "You said: hello from the installed package");
    let status = m.json(&["status", "--json"], None, &[]).await;
    assert_eq!(status["isolation"], "account_sandbox", "{status:#}");
    let doctor: Value = m.json(&["doctor", "--json"], None, &[]).await;
    let findings: Vec<&Value> = doctor["findings"]
        .as_array()
        .unwrap()
        .iter()
        .chain(doctor["members"].as_array().unwrap().iter().flat_map(|m| m["findings"].as_array().unwrap()))
        .collect();
    assert!(findings.iter().all(|f| f["severity"] != "critical"), "hearth doctor on the installed package: {doctor:#}");

    // A backup made while the package serves. The gateway's user cannot read members' folders
    // (they belong to their accounts), so a backup it is asked for (the schedule's, the app's)
    // is made by the supervisor as root; root's own `hearth backup create` backs up directly.
    let backups = out.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    std::os::unix::fs::chown(&backups, Some(uid), Some(gid)).unwrap();
    std::fs::set_permissions(out.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let (code, stdout, stderr) =
        m.run(&["backup", "create", "--to", backups.to_str().unwrap(), "--json"], None, &[]).await;
    assert_eq!(code, Some(0), "the gateway's user backs up through the supervisor: {stderr}");
    let through: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(through["members"], 1, "{through}");
    let made = root_hearth(&["backup", "create", "--to", backups.to_str().unwrap(), "--json"]);
    assert_eq!(made["members"], 1, "{made}");
    let backup = made["path"].as_str().unwrap().to_owned();
    terminate(gateway, "hearth serve", || std::fs::read_to_string(&serve_log).unwrap_or_default()).await;
    terminate(supervisor, "hearth supervisor", String::new).await;

    // … then the box is wiped: the package purged, the household's folder and Nan's account gone.
    run(Command::new("dpkg").args(["--purge", "hearth-server"]));
    assert!(
        !Command::new("getent").args(["passwd", "hearth"]).output().unwrap().status.success(),
        "the hearth user is gone"
    );
    assert!(Path::new("/var/lib/hearth/gateway.sqlite").exists(), "purging must never delete the household's data");
    std::fs::remove_dir_all("/var/lib/hearth").unwrap();
    if let Ok(Some(a)) = hearth_isolation::accounts::find_account(&id) {
        crate::supervisor::kill_processes_of(a.uid);
        hearth_isolation::accounts::remove_account(&id).unwrap();
    }

    // A fresh install restores it: Nan is back, answers, and remembers the conversation.
    run(Command::new("dpkg").args(["-i", deb]));
    let passwd = run(Command::new("getent").args(["passwd", "hearth"]));
    let fields: Vec<&str> = passwd.trim().split(':').collect();
    let (uid, gid): (u32, u32) = (fields[2].parse().unwrap(), fields[3].parse().unwrap());
    let mut m2 = Machine::installed(uid, gid);
    m2.members.push(id.clone());
    std::mem::take(&mut m.members);
    // Restored by root into the package's folder: the household's files go to the `hearth` user.
    let restored = root_hearth(&["backup", "restore", &backup, "--json"]);
    assert_eq!(std::fs::metadata("/var/lib/hearth/gateway.sqlite").unwrap().uid(), uid);
    assert_eq!(restored["members"], serde_json::json!(["Nan"]), "{restored}");
    assert!(restored["paste_again"].as_array().is_some_and(|p| !p.is_empty()), "the secrets stayed out: {restored}");
    let supervisor = start_supervisor(&sup, &m2, &out.path().join("supervisor2.log")).await;
    let gateway = start_gateway(&gw, &m2, &tg, &serve_log).await;
    // The secrets were not in the backup: paste them again, as the restore said.
    m2.json(
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
            "K",
            "--json",
        ],
        None,
        &[("K", "sk-test-key")],
    )
    .await;
    m2.json(&["member", "token", "Nan", "--json"], Some(&format!("{}\n", bot.token)), &[]).await;
    let status = m2.json(&["status", "--json"], None, &[]).await;
    assert_eq!(
        (status["members"][0]["name"].as_str(), status["members"][0]["paired"].as_bool()),
        (Some("Nan"), Some(true)),
        "{status:#}"
    );
    let asked = llm.calls().len();
    tg.send_text(&bot.token, &user, "do you remember me?");
    let sent = tg
        .wait_for_sent(&bot.token, user.id, 3, T)
        .await
        .unwrap_or_else(|e| panic!("{e}\nserve: {}", std::fs::read_to_string(&serve_log).unwrap_or_default()));
    assert_eq!(sent[2].text, "You said: do you remember me?");
    let prompt = llm.calls()[asked..].iter().map(|c| c.all_text()).collect::<String>();
    assert!(prompt.contains("hello from the installed package"), "Nan's history came back with the restore: {prompt}");

    m2.json(&["member", "remove", "Nan", "--json"], None, &[]).await;
    terminate(gateway, "hearth serve", || std::fs::read_to_string(&serve_log).unwrap_or_default()).await;
    terminate(supervisor, "hearth supervisor", String::new).await;
    run(Command::new("dpkg").args(["--purge", "hearth-server"]));
}
