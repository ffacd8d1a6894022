//! Every command through Tauri's real IPC path on the mock runtime, against a real gateway on a
//! temporary data folder with the fake Telegram and fake model: what the wizard, the dashboard,
//! the member page and the settings screen call, and how each says no.

use std::sync::Arc;
use std::time::Duration;

use hearth_app::ipc::*;
use hearth_app::{Options, Shell};
use hearth_gateway::IsolationChoice;
use hearth_testkit::llm::{FakeLlm, Reply};
use hearth_testkit::telegram::FakeTelegram;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tauri::test::{INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder, mock_context, noop_assets};
use tauri::webview::InvokeRequest;

struct App {
    rt: tokio::runtime::Runtime,
    _app: tauri::App<MockRuntime>,
    webview: tauri::WebviewWindow<MockRuntime>,
    telegram: FakeTelegram,
    llm: FakeLlm,
    shell: Arc<Shell>,
    data: tempfile::TempDir,
}

impl App {
    fn start() -> App {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        tauri::async_runtime::set(rt.handle().clone());
        let data = tempfile::tempdir().unwrap();
        let (telegram, llm) = rt.block_on(async { (FakeTelegram::start().await, FakeLlm::start().await) });
        llm.set_responder(|_| Reply::text("ready"));
        let options = Options {
            data_dir: data.path().join("hearth"),
            telegram_api_url: Some(telegram.api_url()),
            isolation: IsolationChoice::Process,
            supervisor_socket: None,
            worker_exe: env!("CARGO_BIN_EXE_hearth-app").into(),
            disk_used_pct: None,
        };
        let shell = Arc::new(Shell::new(options));
        let info = rt.block_on(shell.start());
        assert_eq!(info.phase, Phase::Setup, "{info:?}");
        let app = hearth_app::build(mock_builder(), shell.clone())
            .plugin(tauri_plugin_autostart::Builder::new().build())
            .build(mock_context(noop_assets()))
            .unwrap();
        let webview = tauri::WebviewWindowBuilder::new(&app, "main", Default::default()).build().unwrap();
        App { rt, _app: app, webview, telegram, llm, shell, data }
    }

    fn call(&self, cmd: &str, args: Option<Value>) -> Result<Value, IpcErr> {
        let body = match args {
            Some(a) => json!({ "args": a }),
            None => json!({}),
        };
        let request = InvokeRequest {
            cmd: cmd.into(),
            callback: tauri::ipc::CallbackFn(0),
            error: tauri::ipc::CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: tauri::ipc::InvokeBody::Json(body),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        };
        match get_ipc_response(&self.webview, request) {
            Ok(body) => Ok(body.deserialize::<Value>().unwrap()),
            Err(e) => Err(serde_json::from_value(e.clone()).unwrap_or_else(|_| panic!("{cmd}: not an IpcError: {e}"))),
        }
    }

    fn ok<T: DeserializeOwned>(&self, cmd: &str, args: Option<Value>) -> T {
        let v = self.call(cmd, args).unwrap_or_else(|e| panic!("{cmd} failed: {e:?}"));
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{cmd} returned {v}: {e}"))
    }

    fn err(&self, cmd: &str, args: Option<Value>) -> IpcErr {
        match self.call(cmd, args) {
            Ok(v) => panic!("{cmd} should have failed, got {v}"),
            Err(e) => e,
        }
    }

    fn snapshot(&self) -> Value {
        self.ok("snapshot", None)
    }

    fn wait(&self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.snapshot();
            if ok(&s) {
                return s;
            }
            assert!(std::time::Instant::now() < deadline, "never saw {what}: {s:#}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.rt.block_on(self.shell.stop());
        self.telegram.shutdown();
        self.llm.shutdown();
    }
}

/// The error shape the window receives.
#[derive(Debug, serde::Deserialize)]
struct IpcErr {
    code: String,
    message: String,
}

#[test]
fn the_wizard_path_through_commands() {
    let app = App::start();
    let info: Value = app.ok("app_info", None);
    assert_eq!(info["phase"], "setup");

    // Provider: a live test, then a wrong key in plain words, then saved.
    let provider = json!({ "kind": "openai", "base_url": app.llm.base_url(), "model": "gpt-4o-mini", "api_key": "sk-test" });
    let tested: Value = app.ok("provider_test", Some(provider.clone()));
    assert_eq!(tested["reply"], "ready");
    app.llm.require_api_key("sk-test");
    let mut wrong = provider.clone();
    wrong["api_key"] = json!("sk-wrong");
    let e = app.err("provider_test", Some(wrong));
    assert_eq!(e.code, "rejected");
    assert!(e.message.contains("API key"), "{}", e.message);
    let saved: Value = app.ok("provider_set", Some(provider));
    assert_eq!(saved["model"], "gpt-4o-mini");

    // Budget, and a limit that cannot be one.
    let _: Value = app.ok("household_set", Some(json!({ "monthly_cap_usd": 30.0, "timezone": "Europe/London" })));
    let e = app.err("household_set", Some(json!({ "monthly_cap_usd": -5.0 })));
    assert_eq!(e.code, "invalid_input");

    // A token checked live, a bad one refused, the member added with a QR code.
    let bot = app.telegram.add_bot("ana_hearth_bot");
    let who: BotIdentity = app.ok("bot_check", Some(json!({ "token": bot.token })));
    assert_eq!(who.bot_username, "ana_hearth_bot");
    let e = app.err("bot_check", Some(json!({ "token": "123456:not-a-real-token" })));
    assert!(e.code == "rejected" || e.code == "invalid_input", "{e:?}");
    assert!(!e.message.is_empty());
    // The wizard's "Is this you?": the first member is the admin, asked about limits.
    let pairing: Value = app.ok("member_add", Some(json!({ "name": "Ana", "role": "teen", "token": bot.token, "admin": true })));
    let code = pairing["code"].as_str().unwrap().to_owned();
    let members: Vec<Value> = app.ok("member_list", None);
    assert_eq!((members[0]["name"].as_str(), members[0]["is_admin"].as_bool()), (Some("Ana"), Some(true)));
    assert!(pairing["qr_svg"].as_str().unwrap().contains("<svg"));
    assert!(pairing["link"].as_str().unwrap().ends_with(&code));
    let s = app.snapshot();
    assert_eq!(s["members"][0]["paired"], false);
    assert_eq!(s["members"][0]["role"], "teen");

    // Ana's phone sends /start <code>; the snapshot sees it.
    let ana = app.telegram.user(4242, "Ana");
    app.telegram.send_text(&bot.token, &ana, &format!("/start {code}"));
    app.wait("Ana paired", |s| s["members"][0]["paired"] == true);
    let info: Value = app.ok("finish_setup", None);
    assert_eq!(info["phase"], "serving");
    // Setup survives a restart of the app.
    assert!(hearth_app::settings::load(&app.data.path().join("hearth")).unwrap().setup_complete);
}

#[derive(Debug, serde::Deserialize)]
struct BotIdentity {
    bot_username: String,
}

#[test]
fn the_member_page_and_settings_through_commands() {
    let app = App::start();
    let provider = json!({ "kind": "openai", "base_url": app.llm.base_url(), "model": "gpt-4o-mini", "api_key": "sk-test" });
    let _: Value = app.ok("provider_set", Some(provider));
    let bot = app.telegram.add_bot("ben_hearth_bot");
    let pairing: Value = app.ok("member_add", Some(json!({ "name": "Ben", "role": "adult", "token": bot.token })));
    let id = pairing["member_id"].as_str().unwrap().to_owned();

    let m: Value = app.ok("member_update", Some(json!({ "member": id, "persona": "Loves trains.", "role": "child", "is_admin": true })));
    assert_eq!((m["persona"].as_str(), m["role"].as_str(), m["is_admin"].as_bool()), (Some("Loves trains."), Some("child"), Some(true)));
    // A child gets quiet hours by default; the admin changes or clears them.
    assert_eq!(m["quiet_hours"], "20:00-07:00", "{m}");
    let m: Value = app.ok("member_update", Some(json!({ "member": id, "quiet_hours": "21:30-06:45" })));
    assert_eq!(m["quiet_hours"], "21:30-06:45");
    let e = app.err("member_update", Some(json!({ "member": id, "quiet_hours": "bedtime" })));
    assert_eq!(e.code, "invalid_input");
    assert!(e.message.contains("20:00-07:00"), "{}", e.message);
    let m: Value = app.ok("member_update", Some(json!({ "member": id, "quiet_hours": "" })));
    assert!(m["quiet_hours"].is_null(), "{m}");
    let m: Value = app.ok("member_caps", Some(json!({ "member": id, "daily_usd": 0.5, "monthly_usd": 5.0 })));
    assert_eq!((m["daily_cap_usd"].as_f64(), m["monthly_cap_usd"].as_f64()), (Some(0.5), Some(5.0)));
    let fresh: Value = app.ok("member_pair", Some(json!({ "member": id })));
    assert_ne!(fresh["code"], pairing["code"]);
    assert!(fresh["expires_at"].is_string());

    let _: Value = app.ok("member_pause", Some(json!({ "paused": true })));
    let s = app.wait("everyone paused", |s| s["all_paused"] == true);
    assert_eq!(s["members"][0]["paused"], true);
    // Every assistant paused is amber, headed by the pause, with Resume as its fix.
    assert_eq!((s["health"].as_str(), s["problems"][0]["fix"].as_str()), (Some("attention"), Some("resume_all")), "{s}");
    let _: Value = app.ok("member_pause", Some(json!({ "member": id, "paused": false })));
    app.wait("Ben resumed", |s| s["members"][0]["paused"] == false);

    let export: Value = app.ok("member_export", Some(json!({ "member": id, "dest_dir": app.data.path().display().to_string() })));
    assert!(std::path::Path::new(export["path"].as_str().unwrap()).is_dir(), "{export}");

    let settings: Value = app.ok("settings_set", Some(json!({ "turn_cap": 3, "keep_awake": false })));
    assert_eq!(settings["turn_cap"], 3);
    assert_eq!(settings["keep_awake"]["enabled"], false);
    // The core loop applies the new cap; the next snapshots show it.
    app.wait("the new turn cap", |s| s["turn_cap"] == 3);
    let e = app.err("settings_set", Some(json!({ "turn_cap": 0 })));
    assert_eq!(e.code, "invalid_input");

    let prices: Vec<Value> = app.ok("price_set", Some(json!({ "model": "family-model", "input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0 })));
    assert!(prices.iter().any(|p| p["model"] == "family-model" && p["source"] == "admin"));

    let _: Value = app.ok("member_remove", Some(json!({ "member": id })));
    let e = app.err("member_pair", Some(json!({ "member": id })));
    assert_eq!(e.code, "not_found");
    assert_eq!(app.snapshot()["members"].as_array().unwrap().len(), 0);
}

/// Settings → Voice, a member's "Answer in voice" and the speech rows of the rate card, against
/// the real gateway: the chat provider's own services by default, each tested on the fake model,
/// an own service whose key never comes back, a direction turned off, and prices per minute and
/// per million characters.
#[test]
fn voice_settings_a_members_choice_and_speech_prices_through_commands() {
    let app = App::start();
    let provider = json!({ "kind": "openai", "base_url": app.llm.base_url(), "model": "gpt-4o-mini", "api_key": "sk-test" });
    let _: Value = app.ok("provider_set", Some(provider));

    let v: Value = app.ok("voice_settings", None);
    assert_eq!(
        (v["hearing"]["source"].as_str(), v["hearing"]["model"].as_str()),
        (Some("chat_provider"), Some("whisper-1")),
        "{v}"
    );
    assert_eq!(v["hearing"]["direction"], "in");
    assert_eq!(
        (v["speaking"]["source"].as_str(), v["speaking"]["model"].as_str()),
        (Some("chat_provider"), Some("tts-1")),
        "{v}"
    );
    assert_eq!(v["speaking"]["voice"], "alloy");

    // Each Test goes to the service in force and says what it found.
    app.llm.set_transcript("Hello from Hearth");
    let heard: Value = app.ok("speech_test", Some(json!({ "direction": "in" })));
    assert_eq!(
        (heard["model"].as_str(), heard["heard"].as_str()),
        (Some("whisper-1"), Some("Hello from Hearth")),
        "{heard}"
    );
    let spoken: Value = app.ok("speech_test", Some(json!({ "direction": "out" })));
    assert!(spoken["audio_bytes"].as_u64().is_some_and(|b| b > 0), "{spoken}");
    assert!(!app.llm.speeches().is_empty() && !app.llm.transcriptions().is_empty());

    // An own voice service: shown back without its key, and used by the next test.
    let set = json!({ "direction": "out", "base_url": app.llm.base_url(), "model": "tts-1-hd", "voice": "nova", "api_key": "sk-voice-secret" });
    let own: Value = app.ok("speech_service_set", Some(set));
    assert_eq!(
        (own["source"].as_str(), own["model"].as_str(), own["voice"].as_str()),
        (Some("own"), Some("tts-1-hd"), Some("nova")),
        "{own}"
    );
    let v: Value = app.ok("voice_settings", None);
    assert!(!v.to_string().contains("sk-voice-secret"), "{v}");
    let _: Value = app.ok("speech_test", Some(json!({ "direction": "out" })));
    let last = app.llm.speeches().pop().unwrap();
    assert_eq!(
        (last.model.as_str(), last.voice.as_str(), last.api_key.as_deref()),
        ("tts-1-hd", "nova", Some("sk-voice-secret"))
    );

    // Hearing turned off: shown so, and its Test says why in words.
    let off: Value = app.ok("speech_service_off", Some(json!({ "direction": "in" })));
    assert_eq!(off["source"], "off");
    let e = app.err("speech_test", Some(json!({ "direction": "in" })));
    assert!(!e.message.is_empty() && !e.message.contains("sk-"), "{e:?}");
    app.llm.fail_speech(Some(401));
    let e = app.err("speech_test", Some(json!({ "direction": "out" })));
    assert_eq!(e.code, "rejected", "{e:?}");
    app.llm.fail_speech(None);

    // A member's choice, shown with the member.
    let bot = app.telegram.add_bot("sam_hearth_bot");
    let pairing: Value = app.ok("member_add", Some(json!({ "name": "Sam", "role": "adult", "token": bot.token })));
    let id = pairing["member_id"].as_str().unwrap().to_owned();
    let members: Vec<Value> = app.ok("member_list", None);
    assert_eq!(members[0]["voice_replies"], "when_spoken");
    let m: Value = app.ok("member_voice", Some(json!({ "member": id, "voice_replies": "always" })));
    assert_eq!(m["voice_replies"], "always");
    let m: Value = app.ok("member_voice", Some(json!({ "member": "Sam", "voice_replies": "never" })));
    assert_eq!(m["voice_replies"], "never");
    let e = app.err("member_voice", Some(json!({ "member": "Nobody", "voice_replies": "always" })));
    assert_eq!(e.code, "not_found");

    // Speech prices: per minute heard, per million characters spoken.
    let prices: Vec<Value> =
        app.ok("speech_price_set", Some(json!({ "model": "whisper-1", "direction": "in", "usd": 0.004 })));
    let whisper = prices.iter().find(|p| p["model"] == "whisper-1").unwrap();
    assert_eq!(
        (whisper["usd_per_minute"].as_f64(), whisper["source"].as_str()),
        (Some(0.004), Some("admin")),
        "{whisper}"
    );
    let prices: Vec<Value> =
        app.ok("speech_price_set", Some(json!({ "model": "tts-1-hd", "direction": "out", "usd": 30.0 })));
    let tts = prices.iter().find(|p| p["model"] == "tts-1-hd").unwrap();
    assert_eq!(tts["usd_per_million_chars"].as_f64(), Some(30.0), "{tts}");
    assert!(tts["usd_per_minute"].is_null(), "{tts}");
    let e = app.err("speech_price_set", Some(json!({ "model": "whisper-1", "direction": "in", "usd": -1.0 })));
    assert_eq!(e.code, "invalid_input");
}

/// The macOS supervisor's commands say plainly that Linux has none to register, and a restart
/// (how an allowed supervisor takes effect) brings the same household back.
/// A member's "Show replies as they are written", against the real gateway: on by default, saved
/// by id or name, and followed by the turn path — drafts in the member's chat only while it is on.
#[test]
fn a_members_streaming_switch_through_commands() {
    let app = App::start();
    let provider = json!({ "kind": "openai", "base_url": app.llm.base_url(), "model": "gpt-4o-mini", "api_key": "sk-test" });
    let _: Value = app.ok("provider_set", Some(provider));
    let bot = app.telegram.add_bot("mia_hearth_bot");
    let pairing: Value = app.ok("member_add", Some(json!({ "name": "Mia", "role": "adult", "token": bot.token })));
    let id = pairing["member_id"].as_str().unwrap().to_owned();
    let members: Vec<Value> = app.ok("member_list", None);
    assert_eq!(members[0]["streaming"], true, "on unless turned off");
    let mia = app.telegram.user(5151, "Mia");
    app.telegram.send_text(&bot.token, &mia, &format!("/start {}", pairing["code"].as_str().unwrap()));
    app.wait("Mia paired", |s| s["members"][0]["paired"] == true);

    // The fake model writes in small pieces, so a streamed answer shows drafts.
    app.llm.set_stream_chunk_delay(Duration::from_millis(60));
    const ANSWER: &str = "A steady answer of a few words, written in small pieces for Mia.";
    app.llm.set_responder(|_| Reply::text(ANSWER));
    let answered = |n: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while app.telegram.sent(&bot.token).iter().filter(|m| m.text == ANSWER).count() < n {
            assert!(std::time::Instant::now() < deadline, "no answer: {:?}", app.telegram.sent(&bot.token));
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let drafted = || app.telegram.drafts(&bot.token).iter().filter(|d| !d.text.is_empty()).count();

    let m: Value = app.ok("member_streaming", Some(json!({ "member": id, "streaming": false })));
    assert_eq!(m["streaming"], false, "{m}");
    app.telegram.send_text(&bot.token, &mia, "how are the roses?");
    answered(1);
    assert_eq!(drafted(), 0, "no draft while the switch is off");

    let m: Value = app.ok("member_streaming", Some(json!({ "member": "mia", "streaming": true })));
    assert_eq!(m["streaming"], true, "{m}");
    app.telegram.send_text(&bot.token, &mia, "and the mint?");
    answered(2);
    assert!(drafted() >= 1, "the answer was shown while it was written");
    let members: Vec<Value> = app.ok("member_list", None);
    assert_eq!(members[0]["streaming"], true);

    let e = app.err("member_streaming", Some(json!({ "member": "Nobody", "streaming": false })));
    assert_eq!(e.code, "not_found", "{e:?}");
}

#[test]
fn the_supervisor_commands_and_a_restart() {
    let app = App::start();
    let settings: Value = app.ok("settings", None);
    assert!(settings["daemon"].is_null(), "no LaunchDaemon off macOS: {settings}");
    for cmd in ["daemon_register", "daemon_open_settings"] {
        let e = app.err(cmd, None);
        assert_eq!(e.code, "invalid_input", "{cmd}");
        assert!(e.message.contains("Only the Mac app") && e.message.contains("hearth-server"), "{}", e.message);
    }

    let provider =
        json!({ "kind": "openai", "base_url": app.llm.base_url(), "model": "gpt-4o-mini", "api_key": "sk-test" });
    let _: Value = app.ok("provider_set", Some(provider));
    let bot = app.telegram.add_bot("cleo_hearth_bot");
    let _: Value = app.ok("member_add", Some(json!({ "name": "Cleo", "role": "adult", "token": bot.token })));
    let info: Value = app.ok("restart", None);
    // A household with a provider and a member needs no wizard after a start.
    assert_eq!(info["phase"], "serving", "{info}");
    assert!(info["problem"].is_null(), "{info}");
    let s = app.wait("Cleo after the restart", |s| s["members"].as_array().is_some_and(|m| m.len() == 1));
    assert_eq!(s["members"][0]["name"], "Cleo");
}

#[test]
fn a_second_gateway_on_the_same_folder_is_told_clearly() {
    let app = App::start();
    let second = Shell::new(app.shell.options.clone());
    let info = app.rt.block_on(second.start());
    assert_eq!(info.phase, Phase::Stopped);
    let problem = info.problem.unwrap();
    assert!(problem.contains("already serving") && problem.contains("Try again"), "{problem}");
}

#[test]
fn the_demo_household_runs_beside_and_leaves_nothing() {
    let app = App::start();
    let info: Value = app.ok("start_demo", None);
    assert_eq!(info["phase"], "demo");
    let s = app.wait("four paired demo members", |s| {
        s["members"].as_array().is_some_and(|m| m.len() == 4 && m.iter().all(|m| m["paired"] == true))
    });
    assert_eq!(s["phase"], "demo");
    let info: Value = app.ok("leave_demo", None);
    assert_eq!(info["phase"], "setup");
    assert_eq!(app.snapshot()["members"].as_array().unwrap().len(), 0, "the real household is untouched");
}
