//! Images in chat requests and the speech endpoints, against the fake model.

use base64::Engine as _;
use hearth_llm::{ApiKey, ChatMessage, ImageSource, LlmError, SpeechService, complete, speak, transcribe};
use hearth_testkit::llm::{Api, DEFAULT_TRANSCRIPT, FakeLlm};
use hearth_testkit::media;
use serde_json::json;

use super::*;

fn photo_request(images: Vec<ImageSource>, caption: &str) -> CompletionRequest {
    CompletionRequest {
        system: "You are a helpful family assistant.".to_owned(),
        messages: vec![ChatMessage::user_with_images(caption, images)],
        max_tokens: 100,
        tools: vec![],
    }
}

fn png_inline(w: u32, h: u32) -> ImageSource {
    ImageSource::Inline {
        media_type: "image/png".to_owned(),
        data: base64::engine::general_purpose::STANDARD.encode(media::png(w, h)),
    }
}

#[tokio::test]
async fn a_photo_and_its_caption_reach_both_providers_as_image_parts() {
    let fake = FakeLlm::start().await;
    let http = http();
    for p in all_providers(&fake) {
        let req =
            photo_request(vec![png_inline(64, 48), png_inline(30, 20), png_inline(8, 8)], "what is on my homework?");
        complete(&http, &p, &req, &limits()).await.unwrap_or_else(|e| panic!("{p:?}: {e}"));
    }
    let calls = fake.calls();
    assert_eq!(calls.len(), 4);
    for call in &calls {
        let images = call.last_user_images();
        let dims: Vec<_> =
            images.iter().map(|i| media::png_dimensions(i.data.as_deref().unwrap_or_default())).collect();
        assert_eq!(dims, [Some((64, 48)), Some((30, 20)), Some((8, 8))], "{:?}", call.api);
        assert!(images.iter().all(|i| i.media_type == "image/png"));
        assert_eq!(call.last_user_text(), "what is on my homework?");
    }
    // The exact shapes each provider documents.
    let openai = &calls[0].body["messages"][1]["content"];
    assert_eq!(openai[0], json!({"type": "text", "text": "what is on my homework?"}));
    assert_eq!(openai[1]["type"], "image_url");
    assert!(
        openai[1]["image_url"]["url"].as_str().unwrap_or_default().starts_with("data:image/png;base64,iVBORw0KGgo")
    );
    let anthropic = &calls[2].body["messages"][0]["content"];
    assert_eq!(anthropic[0]["type"], "image");
    assert_eq!(anthropic[0]["source"]["type"], "base64");
    assert_eq!(anthropic[0]["source"]["media_type"], "image/png");
    assert_eq!(anthropic[3], json!({"type": "text", "text": "what is on my homework?"}), "images first, then the text");
}

#[tokio::test]
async fn a_photo_without_caption_sends_no_empty_text() {
    let fake = FakeLlm::start().await;
    let http = http();
    for kind in BOTH {
        complete(&http, &provider(&fake, kind, false), &photo_request(vec![png_inline(10, 10)], ""), &limits())
            .await
            .expect("answered");
    }
    for call in fake.calls() {
        let content = &call.body["messages"][if call.api == Api::OpenAi { 1 } else { 0 }]["content"];
        assert_eq!(content.as_array().map(Vec::len), Some(1), "{content}");
        assert_eq!(call.images().len(), 1);
    }
}

#[tokio::test]
async fn an_image_named_by_inbox_row_is_refused_and_never_sent() {
    let fake = FakeLlm::start().await;
    let http = http();
    for p in all_providers(&fake) {
        let req = photo_request(vec![png_inline(10, 10), ImageSource::Attachment { inbox_id: 7 }], "look");
        let e = complete(&http, &p, &req, &limits()).await.expect_err("refused");
        assert!(matches!(&e, LlmError::Config(m) if m.contains("inline")), "{e:?}");
        assert!(!e.is_retryable());
    }
    assert!(fake.calls().is_empty(), "nothing reached the provider");
}

#[tokio::test]
async fn a_model_that_cannot_see_is_told_apart() {
    let fake = FakeLlm::start().await;
    fake.set_vision(false);
    let http = http();
    for p in all_providers(&fake) {
        let e =
            complete(&http, &p, &photo_request(vec![png_inline(10, 10)], "look"), &limits()).await.expect_err("400");
        assert!(e.refuses_images(), "{p:?}: {e:?}");
        // Text still works with the same model.
        complete(&http, &p, &request("hello"), &limits()).await.expect("text is fine");
    }
}

fn service(fake: &FakeLlm, model: &str) -> SpeechService {
    SpeechService { base_url: fake.base_url(), api_key: Some(ApiKey::new(KEY)), model: model.to_owned() }
}

#[tokio::test]
async fn transcribe_sends_the_whole_file_and_returns_the_text() {
    let fake = FakeLlm::start().await;
    fake.require_api_key(KEY);
    let audio = media::ogg_opus(20);
    let text = transcribe(&http(), &service(&fake, "whisper-1"), audio.clone(), "voice.oga", "audio/ogg", &limits())
        .await
        .expect("transcribed");
    assert_eq!(text, DEFAULT_TRANSCRIPT);
    let t = fake.transcriptions();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].model, "whisper-1");
    assert_eq!(t[0].file_name.as_deref(), Some("voice.oga"));
    assert_eq!(t[0].content_type.as_deref(), Some("audio/ogg"));
    assert!(t[0].bytes == audio, "byte for byte");
    assert_eq!(t[0].api_key.as_deref(), Some(KEY));

    // A local server needs no key: none is sent.
    let local = FakeLlm::start().await;
    local.set_transcript("  Why is the sky blue?\n");
    let keyless = SpeechService { api_key: None, ..service(&local, "whisper-large-v3") };
    let text = transcribe(&http(), &keyless, vec![1, 2, 3], "a.ogg", "audio/ogg", &limits()).await.expect("ok");
    assert_eq!(text, "Why is the sky blue?");
    assert_eq!(local.transcriptions()[0].api_key, None);
}

#[tokio::test]
async fn refusals_are_statuses_and_outages_are_not() {
    let fake = FakeLlm::start().await;
    let svc = service(&fake, "whisper-1");
    for status in [404, 401, 403, 500] {
        fake.fail_transcriptions(Some(status));
        let e = no_key(transcribe(&http(), &svc, vec![1], "v.oga", "audio/ogg", &limits()).await.expect_err("fails"));
        assert!(matches!(e, LlmError::Status { status: s, .. } if s == status), "{e:?}");
        assert_eq!(e.is_retryable(), status == 500);
    }
    fake.fail_transcriptions(None);
    // The service's own 400 for what it cannot take, with its words.
    let e = transcribe(&http(), &svc, Vec::new(), "v.oga", "audio/ogg", &limits()).await.expect_err("empty");
    assert!(matches!(&e, LlmError::Status { status: 400, message, .. } if message.contains("too short")), "{e:?}");
    // A key the service refuses never shows in the error.
    fake.require_api_key("another");
    let e = no_key(transcribe(&http(), &svc, vec![1], "v.oga", "audio/ogg", &limits()).await.expect_err("401"));
    assert!(matches!(e, LlmError::Status { status: 401, .. }), "{e:?}");

    // Down: nothing listens.
    let gone = FakeLlm::start().await;
    let down = service(&gone, "whisper-1");
    gone.shutdown();
    drop(gone);
    tokio::task::yield_now().await;
    let e = no_key(transcribe(&http(), &down, vec![1], "v.oga", "audio/ogg", &limits()).await.expect_err("down"));
    assert!(matches!(e, LlmError::Network(_) | LlmError::Timeout { .. }), "{e:?}");

    let bad = SpeechService { base_url: "not a url".into(), ..service(&fake, "m") };
    let e = transcribe(&http(), &bad, vec![1], "v.oga", "audio/ogg", &limits()).await.expect_err("config");
    assert!(matches!(e, LlmError::Config(_)), "{e:?}");
}

#[tokio::test]
async fn speak_asks_for_opus_and_returns_the_audio() {
    let fake = FakeLlm::start().await;
    fake.require_api_key(KEY);
    let svc = service(&fake, "tts-1");
    let audio =
        speak(&http(), &svc, "Volcanoes are mountains that can erupt.", "nova", &limits()).await.expect("spoken");
    assert!(media::ogg_opus_duration_secs(&audio).is_some(), "Ogg Opus, as sendVoice takes");
    let s = fake.speeches();
    assert_eq!((s[0].model.as_str(), s[0].voice.as_str()), ("tts-1", "nova"));
    assert_eq!(s[0].input, "Volcanoes are mountains that can erupt.");
    assert_eq!(s[0].response_format.as_deref(), Some("opus"));
    fake.fail_speech(Some(404));
    let e = no_key(speak(&http(), &svc, "hi", "nova", &limits()).await.expect_err("404"));
    assert!(matches!(e, LlmError::Status { status: 404, .. }), "{e:?}");
    assert!(fake.calls().is_empty(), "speech is not chat");
}
