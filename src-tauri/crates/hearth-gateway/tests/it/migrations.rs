//! Upgrades: a `gateway.sqlite` of every earlier schema, frozen as it shipped
//! (`tests/fixtures/gateway-schema-N.sql`), opens with today's `Store`: migrated forward to the
//! current version with nothing lost — members, pairings, the bot offsets, a message still
//! waiting for its answer, the ledger, spend settings.

use std::path::{Path, PathBuf};

use hearth_gateway::store::{self, SCHEMA_VERSION, Store};
use hearth_proto::control::VoiceReplies;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Builds the database a user of schema `n` has on disk.
fn shipped(n: i64, dir: &Path) -> PathBuf {
    let sql = std::fs::read_to_string(fixtures().join(format!("gateway-schema-{n}.sql"))).unwrap();
    let path = dir.join(format!("gateway-{n}.sqlite"));
    rusqlite::Connection::open(&path).unwrap().execute_batch(&sql).unwrap();
    path
}

#[test]
fn there_is_a_frozen_database_for_every_earlier_schema() {
    for n in 1..SCHEMA_VERSION {
        assert!(
            fixtures().join(format!("gateway-schema-{n}.sql")).exists(),
            "schema {n} has no fixture: before adding migration {}, freeze a database of schema {n} \
             (tests/fixtures/gateway-schema-{n}.sql, like the others)",
            n + 1
        );
    }
}

#[tokio::test]
async fn every_earlier_schema_upgrades_with_nothing_lost() {
    let dir = tempfile::tempdir().unwrap();
    for n in (1..=SCHEMA_VERSION).filter(|n| fixtures().join(format!("gateway-schema-{n}.sql")).exists()) {
        let path = shipped(n, dir.path());
        let db = Store::open(&path).unwrap_or_else(|e| panic!("schema {n} did not open: {e}"));
        let (version, members, pending, provider, ledger, voice) = db
            .call(|c| {
                let version: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
                let members = store::list_members(c)?;
                let pending = store::pending_inbox(c)?;
                let provider = store::get_setting(c, "provider.model")?;
                let ledger: (i64, i64) =
                    c.query_row("SELECT COUNT(*), SUM(input_tokens) FROM ledger", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
                let voice = store::get_setting(c, "voice.model")?;
                Ok((version, members, pending, provider, ledger, voice))
            })
            .await
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION, "schema {n} was migrated to the current version");
        let rosa = members.iter().find(|m| m.name == "Rosa").unwrap_or_else(|| panic!("schema {n}: Rosa is gone"));
        assert_eq!((rosa.telegram_user_id, rosa.bot_username.as_str(), rosa.next_offset), (Some(7001), "rosa_family_bot", 42));
        assert_eq!(rosa.persona, "Likes gardening.");
        assert!(members.iter().any(|m| m.name == "Leo" && m.telegram_user_id.is_none()), "schema {n}: Leo");
        assert_eq!(pending.len(), 1, "schema {n}: the message still waiting for its answer");
        assert_eq!(pending[0].msg.text.as_deref(), Some("are you still there?"));
        assert_eq!(provider.as_deref(), Some("gpt-4o-mini"));
        assert_eq!(ledger, (1, 812), "schema {n}: the ledger");
        // Members from before see replies as they are written, as new ones do; Leo turned it
        // off at schema 8, and that is kept.
        let leo = members.iter().find(|m| m.name == "Leo").unwrap();
        assert!(rosa.streaming, "schema {n}: streaming is on");
        assert_eq!(leo.streaming, n < 8, "schema {n}: Leo's streaming");
        if n >= 2 {
            assert!(rosa.is_admin);
            assert_eq!((rosa.cap_daily_micros, rosa.cap_monthly_micros), (Some(1_000_000), Some(5_000_000)));
            assert_eq!(rosa.fallback_model.as_deref(), Some("gpt-4o-mini"));
        } else {
            // Members from before spend control start without caps.
            assert!(!rosa.is_admin && rosa.cap_daily_micros.is_none());
        }
        // A voice service of its own, set at schema 7, is kept.
        assert_eq!(voice.as_deref(), (n >= 7).then_some("kokoro"), "schema {n}: the voice service");
        // Voice replies came with schema 7: everyone before starts at "when spoken".
        assert!(members.iter().all(|m| m.voice_replies == VoiceReplies::WhenSpoken), "schema {n}: voice replies");
        // Alerts and pauses that end came with schema 9: admins from before hear everything.
        let (alerts, paused_until, told): (String, Option<i64>, i64) = db
            .call(|c| {
                let (a, p) = c.query_row("SELECT (SELECT alerts FROM members WHERE id = 'm-rosa'), (SELECT paused_until FROM members WHERE id = 'm-leo')", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
                let t = c.query_row("SELECT COUNT(*) FROM alerts WHERE cleared_at IS NULL", [], |r| r.get(0))?;
                Ok((a, p, t))
            })
            .await
            .unwrap();
        if n >= 9 {
            assert_eq!((alerts.as_str(), paused_until, told), ("important", Some(1_763_780_000), 1), "schema {n}: alerts");
        } else {
            assert_eq!((alerts.as_str(), paused_until, told), ("all", None, 0), "schema {n}: alerts");
        }
        // The household bot and groups came with schema 10: none before; the waiting message
        // reads with no group context (a private chat), and the household's tables work.
        assert_eq!(pending[0].msg.group, None, "schema {n}: no group context");
        let (bot, groups) = db
            .call(|c| {
                let bot = store::household_bot(c)?;
                store::see_group(c, -100, "Family", true, 1)?;
                Ok((bot, store::list_groups(c)?))
            })
            .await
            .unwrap();
        assert_eq!(bot, None, "schema {n}: no household bot");
        assert_eq!(groups.len(), 1, "schema {n}: groups");
        assert_eq!(groups[0].state, hearth_proto::control::GroupState::Pending);
        // The store works on the upgraded file: a new inbox-free write and read.
        db.call(|c| store::set_setting(c, "upgrade.checked", "yes")).await.unwrap();
        drop(db);
        // Opening again is a no-op.
        Store::open(&path).unwrap();
    }
}
