//! The store's unit tests, across its tables.

use hearth_proto::control::Role;
use rusqlite::Connection;

use super::*;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("g.sqlite")).unwrap();
    (dir, s)
}

fn member(id: &str, bot_id: i64) -> MemberRow {
    MemberRow {
        seq: 0,
        id: id.into(),
        name: id.to_uppercase(),
        persona: String::new(),
        telegram_user_id: None,
        chat_id: None,
        created_at: 1,
        bot_id,
        bot_username: format!("{id}_bot"),
        next_offset: 0,
        is_admin: false,
        cap_daily_micros: None,
        cap_monthly_micros: None,
        fallback_model: None,
        role: Role::Adult,
        paused: false,
        paused_until: None,
        model: None,
        quiet_hours: None,
        voice_replies: Default::default(),
        streaming: true,
        alerts: Default::default(),
    }
}

fn msg(update_id: i64, text: &str) -> NewMessage {
    NewMessage {
        update_id,
        chat_id: 7,
        chat_type: "private".into(),
        from_id: 7,
        from_name: "Ana".into(),
        kind: MessageKind::Text,
        text: Some(text.into()),
        sent_at: 1,
        callback_id: None,
        message_id: Some(update_id),
        media: None,
        group: None,
    }
}

#[test]
fn inbox_dedupes_redelivered_updates_and_advances_offset() {
    let (_d, s) = store();
    s.call_sync(|c| {
        insert_member(c, &member("ana", 11))?;
        let first = commit_updates(c, "ana", 11, &[msg(5, "a"), msg(6, "b")], 7)?;
        assert_eq!(first.len(), 2);
        // Telegram redelivers 6 (offset was never confirmed) plus a new 7.
        let again = commit_updates(c, "ana", 11, &[msg(6, "b"), msg(7, "c")], 8)?;
        assert_eq!(again.iter().map(|r| r.msg.update_id).collect::<Vec<_>>(), vec![7]);
        assert_eq!(find_member(c, "ana")?.unwrap().next_offset, 8);
        // The offset never goes backwards.
        commit_updates(c, "ana", 11, &[], 3)?;
        assert_eq!(find_member(c, "ANA")?.unwrap().next_offset, 8);
        let pending = pending_inbox(c)?;
        assert_eq!(pending.len(), 3);
        finish_inbox(c, &[pending[0].id], "done", "replied")?;
        let left = pending_inbox(c)?;
        assert_eq!(left.len(), 2);
        let text: Option<String> = c.query_row("SELECT text FROM inbox WHERE id = ?1", [pending[0].id], |r| r.get(0))?;
        assert_eq!(text, None, "finished rows keep no text");
        Ok(())
    })
    .unwrap();
}

#[test]
fn pairing_codes_are_single_use_member_bound_and_expire() {
    let (_d, s) = store();
    s.call_sync(|c| {
        insert_member(c, &member("ana", 11))?;
        insert_member(c, &member("bo", 12))?;
        insert_pairing(c, "ana", "AAAA2222", 100, 3600)?;
        assert!(!redeem_pairing(c, "bo", "AAAA2222", 9, 101)?, "another member's code");
        assert!(!redeem_pairing(c, "ana", "AAAA2222", 9, 3700)?, "expired");
        assert!(redeem_pairing(c, "ana", "AAAA2222", 9, 200)?);
        assert!(!redeem_pairing(c, "ana", "AAAA2222", 9, 201)?, "single use");
        Ok(())
    })
    .unwrap();
}

#[test]
fn at_most_three_codes_pending_per_member() {
    let (_d, s) = store();
    s.call_sync(|c| {
        insert_member(c, &member("ana", 11))?;
        for (i, code) in ["C1", "C2", "C3", "C4"].iter().enumerate() {
            insert_pairing(c, "ana", code, 100 + i as i64, 3600)?;
        }
        assert!(!redeem_pairing(c, "ana", "C1", 9, 200)?, "oldest retired");
        for code in ["C2", "C3", "C4"] {
            assert!(redeem_pairing(c, "ana", code, 9, 200)?, "{code}");
        }
        Ok(())
    })
    .unwrap();
}

#[test]
fn strangers_get_one_reply_per_window() {
    let (_d, s) = store();
    s.call_sync(|c| {
        assert!(stranger_may_reply(c, 1, 99, 1000, 3600)?);
        assert!(!stranger_may_reply(c, 1, 99, 1500, 3600)?);
        assert!(stranger_may_reply(c, 2, 99, 1500, 3600)?, "other bot");
        assert!(stranger_may_reply(c, 1, 99, 4600, 3600)?);
        Ok(())
    })
    .unwrap();
}

#[test]
fn removing_a_member_clears_their_in_flight_text() {
    let (_d, s) = store();
    s.call_sync(|c| {
        insert_member(c, &member("ana", 11))?;
        commit_updates(c, "ana", 11, &[msg(5, "private words")], 6)?;
        delete_member(c, "ana")?;
        assert!(pending_inbox(c)?.is_empty());
        let n: i64 = c.query_row("SELECT COUNT(*) FROM inbox WHERE text IS NOT NULL", [], |r| r.get(0))?;
        assert_eq!(n, 0);
        assert!(find_member(c, "ana")?.is_none());
        Ok(())
    })
    .unwrap();
}

#[test]
fn member_settings_and_bot_replacement() {
    let (_d, s) = store();
    s.call_sync(|c| {
        let mut m = member("ana", 11);
        m.role = Role::Child;
        insert_member(c, &m)?;
        assert_eq!(find_member(c, "ana")?.unwrap().role, Role::Child);
        update_member_settings(c, "ana", Some(Role::Teen), Some("likes chess"), Some(Some("small-model")))?;
        set_member_paused(c, "ana", true, None)?;
        let got = find_member(c, "ana")?.unwrap();
        assert_eq!(
            (got.role, got.persona.as_str(), got.model.as_deref(), got.paused, got.paused_until),
            (Role::Teen, "likes chess", Some("small-model"), true, None)
        );
        // A timed pause ends only once due, and only the pause it was.
        set_member_paused(c, "ana", true, Some(1000))?;
        assert_eq!(find_member(c, "ana")?.unwrap().paused_until, Some(1000));
        assert!(!resume_if_due(c, "ana", 999)?);
        assert!(resume_if_due(c, "ana", 1000)?);
        let got = find_member(c, "ana")?.unwrap();
        assert_eq!((got.paused, got.paused_until), (false, None));
        assert!(!resume_if_due(c, "ana", 2000)?, "not paused");
        set_member_paused(c, "ana", true, None)?;
        assert!(!resume_if_due(c, "ana", 2000)?, "paused until resumed");
        set_member_paused(c, "ana", false, Some(5))?;
        assert_eq!(find_member(c, "ana")?.unwrap().paused_until, None, "an end only with a pause");
        set_member_paused(c, "ana", true, None)?;
        update_member_settings(c, "ana", None, None, Some(None))?;
        let got = find_member(c, "ana")?.unwrap();
        assert_eq!((got.role, got.persona.as_str(), got.model), (Role::Teen, "likes chess", None), "None keeps");

        commit_updates(c, "ana", 11, &[msg(5, "a")], 6)?;
        replace_bot(c, "ana", 11, "ana_bot")?;
        assert_eq!(find_member(c, "ana")?.unwrap().next_offset, 6, "same bot, new token: offset kept");
        replace_bot(c, "ana", 21, "ana_new_bot")?;
        let got = find_member(c, "ana")?.unwrap();
        assert_eq!((got.bot_id, got.bot_username.as_str(), got.next_offset), (21, "ana_new_bot", 0));

        // Last activity counts the paired member's messages only.
        assert_eq!(last_activity(c)?, vec![]);
        bind_telegram_user(c, "ana", 7, 7, 1)?;
        let mut stranger = msg(9, "hi");
        stranger.from_id = 99;
        commit_updates(c, "ana", 21, &[stranger], 10)?;
        let seen = last_activity(c)?;
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0, "ana");
        Ok(())
    })
    .unwrap();
}

#[test]
fn a_newer_schema_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.sqlite");
    {
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
    }
    let err = Store::open(&path).err().unwrap().to_string();
    assert!(err.contains("newer"), "{err}");
}

#[test]
fn alert_rows_and_each_members_alert_setting_are_kept() {
    let (_d, s) = store();
    s.call_sync(|c| {
        insert_member(c, &member("ana", 11))?;
        assert_eq!(find_member(c, "ana")?.unwrap().alerts, hearth_proto::control::AlertLevel::All, "the default");
        set_member_alerts(c, "ana", hearth_proto::control::AlertLevel::Important)?;
        assert_eq!(find_member(c, "ana")?.unwrap().alerts, hearth_proto::control::AlertLevel::Important);

        let row = AlertRow {
            key: "bot:ana".into(),
            raised_at: 10,
            detail: "token_revoked".into(),
            told_at: Some(10),
            cleared_at: None,
            cleared_told_at: None,
        };
        put_alert(c, &row)?;
        let cleared = AlertRow { cleared_at: Some(20), ..row.clone() };
        put_alert(c, &cleared)?;
        put_alert(c, &AlertRow { key: "disk".into(), detail: "93".into(), ..row })?;
        assert_eq!(get_alert(c, "bot:ana")?, Some(cleared));
        assert_eq!(list_alerts(c)?.iter().map(|a| a.key.as_str()).collect::<Vec<_>>(), ["bot:ana", "disk"]);
        delete_alert(c, "bot:ana")?;
        assert_eq!(get_alert(c, "bot:ana")?, None);
        Ok(())
    })
    .unwrap();
}

#[test]
fn activity_reads_settled_spend_per_member_day_and_message_times_without_taps() {
    let (_d, s) = store();
    s.call_sync(|c| {
        insert_member(c, &member("ana", 11))?;
        let call = |day: &str, micros: u64, outcome: &str| -> Result<(), StoreError> {
            let r = LedgerReservation {
                member_id: "ana".into(),
                chat_id: None,
                provider: "openai".into(),
                model: "m".into(),
                reserved_input_tokens: 1,
                reserved_output_tokens: 1,
                reserved_micros: micros,
                day_key: day.into(),
                month_key: day[..7].into(),
                kind: LedgerKind::Chat,
                audio_seconds: 0,
                images: 0,
                characters: 0,
            };
            let id = ledger_reserve(c, &r, 1)?;
            let settled = LedgerSettlement {
                model: "m".into(),
                input_tokens: 1,
                output_tokens: 1,
                cached_input_tokens: 0,
                cache_write_tokens: 0,
                attempts: 1,
                latency_ms: 1,
                outcome: outcome.into(),
                cost_micros: micros,
            };
            ledger_settle(c, id, &settled, 2)
        };
        call("2026-11-30", 1_000, "ok")?;
        call("2026-12-01", 2_000, "ok")?;
        call("2026-12-01", 3_000, "ok")?;
        call("2026-12-01", 9_000, "http_500")?; // released: not spend
        call("2027-01-01", 4_000, "ok")?;
        assert_eq!(
            member_per_day(c, "2026-12-01", "2026-12-31")?,
            vec![("ana".to_owned(), "2026-12-01".to_owned(), 5_000)]
        );

        let mut tap = msg(7, "");
        tap.kind = MessageKind::Callback;
        commit_updates(c, "ana", 11, &[msg(5, "a"), msg(6, "b"), tap], 8)?;
        c.execute("UPDATE inbox SET received_at = 1000 + update_id", [])?;
        assert_eq!(message_times(c, 1000, 1006)?, vec![("ana".to_owned(), 1005)]);
        assert_eq!(message_times(c, 0, i64::MAX)?, vec![("ana".to_owned(), 1005), ("ana".to_owned(), 1006)]);
        Ok(())
    })
    .unwrap();
}
