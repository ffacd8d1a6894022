//! Voice notes and images through the broker, against the testkit's fake model and speech
//! service: a transcription is reserved per audio minute before the call and settled per second
//! after it, caps hold with a hundred in flight, refusals are told apart and cost nothing; a
//! model that cannot see is refused before any call or when the provider says so; the speech
//! setting survives a restart and never shows its key.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hearth_gateway::broker::speech::{SpeechEndpoint, SpeechSetting, TranscribeError};
use hearth_gateway::broker::{self, Broker, SpendEvent};
use hearth_gateway::spend::{self, Scope};
use hearth_gateway::store::{self, Store};
use hearth_gateway::{Gateway, GatewayConfig, IsolationChoice};
use hearth_llm::{ApiKey, CallLimits, RetryPolicy};
use hearth_proto::control::{ControlReply, ControlRequest, ProviderKind, SpeechSource, SpeechSummary};
use hearth_proto::llm::{BrokerErrorKind, ChatMessage, CompletionRequest, ImageSource};
use hearth_testkit::llm::FakeLlm;
use hearth_testkit::telegram::FakeTelegram;
use tokio::sync::mpsc;

/// whisper-1's shipped price, set by the admin here: the fake listens on loopback, where an
/// unpriced model would be free.
const PER_MINUTE: u64 = 6_000;

pub(crate) struct Rig {
    _dir: tempfile::TempDir,
    pub(crate) store: Store,
    pub(crate) broker: Broker,
    pub(crate) llm: FakeLlm,
    pub(crate) events: mpsc::UnboundedReceiver<SpendEvent>,
}

/// A broker on its own database, its chat provider of `kind` on the fake (with a price), and
/// whisper-1 priced.
pub(crate) async fn rig(kind: ProviderKind) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("g.sqlite")).unwrap();
    let spend = store
        .call_sync(|c| {
            let price = store::StoredPrice {
                model: "test-model".into(),
                input: 1_000_000,
                output: 1_000_000,
                cached_input: 1_000_000,
                cache_write: None,
            };
            store::set_price(c, &price, 0)?;
            store::set_setting(c, "price.per_minute.whisper-1", &PER_MINUTE.to_string())?;
            broker::load_spend(c, chrono::Utc::now())
        })
        .unwrap();
    let llm = FakeLlm::start().await;
    let (tx, events) = mpsc::unbounded_channel();
    let limits = CallLimits {
        connect: Duration::from_secs(5),
        first_byte: Duration::from_secs(20),
        idle: Duration::from_secs(20),
        total: Duration::from_secs(30),
    };
    let retry = RetryPolicy { max_attempts: 1, ..RetryPolicy::default() };
    let broker = Broker::new(reqwest::Client::new(), store.clone(), limits, retry, false, spend, tx);
    broker.set_provider(Some(broker::provider_from(kind, llm.base_url(), "test-model".into(), "k".into())));
    Rig { _dir: dir, store, broker, llm, events }
}

fn own_service(llm: &FakeLlm, model: &str) -> SpeechSetting {
    SpeechSetting::Own(SpeechEndpoint {
        base_url: llm.base_url(),
        model: model.into(),
        api_key: Some(ApiKey::new("sk-speech")),
    })
}

/// (kind, state, audio seconds, reserved, cost) of every ledger row, oldest first.
fn rows(store: &Store) -> Vec<(String, String, i64, i64, i64)> {
    store
        .call_sync(|c| {
            let mut stmt =
                c.prepare("SELECT kind, state, audio_seconds, reserved_micros, cost_micros FROM ledger ORDER BY id")?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .unwrap()
}

fn ogg(len: usize) -> Vec<u8> {
    let mut bytes = b"OggS\0\x02".to_vec();
    bytes.extend((0..len).map(|i| (i * 7 % 251) as u8));
    bytes
}

/// The chat provider of kind openai lends its own service (whisper-1, its key); the fake hears
/// the whole file byte for byte; the ledger has one settled `speech_in` row with the seconds,
/// two started minutes reserved for 61 seconds and 61 seconds charged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_note_is_reserved_heard_and_settled() {
    let r = rig(ProviderKind::Openai).await;
    assert_eq!(r.broker.speech_summary().source, SpeechSource::ChatProvider);
    r.llm.set_transcript("  Can we have pancakes on Sunday?  ");
    let audio = ogg(40_000);
    let text = r.broker.transcribe("ana", 7, audio.clone(), "voice.ogg", "audio/ogg", 61).await.unwrap();
    assert_eq!(text, "Can we have pancakes on Sunday?");
    let heard = r.llm.transcriptions();
    assert_eq!(heard.len(), 1);
    assert_eq!(heard[0].bytes, audio, "the service got the file byte for byte");
    assert_eq!((heard[0].model.as_str(), heard[0].file_name.as_deref()), ("whisper-1", Some("voice.ogg")));
    assert_eq!(heard[0].api_key.as_deref(), Some("k"), "the chat provider's key");
    assert_eq!(rows(&r.store), vec![("speech_in".into(), "settled".into(), 61, 12_000, 6_100)]);
    let spent =
        r.broker.spend(|s| s.budget.spent(&Scope::Member("ana".into()), spend::PeriodKind::Day, chrono::Utc::now()));
    assert_eq!(spent, 6_100);
    assert!(r.llm.calls().is_empty(), "no chat call");

    // A service of its own, with its own key.
    r.broker.set_speech(own_service(&r.llm, "whisper-1"));
    r.broker.transcribe("ana", 7, ogg(10), "a.ogg", "audio/ogg", 3).await.unwrap();
    assert_eq!(r.llm.transcriptions()[1].api_key.as_deref(), Some("sk-speech"));
    // 3 seconds are billed as the 10-second minimum.
    assert_eq!(rows(&r.store)[1].4, 1_000);
}

/// $0.01 left today cannot start a 10-minute transcription ($0.06): refused before any call,
/// reported as a cap hit, and nothing is left reserved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cent_left_cannot_start_ten_minutes() {
    let mut r = rig(ProviderKind::Openai).await;
    r.broker.set_member_caps("ana", Some(10_000), None);
    let e = r.broker.transcribe("ana", 7, ogg(100), "voice.ogg", "audio/ogg", 600).await.unwrap_err();
    let TranscribeError::Capped(b) = &e else { panic!("{e:?}") };
    assert!(matches!(b.kind, BrokerErrorKind::CapExceeded { .. }), "{b:?}");
    assert!(e.member_sentence().contains("spending allowance"), "{}", e.member_sentence());
    assert!(r.llm.transcriptions().is_empty(), "nothing was sent");
    assert!(rows(&r.store).is_empty());
    assert!(matches!(r.events.try_recv(), Ok(SpendEvent::CapHit { .. })));
    // One minute fits.
    r.broker.transcribe("ana", 7, ogg(100), "voice.ogg", "audio/ogg", 60).await.unwrap();
    assert_eq!(rows(&r.store)[0].4, 6_000);
}

/// A hundred voice notes at once from two members under a member cap and a household cap,
/// with chats mixed in: nothing is ever charged past a cap, every reservation is settled or
/// released, and the budget agrees with the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_voice_notes_never_overshoot() {
    let mut r = rig(ProviderKind::Openai).await;
    r.llm.set_latency(Duration::from_millis(30));
    r.broker.set_member_caps("ana", Some(50_000), None);
    r.broker.set_household_cap(Some(80_000));
    let broker = Arc::new(r.broker.clone());
    let mut tasks = Vec::new();
    for i in 0..100u32 {
        let b = broker.clone();
        let member = if i % 3 == 2 { "bo" } else { "ana" };
        tasks.push(tokio::spawn(async move {
            if i % 10 == 9 {
                let req = CompletionRequest {
                    system: "s".into(),
                    messages: vec![ChatMessage::user(format!("q {i}"))],
                    max_tokens: 20,
                    tools: vec![],
                };
                b.complete(member, 1, req)
                    .await
                    .map(|_| ())
                    .map_err(|e| matches!(e.kind, BrokerErrorKind::CapExceeded { .. }))
            } else {
                // 61 to 100 seconds: two minutes reserved, the seconds charged.
                b.transcribe(member, 1, ogg(64), "v.ogg", "audio/ogg", 61 + i % 40)
                    .await
                    .map(|_| ())
                    .map_err(|e| matches!(e, TranscribeError::Capped(_)))
            }
        }));
    }
    let (mut ok, mut capped) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(true) => capped += 1,
            Err(false) => panic!("a failure other than a cap"),
        }
    }
    assert!(ok > 5 && capped > 20, "ok {ok}, capped {capped}: the caps were not exercised");
    let all = rows(&r.store);
    assert!(all.iter().all(|row| row.1 != "reserved"), "every reservation was settled or released");
    let total: i64 = all.iter().map(|row| row.4).sum();
    assert!(total <= 80_000, "household cap overshot: {total}");
    let ana: i64 = r
        .store
        .call_sync(
            |c| Ok(c.query_row("SELECT SUM(cost_micros) FROM ledger WHERE member_id = 'ana'", [], |r| r.get(0))?),
        )
        .unwrap();
    assert!(ana <= 50_000, "member cap overshot: {ana}");
    let household = r.broker.spend(|s| s.budget.spent(&Scope::Household, spend::PeriodKind::Month, chrono::Utc::now()));
    assert_eq!(household as i64, total, "the budget agrees with the ledger");
    assert!(all.iter().filter(|row| row.0 == "speech_in" && row.1 == "settled").count() > 5);
    let mut hits = 0;
    while let Ok(e) = r.events.try_recv() {
        hits += usize::from(matches!(e, SpendEvent::CapHit { .. }));
    }
    assert_eq!(hits, capped);
}

/// 404 and 401 are the admin's to fix (with a hint naming the command), 500 is an outage, 400 a
/// file the service cannot read; each releases its reservation and costs nothing. No service,
/// speech turned off and an empty file are refused without a call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_told_apart_and_cost_nothing() {
    let r = rig(ProviderKind::Openai).await;
    for (status, expected) in [
        (404, TranscribeError::Refused { status: 404 }),
        (401, TranscribeError::Refused { status: 401 }),
        (500, TranscribeError::Unavailable),
        (400, TranscribeError::Unreadable { status: 400 }),
    ] {
        r.llm.fail_transcriptions(Some(status));
        let e = r.broker.transcribe("ana", 7, ogg(10), "v.ogg", "audio/ogg", 5).await.unwrap_err();
        assert_eq!(e, expected);
        assert_eq!(e.admin_hint().is_some(), status == 404 || status == 401, "{status}");
    }
    assert!(
        TranscribeError::Refused { status: 404 }
            .admin_hint()
            .unwrap()
            .contains("hearth provider speech --base-url URL --model NAME")
    );
    let all = rows(&r.store);
    assert_eq!(all.len(), 4);
    assert!(all.iter().all(|row| row.1 == "released" && row.4 == 0), "{all:?}");
    assert_eq!(r.broker.spend(|s| s.budget.spent(&Scope::Household, spend::PeriodKind::Month, chrono::Utc::now())), 0);

    r.llm.fail_transcriptions(None);
    r.llm.set_transcript("   ");
    assert_eq!(r.broker.transcribe("ana", 7, ogg(10), "v.ogg", "audio/ogg", 5).await, Err(TranscribeError::Empty));
    let before = r.llm.transcriptions().len();
    assert_eq!(r.broker.transcribe("ana", 7, Vec::new(), "v.ogg", "audio/ogg", 5).await, Err(TranscribeError::Empty));
    r.broker.set_speech(SpeechSetting::Off);
    assert_eq!(r.broker.speech_summary(), SpeechSummary { source: SpeechSource::Off, base_url: None, model: None });
    let e = r.broker.transcribe("ana", 7, ogg(10), "v.ogg", "audio/ogg", 5).await.unwrap_err();
    assert_eq!(e, TranscribeError::NoService);
    assert!(e.member_sentence().starts_with("I can't listen to voice messages yet"), "{}", e.member_sentence());
    assert_eq!(r.llm.transcriptions().len(), before, "no call without a file or a service");

    // An Anthropic chat provider offers no speech service of its own.
    let a = rig(ProviderKind::Anthropic).await;
    assert_eq!(a.broker.speech_summary().source, SpeechSource::None);
    assert_eq!(a.broker.transcribe("ana", 7, ogg(10), "v.ogg", "audio/ogg", 5).await, Err(TranscribeError::NoService));
}

/// Under a cap, a speech model with no price (on a paid, non-local service) is refused before
/// any call, telling the admin to price it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpriced_speech_model_is_refused_under_a_cap() {
    let r = rig(ProviderKind::Openai).await;
    r.broker.set_member_caps("ana", Some(1_000_000), None);
    r.broker.set_speech(SpeechSetting::Own(SpeechEndpoint {
        // Never reached: refused before any connection.
        base_url: "https://speech.invalid/v1".into(),
        model: "mystery-asr".into(),
        api_key: None,
    }));
    let e = r.broker.transcribe("ana", 7, ogg(10), "v.ogg", "audio/ogg", 5).await.unwrap_err();
    let TranscribeError::Capped(b) = &e else { panic!("{e:?}") };
    assert_eq!(b.kind, BrokerErrorKind::NoPrice { model: "mystery-asr".into() });
    assert!(e.admin_hint().unwrap().contains("hearth price set mystery-asr --usd-per-minute"));
    assert!(rows(&r.store).is_empty());
}

async fn ok(g: &Gateway, request: ControlRequest) -> ControlReply {
    g.control(request).await.unwrap_or_else(|e| panic!("{e:?}"))
}

fn with_images(n: usize) -> CompletionRequest {
    // A 1×1 PNG.
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
    let images =
        (0..n).map(|_| ImageSource::Inline { media_type: "image/png".into(), data: png.into() }).collect::<Vec<_>>();
    CompletionRequest {
        system: "s".into(),
        messages: vec![ChatMessage::user_with_images("what is in this photo?", images)],
        max_tokens: 20,
        tools: vec![],
    }
}

/// A model the admin marked as blind is refused before any call; a provider's 400 saying the
/// model cannot see is the same refusal; a seeing model's call records how many images it
/// showed; an unresolved image reference never reaches a provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_counted_and_blind_models_refused() {
    let r = rig(ProviderKind::Openai).await;
    r.broker.complete("ana", 1, with_images(2)).await.unwrap();
    let images: i64 = r
        .store
        .call_sync(|c| Ok(c.query_row("SELECT images FROM ledger WHERE kind = 'chat'", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(images, 2);

    r.broker.set_no_vision(vec!["Test-Model".into()]);
    let e = r.broker.complete("ana", 1, with_images(1)).await.unwrap_err();
    assert_eq!(e.kind, BrokerErrorKind::ImagesUnsupported { model: "test-model".into() });
    assert_eq!(r.llm.calls().len(), 1, "refused before any call");
    // Text alone still works on a blind model.
    r.broker.complete("ana", 1, with_images(0)).await.unwrap();

    r.broker.set_no_vision(Vec::new());
    r.llm.set_vision(false);
    let e = r.broker.complete("ana", 1, with_images(1)).await.unwrap_err();
    assert_eq!(e.kind, BrokerErrorKind::ImagesUnsupported { model: "test-model".into() }, "{e}");

    let mut unresolved = with_images(0);
    unresolved.messages[0].images = vec![ImageSource::Attachment { inbox_id: 1 }];
    let calls = r.llm.calls().len();
    assert_eq!(r.broker.complete("ana", 1, unresolved).await.unwrap_err().kind, BrokerErrorKind::BadRequest);
    assert_eq!(r.llm.calls().len(), calls);
}

/// The admin's speech setting through the control API: the default follows the chat provider,
/// a service of its own is stored (its key among the secrets, never in a reply) and survives a
/// restart, and off is off. Per-minute prices and vision marks are listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_speech_setting_is_stored_shown_and_survives_a_restart() {
    let tg = FakeTelegram::start().await;
    let llm = FakeLlm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut c = GatewayConfig::new(dir.path().to_owned(), PathBuf::from("/nonexistent/hearth"));
        c.telegram_api_url = Some(tg.api_url());
        c.control_socket = false;
        c.isolation = IsolationChoice::Process;
        c.local_providers = Vec::new();
        c
    };
    let gateway = Gateway::start(config()).await.unwrap();
    let speech = |reply: ControlReply| match reply {
        ControlReply::Speech(s) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(speech(ok(&gateway, ControlRequest::SpeechGet).await).source, SpeechSource::None);
    ok(
        &gateway,
        ControlRequest::ProviderSet {
            kind: ProviderKind::Openai,
            base_url: llm.base_url(),
            model: "gpt-4o-mini".into(),
            api_key: "sk-chat".into(),
        },
    )
    .await;
    let s = speech(ok(&gateway, ControlRequest::SpeechGet).await);
    assert_eq!((s.source, s.model.as_deref()), (SpeechSource::ChatProvider, Some("whisper-1")));
    // A speech model without a price: no cap can be set while voice notes would go to it.
    ok(
        &gateway,
        ControlRequest::SpeechSet {
            base_url: "https://asr.invalid/v1".into(),
            model: "mystery-asr".into(),
            api_key: "k".into(),
        },
    )
    .await;
    let refused = gateway
        .control(ControlRequest::HouseholdCap { monthly: hearth_proto::control::CapChange::Set { micros: 5_000_000 } })
        .await
        .unwrap_err();
    assert!(refused.message.contains("hearth price set mystery-asr --usd-per-minute"), "{refused:?}");
    let s = speech(
        ok(
            &gateway,
            ControlRequest::SpeechSet {
                base_url: "https://api.groq.com/openai/v1/".into(),
                model: "whisper-large-v3-turbo".into(),
                api_key: "gsk-SECRET".into(),
            },
        )
        .await,
    );
    assert_eq!(
        s,
        SpeechSummary {
            source: SpeechSource::Own,
            base_url: Some("https://api.groq.com/openai/v1".into()),
            model: Some("whisper-large-v3-turbo".into()),
        }
    );
    assert!(!format!("{s:?}").contains("SECRET"));
    ok(&gateway, ControlRequest::SpeechPriceSet { model: "whisper-1".into(), micros_per_minute: 5_000 }).await;
    ok(&gateway, ControlRequest::ModelVision { model: "deepseek-chat".into(), vision: false }).await;
    gateway.shutdown(Duration::from_secs(5)).await;
    drop(gateway);

    let gateway = Gateway::start(config()).await.unwrap();
    let s = speech(ok(&gateway, ControlRequest::SpeechGet).await);
    assert_eq!((s.source, s.model.as_deref()), (SpeechSource::Own, Some("whisper-large-v3-turbo")));
    let secrets = std::fs::read_to_string(dir.path().join("secrets.json")).unwrap();
    assert!(secrets.contains("gsk-SECRET"), "the key is kept with the secrets");
    let ControlReply::Prices { prices } = ok(&gateway, ControlRequest::PriceList).await else { panic!() };
    let whisper = prices.iter().find(|p| p.model == "whisper-1").unwrap();
    assert_eq!((whisper.usd_per_minute, whisper.source.as_str()), (Some(0.005), "admin"));
    let turbo = prices.iter().find(|p| p.model == "whisper-large-v3-turbo").unwrap();
    assert_eq!(turbo.usd_per_minute, Some(0.000667));
    assert!(prices.iter().find(|p| p.model == "deepseek-chat").unwrap().no_vision);
    assert!(!prices.iter().find(|p| p.model == "gpt-4o").unwrap().no_vision);

    let s = speech(ok(&gateway, ControlRequest::SpeechOff).await);
    assert_eq!(s.source, SpeechSource::Off);
    let secrets = std::fs::read_to_string(dir.path().join("secrets.json")).unwrap();
    assert!(!secrets.contains("gsk-SECRET"), "off forgets the key");
    gateway.shutdown(Duration::from_secs(5)).await;
    drop(gateway);
    let gateway = Gateway::start(config()).await.unwrap();
    assert_eq!(speech(ok(&gateway, ControlRequest::SpeechGet).await).source, SpeechSource::Off);
    gateway.shutdown(Duration::from_secs(5)).await;
}
