//! The CLI keeps its word: every example command a `hearth … --help` shows is run, as the
//! `hearth` binary, against a test gateway, and must succeed. The help is read the way a person
//! meets it — `hearth --help`, then each command's own `--help`, down the tree — and the examples
//! are picked out of it by `hearth_testkit::examples` (the unit test in `args.rs` parses the same
//! ones with clap, daemons included).
//!
//! What a test may not reach is swapped for what it may, and only that: the providers' internet
//! addresses and a local model server's become the fake model's on loopback, an example's
//! external disk a temporary folder, and the API key an example reads from the environment or
//! stdin a made-up one. Examples that start a long-running process (a second gateway, the root
//! supervisor, the demo) are not run here: they would not end by themselves.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use hearth_testkit::examples::help_examples;
use tokio::io::AsyncWriteExt as _;

use crate::support::{HEARTH, Household};

/// Longest one example may take.
const LIMIT: Duration = Duration::from_secs(60);

/// Commands that run until stopped: a gateway (this test's already serves the folder), the
/// root supervisor, the demo, following the log.
const LONG_RUNNING: &[&[&str]] = &[&["serve"], &["supervisor"], &["demo"], &["logs", "-f"], &["logs", "--follow"]];

/// Addresses in examples that are on the internet or another machine's port: the fake model's
/// stands in for each.
const ELSEWHERE: &[&str] = &[
    "https://api.openai.com/v1",
    "https://api.anthropic.com",
    "https://api.groq.com/openai/v1",
    "http://localhost:11434/v1",
    "http://localhost:1234/v1",
    "http://localhost:8080/v1",
    "http://localhost:8880/v1",
];

/// The example's external disk.
const EXTERNAL_DISK: &str = "/media/usb/hearth";

/// What a command's examples need set first, as an admin would have (`FAKE`: the fake model's
/// address): the Test buttons for speech need a speech and a voice service.
const BEFORE: &[(&str, &[&[&str]])] = &[(
    "provider test-speech",
    &[
        &["provider", "speech", "--base-url", "FAKE", "--model", "whisper-1", "--no-key"],
        &["provider", "voice", "--base-url", "FAKE", "--model", "tts-1", "--voice", "nova", "--no-key"],
    ],
)];

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn hearth(data_dir: &Path, args: &[String], stdin: &str) -> Ran {
    let mut child = tokio::process::Command::new(HEARTH)
        .args(args)
        .env("HEARTH_DATA_DIR", data_dir)
        .env("COLUMNS", "100")
        .env("ANTHROPIC_API_KEY", "sk-ant-example")
        .env("GROQ_API_KEY", "gsk-example")
        .env("OPENAI_API_KEY", "sk-example")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn hearth");
    let mut pipe = child.stdin.take().expect("piped stdin");
    // A command that reads nothing may be gone already: a broken pipe is its answer.
    let _ = pipe.write_all(stdin.as_bytes()).await;
    drop(pipe);
    let out = tokio::time::timeout(LIMIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("`hearth {}` did not finish within {LIMIT:?}", args.join(" ")))
        .expect("wait for hearth");
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The subcommands a `--help` lists under "Commands:" (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|name| name != "help")
        .collect()
}

/// Every `--help` text of the binary, by command path, read from the binary itself.
async fn help_tree(data_dir: &Path) -> Vec<(Vec<String>, String)> {
    let mut out = Vec::new();
    let mut todo = vec![Vec::<String>::new()];
    while let Some(path) = todo.pop() {
        let mut args = path.clone();
        args.push("--help".into());
        let ran = hearth(data_dir, &args, "").await;
        assert_eq!(ran.code, Some(0), "`hearth {}` failed: {}", args.join(" "), ran.stderr);
        for sub in subcommands(&ran.stdout) {
            let mut next = path.clone();
            next.push(sub);
            todo.push(next);
        }
        out.push((path, ran.stdout));
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_in_the_help_works() {
    let mut h = Household::with(3, |c| c.control_socket = true).await;
    // The examples' names: Rosa, Leo (paired above) and Mia.
    h.add_and_pair("Mia").await;
    let disk = tempfile::tempdir().unwrap();
    let data_dir = h.dir.path().to_owned();
    let fake = h.llm.base_url();

    let tree = help_tree(&data_dir).await;
    let listed: BTreeSet<String> = tree.iter().map(|(path, _)| path.join(" ")).collect();
    for expected in ["member set", "member pause", "provider set", "price set", "backup schedule", "usage"] {
        assert!(listed.contains(expected), "the walk missed `hearth {expected}`: {listed:?}");
    }
    let (mut ran, mut skipped) = (0, Vec::new());
    for (path, help) in &tree {
        for (_, setup) in BEFORE.iter().filter(|(p, _)| *p == path.join(" ")) {
            for step in *setup {
                let args: Vec<String> = step.iter().map(|w| if *w == "FAKE" { fake.clone() } else { w.to_string() }).collect();
                let out = hearth(&data_dir, &args, "").await;
                assert_eq!(out.code, Some(0), "setting up `hearth {}`: {}", args.join(" "), out.stderr);
            }
        }
        for example in help_examples(help) {
            let args: Vec<String> = example[1..]
                .iter()
                .map(|w| match w.as_str() {
                    w if ELSEWHERE.contains(&w) => fake.clone(),
                    EXTERNAL_DISK => disk.path().display().to_string(),
                    w => w.to_owned(),
                })
                .collect();
            if LONG_RUNNING
                .iter()
                .any(|prefix| args.starts_with(&prefix.iter().map(|s| s.to_string()).collect::<Vec<_>>()))
            {
                skipped.push(example.join(" "));
                continue;
            }
            // A token on stdin is an API key, or for the household bot a bot the fake knows.
            let stdin = match args.starts_with(&["household".to_owned(), "bot".to_owned(), "set".to_owned()]) {
                true => format!("{}\n", h.tg.add_bot(&format!("home{ran}_hearth_bot")).token),
                false => "sk-example-key\n".to_owned(),
            };
            let out = hearth(&data_dir, &args, &stdin).await;
            assert_eq!(
                out.code,
                Some(0),
                "the example `{}` (in `hearth {} --help`) failed:\nstdout: {}\nstderr: {}",
                example.join(" "),
                path.join(" "),
                out.stdout,
                out.stderr
            );
            ran += 1;
        }
    }
    assert!(ran >= 25, "only {ran} examples ran; skipped {skipped:?}");
    h.stop().await;
}
