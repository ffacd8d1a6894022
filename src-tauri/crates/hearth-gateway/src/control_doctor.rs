//! `hearth doctor`: the isolation level actually in force for each member, and findings in the
//! manner of a security audit — each with what to do about it. Everything is read from the
//! running system (file modes and owners, ACLs, the kernel's view of worker processes), never
//! from what the gateway believes it set up.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use hearth_proto::control::{DoctorReport, Finding, IsolationLevel, MemberDoctor, Severity};

use crate::gateway::Gateway;
use crate::secrets::SecretsBackend;
use crate::store::MemberRow;

fn finding(severity: Severity, what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding { severity, what: what.into(), fix: fix.into() }
}

/// The command that removes a file's ACL (and, below, a whole directory's).
const ACL_CLEAR: &str = if cfg!(target_os = "macos") { "chmod -N" } else { "setfacl -b" };
const ACL_CLEAR_ALL: &str = if cfg!(target_os = "macos") { "chmod -RN" } else { "setfacl -bR" };

/// The real and effective uid of a process, from the kernel.
fn process_uids(pid: u32) -> Option<(u32, u32)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    let mut ids = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok());
    Some((ids.next()?, ids.next()?))
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
            if meta.permissions().mode() & 0o006 != 0 && !e.path().extension().is_some_and(|x| x == "sock") {
                out.push(e.path().display().to_string());
            }
            if meta.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

impl Gateway {
    pub(crate) fn doctor(&self) -> DoctorReport {
        let level = self.inner.workers.level();
        let support = hearth_isolation::sandbox::support();
        let root = self.inner.dir.root().to_owned();
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
                format!("The kernel sandbox is not in force: {}", support.detail),
                if cfg!(target_os = "macos") {
                    "Level \"account + sandbox\" on macOS needs /usr/bin/sandbox-exec, owned by root, to accept Hearth's profile; the reason above says what it answered."
                } else {
                    "Use a Linux kernel with Landlock (5.13 or later) and seccomp for level \"account + sandbox\"."
                },
            )),
            IsolationLevel::AccountSandbox => {}
        }

        if let Some(path) = self.inner.workers.supervisor() {
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
        let secrets = &self.inner.secrets;
        if secrets.backend() == SecretsBackend::Keychain {
            findings.push(finding(
                Severity::Info,
                format!("Bot tokens and API keys are kept in {}, not in a file.", secrets.place()),
                "Nothing to do. The Keychain keeps them for the admin's account only; Keychain Access shows the item.",
            ));
            if self.inner.dir.secrets().exists() {
                findings.push(finding(
                    Severity::Warning,
                    format!(
                        "A secrets file {} is in the data folder although secrets are kept in the Keychain.",
                        self.inner.dir.secrets().display()
                    ),
                    "Restart Hearth: it imports the file into the Keychain, then deletes it (the log says why if not).",
                ));
            }
        }
        // A secrets file is checked whenever there is one, whatever keeps the secrets.
        for (path, what, severity) in [
            (self.inner.dir.secrets(), "the secrets file (bot tokens and API keys)", Severity::Critical),
            (self.inner.dir.database(), "the gateway database", Severity::Warning),
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
        for stray in exposed_files(&self.inner.dir.run_dir(), 200) {
            findings.push(finding(Severity::Warning, format!("{stray} is readable by other users."), format!("chmod o-rwx {stray}")));
        }
        findings.push(finding(
            Severity::Info,
            "Strangers who write to a bot get one short reply an hour, an audit row, and nothing else: no AI, no spend, no data.",
            "Nothing to do.",
        ));

        let mut members: Vec<MemberRow> = self.inner.members.lock().unwrap().values().cloned().collect();
        members.sort_by_key(|m| m.seq);
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
        let dir = root_member_dir(self.inner.dir.root(), &m.id);
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
        let worker_pid = self.inner.workers.pid(&m.id);
        if let Some(pid) = worker_pid {
            match process_uids(pid) {
                Some((real, effective)) if real != expected_uid || effective != expected_uid => findings.push(finding(
                    Severity::Critical,
                    format!("The member's worker (pid {pid}) runs as uid {real}/{effective}, not {expected_uid}."),
                    "Remove and re-add the member, and report this: it should never happen.",
                )),
                Some(_) => {}
                None => findings.push(finding(Severity::Info, format!("The member's worker (pid {pid}) just exited."), "Nothing to do.")),
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

impl Gateway {
    /// The member's folder against the disk quota (`quota.rs`), when it was measured.
    fn disk_finding(&self, member_id: &str) -> Option<Finding> {
        let usage = self.disk_usage(member_id)?;
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
