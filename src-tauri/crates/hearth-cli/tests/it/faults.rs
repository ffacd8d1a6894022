//! When things go wrong: bad tokens, rate limits, other pollers, failing models, crashed
//! workers, and a gateway killed mid-turn.

use std::process::Stdio;
use std::time::{Duration, Instant};

use hearth_gateway::Gateway;
use hearth_proto::control::{BotState, ControlReply, ControlRequest, ProviderKind};
use hearth_testkit::llm::{Fault as LlmFault, FakeLlm, Rule};
use hearth_testkit::telegram::{Fault, FakeTelegram};

use crate::support::{HEARTH, Household, eventually, test_config};

const T: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_at_start_does_not_stop_the_others() {
    let h = Household::new(2).await;
    let dir = h.dir;
    let (tg, llm, members) = (h.tg, h.llm, h.members);
    h.gateway.shutdown(Duration::from_secs(5)).await;
    drop(h.gateway);

    tg.revoke(&members[0].bot.token);
    let gateway = Gateway::start(test_config(dir.path(), &tg)).await.unwrap();
    let status = eventually(T, "revoked bot reported", async || {
        let s = gateway.status().await.unwrap();
        (s.members[0].bot == BotState::TokenRevoked && s.members[1].bot == BotState::Polling).then_some(s)
    })
    .await;
    assert!(status.members[0].paired);

    tg.send_text(&members[1].bot.token, &members[1].user, "are you there?");
    let sent = tg.wait_for_sent(&members[1].bot.token, members[1].user.id, 2, T).await.unwrap();
    assert_eq!(sent[1].text, "You said: are you there?");
    assert_eq!(llm.calls().len(), 1);
    gateway.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_per_bot() {
    let h = Household::new(2).await;
    let slow = &h.members[0];
    h.tg.inject(&slow.bot.token, Fault::RateLimit { retry_after_secs: 2, times: 1 });
    // The next poll of bot 0 gets the 429; then it must wait 2 s before polling again.
    let limited = eventually(T, "a 429 served", async || {
        h.tg.requests().into_iter().find(|r| r.token == slow.bot.token && r.status == 429)
    })
    .await;
    // Meanwhile bot 1 is answered at once.
    let t0 = Instant::now();
    h.say(1, "not blocked");
    h.replies(1, 2, T).await;
    assert!(t0.elapsed() < Duration::from_secs(2), "the other bot waited {:?}", t0.elapsed());

    h.say(0, "after the limit");
    let sent = h.replies(0, 2, T).await;
    assert_eq!(sent[1].text, "You said: after the limit");
    let next_poll = h
        .tg
        .requests()
        .into_iter()
        .find(|r| r.token == slow.bot.token && r.method == "getUpdates" && r.at > limited.at)
        .expect("polling resumed");
    let gap = next_poll.at.duration_since(limited.at);
    assert!(gap >= Duration::from_millis(1900), "polled again after {gap:?}, retry_after was 2 s");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_poller_shows_as_used_elsewhere_and_recovers() {
    let h = Household::new(1).await;
    let m = &h.members[0];
    h.tg.set_external_poller(&m.bot.token, true);
    eventually(T, "used elsewhere reported", async || {
        (h.status().await.members[0].bot == BotState::UsedElsewhere).then_some(())
    })
    .await;
    h.tg.set_external_poller(&m.bot.token, false);
    h.say(0, "back again");
    assert_eq!(h.replies(0, 2, T).await[1].text, "You said: back again");
    assert_eq!(h.status().await.members[0].bot, BotState::Polling);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_model_gets_a_kind_message_and_the_next_message_works() {
    let h = Household::new(1).await;
    // Fails every attempt of one call (the retry policy makes three); the member's words stay in
    // history, so the rule must not match the next call too.
    h.llm.add_rule(Rule::matching("doomed").fault(LlmFault::Status { code: 500, retry_after_secs: None }).times(3));
    h.say(0, "doomed question");
    let sent = h.replies(0, 2, T).await;
    assert!(sent[1].text.contains("couldn't reach"), "{:?}", sent[1].text);
    assert!(h.llm.calls().len() >= 2, "5xx is retried");
    let failed: i64 = h.db().query_row("SELECT COUNT(*) FROM ledger WHERE outcome = 'http_500'", [], |r| r.get(0)).unwrap();
    assert_eq!(failed, 1, "the failed call is in the ledger, released");
    h.say(0, "fine question");
    let sent = h.replies(0, 3, T).await;
    assert!(sent[2].text.starts_with("You said:"), "{:?}", sent[2].text);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_provider_yet_is_explained_to_the_member() {
    let tg = FakeTelegram::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(test_config(dir.path(), &tg)).await.unwrap();
    let (added, bot) = crate::support::add_member(&gateway, &tg, "Ana").await;
    let ana = tg.user(5, "Ana");
    tg.send_text(&bot.token, &ana, &format!("/start {}", added.pair_code));
    tg.wait_for_sent(&bot.token, ana.id, 1, T).await.unwrap();
    tg.send_text(&bot.token, &ana, "hello?");
    let sent = tg.wait_for_sent(&bot.token, ana.id, 2, T).await.unwrap();
    assert!(sent[1].text.contains("not set up"), "{:?}", sent[1].text);
    gateway.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_turn_gives_a_clear_message_and_comes_back() {
    let h = Household::new(1).await;
    h.llm.add_rule(Rule::matching("never-finishes").fault(LlmFault::Hang).times(1));
    h.say(0, "this never-finishes");
    h.llm.wait_for_calls(1, T).await.unwrap();
    let pid = h.status().await.members[0].worker_pid.expect("worker running");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    let sent = h.replies(0, 2, T).await;
    assert!(sent[1].text.contains("went wrong"), "{:?}", sent[1].text);
    h.say(0, "and now?");
    let sent = h.replies(0, 3, T).await;
    // The unanswered message stays in the conversation, so the model sees both.
    assert_eq!(sent[2].text, "You said: this never-finishes\n\nand now?");
    let new_pid = h.status().await.members[0].worker_pid.expect("worker running again");
    assert_ne!(new_pid, pid);
    h.stop().await;
}

/// `hearth serve` as a real process, killed with SIGKILL after the message was committed to the
/// inbox and while the model was answering. After a restart the reply arrives — once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_mid_turn_answers_once_after_restart() {
    let tg = FakeTelegram::start().await;
    let llm = FakeLlm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let serve = || {
        tokio::process::Command::new(HEARTH)
            .arg("serve")
            .env("HEARTH_DATA_DIR", dir.path())
            .env("HEARTH_TELEGRAM_API_URL", tg.api_url())
            .env("RUST_LOG", "warn")
            .env("HEARTH_ISOLATION", "process")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let mut gateway = serve();
    let control = async |req: ControlRequest| -> ControlReply {
        let start = Instant::now();
        loop {
            match hearth_gateway::control::request(dir.path(), req.clone()).await {
                Ok(r) => return r,
                Err(hearth_gateway::control::ClientError::NotRunning(_)) if start.elapsed() < T => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
    };
    control(ControlRequest::ProviderSet {
        kind: ProviderKind::Openai,
        base_url: llm.base_url(),
        model: "m".into(),
        api_key: "k".into(),
    })
    .await;
    let bot = tg.add_bot("ana_bot");
    let add = ControlRequest::MemberAdd { name: "Ana".into(), bot_token: bot.token.clone(), role: Default::default() };
    let ControlReply::MemberAdded(added) = control(add).await else {
        panic!()
    };
    let ana = tg.user(9, "Ana");
    tg.send_text(&bot.token, &ana, &format!("/start {}", added.pair_code));
    tg.wait_for_sent(&bot.token, ana.id, 1, T).await.unwrap();

    llm.add_rule(Rule::matching("interrupted").fault(LlmFault::Hang).times(1));
    tg.send_text(&bot.token, &ana, "an interrupted question");
    llm.wait_for_calls(1, T).await.unwrap();
    gateway.start_kill().unwrap();
    gateway.wait().await.unwrap();

    let mut gateway = serve();
    let sent = tg.wait_for_sent(&bot.token, ana.id, 2, Duration::from_secs(30)).await.unwrap();
    assert_eq!(sent[1].text, "You said: an interrupted question");
    crate::support::settled(&tg, dir.path(), async || crate::support::serve_status(dir.path()).await).await;
    assert_eq!(tg.sent_to(&bot.token, ana.id).len(), 2, "answered exactly once");
    // The interrupted call's reservation was released, not charged.
    let db = rusqlite::Connection::open(dir.path().join("gateway.sqlite")).unwrap();
    let interrupted: i64 = db.query_row("SELECT COUNT(*) FROM ledger WHERE outcome = 'interrupted'", [], |r| r.get(0)).unwrap();
    assert_eq!(interrupted, 1);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(gateway.id().unwrap() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(T, gateway.wait()).await.expect("serve exits on SIGTERM").unwrap();
    assert!(status.success(), "{status:?}");
}
