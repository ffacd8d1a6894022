//! Keeps the machine from sleeping while the gateway serves — a family's bots should not go
//! quiet because the closet Mac went to sleep.
//!
//! Both platforms take the operating system's own power assertion through its standard tool, held
//! by a child process that lives exactly as long as the [`KeepAwake`] handle:
//! - macOS: `caffeinate -i -w <our pid>` (an IOKit "prevent idle sleep" assertion, released by
//!   the OS even if Hearth is killed, because `-w` watches our pid).
//! - Linux: `systemd-inhibit --what=sleep:idle` (a logind inhibitor lock). Where there is no
//!   logind (containers, minimal servers) it is not available, and the app says so.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Holds the power assertion; dropping it releases it.
pub struct KeepAwake {
    child: Child,
    /// How the machine is kept awake, in words.
    pub detail: String,
}

impl Drop for KeepAwake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Takes the assertion, or says in words why this machine cannot.
pub fn acquire() -> Result<KeepAwake, String> {
    let (mut command, detail) = platform_command()?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("Not available: could not start {:?} ({e}).", command.get_program()))?;
    // The tools fail fast when they cannot take the lock; one that is still running holds it.
    let deadline = Instant::now() + Duration::from_millis(400);
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut stderr) = child.stderr.take() {
                    use std::io::Read as _;
                    let _ = stderr.read_to_string(&mut err);
                }
                let why = err.lines().next().unwrap_or("").trim();
                let why = if why.is_empty() { format!("it exited with {status}") } else { why.to_owned() };
                return Err(format!("Not available on this machine: {why}."));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("Not available: {e}.")),
        }
    }
    Ok(KeepAwake { child, detail })
}

#[cfg(target_os = "macos")]
fn platform_command() -> Result<(Command, String), String> {
    let mut c = Command::new("/usr/bin/caffeinate");
    c.arg("-i").arg("-w").arg(std::process::id().to_string());
    Ok((c, "The Mac will not go to sleep while Hearth runs (the display may still turn off).".to_owned()))
}

#[cfg(target_os = "linux")]
fn platform_command() -> Result<(Command, String), String> {
    let tool = ["/usr/bin/systemd-inhibit", "/bin/systemd-inhibit"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .ok_or_else(|| "Not available: this system has no systemd-inhibit, so Hearth cannot hold off sleep. Turn off automatic sleep in the system settings instead.".to_owned())?;
    let mut c = Command::new(tool);
    c.args([
        "--what=sleep:idle",
        "--who=Hearth",
        "--why=Hearth answers your family's messages",
        "--mode=block",
        "sleep",
        "infinity",
    ]);
    Ok((c, "This machine will not go to sleep while Hearth runs (systemd inhibitor lock).".to_owned()))
}

#[cfg(not(any(target_os = "macos", target_os = "linux")))]
fn platform_command() -> Result<(Command, String), String> {
    Err("Not available on this system.".to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn either_holds_a_lock_or_explains_why_not() {
        match super::acquire() {
            Ok(k) => {
                assert!(!k.detail.is_empty());
                let pid = k.child.id();
                drop(k);
                // The holder is gone once the handle is dropped.
                assert!(!std::path::Path::new(&format!("/proc/{pid}/exe")).exists() || cfg!(target_os = "macos"));
            }
            Err(why) => assert!(why.starts_with("Not available"), "{why}"),
        }
    }
}
