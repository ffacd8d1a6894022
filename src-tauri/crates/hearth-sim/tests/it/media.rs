//! Media through the fakes: what users send, `getFile`, downloads and `sendVoice` against
//! teloxide itself (so the gateway's client reads them as it would Telegram's), and the fake
//! model's speech endpoints and image parts against plain HTTP.

use std::time::Duration;

use base64::Engine as _;
use hearth_sim::llm::{Api, DEFAULT_TRANSCRIPT, FakeLlm, IMAGE_TOKENS};
use hearth_sim::media;
use hearth_sim::telegram::{FakePhoto, FakeTelegram, Fault};
use serde_json::{Value, json};
use teloxide::net::Download;
use teloxide::prelude::*;
use teloxide::types::{ChatAction, FileId, InputFile, MediaKind, MessageKind, ParseMode, Update, UpdateKind};
use teloxide::{ApiError, RequestError};

const T: Duration = Duration::from_secs(5);

fn client(fake: &FakeTelegram, token: &str) -> Bot {
    Bot::new(token).set_api_url(fake.api_url().parse().expect("api url parses"))
}

/// The queued updates, each parsed by teloxide as the gateway's poller would.
async fn updates(bot: &Bot) -> Vec<Update> {
    bot.get_updates().timeout(0).await.expect("getUpdates")
}

fn media_of(update: &Update) -> &MediaKind {
    let UpdateKind::Message(m) = &update.kind else { panic!("not a message: {update:?}") };
    let MessageKind::Common(c) = &m.kind else { panic!("not a common message: {m:?}") };
    &c.media_kind
}

#[tokio::test]
async fn a_voice_note_parses_in_teloxide_and_downloads_byte_for_byte() {
    let fake = FakeTelegram::start().await;
    let b = fake.add_bot("v_bot");
    let kid = fake.user(42, "Kid");
    let audio = media::ogg_opus(12);
    fake.send_voice(&b.token, &kid, audio.clone(), 12);
    let bot = client(&fake, &b.token);
    let got = updates(&bot).await;
    let MediaKind::Voice(v) = media_of(&got[0]) else { panic!("not a voice: {got:?}") };
    assert_eq!(v.voice.duration.seconds(), 12);
    assert_eq!(v.voice.mime_type.as_ref().map(ToString::to_string).as_deref(), Some("audio/ogg"));
    assert_eq!(v.voice.file.size as usize, audio.len());
    assert!(v.caption.is_none());

    // The method name is case-insensitive, like every other.
    let file = bot.get_file(v.voice.file.id.clone()).await.expect("getFile");
    assert_eq!(file.meta, v.voice.file);
    assert!(file.path.starts_with("voice/") && file.path.ends_with(".oga"), "{}", file.path);
    let mut downloaded = Vec::new();
    bot.download_file(&file.path, &mut downloaded).await.expect("download");
    assert_eq!(downloaded, audio, "byte for byte");
    assert_eq!(media::ogg_opus_duration_secs(&downloaded), Some(12));

    let downloads = fake.downloads();
    assert_eq!(downloads.len(), 1);
    assert_eq!((downloads[0].status, downloads[0].bytes_sent, downloads[0].truncated), (200, audio.len(), false));
    assert_eq!(downloads[0].file_id.as_deref(), Some(v.voice.file.id.0.as_str()));
    assert_eq!(fake.file_bytes(&b.token, &v.voice.file.id.0), Some(audio));
}

#[tokio::test]
async fn a_photo_comes_in_sizes_and_the_largest_is_the_senders() {
    let fake = FakeTelegram::start().await;
    let b = fake.add_bot("p_bot");
    let kid = fake.user(42, "Kid");
    let photo = FakePhoto::new(1000, 750);
    fake.send_photo(&b.token, &kid, photo.clone(), Some("my homework"));
    let bot = client(&fake, &b.token);
    let got = updates(&bot).await;
    let MediaKind::Photo(p) = media_of(&got[0]) else { panic!("not a photo: {got:?}") };
    assert_eq!(p.caption.as_deref(), Some("my homework"));
    assert!(p.media_group_id.is_none());
    let dims: Vec<(u32, u32)> = p.photo.iter().map(|s| (s.width, s.height)).collect();
    assert_eq!(dims, [(90, 68), (320, 240), (800, 600), (1000, 750)], "smallest first, the photo last");
    let mut ids: Vec<&str> = p.photo.iter().map(|s| s.file.unique_id.0.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 4, "each size its own file");
    for size in &p.photo {
        let file = bot.get_file(size.file.id.clone()).await.expect("getFile");
        let mut bytes = Vec::new();
        bot.download_file(&file.path, &mut bytes).await.expect("download");
        assert_eq!(bytes.len(), size.file.size as usize);
        assert_eq!(media::png_dimensions(&bytes), Some((size.width, size.height)), "the header matches the size");
    }
    let last = p.photo.last().expect("sizes");
    assert_eq!(fake.file_bytes(&b.token, &last.file.id.0), Some(photo.bytes));

    // A tiny photo still has a thumbnail and the photo.
    fake.send_photo(&b.token, &kid, FakePhoto::new(40, 30), None);
    let got = bot.get_updates().offset(got[0].id.as_offset()).timeout(0).await.expect("getUpdates");
    let MediaKind::Photo(p) = media_of(&got[0]) else { panic!("not a photo") };
    assert_eq!(p.photo.len(), 2);
}

#[tokio::test]
async fn an_album_is_one_message_per_photo_sharing_a_media_group_id() {
    let fake = FakeTelegram::start().await;
    let b = fake.add_bot("a_bot");
    let kid = fake.user(42, "Kid");
    let ids = fake.send_album(&b.token, &kid, vec![FakePhoto::new(640, 480); 3], Some("our trip"));
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1));
    let got = updates(&client(&fake, &b.token)).await;
    assert_eq!(got.len(), 3);
    let photos: Vec<_> = got
        .iter()
        .map(|u| match media_of(u) {
            MediaKind::Photo(p) => p.clone(),
            other => panic!("not a photo: {other:?}"),
        })
        .collect();
    let group = photos[0].media_group_id.clone().expect("media_group_id");
    assert!(photos.iter().all(|p| p.media_group_id.as_ref() == Some(&group)));
    assert_eq!(photos[0].caption.as_deref(), Some("our trip"));
    assert!(photos[1..].iter().all(|p| p.caption.is_none()), "the caption is on the first only");

    let again = fake.send_album(&b.token, &kid, vec![FakePhoto::new(64, 64); 2], None);
    assert_eq!(again.len(), 2);
}

#[tokio::test]
#[should_panic(expected = "an album has 2 to 10 photos")]
async fn an_album_of_one_is_a_test_mistake() {
    let fake = FakeTelegram::start().await;
    let b = fake.add_bot("a_bot");
    fake.send_album(&b.token, &fake.user(1, "A"), vec![FakePhoto::new(10, 10)], None);
}

#[tokio::test]
async fn documents_and_audio_parse_with_name_and_type() {
    let fake = FakeTelegram::start().await;
    let b = fake.add_bot("d_bot");
    let mum = fake.user(7, "Mum");
    fake.send_document(&b.token, &mum, b"%PDF-1.4 fake".to_vec(), "letter.pdf", "application/pdf", Some("from school"));
    fake.send_audio(&b.token, &mum, vec![1, 2, 3], 200, "song.mp3", "audio/mpeg");
    let bot = client(&fake, &b.token);
    let got = updates(&bot).await;
    let MediaKind::Document(d) = media_of(&got[0]) else { panic!("not a document: {got:?}") };
    assert_eq!(d.document.file_name.as_deref(), Some("letter.pdf"));
    assert_eq!(d.document.mime_type.as_ref().map(ToString::to_string).as_deref(), Some("application/pdf"));
    assert_eq!(d.caption.as_deref(), Some("from school"));
    let file = bot.get_file(d.document.file.id.clone()).await.expect("getFile");
    assert!(file.path.starts_with("documents/") && file.path.ends_with(".pdf"), "{}", file.path);
    let MediaKind::Audio(a) = media_of(&got[1]) else { panic!("not audio: {got:?}") };
    assert_eq!(a.audio.duration.seconds(), 200);
    assert_eq!(a.audio.file_name.as_deref(), Some("song.mp3"));
    assert_eq!(a.audio.file.size, 3);
}

#[tokio::test]
async fn get_file_refuses_unknown_ids_and_files_over_20_mb() {
    let fake = FakeTelegram::start().await;
    let b = fake.add_bot("f_bot");
    let other = fake.add_bot("other_bot");
    let mum = fake.user(7, "Mum");
    let big = vec![b'x'; 21 * 1024 * 1024];
    fake.send_document(&b.token, &mum, big, "big.txt", "text/plain", None);
    let bot = client(&fake, &b.token);
    let got = updates(&bot).await;
    let MediaKind::Document(d) = media_of(&got[0]) else { panic!("not a document") };
    assert_eq!(d.document.file.size, 21 * 1024 * 1024, "Telegram still says how big it is");
    match bot.get_file(d.document.file.id.clone()).await {
        Err(RequestError::Api(ApiError::Unknown(m))) => assert_eq!(m, "Bad Request: file is too big"),
        Err(RequestError::Api(e)) => assert_eq!(e.to_string(), "Bad Request: file is too big"),
        other => panic!("expected file is too big, got {other:?}"),
    }
    let err = bot.get_file(FileId("AwACAgIAAxkBAAnope".into())).await.expect_err("unknown id");
    assert!(err.to_string().contains("invalid file_id"), "{err}");
    // A file_id belongs to the bot that received it.
    let err = client(&fake, &other.token).get_file(d.document.file.id.clone()).await.expect_err("other bot");
    assert!(err.to_string().contains("invalid file_id"), "{err}");
    let statuses: Vec<(String, u16)> =
        fake.requests().iter().filter(|r| r.method == "getFile").map(|r| (r.method.clone(), r.status)).collect();
    assert_eq!(statuses.len(), 3);
    assert!(statuses.iter().all(|(_, s)| *s == 400));

    // Any case of the method name.
    let response = reqwest::Client::new()
        .post(format!("{}/bot{}/GETFILE", fake.api_url(), b.token))
        .json(&json!({"file_id": "nope"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["description"], "Bad Request: invalid file_id");
}

#[tokio::test]
async fn downloads_404_for_a_wrong_token_or_path_and_can_be_cut_short() {
    let fake = FakeTelegram::start().await;
    let b = fake.add_bot("dl_bot");
    let other = fake.add_bot("other_bot");
    let kid = fake.user(42, "Kid");
    let audio = media::ogg_opus(30);
    fake.send_voice(&b.token, &kid, audio.clone(), 30);
    let bot = client(&fake, &b.token);
    let got = updates(&bot).await;
    let MediaKind::Voice(v) = media_of(&got[0]) else { panic!("not a voice") };
    let path = bot.get_file(v.voice.file.id.clone()).await.expect("getFile").path;
    let http = reqwest::Client::new();
    let get = |token: &str, path: &str| http.get(format!("{}/file/bot{token}/{path}", fake.api_url())).send();
    assert_eq!(get(&other.token, &path).await.expect("reaches").status().as_u16(), 404, "another bot's token");
    assert_eq!(get(&b.token, "voice/nope.oga").await.expect("reaches").status().as_u16(), 404, "a wrong path");
    assert_eq!(get("1:bad", &path).await.expect("reaches").status().as_u16(), 404, "no such token");

    fake.inject(&b.token, Fault::TruncatedDownload { times: 1 });
    let cut = get(&b.token, &path).await.expect("headers arrive");
    assert_eq!(cut.status().as_u16(), 200);
    assert_eq!(cut.content_length(), Some(audio.len() as u64), "the whole length is announced");
    assert!(cut.bytes().await.is_err(), "the body ends early");
    let mut sink = Vec::new();
    bot.download_file(&path, &mut sink).await.expect("the fault was used up");
    assert_eq!(sink, audio);

    let downloads = fake.downloads();
    let summary: Vec<(u16, bool)> = downloads.iter().map(|d| (d.status, d.truncated)).collect();
    assert_eq!(summary, [(404, false), (404, false), (404, false), (200, true), (200, false)]);
    assert_eq!(downloads[3].bytes_sent, audio.len() / 2);
    // getFile is unaffected by the download fault.
    assert!(bot.get_file(v.voice.file.id.clone()).await.is_ok());
}

#[tokio::test]
async fn send_voice_and_chat_actions_are_recorded() {
    let fake = FakeTelegram::start().await;
    let b = fake.add_bot("sv_bot");
    let kid = fake.user(42, "Kid");
    fake.send_text(&b.token, &kid, "hi");
    let bot = client(&fake, &b.token);

    bot.send_chat_action(ChatId(42), ChatAction::RecordVoice).await.expect("chat action");
    fake.wait_for_chat_action(&b.token, 42, "record_voice", T).await.expect("recorded");
    assert!(fake.wait_for_chat_action(&b.token, 42, "upload_photo", Duration::from_millis(50)).await.is_err());

    let audio = media::ogg_opus(4);
    let sent = bot
        .send_voice(ChatId(42), InputFile::memory(audio.clone()).file_name("reply.ogg"))
        .caption("<b>Volcanoes</b> are mountains")
        .parse_mode(ParseMode::Html)
        .await
        .expect("sendVoice");
    let voice = sent.voice().expect("the answer is a voice message");
    assert_eq!(voice.duration.seconds(), 4, "read from the Ogg stream");
    assert_eq!(sent.caption(), Some("Volcanoes are mountains"));
    assert_eq!(sent.caption_entities().map(<[_]>::len), Some(1));

    let got = fake.wait_for_sent(&b.token, 42, 1, T).await.expect("recorded as sent");
    let v = got[0].voice.as_ref().expect("a voice");
    assert_eq!(v.bytes, audio, "byte for byte");
    assert_eq!(v.file_name.as_deref(), Some("reply.ogg"));
    assert_eq!(got[0].text, "Volcanoes are mountains");
    assert_eq!(got[0].source, "<b>Volcanoes</b> are mountains");
    assert_eq!(got[0].parse_mode.as_deref(), Some("HTML"));
    assert_eq!(fake.sent_voices(&b.token, 42).len(), 1);
    // The bot can fetch what it sent, and resend it by id.
    let file = bot.get_file(voice.file.id.clone()).await.expect("getFile");
    let mut bytes = Vec::new();
    bot.download_file(&file.path, &mut bytes).await.expect("download");
    assert_eq!(bytes, audio);
    bot.send_voice(ChatId(42), InputFile::file_id(voice.file.id.clone())).await.expect("resend by id");

    // Telegram's refusals: too long a caption, nothing to send, no text to edit.
    let err = bot
        .send_voice(ChatId(42), InputFile::memory(audio.clone()).file_name("a.ogg"))
        .caption("x".repeat(1025))
        .await
        .expect_err("caption too long");
    assert!(err.to_string().contains("message caption is too long"), "{err}");
    let err = bot.send_voice(ChatId(42), InputFile::memory(Vec::new()).file_name("a.ogg")).await.expect_err("empty");
    assert!(err.to_string().contains("file must be non-empty"), "{err}");
    let err = bot.edit_message_text(ChatId(42), sent.id, "now text").await.expect_err("a voice has no text");
    assert!(err.to_string().contains("there is no text in the message to edit"), "{err}");
    let err = bot.send_voice(ChatId(99), InputFile::memory(audio).file_name("a.ogg")).await.expect_err("no chat");
    assert!(err.to_string().contains("chat not found"), "{err}");
}

// ---- the fake model: speech and images ----

async fn transcribe(
    fake: &FakeLlm,
    file: Option<(&str, Vec<u8>)>,
    fields: &[(&str, &str)],
    key: Option<&str>,
) -> reqwest::Response {
    let mut form = reqwest::multipart::Form::new();
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    if let Some((name, bytes)) = file {
        let part =
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()).mime_str("audio/ogg").expect("mime");
        form = form.part("file", part);
    }
    let mut request = reqwest::Client::new().post(format!("{}/audio/transcriptions", fake.base_url())).multipart(form);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.expect("reaches the fake")
}

#[tokio::test]
async fn transcriptions_record_the_exact_bytes_and_answer_the_transcript() {
    let fake = FakeLlm::start().await;
    // A big file, with bytes that look like multipart framing, arrives whole.
    let mut audio = media::ogg_opus(30);
    audio.extend(b"\r\n--boundary\r\n".repeat(100));
    audio.extend(vec![0xff; 3 * 1024 * 1024]);
    let r =
        transcribe(&fake, Some(("voice.oga", audio.clone())), &[("model", "whisper-1"), ("language", "en")], Some("k"))
            .await;
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body, json!({ "text": DEFAULT_TRANSCRIPT }));
    let t = fake.wait_for_transcriptions(1, T).await.expect("recorded");
    assert_eq!(t[0].model, "whisper-1");
    assert_eq!(t[0].file_name.as_deref(), Some("voice.oga"));
    assert_eq!(t[0].content_type.as_deref(), Some("audio/ogg"));
    assert_eq!(t[0].language.as_deref(), Some("en"));
    assert_eq!(t[0].api_key.as_deref(), Some("k"));
    assert!(t[0].bytes == audio, "byte for byte ({} vs {} bytes)", t[0].bytes.len(), audio.len());

    fake.set_transcript("Why is the sky blue?");
    let r = transcribe(&fake, Some(("a.ogg", vec![1])), &[("model", "m"), ("response_format", "text")], None).await;
    assert_eq!(r.text().await.expect("text"), "Why is the sky blue?\n");
    let r =
        transcribe(&fake, Some(("a.ogg", vec![1])), &[("model", "m"), ("response_format", "verbose_json")], None).await;
    assert_eq!(r.json::<Value>().await.expect("json")["text"], "Why is the sky blue?");
    assert!(fake.calls().is_empty(), "speech is not chat");
}

#[tokio::test]
async fn transcriptions_fail_as_configured_and_refuse_bad_uploads() {
    let fake = FakeLlm::start().await;
    let ok_file = || Some(("voice.oga", media::ogg_opus(1)));
    for status in [404, 401, 500] {
        fake.fail_transcriptions(Some(status));
        let r = transcribe(&fake, ok_file(), &[("model", "whisper-1")], None).await;
        assert_eq!(r.status().as_u16(), status);
        let body: Value = r.json().await.expect("json");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    fake.fail_transcriptions(None);
    type Case<'a> = (Option<(&'a str, Vec<u8>)>, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 4] = [
        (Some(("voice.oga", Vec::new())), &[("model", "whisper-1")], "too short"),
        (Some(("voice", vec![1])), &[("model", "whisper-1")], "Invalid file format"),
        (None, &[("model", "whisper-1")], "provide a file"),
        (ok_file(), &[], "model"),
    ];
    for (file, fields, says) in cases {
        let r = transcribe(&fake, file, fields, None).await;
        assert_eq!(r.status().as_u16(), 400, "{says}");
        let body: Value = r.json().await.expect("json");
        assert!(body["error"]["message"].as_str().unwrap_or_default().contains(says), "{body}");
    }
    fake.require_api_key("right");
    let r = transcribe(&fake, ok_file(), &[("model", "whisper-1")], Some("wrong")).await;
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(fake.transcriptions().len(), 8, "every request is recorded, refused ones too");
}

#[tokio::test]
async fn speech_answers_ogg_opus_and_records_the_input() {
    let fake = FakeLlm::start().await;
    let http = reqwest::Client::new();
    let url = format!("{}/audio/speech", fake.base_url());
    let body = json!({"model": "tts-1", "input": "Volcanoes are mountains that can erupt.", "voice": "alloy", "response_format": "opus"});
    let r = http.post(&url).json(&body).send().await.expect("reaches");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()[reqwest::header::CONTENT_TYPE], "audio/ogg");
    let bytes = r.bytes().await.expect("bytes");
    assert_eq!(media::ogg_opus_duration_secs(&bytes), Some(2), "a real Ogg Opus stream");
    let s = fake.speeches();
    assert_eq!(
        (s[0].model.as_str(), s[0].input.as_str(), s[0].voice.as_str()),
        ("tts-1", "Volcanoes are mountains that can erupt.", "alloy")
    );
    assert_eq!(s[0].response_format.as_deref(), Some("opus"));

    let r =
        http.post(&url).json(&json!({"model": "tts-1", "input": "", "voice": "alloy"})).send().await.expect("reaches");
    assert_eq!(r.status().as_u16(), 400);
    fake.fail_speech(Some(404));
    assert_eq!(http.post(&url).json(&body).send().await.expect("reaches").status().as_u16(), 404);
}

fn png_b64(w: u32, h: u32) -> String {
    base64::engine::general_purpose::STANDARD.encode(media::png(w, h))
}

fn openai_image_body(images: usize) -> Value {
    let mut content = vec![json!({"type": "text", "text": "what is this?"})];
    for _ in 0..images {
        content.push(
            json!({"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{}", png_b64(64, 48))}}),
        );
    }
    json!({"model": "gpt-4o", "messages": [{"role": "user", "content": content}]})
}

fn anthropic_image_body() -> Value {
    json!({
        "model": "claude-x", "max_tokens": 100,
        "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png_b64(30, 20)}},
            {"type": "text", "text": "what is this?"}
        ]}]
    })
}

async fn chat(fake: &FakeLlm, api: Api, body: &Value) -> (u16, Value) {
    let path = match api {
        Api::OpenAi => "chat/completions",
        Api::Anthropic => "messages",
    };
    let r = reqwest::Client::new()
        .post(format!("{}/{path}", fake.base_url()))
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .expect("reaches");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn image_parts_are_readable_and_billed() {
    let fake = FakeLlm::start().await;
    let (status, body) = chat(&fake, Api::OpenAi, &openai_image_body(3)).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = chat(&fake, Api::Anthropic, &anthropic_image_body()).await;
    assert_eq!(status, 200);
    let calls = fake.calls();
    let images = calls[0].last_user_images();
    assert_eq!(images.len(), 3);
    assert!(images.iter().all(|i| i.media_type == "image/png" && i.url.is_none()));
    assert_eq!(media::png_dimensions(images[0].data.as_deref().unwrap_or_default()), Some((64, 48)));
    assert_eq!(calls[0].all_text(), "what is this?", "images are not text");
    assert_eq!(calls[0].prompt_tokens(), 4 + 3 * IMAGE_TOKENS);
    assert_eq!(body["usage"]["prompt_tokens"], 4 + 3 * IMAGE_TOKENS);
    let images = calls[1].images();
    assert_eq!(images.len(), 1);
    assert_eq!(media::png_dimensions(images[0].data.as_deref().unwrap_or_default()), Some((30, 20)));

    // What neither provider takes.
    let mut bad = openai_image_body(1);
    bad["messages"][0]["content"][1]["image_url"]["url"] = json!("data:image/png;base64,!!!not base64");
    assert_eq!(chat(&fake, Api::OpenAi, &bad).await.0, 400);
    bad["messages"][0]["content"][1]["image_url"]["url"] = json!(format!("data:image/tiff;base64,{}", png_b64(2, 2)));
    assert_eq!(chat(&fake, Api::OpenAi, &bad).await.0, 400);
}

#[tokio::test]
async fn a_model_that_cannot_see_refuses_images_in_the_providers_words() {
    let fake = FakeLlm::start().await;
    fake.set_vision(false);
    let (status, body) = chat(&fake, Api::OpenAi, &openai_image_body(1)).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["message"], "Invalid content type. image_url is only supported by certain models.");
    let (status, body) = chat(&fake, Api::Anthropic, &anthropic_image_body()).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["message"], "'claude-x' does not support image input.");
    // Text alone is answered as ever.
    let (status, _) = chat(&fake, Api::OpenAi, &openai_image_body(0)).await;
    assert_eq!(status, 200);
    assert_eq!(fake.calls().len(), 3, "refused calls are recorded");
}

#[tokio::test]
async fn the_demo_voice_note_and_photo_arrive_and_the_demo_model_hears_and_sees_them() {
    use hearth_sim::demo::{self, Person, household, model};
    let fake = FakeTelegram::start().await;
    let llm = FakeLlm::start().await;
    model::install(&llm);
    let mut heard = Vec::new();
    for (name, scripted) in household::MEDIA {
        let profile = household::PROFILES.iter().find(|p| p.name == *name).expect("in the household");
        let bot = fake.add_bot(&household::bot_username(name));
        let user = fake.user(7_000_000, name);
        let person = Person { index: 0, name: name.to_string(), profile, bot: bot.clone(), user };
        assert_eq!(person.profile_media(), Some(*scripted));
        let shown = demo::send_media(&fake, &person, *scripted);
        assert!(!shown.is_empty());
        let tg = client(&fake, &bot.token);
        let got = updates(&tg).await;
        match (media_of(&got[0]), scripted) {
            (MediaKind::Voice(v), household::ScriptedMedia::Voice { seconds, transcript }) => {
                assert_eq!(v.voice.duration.seconds(), *seconds);
                let path = tg.get_file(v.voice.file.id.clone()).await.expect("getFile").path;
                let mut bytes = Vec::new();
                tg.download_file(&path, &mut bytes).await.expect("download");
                let part = reqwest::multipart::Part::bytes(bytes).file_name("voice.oga");
                let form = reqwest::multipart::Form::new().text("model", "whisper-1").part("file", part);
                let r = reqwest::Client::new()
                    .post(format!("{}/audio/transcriptions", llm.base_url()))
                    .multipart(form)
                    .send()
                    .await
                    .expect("reaches");
                let text = r.json::<Value>().await.expect("json")["text"].as_str().unwrap_or_default().to_owned();
                assert_eq!(text, *transcript);
                heard.push(text);
            }
            (MediaKind::Photo(p), household::ScriptedMedia::Photo { width, height, caption }) => {
                assert_eq!(p.caption.as_deref(), Some(*caption));
                let largest = p.photo.last().expect("sizes");
                assert_eq!((largest.width, largest.height), (*width, *height));
                let bytes = fake.file_bytes(&bot.token, &largest.file.id.0).expect("stored");
                let url = format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes));
                let body = json!({"model": "demo", "messages": [{"role": "user", "content": [
                    {"type": "text", "text": caption}, {"type": "image_url", "image_url": {"url": url}}
                ]}]});
                let (status, answer) = chat(&llm, Api::OpenAi, &body).await;
                assert_eq!(status, 200);
                let text = answer["choices"][0]["message"]["content"].as_str().unwrap_or_default();
                assert!(text.contains("photo") || text.contains("page"), "{text}");
            }
            (got, scripted) => panic!("{scripted:?} arrived as {got:?}"),
        }
    }
    assert_eq!(heard.len(), 1, "one voice note in the script");
    // The transcript is a question the demo model answers on topic.
    let body = json!({"model": "demo", "messages": [{"role": "user", "content": heard[0]}]});
    let (_, answer) = chat(&llm, Api::OpenAi, &body).await;
    assert!(answer["choices"][0]["message"]["content"].as_str().unwrap_or_default().contains("purr"));
}

/// The simulated person sends the scripted photo as their second message and waits for its
/// answer like any other; the test plays the bot.
#[tokio::test]
async fn a_simulated_person_sends_the_scripted_photo_second() {
    use hearth_sim::demo::{self, Event, Person, household};
    use tokio_util::sync::CancellationToken;
    let fake = FakeTelegram::start().await;
    let profile = household::PROFILES.iter().find(|p| p.name == "Leo").expect("Leo");
    let b = fake.add_bot("leo_family_bot");
    let user = fake.user(7_000_001, "Leo");
    let person = Person { index: 1, name: "Leo".into(), profile, bot: b.clone(), user };
    let (events, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let (stop_sending, stop_waiting) = (CancellationToken::new(), CancellationToken::new());
    let task = tokio::spawn(demo::simulate_with(
        person,
        fake.clone(),
        events,
        stop_sending.clone(),
        stop_waiting.clone(),
        10,
        true,
    ));
    let bot = client(&fake, &b.token);
    let mut offset = 0;
    let mut kinds = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while kinds.iter().filter(|k| *k != "thanks").count() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "the person sent {kinds:?}");
        for u in bot.get_updates().offset(offset).timeout(1).await.expect("poll") {
            offset = u.id.as_offset();
            let UpdateKind::Message(m) = &u.kind else { continue };
            let kind = match (m.photo(), m.text()) {
                (Some(_), _) => "photo",
                (None, Some(t)) if profile.thanks.contains(&t) => "thanks",
                (None, Some(t)) if profile.messages.iter().any(|(_, f)| *f == t) => "follow-up",
                _ => "question",
            };
            if kind != "follow-up" {
                kinds.push(kind.to_owned());
            }
            bot.send_message(m.chat.id, "ok").await.expect("answer");
        }
    }
    stop_sending.cancel();
    stop_waiting.cancel();
    task.await.expect("the person stops");
    let asked: Vec<&str> = kinds.iter().map(String::as_str).filter(|k| *k != "thanks").collect();
    assert_eq!(asked[..2], ["question", "photo"], "{kinds:?}");
    assert_eq!(asked[2], "question", "the photo is sent once");
    let mut shown = Vec::new();
    while let Ok((_, e)) = seen.try_recv() {
        if let Event::Sent { text, .. } = e {
            shown.push(text);
        }
    }
    assert!(shown.iter().any(|t| t.starts_with("📷")), "{shown:?}");
}

/// Sam's scripted voice note is answered in voice (as the gateway does by default): the demo's
/// view shows that reply as its caption, marked 🔊; a text reply stays unmarked. The test plays
/// the bot.
#[tokio::test]
async fn a_voice_reply_shows_in_the_demo_as_its_caption_marked() {
    use hearth_sim::demo::{self, Event, Person, household};
    use tokio_util::sync::CancellationToken;
    let fake = FakeTelegram::start().await;
    let profile = household::PROFILES.iter().find(|p| p.name == "Sam").expect("Sam");
    let b = fake.add_bot("sam_family_bot");
    let user = fake.user(7_000_002, "Sam");
    let person = Person { index: 2, name: "Sam".into(), profile, bot: b.clone(), user };
    let (events, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let (stop_sending, stop_waiting) = (CancellationToken::new(), CancellationToken::new());
    let task = tokio::spawn(demo::simulate_with(
        person,
        fake.clone(),
        events,
        stop_sending.clone(),
        stop_waiting.clone(),
        10,
        true,
    ));
    let bot = client(&fake, &b.token);
    let (mut offset, mut voiced) = (0, false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !voiced {
        assert!(tokio::time::Instant::now() < deadline, "Sam sent no voice note");
        for u in bot.get_updates().offset(offset).timeout(1).await.expect("poll") {
            offset = u.id.as_offset();
            let UpdateKind::Message(m) = &u.kind else { continue };
            if m.voice().is_some() {
                let audio = InputFile::memory(media::ogg_opus(2)).file_name("reply.ogg");
                bot.send_voice(m.chat.id, audio).caption("Cats purr when they are happy.").await.expect("voice");
                voiced = true;
            } else {
                bot.send_message(m.chat.id, "ok").await.expect("answer");
            }
        }
    }
    // The person waits for the voice reply like any other answer.
    let replied = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match seen.recv().await {
                Some((_, Event::Replied { text, .. })) if text.starts_with("🔊") => return text,
                Some(_) => {}
                None => panic!("the person stopped before the voice reply showed"),
            }
        }
    })
    .await
    .expect("the voice reply shows");
    assert_eq!(replied, "🔊 Cats purr when they are happy.");
    stop_sending.cancel();
    stop_waiting.cancel();
    task.await.expect("the person stops");
}
