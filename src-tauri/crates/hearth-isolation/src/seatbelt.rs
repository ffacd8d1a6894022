//! The macOS Seatbelt profile for a member's worker: level "account + sandbox" on macOS.
//!
//! The intent is the Linux layers' (Landlock, `no_new_privs`, seccomp), written in Apple's
//! sandbox profile language (SBPL, a Scheme dialect):
//!
//! - deny by default;
//! - Apple's `system.sb` baseline, imported rather than copied: what dyld, the shared cache and
//!   libSystem's start-up need on this very macOS release — system libraries and frameworks read
//!   and mapped, the cryptex graft points, `/dev/null`, `/dev/urandom`, sysctl reads, the syslog
//!   socket, and a fixed list of Apple services libSystem itself talks to (logging, directory
//!   lookups for `getpwuid`, preferences, notifications). Apple adjusts it with each release;
//!   Swift's compiler runs its macro plugins under `sandbox-exec` with the same import. It
//!   grants no network, no process execution and no file writes but to `/dev/null`-like
//!   devices and core files in `/cores` (closed to member accounts by its mode, and workers
//!   get `RLIMIT_CORE` 0). Our own rules add no Mach service, sysctl or IPC at all;
//! - stat-ing any path: `realpath` and `std::fs::canonicalize` stat every ancestor, and Landlock
//!   does not restrict `stat` either. Reading or listing stays confined to the rules below, and
//!   other members' directories stay closed by their 0700 mode;
//! - execute only the worker binary, read (and map) its app bundle if it has one; no `fork`;
//! - read, write, create and delete under the member directory only — nothing there may be
//!   executed or mapped executable (Landlock's member rule has no `EXECUTE` either);
//! - but no hard link (`file-link`) and no symbolic link (`file-write-create` of a `SYMLINK`)
//!   made anywhere: root's backups and exports walk the member's folder, and a link planted
//!   there is how a worker would make root read something else in its name (Landlock's member
//!   rule makes none either). No mode change on a directory (`file-write-mode`): the worker
//!   cannot open its folder to other local users — Seatbelt cannot look at the new mode, and
//!   the worker never changes a directory's; its files' modes it may set (its databases are
//!   made 0600), and they stay unreachable inside the 0700 folder. No ACL and no set-id bit
//!   (`file-write-acl`, `file-write-setugid`);
//! - no network at all: the worker's connection to the gateway is already open on fd 3 when
//!   `sandbox-exec` starts ([`crate::spawn`]), so the profile allows no socket of any kind;
//! - signals to itself only.
//!
//! Every rule between `(deny default)` and the closing denies allows, so their order does not
//! matter; the denies come last, because Seatbelt lets the last matching rule win, and they
//! must override the member directory's `file-write*`.
//!
//! How it is applied: `/usr/bin/sandbox-exec -p <profile> -- <worker> <args…>`, started as the
//! member (the uid drop happens between fork and exec, before `sandbox-exec` runs), as Codex
//! CLI and Swift do. Calling `sandbox_init` in the forked child of the multithreaded gateway
//! instead would not be async-signal-safe: it compiles the profile, which allocates.
//! `sandbox-exec` compiles it in a fresh single-threaded process, applies it to itself and
//! executes the worker, which can never leave it. Apple's manual page calls `sandbox-exec`
//! deprecated, yet every macOS release ships it and Apple's own toolchain relies on it; if a
//! release stops accepting the profile, `probe` says so and the level falls back to "account".
//! The profile names paths only, never a secret: it travels on a command line, which other
//! local users can read with `ps`.
//!
//! Paths are canonicalized when the plan is prepared ([`ProfilePaths::resolve`],
//! [`canonical_path`]): Seatbelt matches the path the kernel resolved, so a rule naming
//! `/var/…` or `/tmp/…` (symbolic links to `/private/var`, `/private/tmp`) would match nothing.
//! Paths are written as SBPL string literals with `\` and `"` escaped, and a path holding NUL, a
//! line break or any other control character is refused rather than escaped.
//!
//! The generator is pure and compiled on every platform, so Linux CI tests it; running
//! `sandbox-exec` (`check_sandbox_exec`, `probe`) is macOS only.

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::sandbox::SandboxError;

/// The only `sandbox-exec` Hearth runs: by absolute path, never looked up in `PATH`.
pub const SANDBOX_EXEC: &str = "/usr/bin/sandbox-exec";

/// What the sandbox allows, in words, for `hearth doctor`.
pub const DESCRIPTION: &str = "Seatbelt through /usr/bin/sandbox-exec: deny by default on Apple's system.sb baseline; read-write only the member directory, with no links made there and its folders never opened to others; execute only the worker binary; no network at all (the gateway connection is inherited)";

/// The part of every profile that names no path of ours. `system.sb` is looked up in
/// `/System/Library/Sandbox/Profiles`.
const BASE: &str = r#"(version 1)
(deny default)

; What dyld and libSystem need to start any program on this macOS release (Apple's own list).
(import "system.sb")

; stat() of any path: realpath() walks every ancestor. Reading and listing stay confined.
(allow file-read-metadata)

; Randomness, /dev/null and the local time zone, named here as the Linux rules name them.
(allow file-read* (literal "/dev/urandom") (literal "/dev/random") (literal "/private/etc/localtime"))
(allow file-read* (subpath "/private/var/db/timezone"))
(allow file-read* file-write-data (literal "/dev/null"))

; Signals to itself only (abort() raises SIGABRT); process information about itself.
(allow signal (target self))
(allow process-info* (target same-sandbox))
"#;

/// The paths one worker's profile is written from, canonical (see [`ProfilePaths::resolve`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfilePaths {
    /// The member's directory: the one place the worker may list, read, write, create and
    /// delete.
    pub member_dir: PathBuf,
    /// The worker binary: the only program the worker may execute.
    pub exe: PathBuf,
    /// The app bundle the binary sits in (`…/Hearth.app` for `…/Hearth.app/Contents/MacOS/x`):
    /// readable and mappable, because the app binary links AppKit and Foundation, which look up
    /// the main bundle's `Info.plist` and may load what the bundle carries. The bundle is signed
    /// code only root can change. `None` for a bare binary.
    pub bundle: Option<PathBuf>,
}

impl ProfilePaths {
    /// Canonicalizes the member directory and the worker binary and checks that a profile can
    /// name them. `member_dir` must be a directory and not a symbolic link (as on Linux); the
    /// binary must be a regular file outside the member directory — a worker able to rewrite
    /// the one program it may execute could run anything.
    pub fn resolve(member_dir: &Path, exe: &Path) -> Result<ProfilePaths, SandboxError> {
        let err = |path: &Path, source: io::Error| SandboxError::Path { path: path.to_owned(), source };
        let meta = std::fs::symlink_metadata(member_dir).map_err(|e| err(member_dir, e))?;
        if meta.file_type().is_symlink() {
            return Err(err(member_dir, io::Error::other("it is a symbolic link, which the sandbox will not follow")));
        }
        if !meta.is_dir() {
            return Err(err(member_dir, io::Error::other("it is not a directory")));
        }
        let member = canonical_path(member_dir).map_err(|e| err(member_dir, e))?;
        let real_exe = std::fs::canonicalize(exe).map_err(|e| err(exe, e))?;
        if !std::fs::metadata(&real_exe).map_err(|e| err(exe, e))?.is_file() {
            return Err(err(exe, io::Error::other("it is not a regular file")));
        }
        // Also refuses a member "directory" of `/` or any other ancestor of the binary.
        if real_exe.starts_with(&member) {
            return Err(err(
                exe,
                io::Error::other(format!(
                    "it lies inside the member directory {}, where the worker may write",
                    member.display()
                )),
            ));
        }
        let bundle = app_bundle(&real_exe).map(Path::to_owned);
        let paths = ProfilePaths { member_dir: member, exe: real_exe, bundle };
        // Refuse now, not at every start, a path no profile can name.
        profile(&paths)?;
        Ok(paths)
    }
}

/// The path the kernel resolves `path` to: every symbolic link followed (on macOS `/var/…`
/// becomes `/private/var/…`). A path that does not exist yet — a socket about to be created —
/// resolves through its parent directory.
pub fn canonical_path(path: &Path) -> io::Result<PathBuf> {
    if !path.is_absolute() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "it is not an absolute path"));
    }
    match std::fs::canonicalize(path) {
        Ok(real) => Ok(real),
        Err(e) if e.kind() == io::ErrorKind::NotFound => match (path.parent(), path.file_name()) {
            (Some(parent), Some(name)) => Ok(std::fs::canonicalize(parent)?.join(name)),
            _ => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// The `.app` bundle a binary at `<bundle>.app/Contents/MacOS/<name>` belongs to.
pub fn app_bundle(exe: &Path) -> Option<&Path> {
    let macos = exe.parent()?;
    let contents = macos.parent()?;
    let bundle = contents.parent()?;
    let is_app = bundle.extension().is_some_and(|x| x == "app");
    (macos.file_name()? == "MacOS" && contents.file_name()? == "Contents" && is_app).then_some(bundle)
}

/// What every profile ends with: the denies that must override the member directory's
/// `file-write*` (the last matching rule wins).
const CLOSING: &str = r#"
; No links anywhere, the member directory included: root's backups and exports walk it.
(deny file-link)
(deny file-write-create (vnode-type SYMLINK))
; Its folders are never opened to others; no ACLs, no set-id bits.
(deny file-write-mode (vnode-type DIRECTORY))
(deny file-write-acl file-write-setugid)
"#;

/// The profile for one worker.
pub fn profile(paths: &ProfilePaths) -> Result<String, SandboxError> {
    let member = sbpl_string(&paths.member_dir)?;
    let exe = sbpl_string(&paths.exe)?;
    let mut p = String::from(BASE);
    p.push_str("\n; The worker binary is the one program it may run; no fork.\n");
    p.push_str(&format!("(allow process-exec (literal {exe}))\n"));
    p.push_str(&format!("(allow file-read* file-map-executable (literal {exe}))\n"));
    if let Some(bundle) = &paths.bundle {
        p.push_str(&format!("(allow file-read* file-map-executable (subpath {}))\n", sbpl_string(bundle)?));
    }
    p.push_str("\n; Its member directory: everything but executing what is there.\n");
    p.push_str(&format!("(allow file-read* file-write* (subpath {member}))\n"));
    p.push_str("\n; No network: the connection to the gateway is inherited on fd 3, already open.\n");
    p.push_str(CLOSING);
    Ok(p)
}

/// The arguments for [`SANDBOX_EXEC`] that run `exe args…` under `profile`. `--` ends
/// `sandbox-exec`'s options, so no argument of the worker is read as one of them.
pub fn sandbox_exec_args(profile: String, exe: &Path, args: &[OsString]) -> Vec<OsString> {
    let mut out: Vec<OsString> = vec!["-p".into(), profile.into(), "--".into(), exe.as_os_str().to_owned()];
    out.extend(args.iter().cloned());
    out
}

/// `path` as an SBPL string literal, quotes included. Refused: a relative path, `..`
/// components (Seatbelt compares resolved paths, so they would match nothing), text that is
/// not UTF-8, and any control character — NUL would cut the profile short and a line break
/// could end a comment. Repeated and trailing slashes and `.` components are dropped.
fn sbpl_string(path: &Path) -> Result<String, SandboxError> {
    let bad = |why: &str| SandboxError::Path {
        path: path.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidInput, format!("{why}, so a Seatbelt profile cannot name it")),
    };
    if !path.is_absolute() {
        return Err(bad("it is not an absolute path"));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(bad("it has `..` components"));
    }
    let normal: PathBuf = path.components().collect();
    let text = normal.to_str().ok_or_else(|| bad("it is not valid UTF-8"))?;
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(bad(match c {
            '\0' => "it contains a NUL byte",
            '\n' | '\r' => "it contains a line break",
            _ => "it contains a control character",
        }));
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Ok(out)
}

/// Checks that `/usr/bin/sandbox-exec` is one only root could have put there: a regular file
/// owned by root and writable by nobody else, in directories only root can change. It sits on
/// the sealed system volume, so anything else means the machine is not what it claims.
#[cfg(target_os = "macos")]
pub fn check_sandbox_exec() -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let exe = Path::new(SANDBOX_EXEC);
    let meta = std::fs::symlink_metadata(exe).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => {
            format!("Seatbelt: this Mac has no {SANDBOX_EXEC}, which applies the worker profile")
        }
        _ => format!("Seatbelt: cannot read {SANDBOX_EXEC}: {e}"),
    })?;
    // Root alone: the same rule the supervisor applies to the worker binary, with no admin.
    if !meta.is_file() || crate::admin::others_may_change(meta.uid(), meta.gid(), meta.mode() & 0o7777, false, 0, None) {
        return Err(format!(
            "Seatbelt: {SANDBOX_EXEC} is not a root-owned file only root can change (owner uid {}, mode {:04o}), so Hearth will not run it",
            meta.uid(),
            meta.mode() & 0o7777
        ));
    }
    match crate::admin::changeable_parent(exe, 0, None) {
        Ok(None) => Ok(()),
        Ok(Some((dir, meta))) => Err(format!(
            "Seatbelt: {} could be changed by someone other than root (owner uid {}, mode {:04o}), so Hearth will not run {SANDBOX_EXEC}",
            dir.display(),
            meta.uid(),
            meta.mode() & 0o7777
        )),
        Err((dir, e)) => Err(format!("Seatbelt: cannot read {}: {e}", dir.display())),
    }
}

/// Proves that this macOS accepts Hearth's profile: runs `/usr/bin/true` under a profile
/// written exactly as a worker's. A profile that fails to compile,
/// or an OS that no longer starts a program under it, is reported here — with
/// `sandbox-exec`'s own message — instead of as workers that die at start. A success is
/// remembered for the life of the process; a failure is tried again next time.
#[cfg(target_os = "macos")]
pub fn probe() -> Result<(), String> {
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicBool, Ordering};
    static ACCEPTED: AtomicBool = AtomicBool::new(false);
    if ACCEPTED.load(Ordering::Relaxed) {
        return Ok(());
    }
    check_sandbox_exec()?;
    let paths = ProfilePaths {
        member_dir: PathBuf::from("/private/var/empty"),
        exe: PathBuf::from("/usr/bin/true"),
        bundle: None,
    };
    let text = profile(&paths).map_err(|e| format!("Seatbelt: {e}"))?;
    let out = Command::new(SANDBOX_EXEC)
        .args(sandbox_exec_args(text, &paths.exe, &[]))
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("Seatbelt: could not run {SANDBOX_EXEC}: {e}"))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "Seatbelt: {SANDBOX_EXEC} did not run a program under Hearth's worker profile on this macOS ({}): {}",
            out.status,
            said.trim()
        ));
    }
    ACCEPTED.store(true, Ordering::Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(member: &str) -> ProfilePaths {
        ProfilePaths {
            member_dir: member.into(),
            exe: "/Applications/Hearth.app/Contents/MacOS/hearth".into(),
            bundle: Some("/Applications/Hearth.app".into()),
        }
    }

    const ANA: &str = "/Library/Application Support/Hearth/members/ana";

    /// The rules of a profile, one per line, comments and blank lines left out.
    fn rules(profile: &str) -> Vec<&str> {
        profile.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with(';')).collect()
    }

    /// Reads an SBPL profile the way the TinyScheme reader would, far enough to prove its
    /// shape: balanced parentheses outside strings, every string closed, and no escape but
    /// `\"` and `\\`. Returns the string literals in order, unescaped.
    fn read_sbpl(profile: &str) -> Vec<String> {
        let mut depth = 0i32;
        let mut strings = Vec::new();
        let mut chars = profile.chars();
        while let Some(c) = chars.next() {
            match c {
                ';' => {
                    for c in chars.by_ref() {
                        if c == '\n' {
                            break;
                        }
                    }
                }
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    assert!(depth >= 0, "unbalanced `)` in:\n{profile}");
                }
                '"' => {
                    let mut s = String::new();
                    loop {
                        match chars.next().expect("unterminated string") {
                            '"' => break,
                            '\\' => match chars.next().expect("dangling escape") {
                                e @ ('"' | '\\') => s.push(e),
                                e => panic!("unexpected escape \\{e}"),
                            },
                            c => s.push(c),
                        }
                    }
                    strings.push(s);
                }
                _ => {}
            }
        }
        assert_eq!(depth, 0, "unbalanced `(` in:\n{profile}");
        strings
    }

    /// The denies that close every profile, in order.
    const DENIES: [&str; 4] = [
        "(deny file-link)",
        "(deny file-write-create (vnode-type SYMLINK))",
        "(deny file-write-mode (vnode-type DIRECTORY))",
        "(deny file-write-acl file-write-setugid)",
    ];

    #[test]
    fn it_denies_by_default_and_adds_no_service_fork_or_network() {
        let p = profile(&paths(ANA)).unwrap();
        read_sbpl(&p);
        let rules = rules(&p);
        assert_eq!(rules[..3], ["(version 1)", "(deny default)", r#"(import "system.sb")"#]);
        // Between `(deny default)` and the closing denies every rule allows, so their order
        // cannot matter; the denies are last, so no allow can undo them.
        let (middle, end) = rules[2..].split_at(rules.len() - 2 - DENIES.len());
        assert!(middle.iter().all(|r| r.starts_with("(allow") || r.starts_with("(import")), "{p}");
        assert_eq!(end, DENIES, "{p}");
        let text = middle.join("\n");
        for never in ["(allow default", "process-fork", "mach-", "network", "system-socket", "iokit", "ipc-", "sysctl"]
        {
            assert!(!text.contains(never), "{never} in:\n{p}");
        }
        // It executes exactly one program: the worker.
        let exec: Vec<_> = rules.iter().filter(|r| r.contains("process-exec")).collect();
        assert_eq!(exec, [&r#"(allow process-exec (literal "/Applications/Hearth.app/Contents/MacOS/hearth"))"#]);
    }

    #[test]
    fn it_writes_only_under_the_member_dir() {
        let p = profile(&paths(ANA)).unwrap();
        let writes: Vec<_> =
            rules(&p).into_iter().filter(|r| r.contains("file-write") && r.starts_with("(allow")).collect();
        assert_eq!(
            writes,
            [
                r#"(allow file-read* file-write-data (literal "/dev/null"))"#,
                r#"(allow file-read* file-write* (subpath "/Library/Application Support/Hearth/members/ana"))"#,
            ]
        );
        // Nothing in the member directory may be executed or mapped executable.
        let member_rules: Vec<_> = rules(&p).into_iter().filter(|r| r.contains("/members/")).collect();
        assert_eq!(member_rules.len(), 1, "{member_rules:?}");
        assert!(!member_rules[0].contains("exec"), "{member_rules:?}");
    }

    #[test]
    fn it_never_names_another_members_dir() {
        let ana = profile(&paths(ANA)).unwrap();
        let bo = profile(&paths("/Library/Application Support/Hearth/members/bo")).unwrap();
        assert!(!ana.contains("members/bo"), "{ana}");
        assert!(!bo.contains("members/ana"), "{bo}");
        // The member directory is named once; the data directory above it is never granted.
        assert_eq!(ana.matches("/Hearth/members/").count(), 1, "{ana}");
        assert!(!ana.contains(r#"(subpath "/Library/Application Support/Hearth")"#), "{ana}");
    }

    #[test]
    fn it_allows_no_socket_at_all() {
        // The connection to the gateway is inherited on fd 3: no rule for a socket, whichever.
        let p = profile(&paths(ANA)).unwrap();
        let net: Vec<_> = rules(&p)
            .into_iter()
            .filter(|r| r.contains("network") || r.contains("socket") || r.contains("unix"))
            .collect();
        assert!(net.is_empty(), "{net:?}");
    }

    #[test]
    fn no_link_no_opened_folder_no_acl() {
        let p = profile(&paths(ANA)).unwrap();
        let rules = rules(&p);
        // After the member directory's `file-write*`, which would allow them.
        let member = rules.iter().position(|r| r.contains("/members/ana")).unwrap();
        for deny in DENIES {
            let at = rules.iter().position(|r| *r == deny).unwrap_or_else(|| panic!("{deny} missing:\n{p}"));
            assert!(at > member, "{deny} comes before the member directory's rule");
        }
        // Unfiltered: anywhere, not only in the member directory.
        assert!(rules.contains(&"(deny file-link)"));
    }

    #[test]
    fn every_path_it_names_is_canonical() {
        let p = profile(&paths(ANA)).unwrap();
        for s in read_sbpl(&p).iter().filter(|s| s.starts_with('/')) {
            for symlinked in ["/var/", "/tmp/", "/etc/"] {
                assert!(!s.starts_with(symlinked), "{s} is a symbolic link's spelling on macOS");
            }
        }
    }

    #[test]
    fn a_bare_binary_gets_no_bundle_rule() {
        let bare = ProfilePaths { member_dir: ANA.into(), exe: "/usr/local/bin/hearth".into(), bundle: None };
        let p = profile(&bare).unwrap();
        let reads: Vec<_> = rules(&p).into_iter().filter(|r| r.contains("/usr/local")).collect();
        assert_eq!(
            reads,
            [
                r#"(allow process-exec (literal "/usr/local/bin/hearth"))"#,
                r#"(allow file-read* file-map-executable (literal "/usr/local/bin/hearth"))"#,
            ]
        );
        assert_eq!(
            app_bundle(Path::new("/Applications/Hearth.app/Contents/MacOS/hearth")),
            Some(Path::new("/Applications/Hearth.app"))
        );
        assert_eq!(app_bundle(Path::new("/usr/local/bin/hearth")), None);
        assert_eq!(app_bundle(Path::new("/opt/Hearth/Contents/MacOS/hearth")), None);
        assert_eq!(app_bundle(Path::new("/x.app/Contents/Resources/hearth")), None);
    }

    #[test]
    fn quotes_and_backslashes_are_escaped_and_cannot_end_a_rule() {
        let dir = r#"/Users/o"brien/x\y ) (allow default) ; z"#;
        let p = profile(&paths(dir)).unwrap();
        assert!(p.contains(r#"(subpath "/Users/o\"brien/x\\y ) (allow default) ; z")"#), "{p}");
        assert!(read_sbpl(&p).iter().any(|s| s == dir));
        assert!(!rules(&p).contains(&"(allow default)"));

        // Every string of up to three characters from an alphabet of troublemakers reads back
        // as itself, and the profile stays balanced.
        let alphabet = ['"', '\\', '(', ')', ';', ' ', 'a', 'é', '#', '|'];
        let mut names = vec![String::new()];
        for _ in 0..3 {
            let longer: Vec<String> =
                names.iter().flat_map(|n| alphabet.iter().map(move |c| format!("{n}{c}"))).collect();
            names.extend(longer);
        }
        for name in names.iter().filter(|n| !n.is_empty()) {
            let dir = format!("/data/{name}");
            let p = profile(&paths(&dir)).unwrap();
            assert!(read_sbpl(&p).contains(&dir), "{dir:?} did not read back from:\n{p}");
        }
    }

    #[test]
    fn paths_a_profile_cannot_name_are_refused() {
        for (dir, why) in [
            ("/data/a\nb", "line break"),
            ("/data/a\rb", "line break"),
            ("/data/a\0b", "NUL"),
            ("/data/a\tb", "control character"),
            ("/data/a\u{7f}b", "control character"),
            ("data/ana", "absolute"),
            ("/data/../etc", "`..`"),
        ] {
            let err = profile(&paths(dir)).unwrap_err().to_string();
            assert!(err.contains(why), "{dir:?}: {err}");
        }
        // The binary is checked the same way.
        let newline_exe = ProfilePaths { exe: "/bin/a\nb".into(), ..paths(ANA) };
        assert!(profile(&newline_exe).is_err());
        use std::os::unix::ffi::OsStrExt;
        let not_utf8 = Path::new(std::ffi::OsStr::from_bytes(b"/data/\xff"));
        let err = sbpl_string(not_utf8).unwrap_err().to_string();
        assert!(err.contains("UTF-8"), "{err}");
        // Trailing and repeated slashes and `.` components are dropped, not refused.
        assert_eq!(sbpl_string(Path::new("//data//./ana/")).unwrap(), r#""/data/ana""#);
    }

    #[test]
    fn paths_are_canonicalized_at_prepare_time() {
        let tmp = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(tmp.path()).unwrap();
        std::fs::create_dir(real.join("members")).unwrap();
        std::fs::create_dir(real.join("members/ana")).unwrap();
        std::fs::create_dir(real.join("bin")).unwrap();
        std::fs::write(real.join("bin/hearth"), b"").unwrap();
        // `data` is a symbolic link to the real directory, as /var is to /private/var on macOS.
        let link = real.join("data");
        std::os::unix::fs::symlink(&real, &link).unwrap();

        let resolved = ProfilePaths::resolve(&link.join("members/ana"), &link.join("bin/hearth")).unwrap();
        assert_eq!(resolved.member_dir, real.join("members/ana"));
        assert_eq!(resolved.exe, real.join("bin/hearth"));
        assert_eq!(resolved.bundle, None);
        let p = profile(&resolved).unwrap();
        assert!(!p.contains(&link.display().to_string()), "{p}");

        // A socket that does not exist yet resolves through its parent directory.
        assert_eq!(canonical_path(&link.join("workers.sock")).unwrap(), real.join("workers.sock"));
        assert!(canonical_path(Path::new("relative.sock")).is_err());

        // A member directory that is itself a symbolic link is refused, as on Linux.
        std::os::unix::fs::symlink(real.join("members/ana"), real.join("members/bo")).unwrap();
        let err = ProfilePaths::resolve(&real.join("members/bo"), &real.join("bin/hearth")).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        // So is a worker binary the worker itself could rewrite.
        std::fs::write(real.join("members/ana/hearth"), b"").unwrap();
        let err = ProfilePaths::resolve(&real.join("members/ana"), &real.join("members/ana/hearth")).unwrap_err();
        assert!(err.to_string().contains("inside the member directory"), "{err}");
        // And a binary or directory that is missing.
        assert!(ProfilePaths::resolve(&real.join("members/cy"), &real.join("bin/hearth")).is_err());
        assert!(ProfilePaths::resolve(&real.join("members/ana"), &real.join("bin/missing")).is_err());
    }

    /// Runs `exe args…` under a profile for `member` the way a worker is run.
    #[cfg(target_os = "macos")]
    fn run_confined(member: &Path, exe: &str, args: &[&Path]) -> std::process::Output {
        let paths = ProfilePaths::resolve(member, Path::new(exe)).unwrap();
        let text = profile(&paths).unwrap();
        let args: Vec<OsString> = args.iter().map(|a| a.as_os_str().to_owned()).collect();
        std::process::Command::new(SANDBOX_EXEC)
            .args(sandbox_exec_args(text, &paths.exe, &args))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }

    /// macOS only: the profile compiles, and a program under it reads and writes its member
    /// directory (a temporary one, under `/var/folders` — a symbolic link's spelling) and
    /// nothing beside it, and runs no other program.
    #[cfg(target_os = "macos")]
    #[test]
    fn on_macos_files_are_confined_to_the_member_dir() {
        probe().unwrap();
        let member = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let (mine, theirs) = (member.path().join("mine"), other.path().join("theirs"));
        std::fs::write(&mine, b"mine").unwrap();
        std::fs::write(&theirs, b"theirs").unwrap();

        let read = run_confined(member.path(), "/bin/cat", &[&mine]);
        assert!(read.status.success(), "{}", String::from_utf8_lossy(&read.stderr));
        assert_eq!(read.stdout, b"mine");
        assert!(!run_confined(member.path(), "/bin/cat", &[&theirs]).status.success());

        let created = member.path().join("new");
        assert!(run_confined(member.path(), "/usr/bin/touch", &[&created]).status.success());
        assert!(created.exists());
        let outside = other.path().join("new");
        assert!(!run_confined(member.path(), "/usr/bin/touch", &[&outside]).status.success());
        assert!(!outside.exists());

        // The binary may not start anything else.
        let env = run_confined(member.path(), "/usr/bin/env", &[Path::new("/usr/bin/true")]);
        assert!(!env.status.success(), "env ran another program under the profile");
    }

    /// macOS only: no socket can be reached, not even one beside the member's folder, and no
    /// link can be made in the member's folder.
    #[cfg(target_os = "macos")]
    #[test]
    fn on_macos_no_socket_connects_and_no_link_is_made() {
        probe().unwrap();
        let member = tempfile::tempdir().unwrap();
        let sockets = tempfile::tempdir().unwrap();
        let other = sockets.path().join("other.sock");
        let listener = std::os::unix::net::UnixListener::bind(&other).unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                drop(conn);
            }
        });
        let nc = run_confined(member.path(), "/usr/bin/nc", &[Path::new("-U"), &other]);
        assert!(!nc.status.success(), "a Unix socket was reached from the sandbox");
        let target = member.path().join("target");
        std::fs::write(&target, b"x").unwrap();
        let soft = member.path().join("soft");
        assert!(!run_confined(member.path(), "/bin/ln", &[Path::new("-s"), &target, &soft]).status.success());
        assert!(std::fs::symlink_metadata(&soft).is_err());
        let hard = member.path().join("hard");
        assert!(!run_confined(member.path(), "/bin/ln", &[&target, &hard]).status.success());
        assert!(!hard.exists());
        assert!(!run_confined(member.path(), "/bin/chmod", &[Path::new("777"), member.path()]).status.success());
    }

    #[test]
    fn sandbox_exec_runs_the_worker_after_its_options() {
        let args = sandbox_exec_args(
            "(version 1)".into(),
            Path::new("/usr/local/bin/hearth"),
            &["worker".into(), "-p".into()],
        );
        assert_eq!(args, ["-p", "(version 1)", "--", "/usr/local/bin/hearth", "worker", "-p"]);
    }
}
