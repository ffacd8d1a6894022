//! The admin API the app drives, against a real gateway and the testkit fakes: testing and
//! finding providers, checking and replacing bot tokens, member settings, pausing, exports, the
//! turn cap, and the events the app listens to. No worker process is needed here: nothing in
//! these tests reaches one (end-to-end turns are in hearth-cli's tests).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hearth_gateway::telegram::Backoff;
use hearth_gateway::{Gateway, GatewayConfig, IsolationChoice};
use hearth_proto::control::{
    BotState, CapChange, ControlError, ControlReply, ControlRequest, ErrorCode, GatewayEvent, LaneState, MemberAdded,
    MemberSummary, ModelChange, ProviderKind, Role,
};
use hearth_testkit::llm::{FakeLlm, Fault, Reply, Rule};
use hearth_testkit::local::FakeModelServer;
use hearth_testkit::telegram::{FakeBot, FakeTelegram, FakeUser, RecordedRequest};
use tokio::sync::broadcast;

const T: Duration = Duration::from_secs(15);
const PAUSED_NOTE: &str =
    "Your assistant is paused by your household's admin right now. I'll be back once they resume me.";

struct Rig {
    tg: FakeTelegram,
    dir: tempfile::TempDir,
    gateway: Gateway,
}

impl Rig {
    async fn start(tweak: impl FnOnce(&mut GatewayConfig)) -> Rig {
        let tg = FakeTelegram::start().await;
        let dir = tempfile::tempdir().unwrap();
        // No turn runs in these tests, so no worker binary is needed.
        let mut c = GatewayConfig::new(dir.path().to_owned(), PathBuf::from("/nonexistent/hearth"));
        c.telegram_api_url = Some(tg.api_url());
        c.poll_timeout = Duration::from_secs(1);
        c.backoff = Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_secs(1),
            revoked: Duration::from_millis(300),
        };
        c.control_socket = false;
        c.isolation = IsolationChoice::Process;
        c.local_providers = Vec::new();
        tweak(&mut c);
        let gateway = Gateway::start(c).await.expect("gateway starts");
        Rig { tg, dir, gateway }
    }

    async fn ok(&self, request: ControlRequest) -> ControlReply {
        self.gateway.control(request).await.unwrap_or_else(|e| panic!("{e:?}"))
    }

    async fn err(&self, request: ControlRequest) -> ControlError {
        match self.gateway.control(request).await {
            Ok(reply) => panic!("expected an error, got {reply:?}"),
            Err(e) => e,
        }
    }

    async fn add(&self, name: &str, role: Role) -> (MemberAdded, FakeBot) {
        let bot = self.tg.add_bot(&format!("{}_hearth_bot", name.to_lowercase()));
        let reply = self.ok(ControlRequest::MemberAdd { name: name.into(), bot_token: bot.token.clone(), role }).await;
        let ControlReply::MemberAdded(added) = reply else { panic!("{reply:?}") };
        (added, bot)
    }

    async fn add_and_pair(&self, name: &str, user_id: i64) -> (MemberAdded, FakeBot, FakeUser) {
        let (added, bot) = self.add(name, Role::Adult).await;
        let user = self.tg.user(user_id, name);
        self.tg.send_text(&bot.token, &user, &format!("/start {}", added.pair_code));
        let sent = self.tg.wait_for_sent(&bot.token, user.id, 1, T).await.unwrap();
        assert!(sent[0].text.contains("all set"), "{:?}", sent[0].text);
        (added, bot, user)
    }

    async fn members(&self) -> Vec<MemberSummary> {
        match self.ok(ControlRequest::MemberList).await {
            ControlReply::Members { members } => members,
            other => panic!("{other:?}"),
        }
    }

    fn audited(&self, action: &str) -> i64 {
        let db = rusqlite::Connection::open(self.dir.path().join("gateway.sqlite")).unwrap();
        db.query_row("SELECT COUNT(*) FROM audit WHERE action = ?1", [action], |r| r.get(0)).unwrap()
    }

    fn outcomes(&self) -> Vec<(String, String)> {
        let db = rusqlite::Connection::open(self.dir.path().join("gateway.sqlite")).unwrap();
        let mut stmt = db.prepare("SELECT state, COALESCE(outcome, '') FROM inbox ORDER BY id").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
    }

    async fn stop(self) {
        self.gateway.shutdown(Duration::from_secs(5)).await;
    }

    /// Waits until the gateway has done all it will do about what was sent to it: every update
    /// confirmed (so committed), no inbox row open, no lane busy. A reply is sent before its row
    /// is closed, so a test can then assert that nothing more came, without sleeping.
    async fn settled(&self) {
        let deadline = Instant::now() + T;
        loop {
            let unconfirmed = self.tg.unconfirmed_updates();
            let open = self.outcomes().into_iter().filter(|(state, _)| state == "pending").count();
            let status = self.gateway.status().await.unwrap();
            let busy = status.members.iter().filter(|m| m.lane != LaneState::Idle).count();
            if unconfirmed.is_empty() && open == 0 && busy == 0 && status.turns_in_flight == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not settled: unconfirmed updates {unconfirmed:?}, {open} open rows, {busy} busy lanes"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The next event `pick` accepts, skipping others; panics after `timeout`.
async fn next_event<T>(
    rx: &mut broadcast::Receiver<GatewayEvent>,
    timeout: Duration,
    mut pick: impl FnMut(&GatewayEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(e)) => {
                if let Some(v) = pick(&e) {
                    return v;
                }
            }
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(e)) => panic!("event channel closed: {e}"),
            Err(_) => panic!("no matching event within {timeout:?}"),
        }
    }
}

/// Everything already sent on `rx`, without waiting.
fn drain(rx: &mut broadcast::Receiver<GatewayEvent>) -> Vec<GatewayEvent> {
    let mut seen = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(e) => seen.push(e),
            Err(broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => return seen,
        }
    }
}

fn test_request(llm: &FakeLlm, model: &str, key: &str) -> ControlRequest {
    ControlRequest::ProviderTest {
        kind: ProviderKind::Openai,
        base_url: llm.base_url(),
        model: model.into(),
        api_key: key.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_test_makes_one_small_call_and_explains_failures() {
    let rig = Rig::start(|_| {}).await;
    let llm = FakeLlm::start().await;
    llm.push_reply(Reply::text("ready"));
    let ControlReply::ProviderTested(tested) = rig.ok(test_request(&llm, " family-model ", " sk-right\n")).await else {
        panic!()
    };
    assert_eq!((tested.model.as_str(), tested.reply.as_str()), ("family-model", "ready"));
    assert!(tested.latency_ms < 15_000, "{tested:?}");
    let calls = llm.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].last_user_text(), "Reply with the single word: ready");
    assert_eq!((calls[0].api_key.as_deref(), calls[0].stream), (Some("sk-right"), false));
    assert!(calls[0].body["max_tokens"].as_u64().or(calls[0].body["max_completion_tokens"].as_u64()) <= Some(16));

    // A long answer is cut to 200 characters.
    llm.push_reply(Reply::text("é".repeat(500)));
    let ControlReply::ProviderTested(tested) = rig.ok(test_request(&llm, "m", "k")).await else { panic!() };
    assert_eq!(tested.reply.chars().count(), 201, "200 and the cut mark");

    // A wrong key: the provider's own words, and what to do.
    llm.require_api_key("sk-right");
    let e = rig.err(test_request(&llm, "m", "sk-wrong")).await;
    assert_eq!(e.code, ErrorCode::Rejected);
    assert!(e.message.starts_with("The provider refused the API key (HTTP 401: "), "{}", e.message);
    assert!(e.message.ends_with("Check that you pasted the whole key."), "{}", e.message);
    assert!(!e.message.contains("sk-wrong"), "{}", e.message);

    // An unknown model is named.
    llm.add_rule(Rule::matching("").fault(Fault::Status { code: 404, retry_after_secs: None }).times(1));
    let e = rig.err(test_request(&llm, "llama9", "sk-right")).await;
    assert_eq!(e.code, ErrorCode::Rejected);
    assert!(e.message.contains("\"llama9\"") && e.message.contains("HTTP 404"), "{}", e.message);

    // Nothing listens there.
    let closed = ControlRequest::ProviderTest {
        kind: ProviderKind::Openai,
        base_url: "http://127.0.0.1:9/v1".into(),
        model: "m".into(),
        api_key: String::new(),
    };
    let e = rig.err(closed).await;
    assert_eq!(e.code, ErrorCode::Unreachable);
    assert!(e.message.starts_with("Couldn't reach http://127.0.0.1:9/v1: "), "{}", e.message);
    assert!(e.message.ends_with("Check the address (for Ollama: http://localhost:11434/v1)."), "{}", e.message);

    // The same input checks as `ProviderSet`.
    let bad = ControlRequest::ProviderTest {
        kind: ProviderKind::Openai,
        base_url: "localhost:11434".into(),
        model: "m".into(),
        api_key: String::new(),
    };
    assert_eq!(rig.err(bad).await.code, ErrorCode::InvalidInput);
    assert_eq!(rig.err(test_request(&llm, " ", "k")).await.code, ErrorCode::InvalidInput);

    // Nothing was stored and nobody was charged.
    let db = rusqlite::Connection::open(rig.dir.path().join("gateway.sqlite")).unwrap();
    let (ledger, settings): (i64, i64) = db
        .query_row("SELECT (SELECT COUNT(*) FROM ledger), (SELECT COUNT(*) FROM settings)", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((ledger, settings), (0, 0));
    let status = rig.gateway.status().await.unwrap();
    assert_eq!(status.provider, None);
    let secrets = std::fs::read_to_string(rig.dir.path().join("secrets.json")).unwrap_or_default();
    assert!(!secrets.contains("sk-right"), "{secrets}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_detect_lists_the_servers_that_answer() {
    let ollama = FakeModelServer::start(&["llama3.2:latest", "qwen2.5:7b"]).await;
    let lm_studio = FakeModelServer::start(&["phi-4"]).await;
    let (o, l) = (ollama.root(), lm_studio.root());
    let rig = Rig::start(move |c| {
        c.local_providers = vec![
            ("Ollama".into(), format!("{o}/")),
            ("Nothing here".into(), "http://127.0.0.1:9".into()),
            ("LM Studio".into(), l),
        ];
    })
    .await;
    let started = Instant::now();
    let ControlReply::LocalProviders { found } = rig.ok(ControlRequest::ProviderDetect).await else { panic!() };
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let got: Vec<(String, String, Vec<String>)> = found.into_iter().map(|p| (p.name, p.base_url, p.models)).collect();
    assert_eq!(
        got,
        vec![
            ("Ollama".into(), format!("{}/v1", ollama.root()), vec!["llama3.2:latest".into(), "qwen2.5:7b".into()]),
            ("LM Studio".into(), format!("{}/v1", lm_studio.root()), vec!["phi-4".into()]),
        ]
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_check_names_the_bot_and_stores_nothing() {
    let rig = Rig::start(|_| {}).await;
    let bot = rig.tg.add_bot("ana_hearth_bot");
    let ControlReply::BotChecked(me) =
        rig.ok(ControlRequest::BotCheck { bot_token: format!(" {}\n", bot.token) }).await
    else {
        panic!()
    };
    assert_eq!(me.bot_username, "ana_hearth_bot");
    assert!(!me.bot_name.is_empty(), "{me:?}");
    assert!(rig.members().await.is_empty());

    assert_eq!(
        rig.err(ControlRequest::BotCheck { bot_token: "not-a-token".into() }).await.code,
        ErrorCode::InvalidInput
    );
    let unknown = ControlRequest::BotCheck { bot_token: "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0".into() };
    let e = rig.err(unknown).await;
    assert_eq!(e.code, ErrorCode::Rejected);
    assert!(e.message.contains("BotFather"), "{}", e.message);

    rig.ok(ControlRequest::MemberAdd { name: "Ana".into(), bot_token: bot.token.clone(), role: Role::Adult }).await;
    let e = rig.err(ControlRequest::BotCheck { bot_token: bot.token.clone() }).await;
    assert_eq!(e.code, ErrorCode::Conflict);
    assert!(e.message.contains("Ana") && e.message.contains("/newbot"), "{}", e.message);
    assert!(!format!("{:?}", ControlRequest::BotCheck { bot_token: bot.token.clone() }).contains(&bot.token));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_persona_and_models_are_stored_checked_and_listed() {
    let rig = Rig::start(|_| {}).await;
    // A paid provider (a local server's models are free, so always priced); nothing calls it.
    let set = ControlRequest::ProviderSet {
        kind: ProviderKind::Openai,
        base_url: "https://api.example.invalid/v1".into(),
        model: "family-model".into(),
        api_key: "k".into(),
    };
    rig.ok(set).await;
    let (mia, _) = rig.add("Mia", Role::Child).await;
    rig.add("Leo", Role::Adult).await;
    let members = rig.members().await;
    assert_eq!(
        members.iter().map(|m| (m.name.as_str(), m.role)).collect::<Vec<_>>(),
        [("Mia", Role::Child), ("Leo", Role::Adult)]
    );
    let json = serde_json::to_value(&members[0]).unwrap();
    let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
    for key in ["role", "paused", "persona", "model", "fallback_model", "is_admin", "daily_cap_usd", "monthly_cap_usd"]
    {
        assert!(keys.contains(&key), "{key} in {json}");
    }

    let update = |role, persona: Option<&str>, model| ControlRequest::MemberUpdate {
        member: "mia".into(),
        role,
        persona: persona.map(str::to_owned),
        model,
    };
    let ControlReply::Member(m) = rig
        .ok(update(
            Some(Role::Teen),
            Some("  Loves horses.\r\nIs 12.  "),
            Some(ModelChange::Set { model: " kid-model ".into() }),
        ))
        .await
    else {
        panic!()
    };
    assert_eq!(
        (m.role, m.persona.as_str(), m.model.as_deref()),
        (Role::Teen, "Loves horses.\nIs 12.", Some("kid-model"))
    );
    assert_eq!(rig.audited("member_role") + rig.audited("member_persona") + rig.audited("member_model"), 3);
    let ControlReply::Member(m) = rig.ok(update(None, None, Some(ModelChange::Household))).await else { panic!() };
    assert_eq!((m.role, m.persona.as_str(), m.model), (Role::Teen, "Loves horses.\nIs 12.", None), "None keeps");

    let e = rig.err(update(None, Some(&"x".repeat(2001)), None)).await;
    assert_eq!(e.code, ErrorCode::InvalidInput);
    assert!(e.message.contains("2000"), "{}", e.message);
    assert_eq!(rig.err(update(None, None, None)).await.code, ErrorCode::InvalidInput);
    let missing =
        ControlRequest::MemberUpdate { member: "Nobody".into(), role: Some(Role::Adult), persona: None, model: None };
    assert_eq!(rig.err(missing).await.code, ErrorCode::NotFound);

    // A capped member may not be given a model without a price.
    rig.ok(ControlRequest::PriceSet {
        model: "family-model".into(),
        input_micros_per_mtok: 1_000_000,
        output_micros_per_mtok: 1_000_000,
        cached_input_micros_per_mtok: None,
        cache_write_micros_per_mtok: None,
    })
    .await;
    rig.ok(ControlRequest::MemberCap {
        member: mia.id.clone(),
        daily: CapChange::Set { micros: 500_000 },
        monthly: CapChange::Keep,
    })
    .await;
    let e = rig.err(update(None, None, Some(ModelChange::Set { model: "unpriced-model".into() }))).await;
    assert_eq!(e.code, ErrorCode::InvalidInput);
    assert!(e.message.contains("hearth price set unpriced-model"), "{}", e.message);
    // An uncapped member may.
    let leo = ControlRequest::MemberUpdate {
        member: "Leo".into(),
        role: None,
        persona: None,
        model: Some(ModelChange::Set { model: "unpriced-model".into() }),
    };
    rig.ok(leo).await;
    // … but then nobody can cap the household without pricing it.
    let e = rig.err(ControlRequest::HouseholdCap { monthly: CapChange::Set { micros: 5_000_000 } }).await;
    assert!(e.message.contains("unpriced-model"), "{}", e.message);

    let listed = rig.members().await;
    assert_eq!(listed[0].daily_cap_usd, Some(0.5));
    assert_eq!(listed[1].model.as_deref(), Some("unpriced-model"));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_member_gets_one_note_and_nothing_else() {
    let rig = Rig::start(|_| {}).await;
    let (ana, bot, user) = rig.add_and_pair("Ana", 501).await;
    rig.ok(ControlRequest::MemberPause { member: Some("ana".into()), paused: true, until: None }).await;
    assert!(rig.members().await[0].paused);
    assert_eq!(rig.audited("member_paused"), 1);

    rig.tg.send_text(&bot.token, &user, "hello?");
    let sent = rig.tg.wait_for_sent(&bot.token, user.id, 2, T).await.unwrap();
    assert_eq!(sent[1].text, PAUSED_NOTE);
    for text in ["anyone there?", "/new", "/help"] {
        rig.tg.send_text(&bot.token, &user, text);
    }
    // A stranger is treated as always, and pairing still works while paused.
    let stranger = rig.tg.user(666, "Eve");
    rig.tg.send_text(&bot.token, &stranger, "hi");
    let sent = rig.tg.wait_for_sent(&bot.token, stranger.id, 1, T).await.unwrap();
    assert_eq!(sent[0].text, "Sorry, this is a private family assistant.");
    let ControlReply::PairCode(code) = rig.ok(ControlRequest::MemberPair { member: ana.id.clone() }).await else {
        panic!()
    };
    let phone = rig.tg.user(502, "Ana");
    rig.tg.send_text(&bot.token, &phone, &format!("/start {}", code.pair_code));
    let sent = rig.tg.wait_for_sent(&bot.token, phone.id, 1, T).await.unwrap();
    assert!(sent[0].text.contains("all set"), "{sent:?}");
    // The old phone got one note in all, within the hour.
    rig.settled().await;
    assert_eq!(rig.tg.sent_to(&bot.token, user.id).len(), 2);
    let paused: Vec<_> = rig.outcomes().into_iter().filter(|(_, o)| o == "paused").collect();
    assert_eq!(paused.len(), 4, "{:?}", rig.outcomes());
    assert!(paused.iter().all(|(state, _)| state == "done"));
    let status = rig.gateway.status().await.unwrap();
    assert!(status.members[0].paused && status.members[0].last_activity.is_some(), "{status:?}");
    assert_eq!(status.worker_processes, 0);

    // Resume everyone: the next message goes to the lane (and so towards a worker) again.
    rig.ok(ControlRequest::MemberPause { member: None, paused: false, until: None }).await;
    assert!(!rig.members().await[0].paused);
    rig.tg.send_text(&bot.token, &phone, "back?");
    let sent = rig.tg.wait_for_sent(&bot.token, phone.id, 2, T).await.unwrap();
    assert_ne!(sent[1].text, PAUSED_NOTE, "handed to a worker (which cannot start in this test)");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_token_keeps_the_pairing_and_clears_the_trouble() {
    let rig = Rig::start(|_| {}).await;
    let (ana, old_bot, user) = rig.add_and_pair("Ana", 601).await;
    let (_, leos_bot) = rig.add("Leo", Role::Adult).await;
    rig.tg.revoke(&old_bot.token);
    let deadline = Instant::now() + T;
    while rig.gateway.status().await.unwrap().members[0].bot != BotState::TokenRevoked {
        assert!(Instant::now() < deadline, "the revoked token is noticed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Bad tokens change nothing.
    let replace = |token: &str| ControlRequest::MemberToken { member: "Ana".into(), bot_token: token.into() };
    assert_eq!(rig.err(replace("not-a-token")).await.code, ErrorCode::InvalidInput);
    let e = rig.err(replace(&leos_bot.token)).await;
    assert_eq!(e.code, ErrorCode::Conflict);
    assert!(e.message.contains("Leo"), "{}", e.message);
    assert_eq!(rig.members().await[0].bot_username, old_bot.username);

    let new_bot = rig.tg.add_bot("ana_new_bot");
    let ControlReply::Member(m) = rig.ok(replace(&format!("{}\n", new_bot.token))).await else { panic!() };
    assert_eq!((m.id.as_str(), m.bot_username.as_str(), m.paired), (ana.id.as_str(), "ana_new_bot", true));
    assert_eq!(rig.audited("bot_token_replaced"), 1);
    let deadline = Instant::now() + T;
    while rig.gateway.status().await.unwrap().members[0].bot != BotState::Polling {
        assert!(Instant::now() < deadline, "the new bot polls");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Ana writes to the new bot and is recognised as herself (paused, so no worker is needed).
    rig.ok(ControlRequest::MemberPause { member: Some("Ana".into()), paused: true, until: None }).await;
    rig.tg.send_text(&new_bot.token, &user, "is this still you?");
    let sent = rig.tg.wait_for_sent(&new_bot.token, user.id, 1, T).await.unwrap();
    assert_eq!(sent[0].text, PAUSED_NOTE);
    let secrets = std::fs::read_to_string(rig.dir.path().join("secrets.json")).unwrap();
    assert!(secrets.contains(&new_bot.token) && !secrets.contains(&old_bot.token));

    // After a restart the new bot is the one that polls.
    let Rig { tg, dir, gateway } = rig;
    gateway.shutdown(Duration::from_secs(5)).await;
    drop(gateway);
    let status = {
        let mut c = GatewayConfig::new(dir.path().to_owned(), PathBuf::from("/nonexistent/hearth"));
        c.telegram_api_url = Some(tg.api_url());
        c.control_socket = false;
        c.isolation = IsolationChoice::Process;
        let g = Gateway::start(c).await.unwrap();
        let s = g.status().await.unwrap();
        g.shutdown(Duration::from_secs(5)).await;
        s
    };
    assert_eq!(status.members[0].bot_username, "ana_new_bot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tell_the_app_what_happened_once_and_nothing_while_idle() {
    let rig = Rig::start(|_| {}).await;
    let mut rx = rig.gateway.subscribe();
    let (added, bot) = rig.add("Ana", Role::Adult).await;
    next_event(&mut rx, T, |e| (*e == GatewayEvent::Changed).then_some(())).await;
    let user = rig.tg.user(701, "Anabel");
    rig.tg.send_text(&bot.token, &user, &format!("/start {}", added.pair_code));
    let paired = next_event(&mut rx, T, |e| matches!(e, GatewayEvent::Paired { .. }).then(|| e.clone())).await;
    assert_eq!(
        paired,
        GatewayEvent::Paired { member_id: added.id.clone(), name: "Ana".into(), telegram_name: "Anabel".into() }
    );
    rig.tg.wait_for_sent(&bot.token, user.id, 1, T).await.unwrap();

    // Idle: polls come back empty every second, and say nothing. Counted in polls, not seconds:
    // once the fake has two more long polls from the bot, the one running when the pairing was
    // done came back empty and so did a whole one after it — and a poll loop says what a poll
    // brought before it sends the next.
    rig.settled().await;
    let _ = drain(&mut rx);
    let token = bot.token.clone();
    let is_poll = move |r: &RecordedRequest| r.token == token && r.method == "getUpdates";
    let before = rig.tg.requests().iter().filter(|r| is_poll(r)).count();
    rig.tg.wait_for_requests(before + 2, T, is_poll).await.unwrap();
    let idle = drain(&mut rx);
    assert_eq!(idle, vec![], "no events while nothing happens");

    // A revoked token: one BotTrouble, though the bot keeps retrying (every 300 ms here). Once
    // the fake has refused it four times, whatever the first three brought has been said.
    rig.tg.revoke(&bot.token);
    let token = bot.token.clone();
    rig.tg.wait_for_requests(4, T, move |r| r.token == token && r.status == 401).await.unwrap();
    let seen = drain(&mut rx);
    let trouble: Vec<_> = seen.iter().filter(|e| matches!(e, GatewayEvent::BotTrouble { .. })).collect();
    assert_eq!(
        trouble,
        vec![&GatewayEvent::BotTrouble {
            member_id: added.id.clone(),
            name: "Ana".into(),
            state: BotState::TokenRevoked
        }],
        "{seen:?}"
    );
    let retries = rig.tg.requests().iter().filter(|r| r.token == bot.token && r.status == 401).count();
    assert!(retries >= 3, "the bot kept trying: {retries}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_turn_cap_changes_at_once_within_bounds() {
    let rig = Rig::start(|c| c.turn_cap = 4).await;
    assert_eq!(rig.gateway.status().await.unwrap().turn_cap, 4);
    for bad in [0, 10_001] {
        let e = rig.err(ControlRequest::TurnCap { cap: bad }).await;
        assert_eq!(e.code, ErrorCode::InvalidInput);
        assert!(e.message.contains("1 to 10000"), "{}", e.message);
    }
    assert_eq!(rig.ok(ControlRequest::TurnCap { cap: 2 }).await, ControlReply::Done);
    let deadline = Instant::now() + T;
    while rig.gateway.status().await.unwrap().turn_cap != 2 {
        assert!(Instant::now() < deadline, "the cap is applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rig.audited("turn_cap"), 1);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_is_a_new_folder_with_a_consistent_copy() {
    let rig = Rig::start(|_| {}).await;
    let (ana, _) = rig.add("Ana", Role::Adult).await;
    let member_dir = rig.dir.path().join("members").join(&ana.id);
    {
        let db = rusqlite::Connection::open(member_dir.join("history.sqlite")).unwrap();
        db.execute_batch(
            "CREATE TABLE conversations (id INTEGER PRIMARY KEY, chat_id INTEGER NOT NULL, started_at INTEGER NOT NULL);
             CREATE TABLE messages (id INTEGER PRIMARY KEY, conversation_id INTEGER NOT NULL, role TEXT NOT NULL,
                 text TEXT NOT NULL, created_at INTEGER NOT NULL);
             INSERT INTO conversations VALUES (1, 601, 1700000000);
             INSERT INTO messages VALUES (1, 1, 'user', 'hello', 1700000001);",
        )
        .unwrap();
    }
    let out = tempfile::tempdir().unwrap();
    let export = |dest: &str| ControlRequest::MemberExport { member: "ana".into(), dest_dir: dest.into() };
    let e = rig.err(export("relative/dir")).await;
    assert_eq!(e.code, ErrorCode::InvalidInput);
    assert!(e.message.contains("full path"), "{}", e.message);
    let e = rig.err(export(out.path().join("missing").to_str().unwrap())).await;
    assert!(e.code == ErrorCode::InvalidInput && e.message.contains("create it first"), "{e:?}");
    assert_eq!(
        rig.err(ControlRequest::MemberExport { member: "Bo".into(), dest_dir: "/tmp".into() }).await.code,
        ErrorCode::NotFound
    );

    let ControlReply::Exported { path } = rig.ok(export(out.path().to_str().unwrap())).await else { panic!() };
    let path = PathBuf::from(path);
    assert_eq!(path.parent(), Some(out.path()));
    let folder = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(folder.starts_with("Hearth export - Ana - 20"), "{folder}");
    let copy = rusqlite::Connection::open(path.join("history.sqlite")).unwrap();
    let n: i64 = copy.query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path.join("conversations.json")).unwrap()).unwrap();
    assert_eq!(json["conversations"][0]["messages"][0]["text"], "hello");
    assert_eq!(rig.audited("member_exported"), 1);
    rig.stop().await;
}
