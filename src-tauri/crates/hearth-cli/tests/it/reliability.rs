//! The reliability suite: floods, crashes, faults and a full disk, against a real `hearth serve`
//! process where it matters. Each runs a short form by default (CI); `HEARTH_RELIABILITY=full`
//! runs the sizes RELIABILITY.md reports. Figures are printed on stderr (`--nocapture`).

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use hearth_proto::control::{BotState, ControlReply, ControlRequest, ProviderKind};
use hearth_testkit::llm::{Fault as LlmFault, FakeLlm, Rule};
use hearth_testkit::telegram::{Fault, FakeBot, FakeTelegram, FakeUser};

use crate::support::{HEARTH, Household, eventually};

const T: Duration = Duration::from_secs(30);

fn full() -> bool {
    std::env::var("HEARTH_RELIABILITY").is_ok_and(|v| v == "full")
}

/// A `hearth serve` child on a data directory, killed when dropped.
struct Serve {
    child: tokio::process::Child,
}

impl Serve {
    fn start(data: &Path, tg: &FakeTelegram) -> Serve {
        let child = tokio::process::Command::new(HEARTH)
            .arg("serve")
            .env("HEARTH_DATA_DIR", data)
            .env("HEARTH_TELEGRAM_API_URL", tg.api_url())
            .env("HEARTH_ISOLATION", "process")
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Serve { child }
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0)
    }

    async fn kill9(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }
}

/// `support::settled` for the `hearth serve` child on `data`.
async fn settled(data: &Path, tg: &FakeTelegram) {
    crate::support::settled(tg, data, async || crate::support::serve_status(data).await).await
}

async fn control(data: &Path, req: ControlRequest) -> ControlReply {
    let start = Instant::now();
    loop {
        match hearth_gateway::control::request(data, req.clone()).await {
            Ok(r) => return r,
            Err(hearth_gateway::control::ClientError::NotRunning(_)) if start.elapsed() < T => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// Adds `n` members with bots on the fake and pairs a user for each.
async fn household(data: &Path, tg: &FakeTelegram, llm: &FakeLlm, n: usize) -> Vec<(FakeBot, FakeUser)> {
    control(data, ControlRequest::ProviderSet { kind: ProviderKind::Openai, base_url: llm.base_url(), model: "m".into(), api_key: "k".into() })
        .await;
    let mut out = Vec::new();
    for i in 0..n {
        let bot = tg.add_bot(&format!("member{i}_bot"));
        let add =
            ControlRequest::MemberAdd { name: format!("Member {i}"), bot_token: bot.token.clone(), role: Default::default() };
        let ControlReply::MemberAdded(added) = control(data, add).await else {
            panic!()
        };
        let user = tg.user(5000 + i as i64, &format!("User{i}"));
        tg.send_text(&bot.token, &user, &format!("/start {}", added.pair_code));
        tg.wait_for_sent(&bot.token, user.id, 1, T).await.unwrap();
        out.push((bot, user));
    }
    out
}

/// 10,000 messages from 500 unpaired users (short: 2,000 from 100): no worker starts, the model
/// is never called, each stranger gets one reply, and the gateway's memory stays flat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_flood_gets_nothing_and_costs_nothing() {
    let (users, per_user) = if full() { (500, 20) } else { (100, 20) };
    let tg = FakeTelegram::start().await;
    let llm = FakeLlm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &tg);
    let members = household(dir.path(), &tg, &llm, 1).await;
    let bot = &members[0].0;
    // Measured idle: the household set up and nothing left to do.
    settled(dir.path(), &tg).await;
    let rss_before = serve.rss_kb();
    let start = Instant::now();
    let strangers: Vec<FakeUser> = (0..users).map(|i| tg.user(100_000 + i, &format!("Stranger{i}"))).collect();
    let db = dir.path().join("gateway.sqlite");
    // Two equal waves: memory the first wave adds may be caches warming up; memory the second
    // adds again would be a leak.
    let mut rss_after_wave = Vec::new();
    for wave in 0..2 {
        for round in 0..per_user / 2 {
            for s in &strangers {
                tg.send_text(&bot.token, s, &format!("let me in {wave}.{round}"));
            }
        }
        let handled = (wave + 1) * users as usize * (per_user / 2);
        eventually(Duration::from_secs(120), "the flood to be handled", async || {
            let c = rusqlite::Connection::open(&db).ok()?;
            let done: i64 = c.query_row("SELECT COUNT(*) FROM inbox WHERE outcome = 'stranger'", [], |r| r.get(0)).ok()?;
            (done as usize >= handled).then_some(())
        })
        .await;
        settled(dir.path(), &tg).await;
        rss_after_wave.push(serve.rss_kb());
    }
    let total = users as usize * per_user;
    let took = start.elapsed();
    let rss_after = rss_after_wave[1];
    let replies: usize = strangers.iter().map(|s| tg.sent_to(&bot.token, s.id).len()).sum();
    eprintln!(
        "stranger flood: {total} messages from {users} users in {took:?} ({:.0}/s); {replies} replies; gateway RSS {} → {} (first wave) → {} kB (second wave)",
        total as f64 / took.as_secs_f64(),
        rss_before,
        rss_after_wave[0],
        rss_after
    );
    let second_wave_growth = rss_after.saturating_sub(rss_after_wave[0]);
    assert!(second_wave_growth < 4_000, "the second wave added {second_wave_growth} kB: a leak?");
    assert_eq!(replies, users as usize, "one reply per stranger per hour");
    assert!(llm.calls().is_empty(), "the model was called");
    let ControlReply::Status(status) = control(dir.path(), ControlRequest::Status).await else { panic!() };
    assert_eq!(status.worker_processes, 0, "a worker started");
    assert!(rss_after < rss_before + 20_000, "memory grew by {} kB", rss_after.saturating_sub(rss_before));
    let c = rusqlite::Connection::open(&db).unwrap();
    let texts: i64 = c.query_row("SELECT COUNT(*) FROM inbox WHERE text IS NOT NULL", [], |r| r.get(0)).unwrap();
    assert_eq!(texts, 0, "strangers' words were kept");
    serve.kill9().await;
}

/// `kill -9` of the gateway at random moments while members chat (short: 3 kills during 200
/// messages from 10 members; full: 10 kills during 1,000 from 20): nothing is lost, and at most
/// one reply per kill is sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_minus_nine_loses_nothing() {
    let (members_n, messages, kills) = if full() { (20, 1000, 10) } else { (10, 200, 3) };
    let tg = FakeTelegram::start().await;
    let llm = FakeLlm::start().await;
    llm.set_latency(Duration::from_millis(100));
    let dir = tempfile::tempdir().unwrap();
    let mut serve = Some(Serve::start(dir.path(), &tg));
    let members = household(dir.path(), &tg, &llm, members_n).await;

    // Deterministic "random" kill moments: a small LCG over the message index.
    let mut seed: u64 = 0x5eed;
    let mut kill_at: Vec<usize> = (0..kills)
        .map(|_| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as usize % messages
        })
        .collect();
    kill_at.sort();
    let mut sent: Vec<(usize, String)> = Vec::new();
    for n in 0..messages {
        let m = n % members_n;
        let text = format!("msg-{n:05}");
        tg.send_text(&members[m].0.token, &members[m].1, &text);
        sent.push((m, text));
        // Pacing, not waiting for anything: the messages come in over a few seconds, as people
        // write, so each kill lands with some committed, some in a turn and some not yet polled.
        tokio::time::sleep(Duration::from_millis(10)).await;
        while kill_at.first() == Some(&n) {
            kill_at.remove(0);
            if let Some(s) = serve.take() {
                s.kill9().await;
            }
            serve = Some(Serve::start(dir.path(), &tg));
        }
    }
    // Everything answered: every message text appears in some reply to its member.
    let seen = |m: usize| -> Vec<String> {
        tg.sent_to(&members[m].0.token, members[m].1.id).into_iter().map(|s| s.text).collect()
    };
    eventually(Duration::from_secs(180), "every message answered", async || {
        sent.iter().all(|(m, text)| seen(*m).iter().any(|r| r.contains(text.as_str()))).then_some(())
    })
    .await;
    // Nothing left to do, so any second answer has been sent by now.
    settled(dir.path(), &tg).await;
    let mut answered_twice = 0;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for m in 0..members_n {
        let replies = seen(m);
        for (mm, text) in &sent {
            if *mm == m {
                let n = replies.iter().filter(|r| r.contains(text.as_str())).count();
                counts.insert(text.as_str(), n);
                if n > 1 {
                    answered_twice += 1;
                }
            }
        }
    }
    let lost = counts.values().filter(|n| **n == 0).count();
    eprintln!("chaos: {messages} messages from {members_n} members, {kills} kill -9: lost {lost}, answered twice {answered_twice}");
    assert_eq!(lost, 0);
    // A kill can interrupt the moment between sending a reply and marking it done; a turn
    // collects several messages, so allow that many per kill.
    assert!(answered_twice <= kills * 5, "{answered_twice} messages answered twice after {kills} kills");
    serve.unwrap().kill9().await;
}

/// What a member sees for each model fault, and that another member is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_faults_get_kind_answers_and_spare_the_others() {
    let h = Household::with(2, |c| {
        c.llm_limits.first_byte = Duration::from_secs(2);
        c.llm_limits.idle = Duration::from_secs(2);
        c.llm_limits.total = Duration::from_secs(4);
        c.llm_retry.max_attempts = 2;
    })
    .await;
    let cases: [(&str, LlmFault, &str); 5] = [
        ("f429", LlmFault::Status { code: 429, retry_after_secs: Some(1) }, "couldn't reach"),
        ("f500", LlmFault::Status { code: 500, retry_after_secs: None }, "couldn't reach"),
        ("fhang", LlmFault::Hang, "couldn't reach"),
        ("ftrunc", LlmFault::Truncated, "couldn't use"),
        ("fjunk", LlmFault::Malformed, "couldn't use"),
    ];
    let mut n = 1;
    for (tag, fault, expect) in cases {
        h.llm.add_rule(Rule::matching(tag).fault(fault).times(2));
        h.say(0, &format!("please {tag}"));
        h.say(1, &format!("an ordinary question, number {n}"));
        n += 1;
        let a = h.replies(0, n, T).await;
        let b = h.replies(1, n, T).await;
        eprintln!("model fault {tag}: member sees {:?}", a[n - 1].text);
        assert!(a[n - 1].text.contains(expect), "{tag}: {:?}", a[n - 1].text);
        assert!(b[n - 1].text.starts_with("You said: "), "{tag} touched the other member: {:?}", b[n - 1].text);
        // The failed question stays in member 0's history; start afresh so the next rule is clean.
        h.say(0, "/new");
        n += 1;
        h.replies(0, n, T).await;
        h.say(1, "/new");
        h.replies(1, n, T).await;
    }
    h.stop().await;
}

/// Telegram faults on one bot: 429, 5xx, slow, 409, 401. Each one provably hits that bot (on
/// its polling and on sending its reply); the bot reports it, recovers, and still delivers; the
/// other bot answers throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_faults_stay_with_their_bot() {
    let h = Household::new(2).await;
    let sick = &h.members[0];
    let mut n = 1;
    for (label, fault, status) in [
        ("429", Some(Fault::RateLimit { retry_after_secs: 1, times: 3 }), Some(429)),
        ("5xx", Some(Fault::ServerError { status: 500, times: 2 }), Some(500)),
        ("slow", Some(Fault::Latency(Duration::from_millis(800))), None),
        ("409", None, Some(409)),
    ] {
        let since = Instant::now();
        match fault {
            Some(f) => h.tg.inject(&sick.bot.token, f),
            None => h.tg.set_external_poller(&sick.bot.token, true),
        }
        // Wakes the bot's pending poll, so its next requests meet the fault.
        h.say(0, &format!("sick during {label}"));
        n += 1;
        if let Some(code) = status {
            eventually(T, "the fault to fire", async || {
                h.tg.requests().iter().any(|r| r.token == sick.bot.token && r.status == code && r.at >= since).then_some(())
            })
            .await;
        }
        let t0 = Instant::now();
        h.say(1, &format!("well during {label}"));
        h.replies(1, n, T).await;
        let other = t0.elapsed();
        if label == "409" {
            eventually(T, "used elsewhere reported", async || {
                (h.status().await.members[0].bot == BotState::UsedElsewhere).then_some(())
            })
            .await;
            h.tg.set_external_poller(&sick.bot.token, false);
        }
        let got = h.replies(0, n, Duration::from_secs(60)).await;
        h.tg.clear_faults(&sick.bot.token);
        eprintln!("telegram fault {label}: the other bot answered in {other:?}; the faulty bot delivered after {:?}", since.elapsed());
        assert!(other < Duration::from_secs(3), "{label} slowed the other bot: {other:?}");
        assert_eq!(got[n - 1].text, format!("You said: sick during {label}"));
    }
    // A revoked token is reported and the other bot still answers.
    h.tg.revoke(&sick.bot.token);
    eventually(T, "revoked reported", async || (h.status().await.members[0].bot == BotState::TokenRevoked).then_some(())).await;
    h.say(1, "still fine");
    n += 1;
    assert_eq!(h.replies(1, n, T).await[n - 1].text, "You said: still fine");
    h.stop().await;
}

/// The data directory on a tiny tmpfs, filled up: new messages are refused (not confirmed, so
/// Telegram keeps them), the bot says why, the database stays intact, and when space returns
/// everything is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_new_work_and_recovers() {
    assert!(nix::unistd::geteuid().is_root(), "this test needs root (it mounts a tmpfs); CI runs as root");
    let base = tempfile::tempdir().unwrap();
    let mnt = base.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"]).arg(&mnt).status().unwrap();
    assert!(mounted.success(), "mount a 4 MiB tmpfs");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let data = mnt.join("data");

    let tg = FakeTelegram::start().await;
    let llm = FakeLlm::start().await;
    let serve = Serve::start(&data, &tg);
    let members = household(&data, &tg, &llm, 1).await;
    let (bot, user) = &members[0];
    tg.send_text(&bot.token, user, "before");
    tg.wait_for_sent(&bot.token, user.id, 2, T).await.unwrap();

    // Fill the disk.
    let filler = mnt.join("filler");
    let _ = std::process::Command::new("dd").arg("if=/dev/zero").arg(format!("of={}", filler.display())).args(["bs=64k"]).stderr(Stdio::null()).status();
    for i in 0..5 {
        tg.send_text(&bot.token, user, &format!("during {i}"));
    }
    let ControlReply::Status(status) = eventually(T, "the bot to report the disk", async || {
        match control(&data, ControlRequest::Status).await {
            ControlReply::Status(s) if matches!(&s.members[0].bot, BotState::Unreachable { error } if error.contains("store")) => Some(ControlReply::Status(s)),
            _ => None,
        }
    })
    .await
    else {
        panic!()
    };
    eprintln!("disk full: bot state {:?}", status.members[0].bot);
    assert!(tg.pending_updates(&bot.token) >= 5, "messages were confirmed without being stored");

    // Space returns: everything is answered, nothing lost, the database is sound.
    std::fs::remove_file(&filler).unwrap();
    let got = tg.wait_for_sent(&bot.token, user.id, 3, T).await.unwrap();
    let all: String = tg.sent_to(&bot.token, user.id).into_iter().map(|m| m.text).collect::<Vec<_>>().join("\n");
    eventually(T, "all five answered", async || {
        let all: String = tg.sent_to(&bot.token, user.id).into_iter().map(|m| m.text).collect::<Vec<_>>().join("\n");
        (0..5).all(|i| all.contains(&format!("during {i}"))).then_some(())
    })
    .await;
    let _ = (got, all);
    serve.kill9().await;
    let c = rusqlite::Connection::open(data.join("gateway.sqlite")).unwrap();
    let check: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
}
