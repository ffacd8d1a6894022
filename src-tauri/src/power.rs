//! Whether this computer turns itself back on after a power cut — the one always-on setting
//! the app can only read, never change (it needs the firmware, or an administrator's password).
//!
//! - macOS: `pmset -g` says `autorestart 1` when the Mac restarts after a power failure;
//!   turning it on is `sudo pmset -a autorestart 1`, which the admin runs in Terminal.
//! - Linux: the setting lives in the machine's firmware ("Restore on AC power loss"), which a
//!   running system cannot read; what Hearth can say is what its service does.

use crate::ipc::PowerRestartDto;

/// The command that turns the Mac's restart after a power failure on.
#[cfg(any(test, target_os = "macos"))]
pub const MAC_COMMAND: &str = "sudo pmset -a autorestart 1";

/// `autorestart` in `pmset -g` output: `Some(true)` when on, `Some(false)` when off, `None` when
/// the line is missing (a Mac without the setting) or unreadable.
#[cfg(any(test, target_os = "macos"))]
pub fn autorestart(pmset_g: &str) -> Option<bool> {
    pmset_g.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next()? == "autorestart").then_some(())?;
        match words.next()? {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        }
    })
}

/// What the Mac says, in the window's words.
#[cfg(any(test, target_os = "macos"))]
pub fn mac_state(autorestart: Option<bool>) -> PowerRestartDto {
    let (on, detail) = match autorestart {
        Some(true) => (Some(true), "On: after a power cut the Mac turns itself on again."),
        Some(false) => (
            Some(false),
            "Off: after a power cut the Mac waits for someone to press its button. Paste the command into Terminal to turn it on; it asks for your password.",
        ),
        None => (None, "This Mac does not report the setting; if it has one, the command turns it on."),
    };
    PowerRestartDto { on, detail: detail.to_owned(), command: Some(MAC_COMMAND.to_owned()) }
}

/// Reads the setting where the app can.
pub fn state() -> PowerRestartDto {
    #[cfg(target_os = "macos")]
    return {
        let out = std::process::Command::new("/usr/bin/pmset").arg("-g").output();
        let text = out.ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        mac_state(text.as_deref().and_then(autorestart))
    };
    #[cfg(not(target_os = "macos"))]
    PowerRestartDto {
        on: None,
        detail: "This is a setting of the computer itself, which Hearth cannot read from here: in its firmware settings (a key such as F2 or Del while it starts), set “Restore on AC power loss” to “Power on”. Then log in automatically, so Hearth starts again. (The headless hearth-server package needs no login: its hearth service starts at boot and is restarted if it stops after an error.)".to_owned(),
        command: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pmset -g` as a Mac prints it (System-wide power settings, then the active profile).
    const PMSET_G: &str = "System-wide power settings:\nCurrently in use:\n standby              1\n Sleep On Power Button 1\n autorestart          1\n hibernatefile        /var/vm/sleepimage\n sleep                0 (sleep prevented by caffeinate)\n";

    #[test]
    fn pmset_output_says_whether_the_mac_restarts_after_a_power_cut() {
        assert_eq!(autorestart(PMSET_G), Some(true));
        assert_eq!(autorestart(&PMSET_G.replace("autorestart          1", "autorestart          0")), Some(false));
        assert_eq!(autorestart("System-wide power settings:\n sleep 0\n"), None);
        assert_eq!(autorestart(" autorestart\n"), None);
        // A line that merely mentions it is not the setting.
        assert_eq!(autorestart(" womp 1\n displaysleep 10 (autorestart 1)\n"), None);
    }

    #[test]
    fn each_mac_state_is_told_with_the_command_that_turns_it_on() {
        assert_eq!(mac_state(Some(true)).on, Some(true));
        let off = mac_state(Some(false));
        assert_eq!((off.on, off.command.as_deref()), (Some(false), Some(MAC_COMMAND)));
        assert!(off.detail.starts_with("Off"), "{}", off.detail);
        assert_eq!(mac_state(None).on, None);
    }

    /// Linux cannot read the firmware: no ✓ and no ✗, and words that say why.
    #[cfg(target_os = "linux")]
    #[test]
    fn linux_says_what_it_cannot_read() {
        let s = state();
        assert_eq!((s.on, s.command), (None, None));
        assert!(s.detail.contains("Restore on AC power loss") && s.detail.contains("hearth service"), "{}", s.detail);
    }
}
