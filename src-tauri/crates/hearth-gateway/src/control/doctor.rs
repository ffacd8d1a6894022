//! `hearth doctor`: the isolation level actually in force for each member, and findings in the
//! manner of a security audit — each with what to do about it. Everything is read from the
//! running system (file modes and owners, ACLs, the kernel's view of worker processes), never
//! from what the gateway believes it set up.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use hearth_proto::control::{DoctorReport, Finding, IsolationLevel, MemberDoctor, Severity};

use crate::core::{Engine, Roster};
use crate::secrets::SecretsBackend;
use crate::store::MemberRow;

fn finding(severity: Severity, what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding { severity, what: what.into(), fix: fix.into() }
}

/// The command that removes a file's ACL (and, below, a whole directory's).
const ACL_CLEAR: &str = if cfg!(target_os = "macos") { "chmod -N" } else { "setfacl -b" };
const ACL_CLEAR_ALL: &str = if cfg!(target_os = "macos") { "chmod -RN" } else { "setfacl -bR" };

/// What the kernel's process table says about a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcessView {
    real_uid: u32,
    effective_uid: u32,
    /// It leads its own session; `None` when the kernel would not say.
    session_leader: Option<bool>,
}

/// Reads a process through sysinfo: the same call on Linux and macOS (which has no `/proc`), so
/// the uid check runs on both. `None` when the process is gone.
fn process_view(pid: u32) -> Option<ProcessView> {
    use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};
    let pid = Pid::from_u32(pid);
    let mut system = System::new();
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        true,
        ProcessRefreshKind::nothing().with_user(UpdateKind::Always),
    );
    let process = system.process(pid)?;
    Some(ProcessView {
        real_uid: **process.user_id()?,
        effective_uid: **process.effective_user_id()?,
        session_leader: process.session_id().map(|session| session == pid),
    })
}

/// The uid check of a running worker.
fn process_findings(pid: u32, expected_uid: u32, view: Option<ProcessView>) -> Vec<Finding> {
    match view {
        Some(v) if v.real_uid != expected_uid || v.effective_uid != expected_uid => vec![finding(
            Severity::Critical,
            format!("The member's worker (pid {pid}) runs as uid {}/{}, not {expected_uid}.", v.real_uid, v.effective_uid),
            "Remove and re-add the member, and report this: it should never happen.",
        )],
        Some(_) => Vec::new(),
        None => vec![finding(Severity::Info, format!("The member's worker (pid {pid}) just exited."), "Nothing to do.")],
    }
}

/// Where `/proc` is missing (macOS): the session is checked from the process table, and the
/// facts only Linux reports (controlling terminal, seccomp, no_new_privs, memory limit) are said
/// to be unchecked rather than passed over in silence.
fn without_proc_findings(pid: u32, view: ProcessView) -> Vec<Finding> {
    let mut out = Vec::new();
    if view.session_leader == Some(false) {
        out.push(finding(
            Severity::Critical,
            format!("The member's worker (pid {pid}) shares a session with the process that started it, so it could type into that terminal."),
            "Restart Hearth (and `hearth supervisor`, if it starts the workers) so every worker is started by this version.",
        ));
    }
    out.push(finding(
        Severity::Info,
        format!("The member's worker (pid {pid}): its terminal, seccomp filter, no_new_privs and memory limit are read from /proc, which only Linux has; on this system they are not checked here."),
        "Nothing to do.",
    ));
    out
}

/// Files under `dir` (not following links, at most `limit` entries) that other users may read
/// or write.
fn exposed_files(dir: &Path, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    let mut seen = 0;
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            seen += 1;
            if seen > limit {
                return out;
            }
            let Ok(meta) = e.path().symlink_metadata() else { continue };
            if meta.file_type().is_symlink() {
                continue;
            }
            if meta.permissions().mode() & 0o006 != 0 && e.path().extension().is_none_or(|x| x != "sock") {
                out.push(e.path().display().to_string());
            }
            if meta.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

/// The audit, from the live system.
pub(super) fn doctor(e: &Engine) -> DoctorReport {
    Doctor(e).report()
}

/// The gateway being audited: what it runs and where, never what it believes it set up.
struct Doctor<'a>(&'a Engine);

impl Doctor<'_> {
    fn report(&self) -> DoctorReport {
        let level = self.0.workers.level();
        let support = hearth_isolation::sandbox::support();
        let root = self.0.dir.root().to_owned();
        let me = nix::unistd::geteuid().as_raw();
        let mut findings = Vec::new();

        match level {
            IsolationLevel::Process => findings.push(finding(
                Severity::Warning,
                "Workers run as the gateway's own OS user (level \"process\"): members are kept apart by directories only, so a misbehaving assistant could read another member's files.",
                "Run Hearth as root on Linux (the hearth service does), or run `hearth supervisor` as root and start the gateway with --supervisor-socket (on macOS: approve the Hearth supervisor in System Settings → General → Login Items), so each member gets an OS account.",
            )),
            IsolationLevel::Account => findings.push(finding(
                Severity::Warning,
                format!(
                    "The kernel sandbox is not in force, so a worker may make network and Unix sockets, write wherever its account may, and open its own folder to other users with chmod: {}",
                    support.detail
                ),
                if cfg!(target_os = "macos") {
                    "Level \"account + sandbox\" on macOS needs /usr/bin/sandbox-exec, owned by root, to accept Hearth's profile; the reason above says what it answered."
                } else {
                    "Use a Linux kernel with Landlock (5.13 or later) and seccomp for level \"account + sandbox\"."
                },
            )),
            IsolationLevel::AccountSandbox => {}
        }

        findings.push(finding(
            Severity::Info,
            format!("What protects each worker: {}.", hearth_isolation::spawn::protections(level).join("; ")),
            "Nothing to do; each member's findings below say what the kernel reports for their running worker.",
        ));
        if let Some(path) = self.0.workers.supervisor() {
            findings.push(finding(
                Severity::Info,
                format!(
                    "The gateway runs without root; the Hearth supervisor at {} creates members' accounts and starts their workers.",
                    path.display()
                ),
                "Nothing to do. Keep `hearth supervisor` running (it is the only part of Hearth with root).",
            ));
        }
        match std::fs::metadata(&root) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o022 != 0 {
                    findings.push(finding(
                        Severity::Critical,
                        format!("The data directory {} can be written by other users (mode {mode:o}).", root.display()),
                        format!("chmod 711 {}", root.display()),
                    ));
                } else if mode & 0o044 != 0 {
                    findings.push(finding(
                        Severity::Warning,
                        format!("Other users can list the data directory {} (mode {mode:o}).", root.display()),
                        format!("chmod 711 {}", root.display()),
                    ));
                }
                if meta.uid() != me {
                    findings.push(finding(
                        Severity::Critical,
                        format!("The data directory is owned by uid {}, not by the gateway's user (uid {me}).", meta.uid()),
                        format!("chown -R {me} {}", root.display()),
                    ));
                }
            }
            Err(e) => findings.push(finding(Severity::Critical, format!("The data directory cannot be read: {e}"), "Check the disk and the path.")),
        }
        let secrets = &self.0.secrets;
        if secrets.backend() == SecretsBackend::Keychain {
            findings.push(finding(
                Severity::Info,
                format!("Bot tokens and API keys are kept in {}, not in a file.", secrets.place()),
                "Nothing to do. The Keychain keeps them for the admin's account only; Keychain Access shows the item.",
            ));
            if self.0.dir.secrets().exists() {
                findings.push(finding(
                    Severity::Warning,
                    format!(
                        "A secrets file {} is in the data folder although secrets are kept in the Keychain.",
                        self.0.dir.secrets().display()
                    ),
                    "Restart Hearth: it imports the file into the Keychain, then deletes it (the log says why if not).",
                ));
            }
        }
        // A secrets file is checked whenever there is one, whatever keeps the secrets.
        for (path, what, severity) in [
            (self.0.dir.secrets(), "the secrets file (bot tokens and API keys)", Severity::Critical),
            (self.0.dir.database(), "the gateway database", Severity::Warning),
        ] {
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                findings.push(finding(
                    severity,
                    format!("Other users may read {what} ({}, mode {mode:o}).", path.display()),
                    format!("chmod 600 {}", path.display()),
                ));
            }
            if meta.uid() != me {
                findings.push(finding(
                    Severity::Critical,
                    format!("{what} is owned by uid {}, not by the gateway's user.", meta.uid()),
                    format!("chown {me} {}", path.display()),
                ));
            }
            if hearth_isolation::dirs::has_acl(&path) {
                findings.push(finding(severity, format!("{what} carries an ACL that may grant others access."), format!("{} {}", ACL_CLEAR, path.display())));
            }
        }
        for stray in exposed_files(&self.0.dir.run_dir(), 200) {
            findings.push(finding(Severity::Warning, format!("{stray} is readable by other users."), format!("chmod o-rwx {stray}")));
        }
        findings.push(finding(
            Severity::Info,
            "Strangers who write to a bot get one short reply an hour, an audit row, and nothing else: no AI, no spend, no data.",
            "Nothing to do.",
        ));
        findings.extend(self.data_folder_findings());
        findings.extend(self.orphan_findings());

        let members: Vec<MemberRow> = self.0.members.read(Roster::list);
        let members = members.into_iter().map(|m| self.member_doctor(&m, level, me)).collect();
        DoctorReport { isolation: level, sandbox_support: support.detail, members, findings }
    }

    fn member_doctor(&self, m: &MemberRow, level: IsolationLevel, me: u32) -> MemberDoctor {
        let mut findings = Vec::new();
        let account = if level == IsolationLevel::Process {
            None
        } else {
            match hearth_isolation::accounts::find_account(&m.id) {
                Ok(a) => a,
                Err(e) => {
                    findings.push(finding(Severity::Critical, format!("The member's OS account is not usable: {e}"), "Restart Hearth as root; it recreates and re-verifies accounts."));
                    None
                }
            }
        };
        let expected_uid = account.as_ref().map(|a| a.uid).unwrap_or(me);
        let dir = root_member_dir(self.0.dir.root(), &m.id);
        match dir.as_deref().map(std::fs::symlink_metadata) {
            Some(Ok(meta)) if meta.file_type().is_symlink() => findings.push(finding(
                Severity::Critical,
                "The member's directory is a symbolic link.",
                "Remove the link; Hearth recreates the directory at the next message.",
            )),
            Some(Ok(meta)) => {
                let dir = dir.clone().expect("matched Some");
                let mode = meta.permissions().mode() & 0o777;
                if mode != 0o700 {
                    findings.push(finding(
                        if mode & 0o007 != 0 { Severity::Critical } else { Severity::Warning },
                        format!("The member's directory has mode {mode:o}, not 700.", ),
                        format!("chmod 700 {}", dir.display()),
                    ));
                }
                if meta.uid() != expected_uid {
                    findings.push(finding(
                        Severity::Critical,
                        format!("The member's directory is owned by uid {}, not by {} (uid {expected_uid}).", meta.uid(), account.as_ref().map(|a| a.name.as_str()).unwrap_or("the gateway's user")),
                        "Restart Hearth; it sets the owner before the next worker starts.",
                    ));
                }
                if hearth_isolation::dirs::has_acl(&dir) {
                    findings.push(finding(Severity::Warning, "The member's directory carries an ACL that may grant others access.", format!("{} {}", ACL_CLEAR_ALL, dir.display())));
                }
                for stray in exposed_files(&dir, 2_000) {
                    findings.push(finding(Severity::Warning, format!("{stray} is readable by other users."), format!("chmod o-rwx {stray}")));
                }
            }
            Some(Err(_)) | None => findings.push(finding(Severity::Info, "The member has no directory yet; it is made at their first message.", "Nothing to do.")),
        }
        let worker_pid = self.0.workers.pid(&m.id);
        if let Some(pid) = worker_pid {
            let view = process_view(pid);
            findings.extend(process_findings(pid, expected_uid, view));
            match (hearth_isolation::spawn::inspect(pid), view) {
                (Some(facts), _) => findings.extend(worker_facts_findings(pid, level, &facts)),
                (None, Some(view)) if !cfg!(target_os = "linux") => findings.extend(without_proc_findings(pid, view)),
                (None, _) => {}
            }
        }
        if m.telegram_user_id.is_none() {
            findings.push(finding(Severity::Info, "Not paired with a Telegram account yet.", format!("hearth member pair {}", m.name)));
        }
        findings.extend(self.disk_finding(&m.id));
        MemberDoctor {
            id: m.id.clone(),
            name: m.name.clone(),
            isolation: level,
            account: account.as_ref().map(|a| a.name.clone()),
            uid: account.as_ref().map(|a| a.uid),
            worker_pid,
            findings,
        }
    }
}

/// What the kernel reports about a running worker, held against what its level promises.
fn worker_facts_findings(
    pid: u32,
    level: IsolationLevel,
    facts: &hearth_isolation::spawn::WorkerFacts,
) -> Vec<Finding> {
    let restart = "Restart Hearth (and `hearth supervisor`, if it starts the workers) so every worker is started by this version.";
    let mut out = Vec::new();
    if facts.controlling_terminal || !facts.session_leader {
        out.push(finding(
            Severity::Critical,
            format!("The member's worker (pid {pid}) shares a session or a terminal with the process that started it, so it could type into that terminal."),
            restart,
        ));
    }
    if level != IsolationLevel::Process {
        if cfg!(target_os = "linux") && facts.address_space != Some(hearth_isolation::spawn::LIMIT_AS) {
            out.push(finding(
                Severity::Warning,
                format!(
                    "The member's worker (pid {pid}) has no memory limit (address space: {:?} bytes).",
                    facts.address_space
                ),
                restart,
            ));
        }
        if !facts.no_new_privs {
            out.push(finding(
                Severity::Critical,
                format!("The member's worker (pid {pid}) may gain privileges (no_new_privs is off)."),
                restart,
            ));
        }
    }
    if level == IsolationLevel::AccountSandbox && !facts.seccomp_filter {
        out.push(finding(
            Severity::Critical,
            format!("The member's worker (pid {pid}) runs without its seccomp filter, although the level is \"account + sandbox\"."),
            restart,
        ));
    }
    out
}

impl Doctor<'_> {
    /// What the start-up check of the data folder (`data_dir::prepare`) established, checked
    /// again now: a folder that has since become changeable by others is a finding.
    fn data_folder_findings(&self) -> Vec<Finding> {
        let root = self.0.dir.root();
        match crate::data_dir::check(root) {
            Ok(real) => vec![finding(
                Severity::Info,
                format!(
                    "The data folder {} and every folder above it belong to you or root, nobody else can change them, \
                     and none carries an ACL that lets anyone in; the control socket's commands check who serves it \
                     before they send a key or a token.",
                    real.display()
                ),
                "Nothing to do. Hearth checks this at every start and refuses a folder that fails.",
            )],
            Err(e) => vec![finding(
                Severity::Critical,
                format!("The data folder is no longer safe: {e}"),
                "Fix it as said, then restart Hearth.",
            )],
        }
    }

    /// Member OS accounts on this machine that belong to no member of this household: made for
    /// a member since removed (a warning: this household's own leftover), for a household whose
    /// folder is gone, or by an older Hearth that did not record its household (notes: they may
    /// be another household's). Accounts of another household that still exists are not named.
    fn orphan_findings(&self) -> Vec<Finding> {
        use hearth_isolation::accounts::{self, OrphanReason};
        let members: std::collections::BTreeSet<String> = self.0.members.read(|r| r.ids().cloned().collect());
        let root = self.0.dir.root();
        let household = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_owned());
        let all = match accounts::list_accounts() {
            Ok(all) => all,
            Err(e) => {
                return vec![finding(
                    Severity::Info,
                    format!("Member accounts left over could not be looked for: {e}"),
                    "Nothing to do unless members were removed or a data folder deleted; then run `sudo hearth doctor --fix-orphans`.",
                )];
            }
        };
        accounts::orphans(&all, &members, &household, accounts::holds_household)
            .into_iter()
            .map(|o| {
                let name = &o.found.account.name;
                let severity = match o.reason {
                    OrphanReason::FormerMember => Severity::Warning,
                    OrphanReason::HouseholdGone(_) | OrphanReason::Unrecorded => Severity::Info,
                };
                let fix = if o.removable() {
                    format!("sudo hearth doctor --fix-orphans (it removes {name}, unless it still runs processes or its member folder is still there)")
                } else {
                    format!("If no other Hearth household on this machine uses it: sudo userdel {name}")
                };
                finding(severity, o.to_string(), fix)
            })
            .collect()
    }

    /// The member's folder against the disk quota (`quota.rs`), when it was measured.
    fn disk_finding(&self, member_id: &str) -> Option<Finding> {
        let usage = self.0.quotas.usage(member_id)?;
        let mb = |b: u64| b.div_ceil(1 << 20);
        Some(match usage.quota_bytes {
            Some(quota) if usage.over() => finding(
                Severity::Warning,
                format!(
                    "The member's folder takes {} MB, more than the household's disk quota of {} MB: their assistant takes no new messages until it is smaller.",
                    mb(usage.bytes),
                    mb(quota)
                ),
                "Free space in their folder (export it first with `hearth member export`), or raise the quota: `hearth household disk-quota MB`.",
            ),
            Some(quota) => finding(
                Severity::Info,
                format!("The member's folder takes {} MB of the {} MB disk quota.", mb(usage.bytes), mb(quota)),
                "Nothing to do.",
            ),
            None => finding(
                Severity::Info,
                format!("The member's folder takes {} MB; there is no disk quota.", mb(usage.bytes)),
                "Set one with `hearth household disk-quota MB` so one member cannot fill the disk.",
            ),
        })
    }
}

fn root_member_dir(data: &Path, id: &str) -> Option<std::path::PathBuf> {
    hearth_isolation::dirs::member_dir(data, id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(own_session: bool) -> std::process::Child {
        use std::os::unix::process::CommandExt as _;
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("30");
        if own_session {
            // SAFETY: setsid is async-signal-safe, and nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(|| nix::unistd::setsid().map(drop).map_err(std::io::Error::from));
            }
        }
        cmd.spawn().expect("sleep runs")
    }

    /// The path macOS takes too: the process table, not /proc.
    #[test]
    fn the_process_table_tells_uid_and_session_and_a_gone_process_is_none() {
        let (uid, euid) = (nix::unistd::getuid().as_raw(), nix::unistd::geteuid().as_raw());
        let mut plain = sleeper(false);
        let mut leader = sleeper(true);
        assert_eq!(
            process_view(plain.id()),
            Some(ProcessView { real_uid: uid, effective_uid: euid, session_leader: Some(false) })
        );
        assert_eq!(process_view(leader.id()).map(|v| v.session_leader), Some(Some(true)));
        for child in [&mut plain, &mut leader] {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        assert_eq!(process_view(plain.id()), None);
    }

    #[test]
    fn a_worker_under_another_uid_is_critical_and_a_gone_one_is_a_note() {
        let view = |uid| Some(ProcessView { real_uid: uid, effective_uid: uid, session_leader: Some(true) });
        assert!(process_findings(7, 1000, view(1000)).is_empty());
        let wrong = process_findings(7, 1000, view(0));
        assert_eq!(wrong.len(), 1);
        assert_eq!(wrong[0].severity, Severity::Critical);
        assert!(wrong[0].what.contains("uid 0/0, not 1000"), "{}", wrong[0].what);
        let gone = process_findings(7, 1000, None);
        assert_eq!((gone.len(), gone[0].severity), (1, Severity::Info));
    }

    #[test]
    fn without_proc_the_session_is_checked_and_the_rest_said_to_be_unchecked() {
        let view = |leader| ProcessView { real_uid: 1, effective_uid: 1, session_leader: leader };
        let shared = without_proc_findings(7, view(Some(false)));
        assert_eq!(shared.iter().map(|f| f.severity).collect::<Vec<_>>(), vec![Severity::Critical, Severity::Info]);
        for own in [Some(true), None] {
            let fine = without_proc_findings(7, view(own));
            assert_eq!(fine.len(), 1);
            assert!(fine[0].what.contains("only Linux has"), "{}", fine[0].what);
        }
    }
}
