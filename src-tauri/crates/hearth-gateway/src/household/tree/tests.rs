//! The copy's tests: what a stream may and may not say, and folders copied end to end.

use hearth_isolation::fsat;
use rusqlite::Connection;
use sha2::{Digest, Sha256};

use super::*;

fn stream(records: &[u8]) -> Vec<u8> {
    let mut v = MAGIC.to_vec();
    v.extend_from_slice(records);
    v
}

fn named(tag: u8, name: &str, mode: u32) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&(name.len() as u16).to_le_bytes());
    v.extend_from_slice(name.as_bytes());
    v.extend_from_slice(&mode.to_le_bytes());
    v
}

fn into() -> (tempfile::TempDir, OwnedFd) {
    let tmp = tempfile::tempdir().unwrap();
    let fd = fsat::open_dir_path(tmp.path(), false).unwrap();
    (tmp, fd)
}

#[test]
fn a_folder_goes_through_the_stream_with_its_databases_and_without_its_links() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("member");
    std::fs::create_dir_all(src.join("files/deeper")).unwrap();
    std::fs::write(src.join("files/deeper/note.txt"), "bring a jacket").unwrap();
    std::fs::write(tmp.path().join("secret.txt"), "not theirs").unwrap();
    std::os::unix::fs::symlink(tmp.path().join("secret.txt"), src.join("files/link.txt")).unwrap();
    std::os::unix::fs::symlink(tmp.path(), src.join("up")).unwrap();
    std::fs::hard_link(tmp.path().join("secret.txt"), src.join("hard.txt")).unwrap();
    let live = Connection::open(src.join(HISTORY)).unwrap();
    live.pragma_update(None, "journal_mode", "WAL").unwrap();
    live.execute_batch("CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('only in the WAL');").unwrap();

    let dir = fsat::open_dir_path(&src, false).unwrap();
    let mut bytes = Vec::new();
    read_tree(dir, &src, &ReadOptions::member(), &mut bytes).unwrap();
    let (out, fd) = into();
    let mut got = Received::default();
    receive(&bytes[..], &fd, "members/ana", false, 1 << 30, &mut got).unwrap();

    let files: Vec<&str> = got.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(files, ["members/ana/files/deeper/note.txt", "members/ana/history.sqlite"]);
    assert_eq!(
        got.dirs.iter().map(|d| d.0.as_str()).collect::<Vec<_>>(),
        ["members/ana/files", "members/ana/files/deeper"]
    );
    let mut skipped: Vec<&str> = got.skipped.iter().map(|s| s.0.as_str()).collect();
    skipped.sort();
    assert_eq!(skipped, ["members/ana/files/link.txt", "members/ana/hard.txt", "members/ana/up"]);
    assert_eq!(std::fs::read_to_string(out.path().join("files/deeper/note.txt")).unwrap(), "bring a jacket");
    let copy = Connection::open(out.path().join(HISTORY)).unwrap();
    let x: String = copy.query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(x, "only in the WAL", "the snapshot holds what the WAL held");
    assert!(
        !std::fs::read_dir(&src).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(SNAPSHOT_PREFIX))
    );
    assert_eq!(got.files[0].sha256, hex(&Sha256::digest(b"bring a jacket")));
    drop(live);
}

#[test]
fn a_hostile_stream_writes_nothing_outside_and_is_stopped() {
    let bad_names = ["..", ".", "a/b", "", "x\u{1b}[2J", ".hearth-snapshot-1.sqlite"];
    for name in bad_names {
        let (out, fd) = into();
        let records = stream(&named(T_FILE, name, 0o644));
        let err = receive(&records[..], &fd, "", false, 1 << 20, &mut Received::default()).unwrap_err();
        assert!(matches!(err, TreeError::Refused(_)), "{name:?}: {err}");
        assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("no magic", b"HEARTHT0Z".to_vec()),
        ("leaving the top", stream(b"U")),
        ("ending inside a folder", stream(&[named(T_DIR, "a", 0o700), vec![T_END]].concat())),
        ("nothing after the end", stream(b"ZZ")),
        ("a truncated stream", stream(&named(T_FILE, "a", 0o600))),
        (
            "an oversized chunk",
            stream(&[named(T_FILE, "a", 0o600), vec![T_CHUNK], (CHUNK as u32 + 1).to_le_bytes().to_vec()].concat()),
        ),
        ("too deep", stream(&(0..=MAX_DEPTH).flat_map(|i| named(T_DIR, &format!("d{i}"), 0o700)).collect::<Vec<_>>())),
        ("an unasked report", stream(&[vec![T_META], 2u32.to_le_bytes().to_vec(), b"{}".to_vec()].concat())),
        ("an unknown record", stream(b"Q")),
    ];
    for (what, records) in cases {
        let (_out, fd) = into();
        let err = receive(&records[..], &fd, "", false, 1 << 20, &mut Received::default()).unwrap_err();
        assert!(matches!(err, TreeError::Refused(_)), "{what}: {err}");
    }
    // Bytes beyond the bound stop the copy.
    let (_out, fd) = into();
    let mut records = named(T_FILE, "big", 0o600);
    for _ in 0..3 {
        records.push(T_CHUNK);
        records.extend_from_slice(&1000u32.to_le_bytes());
        records.extend_from_slice(&[7u8; 1000]);
    }
    let err = receive(&stream(&records)[..], &fd, "", false, 2500, &mut Received::default()).unwrap_err();
    assert!(err.to_string().contains("more than 2500 bytes"), "{err}");
    // A failure the reader reports ends the copy with its (sanitised) words.
    let (_out, fd) = into();
    let mut records = vec![T_FAIL];
    let why = "disk \u{7} on fire";
    records.extend_from_slice(&(why.len() as u16).to_le_bytes());
    records.extend_from_slice(why.as_bytes());
    let err = receive(&stream(&records)[..], &fd, "", false, 1 << 20, &mut Received::default()).unwrap_err();
    assert_eq!(err.to_string(), "disk ? on fire");
}

#[test]
fn reader_arguments_round_trip() {
    let options =
        ReadOptions { household: true, conversations: Some(("Ana Maria".into(), "2026-03-01T09:00:00Z".into())) };
    let args = options.args(Path::new("/var/lib/hearth"));
    assert_eq!(args[0], "tree-reader");
    assert_eq!(ReadOptions::parse(&args[1..]).unwrap(), (PathBuf::from("/var/lib/hearth"), options));
    assert!(ReadOptions::parse(&["--base".into(), "relative".into()]).is_err());
    assert!(ReadOptions::parse(&["--what".into()]).is_err());
}
