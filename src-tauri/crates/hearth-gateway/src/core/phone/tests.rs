//! The admin's commands from Telegram: who a command names, the amounts `/allow` takes, and
//! what `/status` says.

use chrono::{DateTime, Utc};
use hearth_proto::control::{
    BotState, DayUsage, IsolationLevel, LaneState, MemberStatus, ProviderKind, ProviderSummary, QuietHours, Role,
};

use super::*;
use crate::broker::spend::{Budget, PeriodKind, period};

fn member(id: &str, name: &str) -> MemberRow {
    MemberRow {
        seq: 0,
        id: id.into(),
        name: name.into(),
        persona: String::new(),
        telegram_user_id: Some(1),
        chat_id: Some(1),
        created_at: 0,
        bot_id: 1,
        bot_username: format!("{id}_bot"),
        next_offset: 0,
        is_admin: false,
        cap_daily_micros: None,
        cap_monthly_micros: None,
        fallback_model: None,
        role: Role::Adult,
        paused: false,
        paused_until: None,
        model: None,
        quiet_hours: None,
        voice_replies: Default::default(),
        streaming: true,
        alerts: Default::default(),
    }
}

#[test]
fn a_command_names_all_or_a_member_by_name_or_id() {
    let members = [member("ana-1", "Ana"), member("am-2", "Ana Maria"), member("leo-3", "Léo")];
    let pick = |w: &str| pick(&members, w, "/pause NAME").map(|(t, rest)| (t, rest.to_owned()));
    assert_eq!(pick("ana 1h"), Ok((Target::One(&members[0]), "1h".into())));
    assert_eq!(pick("ANA MARIA until 15:30"), Ok((Target::One(&members[1]), "until 15:30".into())));
    assert_eq!(pick("  Ana  "), Ok((Target::One(&members[0]), String::new())));
    assert_eq!(pick("léo"), Ok((Target::One(&members[2]), String::new())));
    assert_eq!(pick("LÉO tonight"), Ok((Target::One(&members[2]), "tonight".into())));
    assert_eq!(pick("leo-3 30m"), Ok((Target::One(&members[2]), "30m".into())));
    assert_eq!(pick("All tonight"), Ok((Target::All, "tonight".into())));
    let unknown = pick("Bob 1h").unwrap_err();
    assert_eq!(unknown, "I don't know anyone called \"Bob\". The household: Ana, Ana Maria, Léo.");
    let none = pick("").unwrap_err();
    assert!(none.starts_with("Whom? /pause NAME.") && none.contains("Ana, Ana Maria, Léo"), "{none}");
}

#[test]
fn allow_takes_an_amount_up_to_a_hundred_dollars() {
    assert_eq!(allow_amount("+$1"), Ok(1_000_000));
    assert_eq!(allow_amount("+1"), Ok(1_000_000));
    assert_eq!(allow_amount("+$0.50"), Ok(500_000));
    assert_eq!(allow_amount("$2"), Ok(2_000_000));
    assert_eq!(allow_amount("+$100"), Ok(100_000_000));
    assert!(allow_amount("+$100.01").unwrap_err().contains("more than $100.00"));
    assert!(allow_amount("+$0").unwrap_err().contains("more than $0"));
    for bad in ["-1", "+-1", "+$", "lots", "+1e3", "++1"] {
        assert!(allow_amount(bad).unwrap_err().contains("is not an amount"), "{bad}");
    }
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn status(name: &str, bot: BotState) -> MemberStatus {
    MemberStatus {
        id: name.to_lowercase(),
        name: name.into(),
        bot_username: format!("{}_bot", name.to_lowercase()),
        bot,
        paired: true,
        lane: LaneState::Idle,
        worker_pid: None,
        isolation: IsolationLevel::Process,
        today: DayUsage::default(),
        role: Role::Adult,
        paused: false,
        paused_until: None,
        last_activity: None,
        quiet_hours: None,
        disk: None,
    }
}

fn provider() -> ProviderSummary {
    ProviderSummary { kind: ProviderKind::Openai, base_url: "http://x".into(), model: "m".into() }
}

#[test]
fn status_says_each_members_state_and_spend_and_the_problems() {
    let tz = chrono_tz::Europe::Berlin;
    // 22:00 in Berlin.
    let now = at("2026-05-12T20:00:00Z");
    let mut budget = Budget::new(tz);
    let day = period::period_at(PeriodKind::Day, tz, now).key;
    let month = period::period_at(PeriodKind::Month, tz, now).key;
    budget.set_member_caps("sam", Some(250_000), None);
    budget.set_household_cap(Some(30_000_000));
    for (id, today, this_month) in [("ana", 30_000, 1_200_000), ("sam", 250_000, 900_000)] {
        budget.load_spent(CapKind::MemberDaily.scope(id), PeriodKind::Day, &day, today);
        budget.load_spent(CapKind::MemberMonthly.scope(id), PeriodKind::Month, &month, this_month);
    }
    budget.load_spent(CapKind::HouseholdMonthly.scope("ana"), PeriodKind::Month, &month, 2_100_000);

    let mut leo = status("Leo", BotState::Polling);
    leo.paused = true;
    leo.paused_until = Some("2026-05-12T21:30:00Z".into());
    let mut rosa = status("Rosa", BotState::Polling);
    rosa.paused = true;
    let mut mia = status("Mia", BotState::Polling);
    mia.quiet_hours = QuietHours::new(20 * 60, 7 * 60);
    let mut noor = status("Noor", BotState::Starting);
    noor.paired = false;
    let members = vec![
        status("Ana", BotState::Polling),
        leo,
        rosa,
        mia,
        status("Sam", BotState::Polling),
        status("Ivo", BotState::TokenRevoked),
        noor,
    ];
    let standings: Vec<Standing> = members.iter().map(|m| budget.standing(&m.id, now)).collect();
    let mut report = StatusReport {
        version: "1".into(),
        data_dir: "/d".into(),
        uptime_secs: 1,
        provider: Some(provider()),
        members,
        turns_in_flight: 0,
        turn_cap: 1,
        worker_processes: 0,
        isolation: IsolationLevel::Process,
        speech: None,
        voice: None,
        provider_connections: None,
        household_bot: None,
    };
    let household = budget.household_standing(now);
    let text = render_status(&report, &standings, &household, tz, now);
    assert_eq!(
        text,
        "Ana — working · today ≈ US$0.03 · month ≈ US$1.20\n\
         Leo — paused until 23:30 · today ≈ US$0.00 · month ≈ US$0.00\n\
         Rosa — paused until resumed · today ≈ US$0.00 · month ≈ US$0.00\n\
         Mia — resting until 07:00 · today ≈ US$0.00 · month ≈ US$0.00\n\
         Sam — at today's limit · today ≈ US$0.25 · month ≈ US$0.90\n\
         Ivo — bot stopped working · today ≈ US$0.00 · month ≈ US$0.00\n\
         Noor — not paired yet · today ≈ US$0.00 · month ≈ US$0.00\n\
         Household this month ≈ US$2.10 of US$30.00\n\
         Problems:\n\
         • Ivo's bot stopped working: Telegram no longer accepts its token. Replace it: hearth member token Ivo"
    );
    report.provider = None;
    report.members.truncate(1);
    let text = render_status(&report, &standings[..1], &household, tz, now);
    assert!(
        text.ends_with("Problems:\n• No AI provider is set, so nobody gets answers: hearth provider set"),
        "{text}"
    );
    report.provider = Some(provider());
    assert!(render_status(&report, &standings[..1], &household, tz, now).ends_with("\nNo problems."));
}
