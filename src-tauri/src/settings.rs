//! The app's own settings, beside the gateway's data in `<data dir>/app.json`: whether the admin
//! finished the setup wizard, keep-awake, and the turn cap the gateway starts with. Launch at
//! login is not stored here — the login item itself (tauri-plugin-autostart) is the truth.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppSettings {
    /// The admin walked through the wizard to the end (or the household already existed).
    pub setup_complete: bool,
    /// Keep the machine from sleeping while the gateway serves.
    pub keep_awake: bool,
    /// Turns that may think at once across the household.
    pub turn_cap: u32,
}

impl Default for AppSettings {
    fn default() -> Self {
        Self { setup_complete: false, keep_awake: true, turn_cap: 64 }
    }
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("app.json")
}

/// Reads the settings; a missing file gives the defaults. A damaged file is an error the
/// caller shows — it is never silently replaced, so nothing the admin chose is lost.
pub fn load(data_dir: &Path) -> anyhow::Result<AppSettings> {
    let path = path(data_dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            anyhow::anyhow!("the app's settings file {} is damaged ({e}); fix or delete it and start Hearth again", path.display())
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AppSettings::default()),
        Err(e) => Err(anyhow::anyhow!("read {}: {e}", path.display())),
    }
}

/// Writes the settings atomically (a new temporary file, never through a link, fsync, rename:
/// `hearth_gateway::data_dir::write_private`), so a crash or a full disk leaves either the old
/// file or the new one.
pub fn save(data_dir: &Path, settings: &AppSettings) -> anyhow::Result<()> {
    let path = path(data_dir);
    let body = serde_json::to_vec_pretty(settings).expect("settings serialise");
    hearth_gateway::data_dir::write_private(&path, &body)
        .map_err(|e| anyhow::anyhow!("save the app's settings to {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_gives_defaults_and_a_save_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), AppSettings::default());
        let s = AppSettings { setup_complete: true, keep_awake: false, turn_cap: 12 };
        save(dir.path(), &s).unwrap();
        assert_eq!(load(dir.path()).unwrap(), s);
    }

    #[test]
    fn a_damaged_file_is_reported_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path()), b"{not json").unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("damaged") && e.contains("app.json"), "{e}");
        assert_eq!(std::fs::read(path(dir.path())).unwrap(), b"{not json");
    }

    #[test]
    fn older_files_without_new_fields_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path()), br#"{"setup_complete": true}"#).unwrap();
        let s = load(dir.path()).unwrap();
        assert!(s.setup_complete);
        assert_eq!(s.turn_cap, 64);
    }
}
