//! Alerts to the admins' phones and the heartbeat (#18), end to end through the fakes: a bot
//! whose token Telegram refuses, a provider that keeps failing, a disk that fills up, an unclean
//! stop — each told once to the admins who want it, with a "fixed" line when it clears; the
//! heartbeat's pings while all is well and only then. Times are the gateway's manual clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hearth_gateway::clock::Clock;
use hearth_gateway::config::DiskProbe;
use hearth_gateway::{Gateway, GatewayConfig};
use hearth_proto::control::{AlertLevel, BotState, ControlReply, ControlRequest};
use hearth_testkit::llm::{Fault as LlmFault, Rule};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::{Household, eventually, test_config};

const T: Duration = Duration::from_secs(20);

/// A household on a manual clock whose data disk is as full as `fill` says.
async fn household(n: usize, fill: &Arc<AtomicU8>) -> (Household, Clock) {
    let clock = Clock::manual(chrono::Utc::now());
    let (c, f) = (clock.clone(), fill.clone());
    let h = Household::with(n, move |config| tweak(config, &c, &f)).await;
    (h, clock)
}

fn tweak(config: &mut GatewayConfig, clock: &Clock, fill: &Arc<AtomicU8>) {
    config.clock = clock.clone();
    // One attempt per call, so the provider's failures are counted call by call.
    config.llm_retry.max_attempts = 1;
    let fill = fill.clone();
    config.disk_fill = Some(DiskProbe(Arc::new(move |_| Ok(fill.load(Ordering::SeqCst)))));
}

async fn ok(gateway: &Gateway, request: ControlRequest) -> ControlReply {
    gateway.control(request).await.unwrap_or_else(|e| panic!("{e}"))
}

async fn make_admin(h: &Household, i: usize, alerts: AlertLevel) {
    let name = h.members[i].name.clone();
    ok(&h.gateway, ControlRequest::MemberAdmin { member: name.clone(), admin: true }).await;
    let ControlReply::Member(m) = ok(&h.gateway, ControlRequest::MemberAlerts { member: name, alerts }).await else {
        panic!()
    };
    assert!(m.is_admin && m.alerts == alerts);
}

/// Moves the clock `secs` on and waits until every task on it has acted on the new time; the
/// alerts task first handles every report made before the move, and sends before it waits.
async fn pass(clock: &Clock, secs: i64) {
    clock.advance(chrono::Duration::seconds(secs));
    clock.settled().await;
}

/// What member `i`'s bot sent them that contains `part`.
fn told(h: &Household, i: usize, part: &str) -> Vec<String> {
    let m = &h.members[i];
    h.tg.sent_to(&m.bot.token, m.user.id).into_iter().map(|s| s.text).filter(|t| t.contains(part)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_bot_is_told_to_each_admin_once_and_fixed_after_a_new_token() {
    let fill = Arc::new(AtomicU8::new(40));
    let (mut h, clock) = household(4, &fill).await;
    // Rosa hears everything, Leo only what is important, Mia nothing; Sam is no admin.
    make_admin(&h, 0, AlertLevel::All).await;
    make_admin(&h, 1, AlertLevel::Important).await;
    make_admin(&h, 3, AlertLevel::Off).await;
    let sam = h.members[2].bot.token.clone();

    let revoked = Instant::now();
    h.tg.revoke(&sam);
    let alert = eventually(T, "Rosa alerted", async || told(&h, 0, "Sam's assistant").pop()).await;
    assert!(revoked.elapsed() < Duration::from_secs(60), "told after {:?}", revoked.elapsed());
    assert!(alert.starts_with("⚠️ Sam's assistant can't reach Telegram") && alert.contains("Replace token"), "{alert}");
    eventually(T, "Leo alerted", async || told(&h, 1, "Sam's assistant").pop()).await;
    // Hours later, nothing more: once per condition.
    for _ in 0..5 {
        pass(&clock, 1800).await;
    }
    assert_eq!(told(&h, 0, "Sam").len(), 1);
    assert_eq!(told(&h, 1, "Sam").len(), 1);
    assert!(told(&h, 3, "Sam").is_empty(), "alerts off");
    assert!(told(&h, 2, "Sam's assistant").is_empty(), "not an admin (and the bot is broken)");

    // A restart while the bot stays broken tells nobody anything new.
    let (dir, tg, llm, members, old) = (h.dir, h.tg, h.llm, h.members, h.gateway);
    old.shutdown(Duration::from_secs(5)).await;
    drop(old); // it holds the data folder's lock
    let mut config = test_config(dir.path(), &tg);
    tweak(&mut config, &clock, &fill);
    let gateway = Gateway::start(config).await.unwrap();
    h = Household { tg, llm, dir, gateway, members };
    eventually(T, "the bot seen as broken again", async || {
        (h.status().await.members[2].bot == BotState::TokenRevoked).then_some(())
    })
    .await;
    pass(&clock, 60).await;
    assert_eq!(told(&h, 0, "Sam").len(), 1, "{:?}", told(&h, 0, ""));
    assert_eq!(told(&h, 1, "Sam").len(), 1);
    assert!(told(&h, 0, "unexpected stop").is_empty(), "a clean shutdown is no unclean stop");

    // `hearth member token`: the new bot polls, and after a minute of working, one "fixed" line
    // to Rosa (Leo chose only what is important).
    let new_bot = h.tg.add_bot("sam_second_bot");
    ok(&h.gateway, ControlRequest::MemberToken { member: "Sam".into(), bot_token: new_bot.token.clone() }).await;
    eventually(T, "the new bot polls", async || (h.status().await.members[2].bot == BotState::Polling).then_some(()))
        .await;
    pass(&clock, 30).await;
    assert!(told(&h, 0, "works again").is_empty(), "not before a minute of working");
    pass(&clock, 31).await;
    assert_eq!(told(&h, 0, "works again"), ["✅ Sam's bot works again."]);
    pass(&clock, 3600).await;
    assert_eq!(told(&h, 0, "works again").len(), 1);
    assert!(told(&h, 1, "works again").is_empty(), "Leo hears only what is important");
    assert!(told(&h, 3, "").iter().all(|t| !t.contains("Sam")), "Mia hears nothing");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_failing_three_times_is_one_alert_and_one_fixed_line() {
    let fill = Arc::new(AtomicU8::new(40));
    let (h, clock) = household(2, &fill).await;
    make_admin(&h, 0, AlertLevel::All).await;
    h.llm.add_rule(Rule::matching("").fault(LlmFault::Status { code: 503, retry_after_secs: None }).times(4));
    for (n, text) in ["one", "two", "three", "four"].into_iter().enumerate() {
        h.say(1, text);
        h.replies(1, n + 2, T).await;
        h.settled().await;
        pass(&clock, 1).await;
        let alerts = told(&h, 0, "AI provider failed");
        assert_eq!(alerts.len(), usize::from(n >= 2), "after {} failed calls: {alerts:?}", n + 1);
    }
    assert!(told(&h, 1, "provider").is_empty(), "not an admin");

    h.say(1, "better now?");
    h.replies(1, 6, T).await;
    h.settled().await;
    pass(&clock, 61).await;
    assert_eq!(told(&h, 0, "answers again"), ["✅ The AI provider answers again."]);
    assert_eq!(told(&h, 0, "AI provider failed").len(), 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_nearly_full_is_one_alert_and_an_unclean_stop_is_told() {
    let fill = Arc::new(AtomicU8::new(40));
    let (h, clock) = household(2, &fill).await;
    make_admin(&h, 0, AlertLevel::Important).await;
    fill.store(93, Ordering::SeqCst);
    pass(&clock, 300).await;
    let alert = told(&h, 0, "full");
    assert_eq!(
        alert,
        [
            "⚠️ The disk Hearth keeps its data on is 93% full. Free some space soon: when it is full, messages can't be kept."
        ]
    );
    for _ in 0..3 {
        pass(&clock, 300).await;
    }
    assert_eq!(told(&h, 0, "full").len(), 1, "once per condition");
    assert!(told(&h, 1, "disk").is_empty(), "not an admin");
    // 89 % is not "room again" yet; 70 % is (no line for Rosa, who chose important ones).
    fill.store(89, Ordering::SeqCst);
    pass(&clock, 300).await;
    fill.store(70, Ordering::SeqCst);
    pass(&clock, 300).await;
    pass(&clock, 300).await;
    assert_eq!(told(&h, 0, "").iter().filter(|t| t.contains("disk")).count(), 1);
    let db = h.db();
    let cleared: Option<i64> =
        db.query_row("SELECT cleared_told_at FROM alerts WHERE key = 'disk'", [], |r| r.get(0)).unwrap();
    assert!(cleared.is_some(), "the fixed line was due (told to no one who wants it)");

    // A marker left by a run that never shut down cleanly: told to admins at "all" only.
    ok(&h.gateway, ControlRequest::MemberAlerts { member: "Rosa".into(), alerts: AlertLevel::All }).await;
    let (dir, tg, old) = (h.dir, h.tg, h.gateway);
    old.shutdown(Duration::from_secs(5)).await;
    drop(old); // it holds the data folder's lock
    assert!(!dir.path().join("gateway.running").exists(), "removed at a clean shutdown");
    std::fs::write(dir.path().join("gateway.running"), "4242\n").unwrap();
    let mut config = test_config(dir.path(), &tg);
    tweak(&mut config, &clock, &fill);
    let gateway = Gateway::start(config).await.unwrap();
    let rosa = &h.members[0];
    let text = eventually(T, "the unclean stop told", async || {
        tg.sent_to(&rosa.bot.token, rosa.user.id).into_iter().map(|s| s.text).find(|t| t.contains("unexpected stop"))
    })
    .await;
    assert!(text.starts_with("ℹ️ Hearth started again after an unexpected stop"), "{text}");
    pass(&clock, 120).await;
    let all: Vec<String> = tg.sent_to(&rosa.bot.token, rosa.user.id).into_iter().map(|s| s.text).collect();
    assert_eq!(all.iter().filter(|t| t.contains("unexpected stop")).count(), 1, "{all:?}");
    gateway.shutdown(Duration::from_secs(5)).await;
}

/// A loopback HTTP server that answers 200 and counts the requests it got.
async fn ping_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ping/check-id", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                if got.starts_with(b"GET /ping/check-id ") {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nOK").await;
            });
        }
    });
    (url, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_pings_while_all_is_well_and_only_then() {
    let fill = Arc::new(AtomicU8::new(40));
    let (mut h, clock) = household(2, &fill).await;
    let (url, pings) = ping_server().await;
    let bad = ControlRequest::HouseholdHeartbeat { url: Some("ftp://example.org/x".into()), every_minutes: 5 };
    assert!(h.gateway.control(bad).await.is_err());
    let set = ControlRequest::HouseholdHeartbeat { url: Some(url), every_minutes: 5 };
    ok(&h.gateway, set).await;
    eventually(T, "a ping at once", async || (pings.load(Ordering::SeqCst) == 1).then_some(())).await;
    pass(&clock, 1).await;
    assert_eq!(pings.load(Ordering::SeqCst), 1);
    pass(&clock, 299).await;
    assert_eq!(pings.load(Ordering::SeqCst), 2, "every 5 minutes");

    // A bot stops working: no pings while it lasts.
    h.tg.revoke(&h.members[1].bot.token);
    eventually(T, "the bot seen as broken", async || {
        (h.status().await.members[1].bot == BotState::TokenRevoked).then_some(())
    })
    .await;
    // The alerts task takes the report in before it looks at the new time.
    pass(&clock, 1).await;
    for _ in 0..4 {
        pass(&clock, 300).await;
    }
    assert_eq!(pings.load(Ordering::SeqCst), 2, "none while a bot is broken");
    // A new token: all is well again, and the owed ping goes out.
    let new_bot = h.tg.add_bot("leo_second_bot");
    ok(&h.gateway, ControlRequest::MemberToken { member: "Leo".into(), bot_token: new_bot.token.clone() }).await;
    h.members[1].bot = new_bot;
    eventually(T, "the owed ping", async || (pings.load(Ordering::SeqCst) == 3).then_some(())).await;

    // Stopped: nothing pings, however long.
    let old = h.gateway;
    old.shutdown(Duration::from_secs(5)).await;
    drop(old); // it holds the data folder's lock
    clock.advance(chrono::Duration::hours(2));
    tokio::time::sleep(Duration::from_millis(200)).await; // nothing runs that could ping; a short look
    assert_eq!(pings.load(Ordering::SeqCst), 3);

    // Off: a restarted gateway reads the setting, and `off` stops it.
    let mut config = test_config(h.dir.path(), &h.tg);
    tweak(&mut config, &clock, &fill);
    let gateway = Gateway::start(config).await.unwrap();
    eventually(T, "a ping after the restart", async || (pings.load(Ordering::SeqCst) == 4).then_some(())).await;
    ok(&gateway, ControlRequest::HouseholdHeartbeat { url: None, every_minutes: 0 }).await;
    pass(&clock, 3600).await;
    assert_eq!(pings.load(Ordering::SeqCst), 4);
    gateway.shutdown(Duration::from_secs(5)).await;
}
