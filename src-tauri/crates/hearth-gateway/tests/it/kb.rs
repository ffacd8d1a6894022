//! Household knowledge kept current by the real watcher: a file written, edited, renamed and
//! deleted in `kb/` is searchable (or gone) within a second, on real time.

use std::time::{Duration, Instant};

use hearth_gateway::kb::Knowledge;
use tokio_util::sync::CancellationToken;

/// The promise: a change is searchable within a second.
const WITHIN: Duration = Duration::from_secs(1);

/// Polls `search` until `done` holds for its hits; how long that took, or a failure after
/// [`WITHIN`].
async fn until(kb: &Knowledge, query: &str, done: impl Fn(&[hearth_gateway::kb::KbHit]) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        let hits = kb.search(query.to_owned()).await.unwrap();
        if done(&hits) {
            return started.elapsed();
        }
        assert!(started.elapsed() < WITHIN, "{query:?} not as expected within {WITHIN:?}: {hits:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn says(hits: &[hearth_gateway::kb::KbHit], file: &str, words: &str) -> bool {
    hits.iter().any(|h| h.file == file && h.snippet.contains(words))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_searchable_within_a_second() {
    let data = tempfile::tempdir().unwrap();
    // Known before start: found by the scan at start.
    std::fs::create_dir(data.path().join("kb")).unwrap();
    std::fs::write(data.path().join("kb/bins.md"), "# Bins\nBlue bin on Monday.\n").unwrap();
    let kb = Knowledge::open(data.path()).unwrap();
    let cancel = CancellationToken::new();
    let watching = tokio::spawn(kb.clone().watch(cancel.clone()));
    until(&kb, "blue bin", |h| says(h, "bins.md", "Monday")).await;

    // A new file.
    std::fs::write(kb.dir().join("wifi.md"), "# Wifi\nNetwork: Home\nPassword: swordfish-42\n").unwrap();
    let took = until(&kb, "wifi password", |h| says(h, "wifi.md", "swordfish-42")).await;
    eprintln!("new file searchable after {took:?}");

    // An edit replaces the old words; the same size and second must not hide it.
    std::fs::write(kb.dir().join("wifi.md"), "# Wifi\nNetwork: Home\nPassword: marlin-77xx\n").unwrap();
    until(&kb, "wifi password", |h| says(h, "wifi.md", "marlin-77xx") && !says(h, "wifi.md", "swordfish")).await;
    until(&kb, "swordfish", |h| h.is_empty()).await;

    // A file in a folder made after start, then renamed.
    std::fs::create_dir(kb.dir().join("school")).unwrap();
    std::fs::write(kb.dir().join("school/terms.txt"), "Autumn term starts on 3 September.").unwrap();
    until(&kb, "autumn term", |h| says(h, "school/terms.txt", "3 September")).await;
    std::fs::rename(kb.dir().join("school/terms.txt"), kb.dir().join("school/dates.txt")).unwrap();
    until(&kb, "autumn term", |h| h.len() == 1 && says(h, "school/dates.txt", "3 September")).await;

    // A deletion takes it out.
    std::fs::remove_file(kb.dir().join("wifi.md")).unwrap();
    until(&kb, "wifi password marlin", |h| !h.iter().any(|h| h.file == "wifi.md")).await;

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), watching).await.expect("the watcher stops when cancelled").unwrap();
}

#[tokio::test]
async fn a_restart_catches_up_with_changes_made_while_stopped() {
    let data = tempfile::tempdir().unwrap();
    let kb = Knowledge::open(data.path()).unwrap();
    std::fs::write(kb.dir().join("a.txt"), "old words: pelican").unwrap();
    std::fs::write(kb.dir().join("b.txt"), "stays: heron").unwrap();
    kb.rescan(Default::default()).await.unwrap();
    drop(kb);

    std::fs::write(data.path().join("kb/a.txt"), "new words: flamingo and more").unwrap();
    std::fs::remove_file(data.path().join("kb/b.txt")).unwrap();
    let kb = Knowledge::open(data.path()).unwrap();
    let scanned = kb.rescan(Default::default()).await.unwrap();
    assert_eq!((scanned.indexed, scanned.removed, scanned.files), (1, 1, 1));
    assert!(kb.search("pelican".into()).await.unwrap().is_empty());
    assert!(kb.search("heron".into()).await.unwrap().is_empty());
    assert_eq!(kb.search("flamingo".into()).await.unwrap()[0].file, "a.txt");
}
