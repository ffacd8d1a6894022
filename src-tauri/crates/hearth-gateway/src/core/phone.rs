//! The admin's commands from Telegram, in their own bot's private chat: `/status` (how every
//! member's assistant is doing and what it spent — never what anyone wrote), `/pause NAME|all
//! [1h|30m|tonight|until HH:MM]`, `/resume NAME|all` and `/allow NAME +$1` (today's limit
//! raised, the same grant as the buttons under a cap question). Anyone else who types them
//! learns nothing and changes nothing: one line says they are the admin's.
//!
//! Status and pausing go through the admin API itself ([`AdminApi`], handed in by the wiring, as
//! the app and the CLI reach it), so a pause from the phone is checked, stored, audited and
//! applied exactly as one from the app. The grant is `notices::raise_cap`, the buttons' own.
//! When a pause ends is read by `routing::pause` (shared with the CLI); the timer that ends it is
//! `pauses.rs`.
//!
//! Also here: the admin's command menu in their own chat (`telegram/commands.rs`), set when their
//! bot starts, when they pair and when they are made admin (or taken away when no longer one).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hearth_proto::control::{BotState, ControlError, ControlReply, ControlRequest, StatusReport};
use teloxide::Bot;

use super::{Engine, Roster, notices};
use crate::broker::spend::{self, CapKind, Standing, format_usd};
use crate::routing::pause::{pause_end, until_text};
use crate::routing::roles;
use crate::routing::router::Route;
use crate::store::{InboxRow, MemberRow};
use crate::telegram;

/// The admin API as the core reaches it: `control::handle`, contained, handed in by the wiring
/// (`gateway.rs`) so the core, which sits below the admin API, never imports it.
pub(crate) type AdminApi = Arc<
    dyn Fn(Engine, ControlRequest) -> Pin<Box<dyn Future<Output = Result<ControlReply, ControlError>> + Send>>
        + Send
        + Sync,
>;

/// What anyone but an admin reads after an admin's command: nothing about anyone.
pub(crate) const ADMINS_ONLY: &str = "That's for the household's admin. /usage shows your own spending.";

/// The most `/allow` raises a limit by at once.
const MAX_ALLOW_MICROS: u64 = 100 * spend::MICROS_PER_USD;

/// The lines `/help` adds for an admin.
pub(crate) const ADMIN_HELP: &str = "\n\nAs the household's admin:\n/status — how everyone's assistant is doing\n\
     /pause NAME — pause someone (add 1h, 30m, tonight or until 15:30; or all)\n/resume NAME — resume them (or all)\n\
     /allow NAME +$1 — raise someone's limit for today\n/family — everyone's spending at a glance";

/// An admin's command, answered in their chat; anyone else gets [`ADMINS_ONLY`].
pub(super) fn command(engine: &Engine, member: &MemberRow, row: InboxRow, route: Route) {
    if !member.is_admin {
        engine.reply_and_finish(&member.id, row.msg.chat_id, ADMINS_ONLY.to_owned(), row.id, "admin_only");
        return;
    }
    let engine = engine.clone();
    let admin = member.clone();
    engine.tracker.clone().spawn(async move {
        let by = format!("telegram:{}", row.msg.from_id);
        let (text, outcome) = match route {
            Route::Status => (status_text(&engine).await, "status"),
            Route::Pause { words } => (pause(&engine, &words, true).await, "pause"),
            Route::Resume { words } => (pause(&engine, &words, false).await, "resume"),
            Route::Allow { words } => (allow(&engine, &words, &by).await, "allow"),
            _ => return engine.finish_rows(vec![row.id], "done", "ignored"),
        };
        engine.reply_and_finish(&admin.id, row.msg.chat_id, text, row.id, outcome);
    });
}

async fn ask(engine: &Engine, request: ControlRequest) -> Result<ControlReply, ControlError> {
    (engine.admin_api)(engine.clone(), request).await
}

/// "≈ US$0.03": spend is an estimate from the provider's reported usage and the rate card.
fn estimate(micros: u64) -> String {
    format!("≈ US{}", format_usd(micros))
}

async fn status_text(engine: &Engine) -> String {
    let report = match ask(engine, ControlRequest::Status).await {
        Ok(ControlReply::Status(report)) => report,
        Ok(_) | Err(_) => return "I couldn't read the household's status just now; try again in a moment.".into(),
    };
    let now = Utc::now();
    let (standings, household) = engine.broker.spend(|s| {
        let standings: Vec<Standing> = report.members.iter().map(|m| s.budget.standing(&m.id, now)).collect();
        (standings, s.budget.household_standing(now))
    });
    render_status(&report, &standings, &household, engine.broker.timezone(), engine.config.clock.now())
}

/// The `/status` answer, from the status report and each member's spend standing (in the
/// report's order). Pure, so every line is tested.
fn render_status(
    report: &StatusReport,
    standings: &[Standing],
    household: &spend::CapStanding,
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> String {
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    if report.provider.is_none() {
        problems.push("No AI provider is set, so nobody gets answers: hearth provider set".to_owned());
    }
    for (m, s) in report.members.iter().zip(standings) {
        let at_cap = |c: &spend::CapStanding| c.limit_micros.is_some_and(|l| c.spent_micros >= l);
        let state = match &m.bot {
            BotState::TokenRevoked => {
                problems.push(format!(
                    "{}'s bot stopped working: Telegram no longer accepts its token. Replace it: hearth member token {}",
                    m.name, m.name
                ));
                "bot stopped working".to_owned()
            }
            BotState::UsedElsewhere => {
                problems.push(format!(
                    "{}'s bot is read by another program too, so messages go missing. Stop it, or replace the token: \
                     hearth member token {}",
                    m.name, m.name
                ));
                "bot used elsewhere".to_owned()
            }
            _ if !m.paired => "not paired yet".to_owned(),
            _ if m.paused => match m.paused_until.as_deref().and_then(|u| DateTime::parse_from_rfc3339(u).ok()) {
                Some(until) => format!("paused until {}", until_text(until.to_utc(), now, tz)),
                None => "paused until resumed".to_owned(),
            },
            _ => match m.quiet_hours.and_then(|q| roles::quiet_at(q, tz, now)) {
                Some(quiet) => format!("resting until {}", quiet.until),
                None if at_cap(&s.daily) => "at today's limit".to_owned(),
                None if at_cap(&s.monthly) => "at this month's limit".to_owned(),
                None if at_cap(&s.household) => "at the household's limit".to_owned(),
                None => "working".to_owned(),
            },
        };
        if let BotState::Unreachable { .. } = m.bot {
            problems.push(format!("Telegram can't be reached for {}'s bot right now; Hearth keeps trying.", m.name));
        }
        lines.push(format!(
            "{} — {state} · today {} · month {}",
            m.name,
            estimate(s.daily.spent_micros),
            estimate(s.monthly.spent_micros)
        ));
    }
    if lines.is_empty() {
        lines.push("No members yet.".to_owned());
    }
    let cap = household.limit_micros.map(|l| format!(" of US{}", format_usd(l))).unwrap_or_default();
    lines.push(format!("Household this month {}{cap}", estimate(household.spent_micros)));
    match problems.is_empty() {
        true => lines.push("No problems.".to_owned()),
        false => {
            lines.push("Problems:".to_owned());
            lines.extend(problems.into_iter().map(|p| format!("• {p}")));
        }
    }
    lines.join("\n")
}

/// Who an admin's command names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target<'a> {
    All,
    One(&'a MemberRow),
}

/// Reads `all` or a member's name or id (any case; the longest name that fits, so "Ana Maria 1h"
/// is Ana Maria's) at the start of `words`, and returns the words after it. `Err`: what to say.
fn pick<'m, 'w>(members: &'m [MemberRow], words: &'w str, usage: &str) -> Result<(Target<'m>, &'w str), String> {
    let words = words.trim();
    let names = || members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ");
    if words.is_empty() {
        return Err(format!("Whom? {usage}. The household: {}.", names()));
    }
    // Every place a name could end: before each space, and at the end.
    let ends = words.char_indices().filter(|(_, c)| c.is_whitespace()).map(|(i, _)| i).chain([words.len()]);
    let mut found: Option<(Target<'m>, usize)> = None;
    for end in ends {
        let head = &words[..end];
        let target = if head.eq_ignore_ascii_case("all") {
            Some(Target::All)
        } else {
            let lower = head.to_lowercase();
            members.iter().find(|m| m.name.to_lowercase() == lower || m.id == head).map(Target::One)
        };
        if let Some(t) = target {
            found = Some((t, end));
        }
    }
    match found {
        Some((target, end)) => Ok((target, words[end..].trim())),
        None => {
            let first = words.split_whitespace().next().unwrap_or(words);
            Err(format!("I don't know anyone called \"{first}\". The household: {}.", names()))
        }
    }
}

/// `/pause` and `/resume`, through the admin API.
async fn pause(engine: &Engine, words: &str, paused: bool) -> String {
    let members = engine.members.read(Roster::list);
    let usage = if paused { "/pause NAME (or all), e.g. /pause Ana 1h" } else { "/resume NAME (or all)" };
    let (target, rest) = match pick(&members, words, usage) {
        Ok(picked) => picked,
        Err(text) => return text,
    };
    let (member, who) = match target {
        Target::All => (None, "everyone".to_owned()),
        Target::One(m) => (Some(m.id.clone()), m.name.clone()),
    };
    let (tz, now) = (engine.broker.timezone(), engine.config.clock.now());
    let until = match paused {
        true => match pause_end(rest, now, tz) {
            Ok(until) => until,
            Err(why) => return format!("Not paused: {why}."),
        },
        false if !rest.is_empty() => return format!("Not resumed: just {usage}."),
        false => None,
    };
    if let Target::One(m) = target
        && !paused
        && !m.paused
    {
        return format!("{} isn't paused.", m.name);
    }
    let request = ControlRequest::MemberPause { member, paused, until: until.map(|u| u.to_rfc3339()) };
    match ask(engine, request).await {
        Ok(_) if !paused => format!("Resumed {who}."),
        Ok(_) => match until {
            Some(until) => format!("Paused {who} until {}.", until_text(until, now, tz)),
            None => format!("Paused {who} until you /resume {}.", if who == "everyone" { "all" } else { who.as_str() }),
        },
        Err(e) => format!("Could not {} {who}: {}", if paused { "pause" } else { "resume" }, e.message),
    }
}

/// "+$1", "+1", "$0.50", "2" → micro-USD, within (0, $100].
fn allow_amount(words: &str) -> Result<u64, String> {
    let amount = words.trim().strip_prefix('+').unwrap_or(words.trim());
    let micros = spend::parse_usd(amount).map_err(|_| format!("\"{words}\" is not an amount; write it like +$1"))?;
    match micros {
        0 => Err("Raise it by more than $0 — e.g. /allow Ana +$1.".to_owned()),
        m if m > MAX_ALLOW_MICROS => {
            Err(format!("{} is more than {} at once; raise it by less.", format_usd(m), format_usd(MAX_ALLOW_MICROS)))
        }
        m => Ok(m),
    }
}

/// `/allow NAME +$1`: today's limit raised by that much, as the +$1 button raises it.
async fn allow(engine: &Engine, words: &str, by: &str) -> String {
    let members = engine.members.read(Roster::list);
    let usage = "/allow NAME +$1";
    // The amount is the last word; the name is all before it.
    let (name, amount) = words.trim().rsplit_once(char::is_whitespace).unwrap_or((words.trim(), ""));
    let (target, rest) = match pick(&members, name, usage) {
        Ok(picked) => picked,
        Err(text) => return text,
    };
    let m = match target {
        Target::One(m) if rest.is_empty() => m,
        Target::One(_) => return format!("Name one member and an amount: {usage}."),
        Target::All => return format!("One member at a time: {usage}."),
    };
    if amount.is_empty() {
        return format!("How much? {usage}.");
    }
    let extra = match allow_amount(amount) {
        Ok(extra) => extra,
        Err(why) => return format!("Not raised: {why}"),
    };
    let daily = engine.broker.spend(|s| s.budget.standing(&m.id, Utc::now()).daily);
    let Some(limit) = daily.limit_micros else {
        return format!("{} has no daily limit, so there is nothing to raise.", m.name);
    };
    notices::raise_cap(engine, &m.id, CapKind::MemberDaily, &daily.period_key, extra, by).await;
    format!(
        "Raised {}'s limit for today by {}: now {} ({} spent).",
        m.name,
        format_usd(extra),
        format_usd(limit.saturating_add(extra)),
        estimate(daily.spent_micros)
    )
}

/// Sets the admin's command menu in `m`'s own chat with their bot (`telegram/commands.rs`) when
/// they are an admin — or, with `clear`, takes it away when they are not (they may have just
/// stopped being one). Everyone's menu is the poll loop's (`telegram/poll.rs`). Logged, never
/// fatal.
pub(super) fn set_admin_menu(engine: &Engine, m: &MemberRow, bot: Bot, clear: bool) {
    let (member_id, admin) = (m.id.clone(), m.is_admin);
    let Some(chat) = m.chat_id.filter(|_| admin || clear) else { return };
    engine.tracker.spawn(async move {
        let set = match admin {
            true => telegram::set_admin_commands(&bot, chat).await,
            false => telegram::clear_admin_commands(&bot, chat).await,
        };
        if let Err(e) = set {
            tracing::warn!(member = %member_id, error = %e, "could not set the admin's command menu");
        }
    });
}

#[cfg(test)]
mod tests;
