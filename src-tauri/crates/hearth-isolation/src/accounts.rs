//! One OS account per member, with a primary group of its own.
//!
//! The account is the boundary between members: a worker runs as it, and the member's directory
//! belongs to it. Every function here that changes the account database needs root
//! ([`can_manage_accounts`]); the gateway calls them from the in-process supervisor (Linux,
//! running as root) or the `hearth supervisor` daemon.
//!
//! An account is never trusted because of its name alone: [`ensure_account`] re-reads it and
//! checks name ↔ uid ↔ gid, that it has no supplementary groups and that it cannot log in. An
//! account that fails these checks is an error for the admin to resolve, never silently used.
//!
//! - Linux: `useradd --system` with no home and a `nologin` shell; `userdel` to remove.
//! - macOS: a hidden role account `_hearth_<id>` created with `dscl`, with a UID/GID chosen at
//!   run time in 401–499 (free as both a user and a group id), shell `/usr/bin/false`, never in
//!   `staff` or `admin`. **This path cannot be built or tested on the Linux CI machine**; it is
//!   kept small on purpose and should be exercised on a Mac before it is relied on.

use crate::IsolationError;
use crate::dirs::is_safe_member_id;

/// A member's OS account as the account database reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// `hearth-<id>` on Linux, `_hearth_<id>` on macOS.
    pub name: String,
    pub uid: u32,
    /// The account's own primary group (same name as the account).
    pub gid: u32,
}

#[cfg(target_os = "macos")]
const PREFIX: &str = "_hearth_";
#[cfg(not(target_os = "macos"))]
const PREFIX: &str = "hearth-";

/// Longest member id an account can be made for: account names are kept within 32 bytes, the
/// portable limit (`_hearth_` + 24). Gateway-made ids are at most 21 bytes.
pub const MAX_ACCOUNT_MEMBER_ID: usize = 24;

/// The account name for a member: `hearth-<id>` on Linux, `_hearth_<id>` on macOS (the
/// leading underscore is the macOS convention for role accounts, which the login window hides).
pub fn account_name(member_id: &str) -> String {
    format!("{PREFIX}{member_id}")
}

/// The member id an account name belongs to (`hearth-<id>` → `<id>`), if it is one of ours.
pub fn member_id_of(account_name: &str) -> Option<&str> {
    account_name.strip_prefix(PREFIX).filter(|id| is_safe_member_id(id) && id.len() <= MAX_ACCOUNT_MEMBER_ID)
}

/// Whether this process may create accounts and start workers as them: effective uid 0.
pub fn can_manage_accounts() -> bool {
    nix::unistd::geteuid().is_root()
}

fn checked_name(member_id: &str) -> Result<String, IsolationError> {
    if !is_safe_member_id(member_id) || member_id.len() > MAX_ACCOUNT_MEMBER_ID {
        return Err(IsolationError::BadMemberId(member_id.to_owned()));
    }
    Ok(account_name(member_id))
}

/// Returns the member's account, creating it first if it does not exist. Idempotent and safe
/// to call at every worker start: an existing account is verified, not trusted.
pub fn ensure_account(member_id: &str) -> Result<Account, IsolationError> {
    let name = checked_name(member_id)?;
    if !can_manage_accounts() {
        return Err(IsolationError::NeedsRoot("creating a member's OS account"));
    }
    let account = match imp::lookup(&name)? {
        Some(a) => a,
        None => {
            imp::create(&name, member_id)?;
            imp::lookup(&name)?.ok_or_else(|| IsolationError::Account {
                name: name.clone(),
                message: "was created but cannot be found afterwards".into(),
            })?
        }
    };
    imp::verify(&account)?;
    Ok(account)
}

/// The member's account if it exists (not verified; [`ensure_account`] verifies).
pub fn find_account(member_id: &str) -> Result<Option<Account>, IsolationError> {
    imp::lookup(&checked_name(member_id)?)
}

/// Deletes the member's account and its group. Stop the member's worker first: the system tools
/// refuse to delete an account that still runs processes. An absent account is not an error.
pub fn remove_account(member_id: &str) -> Result<(), IsolationError> {
    let name = checked_name(member_id)?;
    if !can_manage_accounts() {
        return Err(IsolationError::NeedsRoot("removing a member's OS account"));
    }
    imp::remove(&name)
}

fn account_err(name: &str, message: impl Into<String>) -> IsolationError {
    IsolationError::Account { name: name.to_owned(), message: message.into() }
}

fn mismatch(name: &str, problem: impl Into<String>) -> IsolationError {
    IsolationError::AccountMismatch { name: name.to_owned(), problem: problem.into() }
}

/// Reads an account with `getpwnam_r`.
#[cfg(unix)]
fn lookup_passwd(name: &str) -> Result<Option<Account>, IsolationError> {
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Ok(Some(Account { name: u.name, uid: u.uid.as_raw(), gid: u.gid.as_raw() })),
        Ok(None) => Ok(None),
        Err(e) => Err(account_err(name, format!("could not read the account database: {e}"))),
    }
}

/// Checks shared by every platform: not root, the uid maps back to this name, and the primary
/// group is the account's own (same name, same gid both ways, no listed members).
#[cfg(unix)]
fn verify_common(a: &Account, shells: &[&str]) -> Result<(), IsolationError> {
    use nix::unistd::{Gid, Group, Uid, User};
    let name = a.name.as_str();
    let read_err = |e: nix::Error| account_err(name, format!("could not read the account database: {e}"));
    if a.uid == 0 || a.gid == 0 {
        return Err(mismatch(name, format!("uid {} / gid {} is root's", a.uid, a.gid)));
    }
    let user = User::from_name(name).map_err(read_err)?.ok_or_else(|| mismatch(name, "it disappeared"))?;
    if user.uid.as_raw() != a.uid || user.gid.as_raw() != a.gid {
        return Err(mismatch(name, "its uid or gid changed while it was being checked"));
    }
    match User::from_uid(Uid::from_raw(a.uid)).map_err(read_err)? {
        Some(u) if u.name == name => {}
        Some(u) => return Err(mismatch(name, format!("uid {} also belongs to {}", a.uid, u.name))),
        None => return Err(mismatch(name, format!("uid {} does not map back to it", a.uid))),
    }
    let group = Group::from_gid(Gid::from_raw(a.gid))
        .map_err(read_err)?
        .ok_or_else(|| mismatch(name, format!("its primary group {} does not exist", a.gid)))?;
    if group.name != name {
        return Err(mismatch(name, format!("its primary group is {} (gid {}), not its own", group.name, a.gid)));
    }
    match Group::from_name(name).map_err(read_err)? {
        Some(g) if g.gid.as_raw() == a.gid => {}
        _ => return Err(mismatch(name, "its group name and gid do not match")),
    }
    if !group.mem.is_empty() {
        return Err(mismatch(name, format!("its group lists other members: {}", group.mem.join(", "))));
    }
    let shell = user.shell.to_string_lossy();
    if !shells.contains(&shell.as_ref()) {
        return Err(mismatch(name, format!("its login shell is {shell}, so it could log in")));
    }
    Ok(())
}

/// Runs an account tool (`useradd`, `dscl`, …) and returns its stdout. When the tool reports
/// that the account database is locked — another tool (or test) is changing it right now — it
/// is retried with growing, jittered pauses for up to about ten seconds.
fn run_tool(name: &str, tool: &str, args: &[&str]) -> Result<ToolOutcome, IsolationError> {
    use std::time::Duration;
    let mut pause = Duration::from_millis(20);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let out = std::process::Command::new(tool)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| account_err(name, format!("could not run {tool}: {e}")))?;
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if out.status.success() {
            return Ok(ToolOutcome::Ok(String::from_utf8_lossy(&out.stdout).into_owned()));
        }
        let locked = stderr.contains("lock") || stderr.contains("try again later");
        if locked && attempt < 30 {
            let jitter = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos() % 20_000_000)
                .unwrap_or(0);
            std::thread::sleep(pause + Duration::from_nanos(u64::from(jitter)));
            pause = (pause * 2).min(Duration::from_millis(400));
            continue;
        }
        return Ok(ToolOutcome::Failed { code: out.status.code(), stderr });
    }
}

enum ToolOutcome {
    /// The tool's stdout (read on macOS, where `dsmemberutil` answers on stdout).
    Ok(#[cfg_attr(target_os = "linux", allow(dead_code))] String),
    /// The exit code (branched on for `useradd`/`userdel`) and what the tool said.
    Failed {
        #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
        code: Option<i32>,
        stderr: String,
    },
}

#[cfg(target_os = "linux")]
mod imp {
    use super::*;

    /// Shells that cannot start a session.
    const NO_LOGIN: &[&str] = &["/usr/sbin/nologin", "/sbin/nologin", "/usr/bin/false", "/bin/false"];

    pub(super) fn lookup(name: &str) -> Result<Option<Account>, IsolationError> {
        lookup_passwd(name)
    }

    pub(super) fn create(name: &str, member_id: &str) -> Result<(), IsolationError> {
        let shell = NO_LOGIN.iter().copied().find(|s| std::path::Path::new(s).exists()).unwrap_or("/usr/sbin/nologin");
        let comment = format!("Hearth member {member_id}");
        let args = [
            "--system",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            shell,
            "--user-group",
            "--comment",
            &comment,
            name,
        ];
        match run_tool(name, "useradd", &args)? {
            ToolOutcome::Ok(_) => Ok(()),
            // 9: the name is taken — by a concurrent ensure_account (fine: the caller verifies
            // what it made), or by a group left behind without its user (not fine: say so).
            ToolOutcome::Failed { code: Some(9), stderr } => match lookup(name)? {
                Some(_) => Ok(()),
                None => Err(account_err(
                    name,
                    format!(
                        "useradd failed: {stderr} (a group of that name without its user is left over: check it and remove it with `groupdel {name}`)"
                    ),
                )),
            },
            ToolOutcome::Failed { stderr, .. } => Err(account_err(name, format!("useradd failed: {stderr}"))),
        }
    }

    pub(super) fn verify(a: &Account) -> Result<(), IsolationError> {
        verify_common(a, NO_LOGIN)?;
        let cname = std::ffi::CString::new(a.name.as_str()).map_err(|_| mismatch(&a.name, "bad name"))?;
        let groups = nix::unistd::getgrouplist(&cname, nix::unistd::Gid::from_raw(a.gid))
            .map_err(|e| account_err(&a.name, format!("could not list its groups: {e}")))?;
        let extra: Vec<u32> = groups.iter().map(|g| g.as_raw()).filter(|g| *g != a.gid).collect();
        if !extra.is_empty() {
            return Err(mismatch(&a.name, format!("it is in other groups too (gids {extra:?})")));
        }
        Ok(())
    }

    pub(super) fn remove(name: &str) -> Result<(), IsolationError> {
        if lookup(name)?.is_some() {
            match run_tool(name, "userdel", &[name])? {
                ToolOutcome::Ok(_) => {}
                // 6: no such user — removed concurrently.
                ToolOutcome::Failed { code: Some(6), .. } => {}
                ToolOutcome::Failed { stderr, .. } => {
                    return Err(account_err(name, format!("userdel failed: {stderr}")));
                }
            }
        }
        // userdel removes the user group when nothing else uses it; make sure it is gone.
        let group = nix::unistd::Group::from_name(name)
            .map_err(|e| account_err(name, format!("could not read the group database: {e}")))?;
        if group.is_some() {
            match run_tool(name, "groupdel", &[name])? {
                ToolOutcome::Ok(_) => {}
                ToolOutcome::Failed { code: Some(6), .. } => {}
                ToolOutcome::Failed { stderr, .. } => {
                    return Err(account_err(name, format!("groupdel failed: {stderr}")));
                }
            }
        }
        if lookup(name)?.is_some() {
            return Err(account_err(name, "is still present after userdel"));
        }
        Ok(())
    }
}

/// macOS: Directory Services through `dscl`. Not built on CI (see the module docs).
#[cfg(target_os = "macos")]
mod imp {
    use super::*;
    use nix::unistd::{Gid, Group, Uid, User};

    /// Role-account ids: below 500 (hidden from the login window and System Settings), above
    /// the ids macOS itself hands out to its daemons.
    const ID_RANGE: std::ops::RangeInclusive<u32> = 401..=499;
    const SHELL: &str = "/usr/bin/false";

    pub(super) fn lookup(name: &str) -> Result<Option<Account>, IsolationError> {
        lookup_passwd(name)
    }

    fn dscl(name: &str, args: &[&str]) -> Result<(), IsolationError> {
        match run_tool(name, "/usr/bin/dscl", args)? {
            ToolOutcome::Ok(_) => Ok(()),
            ToolOutcome::Failed { stderr, .. } => {
                Err(account_err(name, format!("dscl {} failed: {stderr}", args.join(" "))))
            }
        }
    }

    /// A number free both as a uid and as a gid. Creation is serialised by the caller (one
    /// supervisor); a clash with a concurrent creator is caught by [`verify`].
    fn free_id(name: &str) -> Result<u32, IsolationError> {
        for id in ID_RANGE {
            let user = User::from_uid(Uid::from_raw(id)).map_err(|e| account_err(name, e.to_string()))?;
            let group = Group::from_gid(Gid::from_raw(id)).map_err(|e| account_err(name, e.to_string()))?;
            if user.is_none() && group.is_none() {
                return Ok(id);
            }
        }
        Err(account_err(name, "no free id left in 401–499 for a new member account"))
    }

    pub(super) fn create(name: &str, member_id: &str) -> Result<(), IsolationError> {
        let id = free_id(name)?.to_string();
        let comment = format!("Hearth member {member_id}");
        let group = format!("/Groups/{name}");
        let user = format!("/Users/{name}");
        let steps: Vec<Vec<&str>> = vec![
            vec![".", "-create", &group],
            vec![".", "-create", &group, "PrimaryGroupID", &id],
            vec![".", "-create", &group, "RealName", &comment],
            vec![".", "-create", &group, "Password", "*"],
            vec![".", "-create", &user],
            vec![".", "-create", &user, "UniqueID", &id],
            vec![".", "-create", &user, "PrimaryGroupID", &id],
            vec![".", "-create", &user, "UserShell", SHELL],
            vec![".", "-create", &user, "NFSHomeDirectory", "/var/empty"],
            vec![".", "-create", &user, "RealName", &comment],
            vec![".", "-create", &user, "Password", "*"],
            vec![".", "-create", &user, "IsHidden", "1"],
        ];
        for step in &steps {
            if let Err(e) = dscl(name, step) {
                let _ = remove(name);
                return Err(e);
            }
        }
        Ok(())
    }

    pub(super) fn verify(a: &Account) -> Result<(), IsolationError> {
        verify_common(a, &[SHELL])?;
        for group in ["staff", "admin"] {
            let out =
                match run_tool(&a.name, "/usr/bin/dsmemberutil", &["checkmembership", "-U", &a.name, "-G", group])? {
                    ToolOutcome::Ok(out) => out,
                    ToolOutcome::Failed { stderr, .. } => {
                        return Err(account_err(&a.name, format!("dsmemberutil failed: {stderr}")));
                    }
                };
            if !out.contains("not a member") {
                return Err(mismatch(&a.name, format!("it is a member of {group}")));
            }
        }
        Ok(())
    }

    pub(super) fn remove(name: &str) -> Result<(), IsolationError> {
        if lookup(name)?.is_some() {
            dscl(name, &[".", "-delete", &format!("/Users/{name}")])?;
        }
        if Group::from_name(name).map_err(|e| account_err(name, e.to_string()))?.is_some() {
            dscl(name, &[".", "-delete", &format!("/Groups/{name}")])?;
        }
        Ok(())
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
mod imp {
    use super::*;
    const WHY: &str = "per-member accounts are implemented for Linux and macOS only";
    pub(super) fn lookup(name: &str) -> Result<Option<Account>, IsolationError> {
        lookup_passwd(name)
    }
    pub(super) fn create(name: &str, _member_id: &str) -> Result<(), IsolationError> {
        Err(account_err(name, WHY))
    }
    pub(super) fn verify(a: &Account) -> Result<(), IsolationError> {
        Err(account_err(&a.name, WHY))
    }
    pub(super) fn remove(name: &str) -> Result<(), IsolationError> {
        Err(account_err(name, WHY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names_follow_the_platform_convention_and_fit() {
        #[cfg(target_os = "linux")]
        assert_eq!(account_name("ana-7k2p"), "hearth-ana-7k2p");
        #[cfg(target_os = "macos")]
        assert_eq!(account_name("ana-7k2p"), "_hearth_ana-7k2p");
        // The longest id the gateway makes (16-character slug, '-', 4-character suffix).
        let longest = format!("{}-abcd", "x".repeat(16));
        assert!(checked_name(&longest).unwrap().len() <= 32);
        let limit = "x".repeat(MAX_ACCOUNT_MEMBER_ID);
        assert!(checked_name(&limit).unwrap().len() <= 32);
        assert!(checked_name(&"x".repeat(MAX_ACCOUNT_MEMBER_ID + 1)).is_err());
        // Leading digits are fine: the prefix keeps the name from looking like a uid.
        assert!(checked_name("7ana").unwrap().starts_with(PREFIX));
        assert_eq!(member_id_of(&account_name("ana-7k2p")), Some("ana-7k2p"));
        assert_eq!(member_id_of("root"), None);
        assert_eq!(member_id_of(&account_name("../x")), None);
    }

    #[test]
    fn unsafe_ids_never_reach_the_account_tools() {
        for bad in ["", "-x", "a b", "A", "../x", "a:b", "a\nb", "ä"] {
            assert!(matches!(find_account(bad), Err(IsolationError::BadMemberId(_))), "{bad:?}");
            assert!(matches!(ensure_account(bad), Err(IsolationError::BadMemberId(_))), "{bad:?}");
            assert!(matches!(remove_account(bad), Err(IsolationError::BadMemberId(_))), "{bad:?}");
        }
    }

    #[test]
    fn a_missing_account_is_none() {
        assert_eq!(find_account("no-such-member-zz9").unwrap(), None);
    }
}
