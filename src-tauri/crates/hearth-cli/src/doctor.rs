//! `hearth doctor`: the gateway's security self-check, printed like an audit — the isolation
//! level in force and the sandbox the kernel offers, then per member the level their worker runs
//! at and what is wrong, then what is wrong with the gateway itself; each finding with what to do
//! about it. The exit code is the verdict (see [`exit_code`]), with or without `--json`.

use std::path::Path;

use hearth_proto::control::{
    ControlReply, ControlRequest, DoctorReport, Finding, IsolationLevel, MemberDoctor, Severity,
};

use crate::admin::{ask, print_json, unexpected_reply};
use crate::args::DoctorArgs;
use crate::failure::{EXIT_DOCTOR_CRITICAL, EXIT_DOCTOR_WARNINGS, Failure};

/// Asks the running gateway for its report, prints it and returns the verdict's exit code;
/// with `--fix-orphans`, removes this household's left-over accounts first.
pub async fn run(data_dir: &Path, args: DoctorArgs) -> Result<u8, Failure> {
    if args.fix_orphans {
        fix_orphans(data_dir).await?;
    }
    match ask(data_dir, ControlRequest::Doctor).await? {
        ControlReply::Doctor(report) => {
            if args.json {
                print_json(&report);
            } else {
                print!("{}", render(&report));
            }
            Ok(exit_code(&report))
        }
        other => Err(unexpected_reply(&other)),
    }
}

/// Removes the accounts [`hearth_isolation::accounts::orphans`] finds for this household, each
/// checked again by `remove_orphan` (no process running, no member folder left); says on stderr
/// what it removed and what it kept, and why. Root decides from the account database itself;
/// the gateway is asked only who its members are, which cannot make it point at another
/// household's accounts (those name their own folder).
async fn fix_orphans(data_dir: &Path) -> Result<(), Failure> {
    use hearth_isolation::accounts;
    if !accounts::can_manage_accounts() {
        return Err(Failure::invalid_input(
            "--fix-orphans removes OS accounts, which needs root: run `sudo hearth doctor --fix-orphans`",
        ));
    }
    let members: std::collections::BTreeSet<String> = match ask(data_dir, ControlRequest::MemberList).await? {
        ControlReply::Members { members } => members.into_iter().map(|m| m.id).collect(),
        other => return Err(unexpected_reply(&other)),
    };
    let household = std::fs::canonicalize(data_dir)
        .map_err(|e| Failure::unexpected(format!("resolve the data folder {}: {e}", data_dir.display())))?;
    let all = tokio::task::spawn_blocking(accounts::list_accounts)
        .await
        .map_err(|e| Failure::unexpected(e.to_string()))?
        .map_err(|e| Failure::unexpected(e.to_string()))?;
    let found = accounts::orphans(&all, &members, &household, accounts::holds_household);
    if found.is_empty() {
        eprintln!("No left-over member accounts.");
    }
    for orphan in found {
        let name = orphan.found.account.name.clone();
        if !orphan.removable() {
            eprintln!("left alone: {orphan} If no other Hearth household on this machine uses it: sudo userdel {name}");
            continue;
        }
        let o = orphan.clone();
        match tokio::task::spawn_blocking(move || accounts::remove_orphan(&o)).await {
            Ok(Ok(())) => eprintln!("removed {name}: {orphan}"),
            Ok(Err(e)) => eprintln!("kept {name}: {e}"),
            Err(e) => eprintln!("kept {name}: {e}"),
        }
    }
    Ok(())
}

/// 0 when nothing is above info, 9 for warnings only, 10 when anything is critical.
pub fn exit_code(report: &DoctorReport) -> u8 {
    match all_findings(report).map(|f| f.severity).max() {
        Some(Severity::Critical) => EXIT_DOCTOR_CRITICAL,
        Some(Severity::Warning) => EXIT_DOCTOR_WARNINGS,
        Some(Severity::Info) | None => 0,
    }
}

fn all_findings(report: &DoctorReport) -> impl Iterator<Item = &Finding> {
    report.members.iter().flat_map(|m| &m.findings).chain(&report.findings)
}

/// The human report.
pub fn render(r: &DoctorReport) -> String {
    let mut out = format!("Isolation: {} — {}\n", r.isolation.as_str(), meaning(r.isolation));
    out += &format!("Sandbox support: {}\n", r.sandbox_support);
    out.push('\n');
    if r.members.is_empty() {
        out += "No members yet.\n";
    }
    for m in &r.members {
        out += &member_line(m);
        findings(&mut out, &m.findings, "  ");
    }
    out += "\nGateway:\n";
    findings(&mut out, &r.findings, "  ");
    out.push('\n');
    out += &verdict(r);
    out.push('\n');
    out
}

/// What a level means for the family, in a few words.
fn meaning(level: IsolationLevel) -> &'static str {
    match level {
        IsolationLevel::Process => "workers run as the gateway's own OS user (development only)",
        IsolationLevel::Account => "each member's worker runs as their own OS account",
        IsolationLevel::AccountSandbox => "each member's worker runs as their own OS account, in a kernel sandbox",
    }
}

fn member_line(m: &MemberDoctor) -> String {
    let account = match (&m.account, m.uid) {
        (Some(account), Some(uid)) => format!("account {account} (uid {uid})"),
        (Some(account), None) => format!("account {account}"),
        (None, Some(uid)) => format!("no own account (uid {uid})"),
        (None, None) => "no own account".into(),
    };
    let worker = m.worker_pid.map_or("no worker running".into(), |pid| format!("worker pid {pid}"));
    format!("{} ({}) · {} · {account} · {worker}\n", m.name, m.id, m.isolation.as_str())
}

fn findings(out: &mut String, findings: &[Finding], indent: &str) {
    if findings.is_empty() {
        *out += &format!("{indent}no findings\n");
    }
    for f in findings {
        let label = match f.severity {
            Severity::Critical => "CRITICAL",
            Severity::Warning => "WARNING",
            Severity::Info => "info",
        };
        *out += &format!("{indent}{label}: {}\n{indent}  → {}\n", f.what, f.fix);
    }
}

/// One line: "No problems found." or how many warnings and critical findings there are.
pub fn verdict(r: &DoctorReport) -> String {
    let count = |s: Severity| all_findings(r).filter(|f| f.severity == s).count();
    let (warnings, critical) = (count(Severity::Warning), count(Severity::Critical));
    if warnings == 0 && critical == 0 {
        return "No problems found.".into();
    }
    let plural = if warnings == 1 { "" } else { "s" };
    format!("{warnings} warning{plural}, {critical} critical.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(severity: Severity, what: &str, fix: &str) -> Finding {
        Finding { severity, what: what.into(), fix: fix.into() }
    }

    fn report(members: Vec<MemberDoctor>, findings: Vec<Finding>) -> DoctorReport {
        DoctorReport {
            isolation: IsolationLevel::AccountSandbox,
            sandbox_support: "Landlock ABI 4, seccomp".into(),
            members,
            findings,
        }
    }

    fn member(name: &str, findings: Vec<Finding>) -> MemberDoctor {
        MemberDoctor {
            id: format!("{}-7f3a", name.to_lowercase()),
            name: name.into(),
            isolation: IsolationLevel::AccountSandbox,
            account: Some(format!("hearth-{}", name.to_lowercase())),
            uid: Some(61_001),
            worker_pid: Some(4242),
            findings,
        }
    }

    #[test]
    fn the_exit_code_is_the_worst_finding() {
        let info = || finding(Severity::Info, "i", "f");
        let warning = || finding(Severity::Warning, "w", "f");
        let critical = || finding(Severity::Critical, "c", "f");
        assert_eq!(exit_code(&report(vec![], vec![])), 0);
        assert_eq!(exit_code(&report(vec![member("Rosa", vec![info()])], vec![info()])), 0);
        assert_eq!(exit_code(&report(vec![member("Rosa", vec![warning()])], vec![info()])), 9);
        assert_eq!(exit_code(&report(vec![member("Rosa", vec![])], vec![warning(), warning()])), 9);
        assert_eq!(exit_code(&report(vec![member("Rosa", vec![critical()])], vec![warning()])), 10);
        assert_eq!(exit_code(&report(vec![member("Rosa", vec![info()])], vec![critical()])), 10);

        assert_eq!(verdict(&report(vec![member("Rosa", vec![info()])], vec![])), "No problems found.");
        assert_eq!(verdict(&report(vec![member("Rosa", vec![warning()])], vec![])), "1 warning, 0 critical.");
        assert_eq!(
            verdict(&report(vec![member("Rosa", vec![warning(), critical()])], vec![warning()])),
            "2 warnings, 1 critical."
        );
    }

    #[test]
    fn doctor_report() {
        let mut leo = member("Leo", vec![]);
        (leo.uid, leo.worker_pid) = (Some(61_002), None);
        let mut sam = member(
            "Sam",
            vec![finding(
                Severity::Warning,
                "Sam's worker runs at isolation \"process\", as the gateway's own OS user",
                "restart `hearth serve` as root so Sam gets an OS account",
            )],
        );
        (sam.isolation, sam.account, sam.uid) = (IsolationLevel::Process, None, Some(1000));
        let mut ivo = member("Ivo", vec![]);
        (ivo.account, ivo.uid, ivo.worker_pid) = (Some("_hearth_ivo".into()), None, None);
        let r = report(
            vec![
                member(
                    "Rosa",
                    vec![
                        finding(
                            Severity::Critical,
                            "members/rosa-7f3a/notes.md is readable by other OS users (mode 0644)",
                            "chmod 600 /var/lib/hearth/members/rosa-7f3a/notes.md",
                        ),
                        finding(
                            Severity::Info,
                            "the worker is idle and will exit in 4 minutes",
                            "nothing to do; it starts again with the next message",
                        ),
                    ],
                ),
                leo,
                sam,
                ivo,
            ],
            vec![finding(
                Severity::Warning,
                "strangers who write to a bot get a reply",
                "set the stranger policy to \"ignore\" unless you want that",
            )],
        );
        insta::assert_snapshot!(render(&r));
        let empty = DoctorReport {
            isolation: IsolationLevel::Process,
            sandbox_support: "not checked at isolation \"process\"".into(),
            members: vec![],
            findings: vec![],
        };
        insta::assert_snapshot!("doctor_report_empty", render(&empty));
    }
}
