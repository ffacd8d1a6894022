//! The menu-bar glance. [`model`] turns one [`Snapshot`] into what the tray shows — a pure
//! function, unit-tested; [`install`] and [`show`] put it on screen.

use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Manager as _, Runtime};

use crate::ipc::{Fix, Health, LaneState, MemberCard, Navigate, Phase, Problem, Snapshot, Tone, View};

pub const TRAY_ID: &str = "hearth";
pub const MENU_OPEN: &str = "open";
pub const MENU_PAUSE: &str = "pause";
pub const MENU_QUIT: &str = "quit";
/// Rows that open the window on a page: `open:dashboard`, `open:settings`, `open:member:<id>`.
const OPEN: &str = "open:";

/// What the tray shows.
#[derive(Debug, Clone, PartialEq)]
pub struct TrayModel {
    pub health: Health,
    pub tooltip: String,
    /// Information lines, shown disabled (not clickable) at the top of the menu.
    pub lines: Vec<String>,
    /// One row per member with a state symbol, then one per problem: each opens its page.
    pub rows: Vec<TrayRow>,
    /// "Pause all" or "Resume all"; `None` when there is nothing to pause.
    pub pause: Option<String>,
}

/// A clickable line of the menu.
#[derive(Debug, Clone, PartialEq)]
pub struct TrayRow {
    /// The menu id: where it leads (see [`target`]).
    pub id: String,
    pub text: String,
}

/// At most this many problems are listed; the rest are one "more" row to the dashboard.
const PROBLEM_ROWS: usize = 3;

pub fn model(s: &Snapshot) -> TrayModel {
    if s.phase == Phase::Stopped {
        let why = s.problems.first().map(|p| p.text.clone()).unwrap_or_else(|| "Hearth is not running.".to_owned());
        let rows = vec![TrayRow { id: format!("{OPEN}dashboard"), text: format!("✕ {why}") }];
        return TrayModel { health: Health::Broken, tooltip: "Hearth — not running".to_owned(), lines: vec![], rows, pause: None };
    }
    let month = match s.household.monthly_cap_usd {
        Some(cap) => format!("Month {} of {}", usd(s.household.month_usd), usd_whole(cap)),
        None => format!("Month {}", usd(s.household.month_usd)),
    };
    let mut lines = vec![format!("Today {} · {month}", usd(s.household.today_usd))];
    if s.members.is_empty() {
        lines.insert(0, "No members yet".to_owned());
    }
    let mut rows: Vec<TrayRow> = s
        .members
        .iter()
        .map(|m| TrayRow { id: format!("{OPEN}member:{}", m.id), text: format!("{} {} — {}", symbol(m), m.name, m.status.text) })
        .collect();
    for p in s.problems.iter().take(PROBLEM_ROWS) {
        let mark = if p.health == Health::Broken { "✕" } else { "⚠" };
        rows.push(TrayRow { id: problem_target(p), text: format!("{mark} {}", p.text) });
    }
    if s.problems.len() > PROBLEM_ROWS {
        let more = s.problems.len() - PROBLEM_ROWS;
        rows.push(TrayRow { id: format!("{OPEN}dashboard"), text: format!("… {more} more on the dashboard") });
    }
    let tooltip = match s.health {
        Health::Fine => "Hearth — all fine".to_owned(),
        Health::Attention => "Hearth — needs attention".to_owned(),
        Health::Broken => "Hearth — something is broken".to_owned(),
    };
    let tooltip = if s.phase == Phase::Demo { format!("{tooltip} (demo)") } else { tooltip };
    let pause = (!s.members.is_empty()).then(|| if s.all_paused { "Resume all" } else { "Pause all" }.to_owned());
    TrayModel { health: s.health, tooltip, lines, rows, pause }
}

/// A member's state at a glance, in a shape (not only a colour): ● ready, ◐ answering or
/// waiting, ☾ resting, ⏸ paused, ⚠ needs a look, ✕ broken.
fn symbol(m: &MemberCard) -> &'static str {
    match m.status.tone {
        Tone::Bad => "✕",
        _ if m.paired && m.paused => "⏸",
        Tone::Warn => "⚠",
        Tone::Info if m.resting_until.is_some() && m.lane.state == LaneState::Idle => "☾",
        Tone::Info => "◐",
        Tone::Good => "●",
    }
}

/// Where a problem is fixed: the member's page, Settings, or the dashboard (Resume is there).
fn problem_target(p: &Problem) -> String {
    match (p.fix, &p.member_id) {
        (Some(Fix::OpenMember), Some(id)) => format!("{OPEN}member:{id}"),
        (Some(Fix::OpenSettings | Fix::AllowSupervisor | Fix::Restart), _) => format!("{OPEN}settings"),
        _ => format!("{OPEN}dashboard"),
    }
}

/// The page a clicked row opens; `None` for other menu ids.
pub fn target(id: &str) -> Option<Navigate> {
    let rest = id.strip_prefix(OPEN)?;
    Some(match rest {
        "dashboard" => Navigate { view: View::Dashboard, member_id: None },
        "settings" => Navigate { view: View::Settings, member_id: None },
        _ => Navigate { view: View::Member, member_id: Some(rest.strip_prefix("member:")?.to_owned()) },
    })
}

/// Spend is an estimate from the rate card, so it reads `≈ US$0.42`; sub-cent spend shows as
/// `< US$0.01` rather than a misleading `≈ US$0.00`, and nothing spent is exactly `US$0.00`.
pub fn usd(v: f64) -> String {
    if v > 0.0 && v < 0.005 {
        "< US$0.01".to_owned()
    } else if v > 0.0 {
        format!("≈ US${v:.2}")
    } else {
        "US$0.00".to_owned()
    }
}

/// A cap the admin set is exact: `US$30` for whole amounts, `US$12.50` otherwise.
pub fn usd_whole(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 { format!("US${v:.0}") } else { format!("US${v:.2}") }
}

fn icon(health: Health) -> Image<'static> {
    let bytes: &'static [u8] = match health {
        Health::Fine => include_bytes!("../../assets/tray/fine.png"),
        Health::Attention => include_bytes!("../../assets/tray/attention.png"),
        Health::Broken => include_bytes!("../../assets/tray/broken.png"),
    };
    Image::from_bytes(bytes).expect("the tray icons are valid PNGs")
}

fn menu<R: Runtime>(app: &AppHandle<R>, m: &TrayModel) -> tauri::Result<Menu<R>> {
    let menu = Menu::new(app)?;
    for (i, line) in m.lines.iter().enumerate() {
        menu.append(&MenuItem::with_id(app, format!("line-{i}"), line, false, None::<&str>)?)?;
    }
    for row in &m.rows {
        menu.append(&MenuItem::with_id(app, &row.id, &row.text, true, None::<&str>)?)?;
    }
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    menu.append(&MenuItem::with_id(app, MENU_OPEN, "Open Hearth", true, None::<&str>)?)?;
    if let Some(pause) = &m.pause {
        menu.append(&MenuItem::with_id(app, MENU_PAUSE, pause, true, None::<&str>)?)?;
    }
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    menu.append(&MenuItem::with_id(app, MENU_QUIT, "Quit Hearth…", true, None::<&str>)?)?;
    Ok(menu)
}

/// Creates the tray icon. Menu clicks are handled by `on_menu`.
pub fn install<R: Runtime>(
    app: &AppHandle<R>,
    initial: &TrayModel,
    on_menu: impl Fn(&AppHandle<R>, &str) + Send + Sync + 'static,
) -> tauri::Result<TrayIcon<R>> {
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon(initial.health))
        .tooltip(&initial.tooltip)
        .menu(&menu(app, initial)?)
        .show_menu_on_left_click(true)
        .on_menu_event(move |app, event| on_menu(app, event.id().as_ref()))
        .build(app)
}

/// Shows a new model; unchanged parts are left alone.
pub fn show<R: Runtime>(app: &AppHandle<R>, previous: Option<&TrayModel>, next: &TrayModel) -> tauri::Result<()> {
    let Some(tray) = app.tray_by_id(TRAY_ID) else { return Ok(()) };
    if previous.map(|p| p.health) != Some(next.health) {
        tray.set_icon(Some(icon(next.health)))?;
    }
    if previous.map(|p| &p.tooltip) != Some(&next.tooltip) {
        tray.set_tooltip(Some(&next.tooltip))?;
    }
    if previous.map(|p| (&p.lines, &p.rows, &p.pause)) != Some((&next.lines, &next.rows, &next.pause)) {
        tray.set_menu(Some(menu(app, next)?))?;
    }
    Ok(())
}

/// Brings the main window forward (and, on macOS, the Dock icon back).
pub fn open_window<R: Runtime>(app: &AppHandle<R>) {
    #[cfg(target_os = "macos")]
    let _ = app.set_activation_policy(tauri::ActivationPolicy::Regular);
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::*;

    fn member(name: &str, lane: LaneState, paused: bool) -> MemberCard {
        let mut m = MemberCard {
            id: name.to_lowercase(),
            name: name.into(),
            role: Role::Adult,
            bot_username: format!("{}_bot", name.to_lowercase()),
            bot: BotHealth { state: BotHealthState::Polling, label: "Online".into() },
            paired: true,
            paused,
            lane: Lane { state: lane, queued: u32::from(lane == LaneState::Queued), secs: 0, doing: TurnActivity::Thinking },
            last_activity: None,
            today_usd: 0.1,
            today_calls: 1,
            month_usd: 2.0,
            daily_cap_usd: None,
            monthly_cap_usd: None,
            isolation: "account + sandbox".into(),
            resting_until: None,
            status: MemberStatus { text: String::new(), tone: Tone::Good },
            days: vec![],
        };
        m.status = crate::snapshot::member_status(&m);
        m
    }

    fn snapshot(members: Vec<MemberCard>) -> Snapshot {
        let household = HouseholdSpend {
            today_usd: 0.42,
            month_usd: 8.1,
            monthly_cap_usd: Some(30.0),
            per_day: vec![],
            month: "2026-11".into(),
            timezone: "Europe/London".into(),
            month_split: SpendSplit::default(),
        };
        let (health, problems) =
            crate::snapshot::health(Phase::Serving, true, &members, &household, &crate::snapshot::Observed::default());
        Snapshot {
            phase: Phase::Serving,
            health,
            problems,
            provider: None,
            all_paused: !members.is_empty() && members.iter().all(|m| m.paused),
            paused_since: None,
            members,
            household,
            turns_in_flight: 2,
            turn_cap: 64,
            isolation: "account + sandbox".into(),
            host: Some(HostLoad { cpu_pct: 3.2, memory_pct: 41.0, disk_pct: 61.6 }),
            uptime_secs: 10,
        }
    }

    fn texts(m: &TrayModel) -> Vec<&str> {
        m.rows.iter().map(|r| r.text.as_str()).collect()
    }

    /// One row per member, each with a symbol for its state; every row opens the member.
    #[test]
    fn a_fine_household_reads_at_a_glance() {
        let mut di = member("Di", LaneState::Idle, false);
        di.resting_until = Some("07:00".into());
        di.status = crate::snapshot::member_status(&di);
        let s = snapshot(vec![
            member("Ana", LaneState::Thinking, false),
            member("Ben", LaneState::Queued, false),
            member("Cy", LaneState::Idle, false),
            di,
        ]);
        let m = model(&s);
        assert_eq!(m.health, Health::Fine);
        assert_eq!(m.tooltip, "Hearth — all fine");
        assert_eq!(m.lines, vec!["Today ≈ US$0.42 · Month ≈ US$8.10 of US$30"]);
        assert_eq!(texts(&m), vec!["◐ Ana — Answering", "◐ Ben — 1 waiting", "● Cy — Ready", "☾ Di — Resting until 07:00"]);
        assert_eq!(m.rows[2].id, "open:member:cy");
        assert_eq!(target(&m.rows[2].id), Some(Navigate { view: View::Member, member_id: Some("cy".into()) }));
        assert_eq!(m.pause.as_deref(), Some("Pause all"));
    }

    /// A problem is a row that opens where it is fixed; a dead bot is broken and shaped ✕.
    #[test]
    fn a_revoked_token_is_broken_and_opens_the_member() {
        let mut ana = member("Ana", LaneState::Idle, false);
        ana.bot = BotHealth { state: BotHealthState::TokenRevoked, label: String::new() };
        ana.status = crate::snapshot::member_status(&ana);
        let mut ben = member("Ben", LaneState::Idle, false);
        ben.paired = false;
        ben.status = crate::snapshot::member_status(&ben);
        let m = model(&snapshot(vec![ana, ben]));
        assert_eq!(m.health, Health::Broken);
        assert_eq!(
            texts(&m),
            vec![
                "✕ Ana — Bot stopped working — replace token",
                "⚠ Ben — Not connected to Telegram yet",
                "✕ Ana's bot stopped working: Telegram no longer accepts its token. Open Ana and replace the token.",
                "⚠ Ben hasn't connected their Telegram yet: open Ben → New pairing code.",
            ]
        );
        assert_eq!(m.rows[2].id, "open:member:ana");
        assert_eq!(m.rows[3].id, "open:member:ben");
    }

    #[test]
    fn a_member_at_their_cap_needs_attention() {
        let mut ana = member("Ana", LaneState::Idle, false);
        ana.daily_cap_usd = Some(0.1);
        ana.status = crate::snapshot::member_status(&ana);
        let m = model(&snapshot(vec![ana]));
        assert_eq!(m.health, Health::Attention);
        assert_eq!(m.tooltip, "Hearth — needs attention");
        assert_eq!(texts(&m)[0], "⚠ Ana — Hit today's limit");
    }

    #[test]
    fn all_paused_offers_resume_and_needs_attention() {
        let m = model(&snapshot(vec![member("Ana", LaneState::Idle, true), member("Ben", LaneState::Idle, true)]));
        assert_eq!(m.pause.as_deref(), Some("Resume all"));
        assert_eq!(m.health, Health::Attention);
        assert_eq!(texts(&m), vec!["⏸ Ana — Paused by you", "⏸ Ben — Paused by you", "⚠ All assistants paused"]);
        // Resume is on the dashboard's headline.
        assert_eq!(target(&m.rows[2].id), Some(Navigate { view: View::Dashboard, member_id: None }));
    }

    #[test]
    fn many_problems_end_in_one_row_to_the_dashboard() {
        let members: Vec<MemberCard> = ["Ana", "Ben", "Cy", "Di", "Ed"]
            .into_iter()
            .map(|n| {
                let mut m = member(n, LaneState::Idle, false);
                m.paired = false;
                m.status = crate::snapshot::member_status(&m);
                m
            })
            .collect();
        let m = model(&snapshot(members));
        assert_eq!(m.rows.len(), 5 + 3 + 1);
        assert_eq!(m.rows.last().unwrap().text, "… 2 more on the dashboard");
        assert_eq!(m.rows.last().unwrap().id, "open:dashboard");
    }

    #[test]
    fn no_members_and_no_cap() {
        let mut s = snapshot(vec![]);
        s.household.monthly_cap_usd = None;
        s.household.month_usd = 0.0;
        s.household.today_usd = 0.001;
        s.host = None;
        let m = model(&s);
        assert_eq!(m.lines, vec!["No members yet", "Today < US$0.01 · Month US$0.00"]);
        assert_eq!((m.rows.len(), m.pause.as_ref()), (0, None));
    }

    #[test]
    fn a_stopped_app_says_why() {
        let m = model(&crate::snapshot::stopped("Another Hearth is already serving this household's data folder."));
        assert_eq!(m.health, Health::Broken);
        assert_eq!(texts(&m), vec!["✕ Another Hearth is already serving this household's data folder."]);
        assert_eq!(m.tooltip, "Hearth — not running");
    }

    #[test]
    fn only_open_rows_lead_somewhere() {
        assert_eq!(target("open:settings"), Some(Navigate { view: View::Settings, member_id: None }));
        assert_eq!(target("open:nowhere"), None);
        assert_eq!(target(MENU_QUIT), None);
        assert_eq!(target("line-0"), None);
    }

    #[test]
    fn money_formats() {
        assert_eq!(usd(0.0), "US$0.00");
        assert_eq!(usd(0.004), "< US$0.01");
        assert_eq!(usd(12.345), "≈ US$12.35");
        assert_eq!(usd_whole(30.0), "US$30");
        assert_eq!(usd_whole(12.5), "US$12.50");
    }
}
