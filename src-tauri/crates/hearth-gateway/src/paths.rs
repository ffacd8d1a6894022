//! Where the gateway keeps things. One data directory holds everything:
//!
//! ```text
//! <data-dir>/
//!   gateway.sqlite   members, bots, pairings, inbox, ledger, audit (never conversation history)
//!   secrets.json     bot tokens and provider keys, 0600 (with the macOS Keychain: only until the
//!                    next start imports it, e.g. after a restore; `secrets.rs`)
//!   gateway.lock     held while a gateway serves this directory
//!   run/control.sock owner-only admin socket
//!   workers/gateway.sock where account-level workers connect (peer uid checked)
//!   members/<id>/    each member's private directory (the worker's)
//!   kb/              household knowledge the admin drops in (0700, the gateway's; `kb.rs`)
//!   kb.sqlite        its search index, a cache rebuilt from kb/
//!   archive/         directories of removed members
//! ```

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn database(&self) -> PathBuf {
        self.root.join("gateway.sqlite")
    }
    pub fn secrets(&self) -> PathBuf {
        self.root.join("secrets.json")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("gateway.lock")
    }
    pub fn run_dir(&self) -> PathBuf {
        self.root.join("run")
    }
    pub fn control_socket(&self) -> PathBuf {
        self.run_dir().join("control.sock")
    }
    /// Where account-level workers connect: its own 0711 directory, since `run/` is 0700.
    pub fn worker_socket(&self) -> PathBuf {
        self.root.join("workers").join("gateway.sock")
    }
}

/// The data folder on macOS, for a user (the app, `hearth serve`): see [`default_data_dir`].
pub const MACOS_DATA_DIR: &str = "/Users/Shared/Hearth";
/// The data folder on macOS as root.
pub const MACOS_ROOT_DATA_DIR: &str = "/Library/Application Support/Hearth";
/// The data folder on Linux as root (the service).
pub const LINUX_ROOT_DATA_DIR: &str = "/var/lib/hearth";

/// The data directory when none is given: `HEARTH_DATA_DIR` (read by the CLI through clap), else
/// the platform's system location when running as root, else the user's data directory — on
/// macOS `/Users/Shared/Hearth`, not the admin's `~/Library`: with the supervisor each member's
/// worker runs as an account of its own, which must pass through every directory above its
/// folder, and a Mac's home folders (0750, group staff) let no other account through. The
/// folder itself stays the admin's, 0711, with each member's inside at 0700.
pub fn default_data_dir() -> PathBuf {
    let is_root = nix::unistd::geteuid().is_root();
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    if cfg!(target_os = "macos") {
        if is_root {
            PathBuf::from(MACOS_ROOT_DATA_DIR)
        } else {
            PathBuf::from(MACOS_DATA_DIR)
        }
    } else if is_root {
        PathBuf::from(LINUX_ROOT_DATA_DIR)
    } else {
        std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| home.join(".local/share"))
            .join("hearth")
    }
}
