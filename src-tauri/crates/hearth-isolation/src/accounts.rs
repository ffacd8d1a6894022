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
//! Each account records the household it was made for — the canonical data folder, in its
//! comment (GECOS on Linux, RealName on macOS): `Hearth member <id> of <folder>`. Several
//! households may share a machine, so that is how `hearth doctor` tells this household's
//! leftovers ([`orphans`]) from another household's members, and how [`ensure_account_in`]
//! refuses to hand one household's member account to another.
//!
//! - Linux: `useradd --system` with no home and a `nologin` shell; `userdel` to remove.
//! - macOS: a hidden role account `_hearth_<id>` created with `dscl`, with a UID/GID chosen at
//!   run time in 401–499 (free as both a user and a group id), shell `/usr/bin/false`, never in
//!   `staff` or `admin`. **This path cannot be built or tested on the Linux CI machine**; it is
//!   kept small on purpose and should be exercised on a Mac before it is relied on.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

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
/// to call at every worker start: an existing account is verified, not trusted. Records no
/// household; workers are started with [`ensure_account_in`].
pub fn ensure_account(member_id: &str) -> Result<Account, IsolationError> {
    ensure(member_id, None)
}

/// [`ensure_account`] for a member of the household in `data_dir` (canonical): a new account
/// records that folder in its comment; an existing one made by a Hearth that recorded none, or
/// for a folder that no longer holds a household, is relabelled; one that belongs to another
/// household that still exists is refused — two households never share a member's account.
pub fn ensure_account_in(member_id: &str, data_dir: &Path) -> Result<Account, IsolationError> {
    ensure(member_id, Some(data_dir))
}

fn ensure(member_id: &str, household: Option<&Path>) -> Result<Account, IsolationError> {
    let name = checked_name(member_id)?;
    if !can_manage_accounts() {
        return Err(IsolationError::NeedsRoot("creating a member's OS account"));
    }
    let account = match imp::lookup(&name)? {
        Some(a) => {
            if let Some(home) = household {
                claim(&name, member_id, home)?;
            }
            a
        }
        None => {
            imp::create(&name, &comment(member_id, household))?;
            imp::lookup(&name)?.ok_or_else(|| IsolationError::Account {
                name: name.clone(),
                message: "was created but cannot be found afterwards".into(),
            })?
        }
    };
    imp::verify(&account)?;
    Ok(account)
}

/// Makes an existing account record `home` as its household, unless it belongs to another
/// household that still exists.
fn claim(name: &str, member_id: &str, home: &Path) -> Result<(), IsolationError> {
    let recorded = match read_comment(name)? {
        Some(c) => parse_comment(&c).and_then(|(_, folder)| folder),
        None => return Err(mismatch(name, "it disappeared")),
    };
    match recorded {
        Some(folder) if folder == home => return Ok(()),
        Some(folder) if holds_household(&folder) => {
            return Err(mismatch(
                name,
                format!(
                    "it was made for the household in {}, which still exists, and two households never share a member's \
                     account. If that household is no longer used, move its folder away and start again",
                    folder.display()
                ),
            ));
        }
        // Made by a Hearth that recorded no folder, or for one that holds no household any more
        // (moved, or deleted): it is this household's now.
        _ => {}
    }
    imp::relabel(name, &comment(member_id, Some(home)))
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

/// How every account comment Hearth writes begins; an account without it is not Hearth's and is
/// never listed or removed as an orphan.
const COMMENT_PREFIX: &str = "Hearth member ";
/// Between the member id and the folder in a comment.
const COMMENT_OF: &str = " of ";

/// The comment of a member's account: `Hearth member <id> of <folder>` (the folder
/// percent-encoded, so a `:` or a newline can never reach the account database), or without a
/// household `Hearth member <id>`.
fn comment(member_id: &str, household: Option<&Path>) -> String {
    match household {
        Some(folder) => format!("{COMMENT_PREFIX}{member_id}{COMMENT_OF}{}", encode_path(folder)),
        None => format!("{COMMENT_PREFIX}{member_id}"),
    }
}

/// The member id and the recorded folder (if any) of a comment Hearth wrote; `None` for any
/// other comment.
fn parse_comment(comment: &str) -> Option<(String, Option<PathBuf>)> {
    let rest = comment.strip_prefix(COMMENT_PREFIX)?;
    let (id, folder) = match rest.split_once(COMMENT_OF) {
        Some((id, folder)) => (id, Some(decode_path(folder)?)),
        None => (rest, None),
    };
    is_safe_member_id(id).then(|| (id.to_owned(), folder))
}

/// Bytes outside a small safe set become `%XX`; an absolute path stays readable.
fn encode_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/._-+@~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode_path(text: &str) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let path = PathBuf::from(std::ffi::OsString::from_vec(out));
    path.is_absolute().then_some(path)
}

/// The account's comment as the account database has it, `None` when there is no such account.
fn read_comment(name: &str) -> Result<Option<String>, IsolationError> {
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Ok(Some(u.gecos.to_string_lossy().into_owned())),
        Ok(None) => Ok(None),
        Err(e) => Err(account_err(name, format!("could not read the account database: {e}"))),
    }
}

/// Whether `folder` still holds a Hearth household (its `gateway.sqlite`). When that cannot be
/// told (a folder this user may not look into), it is taken to: nothing is then treated as
/// left over.
pub fn holds_household(folder: &Path) -> bool {
    match std::fs::symlink_metadata(folder.join("gateway.sqlite")) {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(_) => true,
    }
}

/// A member account Hearth made, as the account database lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HearthAccount {
    pub account: Account,
    pub member_id: String,
    /// The data folder it was made for; `None` when an older Hearth made it without recording one.
    pub household: Option<PathBuf>,
}

/// Every account whose name and comment say Hearth made it (`hearth-<id>`, `Hearth member …`),
/// sorted by name. Any other account — whatever its name — is left out.
pub fn list_accounts() -> Result<Vec<HearthAccount>, IsolationError> {
    let mut out = Vec::new();
    for (name, uid, gid, gecos) in all_accounts()? {
        let Some(member_id) = member_id_of(&name) else { continue };
        let Some((said, household)) = parse_comment(&gecos) else { continue };
        if said != member_id {
            continue;
        }
        let member_id = member_id.to_owned();
        out.push(HearthAccount { account: Account { name, uid, gid }, member_id, household });
    }
    out.sort_by(|a, b| a.account.name.cmp(&b.account.name));
    Ok(out)
}

/// (name, uid, gid, comment) of every account, through `getpwent`.
fn all_accounts() -> Result<Vec<(String, u32, u32, String)>, IsolationError> {
    // getpwent keeps its position in the C library's static state: one walk at a time.
    static WALK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _walk = WALK.lock().unwrap_or_else(|p| p.into_inner());
    let text = |p: *const libc::c_char| {
        // SAFETY: getpwent's strings are valid C strings until the next call; copied at once.
        if p.is_null() { String::new() } else { unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned() }
    };
    let mut out = Vec::new();
    // SAFETY: setpwent/getpwent/endpwent under the lock above; each entry is copied before the
    // next call.
    unsafe {
        libc::setpwent();
        loop {
            let entry = libc::getpwent();
            if entry.is_null() {
                break;
            }
            let e = &*entry;
            out.push((text(e.pw_name), e.pw_uid, e.pw_gid, text(e.pw_gecos)));
        }
        libc::endpwent();
    }
    if out.is_empty() {
        return Err(account_err("(all accounts)", "the account database lists no account at all"));
    }
    Ok(out)
}

/// A `hearth-*` account that belongs to no member of this household, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub found: HearthAccount,
    pub reason: OrphanReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrphanReason {
    /// Made for this data folder, for a member who is no longer in it.
    FormerMember,
    /// Made for a data folder that holds no household any more (deleted or moved).
    HouseholdGone(PathBuf),
    /// Made by a Hearth that did not record its folder; it is no member here, but it may be
    /// another household's on this machine, so only a person may decide.
    Unrecorded,
}

impl Orphan {
    /// Whether `hearth doctor --fix-orphans` may remove it: only when its household is known to
    /// be this one or gone.
    pub fn removable(&self) -> bool {
        !matches!(self.reason, OrphanReason::Unrecorded)
    }

    /// The folder the account was made for, if recorded.
    fn household(&self) -> Option<&Path> {
        self.found.household.as_deref()
    }
}

impl std::fmt::Display for Orphan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let a = &self.found.account;
        match &self.reason {
            OrphanReason::FormerMember => write!(
                f,
                "The OS account {} (uid {}) was made for member {} of this household, who is no longer in it.",
                a.name, a.uid, self.found.member_id
            ),
            OrphanReason::HouseholdGone(folder) => write!(
                f,
                "The OS account {} (uid {}) was made for a member of the household in {}, which no longer exists.",
                a.name,
                a.uid,
                folder.display()
            ),
            OrphanReason::Unrecorded => write!(
                f,
                "The OS account {} (uid {}) was made by an older Hearth that did not record its household, and it \
                 belongs to no member here.",
                a.name, a.uid
            ),
        }
    }
}

/// The accounts among `accounts` that belong to no member of the household in `data_dir`
/// (canonical), whose member ids are `members`. An account made for another folder that still
/// holds a household ([`holds_household`]) is that household's and never listed.
pub fn orphans(
    accounts: &[HearthAccount],
    members: &BTreeSet<String>,
    data_dir: &Path,
    holds_household: impl Fn(&Path) -> bool,
) -> Vec<Orphan> {
    accounts
        .iter()
        .filter(|a| !members.contains(&a.member_id))
        .filter_map(|a| {
            let reason = match &a.household {
                Some(folder) if folder == data_dir => OrphanReason::FormerMember,
                Some(folder) if !holds_household(folder) => OrphanReason::HouseholdGone(folder.clone()),
                Some(_) => return None,
                None => OrphanReason::Unrecorded,
            };
            Some(Orphan { found: a.clone(), reason })
        })
        .collect()
}

/// Removes an account [`orphans`] found, after checking again that it is the same account (name,
/// uid, recorded household), that none of its processes runs — they could be a household's
/// worker this check cannot see — and that its household keeps no `members/<id>` folder, whose
/// files would otherwise belong to a uid a future account may be given. Needs root.
pub fn remove_orphan(orphan: &Orphan) -> Result<(), IsolationError> {
    let a = &orphan.found.account;
    if !orphan.removable() {
        return Err(account_err(
            &a.name,
            "its household is not recorded, so Hearth cannot tell whether another household uses it; remove it by hand if none does",
        ));
    }
    if !can_manage_accounts() {
        return Err(IsolationError::NeedsRoot("removing a left-over OS account"));
    }
    if a.uid == 0 || a.gid == 0 {
        return Err(mismatch(&a.name, "it has root's uid or gid"));
    }
    let now = list_accounts()?.into_iter().find(|x| x.account.name == a.name);
    if now.as_ref() != Some(&orphan.found) {
        return Err(account_err(&a.name, "it changed since it was found; run `hearth doctor` again"));
    }
    let running =
        processes_of(a.uid).map_err(|e| account_err(&a.name, format!("could not list its processes: {e}")))?;
    if !running.is_empty() {
        return Err(account_err(
            &a.name,
            format!(
                "it still runs processes (pid {}); stop them first (`sudo pkill -KILL -U {}`) and try again",
                running.iter().map(u32::to_string).collect::<Vec<_>>().join(", "),
                a.uid
            ),
        ));
    }
    if let Some(folder) = orphan.household() {
        let left = folder.join("members").join(&orphan.found.member_id);
        match std::fs::symlink_metadata(&left) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Ok(_) => {
                return Err(account_err(
                    &a.name,
                    format!(
                        "its folder {} is still there; move it aside first (its files would otherwise belong to a uid a future account may be given)",
                        left.display()
                    ),
                ));
            }
            Err(e) => return Err(account_err(&a.name, format!("could not check {}: {e}", left.display()))),
        }
    }
    remove_account(&orphan.found.member_id)
}

/// The processes whose real or effective uid is `uid`.
#[cfg(target_os = "linux")]
fn processes_of(uid: u32) -> std::io::Result<Vec<u32>> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        // A process that exits meanwhile is simply gone.
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else { continue };
        let Some(line) = status.lines().find(|l| l.starts_with("Uid:")) else { continue };
        let ids: Vec<u32> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
        if ids.iter().take(2).any(|&id| id == uid) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// The processes whose real or effective uid is `uid`, as `ps` lists them.
#[cfg(not(target_os = "linux"))]
fn processes_of(uid: u32) -> std::io::Result<Vec<u32>> {
    let out = std::process::Command::new("/bin/ps").args(["-axo", "pid=,ruid=,uid="]).env_clear().output()?;
    if !out.status.success() {
        return Err(std::io::Error::other("ps failed"));
    }
    let mut pids = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<u32> = line.split_whitespace().filter_map(|v| v.parse().ok()).collect();
        if let [pid, ruid, euid] = f[..]
            && (ruid == uid || euid == uid)
        {
            pids.push(pid);
        }
    }
    Ok(pids)
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
    use hearth_proto::backoff::{Backoff, Jitter};
    use std::time::Duration;
    // 20 ms doubling to 400 ms, 30 attempts: about ten seconds. Jitter so parallel tools (and
    // tests) that collided on the lock do not collide again.
    let mut locked_out =
        Backoff::new(Duration::from_millis(20), Duration::from_millis(400), Jitter::Add(0.25)).retries(Some(30));
    loop {
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
        if locked && let Some(pause) = locked_out.failed(None) {
            std::thread::sleep(pause);
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

    pub(super) fn create(name: &str, comment: &str) -> Result<(), IsolationError> {
        let shell = NO_LOGIN.iter().copied().find(|s| std::path::Path::new(s).exists()).unwrap_or("/usr/sbin/nologin");
        let args = [
            "--system",
            "--no-create-home",
            // No lastlog/faillog entry: such an account never logs in, and the supervisor's unit
            // may not write /var/log.
            "--no-log-init",
            "--home-dir",
            "/nonexistent",
            "--shell",
            shell,
            "--user-group",
            "--comment",
            comment,
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

    pub(super) fn relabel(name: &str, comment: &str) -> Result<(), IsolationError> {
        match run_tool(name, "usermod", &["--comment", comment, name])? {
            ToolOutcome::Ok(_) => Ok(()),
            ToolOutcome::Failed { stderr, .. } => Err(account_err(name, format!("usermod failed: {stderr}"))),
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

    pub(super) fn create(name: &str, comment: &str) -> Result<(), IsolationError> {
        let id = free_id(name)?.to_string();
        let group = format!("/Groups/{name}");
        let user = format!("/Users/{name}");
        let steps: Vec<Vec<&str>> = vec![
            vec![".", "-create", &group],
            vec![".", "-create", &group, "PrimaryGroupID", &id],
            vec![".", "-create", &group, "RealName", comment],
            vec![".", "-create", &group, "Password", "*"],
            vec![".", "-create", &user],
            vec![".", "-create", &user, "UniqueID", &id],
            vec![".", "-create", &user, "PrimaryGroupID", &id],
            vec![".", "-create", &user, "UserShell", SHELL],
            vec![".", "-create", &user, "NFSHomeDirectory", "/var/empty"],
            vec![".", "-create", &user, "RealName", comment],
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

    pub(super) fn relabel(name: &str, comment: &str) -> Result<(), IsolationError> {
        dscl(name, &[".", "-create", &format!("/Users/{name}"), "RealName", comment])?;
        dscl(name, &[".", "-create", &format!("/Groups/{name}"), "RealName", comment])
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
    pub(super) fn create(name: &str, _comment: &str) -> Result<(), IsolationError> {
        Err(account_err(name, WHY))
    }
    pub(super) fn relabel(name: &str, _comment: &str) -> Result<(), IsolationError> {
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
    fn a_comment_records_the_household_and_reads_back() {
        use std::os::unix::ffi::OsStrExt;
        let c = comment("ana-7k2p", Some(Path::new("/var/lib/hearth")));
        assert_eq!(c, "Hearth member ana-7k2p of /var/lib/hearth");
        assert_eq!(parse_comment(&c), Some(("ana-7k2p".into(), Some(PathBuf::from("/var/lib/hearth")))));
        // Nothing the account database gives a meaning to (`:`, `,`, a newline) is written.
        let odd = Path::new(std::ffi::OsStr::from_bytes(b"/Library/Application Support/Hearth:x,y\nz%\xff"));
        let c = comment("bo", Some(odd));
        assert!(!c.contains([':', ',', '\n']), "{c}");
        assert_eq!(parse_comment(&c), Some(("bo".into(), Some(odd.to_owned()))));
        // Made by an older Hearth: the member, no household.
        assert_eq!(comment("bo", None), "Hearth member bo");
        assert_eq!(parse_comment("Hearth member bo"), Some(("bo".into(), None)));
        for not_ours in [
            "",
            "Hearth gateway",
            "Hearth member ../x",
            "Hearth member bo of relative/path",
            "Hearth member bo of /x%2",
            "Hearth member bo of /x%zz",
        ] {
            assert_eq!(parse_comment(not_ours), None, "{not_ours:?}");
        }
    }

    #[test]
    fn orphans_are_this_households_leftovers_never_another_households_members() {
        let here = Path::new("/var/lib/hearth");
        let found = |id: &str, household: Option<&str>| HearthAccount {
            account: Account { name: account_name(id), uid: 900, gid: 900 },
            member_id: id.into(),
            household: household.map(PathBuf::from),
        };
        let accounts = [
            found("ana-1", Some("/var/lib/hearth")), // a member here
            found("old-2", Some("/var/lib/hearth")), // removed from this household
            found("ben-3", Some("/srv/other")),      // another household that still exists
            found("gone-4", Some("/srv/deleted")),   // a household whose folder is gone
            found("legacy-5", None),                 // an older Hearth's, not a member here
            found("legacy-6", None),                 // an older Hearth's, a member here
        ];
        let members: BTreeSet<String> = ["ana-1", "legacy-6"].iter().map(|s| s.to_string()).collect();
        let exists = |p: &Path| p == Path::new("/srv/other");
        let got = orphans(&accounts, &members, here, exists);
        let summary: Vec<(&str, &OrphanReason, bool)> =
            got.iter().map(|o| (o.found.member_id.as_str(), &o.reason, o.removable())).collect();
        assert_eq!(
            summary,
            [
                ("old-2", &OrphanReason::FormerMember, true),
                ("gone-4", &OrphanReason::HouseholdGone(PathBuf::from("/srv/deleted")), true),
                ("legacy-5", &OrphanReason::Unrecorded, false),
            ]
        );
        assert!(got[0].to_string().contains("no longer in it"), "{}", got[0]);
        assert!(got[1].to_string().contains("/srv/deleted, which no longer exists"), "{}", got[1]);
        assert!(got[2].to_string().contains("did not record its household"), "{}", got[2]);
        // An unrecorded one is never removed by Hearth, whatever the caller asks.
        let err = remove_orphan(&got[2]).unwrap_err().to_string();
        assert!(err.contains("remove it by hand"), "{err}");
    }

    #[test]
    fn a_missing_account_is_none() {
        assert_eq!(find_account("no-such-member-zz9").unwrap(), None);
    }
}
