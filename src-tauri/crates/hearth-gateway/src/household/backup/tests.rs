//! Backups' unit tests: names and times, manifests, and secrets in and out of a backup.

use std::time::Duration;

use chrono::{Local, TimeZone};

use super::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;

#[test]
fn backups_sort_by_time_then_by_their_number() {
    let mut names = [
        "hearth-backup-20260301-090000-10",
        "hearth-backup-20260301-090000-2",
        "hearth-backup-20260301-090000",
        "hearth-backup-20260228-235959",
    ];
    names.sort_by_key(|n| sort_key(n));
    assert_eq!(
        names,
        [
            "hearth-backup-20260228-235959",
            "hearth-backup-20260301-090000",
            "hearth-backup-20260301-090000-2",
            "hearth-backup-20260301-090000-10"
        ]
    );
}

#[test]
fn the_next_backup_is_due_a_period_after_the_newest() {
    let now = Local.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let day = Duration::from_secs(86_400);
    assert_eq!(first_wait(None, now, day), FIRST_WAIT);
    assert_eq!(first_wait(Some(now - chrono::Duration::hours(20)), now, day), Duration::from_secs(4 * 3600));
    assert_eq!(first_wait(Some(now - chrono::Duration::days(3)), now, day), FIRST_WAIT, "overdue: soon");
    assert_eq!(first_wait(None, now, Duration::from_millis(250)), Duration::from_millis(250));
}

#[test]
fn manifest_paths_stay_inside_the_backup() {
    assert!(is_safe_relative("members/rosa-1/history.sqlite"));
    for bad in ["", "/etc/passwd", "../secrets.json", "members/../../x", "./gateway.sqlite"] {
        assert!(!is_safe_relative(bad), "{bad}");
    }
    assert_eq!(parse_mode("0700"), Some(0o700));
    assert_eq!(parse_mode("4755"), None, "no set-uid bits from a manifest");
}

/// A data directory with an empty household database.
fn household() -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    drop(store::Store::open(&data.path().join(DATABASE)).unwrap());
    data
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_backup_without_a_gateway_takes_the_secrets_from_where_they_are_kept_0600() {
    let data = household();
    let secrets = crate::secrets::Secrets::open(data.path(), SecretsBackend::File).unwrap();
    secrets.set("bot/ana", "111:SECRET-ANA-TOKEN").unwrap();
    // Someone loosened the file; its copy is the owner's alone all the same.
    fs::set_permissions(data.path().join(SECRETS), fs::Permissions::from_mode(0o644)).unwrap();
    let out = tempfile::tempdir().unwrap();
    let now = Local.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();

    let plain = create(data.path(), out.path(), false, now, &ReaderExe::This).unwrap();
    assert!(!plain.includes_secrets && !Path::new(&plain.path).join(SECRETS).exists());
    let with = create(data.path(), out.path(), true, now, &ReaderExe::This).unwrap();
    assert!(with.includes_secrets);
    let copy = Path::new(&with.path).join(SECRETS);
    assert!(fs::read_to_string(&copy).unwrap().contains("111:SECRET-ANA-TOKEN"));
    assert_eq!(mode(&copy), 0o600);
    let manifest: Manifest =
        serde_json::from_slice(&fs::read(Path::new(&with.path).join(MANIFEST)).unwrap()).unwrap();
    assert!(manifest.files.iter().any(|f| f.path == SECRETS && f.mode == "0600"));
    assert!(verify(Path::new(&with.path)).unwrap().problems.is_empty());
}

#[test]
fn keychain_secrets_go_into_a_backup_and_come_back_through_the_next_start() {
    use crate::secrets::tests::MemoryVault;
    // A household whose secrets are in the Keychain: no secrets.json in the data directory.
    let data = household();
    let vault = MemoryVault::default();
    let kept = crate::secrets::Secrets::open_vault(data.path().join(SECRETS), Box::new(vault.clone())).unwrap();
    kept.set("bot/ana", "111:SECRET-ANA-TOKEN").unwrap();
    kept.set(crate::secrets::PROVIDER_KEY, "sk-SECRET-KEY").unwrap();
    assert!(!data.path().join(SECRETS).exists());
    let out = tempfile::tempdir().unwrap();
    let now = Local.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let snapshot = kept.snapshot();
    let with = create_with_secrets(data.path(), out.path(), Some(&snapshot), now, &ReaderExe::This).unwrap();
    assert!(with.includes_secrets);
    assert_eq!(mode(&Path::new(&with.path).join(SECRETS)), 0o600);
    let without = create_with_secrets(data.path(), out.path(), None, now, &ReaderExe::This).unwrap();
    assert!(!without.includes_secrets);

    // Restored onto a machine whose Keychain has none of it: the file waits in the data
    // directory, and the next start imports it and deletes it.
    let target = tempfile::tempdir().unwrap();
    let restored_dir = target.path().join("data");
    let restored = restore(Path::new(&with.path), &restored_dir, false, now).unwrap();
    assert!(restored.secrets_restored);
    assert_eq!(mode(&restored_dir.join(SECRETS)), 0o600);
    let fresh = MemoryVault::default();
    let opened = crate::secrets::Secrets::open_vault(restored_dir.join(SECRETS), Box::new(fresh.clone())).unwrap();
    assert_eq!(opened.get("bot/ana").as_deref(), Some("111:SECRET-ANA-TOKEN"));
    assert_eq!(fresh.map().unwrap(), snapshot);
    assert!(!restored_dir.join(SECRETS).exists());
}

#[test]
fn the_default_folder_sits_beside_the_data_directory() {
    assert_eq!(default_dir(Path::new("/var/lib/hearth")), PathBuf::from("/var/lib/hearth-backups"));
    assert_eq!(
        default_dir(Path::new("/home/a/.local/share/hearth/")),
        PathBuf::from("/home/a/.local/share/hearth-backups")
    );
}
