//! One value for everything the dashboard and the menu bar show, built by pure functions from the
//! engine's status and this month's usage — so what "needs attention" means is decided (and
//! tested) in one place.

use hearth_proto::control::{self as proto, BotState, StatusReport, UsageReport};

use crate::ipc::{
    BotHealth, BotHealthState, DaySpend, Health, HostLoad, HouseholdSpend, Lane, LaneState, MemberCard, Phase,
    ProviderDto, Snapshot, SpendSplit, TurnActivity,
};

/// Builds the snapshot. `usage` is this month's report.
pub fn build(phase: Phase, status: &StatusReport, usage: &UsageReport, host: Option<HostLoad>) -> Snapshot {
    let members: Vec<MemberCard> = status
        .members
        .iter()
        .map(|m| {
            let spend = usage.members.iter().find(|u| u.id == m.id);
            MemberCard {
                id: m.id.clone(),
                name: m.name.clone(),
                role: role(m.role),
                bot_username: m.bot_username.clone(),
                bot: bot_health(&m.bot),
                paired: m.paired,
                paused: m.paused,
                lane: lane(&m.lane),
                last_activity: m.last_activity.clone(),
                today_usd: micros_to_usd(m.today.cost_micros),
                month_usd: spend.map(|s| s.totals.cost_usd).unwrap_or(0.0),
                daily_cap_usd: spend.and_then(|s| s.daily_cap_usd),
                monthly_cap_usd: spend.and_then(|s| s.monthly_cap_usd),
                isolation: m.isolation.as_str().to_owned(),
            }
        })
        .collect();
    let today_usd = members.iter().map(|m| m.today_usd).sum();
    let household = HouseholdSpend {
        today_usd,
        month_usd: usage.total.cost_usd,
        monthly_cap_usd: usage.household_monthly_cap_usd,
        per_day: usage.per_day.iter().map(|(date, usd)| DaySpend { date: date.clone(), usd: *usd }).collect(),
        timezone: usage.timezone.clone(),
        month_split: split(&usage.total),
    };
    let provider = status.provider.as_ref().map(provider);
    let (health, problems) = health(phase, provider.is_some(), &members, &household);
    Snapshot {
        phase,
        health,
        problems,
        provider,
        all_paused: !members.is_empty() && members.iter().all(|m| m.paused),
        members,
        household,
        turns_in_flight: status.turns_in_flight,
        turn_cap: status.turn_cap,
        isolation: status.isolation.as_str().to_owned(),
        host,
        uptime_secs: u32::try_from(status.uptime_secs).unwrap_or(u32::MAX),
    }
}

/// The snapshot of an app whose gateway is not running.
pub fn stopped(problem: &str) -> Snapshot {
    Snapshot {
        phase: Phase::Stopped,
        health: Health::Broken,
        problems: vec![problem.to_owned()],
        provider: None,
        members: Vec::new(),
        household: HouseholdSpend {
            today_usd: 0.0,
            month_usd: 0.0,
            monthly_cap_usd: None,
            per_day: Vec::new(),
            timezone: String::new(),
            month_split: SpendSplit::default(),
        },
        turns_in_flight: 0,
        turn_cap: 0,
        isolation: String::new(),
        host: None,
        all_paused: false,
        uptime_secs: 0,
    }
}

/// Broken: nothing can be answered for someone (no provider, a dead token, not running).
/// Attention: something the admin should look at soon (a cap reached, a member not paired yet,
/// a bot another program uses, Telegram unreachable). Paused members are the admin's choice,
/// not a problem.
pub fn health(phase: Phase, has_provider: bool, members: &[MemberCard], household: &HouseholdSpend) -> (Health, Vec<String>) {
    let mut worst = Health::Fine;
    let mut problems = Vec::new();
    let mut flag = |level: Health, what: String| {
        worst = worst.max(level);
        problems.push(what);
    };
    if phase == Phase::Stopped {
        flag(Health::Broken, "Hearth is not running.".to_owned());
    }
    if !has_provider && phase != Phase::Stopped {
        flag(Health::Broken, "No AI provider is set up yet: Settings → AI provider.".to_owned());
    }
    for m in members {
        match m.bot.state {
            BotHealthState::TokenRevoked => {
                flag(Health::Broken, format!("{}'s bot token was revoked: open {} and replace the token.", m.name, m.name))
            }
            BotHealthState::UsedElsewhere => flag(
                Health::Attention,
                format!("Another program is using {}'s bot (@{}); stop it, or give {} a new bot.", m.name, m.bot_username, m.name),
            ),
            BotHealthState::Unreachable => {
                flag(Health::Attention, format!("{}'s bot can't reach Telegram; Hearth keeps retrying.", m.name))
            }
            BotHealthState::Starting | BotHealthState::Polling | BotHealthState::RateLimited => {}
        }
        if !m.paired {
            flag(Health::Attention, format!("{} hasn't paired their Telegram yet: open {} → New pairing code.", m.name, m.name));
        }
        if reached(m.today_usd, m.daily_cap_usd) {
            flag(Health::Attention, format!("{} reached their daily limit; it resets tomorrow.", m.name));
        } else if reached(m.month_usd, m.monthly_cap_usd) {
            flag(Health::Attention, format!("{} reached their monthly limit.", m.name));
        }
    }
    if reached(household.month_usd, household.monthly_cap_usd) {
        flag(Health::Attention, "The household reached its monthly limit: nobody gets answers until it is raised or the month ends.".to_owned());
    }
    (worst, problems)
}

fn reached(spent: f64, cap: Option<f64>) -> bool {
    cap.is_some_and(|cap| spent >= cap - 1e-9)
}

pub fn bot_health(state: &BotState) -> BotHealth {
    let (state, label) = match state {
        BotState::Starting => (BotHealthState::Starting, "Connecting…".to_owned()),
        BotState::Polling => (BotHealthState::Polling, "Online".to_owned()),
        BotState::TokenRevoked => (BotHealthState::TokenRevoked, "Token revoked — paste a new one".to_owned()),
        BotState::UsedElsewhere => (BotHealthState::UsedElsewhere, "Another program is using this bot".to_owned()),
        BotState::RateLimited { retry_after_secs } => {
            (BotHealthState::RateLimited, format!("Telegram asked to slow down ({retry_after_secs} s)"))
        }
        BotState::Unreachable { .. } => (BotHealthState::Unreachable, "Can't reach Telegram — retrying".to_owned()),
    };
    BotHealth { state, label }
}

pub fn lane(state: &proto::LaneState) -> Lane {
    let thinking = TurnActivity::Thinking;
    match *state {
        proto::LaneState::Idle => Lane { state: LaneState::Idle, queued: 0, secs: 0, doing: thinking },
        proto::LaneState::Queued { messages } => {
            Lane { state: LaneState::Queued, queued: messages, secs: 0, doing: thinking }
        }
        proto::LaneState::Running { secs, queued, doing } => Lane {
            state: LaneState::Thinking,
            queued,
            secs: u32::try_from(secs).unwrap_or(u32::MAX),
            doing: activity(doing),
        },
    }
}

fn activity(doing: proto::TurnActivity) -> TurnActivity {
    match doing {
        proto::TurnActivity::Thinking => TurnActivity::Thinking,
        proto::TurnActivity::Listening => TurnActivity::Listening,
        proto::TurnActivity::Looking => TurnActivity::Looking,
        proto::TurnActivity::Speaking => TurnActivity::Speaking,
        proto::TurnActivity::Writing => TurnActivity::Writing,
    }
}

/// A period's totals split by kind, for the spend tiles.
pub fn split(t: &proto::UsageTotals) -> SpendSplit {
    let count = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    SpendSplit {
        chat_usd: t.chat_cost_usd,
        images: count(t.images),
        heard_usd: t.speech_cost_usd,
        heard_notes: count(t.speech_calls),
        heard_minutes: t.audio_seconds as f64 / 60.0,
        replies_usd: t.voice_cost_usd,
        replies: count(t.voice_calls),
    }
}

pub fn role(role: proto::Role) -> crate::ipc::Role {
    match role {
        proto::Role::Adult => crate::ipc::Role::Adult,
        proto::Role::Teen => crate::ipc::Role::Teen,
        proto::Role::Child => crate::ipc::Role::Child,
    }
}

pub fn provider(p: &proto::ProviderSummary) -> ProviderDto {
    ProviderDto {
        kind: match p.kind {
            proto::ProviderKind::Openai => crate::ipc::ProviderKind::Openai,
            proto::ProviderKind::Anthropic => crate::ipc::ProviderKind::Anthropic,
        },
        base_url: p.base_url.clone(),
        model: p.model.clone(),
    }
}

pub fn micros_to_usd(micros: u64) -> f64 {
    micros as f64 / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_proto::control::{DayUsage, IsolationLevel, MemberStatus, MemberUsage, UsageTotals};

    fn status() -> StatusReport {
        StatusReport {
            version: "0.1.0".into(),
            data_dir: "/var/lib/hearth".into(),
            uptime_secs: 5,
            provider: None,
            members: vec![MemberStatus {
                id: "m1".into(),
                name: "Ana".into(),
                bot_username: "ana_bot".into(),
                bot: BotState::Polling,
                paired: true,
                lane: proto::LaneState::Running { secs: 4, queued: 1, doing: Default::default() },
                worker_pid: Some(42),
                isolation: IsolationLevel::AccountSandbox,
                today: DayUsage { calls: 1, input_tokens: 10, output_tokens: 10, cost_micros: 250_000 },
                role: proto::Role::Teen,
                paused: false,
                paused_until: None,
                last_activity: Some("2026-11-21T10:00:00Z".into()),
                quiet_hours: None,
                disk: None,
            }],
            turns_in_flight: 1,
            turn_cap: 64,
            worker_processes: 1,
            isolation: IsolationLevel::AccountSandbox,
            speech: None,
            voice: None,
        }
    }

    fn usage() -> UsageReport {
        UsageReport {
            month: "2026-11".into(),
            timezone: "Europe/London".into(),
            members: vec![MemberUsage {
                id: "m1".into(),
                name: "Ana".into(),
                totals: UsageTotals { calls: 3, cost_usd: 1.5, ..Default::default() },
                today_usd: 0.25,
                daily_cap_usd: Some(1.0),
                monthly_cap_usd: Some(5.0),
                today: UsageTotals::default(),
            }],
            total: UsageTotals { calls: 3, cost_usd: 1.5, ..Default::default() },
            household_monthly_cap_usd: Some(30.0),
            per_day: vec![("2026-11-20".into(), 1.25), ("2026-11-21".into(), 0.25)],
            today_total: UsageTotals::default(),
        }
    }

    #[test]
    fn status_and_usage_become_one_snapshot() {
        let s = build(Phase::Serving, &status(), &usage(), None);
        let ana = &s.members[0];
        assert_eq!(ana.role, crate::ipc::Role::Teen);
        assert_eq!(ana.lane, Lane { state: LaneState::Thinking, queued: 1, secs: 4, doing: TurnActivity::Thinking });
        assert_eq!(
            (ana.today_usd, ana.month_usd, ana.daily_cap_usd, ana.monthly_cap_usd),
            (0.25, 1.5, Some(1.0), Some(5.0))
        );
        assert_eq!(ana.isolation, "account + sandbox");
        assert_eq!(s.household.today_usd, 0.25);
        assert_eq!(s.household.per_day[0], DaySpend { date: "2026-11-20".into(), usd: 1.25 });
        // No provider yet: nobody can be answered.
        assert_eq!(s.health, Health::Broken);
        assert_eq!(s.problems, vec!["No AI provider is set up yet: Settings → AI provider."]);
        assert!(!s.all_paused);
    }

    #[test]
    fn the_household_cap_reached_needs_attention() {
        let mut u = usage();
        u.total.cost_usd = 30.0;
        let mut st = status();
        st.provider = Some(proto::ProviderSummary {
            kind: proto::ProviderKind::Openai,
            base_url: "https://api.openai.com/v1".into(),
            model: "gpt-4o-mini".into(),
        });
        let s = build(Phase::Serving, &st, &u, None);
        assert_eq!(s.health, Health::Attention);
        assert!(s.problems[0].starts_with("The household reached its monthly limit"), "{:?}", s.problems);
    }

    /// What a running turn does reaches the lane; a lane with no turn is never "listening".
    #[test]
    fn a_lane_says_what_its_turn_does() {
        for (doing, want) in [
            (proto::TurnActivity::Listening, TurnActivity::Listening),
            (proto::TurnActivity::Looking, TurnActivity::Looking),
            (proto::TurnActivity::Speaking, TurnActivity::Speaking),
            (proto::TurnActivity::Writing, TurnActivity::Writing),
            (proto::TurnActivity::Thinking, TurnActivity::Thinking),
        ] {
            let running = lane(&proto::LaneState::Running { secs: 2, queued: 0, doing });
            assert_eq!((running.state, running.doing), (LaneState::Thinking, want));
        }
        assert_eq!(lane(&proto::LaneState::Queued { messages: 3 }).doing, TurnActivity::Thinking);
        let mut st = status();
        st.members[0].lane = proto::LaneState::Running { secs: 1, queued: 0, doing: proto::TurnActivity::Listening };
        assert_eq!(build(Phase::Serving, &st, &usage(), None).members[0].lane.doing, TurnActivity::Listening);
    }

    #[test]
    fn the_month_splits_into_chat_voice_notes_and_voice_replies() {
        let mut u = usage();
        u.total = UsageTotals {
            calls: 9,
            cost_usd: 1.75,
            chat_calls: 5,
            chat_cost_usd: 1.5,
            images: 2,
            speech_calls: 3,
            audio_seconds: 90,
            speech_cost_usd: 0.05,
            voice_calls: 1,
            voice_chars: 400,
            voice_cost_usd: 0.2,
            ..Default::default()
        };
        let s = build(Phase::Serving, &status(), &u, None).household.month_split;
        assert_eq!(
            s,
            SpendSplit {
                chat_usd: 1.5,
                images: 2,
                heard_usd: 0.05,
                heard_notes: 3,
                heard_minutes: 1.5,
                replies_usd: 0.2,
                replies: 1
            }
        );
    }

    #[test]
    fn bot_states_read_as_plain_words() {
        assert_eq!(bot_health(&BotState::TokenRevoked).label, "Token revoked — paste a new one");
        assert_eq!(bot_health(&BotState::RateLimited { retry_after_secs: 7 }).label, "Telegram asked to slow down (7 s)");
        assert_eq!(bot_health(&BotState::Unreachable { error: "dns".into() }).state, BotHealthState::Unreachable);
    }
}
