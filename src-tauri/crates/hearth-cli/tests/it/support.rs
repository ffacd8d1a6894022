//! A household on fakes: the testkit's Telegram and LLM on loopback, a real gateway on a temp
//! data directory, and real `hearth worker` processes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hearth_gateway::telegram::Backoff;
use hearth_gateway::{Gateway, GatewayConfig};
use hearth_proto::control::{ControlReply, ControlRequest, LaneState, MemberAdded, ProviderKind, StatusReport};
use hearth_testkit::llm::FakeLlm;
use hearth_testkit::telegram::{FakeBot, FakeTelegram, FakeUser, SentMessage};

pub const HEARTH: &str = env!("CARGO_BIN_EXE_hearth");

/// Gateway settings for tests: the appliance defaults with short waits.
pub fn test_config(data_dir: &Path, tg: &FakeTelegram) -> GatewayConfig {
    let mut c = GatewayConfig::new(data_dir.to_owned(), PathBuf::from(HEARTH));
    c.telegram_api_url = Some(tg.api_url());
    c.poll_timeout = Duration::from_secs(5);
    c.backoff = Backoff { min: Duration::from_millis(100), max: Duration::from_secs(1), revoked: Duration::from_secs(2) };
    c.llm_retry.base_delay = Duration::from_millis(50);
    c.control_socket = false;
    // CI runs as root, where "auto" would give every test member a real OS account; the
    // isolation tests choose their level themselves.
    c.isolation = hearth_gateway::IsolationChoice::Process;
    // The test machine's own disk says nothing about the test: admins hear of a full disk only
    // where a test plays one (`alerts.rs`).
    c.disk_fill = Some(hearth_gateway::config::DiskProbe(std::sync::Arc::new(|_| Ok(0))));
    c
}

pub struct Member {
    pub id: String,
    pub name: String,
    pub bot: FakeBot,
    pub user: FakeUser,
}

/// Fakes, a data directory and a gateway with `n` paired members.
pub struct Household {
    pub tg: FakeTelegram,
    pub llm: FakeLlm,
    pub dir: tempfile::TempDir,
    pub gateway: Gateway,
    pub members: Vec<Member>,
}

pub const NAMES: [&str; 6] = ["Rosa", "Leo", "Sam", "Mia", "Noor", "Ivo"];

impl Household {
    pub async fn new(n: usize) -> Household {
        Self::with(n, |_| {}).await
    }

    pub async fn with(n: usize, tweak: impl FnOnce(&mut GatewayConfig)) -> Household {
        let tg = FakeTelegram::start().await;
        let llm = FakeLlm::start().await;
        let dir = tempfile::tempdir().unwrap();
        // Member accounts must be able to reach their own directory inside (isolation tests).
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o711)).unwrap();
        let mut config = test_config(dir.path(), &tg);
        tweak(&mut config);
        let gateway = Gateway::start(config).await.expect("gateway starts");
        set_provider(&gateway, &llm, ProviderKind::Openai).await;
        let mut h = Household { tg, llm, dir, gateway, members: Vec::new() };
        for name in NAMES.iter().take(n) {
            h.add_and_pair(name).await;
        }
        h
    }

    /// Adds a member with a new bot on the fake and pairs a new user with the code.
    pub async fn add_and_pair(&mut self, name: &str) -> usize {
        let (added, bot) = add_member(&self.gateway, &self.tg, name).await;
        let user = self.tg.user(1000 + self.members.len() as i64, name);
        self.tg.send_text(&bot.token, &user, &format!("/start {}", added.pair_code));
        let welcome = self.tg.wait_for_sent(&bot.token, user.id, 1, Duration::from_secs(10)).await.unwrap();
        assert!(welcome[0].text.contains("all set"), "{:?}", welcome[0].text);
        self.members.push(Member { id: added.id, name: name.to_owned(), bot, user });
        self.members.len() - 1
    }

    /// Member `i` writes `text` to their bot.
    pub fn say(&self, i: usize, text: &str) {
        let m = &self.members[i];
        self.tg.send_text(&m.bot.token, &m.user, text);
    }

    /// Everything member `i`'s bot sent them, once there are at least `n` messages.
    pub async fn replies(&self, i: usize, n: usize, timeout: Duration) -> Vec<SentMessage> {
        let m = &self.members[i];
        self.tg.wait_for_sent(&m.bot.token, m.user.id, n, timeout).await.unwrap_or_else(|e| panic!("{}: {e}", m.name))
    }

    /// Waits until the gateway has done all it will do about everything sent to it so far: every
    /// update confirmed (so committed), no inbox row still open, no lane busy or queued, no
    /// reminder occurrence undelivered. A reply is sent before its row is closed and a turn's
    /// lane is busy until it is answered, so a test can then assert that nothing more came —
    /// the event to wait for instead of a sleep.
    pub async fn settled(&self) {
        settled(&self.tg, self.dir.path(), async || self.gateway.status().await.unwrap()).await
    }

    pub async fn status(&self) -> StatusReport {
        self.gateway.status().await.unwrap()
    }

    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.dir.path().join("gateway.sqlite")).unwrap()
    }

    pub async fn stop(self) {
        self.gateway.shutdown(Duration::from_secs(5)).await;
    }
}

pub async fn set_provider(gateway: &Gateway, llm: &FakeLlm, kind: ProviderKind) {
    let reply = gateway
        .control(ControlRequest::ProviderSet {
            kind,
            base_url: llm.base_url(),
            model: "test-model".into(),
            api_key: "sk-test-key-never-logged".into(),
        })
        .await
        .unwrap();
    assert!(matches!(reply, ControlReply::ProviderSet(_)), "{reply:?}");
}

pub async fn add_member(gateway: &Gateway, tg: &FakeTelegram, name: &str) -> (MemberAdded, FakeBot) {
    let bot = tg.add_bot(&format!("{}_hearth_bot", name.to_lowercase()));
    let add = ControlRequest::MemberAdd { name: name.into(), bot_token: bot.token.clone(), role: Default::default() };
    let reply = gateway.control(add).await.unwrap();
    let ControlReply::MemberAdded(added) = reply else { panic!("{reply:?}") };
    (added, bot)
}

/// Polls `check` until it returns `Some`, or panics after `timeout` with `what`.
pub async fn eventually<T>(timeout: Duration, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// [`Household::settled`] for any gateway on `tg` with its data in `data_dir` — in this process
/// or a `hearth serve` child — whose status `status` reads.
pub async fn settled(tg: &FakeTelegram, data_dir: &Path, mut status: impl AsyncFnMut() -> StatusReport) {
    let db = rusqlite::Connection::open(data_dir.join("gateway.sqlite")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let unconfirmed = tg.unconfirmed_updates();
        let open: (i64, i64) = db
            .query_row(
                "SELECT (SELECT COUNT(*) FROM inbox WHERE state = 'pending'), \
                        (SELECT COUNT(*) FROM reminder_firings WHERE state = 'pending')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        let status = status().await;
        let busy: Vec<(&str, &LaneState)> =
            status.members.iter().filter(|m| m.lane != LaneState::Idle).map(|m| (m.name.as_str(), &m.lane)).collect();
        if unconfirmed.is_empty() && open == (0, 0) && busy.is_empty() && status.turns_in_flight == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway did not finish: unconfirmed updates {unconfirmed:?}, open inbox rows and reminder \
             firings {open:?}, busy lanes {busy:?}, {} turns in flight",
            status.turns_in_flight
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The status of the `hearth serve` child on `data_dir`, over its control socket; waits (bounded)
/// for one that is starting to answer.
pub async fn serve_status(data_dir: &Path) -> StatusReport {
    let start = Instant::now();
    loop {
        match hearth_gateway::control::request(data_dir, ControlRequest::Status).await {
            Ok(ControlReply::Status(status)) => return status,
            Ok(other) => panic!("status answered {other:?}"),
            Err(hearth_gateway::control::ClientError::NotRunning(_)) if start.elapsed() < Duration::from_secs(30) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}
