//! Bot tokens and provider keys: where they are kept, and the one handle ([`Secrets`]) the
//! gateway reads and changes them through. Never in the database, never in a log line (not even
//! in an error), never in a worker's environment or on a command line.
//!
//! Two places, chosen by [`SecretsBackend`]:
//!
//! - **The macOS Keychain** (the default on macOS). The whole map is one item: service
//!   [`VAULT_SERVICE`], account `secrets:<canonical data directory>`, so the demo, the tests and a
//!   second household never share one. A start reads it once (one access prompt at most) and
//!   each change replaces it in one write. An empty map leaves no item behind.
//! - **`secrets.json`** in the data directory, mode 0600, owned by the gateway's user (the
//!   default elsewhere, and `HEARTH_SECRETS=file`). Writes go to a temporary file — created new,
//!   never through a link ([`crate::data_dir::write_private`]) — that is fsynced and renamed
//!   over the old one, so a crash or a full disk leaves either the old or the new file, never
//!   half of one.
//!
//! A `secrets.json` found beside the Keychain is imported when [`Secrets::open`] runs: it was
//! left by an install that kept a file, or by a restore of a backup made with
//! `--include-secrets`. It is merged into the item (its values win: it is the newer intent),
//! stored, read back and compared, and only then deleted; the log names the keys imported, never
//! a value. Any failure leaves the file where it was and returns the error.
//!
//! Linux has no Keychain choice: its kernel keyring is empty after every reboot, and a desktop
//! secret service needs a logged-in session a headless box does not have. The unit tests still
//! drive the real keyring code (`KeyringVault`) against that kernel keyring.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::paths::DataDir;

/// The Keychain item's service: the app's bundle identifier.
pub const VAULT_SERVICE: &str = "app.hearth.desktop";

fn no_keychain() -> SecretsError {
    SecretsError::Choice(
        "HEARTH_SECRETS=keychain is for macOS. On Linux the kernel keyring is emptied at every reboot, so Hearth \
         keeps secrets in a 0600 file in the data folder: leave HEARTH_SECRETS unset or set it to file"
            .into(),
    )
}

/// What to do when the Keychain cannot be reached; ends every such error.
const VAULT_ADVICE: &str = "run Hearth in the admin's logged-in session with the Keychain unlocked (and allow access \
                            when macOS asks), or set HEARTH_SECRETS=file to keep secrets in a 0600 file in the data \
                            folder";

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("could not read the secrets file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// `detail` says where the file stops making sense, never what it holds.
    #[error(
        "the secrets file {path} is damaged ({detail}); restore it from a backup or remove it and re-enter the tokens"
    )]
    Damaged { path: PathBuf, detail: String },
    #[error("could not save the secrets file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    /// The Keychain (or another vault) refused or failed. `what` comes from the vault's error
    /// codes, never from a value.
    #[error("{action} {place}: {what}; {VAULT_ADVICE}")]
    Vault { action: &'static str, place: String, what: String },
    #[error(
        "Hearth's secrets in {place} are damaged ({detail}); delete that item (Keychain Access) and paste the \
         tokens and the provider key again, or restore a backup made with --include-secrets"
    )]
    VaultDamaged { place: String, detail: String },
    /// `HEARTH_SECRETS` (or the configuration) asks for something this machine cannot do.
    #[error("{0}")]
    Choice(String),
}

/// Where bot tokens and provider keys are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretsBackend {
    /// `secrets.json` in the data directory, 0600.
    File,
    /// One item in the admin's macOS Keychain.
    Keychain,
}

impl SecretsBackend {
    /// The Keychain on macOS, the 0600 file elsewhere.
    pub fn platform_default() -> Self {
        if cfg!(target_os = "macos") { Self::Keychain } else { Self::File }
    }

    /// `choice` when given; else `HEARTH_SECRETS` (`file` or `keychain`) when set; else
    /// [`Self::platform_default`]. The Keychain is refused where there is none.
    pub fn resolve(choice: Option<Self>) -> Result<Self, SecretsError> {
        let backend = match choice {
            Some(b) => b,
            None => match std::env::var("HEARTH_SECRETS") {
                Ok(v) if !v.trim().is_empty() => v.parse()?,
                Ok(_) | Err(std::env::VarError::NotPresent) => Self::platform_default(),
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(SecretsError::Choice("HEARTH_SECRETS is not text: use file or keychain".into()));
                }
            },
        };
        if backend == Self::Keychain && !cfg!(target_os = "macos") {
            return Err(no_keychain());
        }
        Ok(backend)
    }
}

impl std::str::FromStr for SecretsBackend {
    type Err = SecretsError;
    fn from_str(s: &str) -> Result<Self, SecretsError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "file" => Ok(Self::File),
            "keychain" => Ok(Self::Keychain),
            _ => Err(SecretsError::Choice(format!("HEARTH_SECRETS={s:?} is not understood: use file or keychain"))),
        }
    }
}

impl std::fmt::Display for SecretsBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::File => "file",
            Self::Keychain => "keychain",
        })
    }
}

/// A credential store that keeps ONE item for Hearth: the whole secrets map as JSON. Errors are
/// what happened, in words that carry no value.
pub(crate) trait Vault: Send + Sync {
    /// Where the item is, for messages and `hearth doctor`.
    fn place(&self) -> String;
    /// The item, or `None` when there is none.
    fn load(&self) -> Result<Option<String>, String>;
    /// Creates or replaces the item.
    fn store(&self, item: &str) -> Result<(), String>;
    /// Removes the item; no item is not an error.
    fn delete(&self) -> Result<(), String>;
}

/// The Keychain account of a data directory's item: `secrets:` and its canonical path.
pub fn vault_account(data_dir: &Path) -> String {
    let dir =
        fs::canonicalize(data_dir).or_else(|_| std::path::absolute(data_dir)).unwrap_or_else(|_| data_dir.to_owned());
    format!("secrets:{}", dir.display())
}

/// The item in the operating system's credential store, through the `keyring` crate. The
/// credential is built for the platform's own store by name (never through keyring's default
/// builder, which silently falls back to an in-memory mock when a feature is missing).
#[cfg(any(target_os = "macos", all(test, target_os = "linux")))]
pub(crate) struct KeyringVault {
    entry: keyring::Entry,
    place: String,
}

#[cfg(any(target_os = "macos", all(test, target_os = "linux")))]
impl KeyringVault {
    pub(crate) fn new(service: &str, account: &str) -> Result<Self, SecretsError> {
        #[cfg(target_os = "macos")]
        let (credential, store) =
            (keyring::macos::MacCredential::new_with_target(None, service, account), "the macOS Keychain");
        #[cfg(target_os = "linux")]
        let (credential, store) =
            (keyring::keyutils::KeyutilsCredential::new_with_target(None, service, account), "the kernel keyring");
        let place = format!("{store} (item {service:?}, account {account:?})");
        match credential {
            Ok(c) => Ok(Self { entry: keyring::Entry::new_with_credential(Box::new(c)), place }),
            Err(e) => Err(SecretsError::Vault { action: "could not reach", place, what: keyring_failure(&e) }),
        }
    }
}

#[cfg(any(target_os = "macos", all(test, target_os = "linux")))]
impl Vault for KeyringVault {
    fn place(&self) -> String {
        self.place.clone()
    }

    fn load(&self) -> Result<Option<String>, String> {
        match self.entry.get_password() {
            Ok(item) => Ok(Some(item)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(keyring_failure(&e)),
        }
    }

    fn store(&self, item: &str) -> Result<(), String> {
        self.entry.set_password(item).map_err(|e| keyring_failure(&e))
    }

    fn delete(&self) -> Result<(), String> {
        match self.entry.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(keyring_failure(&e)),
        }
    }
}

/// What a keyring error says happened, without its payload: `BadEncoding` carries the item's
/// bytes, so no keyring error is ever formatted with `{:?}`.
#[cfg(any(target_os = "macos", all(test, target_os = "linux")))]
fn keyring_failure(e: &keyring::Error) -> String {
    use keyring::Error as E;
    match e {
        E::NoStorageAccess(platform) => format!("access was refused ({platform})"),
        E::PlatformFailure(platform) => format!("it failed ({platform})"),
        E::NoEntry => "the item is not there".into(),
        E::BadEncoding(_) => "the item is not text".into(),
        E::TooLong(attribute, limit) => format!("the item's {attribute} is longer than the {limit} characters allowed"),
        E::Invalid(attribute, reason) => format!("the item's {attribute} is not accepted: {reason}"),
        E::Ambiguous(items) => format!("{} items match Hearth's", items.len()),
        other => other.to_string(),
    }
}

/// A cheap-to-clone handle to the household's secrets.
#[derive(Clone)]
pub struct Secrets {
    inner: Arc<Inner>,
}

struct Inner {
    backing: Backing,
    // std Mutex: never held across an await; writes are small and rare.
    values: Mutex<BTreeMap<String, String>>,
}

enum Backing {
    File(PathBuf),
    Vault(Box<dyn Vault>),
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets").field("place", &self.place()).finish_non_exhaustive()
    }
}

/// The household bot's token (`store::HOUSEHOLD_ID` is never a member id, and member keys are
/// `bot/<id>`, so it cannot clash).
pub const HOUSEHOLD_BOT_KEY: &str = "household/bot";

pub fn bot_token_key(member_id: &str) -> String {
    format!("bot/{member_id}")
}
pub const PROVIDER_KEY: &str = "provider/default";

impl Secrets {
    /// Opens the secrets of the household in `data_dir`, kept by `backend` (see
    /// [`SecretsBackend::resolve`]). With the Keychain, a `secrets.json` in the folder is imported
    /// first (module docs). Blocking: the Keychain may wait for the admin to allow access.
    pub fn open(data_dir: &Path, backend: SecretsBackend) -> Result<Self, SecretsError> {
        let file = DataDir::new(data_dir).secrets();
        match backend {
            SecretsBackend::File => Self::open_file(file),
            SecretsBackend::Keychain => Self::open_vault(file, keychain(data_dir)?),
        }
    }

    fn open_file(path: PathBuf) -> Result<Self, SecretsError> {
        let values = read_file(&path)?.unwrap_or_default();
        if path.exists() {
            // Tighten a file someone loosened.
            let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o600));
        }
        Ok(Self { inner: Arc::new(Inner { backing: Backing::File(path), values: Mutex::new(values) }) })
    }

    /// The vault's item, after importing `file` into it when there is one.
    pub(crate) fn open_vault(file: PathBuf, vault: Box<dyn Vault>) -> Result<Self, SecretsError> {
        let mut values = load_vault(&*vault)?;
        if let Some(imported) = read_file(&file)? {
            let mut merged = values.clone();
            let keys: Vec<String> = imported.keys().cloned().collect();
            merged.extend(imported);
            if merged != values {
                store_vault(&*vault, &merged, "could not import secrets.json into")?;
            }
            if load_vault(&*vault)? != merged {
                return Err(SecretsError::Vault {
                    action: "could not import secrets.json into",
                    place: vault.place(),
                    what: format!(
                        "what was saved did not read back the same, so {} was kept to import at the next start",
                        file.display()
                    ),
                });
            }
            match fs::remove_file(&file) {
                Ok(()) => {
                    if let Some(dir) = file.parent().and_then(|d| fs::File::open(d).ok()) {
                        let _ = dir.sync_all();
                    }
                    tracing::info!(?keys, place = %vault.place(), "imported secrets.json and deleted it");
                }
                Err(e) => tracing::warn!(
                    ?keys, place = %vault.place(), file = %file.display(), error = %e,
                    "imported secrets.json but could not delete it; delete it by hand"
                ),
            }
            values = merged;
        }
        Ok(Self { inner: Arc::new(Inner { backing: Backing::Vault(vault), values: Mutex::new(values) }) })
    }

    /// Which kind of place holds the secrets.
    pub fn backend(&self) -> SecretsBackend {
        match self.inner.backing {
            Backing::File(_) => SecretsBackend::File,
            Backing::Vault(_) => SecretsBackend::Keychain,
        }
    }

    /// Where the secrets are, for people: the file's path or the Keychain item. No secret.
    pub fn place(&self) -> String {
        match &self.inner.backing {
            Backing::File(path) => format!("the file {}", path.display()),
            Backing::Vault(vault) => vault.place(),
        }
    }

    pub fn get(&self, key: &str) -> Option<String> {
        self.inner.values.lock().unwrap().get(key).cloned()
    }

    /// Every secret value, for redacting them out of error text.
    pub fn all_values(&self) -> Vec<String> {
        self.inner.values.lock().unwrap().values().cloned().collect()
    }

    /// Every key and value, for a backup that includes them.
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        self.inner.values.lock().unwrap().clone()
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
        match &self.inner.backing {
            Backing::File(path) => write_file(path, values),
            Backing::Vault(vault) => store_vault(&**vault, values, "could not save secrets to"),
        }
    }
}

/// The secrets of the household in `data_dir` as a gateway opening it would see them, changing
/// nothing: for a backup made without a gateway. With the Keychain, a `secrets.json` waiting to
/// be imported is merged in (its values win), as the next start would.
pub fn read(data_dir: &Path, backend: SecretsBackend) -> Result<BTreeMap<String, String>, SecretsError> {
    let file = DataDir::new(data_dir).secrets();
    let mut values = match backend {
        SecretsBackend::File => BTreeMap::new(),
        SecretsBackend::Keychain => load_vault(&*keychain(data_dir)?)?,
    };
    values.extend(read_file(&file)?.unwrap_or_default());
    Ok(values)
}

/// The data directory's Keychain item.
#[cfg(target_os = "macos")]
fn keychain(data_dir: &Path) -> Result<Box<dyn Vault>, SecretsError> {
    Ok(Box::new(KeyringVault::new(VAULT_SERVICE, &vault_account(data_dir))?))
}

#[cfg(not(target_os = "macos"))]
fn keychain(_data_dir: &Path) -> Result<Box<dyn Vault>, SecretsError> {
    Err(no_keychain())
}

/// The file's map, or `None` when there is no file.
fn read_file(path: &Path) -> Result<Option<BTreeMap<String, String>>, SecretsError> {
    match fs::read(path) {
        Ok(bytes) => parse(&bytes).map(Some).map_err(|detail| SecretsError::Damaged { path: path.to_owned(), detail }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SecretsError::Read { path: path.to_owned(), source }),
    }
}

/// Through `secrets.json.tmp`, created new and never through a link (`data_dir::write_private`).
fn write_file(path: &Path, values: &BTreeMap<String, String>) -> Result<(), SecretsError> {
    let body = serde_json::to_vec_pretty(values).expect("a map of strings always serialises");
    crate::data_dir::write_private(path, &body).map_err(|source| SecretsError::Write { path: path.to_owned(), source })
}

fn load_vault(vault: &dyn Vault) -> Result<BTreeMap<String, String>, SecretsError> {
    match vault.load() {
        Ok(Some(item)) => {
            parse(item.as_bytes()).map_err(|detail| SecretsError::VaultDamaged { place: vault.place(), detail })
        }
        Ok(None) => Ok(BTreeMap::new()),
        Err(what) => {
            Err(SecretsError::Vault { action: "could not read Hearth's secrets from", place: vault.place(), what })
        }
    }
}

/// Stores the whole map as the vault's one item; an empty map deletes the item.
fn store_vault(vault: &dyn Vault, values: &BTreeMap<String, String>, action: &'static str) -> Result<(), SecretsError> {
    let done = if values.is_empty() {
        vault.delete()
    } else {
        vault.store(&serde_json::to_string(values).expect("a map of strings always serialises"))
    };
    done.map_err(|what| SecretsError::Vault { action, place: vault.place(), what })
}

/// The map in a file or an item. The error says where parsing stopped, never what was there
/// (serde's own messages may quote a value).
fn parse(bytes: &[u8]) -> Result<BTreeMap<String, String>, String> {
    serde_json::from_slice(bytes).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => "not a map of names to text",
            serde_json::error::Category::Eof => "cut short",
            _ => "not valid JSON",
        };
        format!("{what} at line {} column {}", e.line(), e.column())
    })
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
pub(crate) mod tests {
    use super::*;

    #[test]
    fn stored_0600_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        let s = Secrets::open(dir.path(), SecretsBackend::File).unwrap();
        s.set("bot/ana", "123:abc").unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let again = Secrets::open(dir.path(), SecretsBackend::File).unwrap();
        assert_eq!(again.get("bot/ana").as_deref(), Some("123:abc"));
        again.remove("bot/ana").unwrap();
        assert_eq!(Secrets::open(dir.path(), SecretsBackend::File).unwrap().get("bot/ana"), None);
        assert!(!format!("{again:?}").contains("123:abc"));
        assert_eq!(again.backend(), SecretsBackend::File);
    }

    #[test]
    fn a_damaged_file_is_a_clear_error_not_an_empty_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        fs::write(&path, b"{not json").unwrap();
        let err = Secrets::open(dir.path(), SecretsBackend::File).unwrap_err().to_string();
        assert!(err.contains("damaged"), "{err}");
        // Nor does the message quote what the file holds.
        fs::write(&path, br#"{"bot/ana": "123456:SECRETSECRET", "bot/ben": 7}"#).unwrap();
        let err = Secrets::open(dir.path(), SecretsBackend::File).unwrap_err();
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(text.contains("damaged") || text.contains("Damaged"), "{text}");
            assert!(!text.contains("SECRETSECRET"), "{text}");
        }
    }

    #[test]
    fn redact_hides_known_secrets() {
        let t = redact("GET /bot123456:ABCDEFGH/getMe failed", &["123456:ABCDEFGH".into()]);
        assert_eq!(t, "GET /bot<redacted>/getMe failed");
    }

    #[test]
    fn the_backend_is_chosen_by_name_and_linux_has_no_keychain() {
        assert_eq!("file".parse::<SecretsBackend>().unwrap(), SecretsBackend::File);
        assert_eq!(" Keychain ".parse::<SecretsBackend>().unwrap(), SecretsBackend::Keychain);
        let err = "vault".parse::<SecretsBackend>().unwrap_err().to_string();
        assert!(err.contains("use file or keychain"), "{err}");
        assert_eq!(SecretsBackend::resolve(Some(SecretsBackend::File)).unwrap(), SecretsBackend::File);
        if cfg!(target_os = "macos") {
            assert_eq!(SecretsBackend::platform_default(), SecretsBackend::Keychain);
        } else {
            assert_eq!(SecretsBackend::platform_default(), SecretsBackend::File);
            let err = SecretsBackend::resolve(Some(SecretsBackend::Keychain)).unwrap_err().to_string();
            assert!(err.contains("emptied at every reboot"), "{err}");
            let dir = tempfile::tempdir().unwrap();
            assert!(Secrets::open(dir.path(), SecretsBackend::Keychain).is_err());
        }
    }

    #[test]
    fn the_account_is_the_canonical_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let canonical = fs::canonicalize(dir.path()).unwrap();
        let roundabout = dir.path().join("x").join("..");
        fs::create_dir(dir.path().join("x")).unwrap();
        assert_eq!(vault_account(&roundabout), format!("secrets:{}", canonical.display()));
        let other = tempfile::tempdir().unwrap();
        assert_ne!(vault_account(dir.path()), vault_account(other.path()));
    }

    // ---- the store logic over a vault, with a vault that lives in memory -------------------

    #[derive(Default)]
    struct Memory {
        item: Mutex<Option<String>>,
        /// Every store and delete fails.
        refuse_writes: std::sync::atomic::AtomicBool,
        /// Stores "succeed" but keep nothing: what a broken store would do.
        lose_writes: std::sync::atomic::AtomicBool,
    }

    /// A vault in memory; clones share the item. Also used by `backup.rs`'s tests.
    #[derive(Clone, Default)]
    pub(crate) struct MemoryVault(Arc<Memory>);

    impl Vault for MemoryVault {
        fn place(&self) -> String {
            "the test vault".into()
        }
        fn load(&self) -> Result<Option<String>, String> {
            Ok(self.0.item.lock().unwrap().clone())
        }
        fn store(&self, item: &str) -> Result<(), String> {
            use std::sync::atomic::Ordering::SeqCst;
            if self.0.refuse_writes.load(SeqCst) {
                return Err("access was refused (the user said no)".into());
            }
            if !self.0.lose_writes.load(SeqCst) {
                *self.0.item.lock().unwrap() = Some(item.to_owned());
            }
            Ok(())
        }
        fn delete(&self) -> Result<(), String> {
            if self.0.refuse_writes.load(std::sync::atomic::Ordering::SeqCst) {
                return Err("access was refused (the user said no)".into());
            }
            *self.0.item.lock().unwrap() = None;
            Ok(())
        }
    }

    impl MemoryVault {
        pub(crate) fn map(&self) -> Option<BTreeMap<String, String>> {
            self.0.item.lock().unwrap().as_deref().map(|s| serde_json::from_str(s).unwrap())
        }
    }

    fn write_json(path: &Path, pairs: &[(&str, &str)]) {
        let map: BTreeMap<&str, &str> = pairs.iter().copied().collect();
        fs::write(path, serde_json::to_vec(&map).unwrap()).unwrap();
    }

    #[test]
    fn the_vault_holds_the_whole_map_as_one_item_and_an_empty_map_leaves_none() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secrets.json");
        let vault = MemoryVault::default();
        let s = Secrets::open_vault(file.clone(), Box::new(vault.clone())).unwrap();
        assert_eq!(s.backend(), SecretsBackend::Keychain);
        assert_eq!(s.place(), "the test vault");
        s.set("bot/ana", "111:aaaaaaaa").unwrap();
        s.set(PROVIDER_KEY, "sk-bbbbbbbb").unwrap();
        assert_eq!(vault.map().unwrap().len(), 2);
        assert!(!file.exists(), "nothing is written to a file");
        let again = Secrets::open_vault(file.clone(), Box::new(vault.clone())).unwrap();
        assert_eq!(again.get("bot/ana").as_deref(), Some("111:aaaaaaaa"));
        assert_eq!(again.snapshot().len(), 2);
        again.remove("bot/ana").unwrap();
        again.remove(PROVIDER_KEY).unwrap();
        assert_eq!(vault.map(), None, "no item left behind");
        assert!(!format!("{again:?}").contains("aaaaaaaa"));
    }

    #[test]
    fn a_secrets_file_is_imported_with_its_values_winning_then_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secrets.json");
        let vault = MemoryVault::default();
        Secrets::open_vault(file.clone(), Box::new(vault.clone())).unwrap().set("bot/ana", "111:old-token").unwrap();
        Secrets::open_vault(file.clone(), Box::new(vault.clone())).unwrap().set("bot/ben", "222:ben-token").unwrap();
        // A restored backup: a newer token for Ana, and the provider key.
        write_json(&file, &[("bot/ana", "111:new-token"), (PROVIDER_KEY, "sk-restored")]);

        let s = Secrets::open_vault(file.clone(), Box::new(vault.clone())).unwrap();
        assert!(!file.exists(), "the file is gone once the vault holds it");
        let expected: BTreeMap<String, String> =
            [("bot/ana", "111:new-token"), ("bot/ben", "222:ben-token"), (PROVIDER_KEY, "sk-restored")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(s.snapshot(), expected);
        assert_eq!(vault.map().unwrap(), expected);
    }

    #[test]
    fn a_failed_import_leaves_the_file_and_says_why_without_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secrets.json");
        let pairs = [("bot/ana", "111:SECRET-ANA-TOKEN"), (PROVIDER_KEY, "sk-SECRET-PROVIDER")];
        write_json(&file, &pairs);
        let before = fs::read(&file).unwrap();

        // The vault refuses the write.
        let refusing = MemoryVault::default();
        refusing.0.refuse_writes.store(true, std::sync::atomic::Ordering::SeqCst);
        let err = Secrets::open_vault(file.clone(), Box::new(refusing)).unwrap_err();
        assert!(matches!(err, SecretsError::Vault { .. }), "{err:?}");
        let text = format!("{err} {err:?}");
        assert!(text.contains("access was refused") && text.contains("HEARTH_SECRETS=file"), "{text}");
        assert!(!text.contains("SECRET-"), "{text}");
        assert_eq!(fs::read(&file).unwrap(), before, "the file is kept as it was");

        // The vault says yes but keeps nothing: the read-back catches it.
        let losing = MemoryVault::default();
        losing.0.lose_writes.store(true, std::sync::atomic::Ordering::SeqCst);
        let err = Secrets::open_vault(file.clone(), Box::new(losing)).unwrap_err().to_string();
        assert!(err.contains("did not read back the same") && err.contains("was kept"), "{err}");
        assert!(!err.contains("SECRET-"), "{err}");
        assert_eq!(fs::read(&file).unwrap(), before, "the file is kept as it was");

        // A damaged file is not imported and not deleted.
        fs::write(&file, br#"{"bot/ana": "111:SECRET-ANA-TOKEN", "#).unwrap();
        let vault = MemoryVault::default();
        let err = Secrets::open_vault(file.clone(), Box::new(vault.clone())).unwrap_err().to_string();
        assert!(err.contains("damaged") && !err.contains("SECRET-"), "{err}");
        assert!(file.exists());
        assert_eq!(vault.map(), None);
    }

    #[test]
    fn a_refused_change_keeps_the_old_values_and_names_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let vault = MemoryVault::default();
        let s = Secrets::open_vault(dir.path().join("secrets.json"), Box::new(vault.clone())).unwrap();
        s.set("bot/ana", "111:first-token").unwrap();
        vault.0.refuse_writes.store(true, std::sync::atomic::Ordering::SeqCst);
        let err = s.set("bot/ana", "111:SECOND-TOKEN").unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(text.contains("could not save secrets to the test vault"), "{text}");
        assert!(!text.contains("SECOND-TOKEN") && !text.contains("first-token"), "{text}");
        assert_eq!(s.get("bot/ana").as_deref(), Some("111:first-token"));
        assert!(s.remove("bot/ana").is_err());
        assert_eq!(s.get("bot/ana").as_deref(), Some("111:first-token"));
    }

    #[test]
    fn a_damaged_item_is_a_clear_error_not_an_empty_store() {
        let dir = tempfile::tempdir().unwrap();
        let vault = MemoryVault::default();
        *vault.0.item.lock().unwrap() = Some(r#"["111:SECRET-IN-A-LIST"]"#.into());
        let err = Secrets::open_vault(dir.path().join("secrets.json"), Box::new(vault)).unwrap_err().to_string();
        assert!(err.contains("damaged") && err.contains("Keychain Access"), "{err}");
        assert!(!err.contains("SECRET-IN-A-LIST"), "{err}");
    }

    #[test]
    fn reading_for_a_backup_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secrets.json");
        write_json(&file, &[("bot/ana", "111:in-the-file")]);
        let read = read(dir.path(), SecretsBackend::File).unwrap();
        assert_eq!(read.get("bot/ana").map(String::as_str), Some("111:in-the-file"));
        assert!(file.exists());
        assert!(read_file(&dir.path().join("nothing.json")).unwrap().is_none());
    }

    // ---- the real keyring code, against the Linux kernel keyring ----------------------------

    /// A uniquely named item, deleted when the test ends (passed or failed).
    #[cfg(target_os = "linux")]
    struct TestItem {
        vault: KeyringVault,
        account: String,
    }

    #[cfg(target_os = "linux")]
    impl TestItem {
        const SERVICE: &str = "app.hearth.test";

        fn new(test: &str) -> Self {
            // A session keyring of this test's own, so the key it adds is possessed (searchable)
            // however the runner was started: a container or CI shell often has no session
            // keyring, and the kernel's fallback, the user-session keyring, does not reliably
            // make what is added to it possessed.
            // SAFETY: KEYCTL_JOIN_SESSION_KEYRING with a null name creates an anonymous keyring.
            let joined =
                unsafe { libc::syscall(libc::SYS_keyctl, 1 as libc::c_long, std::ptr::null::<libc::c_char>()) };
            assert!(joined > 0, "the kernel keyring is not available here: {}", std::io::Error::last_os_error());
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
            let account = format!("secrets:/test/{test}-{}-{nanos}", std::process::id());
            Self { vault: KeyringVault::new(Self::SERVICE, &account).unwrap(), account }
        }

        /// Another handle on the same item, as a restart would open.
        fn reopen(&self) -> Box<dyn Vault> {
            Box::new(KeyringVault::new(Self::SERVICE, &self.account).unwrap())
        }
    }

    #[cfg(target_os = "linux")]
    impl Drop for TestItem {
        fn drop(&mut self) {
            let _ = self.vault.delete();
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_keyring_vault_round_trips_one_item() {
        let item = TestItem::new("round-trip");
        let vault = &item.vault;
        assert!(vault.place().contains("kernel keyring") && vault.place().contains("app.hearth.test"));
        assert_eq!(vault.load().expect("the kernel keyring is reachable (add_key, keyctl)"), None);
        vault.store(r#"{"bot/ana":"111:first"}"#).unwrap();
        assert_eq!(vault.load().unwrap().as_deref(), Some(r#"{"bot/ana":"111:first"}"#));
        vault.store(r#"{"bot/ana":"111:second"}"#).unwrap();
        assert_eq!(vault.load().unwrap().as_deref(), Some(r#"{"bot/ana":"111:second"}"#), "replaced, not added");
        vault.delete().unwrap();
        // keyutils may serve a just-invalidated key for a moment (keyring's own docs).
        let gone = (0..100).any(|_| {
            let gone = vault.load().unwrap().is_none();
            if !gone {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            gone
        });
        assert!(gone, "the item is deleted");
        vault.delete().expect("deleting no item is fine");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn secrets_over_the_keyring_vault_import_a_file_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secrets.json");
        write_json(&file, &[("bot/ana", "111:from-the-file")]);
        let item = TestItem::new("secrets");
        let s = Secrets::open_vault(file.clone(), item.reopen()).unwrap();
        assert!(!file.exists());
        s.set(PROVIDER_KEY, "sk-in-the-keyring").unwrap();
        let again = Secrets::open_vault(file, item.reopen()).unwrap();
        assert_eq!(again.get("bot/ana").as_deref(), Some("111:from-the-file"));
        assert_eq!(again.get(PROVIDER_KEY).as_deref(), Some("sk-in-the-keyring"));
    }
}
