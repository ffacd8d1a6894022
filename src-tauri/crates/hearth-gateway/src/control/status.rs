//! The status snapshot the app's dashboard and `hearth status` show: each member's bot, lane,
//! worker, activity and spend today, read from the core loop's state as it last left it.

use std::collections::HashMap;
use std::time::Instant;

use hearth_proto::control::{MemberStatus, ProviderConnections, StatusReport};

use super::rfc3339;
use crate::broker::spend::{PeriodKind, period};
use crate::core::{Engine, Roster};
use crate::store;

/// A snapshot of everything the admin watches.
pub(crate) async fn status(e: &Engine) -> anyhow::Result<StatusReport> {
    // "Today" is the household's day, as the caps count it.
    let since = period::period_at(PeriodKind::Day, e.broker.timezone(), chrono::Utc::now()).starts_at.timestamp();
    let usage: HashMap<String, _> = e.store.call(move |c| store::usage_since(c, since)).await?.into_iter().collect();
    let now = Instant::now();
    let members = e.members.read(Roster::list);
    let activity = e.activity.read(Clone::clone);
    let (lanes, in_flight, turn_cap) = e
        .lanes
        .read(|l| (members.iter().map(|m| l.state(&m.id, now)).collect::<Vec<_>>(), l.in_flight(), l.turn_cap()));
    let bots: Vec<_> = e.bots.read(|b| members.iter().map(|m| b.state(&m.id)).collect());
    let members = members
        .into_iter()
        .zip(lanes)
        .zip(bots)
        .map(|((m, lane), bot)| MemberStatus {
            role: m.role,
            paused: m.paused,
            paused_until: m.paused_until.filter(|_| m.paused).map(rfc3339),
            quiet_hours: m.quiet_hours,
            last_activity: activity.get(&m.id).map(|t| rfc3339(*t)),
            bot,
            paired: m.telegram_user_id.is_some(),
            lane,
            worker_pid: e.workers.pid(&m.id),
            isolation: e.workers.level(),
            today: usage.get(&m.id).copied().unwrap_or_default(),
            disk: e.quotas.usage(&m.id),
            id: m.id,
            name: m.name,
            bot_username: m.bot_username,
        })
        .collect();
    Ok(StatusReport {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        data_dir: e.dir.root().display().to_string(),
        uptime_secs: e.started.elapsed().as_secs(),
        provider: e.broker.provider_summary(),
        members,
        turns_in_flight: in_flight as u32,
        turn_cap: turn_cap as u32,
        worker_processes: e.workers.running().len() as u32,
        isolation: e.workers.level(),
        speech: Some(e.broker.speech_summary()),
        voice: Some(e.broker.voice_summary()),
        provider_connections: Some({
            let (max, open) = e.broker.connections();
            ProviderConnections { open, max }
        }),
        household_bot: super::household_bot_summary(e).await.map_err(|err| anyhow::anyhow!(err.message))?,
    })
}
