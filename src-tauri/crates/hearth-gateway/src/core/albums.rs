//! Albums: Telegram delivers an album's photos as separate messages sharing a `media_group_id`,
//! usually within a second. The member's lane is held from the first part until
//! [`ALBUM_QUIET`] after the latest (at most [`ALBUM_MAX`] after the first), so the parts are
//! collected into one turn — the way OpenClaw waits for the rest. The wait is on the gateway's
//! clock, so a test moves a manual clock instead of sleeping.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{Core, Engine, Event};

/// How long after an album's latest part the lane waits for another.
pub(crate) const ALBUM_QUIET: chrono::Duration = chrono::Duration::milliseconds(1500);
/// Longest the lane waits after an album's first part.
pub(crate) const ALBUM_MAX: chrono::Duration = chrono::Duration::seconds(4);

/// One member's album in arrival.
#[derive(Debug)]
pub(super) struct Album {
    group: String,
    first: DateTime<Utc>,
    /// Bumped by each part: only the newest part's timer lets the lane go.
    generation: u64,
}

/// Albums arriving, by member.
pub(super) type Albums = HashMap<String, Album>;

impl Core {
    /// A part of album `group` was queued in `member_id`'s lane: hold it until the rest is in.
    pub(super) fn album_part(&mut self, member_id: &str, group: &str) {
        let now = self.engine.config.clock.now();
        let album = match self.albums.get_mut(member_id) {
            Some(a) if a.group == group => {
                a.generation += 1;
                a
            }
            _ => {
                // A new album (or another one right after the last) starts its own wait.
                self.albums.insert(member_id.to_owned(), Album { group: group.to_owned(), first: now, generation: 0 });
                self.albums.get_mut(member_id).expect("just inserted")
            }
        };
        let deadline = (now + ALBUM_QUIET).min(album.first + ALBUM_MAX);
        let generation = album.generation;
        self.lanes.write(|l| l.hold(member_id, true));
        let engine = self.engine.clone();
        let member = member_id.to_owned();
        self.engine.tracker.spawn(wait(engine, member, generation, deadline));
    }

    /// An album's wait ended: if no newer part came meanwhile, the lane goes.
    pub(super) fn album_due(&mut self, member_id: &str, generation: u64) {
        if self.albums.get(member_id).is_some_and(|a| a.generation == generation) {
            self.albums.remove(member_id);
            self.lanes.write(|l| l.hold(member_id, false));
        }
    }
}

/// Waits on the gateway's clock until `deadline`, then tells the core loop.
async fn wait(engine: Engine, member_id: String, generation: u64, deadline: DateTime<Utc>) {
    let clock = engine.config.clock.clone();
    let mut watch = clock.watch();
    loop {
        let now = clock.now();
        if now >= deadline {
            break;
        }
        match &mut watch {
            Some(moved) => tokio::select! {
                _ = engine.cancel.cancelled() => return,
                r = moved.changed() => if r.is_err() { return },
            },
            None => {
                let left = (deadline - now).to_std().unwrap_or_default();
                tokio::select! {
                    _ = engine.cancel.cancelled() => return,
                    _ = tokio::time::sleep(left) => {}
                }
            }
        }
    }
    let _ = engine.events.send(Event::AlbumDue { member_id, generation });
}
