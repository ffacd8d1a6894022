//! The app's Linux package, installed and run: `installers/linux/build-app-deb` packs this
//! build's `hearth-app` (scripts/test packs it before the test run and names it in
//! `HEARTH_APP_DEB`, so the test compiles and rewrites nothing while the window tests run the same
//! binary). The package installs beside hearth-server with no file in common, its desktop entry
//! validates and points at what it installed, its libraries resolve, and the installed
//! `/usr/bin/hearth-app` opens on the setup wizard under Xvfb and runs a demo round whose workers
//! are the installed binary too. Removing and purging it leaves no binary and never touches the
//! household's data. Needs root (it installs packages); CI runs as root. Runs one at a time with
//! hearth-cli's package test (nextest's `dpkg` group): both install, both use the `hearth` user.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hearth_testkit::packages::{self, status};

use crate::webdriver::Window;
use crate::window::app_env;

const APP: &str = "/usr/bin/hearth-app";
const DESKTOP: &str = "/usr/share/applications/Hearth.desktop";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
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

fn installed(package: &str) -> bool {
    status(package).as_deref() == Some("install ok installed")
}

/// The files (not directories) a package holds, from `dpkg-deb --contents`.
fn files_of(deb: &str) -> BTreeSet<String> {
    run(Command::new("dpkg-deb").args(["--contents", deb]))
        .lines()
        .filter(|l| !l.starts_with('d'))
        .filter_map(|l| l.split_whitespace().nth(5))
        // Tauri's tarball names `usr/…`, dpkg-deb's own `./usr/…`.
        .map(|p| format!("/{}", p.trim_start_matches("./")))
        .collect()
}

/// Purges both packages and what the server's left in /var/lib/hearth, whatever happens.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        packages::purge();
    }
}

/// Whether a process of the installed binary runs as a member's worker (`hearth-app worker`).
fn installed_worker_runs() -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
        std::fs::read_link(p.path().join("exe")).is_ok_and(|exe| exe == Path::new(APP))
            && std::fs::read(p.path().join("cmdline")).is_ok_and(|c| c.split(|b| *b == 0).nth(1) == Some(b"worker"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_deb_installs_beside_the_server_runs_a_demo_and_removes_cleanly() {
    // SAFETY: geteuid has no preconditions.
    assert!(unsafe { libc::geteuid() } == 0, "this test needs root (it installs packages); CI runs as root");
    packages::claim();
    let tmp = tempfile::tempdir().unwrap();
    let app_deb = match std::env::var("HEARTH_APP_DEB") {
        Ok(deb) => deb,
        // Packed from a copy in a scratch target directory: the bundler opens the binary it packs
        // for writing, which fails ("Text file busy") while a window test runs the original.
        Err(_) => {
            let debug = tmp.path().join("target/debug");
            std::fs::create_dir_all(&debug).unwrap();
            std::fs::copy(env!("CARGO_BIN_EXE_hearth-app"), debug.join("hearth-app")).unwrap();
            run(Command::new("bash")
                .arg(repo().join("installers/linux/build-app-deb"))
                .arg("--prebuilt")
                .env("CARGO_TARGET_DIR", tmp.path().join("target")))
            .lines()
            .last()
            .unwrap()
            .to_owned()
        }
    };
    // The headless package, from the `hearth` binary of the same build.
    let hearth = Path::new(env!("CARGO_BIN_EXE_hearth-app")).with_file_name("hearth");
    assert!(hearth.exists(), "{} is missing: cargo build --workspace builds it (scripts/test does)", hearth.display());
    let server_deb = run(Command::new("bash")
        .arg(repo().join("installers/linux/build-deb"))
        .arg("--binary")
        .arg(&hearth)
        .arg("--out")
        .arg(tmp.path())
        .arg("--fast"));
    let server_deb = server_deb.trim();

    // What the app's package holds, and nothing the server's does.
    let app_files = files_of(&app_deb);
    for path in [APP, DESKTOP, "/usr/share/icons/hicolor/128x128/apps/hearth-app.png"] {
        assert!(app_files.contains(path), "the app's package lacks {path}: {app_files:#?}");
    }
    let shared: Vec<_> = app_files.intersection(&files_of(server_deb)).cloned().collect();
    assert!(shared.is_empty(), "hearth and hearth-server both ship {shared:?}");
    assert_eq!(run(Command::new("dpkg-deb").args(["--field", &app_deb, "Package"])).trim(), "hearth");

    let _installed = Installed;
    run(Command::new("dpkg").args(["-i", server_deb]));
    run(Command::new("dpkg").args(["-i", &app_deb]));
    assert!(
        installed("hearth") && installed("hearth-server"),
        "hearth: {:?}, hearth-server: {:?}",
        status("hearth"),
        status("hearth-server")
    );

    // The desktop entry: valid, and naming the binary and the icon the package installed.
    let validate = Command::new("desktop-file-validate")
        .arg(DESKTOP)
        .output()
        .expect("desktop-file-validate is needed: apt-get install desktop-file-utils (scripts/setup installs it)");
    let said = format!("{}{}", String::from_utf8_lossy(&validate.stdout), String::from_utf8_lossy(&validate.stderr));
    assert!(validate.status.success() && said.trim().is_empty(), "desktop-file-validate {DESKTOP}: {said}");
    let entry = std::fs::read_to_string(DESKTOP).unwrap();
    let key = |k: &str| {
        entry.lines().find_map(|l| l.strip_prefix(k)?.strip_prefix('=')).unwrap_or_else(|| panic!("no {k}= in {entry}"))
    };
    assert_eq!(Path::new("/usr/bin").join(key("Exec")), Path::new(APP), "{entry}");
    assert!(
        Path::new("/usr/share/icons/hicolor/128x128/apps").join(format!("{}.png", key("Icon"))).exists(),
        "{entry}"
    );
    assert_eq!(key("Name"), "Hearth");

    // Every library the installed binary needs is on the machine.
    let ldd = run(Command::new("ldd").arg(APP));
    assert!(!ldd.contains("not found"), "ldd {APP}:\n{ldd}");

    // The installed app, as a newcomer opens it: the setup wizard, then one demo round whose
    // members' workers are the installed binary, answered and paid for, then back out.
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("hearth-data");
    let w = Window::open(Path::new(APP), &app_env(home.path(), &data), &tmp.path().join("shots")).await;
    w.tid("wizard-welcome").await;
    w.click("try-demo").await;
    w.tid("demo-banner").await;
    let people = ["Rosa", "Leo", "Sam", "Mia"];
    for name in people {
        w.find(&format!("[data-testid=\"member-card\"][data-member=\"{name}\"]")).await;
    }
    // A settled answer moves someone's spend; meanwhile their worker is /usr/bin/hearth-app.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut answered, mut worker) = (false, false);
    while !(answered && worker) {
        worker |= installed_worker_runs();
        for name in people {
            let bar =
                format!("[data-testid=\"member-card\"][data-member=\"{name}\"] [data-testid=\"spend-today-bar\"]");
            answered |= w.attr(&bar, "aria-valuenow").await.is_some_and(|v| v.parse::<f64>().is_ok_and(|v| v > 0.0));
        }
        assert!(
            Instant::now() < deadline,
            "the installed app's demo: answered {answered}, a worker of {APP} seen {worker}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    w.click("leave-demo").await;
    w.tid("wizard-welcome").await;
    drop(w);
    assert!(data.join("gateway.sqlite").exists(), "the installed app keeps its household in HEARTH_DATA_DIR");

    // Removing the app leaves the server and every household's data (the app's, and the
    // server's /var/lib/hearth); purging it leaves no trace of the package.
    run(Command::new("dpkg").args(["-r", "hearth"]));
    assert!(!installed("hearth"), "{:?}", status("hearth"));
    for gone in [APP, DESKTOP] {
        assert!(!Path::new(gone).exists(), "{gone} is still there after dpkg -r hearth");
    }
    assert!(installed("hearth-server"), "removing the app took the server: {:?}", status("hearth-server"));
    run(Command::new("/usr/bin/hearth").arg("--version"));
    run(Command::new("dpkg").args(["--purge", "hearth"]));
    assert_eq!(status("hearth"), None, "dpkg still lists the purged app");
    assert!(data.join("gateway.sqlite").exists(), "removing the app must never delete the household's data");
    assert!(Path::new("/var/lib/hearth").is_dir(), "removing the app must never touch the server's household");
    run(Command::new("dpkg").args(["--purge", "hearth-server"]));
}
