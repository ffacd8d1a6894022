//! The household bot (`household_bot`), the admins' private chats with it
//! (`household_admin_chats`) and the group chats it knows (`groups`).

use hearth_proto::control::GroupState;
use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;

/// The member id the household bot's inbox rows carry. Member ids always end in `-xxxx`
/// (`control/member.rs`), so this one can never be a member's; the speaking member is found
/// when the row is routed, from the Telegram user id they paired with.
pub const HOUSEHOLD_ID: &str = "household";

/// The household bot as stored; its token is the secret `household/bot`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HouseholdBotRow {
    pub bot_id: i64,
    pub username: String,
    /// The `getUpdates` offset that confirms everything already committed to the inbox.
    pub next_offset: i64,
}

/// A group chat the household bot knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRow {
    pub chat_id: i64,
    pub title: String,
    pub state: GroupState,
    /// Whether the bot is in the group, as the last `my_chat_member` said.
    pub present: bool,
    pub first_seen: i64,
    pub decided_at: Option<i64>,
    pub decided_by: Option<String>,
}

pub fn household_bot(conn: &Connection) -> Result<Option<HouseholdBotRow>, StoreError> {
    let row = conn
        .query_row("SELECT bot_id, username, next_offset FROM household_bot WHERE id = 1", [], |r| {
            Ok(HouseholdBotRow { bot_id: r.get(0)?, username: r.get(1)?, next_offset: r.get(2)? })
        })
        .optional()?;
    Ok(row)
}

/// Stores the household bot, replacing any earlier one. A different bot starts from offset 0
/// and with no admin chats (those were chats with the old bot); the same bot keeps both.
pub fn set_household_bot(
    conn: &mut Connection,
    bot_id: i64,
    username: &str,
    now: i64,
) -> Result<HouseholdBotRow, StoreError> {
    let tx = conn.transaction()?;
    let same: bool = tx
        .query_row("SELECT bot_id = ?1 FROM household_bot WHERE id = 1", [bot_id], |r| r.get(0))
        .optional()?
        .unwrap_or(false);
    if same {
        tx.execute("UPDATE household_bot SET username = ?1, set_at = ?2 WHERE id = 1", params![username, now])?;
    } else {
        tx.execute("DELETE FROM household_admin_chats", [])?;
        tx.execute(
            "INSERT OR REPLACE INTO household_bot (id, bot_id, username, next_offset, set_at) VALUES (1, ?1, ?2, 0, ?3)",
            params![bot_id, username, now],
        )?;
    }
    let row = tx.query_row("SELECT bot_id, username, next_offset FROM household_bot WHERE id = 1", [], |r| {
        Ok(HouseholdBotRow { bot_id: r.get(0)?, username: r.get(1)?, next_offset: r.get(2)? })
    })?;
    tx.commit()?;
    Ok(row)
}

/// Forgets the household bot and the admins' chats with it. Groups stay known, with the
/// admin's decisions, for a bot set again later.
pub fn remove_household_bot(conn: &mut Connection) -> Result<bool, StoreError> {
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM household_admin_chats", [])?;
    let n = tx.execute("DELETE FROM household_bot", [])?;
    tx.commit()?;
    Ok(n > 0)
}

/// Remembers an admin's private chat with the household bot (they sent /start there).
pub fn record_household_admin_chat(
    conn: &Connection,
    member_id: &str,
    chat_id: i64,
    now: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO household_admin_chats (member_id, chat_id, started_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (member_id) DO UPDATE SET chat_id = excluded.chat_id, started_at = excluded.started_at",
        params![member_id, chat_id, now],
    )?;
    Ok(())
}

/// The household bot's admin chats: (member id, chat id) of every member who is an admin now
/// and has started the household bot, by member. Where alerts and approvals may go besides the
/// admins' own bots; empty without a household bot.
pub fn household_admin_chats(conn: &Connection) -> Result<Vec<(String, i64)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT a.member_id, a.chat_id FROM household_admin_chats a
         JOIN members m ON m.id = a.member_id
         WHERE m.is_admin = 1 AND EXISTS (SELECT 1 FROM household_bot)
         ORDER BY a.member_id",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn group_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<GroupRow> {
    Ok(GroupRow {
        chat_id: r.get(0)?,
        title: r.get(1)?,
        state: GroupState::parse(&r.get::<_, String>(2)?),
        present: r.get(3)?,
        first_seen: r.get(4)?,
        decided_at: r.get(5)?,
        decided_by: r.get(6)?,
    })
}

const GROUP_COLUMNS: &str = "chat_id, title, state, present, first_seen, decided_at, decided_by";

pub fn list_groups(conn: &Connection) -> Result<Vec<GroupRow>, StoreError> {
    let mut stmt = conn.prepare(&format!("SELECT {GROUP_COLUMNS} FROM groups ORDER BY first_seen, chat_id"))?;
    let rows = stmt.query_map([], group_row)?.collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn group(conn: &Connection, chat_id: i64) -> Result<Option<GroupRow>, StoreError> {
    let sql = format!("SELECT {GROUP_COLUMNS} FROM groups WHERE chat_id = ?1");
    Ok(conn.query_row(&sql, [chat_id], group_row).optional()?)
}

/// A group seen: known as pending the first time; later its title and whether the bot is in it
/// follow what Telegram says. The admin's decision is never changed here.
pub fn see_group(
    conn: &Connection,
    chat_id: i64,
    title: &str,
    present: bool,
    now: i64,
) -> Result<GroupRow, StoreError> {
    conn.execute(
        "INSERT INTO groups (chat_id, title, state, present, first_seen) VALUES (?1, ?2, 'pending', ?3, ?4)
         ON CONFLICT (chat_id) DO UPDATE SET
             title = CASE WHEN excluded.title = '' THEN groups.title ELSE excluded.title END,
             present = excluded.present",
        params![chat_id, title, present, now],
    )?;
    let sql = format!("SELECT {GROUP_COLUMNS} FROM groups WHERE chat_id = ?1");
    Ok(conn.query_row(&sql, [chat_id], group_row)?)
}

/// The admin's decision on a known group; `None` when no such group is known.
pub fn decide_group(
    conn: &Connection,
    chat_id: i64,
    state: GroupState,
    by: &str,
    now: i64,
) -> Result<Option<GroupRow>, StoreError> {
    let n = conn.execute(
        "UPDATE groups SET state = ?2, decided_at = ?3, decided_by = ?4 WHERE chat_id = ?1",
        params![chat_id, state.as_str(), now, by],
    )?;
    if n == 0 {
        return Ok(None);
    }
    group(conn, chat_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, crate::store::Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("g.sqlite")).unwrap();
        (dir, store)
    }

    /// A new bot starts from offset 0 and forgets the old bot's admin chats; the same bot set
    /// again keeps both.
    #[test]
    fn the_household_bot_is_one_row_and_a_new_bot_starts_afresh() {
        let (_d, s) = store();
        s.call_sync(|c| {
            assert_eq!(household_bot(c)?, None);
            set_household_bot(c, 77, "home_bot", 1)?;
            c.execute("UPDATE household_bot SET next_offset = 40", [])?;
            c.execute("INSERT INTO members (id, name, created_at, is_admin) VALUES ('ana-abcd', 'Ana', 1, 1)", [])?;
            c.execute("INSERT INTO members (id, name, created_at, is_admin) VALUES ('bo-abcd', 'Bo', 1, 0)", [])?;
            record_household_admin_chat(c, "ana-abcd", 7, 2)?;
            record_household_admin_chat(c, "bo-abcd", 8, 2)?;
            assert_eq!(household_admin_chats(c)?, vec![("ana-abcd".to_owned(), 7)], "admins only");
            let again = set_household_bot(c, 77, "home_bot2", 3)?;
            assert_eq!(again, HouseholdBotRow { bot_id: 77, username: "home_bot2".into(), next_offset: 40 });
            assert_eq!(household_admin_chats(c)?.len(), 1);
            let other = set_household_bot(c, 78, "new_bot", 4)?;
            assert_eq!(other.next_offset, 0);
            assert!(household_admin_chats(c)?.is_empty());
            record_household_admin_chat(c, "ana-abcd", 7, 5)?;
            assert!(remove_household_bot(c)?);
            assert!(household_admin_chats(c)?.is_empty());
            assert!(!remove_household_bot(c)?);
            Ok(())
        })
        .unwrap();
    }

    /// Seeing a group again never changes the admin's decision, and an empty title keeps the
    /// known one.
    #[test]
    fn groups_are_pending_until_decided_and_stay_decided() {
        let (_d, s) = store();
        s.call_sync(|c| {
            let g = see_group(c, -100, "Family", true, 1)?;
            assert_eq!((g.state, g.present, g.title.as_str()), (GroupState::Pending, true, "Family"));
            assert_eq!(decide_group(c, -999, GroupState::Allowed, "admin", 2)?, None);
            let g = decide_group(c, -100, GroupState::Allowed, "admin", 2)?.unwrap();
            assert_eq!((g.state, g.decided_at), (GroupState::Allowed, Some(2)));
            let g = see_group(c, -100, "", false, 3)?;
            assert_eq!((g.state, g.present, g.title.as_str(), g.first_seen), (GroupState::Allowed, false, "Family", 1));
            see_group(c, -200, "Cousins", true, 4)?;
            let all: Vec<i64> = list_groups(c)?.iter().map(|g| g.chat_id).collect();
            assert_eq!(all, vec![-100, -200]);
            Ok(())
        })
        .unwrap();
    }
}
