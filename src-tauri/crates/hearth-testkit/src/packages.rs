//! The machine-wide state the package tests use — the `hearth` and `hearth-server` packages and
//! `/var/lib/hearth` — claimed before a test installs anything.
//!
//! On a developer's machine that state may be a real household, so a test finding it refuses to
//! run and says why. CI's machine (`CI=true`) is disposable: what is found there can only be left
//! over from an earlier run, so it is described on stderr (for whoever reads the log) and purged.

use std::path::Path;
use std::process::{Command, Stdio};

/// Packages the tests install; the app's (`hearth`) depends on nothing of the server's.
pub const PACKAGES: [&str; 2] = ["hearth", "hearth-server"];
/// The server's state directory, which purging a package never deletes.
pub const STATE_DIR: &str = "/var/lib/hearth";

/// The dpkg status of `package` when dpkg knows it as anything but not installed.
pub fn status(package: &str) -> Option<String> {
    let out = Command::new("dpkg-query").args(["-W", "-f=${Status}", package]).output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
        .filter(|s| out.status.success() && !s.is_empty() && !s.ends_with("not-installed"))
}

/// What of the packages' state is on this machine, one line each; empty when nothing is.
pub fn found() -> Vec<String> {
    let mut found: Vec<String> =
        PACKAGES.iter().filter_map(|p| status(p).map(|s| format!("package {p}: {s}"))).collect();
    if Path::new(STATE_DIR).exists() {
        let listing = Command::new("ls")
            .args(["-la", STATE_DIR])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        found.push(format!("{STATE_DIR} exists:\n{listing}"));
    }
    found
}

/// Purges both packages and removes the state directory, whatever state they are in.
pub fn purge() {
    for package in PACKAGES {
        let _ = Command::new("dpkg").args(["--purge", package]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
    let _ = std::fs::remove_dir_all(STATE_DIR);
}

/// Makes sure no package state is on the machine before a test installs: refuses (panics) on a
/// developer's machine, purges on CI's.
pub fn claim() {
    let found = found();
    if found.is_empty() {
        return;
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        ci,
        "this test installs the hearth and hearth-server packages and uses {STATE_DIR}; run it on a machine \
         without them (CI's is disposable: with CI=true leftovers are purged). Found:\n{}",
        found.join("\n")
    );
    eprintln!("package tests: purging what an earlier run left on this CI machine:\n{}", found.join("\n"));
    purge();
    let left = self::found();
    assert!(left.is_empty(), "could not purge the leftovers:\n{}", left.join("\n"));
}
