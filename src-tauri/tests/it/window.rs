//! End to end in the real window: a newcomer's first five minutes. The app binary runs under
//! Xvfb with `tauri-driver` + WebKitWebDriver; Telegram and the model are the testkit's fakes,
//! reached through `HEARTH_TELEGRAM_API_URL` and the base URL typed into the wizard. Every screen
//! is saved to `target/screenshots/` — a build folder, so a test run never changes a tracked
//! file; `scripts/refresh-screenshots` copies them to `assets/screenshots/` for the README.

use std::path::PathBuf;
use std::time::Duration;

use hearth_testkit::llm::{FakeLlm, Reply};
use hearth_testkit::telegram::FakeTelegram;

use crate::webdriver::Window;

/// `<target dir>/screenshots`: the test binary runs from `<target dir>/<profile>/deps/` (also
/// under another `CARGO_TARGET_DIR`, or `<target dir>/<triple>/` when cross-building).
fn shots() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let deps = exe.ancestors().find(|p| p.ends_with("deps")).expect("the test binary runs from a deps folder");
    deps.parent().and_then(|profile| profile.parent()).expect("a target folder above deps").join("screenshots")
}

/// The app's environment: a home of its own (launch at login writes there), the data folder,
/// and workers at isolation "process" — these tests are about the window, not OS accounts.
pub(crate) fn app_env(home: &std::path::Path, data: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("HOME", home.display().to_string()),
        ("XDG_CONFIG_HOME", home.join(".config").display().to_string()),
        ("HEARTH_DATA_DIR", data.display().to_string()),
        ("HEARTH_ISOLATION", "process".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_sets_up_a_household_and_a_member_gets_answers() {
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start().await;
    llm.set_latency(Duration::from_secs(3));
    llm.set_responder(|_| Reply::text("Photosynthesis is how plants turn light into food."));
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("hearth-data");
    let mut env = app_env(home.path(), &data);
    env.push(("HEARTH_TELEGRAM_API_URL", telegram.api_url()));
    let w = Window::open(std::path::Path::new(env!("CARGO_BIN_EXE_hearth-app")), &env, &shots()).await;

    // Welcome.
    w.tid("wizard-welcome").await;
    w.screenshot("01-welcome").await;
    w.click("start-setup").await;

    // The AI provider, tested live against the fake.
    w.tid("wizard-provider").await;
    w.click("provider-choice-openai").await;
    if !w.exists("[data-testid=\"provider-base-url\"]").await {
        w.click("provider-advanced").await;
    }
    w.fill("provider-base-url", &llm.base_url()).await;
    w.fill("provider-model", "gpt-4o-mini").await;
    w.fill("provider-key", "sk-test-key").await;
    w.click("provider-test").await;
    w.wait_text("[data-testid=\"provider-result\"]", 30, |t| t.contains("Connected")).await;
    w.screenshot("02-provider").await;
    w.click("wizard-next").await;

    // The household's budget.
    w.tid("wizard-budget").await;
    w.fill("household-cap", "30").await;
    w.screenshot("03-budget").await;
    w.click("wizard-next").await;

    // The first member, with a token checked live.
    w.tid("wizard-member").await;
    let bot = telegram.add_bot("ana_hearth_bot");
    w.fill("member-name", "Ana").await;
    w.fill("member-token", &bot.token).await;
    w.wait_text("[data-testid=\"bot-identity\"]", 20, |t| t.contains("@ana_hearth_bot")).await;
    // "Is this you?" starts ticked for the first member: Ana is the admin.
    assert!(w.is_checked("member-is-you").await, "the first member is asked to be the admin by default");
    w.screenshot("04-member").await;
    w.click("member-add").await;

    // Pairing: Ana's phone sends /start <code>; the screen sees it live.
    w.tid("wizard-pairing").await;
    w.tid("pair-qr").await;
    let code = w.text("pair-code").await.trim().to_owned();
    assert_eq!(code.len(), 8, "pairing code {code:?}");
    w.screenshot("05-pairing").await;
    let ana = telegram.user(4242, "Ana");
    telegram.send_text(&bot.token, &ana, &format!("/start {code}"));
    w.wait_text("[data-testid=\"pair-status\"]", 30, |t| t.contains("Connected to Ana's Telegram")).await;
    w.screenshot("06-paired").await;
    // The wizard made Ana the admin: the one asked about limits, as the Budget step promised.
    match hearth_gateway::control::request(&data, hearth_proto::control::ControlRequest::MemberList).await {
        Ok(hearth_proto::control::ControlReply::Members { members }) => {
            let ana = members.iter().find(|m| m.name == "Ana").expect("Ana is a member");
            assert!(ana.is_admin, "the wizard's first member is the admin: {ana:?}");
        }
        other => panic!("member list: {other:?}"),
    }
    w.click("wizard-finish").await;

    // Always on: launch at login is on, read back from the login item itself.
    w.tid("wizard-always-on").await;
    w.wait_text("[data-testid=\"always-on-login\"]", 20, |t| t.contains("opens by itself")).await;
    assert_eq!(w.attr("[data-testid=\"always-on-login\"]", "data-on").await.as_deref(), Some("true"));
    assert!(home.path().join(".config/autostart").read_dir().is_ok_and(|mut d| d.next().is_some()), "a login item was written");
    w.screenshot("27-always-on").await;
    w.click("always-on-next").await;

    // The finish line: Ana says hi from her phone and the screen shows her assistant answered.
    w.tid("wizard-done").await;
    w.wait_text("[data-step-heading]", 10, |t| t == "Say hi from Ana's phone").await;
    w.wait_text("[data-testid=\"first-answer\"]", 10, |t| t.contains("Waiting for Ana's first message")).await;
    w.screenshot("07-done").await;
    let before = telegram.sent_to(&bot.token, ana.id).len();
    telegram.send_text(&bot.token, &ana, "Hi!");
    telegram.wait_for_sent(&bot.token, ana.id, before + 1, Duration::from_secs(30)).await.expect("Ana's first answer");
    w.wait_text("[data-testid=\"first-answer\"]", 30, |t| t.contains("✓ Ana's assistant answered at")).await;
    w.screenshot("28-say-hi").await;
    w.click("open-dashboard").await;

    // The dashboard: Ana writes, her lane goes busy and back, her spend moves.
    w.tid("dashboard").await;
    let card = "[data-testid=\"member-card\"][data-member=\"Ana\"]";
    w.find(card).await;
    w.screenshot("08-dashboard").await;
    // The fake model listens on loopback, which Hearth prices as a free local model; an admin
    // price (here through the same control socket the CLI uses) makes each call cost something.
    let price = hearth_proto::control::ControlRequest::PriceSet {
        model: "gpt-4o-mini".into(),
        input_micros_per_mtok: 150_000_000,
        output_micros_per_mtok: 600_000_000,
        cached_input_micros_per_mtok: None,
        cache_write_micros_per_mtok: None,
    };
    hearth_gateway::control::request(&data, price).await.expect("set a price over the control socket");
    let before = telegram.sent_to(&bot.token, ana.id).len();
    telegram.send_text(&bot.token, &ana, "How does photosynthesis work?");
    let lane = format!("{card} [data-testid=\"lane-state\"]");
    w.wait_text(&lane, 20, |t| t.starts_with("Thinking")).await;
    w.screenshot("09-thinking").await;
    telegram.wait_for_sent(&bot.token, ana.id, before + 1, Duration::from_secs(30)).await.expect("Ana gets an answer");
    w.wait_text(&lane, 20, |t| t == "Idle").await;
    // The spend bar moves once the call is settled in the ledger (a repaint or two later).
    let bar = format!("{card} [data-testid=\"spend-today-bar\"]");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let spent = w.attr(&bar, "aria-valuenow").await.unwrap_or_default();
        if spent.parse::<f64>().unwrap_or(0.0) > 0.0 {
            break;
        }
        let card_text = w.text_of(&w.find(card).await).await;
        assert!(std::time::Instant::now() < deadline, "today's spend bar did not move: {spent:?}; the card shows {card_text:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    w.screenshot("10-answered").await;
    // A long answer the model writes slowly: Ana sees it appear in Telegram, her lane says
    // "Writing…" (the fake streams 12-character pieces, here one every 200 ms).
    llm.set_stream_chunk_delay(Duration::from_millis(200));
    llm.push_reply(Reply::text(
        "Plants catch sunlight in their leaves, take water up through their roots and carbon dioxide \
         from the air, and turn them into sugar for food and oxygen that they breathe out for us.",
    ));
    let before = telegram.sent_to(&bot.token, ana.id).len();
    telegram.send_text(&bot.token, &ana, "Tell me more, slowly.");
    w.wait_text(&lane, 30, |t| t.starts_with("Writing…")).await;
    w.screenshot("25-writing").await;
    telegram
        .wait_for_sent(&bot.token, ana.id, before + 1, Duration::from_secs(30))
        .await
        .expect("Ana gets the whole answer");
    assert!(
        telegram.drafts(&bot.token).iter().any(|d| d.text.starts_with("Plants catch")),
        "Ana saw it as it was written"
    );
    w.wait_text(&lane, 20, |t| t == "Idle").await;
    llm.set_stream_chunk_delay(Duration::ZERO);
    // A voice note: the lane says it is being heard (never what it says), then goes back to idle.
    telegram.send_voice(&bot.token, &ana, hearth_testkit::media::ogg_opus(4), 4);
    w.wait_text(&lane, 20, |t| t.starts_with("Listening…")).await;
    w.screenshot("20-listening").await;
    // Spoken to, Ana's assistant answers in voice (her default): the lane says it is recording.
    w.wait_text(&lane, 30, |t| t.starts_with("Recording a voice reply…")).await;
    w.screenshot("24-recording").await;
    w.wait_text(&lane, 60, |t| t == "Idle").await;
    // The month's tile now splits chat from voice notes heard and voice replies.
    w.wait_text("[data-testid=\"household-month-split\"]", 20, |t| t.contains("Voice notes heard") && t.contains("Voice replies")).await;
    w.screenshot("22-month-split").await;
    // Spend is an estimate from the price list, and every amount says so; the chart stacks
    // Ana's days on the month's real days, and from the 3rd a month-end projection appears.
    let today = format!("{card} [data-testid=\"spend-today\"]");
    w.wait_text(&today, 10, |t| t.starts_with("≈ US$") || t == "< US$0.01").await;
    w.wait_text("[data-testid=\"household-month\"]", 10, |t| t.starts_with("≈ US$")).await;
    w.find("[data-testid=\"spend-chart\"] rect[data-member]").await;
    w.wait_text("[data-testid=\"chart-legend\"]", 10, |t| t.contains("Ana")).await;
    let usage = match hearth_gateway::control::request(&data, hearth_proto::control::ControlRequest::Usage { month: None }).await {
        Ok(hearth_proto::control::ControlReply::Usage(u)) => u,
        other => panic!("usage over the control socket: {other:?}"),
    };
    let zone = hearth_gateway::spend::period::parse_timezone(&usage.timezone).expect("the household's zone");
    let day = hearth_gateway::spend::period::period_at(
        hearth_gateway::spend::period::PeriodKind::Day,
        zone,
        hearth_gateway::clock::Clock::system().now(),
    )
    .key;
    assert!(usage.members.iter().any(|m| m.name == "Ana" && m.days.iter().any(|d| d.date == day && d.messages > 0)));
    let projection = "[data-testid=\"household-projection\"]";
    if day[8..].parse::<u32>().unwrap_or(0) >= 3 {
        w.wait_text(projection, 10, |t| t.starts_with("On pace for ≈ US$")).await;
    } else {
        assert!(!w.exists(projection).await, "no projection before the 3rd ({day})");
    }
    w.screenshot("31-spend").await;

    // Pause every bot: Ana's next message gets the paused note, not the model.
    let calls = llm.calls().len();
    w.click("pause-all").await;
    w.find(&format!("{card} [data-testid=\"paused-badge\"]")).await;
    let before = telegram.sent_to(&bot.token, ana.id).len();
    telegram.send_text(&bot.token, &ana, "Are you there?");
    let sent = telegram.wait_for_sent(&bot.token, ana.id, before + 1, Duration::from_secs(30)).await.expect("a paused note");
    assert!(sent.last().unwrap().current_text().contains("paused"), "{:?}", sent.last().unwrap().current_text());
    // The message is closed once handled (the note is sent first): all the gateway does with it.
    let db = rusqlite::Connection::open(data.join("gateway.sqlite")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while db.query_row("SELECT COUNT(*) FROM inbox WHERE state = 'pending'", [], |r| r.get::<_, i64>(0)).unwrap() > 0 {
        assert!(std::time::Instant::now() < deadline, "the paused message was never closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(llm.calls().len(), calls, "a paused bot must not reach the model");
    // Every assistant paused is amber, not "all is well", and says since when, with Resume.
    w.wait_text("[data-testid=\"headline\"]", 10, |t| t.starts_with("All assistants paused since ")).await;
    assert_eq!(w.attr("[data-testid=\"health\"]", "data-health").await.as_deref(), Some("attention"));
    assert_eq!(w.text("headline-fix").await, "Resume");
    w.wait_text(&format!("{card} [data-testid=\"member-status\"]"), 10, |t| t == "Paused by you").await;
    w.screenshot("11-paused").await;

    // The other screens, for the README.
    w.click("nav-members").await;
    let row = w.find("[data-testid=\"members-row\"][data-member=\"Ana\"]").await;
    w.screenshot("12-members").await;
    w.click_el(&row, "Ana's row").await;
    w.tid("member-page").await;
    w.tid("member-persona").await;
    w.screenshot("14-member-page").await;
    // Ana's assistant answers every message in voice from now on.
    w.click("member-voice-always").await;
    w.click("member-save").await;
    w.wait_text("[data-testid=\"member-saved\"]", 20, |t| t.contains("Saved")).await;
    w.script_scroll("[data-testid=\"member-voice\"]").await;
    w.screenshot("18-member-voice").await;
    // Replies shown as they are written: on for Ana, as for everyone unless turned off.
    w.script_scroll("[data-testid=\"member-streaming\"]").await;
    assert_eq!(w.attr("[data-testid=\"member-streaming\"]", "role").await.as_deref(), Some("switch"));
    w.wait_text("[data-testid=\"member-streaming-hint\"]", 10, |t| t.contains("while it is written")).await;
    w.screenshot("26-member-streaming").await;
    w.click("nav-settings").await;
    w.tid("settings-page").await;
    w.screenshot("13-settings").await;
    // Voice notes are heard by the provider's own service: its Test says what it heard.
    llm.set_transcript("Hello from Hearth");
    w.tid("speech-in-test").await;
    w.script_scroll("[data-testid=\"voice-panel\"]").await;
    w.click("speech-in-test").await;
    w.wait_text("[data-testid=\"speech-in-result\"]", 30, |t| t.contains("heard “Hello from Hearth”")).await;
    w.screenshot("19-voice").await;
    // A service of the household's own for voice replies: the form starts from the one in use.
    w.click("speech-out-edit").await;
    w.wait_text("[data-testid=\"speech-out\"]", 10, |t| t.contains("Voice name")).await;
    w.script_scroll("[data-testid=\"speech-out\"]").await;
    w.screenshot("23-voice-own-service").await;
    // The rate card prices a speech model by the minute, not as a $0 chat model.
    let whisper = "[data-testid=\"price-row\"][data-model=\"whisper-1\"]";
    w.wait_text(whisper, 10, |t| t.contains("per minute of audio")).await;
    w.script_scroll(whisper).await;
    w.screenshot("21-speech-prices").await;
    // A backup made from Settings while the household is served.
    w.fill("backup-dir", &home.path().join("backups").display().to_string()).await;
    w.click("backup-now").await;
    w.wait_text("[data-testid=\"backup-result\"]", 30, |t| t.contains("Saved 1 member")).await;
    assert!(std::fs::read_dir(home.path().join("backups")).unwrap().flatten().any(|e| {
        e.file_name().to_string_lossy().starts_with("hearth-backup-") && e.path().join("manifest.json").exists()
    }));
    w.script_scroll("[data-testid=\"backups\"]").await;
    w.screenshot("17-backups").await;
    // The closet-box steps (Linux here): a command copies, or is selected when the webview has
    // no clipboard to give.
    w.tid("appliance").await;
    w.click("appliance-sleep-command-copy").await;
    w.wait_text("[data-testid=\"appliance-sleep\"]", 5, |t| t.contains("✓ Copied") || t.contains("Selected")).await;
    w.screenshot("16-appliance").await;
    drop(w);
    telegram.shutdown();
    llm.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_household_comes_alive_and_leaves_no_trace() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("hearth-data");
    let env = app_env(home.path(), &data);
    let w = Window::open(std::path::Path::new(env!("CARGO_BIN_EXE_hearth-app")), &env, &shots()).await;
    w.tid("wizard-welcome").await;
    w.click("try-demo").await;
    w.tid("demo-banner").await;
    // Four simulated people pair with their bots and start asking; someone is soon thinking.
    for name in ["Rosa", "Leo", "Sam", "Mia"] {
        w.find(&format!("[data-testid=\"member-card\"][data-member=\"{name}\"]")).await;
    }
    w.wait_text("[data-testid=\"member-card\"] [data-testid=\"lane-state\"]", 30, |_| true).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut busy = false;
        for name in ["Rosa", "Leo", "Sam", "Mia"] {
            let lane = format!("[data-testid=\"member-card\"][data-member=\"{name}\"] [data-testid=\"lane-state\"]");
            busy |= w.text_of(&w.find(&lane).await).await.starts_with("Thinking");
        }
        if busy {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "nobody in the demo household ever got an answer going");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    w.screenshot("00-demo").await;
    w.click("leave-demo").await;
    w.tid("wizard-welcome").await;
    drop(w);
    // The real data folder holds no demo member.
    let db = real_member_count(&data);
    assert_eq!(db, 0, "the demo wrote into the real household");
}

/// How many members the real household has, asked of a gateway started on its folder.
fn real_member_count(data: &std::path::Path) -> usize {
    // The app has quit, so start a gateway on the folder just long enough to ask.
    let rt = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| {
        rt.block_on(async {
            let mut config = hearth_gateway::GatewayConfig::new(data.to_owned(), env!("CARGO_BIN_EXE_hearth-app").into());
            config.isolation = hearth_gateway::IsolationChoice::Process;
            config.control_socket = false;
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            let gw = loop {
                match hearth_gateway::Gateway::start(config.clone()).await {
                    Ok(gw) => break gw,
                    Err(e) if std::time::Instant::now() > deadline => panic!("the app never let go of its data folder: {e:#}"),
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            };
            let n = gw.status().await.unwrap().members.len();
            gw.shutdown(Duration::from_secs(2)).await;
            n
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_gateway_on_the_folder_is_named_and_the_app_recovers() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("hearth-data");
    // `hearth serve` (here: the same engine, in this test) already serves the folder.
    let mut config = hearth_gateway::GatewayConfig::new(data.clone(), env!("CARGO_BIN_EXE_hearth-app").into());
    config.isolation = hearth_gateway::IsolationChoice::Process;
    config.control_socket = false;
    let serve = hearth_gateway::Gateway::start(config).await.unwrap();
    let w = Window::open(std::path::Path::new(env!("CARGO_BIN_EXE_hearth-app")), &app_env(home.path(), &data), &shots()).await;
    w.tid("stopped").await;
    let text = w.text("stopped").await;
    assert!(text.contains("already serving"), "{text}");
    w.screenshot("15-already-serving").await;
    // Once the other one stops, "Try again" brings the app up.
    serve.shutdown(Duration::from_secs(2)).await;
    drop(serve);
    w.click("retry-start").await;
    w.tid("wizard-welcome").await;
}

/// A nearly full disk (said by `HEARTH_TEST_DISK_USED_PCT`: a test cannot fill a real one) turns
/// the dashboard amber and heads it, and the host's load is in Settings → Advanced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nearly_full_disk_turns_the_dashboard_amber() {
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start().await;
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("hearth-data");
    // A household set up before (here by the engine itself): a provider and a paired member.
    let bot = telegram.add_bot("ana_hearth_bot");
    {
        let mut config = hearth_gateway::GatewayConfig::new(data.clone(), env!("CARGO_BIN_EXE_hearth-app").into());
        config.isolation = hearth_gateway::IsolationChoice::Process;
        config.control_socket = false;
        config.telegram_api_url = Some(telegram.api_url());
        let gw = hearth_gateway::Gateway::start(config).await.unwrap();
        use hearth_proto::control::{ControlReply, ControlRequest, ProviderKind, Role};
        let provider = ControlRequest::ProviderSet {
            kind: ProviderKind::Openai,
            base_url: llm.base_url(),
            model: "gpt-4o-mini".into(),
            api_key: "sk-test".into(),
        };
        gw.control(provider).await.expect("set the provider");
        let add = ControlRequest::MemberAdd { name: "Ana".into(), bot_token: bot.token.clone(), role: Role::Adult };
        let Ok(ControlReply::MemberAdded(added)) = gw.control(add).await else { panic!("add Ana") };
        let ana = telegram.user(4242, "Ana");
        telegram.send_text(&bot.token, &ana, &format!("/start {}", added.pair_code));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !gw.status().await.unwrap().members[0].paired {
            assert!(std::time::Instant::now() < deadline, "Ana never paired");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        gw.shutdown(Duration::from_secs(2)).await;
    }
    let mut env = app_env(home.path(), &data);
    env.push(("HEARTH_TELEGRAM_API_URL", telegram.api_url()));
    env.push(("HEARTH_TEST_DISK_USED_PCT", "91".to_owned()));
    let w = Window::open(std::path::Path::new(env!("CARGO_BIN_EXE_hearth-app")), &env, &shots()).await;
    w.tid("dashboard").await;
    let headline = w
        .wait_text("[data-testid=\"headline\"]", 20, |t| t.starts_with("This computer's disk is 91 % full"))
        .await;
    assert!(headline.contains("free some space"), "{headline}");
    assert_eq!(w.attr("[data-testid=\"health\"]", "data-health").await.as_deref(), Some("attention"));
    w.wait_text("[data-testid=\"member-card\"][data-member=\"Ana\"] [data-testid=\"member-status\"]", 10, |t| t == "Ready").await;
    w.screenshot("29-disk-full").await;
    // The load and capacity live in Settings → Advanced now.
    assert!(!w.exists("[data-testid=\"turns\"]").await, "no capacity tile on the dashboard");
    w.click("nav-settings").await;
    w.tid("advanced").await;
    w.script_scroll("[data-testid=\"advanced\"]").await;
    w.click_el(&w.find("[data-testid=\"advanced\"] summary").await, "Advanced").await;
    w.wait_text("[data-testid=\"host-load\"]", 10, |t| t.contains("disk 91 % used")).await;
    w.script_scroll("[data-testid=\"advanced\"]").await;
    w.screenshot("30-advanced").await;
    drop(w);
    telegram.shutdown();
    llm.shutdown();
}
