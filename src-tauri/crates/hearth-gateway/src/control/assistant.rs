//! How each member's assistant behaves: role, persona and own model, pausing, quiet hours and
//! the role presets behind them, and household settings — the idle reset, members' disk quota
//! and how many turns may run at once. Every change is stored, audited, applied in the core loop and announced to
//! subscribers as [`GatewayEvent::Changed`].

use hearth_proto::control::{
    ControlError, ControlReply, ErrorCode, GatewayEvent, MemberSummary, ModelChange, QuietHours, Role,
};

use super::spend::check_priced;
use super::{find, internal, stopping, summary};
use crate::broker::spend::format_usd;
use crate::core::{Change, Engine, MemberUpdate};
use crate::household::quota::{MAX_QUOTA_MB, SETTING_QUOTA_MB};
use crate::routing::pause::MAX_PAUSE_HOURS;
use crate::routing::roles::{self, MAX_IDLE_RESET_HOURS, SETTING_IDLE_RESET};
use crate::store::{self, MemberRow};

/// Longest persona notes, in characters: a few paragraphs, not a document.
pub(crate) const MAX_PERSONA_CHARS: usize = 2000;
/// Longest model name accepted.
const MAX_MODEL_CHARS: usize = 200;

/// Persona notes as stored: trimmed, line ends made `\n`, no other control characters.
pub(crate) fn checked_persona(persona: &str) -> Result<String, ControlError> {
    let persona = persona.replace("\r\n", "\n").trim().to_owned();
    let chars = persona.chars().count();
    if chars > MAX_PERSONA_CHARS {
        return Err(ControlError::new(
            ErrorCode::InvalidInput,
            format!(
                "the persona notes are {chars} characters long; keep them to {MAX_PERSONA_CHARS} \
                 (a few short paragraphs)"
            ),
        ));
    }
    if persona.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(ControlError::new(
            ErrorCode::InvalidInput,
            "the persona notes contain control characters; type them again",
        ));
    }
    Ok(persona)
}

fn checked_model(model: &str) -> Result<String, ControlError> {
    let model = model.trim();
    if model.is_empty() || model.chars().count() > MAX_MODEL_CHARS || model.chars().any(char::is_control) {
        return Err(ControlError::new(
            ErrorCode::InvalidInput,
            "name the model as the provider spells it, e.g. gpt-4o-mini, or choose the household's model",
        ));
    }
    Ok(model.to_owned())
}

/// Applies a stored change of one member's fields in the core loop.
async fn applied(e: &Engine, member_id: &str, update: MemberUpdate) -> Result<(), ControlError> {
    e.change(Change::Member { member_id: member_id.to_owned(), update }).await.map_err(stopping)
}

pub(super) async fn update(
    e: &Engine,
    key: &str,
    role: Option<Role>,
    persona: Option<String>,
    model: Option<ModelChange>,
) -> Result<MemberSummary, ControlError> {
    if role.is_none() && persona.is_none() && model.is_none() {
        return Err(ControlError::new(
            ErrorCode::InvalidInput,
            "nothing to change: give a role, persona notes or a model",
        ));
    }
    let m = find(e, key).await?;
    let persona = persona.as_deref().map(checked_persona).transpose()?;
    let model: Option<Option<String>> = match model {
        None => None,
        Some(ModelChange::Household) => Some(None),
        Some(ModelChange::Set { model }) => Some(Some(checked_model(&model)?)),
    };
    if let Some(Some(model)) = &model {
        let capped = m.cap_daily_micros.is_some() || m.cap_monthly_micros.is_some();
        if capped || e.broker.spend(|s| s.budget.household_cap().is_some()) {
            check_priced(e, Some(model))?;
        }
    }
    let (id, name, p, md) = (m.id.clone(), m.name.clone(), persona.clone(), model.clone());
    let row = e
        .store
        .call(move |c| {
            store::update_member_settings(c, &id, role, p.as_deref(), md.as_ref().map(|m| m.as_deref()))?;
            if let Some(role) = role {
                store::audit(c, "admin", "member_role", Some(&id), &format!("{name}: {}", role.as_str()))?;
            }
            if let Some(p) = &p {
                store::audit(
                    c,
                    "admin",
                    "member_persona",
                    Some(&id),
                    &format!("{name}: {} characters", p.chars().count()),
                )?;
            }
            if let Some(md) = &md {
                store::audit(
                    c,
                    "admin",
                    "member_model",
                    Some(&id),
                    &format!("{name}: {}", md.as_deref().unwrap_or("household")),
                )?;
            }
            store::find_member(c, &id)
        })
        .await
        .map_err(internal)?
        .ok_or_else(|| ControlError::new(ErrorCode::NotFound, format!("{} was removed meanwhile", m.name)))?;
    let settings = MemberUpdate::Settings { role: row.role, persona: row.persona.clone(), model: row.model.clone() };
    applied(e, &m.id, settings).await?;
    if model.is_some() {
        e.broker.set_member_model(&row.id, row.model.clone());
    }
    // A new role brings its defaults where the old role's still stand (`routing/roles.rs`).
    let row = match role {
        Some(role) if role != m.role => {
            let row = apply_role_preset(e, row, Some(m.role)).await?;
            let preset = MemberUpdate::Preset {
                daily: row.cap_daily_micros,
                monthly: row.cap_monthly_micros,
                quiet_hours: row.quiet_hours,
            };
            applied(e, &row.id, preset).await?;
            row
        }
        _ => row,
    };
    e.emit(GatewayEvent::Changed);
    Ok(summary(row))
}

/// Applies `m.role`'s preset where the member is still at `previous` role's default (or, when
/// just added, has nothing set). A default cap needs a priced model (a capped member is never
/// given a model without a price): without one the caps are left off, logged and audited, and
/// the rest still applies. Stores it, sets the broker's caps, and returns the member as stored;
/// the caller has the core loop apply it (the roster's copy).
pub(super) async fn apply_role_preset(
    e: &Engine,
    m: MemberRow,
    previous: Option<Role>,
) -> Result<MemberRow, ControlError> {
    let (mut set_caps, set_quiet) = roles::preset_changes(&m, previous);
    let mut skipped = None;
    let needs_price = matches!(set_caps, Some((Some(_), _) | (_, Some(_))));
    if needs_price && let Err(err) = check_priced(e, m.model.as_deref()) {
        set_caps = None;
        skipped = Some(err.message);
    }
    if set_caps.is_none() && set_quiet.is_none() && skipped.is_none() {
        return Ok(m);
    }
    if let Some(why) = &skipped {
        tracing::warn!(member = %m.id, role = m.role.as_str(), %why, "default caps for the role left off");
    }
    let (id, name, role) = (m.id.clone(), m.name.clone(), m.role);
    let row = e
        .store
        .call(move |c| {
            let show = |v: Option<u64>| v.map(format_usd).unwrap_or_else(|| "none".into());
            if let Some((daily, monthly)) = set_caps {
                store::set_member_caps(c, &id, daily, monthly)?;
                let detail = format!("{name} ({}): daily {} monthly {}", role.as_str(), show(daily), show(monthly));
                store::audit(c, "preset", "member_cap", Some(&id), &detail)?;
            }
            if let Some(why) = &skipped {
                let detail = format!("{name} ({}): default caps left off: {why}", role.as_str());
                store::audit(c, "preset", "member_cap_skipped", Some(&id), &detail)?;
            }
            if let Some(quiet) = set_quiet {
                store::set_member_quiet_hours(c, &id, quiet)?;
                let shown = quiet.map(|q| q.to_string()).unwrap_or_else(|| "none".into());
                store::audit(c, "preset", "member_quiet_hours", Some(&id), &format!("{name}: {shown}"))?;
            }
            store::find_member(c, &id)
        })
        .await
        .map_err(internal)?
        .ok_or_else(|| ControlError::new(ErrorCode::NotFound, format!("{} was removed meanwhile", m.name)))?;
    if set_caps.is_some() {
        e.broker.set_member_caps(&row.id, row.cap_daily_micros, row.cap_monthly_micros);
    }
    Ok(row)
}

/// Pauses or resumes one member, or everyone (`None`). A pause with `until` (RFC 3339) ends by
/// itself then (`core/pauses.rs`); one without lasts until resumed.
pub(super) async fn pause(
    e: &Engine,
    key: Option<&str>,
    paused: bool,
    until: Option<&str>,
) -> Result<ControlReply, ControlError> {
    let until = match (until, paused) {
        (None, _) => None,
        (Some(_), false) => {
            return Err(ControlError::new(ErrorCode::InvalidInput, "a resume takes no end time; leave it out"));
        }
        (Some(until), true) => Some(pause_end_at(until, e.config.clock.now())?),
    };
    let targets: Vec<MemberRow> = match key {
        Some(k) => vec![find(e, k).await?],
        None => e.store.call(|c| store::list_members(c)).await.map_err(internal)?,
    };
    let ids: Vec<(String, String)> = targets.iter().map(|m| (m.id.clone(), m.name.clone())).collect();
    e.store
        .call(move |c| {
            let tx = c.transaction()?;
            for (id, name) in &ids {
                store::set_member_paused(&tx, id, paused, until)?;
                let what = if paused { "member_paused" } else { "member_resumed" };
                let detail = match until {
                    Some(until) => format!("{name} until {}", super::rfc3339(until)),
                    None => name.clone(),
                };
                store::audit(&tx, "admin", what, Some(id), &detail)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
        .map_err(internal)?;
    for m in &targets {
        // Paused: whatever already waits in their lane is dropped in the core loop, with one note.
        applied(e, &m.id, MemberUpdate::Paused { paused, until }).await?;
        tracing::info!(member = %m.id, paused, until, "member paused or resumed");
    }
    e.emit(GatewayEvent::Changed);
    Ok(ControlReply::Done)
}

/// When a timed pause ends, as the request gave it (RFC 3339), checked against the gateway's
/// `now`: in the future and within [`MAX_PAUSE_HOURS`]. Unix seconds.
fn pause_end_at(until: &str, now: chrono::DateTime<chrono::Utc>) -> Result<i64, ControlError> {
    let at = chrono::DateTime::parse_from_rfc3339(until.trim()).map_err(|_| {
        ControlError::new(
            ErrorCode::InvalidInput,
            format!("\"{until}\" is not a time; give it as RFC 3339, e.g. 2026-05-12T15:30:00+02:00"),
        )
    })?;
    let at = at.to_utc();
    if at <= now {
        return Err(ControlError::new(ErrorCode::InvalidInput, "that time has passed; choose one still to come"));
    }
    if at > now + chrono::Duration::hours(MAX_PAUSE_HOURS) {
        return Err(ControlError::new(
            ErrorCode::InvalidInput,
            "a timed pause lasts at most a week; pause without an end instead, and resume when you want",
        ));
    }
    Ok(at.timestamp())
}

/// Sets (or with `None` clears) a member's quiet hours.
pub(super) async fn quiet_hours(
    e: &Engine,
    key: &str,
    quiet: Option<QuietHours>,
) -> Result<MemberSummary, ControlError> {
    let m = find(e, key).await?;
    let (id, name) = (m.id.clone(), m.name.clone());
    let row = e
        .store
        .call(move |c| {
            store::set_member_quiet_hours(c, &id, quiet)?;
            let shown = quiet.map(|q| q.to_string()).unwrap_or_else(|| "none".into());
            store::audit(c, "admin", "member_quiet_hours", Some(&id), &format!("{name}: {shown}"))?;
            store::find_member(c, &id)
        })
        .await
        .map_err(internal)?
        .ok_or_else(|| ControlError::new(ErrorCode::NotFound, format!("{} was removed meanwhile", m.name)))?;
    applied(e, &row.id, MemberUpdate::QuietHours(quiet)).await?;
    e.emit(GatewayEvent::Changed);
    Ok(summary(row))
}

/// Whether a member sees replies as they are written (drafts in their private chat).
pub(super) async fn streaming(e: &Engine, key: &str, streaming: bool) -> Result<MemberSummary, ControlError> {
    let m = find(e, key).await?;
    let (id, name) = (m.id.clone(), m.name.clone());
    let row = e
        .store
        .call(move |c| {
            store::set_member_streaming(c, &id, streaming)?;
            let shown = if streaming { "on" } else { "off" };
            store::audit(c, "admin", "member_streaming", Some(&id), &format!("{name}: {shown}"))?;
            store::find_member(c, &id)
        })
        .await
        .map_err(internal)?
        .ok_or_else(|| ControlError::new(ErrorCode::NotFound, format!("{} was removed meanwhile", m.name)))?;
    applied(e, &row.id, MemberUpdate::Streaming(streaming)).await?;
    e.emit(GatewayEvent::Changed);
    Ok(summary(row))
}

/// Sets `context.reset_after_idle_hours` (0: off).
pub(super) async fn idle_reset(e: &Engine, hours: u32) -> Result<ControlReply, ControlError> {
    if hours > MAX_IDLE_RESET_HOURS {
        return Err(ControlError::new(
            ErrorCode::InvalidInput,
            format!("{hours} hours is more than a year; choose up to {MAX_IDLE_RESET_HOURS}, or 0 for never"),
        ));
    }
    e.store
        .call(move |c| {
            store::set_setting(c, SETTING_IDLE_RESET, &hours.to_string())?;
            store::audit(c, "admin", "idle_reset", None, &format!("{hours} hours"))
        })
        .await
        .map_err(internal)?;
    e.change(Change::IdleReset { hours }).await.map_err(stopping)?;
    e.emit(GatewayEvent::Changed);
    Ok(ControlReply::Done)
}

/// `hearth household disk-quota MB`: stores the quota and measures every folder against it.
pub(super) async fn disk_quota(e: &Engine, mb: u32) -> Result<ControlReply, ControlError> {
    if mb > MAX_QUOTA_MB {
        return Err(ControlError::new(
            ErrorCode::InvalidInput,
            format!("{mb} MB is more than 1 TB; choose up to {MAX_QUOTA_MB} MB, or 0 for no limit"),
        ));
    }
    e.store
        .call(move |c| {
            store::set_setting(c, SETTING_QUOTA_MB, &mb.to_string())?;
            let detail = if mb == 0 { "no limit".to_owned() } else { format!("{mb} MB per member") };
            store::audit(c, "admin", "disk_quota", None, &detail)
        })
        .await
        .map_err(internal)?;
    e.quotas.set_limit_mb(mb);
    // Measured again against the new quota: whoever passes it is reported anew.
    e.quotas.measure_all(e.members.read(|r| r.ids().cloned().collect())).await;
    e.emit(GatewayEvent::Changed);
    Ok(ControlReply::Done)
}

/// Changes how many turns may run at once, from now on.
pub(super) async fn turn_cap(e: &Engine, cap: u32) -> Result<ControlReply, ControlError> {
    if !(1..=10_000).contains(&cap) {
        return Err(ControlError::new(
            ErrorCode::InvalidInput,
            format!("{cap} answers at once is out of range; choose from 1 to 10000"),
        ));
    }
    e.store.call(move |c| store::audit(c, "admin", "turn_cap", None, &cap.to_string())).await.map_err(internal)?;
    e.change(Change::TurnCap(cap as usize)).await.map_err(stopping)?;
    Ok(ControlReply::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persona_notes_are_checked() {
        assert_eq!(checked_persona("  Likes chess.\r\nSpeaks German.  ").unwrap(), "Likes chess.\nSpeaks German.");
        assert_eq!(checked_persona("").unwrap(), "");
        let long = checked_persona(&"é".repeat(MAX_PERSONA_CHARS + 1)).unwrap_err();
        assert_eq!(long.code, ErrorCode::InvalidInput);
        assert!(long.message.contains("2001 characters") && long.message.contains("2000"), "{}", long.message);
        assert!(checked_persona(&"é".repeat(MAX_PERSONA_CHARS)).is_ok());
        assert!(checked_persona("a\u{1b}[31mb").is_err());
        assert!(checked_model(" gpt-4o-mini ").is_ok());
        assert!(checked_model("  ").is_err());
        assert!(checked_model("a\nb").is_err());
    }

    #[test]
    fn a_pause_ends_in_the_coming_week() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-05-12T10:00:00Z").unwrap().to_utc();
        assert_eq!(pause_end_at("2026-05-12T13:30:00+02:00", now), Ok(now.timestamp() + 3600 + 1800));
        assert_eq!(pause_end_at(" 2026-05-19T10:00:00Z ", now), Ok(now.timestamp() + 7 * 86400));
        for (bad, says) in [
            ("2026-05-19T10:00:01Z", "at most a week"),
            ("2026-05-12T10:00:00Z", "has passed"),
            ("2026-05-11T10:00:00Z", "has passed"),
            ("15:30", "RFC 3339"),
            ("", "RFC 3339"),
        ] {
            let err = pause_end_at(bad, now).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidInput);
            assert!(err.message.contains(says), "{bad}: {}", err.message);
        }
    }
}
