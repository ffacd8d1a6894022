//! One value for everything the dashboard and the menu bar show, built by pure functions from the
//! engine's status and this month's usage — so what "needs attention" means is decided (and
//! tested) in one place.

use hearth_proto::control::{self as proto, BotState, StatusReport, UsageReport};

use crate::ipc::{
    BotHealth, BotHealthState, DaySpend, DaemonState, MemberDay, Fix, Health, HostLoad, HouseholdSpend, Lane, LaneState, MemberCard,
    MemberStatus, Phase, Platform, Problem, ProviderDto, Snapshot, SpendSplit, Tone, TurnActivity,
};

/// From this much of the data folder's disk in use, the dashboard asks for room.
pub const DISK_FULL_PCT: f64 = 85.0;

/// What the app knows beside the engine's status: the host's load, when it saw every member
/// become paused, and whether this machine could keep members further apart.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub host: Option<HostLoad>,
    /// RFC 3339.
    pub paused_since: Option<String>,
    /// The one action that gives members a stronger separation than they have now.
    pub stronger_isolation: Option<Fix>,
    /// `(member id, "07:00")` for each member whose assistant rests now, and until when.
    pub resting: Vec<(String, String)>,
}

/// When every member became paused, as far as this app saw it happen: a pause made while the
/// app was not looking (before it started) has no time rather than a wrong one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PausedWatch {
    /// Whether the last snapshot had everyone paused; `None` before the first.
    all: Option<bool>,
    since: Option<String>,
}

impl PausedWatch {
    /// Takes one snapshot's "everyone paused"; returns since when (RFC 3339), if known.
    pub fn see(&mut self, all_paused: bool, now: impl FnOnce() -> String) -> Option<String> {
        match (self.all, all_paused) {
            (_, false) => self.since = None,
            (Some(false), true) => self.since = Some(now()),
            (None | Some(true), true) => {}
        }
        self.all = Some(all_paused);
        self.since.clone()
    }
}

/// Builds the snapshot. `usage` is this month's report.
pub fn build(phase: Phase, status: &StatusReport, usage: &UsageReport, observed: Observed) -> Snapshot {
    let members: Vec<MemberCard> = status
        .members
        .iter()
        .map(|m| {
            let spend = usage.members.iter().find(|u| u.id == m.id);
            let mut card = MemberCard {
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
                today_calls: u32::try_from(m.today.calls).unwrap_or(u32::MAX),
                month_usd: spend.map(|s| s.totals.cost_usd).unwrap_or(0.0),
                daily_cap_usd: spend.and_then(|s| s.daily_cap_usd),
                monthly_cap_usd: spend.and_then(|s| s.monthly_cap_usd),
                isolation: m.isolation.as_str().to_owned(),
                resting_until: observed.resting.iter().find(|(id, _)| *id == m.id).map(|(_, until)| until.clone()),
                status: MemberStatus { text: String::new(), tone: Tone::Good },
                days: spend.map(|s| s.days.iter().map(member_day).collect()).unwrap_or_default(),
            };
            card.status = member_status(&card);
            card
        })
        .collect();
    let today_usd = members.iter().map(|m| m.today_usd).sum();
    let household = HouseholdSpend {
        today_usd,
        month_usd: usage.total.cost_usd,
        monthly_cap_usd: usage.household_monthly_cap_usd,
        per_day: usage.per_day.iter().map(|(date, usd)| DaySpend { date: date.clone(), usd: *usd }).collect(),
        month: usage.month.clone(),
        timezone: usage.timezone.clone(),
        month_split: split(&usage.total),
    };
    let provider = status.provider.as_ref().map(provider);
    let all_paused = !members.is_empty() && members.iter().all(|m| m.paused);
    let observed = Observed { paused_since: observed.paused_since.filter(|_| all_paused), ..observed };
    let (health, problems) = health(phase, provider.is_some(), &members, &household, &observed);
    Snapshot {
        phase,
        health,
        problems,
        provider,
        all_paused,
        paused_since: observed.paused_since,
        members,
        household,
        turns_in_flight: status.turns_in_flight,
        turn_cap: status.turn_cap,
        isolation: status.isolation.as_str().to_owned(),
        host: observed.host,
        uptime_secs: u32::try_from(status.uptime_secs).unwrap_or(u32::MAX),
    }
}

/// What a member's card and tray row say, in one sentence: the most important first — a bot
/// that stopped working, not connected, paused, a limit hit, answering, resting, waiting, ready.
pub fn member_status(m: &MemberCard) -> MemberStatus {
    let say = |text: String, tone: Tone| MemberStatus { text, tone };
    match m.bot.state {
        BotHealthState::TokenRevoked => return say("Bot stopped working — replace token".into(), Tone::Bad),
        BotHealthState::UsedElsewhere => return say("Another program is using this bot".into(), Tone::Bad),
        _ => {}
    }
    let waiting = if m.lane.queued > 0 { format!(" · {} waiting", m.lane.queued) } else { String::new() };
    if !m.paired {
        say("Not connected to Telegram yet".into(), Tone::Warn)
    } else if m.paused {
        say("Paused by you".into(), Tone::Warn)
    } else if reached(m.today_usd, m.daily_cap_usd) {
        say("Hit today's limit".into(), Tone::Warn)
    } else if reached(m.month_usd, m.monthly_cap_usd) {
        say("Hit this month's limit".into(), Tone::Warn)
    } else if m.lane.state == LaneState::Thinking {
        say(format!("Answering{waiting}"), Tone::Info)
    } else if let Some(until) = &m.resting_until {
        say(format!("Resting until {until}"), Tone::Info)
    } else if m.lane.queued > 0 {
        say(format!("{} waiting", m.lane.queued), Tone::Info)
    } else if m.bot.state == BotHealthState::Unreachable {
        say("Can't reach Telegram — retrying".into(), Tone::Warn)
    } else {
        say("Ready".into(), Tone::Good)
    }
}

/// The snapshot of an app whose gateway is not running.
pub fn stopped(problem: &str) -> Snapshot {
    Snapshot {
        phase: Phase::Stopped,
        health: Health::Broken,
        problems: vec![Problem { health: Health::Broken, text: problem.to_owned(), fix: None, member_id: None }],
        provider: None,
        members: Vec::new(),
        household: HouseholdSpend {
            today_usd: 0.0,
            month_usd: 0.0,
            monthly_cap_usd: None,
            per_day: Vec::new(),
            month: String::new(),
            timezone: String::new(),
            month_split: SpendSplit::default(),
        },
        turns_in_flight: 0,
        turn_cap: 0,
        isolation: String::new(),
        host: None,
        all_paused: false,
        paused_since: None,
        uptime_secs: 0,
    }
}

/// The one health rule, for the dashboard's headline and the tray's icon.
///
/// Broken: someone gets no answers and only the admin can change that (no provider, a dead
/// token, not running). Attention: something the admin should look at soon — every assistant
/// paused, a cap reached, a member not paired yet, a bot another program uses, Telegram
/// unreachable, the disk nearly full, members kept less apart than this machine allows. Some
/// members paused is the admin's choice, not a problem. Problems come worst first — within a
/// level, what touches everyone before what touches one member — so the first is the headline.
pub fn health(
    phase: Phase,
    has_provider: bool,
    members: &[MemberCard],
    household: &HouseholdSpend,
    observed: &Observed,
) -> (Health, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut flag = |health: Health, text: String, fix: Option<Fix>, member: Option<&MemberCard>| {
        problems.push(Problem { health, text, fix, member_id: member.map(|m| m.id.clone()) });
    };
    if phase == Phase::Stopped {
        flag(Health::Broken, "Hearth is not running.".to_owned(), None, None);
    }
    if !has_provider && phase != Phase::Stopped {
        flag(Health::Broken, "No AI provider is set up yet: Settings → AI provider.".to_owned(), Some(Fix::OpenSettings), None);
    }
    if !members.is_empty() && members.iter().all(|m| m.paused) {
        flag(Health::Attention, "All assistants paused".to_owned(), Some(Fix::ResumeAll), None);
    }
    if reached(household.month_usd, household.monthly_cap_usd) {
        flag(
            Health::Attention,
            "The household reached its monthly limit: nobody gets answers until it is raised or the month ends.".to_owned(),
            Some(Fix::OpenSettings),
            None,
        );
    }
    if let Some(host) = &observed.host
        && host.disk_pct > DISK_FULL_PCT
    {
        flag(
            Health::Attention,
            format!(
                "This computer's disk is {:.0} % full: free some space, or the assistants will soon have no room for new messages.",
                host.disk_pct.floor()
            ),
            None,
            None,
        );
    }
    match observed.stronger_isolation {
        Some(fix @ Fix::AllowSupervisor) => flag(
            Health::Attention,
            "Everyone's assistant runs under one account on this computer: allow the Hearth supervisor so each member gets an account of their own.".to_owned(),
            Some(fix),
            None,
        ),
        Some(fix @ Fix::Restart) => flag(
            Health::Attention,
            "The Hearth supervisor is allowed: restart Hearth so each member gets an account of their own.".to_owned(),
            Some(fix),
            None,
        ),
        Some(_) | None => {}
    }
    for m in members {
        let open = Some(Fix::OpenMember);
        match m.bot.state {
            BotHealthState::TokenRevoked => flag(
                Health::Broken,
                format!("{}'s bot stopped working: Telegram no longer accepts its token. Open {} and replace the token.", m.name, m.name),
                open,
                Some(m),
            ),
            BotHealthState::UsedElsewhere => flag(
                Health::Attention,
                format!("Another program is using {}'s bot (@{}); stop it, or give {} a new bot.", m.name, m.bot_username, m.name),
                open,
                Some(m),
            ),
            BotHealthState::Unreachable => {
                flag(Health::Attention, format!("{}'s bot can't reach Telegram; Hearth keeps retrying.", m.name), None, Some(m))
            }
            BotHealthState::Starting | BotHealthState::Polling | BotHealthState::RateLimited => {}
        }
        if !m.paired {
            flag(
                Health::Attention,
                format!("{} hasn't connected their Telegram yet: open {} → New pairing code.", m.name, m.name),
                open,
                Some(m),
            );
        }
        if reached(m.today_usd, m.daily_cap_usd) {
            flag(Health::Attention, format!("{} reached their daily limit; it resets tomorrow.", m.name), open, Some(m));
        } else if reached(m.month_usd, m.monthly_cap_usd) {
            flag(Health::Attention, format!("{} reached their monthly limit.", m.name), open, Some(m));
        }
    }
    // Worst first; a stable sort keeps the order above within each level.
    problems.sort_by_key(|p| std::cmp::Reverse(p.health));
    let worst = problems.first().map(|p| p.health).unwrap_or(Health::Fine);
    (worst, problems)
}

/// The one action that separates members more than `level` does, when this machine has one:
/// on macOS, the supervisor (not yet allowed: allow it; allowed while the household still
/// runs at "process": restart). Elsewhere a desktop app cannot give members accounts by one
/// action (Linux: the hearth-server package does), so nothing is asked.
pub fn stronger_isolation(platform: Platform, daemon: Option<DaemonState>, level: &str) -> Option<Fix> {
    if platform != Platform::Macos || level != "process" {
        return None;
    }
    match daemon? {
        DaemonState::NotRegistered | DaemonState::RequiresApproval => Some(Fix::AllowSupervisor),
        DaemonState::Enabled => Some(Fix::Restart),
        DaemonState::NotFound => None,
    }
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

/// A day of a member's activity as the app shows it.
fn member_day(d: &proto::DayActivity) -> MemberDay {
    MemberDay { date: d.date.clone(), usd: d.usd, messages: u32::try_from(d.messages).unwrap_or(u32::MAX) }
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
    use hearth_proto::control::{DayActivity, DayUsage, IsolationLevel, MemberStatus, MemberUsage, UsageTotals};

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
            provider_connections: None,
            household_bot: None,
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
                days: vec![DayActivity { date: "2026-11-20".into(), usd: 1.25, messages: 4 }],
            }],
            total: UsageTotals { calls: 3, cost_usd: 1.5, ..Default::default() },
            household_monthly_cap_usd: Some(30.0),
            per_day: vec![("2026-11-20".into(), 1.25), ("2026-11-21".into(), 0.25)],
            today_total: UsageTotals::default(),
        }
    }

    #[test]
    fn status_and_usage_become_one_snapshot() {
        let s = build(Phase::Serving, &status(), &usage(), Observed::default());
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
        assert_eq!(s.household.month, "2026-11");
        // The member's own days reach the card for the chart's stacks and the activity view.
        assert_eq!(ana.days, vec![MemberDay { date: "2026-11-20".into(), usd: 1.25, messages: 4 }]);
        // No provider yet: nobody can be answered.
        assert_eq!(s.health, Health::Broken);
        assert_eq!(
            s.problems,
            vec![Problem {
                health: Health::Broken,
                text: "No AI provider is set up yet: Settings → AI provider.".into(),
                fix: Some(Fix::OpenSettings),
                member_id: None
            }]
        );
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
        let s = build(Phase::Serving, &st, &u, Observed::default());
        assert_eq!(s.health, Health::Attention);
        assert!(s.problems[0].text.starts_with("The household reached its monthly limit"), "{:?}", s.problems);
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
        assert_eq!(build(Phase::Serving, &st, &usage(), Observed::default()).members[0].lane.doing, TurnActivity::Listening);
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
        let s = build(Phase::Serving, &status(), &u, Observed::default()).household.month_split;
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

    /// A household with a provider where everything is fine, to change one thing at a time.
    fn served() -> (StatusReport, UsageReport) {
        let mut st = status();
        st.provider = Some(proto::ProviderSummary {
            kind: proto::ProviderKind::Openai,
            base_url: "https://api.openai.com/v1".into(),
            model: "gpt-4o-mini".into(),
        });
        st.members.push(MemberStatus { id: "m2".into(), name: "Ben".into(), bot_username: "ben_bot".into(), ..st.members[0].clone() });
        (st, usage())
    }

    fn host(disk_pct: f64) -> Option<HostLoad> {
        Some(HostLoad { cpu_pct: 3.0, memory_pct: 40.0, disk_pct })
    }

    fn texts(s: &Snapshot) -> Vec<&str> {
        s.problems.iter().map(|p| p.text.as_str()).collect()
    }

    #[test]
    fn a_served_household_is_fine() {
        let (st, u) = served();
        let s = build(Phase::Serving, &st, &u, Observed { host: host(60.0), ..Default::default() });
        assert_eq!((s.health, s.problems.len()), (Health::Fine, 0), "{:?}", s.problems);
        assert_eq!((s.members[0].today_calls, s.members[0].status.text.as_str()), (1, "Answering · 1 waiting"));
    }

    /// Every assistant paused is amber with Resume, and says since when the app saw it; one
    /// member paused is the admin's choice and no problem.
    #[test]
    fn all_paused_needs_attention_with_resume() {
        let (mut st, u) = served();
        st.members[0].paused = true;
        let since = Observed { paused_since: Some("2026-11-21T14:02:00Z".into()), ..Default::default() };
        let one = build(Phase::Serving, &st, &u, since.clone());
        assert_eq!((one.health, one.all_paused, one.paused_since.as_deref()), (Health::Fine, false, None));
        st.members[1].paused = true;
        let all = build(Phase::Serving, &st, &u, since);
        assert_eq!(all.health, Health::Attention);
        assert_eq!(all.problems[0].text, "All assistants paused");
        assert_eq!(all.problems[0].fix, Some(Fix::ResumeAll));
        assert_eq!(all.paused_since.as_deref(), Some("2026-11-21T14:02:00Z"));
    }

    #[test]
    fn a_disk_over_85_percent_needs_attention() {
        let (st, u) = served();
        let at = |pct| build(Phase::Serving, &st, &u, Observed { host: host(pct), ..Default::default() });
        assert_eq!(at(85.0).health, Health::Fine);
        let full = at(91.4);
        assert_eq!(full.health, Health::Attention);
        assert_eq!(
            texts(&full),
            vec!["This computer's disk is 91 % full: free some space, or the assistants will soon have no room for new messages."]
        );
        assert_eq!(full.problems[0].fix, None);
    }

    /// Members kept less apart than the machine allows: amber, with the one action that fixes it.
    #[test]
    fn weaker_isolation_than_the_machine_allows_names_the_fix() {
        use crate::ipc::{DaemonState as D, Platform as P};
        assert_eq!(stronger_isolation(P::Macos, Some(D::NotRegistered), "process"), Some(Fix::AllowSupervisor));
        assert_eq!(stronger_isolation(P::Macos, Some(D::RequiresApproval), "process"), Some(Fix::AllowSupervisor));
        assert_eq!(stronger_isolation(P::Macos, Some(D::Enabled), "process"), Some(Fix::Restart));
        assert_eq!(stronger_isolation(P::Macos, Some(D::NotFound), "process"), None);
        assert_eq!(stronger_isolation(P::Macos, Some(D::Enabled), "account + sandbox"), None);
        // A Linux desktop has no one action that gives members accounts: nothing is asked.
        assert_eq!(stronger_isolation(P::Linux, None, "process"), None);
        let (st, u) = served();
        for (fix, starts) in [(Fix::AllowSupervisor, "Everyone's assistant runs under one account"), (Fix::Restart, "The Hearth supervisor is allowed")] {
            let s = build(Phase::Serving, &st, &u, Observed { stronger_isolation: Some(fix), ..Default::default() });
            assert_eq!((s.health, s.problems[0].fix), (Health::Attention, Some(fix)));
            assert!(s.problems[0].text.starts_with(starts), "{:?}", s.problems);
        }
    }

    /// A broken bot is red and comes first, whatever else needs attention; it opens the member.
    #[test]
    fn the_headline_names_the_worst() {
        let (mut st, u) = served();
        st.members[0].paused = true;
        st.members[1].paused = true;
        st.members[1].bot = BotState::TokenRevoked;
        let s = build(Phase::Serving, &st, &u, Observed { host: host(95.0), ..Default::default() });
        assert_eq!(s.health, Health::Broken);
        assert_eq!(
            texts(&s),
            vec![
                "Ben's bot stopped working: Telegram no longer accepts its token. Open Ben and replace the token.",
                "All assistants paused",
                "This computer's disk is 95 % full: free some space, or the assistants will soon have no room for new messages.",
            ]
        );
        assert_eq!((s.problems[0].fix, s.problems[0].member_id.as_deref()), (Some(Fix::OpenMember), Some("m2")));
    }

    #[test]
    fn a_member_not_paired_or_at_a_cap_opens_their_page() {
        let (mut st, mut u) = served();
        st.members[1].paired = false;
        u.members[0].daily_cap_usd = Some(0.25);
        let s = build(Phase::Serving, &st, &u, Observed::default());
        assert_eq!(s.health, Health::Attention);
        assert_eq!(
            texts(&s),
            vec![
                "Ana reached their daily limit; it resets tomorrow.",
                "Ben hasn't connected their Telegram yet: open Ben → New pairing code.",
            ]
        );
        assert!(s.problems.iter().all(|p| p.fix == Some(Fix::OpenMember)));
        st.members[0].bot = BotState::UsedElsewhere;
        st.members[1].bot = BotState::Unreachable { error: "dns".into() };
        let s = build(Phase::Serving, &st, &u, Observed::default());
        assert_eq!(s.health, Health::Attention);
        assert!(texts(&s)[0].starts_with("Another program is using Ana's bot"), "{:?}", s.problems);
        assert!(texts(&s).contains(&"Ben's bot can't reach Telegram; Hearth keeps retrying."));
    }

    #[test]
    fn a_stopped_app_is_broken() {
        let s = stopped("Hearth could not start: the disk is full");
        assert_eq!(s.health, Health::Broken);
        assert_eq!(texts(&s), vec!["Hearth could not start: the disk is full"]);
        let (h, p) = health(Phase::Stopped, false, &[], &s.household, &Observed::default());
        assert_eq!((h, p[0].text.as_str(), p.len()), (Health::Broken, "Hearth is not running.", 1));
    }

    /// Each member's one sentence, the worst first.
    #[test]
    fn each_member_reads_in_one_sentence() {
        let (mut st, u) = served();
        st.members[0].lane = proto::LaneState::Idle;
        let said = |st: &StatusReport, resting: Vec<(String, String)>| {
            let s = build(Phase::Serving, st, &u, Observed { resting, ..Default::default() });
            (s.members[0].status.text.clone(), s.members[0].status.tone)
        };
        assert_eq!(said(&st, vec![]), ("Ready".into(), Tone::Good));
        let resting = vec![("m1".to_owned(), "07:00".to_owned())];
        assert_eq!(said(&st, resting.clone()), ("Resting until 07:00".into(), Tone::Info));
        st.members[0].lane = proto::LaneState::Queued { messages: 3 };
        assert_eq!(said(&st, vec![]).0, "3 waiting");
        st.members[0].lane = proto::LaneState::Running { secs: 2, queued: 2, doing: proto::TurnActivity::Writing };
        assert_eq!(said(&st, resting.clone()), ("Answering · 2 waiting".into(), Tone::Info));
        st.members[0].today.cost_micros = 1_000_000;
        assert_eq!(said(&st, vec![]).0, "Hit today's limit");
        st.members[0].today.cost_micros = 0;
        st.members[0].paused = true;
        assert_eq!(said(&st, vec![]), ("Paused by you".into(), Tone::Warn));
        st.members[0].paired = false;
        assert_eq!(said(&st, vec![]).0, "Not connected to Telegram yet");
        st.members[0].bot = BotState::TokenRevoked;
        assert_eq!(said(&st, vec![]), ("Bot stopped working — replace token".into(), Tone::Bad));
        st.members[0].bot = BotState::UsedElsewhere;
        assert_eq!(said(&st, vec![]).0, "Another program is using this bot");
        let (mut st, mut u2) = served();
        st.members[0].lane = proto::LaneState::Idle;
        u2.members[0].totals.cost_usd = 5.0;
        let s = build(Phase::Serving, &st, &u2, Observed::default());
        assert_eq!(s.members[0].status.text, "Hit this month's limit");
        st.members[0].bot = BotState::Unreachable { error: "dns".into() };
        let s = build(Phase::Serving, &st, &usage(), Observed::default());
        assert_eq!(s.members[0].status.text, "Can't reach Telegram — retrying");
    }

    #[test]
    fn paused_since_is_when_the_app_saw_it_happen() {
        let mut w = PausedWatch::default();
        // Already paused when the app started: no time rather than a wrong one.
        assert_eq!(w.see(true, || "t0".into()), None);
        assert_eq!(w.see(false, || "t1".into()), None);
        assert_eq!(w.see(true, || "t2".into()).as_deref(), Some("t2"));
        assert_eq!(w.see(true, || "t3".into()).as_deref(), Some("t2"));
        assert_eq!(w.see(false, || "t4".into()), None);
    }

    #[test]
    fn bot_states_read_as_plain_words() {
        assert_eq!(bot_health(&BotState::TokenRevoked).label, "Token revoked — paste a new one");
        assert_eq!(bot_health(&BotState::RateLimited { retry_after_secs: 7 }).label, "Telegram asked to slow down (7 s)");
        assert_eq!(bot_health(&BotState::Unreachable { error: "dns".into() }).state, BotHealthState::Unreachable);
    }
}
