//! An update → the inbox's [`NewMessage`], or nothing: what a member wrote, pressed or sent.
//!
//! A voice note, audio file, photo or document keeps what is needed to fetch its file later
//! ([`Media`], stored as JSON in the inbox — never the bytes, which are fetched when the turn
//! runs) and its caption as the text. Stickers, videos and the rest are `Unsupported`.

use teloxide::types::{ChatMemberUpdated, Message, MessageEntityKind, PhotoSize, Update, UpdateKind};

use crate::store::{GroupInfo, Media, MessageKind, NewMessage};

/// The most pixels a photo sent to the model may have, on each side and in all. Telegram's
/// largest size is usually 1280 or 2560 on its longer side; a provider scales larger images
/// down anyway (and charges by tiles), so a bigger one only costs memory and upload time.
pub const PHOTO_MAX_SIDE: u32 = 2560;
pub const PHOTO_MAX_PIXELS: u64 = 6_500_000;

/// Turns a Telegram update into an inbox message, if it is one. Edits, reactions, channel posts,
/// messages from bots and messages sent on behalf of a chat (`sender_chat`: a channel, a group's
/// anonymous admin) and everything else are confirmed and dropped: they reach nothing.
pub fn extract_message(update: &Update) -> Option<NewMessage> {
    if let UpdateKind::MyChatMember(change) = &update.kind {
        return membership(update.id.0 as i64, change);
    }
    if let UpdateKind::Error(raw) = &update.kind {
        // A kind teloxide does not know yet; teloxide keeps the update's JSON.
        return stopped_generation(update.id.0 as i64, raw);
    }
    if let UpdateKind::CallbackQuery(q) = &update.kind {
        // A button press. Only presses on our own messages in a private chat count; the data is
        // checked again by whoever acts on it.
        let msg = q.message.as_ref()?;
        if !msg.chat().is_private() || q.from.is_bot {
            return None;
        }
        return Some(NewMessage {
            update_id: update.id.0 as i64,
            chat_id: msg.chat().id.0,
            chat_type: "private".to_owned(),
            from_id: q.from.id.0 as i64,
            from_name: q.from.first_name.clone(),
            kind: MessageKind::Callback,
            text: Some(q.data.clone().unwrap_or_default()),
            sent_at: chrono::Utc::now().timestamp(),
            callback_id: Some(q.id.0.clone()),
            message_id: Some(msg.id().0 as i64),
            media: None,
            group: None,
        });
    }
    let UpdateKind::Message(msg) = &update.kind else { return None };
    let from = msg.from.as_ref()?;
    if from.is_bot || msg.sender_chat.is_some() {
        return None;
    }
    let chat_type = if msg.chat.is_private() {
        "private"
    } else if msg.chat.is_group() {
        "group"
    } else if msg.chat.is_supergroup() {
        "supergroup"
    } else {
        "channel"
    };
    let (kind, text, media) = match msg.text() {
        Some(t) => (MessageKind::Text, Some(t.to_owned()), None),
        None => match media_of(msg) {
            Some((kind, media)) => (kind, msg.caption().map(str::to_owned), Some(media)),
            None => (MessageKind::Unsupported, None, None),
        },
    };
    Some(NewMessage {
        update_id: update.id.0 as i64,
        chat_id: msg.chat.id.0,
        chat_type: chat_type.to_owned(),
        from_id: from.id.0 as i64,
        from_name: from.first_name.clone(),
        kind,
        text,
        sent_at: msg.date.timestamp(),
        callback_id: None,
        message_id: Some(msg.id.0 as i64),
        media,
        group: (chat_type == "group" || chat_type == "supergroup").then(|| group_info(msg)),
    })
}

/// What routing a group message needs: the group's title, the `@username`s and users it
/// mentions (in its text or caption), and whose message it answers.
fn group_info(msg: &Message) -> GroupInfo {
    let mut info = GroupInfo { title: msg.chat.title().unwrap_or_default().to_owned(), ..GroupInfo::default() };
    // Read by hand rather than with teloxide's `parse_entities`, which panics on an entity
    // outside its text (found by the `telegram_update` fuzz target).
    let (text, entities) = match (msg.text(), msg.entities()) {
        (Some(text), Some(entities)) => (text, entities),
        _ => (msg.caption().unwrap_or_default(), msg.caption_entities().unwrap_or_default()),
    };
    let units: Vec<u16> = if entities.is_empty() { Vec::new() } else { text.encode_utf16().collect() };
    for e in entities {
        match &e.kind {
            MessageEntityKind::Mention => {
                let Some(covered) = entity_text(&units, e.offset, e.length) else { continue };
                let name = covered.trim_start_matches('@').to_ascii_lowercase();
                if !name.is_empty() {
                    info.mentions.push(name);
                }
            }
            MessageEntityKind::TextMention { user } => info.mentioned_ids.push(user.id.0 as i64),
            _ => {}
        }
    }
    info.reply_to_user = msg.reply_to_message().and_then(|r| r.from.as_ref()).map(|u| u.id.0 as i64);
    info
}

/// The text an entity covers, from its offset and length in UTF-16 code units; `None` when they
/// fall outside the text or split a character (Telegram never sends that; a fake server may).
fn entity_text(units: &[u16], offset: usize, length: usize) -> Option<String> {
    let covered = units.get(offset..offset.checked_add(length)?)?;
    String::from_utf16(covered).ok()
}

/// The household bot added to, or removed from, a group (`my_chat_member`, a
/// `ChatMemberUpdated`): a [`MessageKind::Membership`] row whose text is the bot's new status.
/// Private chats (a user blocking the bot) and channels are no group's business.
fn membership(update_id: i64, change: &ChatMemberUpdated) -> Option<NewMessage> {
    let chat_type = if change.chat.is_group() {
        "group"
    } else if change.chat.is_supergroup() {
        "supergroup"
    } else {
        return None;
    };
    let status = serde_json::to_value(change.new_chat_member.kind.status()).ok()?;
    Some(NewMessage {
        update_id,
        chat_id: change.chat.id.0,
        chat_type: chat_type.to_owned(),
        from_id: change.from.id.0 as i64,
        from_name: change.from.first_name.clone(),
        kind: MessageKind::Membership,
        text: Some(status.as_str().unwrap_or_default().to_owned()),
        sent_at: change.date.timestamp(),
        callback_id: None,
        message_id: None,
        media: None,
        group: Some(GroupInfo { title: change.chat.title().unwrap_or_default().to_owned(), ..GroupInfo::default() }),
    })
}

/// A member pressing Stop on a draft: the Bot API's `stopped_message_generation` update, a
/// `MessageGenerationStopped` (`chat`, optional `message_thread_id`, `draft_id`). Drafts go to
/// private chats only, so the chat's id is the member's user id. `None` for anything else.
fn stopped_generation(update_id: i64, raw: &serde_json::Value) -> Option<NewMessage> {
    let stopped = raw.get("stopped_message_generation")?;
    let chat = stopped.get("chat")?;
    let chat_id = chat.get("id")?.as_i64()?;
    let draft_id = stopped.get("draft_id")?.as_i64()?;
    if chat.get("type").and_then(serde_json::Value::as_str) != Some("private") || chat_id <= 0 {
        return None;
    }
    Some(NewMessage {
        update_id,
        chat_id,
        chat_type: "private".to_owned(),
        from_id: chat_id,
        from_name: chat.get("first_name").and_then(serde_json::Value::as_str).unwrap_or_default().to_owned(),
        kind: MessageKind::Stop,
        text: Some(draft_id.to_string()),
        sent_at: chrono::Utc::now().timestamp(),
        callback_id: None,
        message_id: None,
        media: None,
        group: None,
    })
}

/// The file a message carries, if it is one Hearth reads: a voice note, an audio file, a photo
/// or a document.
fn media_of(msg: &Message) -> Option<(MessageKind, Media)> {
    let group = msg.media_group_id().map(|g| g.0.clone());
    let base = |file_id: &str, size: u32| Media {
        file_id: file_id.to_owned(),
        // A missing size reads as u32::MAX in teloxide, and some clients say 0: both are
        // "not said" (the download is capped anyway), not an empty or a huge file.
        size: (size > 0 && size < u32::MAX).then_some(u64::from(size)),
        duration_secs: None,
        width: None,
        height: None,
        media_type: None,
        file_name: None,
        media_group_id: group.clone(),
    };
    if let Some(v) = msg.voice() {
        let media = Media {
            duration_secs: Some(v.duration.seconds()),
            media_type: Some(
                v.mime_type.as_ref().map_or_else(|| "audio/ogg".to_owned(), |m| m.essence_str().to_owned()),
            ),
            ..base(&v.file.id.0, v.file.size)
        };
        return Some((MessageKind::Voice, media));
    }
    if let Some(a) = msg.audio() {
        let media = Media {
            duration_secs: Some(a.duration.seconds()),
            media_type: Some(
                a.mime_type.as_ref().map_or_else(|| "audio/mpeg".to_owned(), |m| m.essence_str().to_owned()),
            ),
            file_name: a.file_name.clone(),
            ..base(&a.file.id.0, a.file.size)
        };
        return Some((MessageKind::Audio, media));
    }
    if let Some(sizes) = msg.photo() {
        let p = pick_photo(sizes)?;
        let media = Media {
            width: Some(p.width),
            height: Some(p.height),
            // Telegram re-encodes every photo it stores as JPEG.
            media_type: Some("image/jpeg".to_owned()),
            ..base(&p.file.id.0, p.file.size)
        };
        return Some((MessageKind::Photo, media));
    }
    if let Some(d) = msg.document() {
        let media = Media {
            media_type: d.mime_type.as_ref().map(|m| m.essence_str().to_owned()),
            file_name: d.file_name.clone(),
            ..base(&d.file.id.0, d.file.size)
        };
        return Some((MessageKind::Document, media));
    }
    None
}

/// The size of a photo to show the model: the largest within [`PHOTO_MAX_SIDE`] and
/// [`PHOTO_MAX_PIXELS`], or the smallest if every size is larger (Telegram always offers a
/// small one, so that is a strange photo, but still one).
pub fn pick_photo(sizes: &[PhotoSize]) -> Option<&PhotoSize> {
    let pixels = |p: &PhotoSize| u64::from(p.width) * u64::from(p.height);
    sizes
        .iter()
        .filter(|p| p.width.max(p.height) <= PHOTO_MAX_SIDE && pixels(p) <= PHOTO_MAX_PIXELS)
        .max_by_key(|p| pixels(p))
        .or_else(|| sizes.iter().min_by_key(|p| pixels(p)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_stop_press_becomes_a_stop_row_naming_the_draft() {
        let raw = json!({"update_id": 11, "stopped_message_generation": {
            "chat": {"id": 42, "type": "private", "first_name": "Ana"}, "draft_id": 7
        }});
        let m = stopped_generation(11, &raw).unwrap();
        assert_eq!((m.kind, m.text.as_deref(), m.chat_id, m.from_id), (MessageKind::Stop, Some("7"), 42, 42));
        // Anything else teloxide could not read is dropped, as before.
        assert_eq!(stopped_generation(12, &json!({"update_id": 12, "something_new": {}})), None);
        let group = json!({"update_id": 13, "stopped_message_generation": {
            "chat": {"id": -5, "type": "group", "title": "g"}, "draft_id": 7
        }});
        assert_eq!(stopped_generation(13, &group), None);
    }

    #[test]
    fn odd_updates_are_dropped_not_fatal() {
        let odd = [
            serde_json::json!({"update_id": 5, "edited_message": {"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"}, "text": "x"}}),
            serde_json::json!({"update_id": 6, "something_new": {"a": 1}}),
            serde_json::json!({"update_id": 7, "message": {"message_id": 1, "date": 0, "chat": {"id": -100, "type": "channel", "title": "c"}, "text": "no sender"}}),
        ];
        for v in odd {
            let update: Update = serde_json::from_str(&v.to_string()).unwrap();
            assert_eq!(extract_message(&update), None, "{v}");
        }
        // Parsed from text as real responses are: teloxide's update parser needs borrowed keys.
        let photo: Update = serde_json::from_str(
            &serde_json::json!({"update_id": 8, "message": {
                "message_id": 2, "date": 1700000000,
                "from": {"id": 42, "is_bot": false, "first_name": "Ana"},
                "chat": {"id": 42, "type": "private", "first_name": "Ana"},
                "photo": [{"file_id": "f", "file_unique_id": "u", "file_size": 10, "width": 1, "height": 1}]
            }})
            .to_string(),
        )
        .unwrap();
        let m = extract_message(&photo).unwrap();
        assert_eq!((m.kind, m.text, m.from_id, m.chat_type.as_str()), (MessageKind::Photo, None, 42, "private"));
        // A sticker is still nothing Hearth reads.
        let sticker = parse(json!({"update_id": 9, "message": {
            "message_id": 3, "date": 1700000000,
            "from": {"id": 42, "is_bot": false, "first_name": "Ana"},
            "chat": {"id": 42, "type": "private", "first_name": "Ana"},
            "sticker": {"file_id": "s", "file_unique_id": "su", "width": 512, "height": 512, "is_animated": false, "is_video": false, "type": "regular"}
        }}));
        let m = extract_message(&sticker).unwrap();
        assert_eq!((m.kind, m.media), (MessageKind::Unsupported, None));
    }

    fn parse(v: serde_json::Value) -> Update {
        // Parsed from text as real responses are: teloxide's update parser needs borrowed keys.
        serde_json::from_str(&v.to_string()).unwrap()
    }

    fn message(update_id: i32, body: serde_json::Value) -> Update {
        let mut m = json!({
            "message_id": update_id, "date": 1700000000,
            "from": {"id": 42, "is_bot": false, "first_name": "Ana"},
            "chat": {"id": 42, "type": "private", "first_name": "Ana"},
        });
        for (k, v) in body.as_object().unwrap() {
            m[k] = v.clone();
        }
        parse(json!({"update_id": update_id, "message": m}))
    }

    #[test]
    fn voice_audio_photo_and_document_keep_what_fetching_needs() {
        let voice = extract_message(&message(1, json!({
            "voice": {"file_id": "v1", "file_unique_id": "vu", "duration": 31, "mime_type": "audio/ogg", "file_size": 4096}
        })))
        .unwrap();
        assert_eq!(voice.kind, MessageKind::Voice);
        let media = voice.media.unwrap();
        assert_eq!((media.file_id.as_str(), media.size, media.duration_secs), ("v1", Some(4096), Some(31)));
        assert_eq!(media.media_type.as_deref(), Some("audio/ogg"));

        let audio = extract_message(&message(2, json!({
            "audio": {"file_id": "a1", "file_unique_id": "au", "duration": 5, "file_name": "song.mp3", "mime_type": "audio/mpeg"},
            "caption": "what is this song"
        })))
        .unwrap();
        assert_eq!((audio.kind, audio.text.as_deref()), (MessageKind::Audio, Some("what is this song")));
        assert_eq!(audio.media.unwrap().size, None, "no file_size: not said");

        // Sizes as Telegram sends them, smallest first; the 4000×3000 one is over the cap.
        let photo = extract_message(&message(
            3,
            json!({
                "photo": [
                    {"file_id": "p90", "file_unique_id": "u1", "width": 90, "height": 68, "file_size": 1000},
                    {"file_id": "p1280", "file_unique_id": "u2", "width": 1280, "height": 960, "file_size": 90000},
                    {"file_id": "p2560", "file_unique_id": "u3", "width": 2560, "height": 1920, "file_size": 300000},
                    {"file_id": "p4000", "file_unique_id": "u4", "width": 4000, "height": 3000, "file_size": 900000}
                ],
                "caption": "my homework",
                "media_group_id": "album-7"
            }),
        ))
        .unwrap();
        assert_eq!((photo.kind, photo.text.as_deref()), (MessageKind::Photo, Some("my homework")));
        let media = photo.media.unwrap();
        assert_eq!((media.file_id.as_str(), media.width, media.height), ("p2560", Some(2560), Some(1920)));
        assert_eq!(media.media_group_id.as_deref(), Some("album-7"));

        let doc = extract_message(&message(4, json!({
            "document": {"file_id": "d1", "file_unique_id": "du", "file_name": "letter.pdf", "mime_type": "application/pdf", "file_size": 12345}
        })))
        .unwrap();
        assert_eq!((doc.kind, doc.text), (MessageKind::Document, None));
        let media = doc.media.unwrap();
        assert_eq!(
            (media.file_name.as_deref(), media.media_type.as_deref()),
            (Some("letter.pdf"), Some("application/pdf"))
        );
    }

    #[test]
    fn only_huge_sizes_still_give_the_smallest() {
        let photo = extract_message(&message(
            5,
            json!({
                "photo": [
                    {"file_id": "big", "file_unique_id": "u1", "width": 9000, "height": 9000},
                    {"file_id": "bigger", "file_unique_id": "u2", "width": 12000, "height": 9000}
                ]
            }),
        ))
        .unwrap();
        assert_eq!(photo.media.unwrap().file_id, "big");
    }

    /// An entity past the end of the text, or splitting a character, is no mention — and no panic
    /// (teloxide's own entity parser panics on it; the `telegram_update` fuzz target found it).
    #[test]
    fn entities_outside_the_text_are_ignored() {
        let group = json!({"id": -100123, "type": "supergroup", "title": "Family"});
        for entities in [
            json!([{"type": "mention", "offset": 5, "length": 16}]),
            json!([{"type": "mention", "offset": 0, "length": usize::MAX}]),
            json!([{"type": "mention", "offset": 1, "length": 2}]),
        ] {
            let m = extract_message(&message(3, json!({"chat": group, "text": "🏠 @home_bot hi", "entities": entities})))
                .unwrap();
            assert_eq!(m.group.unwrap().mentions, Vec::<String>::new(), "{entities}");
        }
    }

    /// A group message keeps its title, its mentions (entity offsets are UTF-16) and whose
    /// message it answers; a message on behalf of a channel and one from a bot are dropped.
    #[test]
    fn group_messages_keep_mentions_and_replies_and_chats_speaking_are_dropped() {
        let group = json!({"id": -100123, "type": "supergroup", "title": "Family"});
        let m = extract_message(&message(3, json!({
            "chat": group,
            "text": "🏠 @Home_Bot who picks up Sam?",
            "entities": [{"type": "mention", "offset": 3, "length": 9},
                         {"type": "text_mention", "offset": 13, "length": 3,
                          "user": {"id": 9, "is_bot": false, "first_name": "Bo"}}],
            "reply_to_message": {"message_id": 1, "date": 1700000000, "chat": group,
                                 "from": {"id": 555, "is_bot": true, "first_name": "Home", "username": "home_bot"},
                                 "text": "earlier"}
        })))
        .unwrap();
        assert_eq!(m.chat_type, "supergroup");
        let info = m.group.unwrap();
        assert_eq!(info.title, "Family");
        assert_eq!(info.mentions, vec!["home_bot".to_owned()]);
        assert_eq!(info.mentioned_ids, vec![9]);
        assert_eq!(info.reply_to_user, Some(555));
        let private = extract_message(&message(4, json!({"text": "hi"}))).unwrap();
        assert_eq!(private.group, None);
        let channel = message(5, json!({
            "chat": {"id": -100123, "type": "supergroup", "title": "Family"},
            "from": {"id": 136817688, "is_bot": true, "first_name": "Channel", "username": "Channel_Bot"},
            "sender_chat": {"id": -100777, "type": "channel", "title": "News"},
            "text": "@home_bot hello"
        }));
        assert_eq!(extract_message(&channel), None);
        let anonymous = message(6, json!({
            "chat": {"id": -100123, "type": "supergroup", "title": "Family"},
            "sender_chat": {"id": -100123, "type": "supergroup", "title": "Family"},
            "text": "@home_bot hello"
        }));
        assert_eq!(extract_message(&anonymous), None);
    }

    #[test]
    fn being_added_to_a_group_is_a_membership_row() {
        let added = parse(json!({"update_id": 8, "my_chat_member": {
            "chat": {"id": -42, "type": "group", "title": "Us"},
            "from": {"id": 7, "is_bot": false, "first_name": "Ana"},
            "date": 1700000000,
            "old_chat_member": {"status": "left", "user": {"id": 555, "is_bot": true, "first_name": "Home"}},
            "new_chat_member": {"status": "member", "user": {"id": 555, "is_bot": true, "first_name": "Home"}}
        }}));
        let m = extract_message(&added).unwrap();
        assert_eq!((m.kind, m.chat_id, m.from_id, m.text.as_deref()), (MessageKind::Membership, -42, 7, Some("member")));
        assert_eq!(m.group.unwrap().title, "Us");
        let blocked = parse(json!({"update_id": 9, "my_chat_member": {
            "chat": {"id": 7, "type": "private", "first_name": "Ana"},
            "from": {"id": 7, "is_bot": false, "first_name": "Ana"},
            "date": 1700000000,
            "old_chat_member": {"status": "member", "user": {"id": 555, "is_bot": true, "first_name": "Home"}},
            "new_chat_member": {"status": "kicked", "until_date": 0, "user": {"id": 555, "is_bot": true, "first_name": "Home"}}
        }}));
        assert_eq!(extract_message(&blocked), None);
    }
}
