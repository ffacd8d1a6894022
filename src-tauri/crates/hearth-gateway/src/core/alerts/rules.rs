//! The pure part of the admins' alerts: when a condition is told, when its "fixed" line goes
//! out, how a flapping condition is held back, how many messages an admin gets in an hour, and
//! what they read. Nothing here sends or stores; `mod.rs` does, with these answers.
//!
//! One [`AlertRow`] per condition holds an *episode*: raised at `raised_at`, told at `told_at`
//! (a `told_at` before `raised_at` belongs to an earlier episode), cleared at `cleared_at`, its
//! "fixed" line told at `cleared_told_at`. The rules:
//! - a new condition is told at once;
//! - a condition that comes back after its "fixed" line went out starts a new episode — told at
//!   once, unless it cleared less than [`FLAP_WINDOW`] ago and was told less than [`HOLD`] ago:
//!   then it is told when that hour is up, if it still lasts;
//! - a condition that comes back before its "fixed" line went out simply goes on (nothing told);
//! - the "fixed" line waits until the condition has stayed clear for [`CLEAR_GRACE`], and is
//!   told only for an episode that was told;
//! - a one-off (Hearth restarted after an unclean stop) has no "fixed" line: it is closed as
//!   soon as it is told, or quietly when it is held back;
//! - each admin gets at most [`PER_ADMIN_PER_HOUR`] alert messages in any hour ([`Limiter`]).

use std::collections::{HashMap, VecDeque};

use hearth_proto::control::AlertLevel;

use crate::store::AlertRow;

/// A condition back within this many seconds of clearing is flapping…
pub(crate) const FLAP_WINDOW: i64 = 600;
/// …and is told at most once in this many seconds.
pub(crate) const HOLD: i64 = 3600;
/// A condition must stay clear this many seconds before its "fixed" line goes out, so a bot
/// that two programs fight over does not say "works again" between two failures.
pub(crate) const CLEAR_GRACE: i64 = 60;
/// Alert messages one admin gets in any hour, whatever happens.
pub(crate) const PER_ADMIN_PER_HOUR: usize = 10;

/// What an alert is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Condition {
    /// A member's bot stopped working (token revoked, used elsewhere); by member id.
    Bot(String),
    /// The provider failed [`crate::broker::OUTAGE_CALLS`] calls in a row.
    Provider,
    /// The data folder's disk is nearly full.
    Disk,
    /// A scheduled backup failed.
    Backup,
    /// Hearth started after an unclean stop (a power cut, `kill -9`).
    UncleanStop,
}

impl Condition {
    /// Its key in the `alerts` table.
    pub(crate) fn key(&self) -> String {
        match self {
            Condition::Bot(member_id) => format!("bot:{member_id}"),
            Condition::Provider => "provider".into(),
            Condition::Disk => "disk".into(),
            Condition::Backup => "backup".into(),
            Condition::UncleanStop => "unclean_stop".into(),
        }
    }

    pub(crate) fn from_key(key: &str) -> Option<Condition> {
        match key {
            "provider" => Some(Condition::Provider),
            "disk" => Some(Condition::Disk),
            "backup" => Some(Condition::Backup),
            "unclean_stop" => Some(Condition::UncleanStop),
            _ => key.strip_prefix("bot:").filter(|id| !id.is_empty()).map(|id| Condition::Bot(id.to_owned())),
        }
    }

    /// Told to admins who chose "important" too (everything but the unclean stop).
    pub(crate) fn important(&self) -> bool {
        !matches!(self, Condition::UncleanStop)
    }

    /// Over as soon as it is told: no "fixed" line.
    pub(crate) fn one_off(&self) -> bool {
        matches!(self, Condition::UncleanStop)
    }

    /// While it lasts, all is not well: no heartbeat goes out.
    pub(crate) fn spoils_health(&self) -> bool {
        matches!(self, Condition::Bot(_) | Condition::Provider | Condition::Disk)
    }
}

/// The row after `condition` was raised at `now`; `None` when nothing changes (it lasts already).
pub(crate) fn raise(row: Option<&AlertRow>, key: &str, detail: &str, now: i64) -> Option<AlertRow> {
    let fresh = |told_at| AlertRow {
        key: key.to_owned(),
        raised_at: now,
        detail: detail.to_owned(),
        told_at,
        cleared_at: None,
        cleared_told_at: None,
    };
    let Some(row) = row else { return Some(fresh(None)) };
    let cleared = row.cleared_at?;
    if episode_told(row) && row.cleared_told_at.is_none() {
        // Back before its "fixed" line went out: the same episode goes on, nothing to say.
        return Some(AlertRow { cleared_at: None, ..row.clone() });
    }
    let flapping = now - cleared < FLAP_WINDOW && row.told_at.is_some_and(|t| now - t < HOLD);
    // Held back: the last time told stays, strictly before this episode.
    Some(fresh(if flapping { row.told_at.map(|t| t.min(now - 1)) } else { None }))
}

/// The row after the condition cleared at `now` (`detail`: what to say in the "fixed" line, if
/// it changed); `None` when nothing changes.
pub(crate) fn clear(row: Option<&AlertRow>, detail: Option<&str>, now: i64) -> Option<AlertRow> {
    let row = row?;
    if row.cleared_at.is_some() {
        return None;
    }
    Some(AlertRow {
        cleared_at: Some(now),
        detail: detail.map(str::to_owned).unwrap_or_else(|| row.detail.clone()),
        ..row.clone()
    })
}

/// What a row calls for at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tell {
    /// Tell the admins the condition is here.
    Raised,
    /// Tell them it cleared.
    Fixed,
    /// Say nothing, but store the row (a held-back one-off, closed).
    Nothing,
}

fn episode_told(row: &AlertRow) -> bool {
    row.told_at.is_some_and(|t| t >= row.raised_at)
}

/// What to tell about `row` at `now`, and the row once told; `None`: nothing yet.
pub(crate) fn due(row: &AlertRow, one_off: bool, now: i64) -> Option<(Tell, AlertRow)> {
    match row.cleared_at {
        None => {
            if episode_told(row) {
                return None;
            }
            if row.told_at.is_some_and(|t| now < t + HOLD) {
                // Flapping: held back until an hour after it was last told.
                return one_off.then(|| (Tell::Nothing, AlertRow { cleared_at: Some(now), ..row.clone() }));
            }
            let told = if one_off {
                AlertRow { told_at: Some(now), cleared_at: Some(now), cleared_told_at: Some(now), ..row.clone() }
            } else {
                AlertRow { told_at: Some(now), ..row.clone() }
            };
            Some((Tell::Raised, told))
        }
        Some(cleared) => {
            if !episode_told(row) || row.cleared_told_at.is_some() || now < cleared + CLEAR_GRACE {
                return None;
            }
            Some((Tell::Fixed, AlertRow { cleared_told_at: Some(now), ..row.clone() }))
        }
    }
}

/// When `row` will next call for something, if it waits on time (Unix seconds).
pub(crate) fn next_due(row: &AlertRow) -> Option<i64> {
    match row.cleared_at {
        None if !episode_told(row) => row.told_at.map(|t| t + HOLD),
        Some(cleared) if episode_told(row) && row.cleared_told_at.is_none() => Some(cleared + CLEAR_GRACE),
        _ => None,
    }
}

/// Whether an admin at `level` hears a message: a raised important condition at "all" and
/// "important", anything else (an unclean stop, every "fixed" line) only at "all".
pub(crate) fn wants(level: AlertLevel, tell: Tell, condition: &Condition) -> bool {
    match level {
        AlertLevel::Off => false,
        AlertLevel::Important => tell == Tell::Raised && condition.important(),
        AlertLevel::All => tell != Tell::Nothing,
    }
}

/// Alert messages sent to each admin in the last hour, so nothing can flood one.
#[derive(Debug, Default)]
pub(crate) struct Limiter(HashMap<String, VecDeque<i64>>);

impl Limiter {
    /// Whether `admin` may get one more message at `now`; counts it if so.
    pub(crate) fn allow(&mut self, admin: &str, now: i64) -> bool {
        let sent = self.0.entry(admin.to_owned()).or_default();
        while sent.front().is_some_and(|&t| now - t >= 3600) {
            sent.pop_front();
        }
        if sent.len() >= PER_ADMIN_PER_HOUR {
            return false;
        }
        sent.push_back(now);
        true
    }
}

/// A member's bot state as stored in a row's `detail`.
pub(crate) const TOKEN_REVOKED: &str = "token_revoked";
pub(crate) const USED_ELSEWHERE: &str = "used_elsewhere";

/// What the admins read. `name`: the member a bot alert is about.
pub(crate) fn text(tell: Tell, condition: &Condition, detail: &str, name: &str) -> String {
    match (tell, condition) {
        (Tell::Raised, Condition::Bot(_)) if detail == USED_ELSEWHERE => format!(
            "⚠️ {name}'s assistant can't reach Telegram: another program is using the same bot. Stop that program, or \
             give {name} a new bot token: Hearth → {name} → Replace token."
        ),
        (Tell::Raised, Condition::Bot(_)) => format!(
            "⚠️ {name}'s assistant can't reach Telegram: the bot's token was revoked in BotFather. Open Hearth → \
             {name} → Replace token (or run `hearth member token {name}`)."
        ),
        (Tell::Raised, Condition::Provider) => format!(
            "⚠️ The AI provider failed 3 times in a row ({detail}), so assistants can't answer for now. Hearth keeps \
             trying; check the provider's status or Hearth → Settings → Provider."
        ),
        (Tell::Raised, Condition::Disk) => format!(
            "⚠️ The disk Hearth keeps its data on is {detail}% full. Free some space soon: when it is full, messages \
             can't be kept."
        ),
        (Tell::Raised, Condition::Backup) => format!(
            "⚠️ The scheduled backup failed: {detail}. The next one is tried as planned; is the backup disk connected?"
        ),
        (Tell::Raised, Condition::UncleanStop) => "ℹ️ Hearth started again after an unexpected stop (a power cut, or \
                                                  the computer was switched off or crashed). Messages sent meanwhile \
                                                  are answered now."
            .to_owned(),
        (_, Condition::Bot(_)) => format!("✅ {name}'s bot works again."),
        (_, Condition::Provider) => "✅ The AI provider answers again.".to_owned(),
        (_, Condition::Disk) => format!("✅ The disk has room again ({detail}% full)."),
        (_, Condition::Backup) => "✅ Backups work again.".to_owned(),
        (_, Condition::UncleanStop) => String::new(),
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
