//! macOS: `hearth supervisor` as a LaunchDaemon the app registers with SMAppService (macOS 13+).
//!
//! The app bundle carries `installers/macos/com.hearth.supervisor.plist` as
//! `Contents/Library/LaunchDaemons/com.hearth.supervisor.plist`; [`register`] asks the system to
//! load it. The daemon does not run until the admin approves it in System Settings → General →
//! Login Items ([`DaemonStatus::RequiresApproval`]; [`open_login_items_settings`] opens that
//! page). Packaging the app is not part of this module.
//!
//! The registration calls are compiled only on macOS. They type-check on Linux with
//! `cargo check -p hearth-isolation --target aarch64-apple-darwin`, but have never run here.

/// The plist's file name inside `Contents/Library/LaunchDaemons`.
pub const PLIST_NAME: &str = "com.hearth.supervisor.plist";
/// The daemon's launchd label (the plist's `Label`).
pub const LABEL: &str = "com.hearth.supervisor";

/// Where launchd is with the daemon (SMAppServiceStatus).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonStatus {
    NotRegistered,
    Enabled,
    /// Registered, waiting for the admin in System Settings → General → Login Items.
    RequiresApproval,
    /// The plist is not in the app bundle.
    NotFound,
}

impl DaemonStatus {
    /// What it means for the admin, in a sentence.
    pub fn describe(self) -> &'static str {
        match self {
            Self::NotRegistered => "The Hearth supervisor is not registered yet.",
            Self::Enabled => "The Hearth supervisor is registered and allowed to run.",
            Self::RequiresApproval => {
                "The Hearth supervisor waits for your approval: open System Settings → General → Login Items and allow Hearth."
            }
            Self::NotFound => {
                "The Hearth supervisor's LaunchDaemon plist is missing from the app bundle; reinstall Hearth."
            }
        }
    }
}

#[cfg(target_os = "macos")]
mod imp {
    use objc2::rc::Retained;
    use objc2_foundation::NSString;
    use objc2_service_management::{SMAppService, SMAppServiceStatus};

    use super::{DaemonStatus, PLIST_NAME};

    fn service() -> Retained<SMAppService> {
        let name = NSString::from_str(PLIST_NAME);
        // SAFETY: a class method taking a valid NSString; it returns a new object.
        unsafe { SMAppService::daemonServiceWithPlistName(&name) }
    }

    pub fn status() -> DaemonStatus {
        // SAFETY: a plain property read on a live object.
        let status = unsafe { service().status() };
        match status {
            SMAppServiceStatus::Enabled => DaemonStatus::Enabled,
            SMAppServiceStatus::RequiresApproval => DaemonStatus::RequiresApproval,
            SMAppServiceStatus::NotFound => DaemonStatus::NotFound,
            _ => DaemonStatus::NotRegistered,
        }
    }

    pub fn register() -> Result<DaemonStatus, String> {
        // SAFETY: a method call on a live object; the error is returned, not thrown.
        unsafe { service().registerAndReturnError() }.map_err(|e| e.localizedDescription().to_string())?;
        Ok(status())
    }

    pub fn unregister() -> Result<(), String> {
        // SAFETY: as above.
        unsafe { service().unregisterAndReturnError() }.map_err(|e| e.localizedDescription().to_string())
    }

    pub fn open_login_items_settings() {
        // SAFETY: a class method without arguments.
        unsafe { SMAppService::openSystemSettingsLoginItems() }
    }
}

/// Registers the daemon. On success it runs once the admin has approved it; the returned status
/// says whether that is still needed.
#[cfg(target_os = "macos")]
pub fn register() -> Result<DaemonStatus, String> {
    imp::register()
}

/// Unregisters the daemon (it stops and no longer starts at boot).
#[cfg(target_os = "macos")]
pub fn unregister() -> Result<(), String> {
    imp::unregister()
}

#[cfg(target_os = "macos")]
pub fn status() -> DaemonStatus {
    imp::status()
}

/// Opens System Settings → General → Login Items, where the admin approves the daemon.
#[cfg(target_os = "macos")]
pub fn open_login_items_settings() {
    imp::open_login_items_settings()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plist in `installers/macos`, read with the same parser rules launchd applies to XML
    /// plists, holds what launchd and SMAppService need.
    #[test]
    fn the_launch_daemon_plist_has_what_launchd_needs() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../installers/macos/com.hearth.supervisor.plist");
        assert!(path.ends_with(PLIST_NAME));
        let value = plist::Value::from_file(path).unwrap_or_else(|e| panic!("{path} does not parse: {e}"));
        let dict = value.as_dictionary().expect("the plist's root is a dictionary");

        assert_eq!(dict.get("Label").and_then(|v| v.as_string()), Some(LABEL));
        // SMAppService daemons name their binary relative to the bundle.
        let program = dict.get("BundleProgram").and_then(|v| v.as_string()).expect("BundleProgram");
        assert_eq!(program, "Contents/MacOS/hearth");
        assert!(!program.starts_with('/'), "BundleProgram is relative to the app bundle");

        let args: Vec<&str> = dict
            .get("ProgramArguments")
            .and_then(|v| v.as_array())
            .expect("ProgramArguments")
            .iter()
            .map(|v| v.as_string().expect("every argument is a string"))
            .collect();
        assert_eq!(args[1], "supervisor");
        let after = |flag: &str| args.iter().position(|a| *a == flag).map(|i| args[i + 1]);
        // The signed plist cannot name the Mac's admin: the first of the admin group claims it.
        assert_eq!(after("--admin-group"), Some("admin"));
        assert_eq!(after("--admin-pin"), Some(crate::admin::DEFAULT_PIN_MACOS));
        assert_eq!(after("--admin-uid"), None);
        assert_eq!(after("--socket"), Some(crate::supervisor::DEFAULT_SOCKET_MACOS));

        let ids =
            dict.get("AssociatedBundleIdentifiers").and_then(|v| v.as_array()).expect("AssociatedBundleIdentifiers");
        assert!(!ids.is_empty() && ids.iter().all(|v| v.as_string().is_some_and(|s| s.contains('.'))));
        assert_eq!(dict.get("RunAtLoad").and_then(|v| v.as_boolean()), Some(true));
        assert_eq!(dict.get("KeepAlive").and_then(|v| v.as_boolean()), Some(true));
        // Never as anyone but root: no UserName/GroupName override.
        assert!(dict.get("UserName").is_none() && dict.get("GroupName").is_none());
    }
}
