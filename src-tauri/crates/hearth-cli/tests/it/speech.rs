//! The admin's side of voice notes and images, through the `hearth` binary against a running
//! gateway: `hearth provider speech` (the key from stdin, never echoed, used for the next voice
//! note), `hearth provider show`, `hearth price set --usd-per-minute` and `--no-vision`, and
//! `hearth usage` splitting a month into chat, images and speech minutes.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use hearth_sim::media::ogg_opus;
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;

use crate::support::{HEARTH, Household};

const T: Duration = Duration::from_secs(30);

/// One `hearth` command run to completion: (exit code, stdout, stderr).
pub(crate) async fn hearth(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> (Option<i32>, String, String) {
    let mut child = tokio::process::Command::new(HEARTH)
        .args(args)
        .env("HEARTH_DATA_DIR", data_dir)
        .env_remove("RUST_LOG")
        .env("COLUMNS", "100")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn hearth");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(input.as_bytes()).await.expect("write stdin");
    }
    let out = tokio::time::timeout(T, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("`hearth {}` did not finish within {T:?}", args.join(" ")))
        .expect("wait for hearth");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a command that must succeed with `--json` output, and returns that JSON.
pub(crate) async fn json(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> Value {
    let (code, out, err) = hearth(data_dir, args, stdin).await;
    assert_eq!(code, Some(0), "`hearth {}`: {out}{err}", args.join(" "));
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

/// A household whose gateway serves its control socket, so the `hearth` binary can reach it.
pub(crate) async fn household() -> Household {
    Household::with(1, |c| c.control_socket = true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_speech_sets_shows_and_turns_off_the_service() {
    let h = household().await;
    let d = h.dir.path();
    let m = &h.members[0];

    // With an openai-kind provider and nothing set, its own service is used with whisper-1.
    let shown = json(d, &["provider", "show", "--json"], None).await;
    assert_eq!(keys(&shown), ["provider", "speech", "voice"].map(String::from).into());
    assert_eq!(shown["provider"]["model"], "test-model");
    assert_eq!(
        shown["speech"],
        serde_json::json!({"source": "chat_provider", "base_url": h.llm.base_url(), "model": "whisper-1"})
    );
    let (_, text, _) = hearth(d, &["provider", "show"], None).await;
    assert!(text.contains("Speech recognition: whisper-1 at") && text.contains("the provider's own service"), "{text}");

    // A service of its own, the key pasted on stdin: never printed, used for the next voice note.
    let base = h.llm.base_url();
    let set = ["provider", "speech", "--base-url", base.as_str(), "--model", "whisper-large-v3-turbo"];
    let (code, out, err) = hearth(d, &set, Some("gsk-SPEECH-SECRET\n")).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("Speech recognition: whisper-large-v3-turbo at"), "{out}");
    assert!(!out.contains("SECRET") && !err.contains("SECRET"), "{out}{err}");
    let shown = json(d, &["provider", "show", "--json"], None).await;
    assert_eq!(shown["speech"]["source"], "own");
    assert_eq!(shown["speech"]["model"], "whisper-large-v3-turbo");
    h.tg.send_voice(&m.bot.token, &m.user, ogg_opus(4), 4);
    h.replies(0, 2, T).await;
    let heard = h.llm.transcriptions();
    assert_eq!(heard.len(), 1);
    assert_eq!(
        (heard[0].model.as_str(), heard[0].api_key.as_deref()),
        ("whisper-large-v3-turbo", Some("gsk-SPEECH-SECRET"))
    );

    // --json prints the summary; a local server needs no key.
    let local = ["provider", "speech", "--base-url", base.as_str(), "--model", "whisper-1", "--no-key", "--json"];
    let summary = json(d, &local, None).await;
    assert_eq!(summary, serde_json::json!({"source": "own", "base_url": base, "model": "whisper-1"}));

    // Off is off: the next voice note gets the kind sentence and no call.
    let off = json(d, &["provider", "speech", "--off", "--json"], None).await;
    assert_eq!(off, serde_json::json!({"source": "off", "base_url": null, "model": null}));
    h.tg.send_voice(&m.bot.token, &m.user, ogg_opus(3), 3);
    let sent = h.replies(0, 3, T).await;
    assert!(sent[2].text.contains("I can't listen to voice messages yet"), "{:?}", sent[2].text);
    assert_eq!(h.llm.transcriptions().len(), 1, "no call while off");

    // Usage errors: a model without an address, or nothing at all.
    let (code, _, err) = hearth(d, &["provider", "speech", "--model", "whisper-1"], None).await;
    assert_eq!(code, Some(2), "{err}");
    let (code, _, err) = hearth(d, &["provider", "speech"], None).await;
    assert_eq!(code, Some(2), "{err}");
    // A remote service without a key is refused here, naming the way out.
    let remote = ["provider", "speech", "--base-url", "https://api.openai.com/v1", "--model", "whisper-1"];
    let (code, _, err) = hearth(d, &remote, Some("\n")).await;
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("--no-key"), "{err}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn price_set_takes_a_per_minute_price_and_a_vision_mark() {
    let h = household().await;
    let d = h.dir.path();
    let row = json(d, &["price", "set", "whisper-1", "--usd-per-minute", "0.004", "--json"], None).await;
    assert_eq!((row["model"].as_str(), row["usd_per_minute"].as_f64()), (Some("whisper-1"), Some(0.004)));
    assert_eq!(row["source"], "admin");
    let (code, out, _) =
        hearth(d, &["price", "set", "gpt-4o-mini-transcribe", "--usd-per-minute", "0.003"], None).await;
    assert_eq!(code, Some(0));
    assert!(out.contains("PER MINUTE") && out.contains("$0.003"), "{out}");
    let (code, _, err) = hearth(d, &["price", "set", "whisper-1", "--usd-per-minute", "abc"], None).await;
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("--usd-per-minute"), "{err}");
    let (code, _, err) = hearth(d, &["price", "set", "whisper-1", "--usd-per-minute", "11"], None).await;
    assert_eq!(code, Some(4), "{err}");
    let (code, _, err) = hearth(d, &["price", "set", "whisper-1"], None).await;
    assert_eq!(code, Some(2), "nothing to set: {err}");

    // A blind model: marked, listed, and a photo to it gets the kind sentence, not an error.
    let row = json(d, &["price", "set", "test-model", "--no-vision", "--json"], None).await;
    assert_eq!(row["no_vision"], true, "{row}");
    let listed = json(d, &["price", "list", "--json"], None).await;
    let prices = listed["prices"].as_array().unwrap();
    assert!(prices.iter().any(|p| p["model"] == "test-model" && p["no_vision"] == true), "{listed}");
    assert!(
        prices.iter().any(|p| p["model"] == "whisper-large-v3-turbo" && p["usd_per_minute"] == 0.000667),
        "{listed}"
    );
    let (_, text, _) = hearth(d, &["price", "list"], None).await;
    assert!(text.lines().any(|l| l.starts_with("test-model (no vision)")), "{text}");
    let m = &h.members[0];
    h.tg.send_photo(&m.bot.token, &m.user, hearth_testkit::telegram::FakePhoto::new(64, 64), Some("what is this?"));
    let sent = h.replies(0, 2, T).await;
    assert!(sent[1].text.contains("I can't look at pictures"), "{:?}", sent[1].text);
    assert!(h.llm.calls().is_empty(), "refused before any call");
    let row = json(d, &["price", "set", "test-model", "--vision", "--json"], None).await;
    assert!(row.get("no_vision").is_none(), "{row}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_splits_chat_images_and_speech() {
    let h = household().await;
    let d = h.dir.path();
    let m = &h.members[0];
    json(d, &["price", "set", "whisper-1", "--usd-per-minute", "0.006", "--json"], None).await;
    json(d, &["price", "set", "test-model", "--input-usd-per-mtok", "1", "--output-usd-per-mtok", "1", "--json"], None)
        .await;
    h.tg.send_voice(&m.bot.token, &m.user, ogg_opus(30), 30);
    h.replies(0, 2, T).await;
    h.tg.send_photo(&m.bot.token, &m.user, hearth_testkit::telegram::FakePhoto::new(64, 64), Some("look"));
    h.replies(0, 3, T).await;
    h.settled().await;

    let report = json(d, &["usage", "--json"], None).await;
    let rosa = &report["members"][0];
    for totals in [&rosa["totals"], &rosa["today"], &report["total"], &report["today_total"]] {
        assert_eq!(totals["speech_calls"], 1, "{report}");
        assert_eq!(totals["audio_seconds"], 30, "{report}");
        assert_eq!(totals["speech_cost_usd"], 0.003, "30 s at $0.006 a minute: {report}");
        assert_eq!(totals["images"], 1, "{report}");
        assert_eq!(totals["chat_calls"], 2, "{report}");
        let (all, chat, speech) = (
            totals["cost_usd"].as_f64().unwrap(),
            totals["chat_cost_usd"].as_f64().unwrap(),
            totals["speech_cost_usd"].as_f64().unwrap(),
        );
        assert!((all - chat - speech).abs() < 1e-9 && chat > 0.0, "{report}");
    }
    let (code, text, _) = hearth(d, &["usage"], None).await;
    assert_eq!(code, Some(0));
    assert!(text.contains("What it paid for") && text.contains("(0.5 min)"), "{text}");
    let month = report["month"].as_str().unwrap().to_owned();
    let (_, csv, _) = hearth(d, &["usage", "export", "--month", &month], None).await;
    assert!(csv.lines().next().unwrap().ends_with(",kind,audio_seconds,images,characters"), "{csv}");
    assert!(csv.lines().any(|l| l.contains(",whisper-1,") && l.ends_with(",speech_in,30,0,0")), "{csv}");
    assert!(csv.lines().any(|l| l.ends_with(",chat,0,1,0")), "{csv}");
    // The voice note was answered in voice (every member's default), by the fake on this
    // machine: spoken for free, its characters counted.
    assert!(csv.lines().any(|l| l.contains(",tts-1,") && l.contains(",speech_out,0,0,")), "{csv}");
    h.stop().await;
}
