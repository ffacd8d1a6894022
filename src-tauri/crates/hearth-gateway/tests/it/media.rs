//! A member's file from the fake Bot API through `telegram::extract_message` and
//! `telegram::download`: byte for byte, capped, cut short, refused — and never an error that
//! carries the bot token (the file URL holds it).

use std::time::Duration;

use hearth_gateway::store::Media;
use hearth_gateway::telegram::{self, DownloadError, Limit};
use hearth_testkit::telegram::{FakeTelegram, FakeUser, Fault};
use teloxide::Bot;
use teloxide::requests::Requester;

/// A bot's client as the gateway builds it.
fn client(tg: &FakeTelegram, token: &str) -> Bot {
    let url = reqwest::Url::parse(&tg.api_url()).unwrap();
    telegram::bot(&telegram::http_client(Duration::from_secs(5)), &url, token)
}

/// The fake, one bot's token and client, and the media of what the user sent (`send` gets the
/// fake, the token and the user).
async fn sent(send: impl FnOnce(&FakeTelegram, &str, &FakeUser)) -> (FakeTelegram, String, Bot, Media) {
    let tg = FakeTelegram::start().await;
    let b = tg.add_bot("media_bot");
    let user = tg.user(42, "Kid");
    send(&tg, &b.token, &user);
    let bot = client(&tg, &b.token);
    let updates = bot.get_updates().await.unwrap();
    let msg = telegram::extract_message(&updates[0]).expect("a message");
    (tg, b.token, bot, msg.media.expect("media"))
}

#[tokio::test]
async fn a_voice_note_downloads_byte_for_byte() {
    // Any bytes will do for the Bot API; the gateway does not look inside.
    let audio: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    let a = audio.clone();
    let (tg, _, bot, media) = sent(move |tg, token, user| {
        tg.send_voice(token, user, a, 5);
    })
    .await;
    assert_eq!(media.size, Some(audio.len() as u64));
    let got = telegram::download(&bot, &media.file_id, media.size, None).await.unwrap();
    assert_eq!(got, audio);
    assert_eq!(tg.downloads().len(), 1);
}

#[tokio::test]
async fn a_download_cut_short_is_truncated_and_names_no_token() {
    let (tg, token, bot, media) = sent(|tg, token, user| {
        tg.send_document(token, user, vec![7u8; 300_000], "a.txt", "text/plain", None);
    })
    .await;
    tg.inject(&token, Fault::TruncatedDownload { times: 1 });
    let e = telegram::download(&bot, &media.file_id, media.size, None).await.unwrap_err();
    assert!(matches!(e, DownloadError::Truncated { .. }), "{e:?}");
    assert!(!format!("{e:?} {e}").contains(&token));
    assert_eq!(e.member_sentence(), "That file didn't come through completely. Could you send it again?");
    // Sent again, it comes whole.
    let got = telegram::download(&bot, &media.file_id, media.size, None).await.unwrap();
    assert_eq!(got.len(), 300_000);
}

#[tokio::test]
async fn over_the_members_room_nothing_is_fetched() {
    let (tg, _, bot, media) = sent(|tg, token, user| {
        tg.send_document(token, user, vec![1u8; 50_000], "b.csv", "text/csv", None);
    })
    .await;
    let e = telegram::download(&bot, &media.file_id, media.size, Some(10_000)).await.unwrap_err();
    assert_eq!(e, DownloadError::TooLarge { size: Some(50_000), limit: 10_000, why: Limit::Quota });
    // Not said by the message: getFile's size decides, still before the download.
    let e = telegram::download(&bot, &media.file_id, None, Some(10_000)).await.unwrap_err();
    assert!(matches!(e, DownloadError::TooLarge { why: Limit::Quota, .. }), "{e:?}");
    assert!(tg.downloads().is_empty());
}

#[tokio::test]
async fn an_unknown_file_is_refused_with_a_sentence_not_an_error_text() {
    let tg = FakeTelegram::start().await;
    let token = tg.add_bot("media_bot").token;
    let bot = client(&tg, &token);
    let e = telegram::download(&bot, "no-such-file", None, None).await.unwrap_err();
    assert!(matches!(e, DownloadError::Refused(_)), "{e:?}");
    assert!(!e.to_string().contains(&token));
    assert!(e.member_sentence().contains("send it again"));
}
