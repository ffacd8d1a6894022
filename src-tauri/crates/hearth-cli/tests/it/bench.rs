//! `hearth-bench` runs end to end: the smallest idle and fan-out scenarios against a real
//! `hearth serve` child, with sane figures in its JSON. Not the targets — CI machines
//! vary — only that the numbers are plausible and the bench stops by itself. The bench is its own
//! crate; it runs here, in this test's process, because this is the crate whose `hearth` binary
//! it measures (`CARGO_BIN_EXE_hearth` exists only in hearth-cli's tests).

use std::time::Duration;

use clap::Parser as _;
use serde_json::Value;

const HEARTH: &str = env!("CARGO_BIN_EXE_hearth");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smallest_idle_and_fanout_complete_with_sane_numbers() {
    let cli = hearth_bench::Cli::try_parse_from(
        ["hearth-bench", "--hearth", HEARTH, "--quick", "--scenario", "idle,fanout", "--idle-sizes", "5"]
            .into_iter()
            .chain(["--fanout-sizes", "3", "--fanout-latency-ms", "200", "--json"]),
    )
    .expect("the command line parses");
    let stdout = tokio::time::timeout(Duration::from_secs(120), hearth_bench::run(cli))
        .await
        .expect("hearth-bench finishes within two minutes")
        .unwrap_or_else(|e| panic!("hearth-bench failed: {e:#}"));
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout}"));

    // Machine details come first, and say what ran.
    let first_key = stdout.trim_start().trim_start_matches('{').trim_start().split(':').next().unwrap_or_default();
    assert_eq!(first_key, "\"machine\"", "{stdout}");
    let machine = &report["machine"];
    assert!(machine["cores"].as_u64().unwrap() >= 1, "{machine}");
    assert!(machine["hearth_version"].as_str().unwrap().contains("hearth"), "{machine}");
    assert!(!machine["cpu"].as_str().unwrap().is_empty(), "{machine}");

    // Idle: five bots, all polling, a plausible resident size, no workers.
    let idle = &report["scenarios"]["idle"]["sizes"][0];
    assert_eq!(idle["bots"], 5, "{idle}");
    let rss = idle["gateway_rss_mb"].as_f64().unwrap();
    assert!((1.0..500.0).contains(&rss), "gateway RSS {rss} MB: {idle}");
    let polling = idle["all_polling_ms"].as_f64().unwrap();
    assert!(polling > 0.0 && polling < 30_000.0, "all polling after {polling} ms: {idle}");
    assert_eq!(idle["worker_processes"], 0, "{idle}");

    // Fan-out: three replies, none before the model answered, none absurdly late.
    let run = &report["scenarios"]["fan-out"]["runs"][0];
    assert_eq!(run["bots"], 3, "{run}");
    let latencies = run["latencies_ms"].as_array().unwrap();
    assert_eq!(latencies.len(), 3, "{run}");
    for l in latencies {
        let l = l.as_f64().unwrap();
        assert!((200.0..30_000.0).contains(&l), "reply after {l} ms: {run}");
    }
    let lat = &run["latency"];
    assert!(
        lat["min_ms"].as_f64() <= lat["p50_ms"].as_f64() && lat["p50_ms"].as_f64() <= lat["max_ms"].as_f64(),
        "{lat}"
    );

    // Every target is reported, measured or not, with a verdict only where it was measured.
    let targets = report["targets"].as_array().unwrap();
    assert!(targets.len() >= 4, "{targets:?}");
    assert!(targets.iter().all(|t| t["met"].is_null() || t["met"].is_boolean()), "{targets:?}");
}
