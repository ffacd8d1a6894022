//! State with one writer. A [`Writer`] is the only handle that can change what it holds, and it
//! cannot be cloned: the core loop keeps each one, so every change of the roster, the lanes, the
//! bots and members' last activity happens there, in event order. [`Reader`]s are cheap clones
//! for everyone else (status, the admin API, turns, a worker's pause check): they see the state
//! as the loop last left it, and cannot change it.
//!
//! Each read and write is a short closure under a `parking_lot` lock, never held across an
//! await. The lock does not poison: a panic while one is held (contained by the loop, see
//! `keeper.rs`) leaves the state as it was at the panic, not a lock that fails everyone after.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::store::MemberRow;

/// The one handle that may change `T`. Not `Clone`.
pub(crate) struct Writer<T>(Arc<RwLock<T>>);

/// A read-only view of what a [`Writer`] holds.
pub(crate) struct Reader<T>(Arc<RwLock<T>>);

impl<T> Clone for Reader<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Writer<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(Arc::new(RwLock::new(value)))
    }

    pub(crate) fn reader(&self) -> Reader<T> {
        Reader(self.0.clone())
    }

    pub(crate) fn write<R>(&mut self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.0.write())
    }

    pub(crate) fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.0.read())
    }
}

impl<T> Reader<T> {
    pub(crate) fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.0.read())
    }
}

/// The household's members as the gateway serves them: a copy of the `members` table, kept in
/// step by the core loop after each change is stored.
#[derive(Debug, Default)]
pub(crate) struct Roster(HashMap<String, MemberRow>);

impl Roster {
    pub(crate) fn new(rows: impl IntoIterator<Item = MemberRow>) -> Self {
        Self(rows.into_iter().map(|m| (m.id.clone(), m)).collect())
    }

    pub(crate) fn get(&self, member_id: &str) -> Option<&MemberRow> {
        self.0.get(member_id)
    }

    pub(crate) fn name(&self, member_id: &str) -> Option<String> {
        self.0.get(member_id).map(|m| m.name.clone())
    }

    /// Everyone, in the order the admin added them.
    pub(crate) fn list(&self) -> Vec<MemberRow> {
        let mut members: Vec<MemberRow> = self.0.values().cloned().collect();
        members.sort_by_key(|m| m.seq);
        members
    }

    pub(crate) fn ids(&self) -> impl Iterator<Item = &String> {
        self.0.keys()
    }

    /// Admins who can be asked over Telegram: marked admin and paired; in the order added.
    pub(crate) fn admins(&self) -> Vec<MemberRow> {
        let mut admins: Vec<MemberRow> =
            self.0.values().filter(|m| m.is_admin && m.chat_id.is_some()).cloned().collect();
        admins.sort_by_key(|m| m.seq);
        admins
    }

    /// The member whose paired Telegram user this is (how the household bot knows members).
    pub(crate) fn by_telegram_user(&self, user_id: i64) -> Option<&MemberRow> {
        self.0.values().find(|m| m.telegram_user_id == Some(user_id))
    }

    /// Whether any member has a cap of their own.
    pub(crate) fn any_member_caps(&self) -> bool {
        self.0.values().any(|m| m.cap_daily_micros.is_some() || m.cap_monthly_micros.is_some())
    }

    /// Members' own models (for checking they are priced).
    pub(crate) fn own_models(&self) -> Vec<String> {
        self.0.values().filter_map(|m| m.model.clone()).collect()
    }

    // Changes: only reachable through the core loop's `Writer<Roster>`.

    pub(crate) fn insert(&mut self, row: MemberRow) {
        self.0.insert(row.id.clone(), row);
    }

    pub(crate) fn remove(&mut self, member_id: &str) -> Option<MemberRow> {
        self.0.remove(member_id)
    }

    pub(crate) fn update(&mut self, member_id: &str, f: impl FnOnce(&mut MemberRow)) -> Option<MemberRow> {
        let m = self.0.get_mut(member_id)?;
        f(m);
        Some(m.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_see_what_the_writer_wrote() {
        let mut writer = Writer::new(0);
        let reader = writer.reader();
        writer.write(|n| *n = 7);
        assert_eq!(reader.clone().read(|n| *n), 7);
        // A panic while the lock is held leaves a usable lock (no poisoning).
        let w = &mut writer;
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.write(|_| panic!("in the middle"))));
        assert_eq!(reader.read(|n| *n), 7);
        writer.write(|n| *n += 1);
        assert_eq!(reader.read(|n| *n), 8);
    }
}
