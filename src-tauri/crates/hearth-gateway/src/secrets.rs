//! Bot tokens and provider keys. On Linux (and until the Keychain backend lands on macOS) they
//! live in `secrets.json`, mode 0600, owned by the gateway's user; never in the database, never
//! in a log line, never in a worker's environment or a command line.
//!
//! Writes go to a temporary file that is fsynced and renamed over the old one, so a crash or a
//! full disk leaves either the old or the new file, never half of one.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("could not read the secrets file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the secrets file {path} is damaged ({detail}); restore it from a backup or remove it and re-enter the tokens")]
    Damaged { path: PathBuf, detail: String },
    #[error("could not save the secrets file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// A cheap-to-clone handle to the secrets file.
#[derive(Clone)]
pub struct Secrets {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    // std Mutex: never held across an await; writes are small and rare.
    values: Mutex<BTreeMap<String, String>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

pub fn bot_token_key(member_id: &str) -> String {
    format!("bot/{member_id}")
}
pub const PROVIDER_KEY: &str = "provider/default";

impl Secrets {
    pub fn open(path: PathBuf) -> Result<Self, SecretsError> {
        let values = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| SecretsError::Damaged { path: path.clone(), detail: e.to_string() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(SecretsError::Read { path, source }),
        };
        if path.exists() {
            // Tighten a file someone loosened.
            let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o600));
        }
        Ok(Self { inner: Arc::new(Inner { path, values: Mutex::new(values) }) })
    }

    pub fn get(&self, key: &str) -> Option<String> {
        self.inner.values.lock().unwrap().get(key).cloned()
    }

    /// Every secret value, for redacting them out of error text.
    pub fn all_values(&self) -> Vec<String> {
        self.inner.values.lock().unwrap().values().cloned().collect()
    }

    pub fn set(&self, key: &str, value: &str) -> Result<(), SecretsError> {
        let mut values = self.inner.values.lock().unwrap();
        let mut next = values.clone();
        next.insert(key.to_owned(), value.to_owned());
        self.persist(&next)?;
        *values = next;
        Ok(())
    }

    pub fn remove(&self, key: &str) -> Result<(), SecretsError> {
        let mut values = self.inner.values.lock().unwrap();
        if !values.contains_key(key) {
            return Ok(());
        }
        let mut next = values.clone();
        next.remove(key);
        self.persist(&next)?;
        *values = next;
        Ok(())
    }

    fn persist(&self, values: &BTreeMap<String, String>) -> Result<(), SecretsError> {
        let path = &self.inner.path;
        let werr = |source| SecretsError::Write { path: path.clone(), source };
        let tmp = path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(values).expect("a map of strings always serialises");
        let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(werr)?;
        f.write_all(&body).map_err(werr)?;
        f.sync_all().map_err(werr)?;
        drop(f);
        fs::rename(&tmp, path).map_err(werr)?;
        Ok(())
    }
}

/// Replaces every occurrence of any secret in `text` with `<redacted>`. Used on error text that
/// came from outside (a library's error may quote a URL or a body).
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        if s.len() >= 8 && out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "<redacted>");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_0600_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        let s = Secrets::open(path.clone()).unwrap();
        s.set("bot/ana", "123:abc").unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let again = Secrets::open(path.clone()).unwrap();
        assert_eq!(again.get("bot/ana").as_deref(), Some("123:abc"));
        again.remove("bot/ana").unwrap();
        assert_eq!(Secrets::open(path).unwrap().get("bot/ana"), None);
        assert!(!format!("{again:?}").contains("123:abc"));
    }

    #[test]
    fn a_damaged_file_is_a_clear_error_not_an_empty_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        fs::write(&path, b"{not json").unwrap();
        let err = Secrets::open(path).unwrap_err().to_string();
        assert!(err.contains("damaged"), "{err}");
    }

    #[test]
    fn redact_hides_known_secrets() {
        let t = redact("GET /bot123456:ABCDEFGH/getMe failed", &["123456:ABCDEFGH".into()]);
        assert_eq!(t, "GET /bot<redacted>/getMe failed");
    }
}
