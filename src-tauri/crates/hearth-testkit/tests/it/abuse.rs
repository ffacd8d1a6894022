//! A hostile worker against the real gateway (issue 13, "the gateway decides what a turn may
//! do"): `hearth-probe abuse` runs as every member's worker, speaks the real protocol, and asks
//! for what the turn it is given does not allow — completions and searches in turns that need
//! none, more than one at a time, more than a turn may have, after the admin paused the member,
//! reminder schedules of any length and any instant, and frames of any size. Each is refused or
//! bounded, the refusal is audited, and the other member (a polite probe) is served throughout.
//!
//! The gateway's clock is a manual one, so a reminder comes due when the test says; Telegram and
//! the model are the testkit's fakes, and the probe writes what it was answered into its reply.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hearth_gateway::clock::Clock;
use hearth_gateway::telegram::Backoff;
use hearth_gateway::{Gateway, GatewayConfig, IsolationChoice};
use hearth_proto::control::{ControlReply, ControlRequest, LaneState, ProviderKind};
use hearth_proto::worker::{MAX_COMPLETIONS_PER_TURN, MAX_REMINDERS, MAX_REPLY_BYTES};
use hearth_testkit::llm::FakeLlm;
use hearth_testkit::telegram::{FakeBot, FakeTelegram, FakeUser};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(30);
const HOSTILE: usize = 0;
const POLITE: usize = 1;

struct Member {
    id: String,
    bot: FakeBot,
    user: FakeUser,
}

/// Two members, Rosa (hostile, as the plan says) and Leo (polite), on the fakes.
struct Rig {
    tg: FakeTelegram,
    llm: FakeLlm,
    dir: tempfile::TempDir,
    gateway: Gateway,
    clock: Clock,
    plan: PathBuf,
    members: Vec<Member>,
}

fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-05-04T09:00:00Z").unwrap().to_utc()
}

impl Rig {
    async fn start() -> Rig {
        let tg = FakeTelegram::start().await;
        let llm = FakeLlm::start().await;
        let dir = tempfile::tempdir().unwrap();
        let plan = dir.path().join("plan.json");
        std::fs::write(&plan, "{}").unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let clock = Clock::manual(start_time());
        let mut c = GatewayConfig::new(data, PathBuf::from(env!("CARGO_BIN_EXE_hearth-probe")));
        c.worker_args = vec!["abuse".into(), plan.clone().into()];
        c.telegram_api_url = Some(tg.api_url());
        c.poll_timeout = Duration::from_secs(5);
        c.backoff =
            Backoff { min: Duration::from_millis(100), max: Duration::from_secs(1), revoked: Duration::from_secs(2) };
        c.llm_retry.max_attempts = 1;
        c.control_socket = false;
        c.isolation = IsolationChoice::Process;
        c.clock = clock.clone();
        let gateway = Gateway::start(c).await.expect("gateway starts");
        let reply = gateway
            .control(ControlRequest::ProviderSet {
                kind: ProviderKind::Openai,
                base_url: llm.base_url(),
                model: "test-model".into(),
                api_key: "sk-test".into(),
            })
            .await
            .unwrap();
        assert!(matches!(reply, ControlReply::ProviderSet(_)), "{reply:?}");
        let mut rig = Rig { tg, llm, dir, gateway, clock, plan, members: Vec::new() };
        for name in ["Rosa", "Leo"] {
            rig.add(name).await;
        }
        rig
    }

    async fn add(&mut self, name: &str) {
        let bot = self.tg.add_bot(&format!("{}_hearth_bot", name.to_lowercase()));
        let add =
            ControlRequest::MemberAdd { name: name.into(), bot_token: bot.token.clone(), role: Default::default() };
        let ControlReply::MemberAdded(added) = self.gateway.control(add).await.unwrap() else { panic!("member add") };
        let user = self.tg.user(1000 + self.members.len() as i64, name);
        self.tg.send_text(&bot.token, &user, &format!("/start {}", added.pair_code));
        let welcome = self.tg.wait_for_sent(&bot.token, user.id, 1, T).await.unwrap();
        assert!(welcome[0].text.contains("all set"), "{:?}", welcome[0].text);
        self.members.push(Member { id: added.id, bot, user });
    }

    /// What Rosa's worker does from the next turn on.
    fn hostile(&self, step: Value) {
        std::fs::write(&self.plan, json!({ "Rosa": step }).to_string()).unwrap();
    }

    fn texts(&self, i: usize) -> Vec<String> {
        let m = &self.members[i];
        self.tg.sent_to(&m.bot.token, m.user.id).into_iter().map(|s| s.text).collect()
    }

    /// Member `i` writes `text` and gets exactly one new message back: its text.
    async fn ask(&self, i: usize, text: &str) -> String {
        let m = &self.members[i];
        let before = self.texts(i).len();
        self.tg.send_text(&m.bot.token, &m.user, text);
        self.next(i, before).await
    }

    /// Waits for member `i`'s message number `before` (0-based) and returns it.
    async fn next(&self, i: usize, before: usize) -> String {
        let m = &self.members[i];
        let sent = self.tg.wait_for_sent(&m.bot.token, m.user.id, before + 1, T).await.unwrap();
        sent[before].text.clone()
    }

    /// Leo asks and is answered by the model, whatever Rosa's worker is up to.
    async fn polite_member_is_served(&self, text: &str) {
        let calls = self.llm.calls().len();
        let reply = self.ask(POLITE, text).await;
        assert_eq!(reply, format!("polite: You said: {text}"));
        assert_eq!(self.llm.calls().len(), calls + 1);
        tokio::time::timeout(Duration::from_secs(5), self.gateway.status()).await.expect("status answers").unwrap();
    }

    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.dir.path().join("data").join("gateway.sqlite")).unwrap()
    }

    /// Rosa's scheduled reminders, as the gateway holds them: (id, due_at).
    fn schedule(&self) -> Vec<(i64, i64)> {
        let db = self.db();
        let mut stmt = db
            .prepare("SELECT reminder_id, due_at FROM reminder_schedule WHERE member_id = ?1 ORDER BY reminder_id")
            .unwrap();
        stmt.query_map([&self.members[HOSTILE].id], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Audit rows about Rosa's worker, by action.
    fn audited(&self, action: &str) -> Vec<String> {
        let db = self.db();
        let mut stmt = db.prepare("SELECT detail FROM audit WHERE action = ?1 AND member_id = ?2 ORDER BY id").unwrap();
        stmt.query_map([action, &self.members[HOSTILE].id], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    }

    async fn stop(self) {
        self.gateway.shutdown(Duration::from_secs(5)).await;
    }

    /// Waits until the gateway has done all it will do about what it was sent and what came due:
    /// every update confirmed, no inbox row or reminder occurrence open, no lane busy. A reply is
    /// sent before its row is closed and a turn's lane is busy until it is answered, so a test can
    /// then assert that nothing more was let through, without sleeping.
    async fn settled(&self) {
        let deadline = tokio::time::Instant::now() + T;
        loop {
            let unconfirmed = self.tg.unconfirmed_updates();
            let open: (i64, i64) = self
                .db()
                .query_row(
                    "SELECT (SELECT COUNT(*) FROM inbox WHERE state = 'pending'), \
                            (SELECT COUNT(*) FROM reminder_firings WHERE state = 'pending')",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            let status = self.gateway.status().await.unwrap();
            let busy = status.members.iter().filter(|m| m.lane != LaneState::Idle).count();
            if unconfirmed.is_empty() && open == (0, 0) && busy == 0 && status.turns_in_flight == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not settled: unconfirmed updates {unconfirmed:?}, open rows and firings {open:?}, {busy} busy lanes"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn parse(reply: &str) -> Value {
    serde_json::from_str(reply).unwrap_or_else(|e| panic!("the probe's reply is not its summary ({e}): {reply:.300}"))
}

fn at(secs: i64) -> i64 {
    start_time().timestamp() + secs
}

/// A `/memory` turn and a reminder firing need no model: a worker that floods them with
/// completions and searches gets every one refused, none reaches the provider, the refusal is
/// audited once per turn, and the other member is answered meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_in_a_turn_that_needs_no_model_reaches_no_model() {
    let rig = Rig::start().await;
    // A reminder a minute from now, set the way a chat turn reports it.
    rig.hostile(json!({ "mode": "reminders", "due": [[1, at(60)]] }));
    assert_eq!(rig.ask(HOSTILE, "remind me").await, "reminders: 1");
    assert_eq!(rig.schedule(), vec![(1, at(60))]);

    rig.hostile(json!({ "mode": "flood", "count": 300 }));
    let memory = parse(&rig.ask(HOSTILE, "/memory").await);
    let before = rig.texts(HOSTILE).len();
    rig.clock.advance(chrono::Duration::seconds(60));
    let reminder = parse(&rig.next(HOSTILE, before).await);
    for (turn, got) in [("/memory", &memory), ("reminder", &reminder)] {
        assert_eq!(got["complete"], json!({ "refused:not_this_turn": 300 }), "{turn}: {got}");
        let kb = got["kb"].as_object().unwrap();
        assert!(kb.keys().all(|k| k.starts_with("err:")), "{turn}: searches answered: {got}");
        assert_eq!(kb.values().map(|n| n.as_u64().unwrap()).sum::<u64>(), 300, "{turn}: {got}");
    }
    assert_eq!(rig.llm.calls().len(), 0, "a completion of a turn that needs no model reached the provider");
    rig.polite_member_is_served("hello").await;
    let audited = rig.audited("worker_refused");
    assert_eq!(audited.len(), 2, "once per turn: {audited:?}");
    assert!(audited[0].contains("list_memory") && audited[1].contains("reminder"), "{audited:?}");
    rig.stop().await;
}

/// A chat turn may have one completion in flight and at most `MAX_COMPLETIONS_PER_TURN` in all:
/// the second of two at once and everything past the limit are refused without a provider call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_turn_gets_one_completion_at_a_time_and_a_bounded_number() {
    let rig = Rig::start().await;
    // Long enough that the first of the pair is still with the provider when the second comes.
    rig.llm.set_latency(Duration::from_millis(300));
    rig.hostile(json!({ "mode": "steps", "count": 12 }));
    let got = parse(&rig.ask(HOSTILE, "go").await);
    assert_eq!(got["pair"], json!(["ok", "refused:busy"]), "{got}");
    let sequential: Vec<&str> = got["sequential"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let allowed = MAX_COMPLETIONS_PER_TURN - 1; // the first of the pair counts
    assert!(sequential[..allowed].iter().all(|o| *o == "ok"), "{got}");
    assert!(sequential[allowed..].iter().all(|o| *o == "refused:limit"), "{got}");
    assert_eq!(rig.llm.calls().len(), MAX_COMPLETIONS_PER_TURN);
    assert_eq!(rig.audited("worker_refused").len(), 1);
    rig.llm.set_latency(Duration::ZERO);
    rig.polite_member_is_served("still there?").await;
    rig.stop().await;
}

/// Pausing a member takes effect in the middle of a running turn: the completion in flight
/// finishes, the next ones are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_stops_a_running_turn_from_spending() {
    let rig = Rig::start().await;
    rig.llm.set_latency(Duration::from_millis(300));
    rig.hostile(json!({ "mode": "steps", "count": 12 }));
    let before = rig.texts(HOSTILE).len();
    let m = &rig.members[HOSTILE];
    rig.tg.send_text(&m.bot.token, &m.user, "go");
    rig.llm.wait_for_calls(2, T).await.unwrap();
    let reply = rig.gateway.control(ControlRequest::MemberPause { member: Some("Rosa".into()), paused: true, until: None }).await;
    assert!(matches!(reply, Ok(ControlReply::Done)), "{reply:?}");
    let calls = rig.llm.calls().len();
    let got = parse(&rig.next(HOSTILE, before).await);
    let sequential = got["sequential"].as_array().unwrap();
    assert!(sequential.iter().any(|o| o == "refused:paused"), "{got}");
    assert!(rig.llm.calls().len() <= calls + 1, "calls went on after the pause: {got}");
    rig.stop().await;
}

/// A reminder schedule is the gateway's to check: longer than `MAX_REMINDERS` (or 300,000 in one
/// frame) is refused whole, instants far in the past or future are dropped, a turn that cannot
/// change reminders cannot report them, and a refused schedule fires nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminder_schedules_are_bounded_and_checked() {
    let rig = Rig::start().await;
    let texts = |rig: &Rig| rig.texts(HOSTILE).len();

    // Past, absurdly far, and fine: only the last is kept.
    rig.hostile(json!({ "mode": "reminders", "due": [[1, at(-3600)], [2, at(20 * 366 * 86400)], [3, at(120)]] }));
    rig.ask(HOSTILE, "a").await;
    assert_eq!(rig.schedule(), vec![(3, at(120))]);

    // One more than allowed, due in a minute: refused whole; the schedule stays as it was and
    // nothing fires.
    rig.hostile(json!({ "mode": "reminders", "count": MAX_REMINDERS + 100, "due_at": at(60) }));
    rig.ask(HOSTILE, "b").await;
    assert_eq!(rig.schedule(), vec![(3, at(120))]);

    // A command that cannot change reminders reports some anyway: ignored.
    rig.hostile(json!({ "mode": "reminders", "due": [[9, at(90)]] }));
    rig.ask(HOSTILE, "/memory").await;
    assert_eq!(rig.schedule(), vec![(3, at(120))]);

    // 300,000 due "now" in one frame (the review's attack): refused, nothing scheduled.
    rig.hostile(json!({ "mode": "reminders", "count": 300_000, "due_at": 0 }));
    let answer = rig.ask(HOSTILE, "c").await;
    assert!(!answer.starts_with("reminders"), "{answer}");
    assert_eq!(rig.schedule(), vec![(3, at(120))]);
    assert!(!rig.audited("worker_refused").is_empty());

    // Time passes: exactly the one valid reminder fires, once.
    rig.hostile(json!({ "mode": "polite" }));
    let before = texts(&rig);
    rig.clock.advance(chrono::Duration::seconds(120));
    assert_eq!(rig.next(HOSTILE, before).await, "polite: reminder");
    rig.settled().await;
    assert_eq!(texts(&rig), before + 1, "{:?}", &rig.texts(HOSTILE)[before..]);
    rig.polite_member_is_served("hi").await;
    rig.stop().await;
}

/// Every frame kind has a bound below the frame cap: an oversized completion or search is
/// refused (no provider call), a long reply is cut to `MAX_REPLY_BYTES`, and a frame over the
/// worker frame limit ends that worker's connection — its member is told, the other is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_frames_are_refused() {
    let rig = Rig::start().await;
    rig.hostile(json!({ "mode": "oversize", "bytes": 3 << 20 }));
    let got = parse(&rig.ask(HOSTILE, "big").await);
    assert_eq!(got["complete"], "error:bad_request", "{got}");
    assert!(got["kb"].as_str().unwrap().starts_with("err:"), "{got}");
    assert_eq!(rig.llm.calls().len(), 0);

    // A long reply is cut, with a note, not sent as hundreds of messages.
    rig.hostile(json!({ "mode": "reply", "bytes": 1 << 20 }));
    let before = rig.texts(HOSTILE).len();
    let m = &rig.members[HOSTILE];
    rig.tg.send_text(&m.bot.token, &m.user, "long");
    rig.next(HOSTILE, before).await;
    rig.settled().await;
    let sent: usize = rig.texts(HOSTILE)[before..].iter().map(String::len).sum();
    assert!(sent <= MAX_REPLY_BYTES + 1024, "{sent} bytes sent for one turn");
    assert!(rig.texts(HOSTILE).last().unwrap().contains("cut"), "the member is told the reply was cut");

    // A frame over the worker frame limit: the worker is dropped, the member told.
    rig.hostile(json!({ "mode": "reply", "bytes": 5 << 20 }));
    let answer = rig.ask(HOSTILE, "huge").await;
    assert!(answer.starts_with("Sorry"), "{answer:.200}");
    rig.settled().await;
    let m = &rig.members[HOSTILE];
    assert!(rig.tg.sent_to(&m.bot.token, m.user.id).last().unwrap().text.starts_with("Sorry"));
    rig.polite_member_is_served("and you?").await;
    rig.stop().await;
}
