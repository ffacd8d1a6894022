//! The macOS packaging, checked on any machine: Hearth.app and its dmg can only be built on a
//! Mac (`installers/macos/build-dmg.sh`), but everything that build reads is here. Each plist
//! parses as launchd and the bundler read it, the LaunchDaemon holds what launchd and
//! SMAppService need and agrees with the code, and Tauri's own parser accepts the configuration
//! as it is merged for macOS (`tauri.conf.json` + `tauri.macos.conf.json`), with every file it
//! names present.

use std::path::{Path, PathBuf};

use hearth_isolation::macos_daemon::{LABEL, PLIST_NAME};
use hearth_isolation::supervisor::DEFAULT_SOCKET_MACOS;
use plist::{Dictionary, Value};
use tauri_utils::config::{BundleTarget, BundleType, Config};
use tauri_utils::platform::Target;

fn src_tauri() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn repo() -> PathBuf {
    src_tauri().parent().unwrap().to_path_buf()
}

/// The configuration exactly as `tauri build` and tauri-build see it for `target`.
fn config(target: Target) -> Config {
    let (value, _paths) = tauri_utils::config::parse::read_from(target, &src_tauri())
        .unwrap_or_else(|e| panic!("the {target} configuration does not read: {e}"));
    serde_json::from_value(value).unwrap_or_else(|e| panic!("Tauri refuses the {target} configuration: {e}"))
}

fn dict(path: &Path) -> Dictionary {
    let value = Value::from_file(path).unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
    value.into_dictionary().unwrap_or_else(|| panic!("{}'s root is not a dictionary", path.display()))
}

/// Plists and entitlements under `dir`, leaving out build output and generated files.
fn plists(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !matches!(name.as_str(), "target" | "gen" | "binaries" | "node_modules") {
                plists(&path, out);
            }
        } else if name.ends_with(".plist") || name.ends_with(".entitlements") {
            out.push(path);
        }
    }
}

/// Every icon the bundle names exists, and lives in the top-level `icons/` (the layout the
/// product asked for; the packages and the window's default icon are made from these).
fn icons_are_in_the_top_level_folder(config: &Config) {
    assert!(!config.bundle.icon.is_empty(), "the bundle names its icons");
    let icons = std::fs::canonicalize(repo().join("icons")).unwrap();
    for icon in &config.bundle.icon {
        let path = src_tauri().join(icon);
        assert!(path.is_file(), "{icon} (relative to src-tauri/) does not exist");
        assert_eq!(std::fs::canonicalize(&path).unwrap().parent(), Some(icons.as_path()), "{icon} is not in icons/");
    }
}

/// The sidecar's name in the bundle: `binaries/hearth` → `Contents/MacOS/hearth`.
fn sidecar(config: &Config) -> String {
    let bins = config.bundle.external_bin.as_deref().expect("the macOS bundle ships the hearth CLI (externalBin)");
    assert_eq!(bins.len(), 1, "one sidecar: {bins:?}");
    Path::new(&bins[0]).file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn every_plist_parses() {
    let mut found = Vec::new();
    plists(&repo().join("installers/macos"), &mut found);
    plists(&src_tauri(), &mut found);
    let names: Vec<String> = found.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for expected in [PLIST_NAME, "Hearth.entitlements", "Info.plist"] {
        assert!(names.iter().any(|n| n == expected), "{expected} not found among {names:?}");
    }
    for path in &found {
        dict(path);
    }
}

#[test]
fn the_macos_configuration_is_what_tauri_accepts_and_names_files_that_exist() {
    let config = config(Target::MacOS);
    let dir = src_tauri();
    let targets = match &config.bundle.targets {
        BundleTarget::List(list) => list.clone(),
        BundleTarget::One(one) => vec![one.clone()],
        BundleTarget::All => vec![BundleType::App, BundleType::Dmg],
    };
    assert!(targets.contains(&BundleType::App) && targets.contains(&BundleType::Dmg), "{targets:?}");

    let mac = &config.bundle.macos;
    // SMAppService daemons exist from macOS 13.
    let minimum = mac.minimum_system_version.as_deref().expect("a minimum macOS version");
    let major: u32 = minimum.split('.').next().unwrap().parse().unwrap();
    assert!(major >= 13, "SMAppService needs macOS 13, the bundle says {minimum}");
    assert!(mac.hardened_runtime, "notarization needs the hardened runtime");

    let entitlements = dir.join(mac.entitlements.as_deref().expect("an entitlements file"));
    let entitlements = dict(&entitlements);
    assert_ne!(
        entitlements.get("com.apple.security.app-sandbox").and_then(Value::as_boolean),
        Some(true),
        "the App Sandbox would stop the gateway from running workers"
    );

    icons_are_in_the_top_level_folder(&config);
    for (inside, source) in &mac.files {
        assert!(inside.is_relative(), "{} is relative to Contents/", inside.display());
        assert!(dir.join(source).is_file(), "{} (bundled as {}) does not exist", source.display(), inside.display());
    }
    let daemon = mac
        .files
        .get(Path::new("Library/LaunchDaemons").join(PLIST_NAME).as_path())
        .expect("the LaunchDaemon plist is bundled where SMAppService looks: Contents/Library/LaunchDaemons");
    assert_eq!(
        std::fs::canonicalize(dir.join(daemon)).unwrap(),
        std::fs::canonicalize(repo().join("installers/macos").join(PLIST_NAME)).unwrap()
    );

    // The sidecar: tauri-build refuses one named like the package, and on a case-insensitive
    // disk it must not collide with the main binary (hearth-app, or mainBinaryName).
    let name = sidecar(&config);
    assert_eq!(name, "hearth");
    let main = config.main_binary_name.clone().unwrap_or_else(|| env!("CARGO_PKG_NAME").to_owned());
    assert!(!main.eq_ignore_ascii_case(&name), "the main binary {main} and the sidecar {name} would be one file");
    // build-dmg.sh makes the file tauri looks for: binaries/hearth-<target triple>.
    let script = std::fs::read_to_string(repo().join("installers/macos/build-dmg.sh")).unwrap();
    let bin = config.bundle.external_bin.as_ref().unwrap()[0].clone();
    assert!(script.contains(&format!("src-tauri/{bin}-$target\"")), "build-dmg.sh does not write {bin}-<triple>");
    assert!(script.contains("Library/LaunchDaemons/com.hearth.supervisor.plist"));
}

#[test]
fn linux_bundling_is_untouched_by_the_macos_configuration() {
    let config = config(Target::Linux);
    assert!(config.bundle.external_bin.is_none(), "the Linux packages ship no sidecar");
    assert_eq!(config.bundle.targets, BundleTarget::List(vec![BundleType::Deb, BundleType::Rpm]));
    assert!(config.bundle.macos.files.is_empty());
    icons_are_in_the_top_level_folder(&config);
}

#[test]
fn info_plist_makes_a_menu_bar_app() {
    let info = dict(&src_tauri().join("Info.plist"));
    assert_eq!(info.get("LSUIElement").and_then(Value::as_boolean), Some(true), "no Dock icon until the window opens");
    // Tauri writes these itself; a copy here would fight the configuration.
    for key in ["CFBundleIdentifier", "CFBundleExecutable", "CFBundleVersion", "LSMinimumSystemVersion"] {
        assert!(info.get(key).is_none(), "Info.plist must leave {key} to tauri.conf.json");
    }
}

#[test]
fn the_launch_daemon_plist_has_what_launchd_needs_and_agrees_with_the_app() {
    let config = config(Target::MacOS);
    let daemon = dict(&repo().join("installers/macos").join(PLIST_NAME));

    assert_eq!(daemon.get("Label").and_then(Value::as_string), Some(LABEL));
    assert_eq!(format!("{LABEL}.plist"), PLIST_NAME, "launchd expects the file named after its label");
    let program = daemon.get("BundleProgram").and_then(Value::as_string).expect("BundleProgram");
    assert_eq!(program, format!("Contents/MacOS/{}", sidecar(&config)), "the daemon runs the bundled sidecar");

    let args: Vec<&str> = daemon
        .get("ProgramArguments")
        .and_then(Value::as_array)
        .expect("ProgramArguments")
        .iter()
        .map(|v| v.as_string().expect("every argument is a string"))
        .collect();
    assert_eq!(&args[..2], ["hearth", "supervisor"]);
    let after = |flag: &str| args.iter().position(|a| *a == flag).and_then(|i| args.get(i + 1).copied());
    assert_eq!(after("--socket"), Some(DEFAULT_SOCKET_MACOS));
    // One dmg for every family: the plist names the admin group, and the supervisor remembers
    // the first admin to connect (hearth-isolation's `admin` module).
    assert_eq!(after("--admin-group"), Some("admin"));
    assert_eq!(after("--admin-pin"), Some(hearth_isolation::admin::DEFAULT_PIN_MACOS));
    assert!(!args.contains(&"--admin-uid") && !args.contains(&"--admin-user"), "the plist names no one");

    let ids: Vec<&str> = daemon
        .get("AssociatedBundleIdentifiers")
        .and_then(Value::as_array)
        .expect("AssociatedBundleIdentifiers")
        .iter()
        .filter_map(Value::as_string)
        .collect();
    assert_eq!(ids, [config.identifier.as_str()], "Login Items shows the daemon under the app with this identifier");

    assert_eq!(daemon.get("RunAtLoad").and_then(Value::as_boolean), Some(true), "starts at boot");
    assert_eq!(daemon.get("KeepAlive").and_then(Value::as_boolean), Some(true), "restarted when it exits");
    assert!(daemon.get("UserName").is_none() && daemon.get("GroupName").is_none(), "runs as root");
    assert!(daemon.get("Program").is_none(), "BundleProgram, not an absolute Program, for SMAppService");
}

#[test]
fn the_dmg_script_is_valid_bash() {
    let script = repo().join("installers/macos/build-dmg.sh");
    let status = std::process::Command::new("bash").arg("-n").arg(&script).status().expect("run bash");
    assert!(status.success(), "bash -n {}", script.display());
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&script).unwrap().permissions());
    assert!(mode & 0o111 != 0, "build-dmg.sh is executable");
}
