//! The files of a chat turn, before its worker is asked: each voice note, audio file, photo or
//! document is fetched from Telegram into memory (`telegram::download`, capped by the Bot API's
//! 20 MB and the member's room on disk), a voice note or audio file is transcribed through the
//! broker (its transcript becomes the message's text, and the reply starts with a short quote of
//! what was heard), and the bytes are held for the turn: streamed to the worker in chunks before
//! the `Turn` (`Workers::run_turn`), and a photo shown to the model when a request names it
//! (`workers::rules::TurnFiles`). Nothing of a file is written on the gateway's side.
//!
//! A file that cannot be had — over a limit, empty, cut off, not heard — gets its own plain
//! sentence, its row is closed, and the rest of the turn goes on without it; only when nothing is
//! left does the turn end there. The inbox row keeps the `file_id` until it is answered, so a
//! restart in the middle fetches the file again.

use std::sync::Arc;

use chrono::TimeZone as _;
use hearth_proto::control::TurnActivity;
use hearth_proto::worker::{Attachment, AttachmentKind, IncomingMessage, MAX_ATTACHMENTS_PER_TURN};

use super::{Engine, Event};
use crate::broker::speech::TranscribeError;
use crate::store::{InboxRow, Media, MessageKind};
use crate::telegram;
use crate::workers::rules::{TurnFile, TurnFiles};

/// What a chat turn's rows became once their files were fetched and heard.
#[derive(Default)]
pub(super) struct Prepared {
    /// The messages for the worker, in row order; a row closed here has none.
    pub(super) messages: Vec<IncomingMessage>,
    /// The bytes to stream before the turn, and the photos the model may be shown.
    pub(super) files: TurnFiles,
    /// What was heard in each voice note, for the quote before the reply.
    pub(super) heard: Vec<String>,
    /// Rows answered here (their sentence sent), not by the turn.
    pub(super) closed: Vec<i64>,
}

/// Longest quote of what was heard, in characters; the whole transcript still reaches the model.
const QUOTE_CHARS: usize = 200;

/// What a member reads when a row says it carried a file the gateway cannot describe (its media
/// could not be read back from the inbox).
const FILE_LOST: &str = "Something went wrong with that file on my side. Could you send it again?";

/// What a member reads for the files past [`MAX_ATTACHMENTS_PER_TURN`] in one turn.
fn too_many() -> String {
    format!(
        "That's more files than I can take at once — I looked at the first {MAX_ATTACHMENTS_PER_TURN}. Send the rest afterwards."
    )
}

/// Fetches, hears and holds the files of a chat turn's `rows`; `None` when the gateway began
/// to stop meanwhile — the rows not yet answered stay pending, and the next start fetches
/// their files again.
pub(super) async fn prepare(
    engine: &Engine,
    member_id: &str,
    bot: &teloxide::Bot,
    chat_id: i64,
    rows: &[&InboxRow],
) -> Option<Prepared> {
    tokio::select! {
        _ = engine.cancel.cancelled() => None,
        prepared = prepare_all(engine, member_id, bot, chat_id, rows) => Some(prepared),
    }
}

async fn prepare_all(
    engine: &Engine,
    member_id: &str,
    bot: &teloxide::Bot,
    chat_id: i64,
    rows: &[&InboxRow],
) -> Prepared {
    let mut out = Prepared::default();
    let mut files = Vec::new();
    // What the member's folder still takes (`None`: no quota, or not measured yet); each file
    // the turn brings counts against it.
    let mut room = engine.quotas.usage(member_id).and_then(|u| u.quota_bytes.map(|q| q.saturating_sub(u.bytes)));
    let mut taken = 0usize;
    for row in rows {
        let caption = row.msg.text.clone().unwrap_or_default();
        if !row.msg.kind.has_media() {
            out.messages.push(message(row, caption, None));
            continue;
        }
        let Some(media) = &row.msg.media else {
            close(engine, member_id, chat_id, row.id, FILE_LOST.to_owned(), "file_lost", &mut out);
            continue;
        };
        if taken == MAX_ATTACHMENTS_PER_TURN {
            close(engine, member_id, chat_id, row.id, too_many(), "too_many_files", &mut out);
            continue;
        }
        taken += 1;
        if matches!(row.msg.kind, MessageKind::Voice | MessageKind::Audio) {
            doing(engine, member_id, TurnActivity::Listening);
        }
        let bytes = match telegram::download(bot, &media.file_id, media.size, room).await {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::info!(member = member_id, row = row.id, error = %e, "a file could not be fetched");
                close(engine, member_id, chat_id, row.id, e.member_sentence(), e.outcome(), &mut out);
                continue;
            }
        };
        room = room.map(|r| r.saturating_sub(bytes.len() as u64));
        let kind = attachment_kind(row.msg.kind);
        let media_type = match kind {
            // A provider checks an image's stated type against its bytes (Anthropic refuses a
            // mismatch); Telegram's photos are JPEG, but say so from the bytes, not by habit.
            AttachmentKind::Photo => image_type_of(&bytes).to_owned(),
            _ => media.media_type.clone().unwrap_or_else(|| default_type(kind).to_owned()),
        };
        let file_name = file_name(engine, kind, media, &media_type, row.msg.sent_at);
        let attachment = Attachment {
            kind,
            file_name: file_name.clone(),
            media_type: media_type.clone(),
            size: bytes.len() as u64,
            duration_secs: media.duration_secs,
        };
        let bytes: Arc<[u8]> = bytes.into();
        let text = match kind {
            AttachmentKind::Voice | AttachmentKind::Audio => {
                let duration = media.duration_secs.unwrap_or(0);
                let heard = engine
                    .broker
                    .transcribe(member_id, chat_id, bytes.to_vec(), &file_name, &media_type, duration)
                    .await;
                match heard {
                    Ok(transcript) => {
                        let _ = engine.events.send(Event::Speech { hint: None });
                        out.heard.push(transcript.clone());
                        if caption.trim().is_empty() { transcript } else { format!("{transcript}\n\n{caption}") }
                    }
                    Err(e) => {
                        tracing::info!(member = member_id, row = row.id, error = %e, "a voice note could not be transcribed");
                        speech_trouble(engine, &e);
                        close(engine, member_id, chat_id, row.id, e.member_sentence(), "not_transcribed", &mut out);
                        continue;
                    }
                }
            }
            AttachmentKind::Photo | AttachmentKind::Document => caption,
        };
        let image_type = (kind == AttachmentKind::Photo).then(|| media_type.clone());
        files.push(TurnFile { inbox_id: row.id, bytes, image_type });
        out.messages.push(message(row, text, Some(attachment)));
    }
    out.files = TurnFiles::new(files);
    out
}

/// Tells the dashboard what the member's turn does now.
pub(super) fn doing(engine: &Engine, member_id: &str, doing: TurnActivity) {
    let _ = engine.events.send(Event::Doing { member_id: member_id.to_owned(), doing });
}

/// A transcription that failed in a way the admin can fix is told to them — once, until one
/// works again (the core loop keeps that state); any other failure says nothing to them.
fn speech_trouble(engine: &Engine, e: &TranscribeError) {
    if let Some(hint) = e.admin_hint() {
        let _ = engine.events.send(Event::Speech { hint: Some(hint) });
    }
}

fn message(row: &InboxRow, text: String, attachment: Option<Attachment>) -> IncomingMessage {
    IncomingMessage { inbox_id: row.id, text, sent_at: row.msg.sent_at, attachment }
}

/// Sends a row's own sentence and closes it, off this task.
fn close(
    engine: &Engine,
    member_id: &str,
    chat_id: i64,
    row_id: i64,
    text: String,
    outcome: &'static str,
    out: &mut Prepared,
) {
    engine.reply_and_finish(member_id, chat_id, text, row_id, outcome);
    out.closed.push(row_id);
}

fn attachment_kind(kind: MessageKind) -> AttachmentKind {
    match kind {
        MessageKind::Voice => AttachmentKind::Voice,
        MessageKind::Audio => AttachmentKind::Audio,
        MessageKind::Photo => AttachmentKind::Photo,
        _ => AttachmentKind::Document,
    }
}

/// An image's media type from its first bytes: JPEG, PNG, GIF or WebP — the four both providers
/// take. Anything else is called JPEG, what Telegram sends photos as; the worker checks the header
/// and refuses an image that does not decode before any model sees it.
fn image_type_of(bytes: &[u8]) -> &'static str {
    match bytes {
        [0x89, b'P', b'N', b'G', ..] => "image/png",
        [b'G', b'I', b'F', b'8', ..] => "image/gif",
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => "image/webp",
        _ => "image/jpeg",
    }
}

fn default_type(kind: AttachmentKind) -> &'static str {
    match kind {
        AttachmentKind::Voice => "audio/ogg",
        AttachmentKind::Audio => "audio/mpeg",
        AttachmentKind::Photo => "image/jpeg",
        AttachmentKind::Document => "application/octet-stream",
    }
}

/// The usual extension for a media type, for a file that came without a name.
fn extension(media_type: &str) -> &'static str {
    match media_type {
        "audio/ogg" | "audio/opus" => "ogg",
        "audio/mpeg" | "audio/mp3" => "mp3",
        "audio/mp4" | "audio/m4a" | "audio/x-m4a" => "m4a",
        "audio/wav" | "audio/x-wav" | "audio/wave" => "wav",
        "audio/flac" | "audio/x-flac" => "flac",
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/webp" => "webp",
        "application/pdf" => "pdf",
        "text/plain" => "txt",
        "text/markdown" => "md",
        "text/csv" => "csv",
        _ => "bin",
    }
}

/// The name the worker keeps the file under: the sender's own name cleaned (documents, audio
/// files), else what it is and when it was sent in the household's zone — `voice 2026-12-07
/// 19-04.ogg`. The worker checks it again and never replaces a file with it.
fn file_name(engine: &Engine, kind: AttachmentKind, media: &Media, media_type: &str, sent_at: i64) -> String {
    if let Some(name) = media.file_name.as_deref().and_then(clean_name) {
        return name;
    }
    let tz = engine.broker.timezone();
    let when = tz
        .timestamp_opt(sent_at, 0)
        .single()
        .map_or_else(|| "undated".to_owned(), |t| t.format("%Y-%m-%d %H-%M-%S").to_string());
    let what = match kind {
        AttachmentKind::Voice => "voice",
        AttachmentKind::Audio => "audio",
        AttachmentKind::Photo => "photo",
        AttachmentKind::Document => "document",
    };
    format!("{what} {when}.{}", extension(media_type))
}

/// A sender's file name made plain: no folder, no control character, no leading dot, at most
/// 100 characters (the extension kept); `None` when nothing usable is left.
pub(super) fn clean_name(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base.chars().filter(|c| !c.is_control()).collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim();
    if cleaned.is_empty() || cleaned == ".." {
        return None;
    }
    const MAX: usize = 100;
    if cleaned.chars().count() <= MAX {
        return Some(cleaned.to_owned());
    }
    let (stem, ext) = match cleaned.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.chars().count() <= 10 => (stem, Some(ext)),
        _ => (cleaned, None),
    };
    let keep = MAX - ext.map_or(0, |e| e.chars().count() + 1);
    let mut out: String = stem.chars().take(keep).collect();
    if let Some(ext) = ext {
        out.push('.');
        out.push_str(ext);
    }
    Some(out)
}

/// The reply with what was heard quoted first: `🎤 “…”` on its own line per voice note, cut at
/// [`QUOTE_CHARS`]. The quote is the member's words, so every Markdown character in it is
/// escaped: the reply renderer then shows it as written.
pub(super) fn with_quotes(heard: &[String], reply: &str) -> String {
    if heard.is_empty() {
        return reply.to_owned();
    }
    let mut out = String::new();
    for h in heard {
        let flat = h.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut quote: String = flat.chars().take(QUOTE_CHARS).collect();
        if quote.len() < flat.len() {
            quote.push('…');
        }
        out.push_str("🎤 “");
        for c in quote.chars() {
            if c.is_ascii_punctuation() {
                out.push('\\');
            }
            out.push(c);
        }
        out.push_str("”\n\n");
    }
    out.push_str(reply);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telegram::reply::render_reply;

    #[test]
    fn a_photo_is_named_by_its_bytes() {
        assert_eq!(image_type_of(b"\xff\xd8\xff\xe0rest"), "image/jpeg");
        assert_eq!(image_type_of(&hearth_sim_png()), "image/png");
        assert_eq!(image_type_of(b"GIF89a.."), "image/gif");
        assert_eq!(image_type_of(b"RIFF\x10\0\0\0WEBPVP8 "), "image/webp");
        assert_eq!(image_type_of(b""), "image/jpeg");
    }

    /// A PNG's signature, as the fakes' photos start.
    fn hearth_sim_png() -> Vec<u8> {
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec()
    }

    #[test]
    fn names_are_plain_and_bounded() {
        assert_eq!(clean_name("letter.pdf").as_deref(), Some("letter.pdf"));
        assert_eq!(clean_name("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(clean_name("C:\\Users\\a\\report.csv").as_deref(), Some("report.csv"));
        assert_eq!(clean_name(".hidden").as_deref(), Some("hidden"));
        assert_eq!(clean_name("a\u{0}b\nc.txt").as_deref(), Some("abc.txt"));
        for nothing in ["", "..", "/", "  ", "dir/"] {
            assert_eq!(clean_name(nothing), None, "{nothing:?}");
        }
        let long = format!("{}.pdf", "x".repeat(300));
        let cut = clean_name(&long).unwrap();
        assert_eq!(cut.chars().count(), 100);
        assert!(cut.ends_with(".pdf"));
    }

    #[test]
    fn the_quote_comes_first_cut_and_shown_as_said() {
        let reply = with_quotes(&["Is <b>5 * 3</b> = _15_? [yes](http://x)".into()], "**Yes**, 15.");
        let chunks = render_reply(&reply, 4000);
        assert_eq!(chunks.len(), 1);
        let html = &chunks[0].html;
        assert!(html.starts_with("🎤 “Is &lt;b&gt;5 * 3&lt;/b&gt; = _15_? [yes](http://x)”"), "{html}");
        assert!(html.contains("<b>Yes</b>, 15."), "{html}");
        let long = "word ".repeat(100);
        let reply = with_quotes(&[long], "ok");
        let first = reply.lines().next().unwrap();
        assert!(first.ends_with("…”") && first.chars().count() < QUOTE_CHARS + 10, "{first}");
        assert_eq!(with_quotes(&[], "plain"), "plain");
    }
}
