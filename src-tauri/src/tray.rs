//! The menu-bar glance. [`model`] turns one [`Snapshot`] into what the tray shows — a pure
//! function, unit-tested; [`install`] and [`show`] put it on screen.

use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Manager as _, Runtime};

use crate::ipc::{Health, LaneState, Phase, Snapshot};

pub const TRAY_ID: &str = "hearth";
pub const MENU_OPEN: &str = "open";
pub const MENU_PAUSE: &str = "pause";
pub const MENU_QUIT: &str = "quit";

/// What the tray shows.
#[derive(Debug, Clone, PartialEq)]
pub struct TrayModel {
    pub health: Health,
    pub tooltip: String,
    /// Information lines, shown disabled (not clickable) at the top of the menu.
    pub lines: Vec<String>,
    /// "Pause all bots" or "Resume all bots"; `None` when there is nothing to pause.
    pub pause: Option<String>,
}

pub fn model(s: &Snapshot) -> TrayModel {
    if s.phase == Phase::Stopped {
        let why = s.problems.first().cloned().unwrap_or_else(|| "Hearth is not running.".to_owned());
        return TrayModel { health: Health::Broken, tooltip: "Hearth — not running".to_owned(), lines: vec![why], pause: None };
    }
    let busy = s.members.iter().filter(|m| m.lane.state != LaneState::Idle).count();
    let n = s.members.len();
    let mut lines = vec![match n {
        0 => "No members yet".to_owned(),
        1 => format!("1 member · {busy} busy"),
        _ => format!("{n} members · {busy} busy"),
    }];
    let month = match s.household.monthly_cap_usd {
        Some(cap) => format!("Month {} of {}", usd(s.household.month_usd), usd_whole(cap)),
        None => format!("Month {}", usd(s.household.month_usd)),
    };
    lines.push(format!("Today {} · {month}", usd(s.household.today_usd)));
    if let Some(h) = &s.host {
        lines.push(format!("Host CPU {:.0}% · memory {:.0}% · disk {:.0}%", h.cpu_pct, h.memory_pct, h.disk_pct));
    }
    if let Some(first) = s.problems.first() {
        let more = s.problems.len() - 1;
        lines.push(if more == 0 { format!("⚠ {first}") } else { format!("⚠ {first} (+{more} more)") });
    }
    let tooltip = match s.health {
        Health::Fine => "Hearth — all fine".to_owned(),
        Health::Attention => "Hearth — needs attention".to_owned(),
        Health::Broken => "Hearth — something is broken".to_owned(),
    };
    let tooltip = if s.phase == Phase::Demo { format!("{tooltip} (demo)") } else { tooltip };
    let pause = (n > 0).then(|| if s.all_paused { "Resume all bots" } else { "Pause all bots" }.to_owned());
    TrayModel { health: s.health, tooltip, lines, pause }
}

/// `$0.42`; sub-cent spend shows as `<$0.01` rather than a misleading `$0.00`.
pub fn usd(v: f64) -> String {
    if v > 0.0 && v < 0.005 { "<$0.01".to_owned() } else { format!("${v:.2}") }
}

/// `$30` for whole amounts, `$12.50` otherwise.
pub fn usd_whole(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 { format!("${v:.0}") } else { format!("${v:.2}") }
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
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    menu.append(&MenuItem::with_id(app, MENU_OPEN, "Open Hearth", true, None::<&str>)?)?;
    if let Some(pause) = &m.pause {
        menu.append(&MenuItem::with_id(app, MENU_PAUSE, pause, true, None::<&str>)?)?;
    }
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    menu.append(&MenuItem::with_id(app, MENU_QUIT, "Quit Hearth", true, None::<&str>)?)?;
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
    if previous.map(|p| (&p.lines, &p.pause)) != Some((&next.lines, &next.pause)) {
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
        MemberCard {
            id: name.to_lowercase(),
            name: name.into(),
            role: Role::Adult,
            bot_username: format!("{}_bot", name.to_lowercase()),
            bot: BotHealth { state: BotHealthState::Polling, label: "Online".into() },
            paired: true,
            paused,
            lane: Lane { state: lane, queued: 0, secs: 0, doing: TurnActivity::Thinking },
            last_activity: None,
            today_usd: 0.1,
            month_usd: 2.0,
            daily_cap_usd: None,
            monthly_cap_usd: None,
            isolation: "account + sandbox".into(),
        }
    }

    fn snapshot(members: Vec<MemberCard>) -> Snapshot {
        let household = HouseholdSpend {
            today_usd: 0.42,
            month_usd: 8.1,
            monthly_cap_usd: Some(30.0),
            per_day: vec![],
            timezone: "Europe/London".into(),
            month_split: SpendSplit::default(),
        };
        let (health, problems) = crate::snapshot::health(Phase::Serving, true, &members, &household);
        Snapshot {
            phase: Phase::Serving,
            health,
            problems,
            provider: None,
            all_paused: !members.is_empty() && members.iter().all(|m| m.paused),
            members,
            household,
            turns_in_flight: 2,
            turn_cap: 64,
            isolation: "account + sandbox".into(),
            host: Some(HostLoad { cpu_pct: 3.2, memory_pct: 41.0, disk_pct: 61.6 }),
            uptime_secs: 10,
        }
    }

    #[test]
    fn a_fine_household_reads_at_a_glance() {
        let s = snapshot(vec![
            member("Ana", LaneState::Thinking, false),
            member("Ben", LaneState::Queued, false),
            member("Cy", LaneState::Idle, false),
            member("Di", LaneState::Idle, false),
        ]);
        let m = model(&s);
        assert_eq!(m.health, Health::Fine);
        assert_eq!(m.tooltip, "Hearth — all fine");
        assert_eq!(
            m.lines,
            vec!["4 members · 2 busy", "Today $0.42 · Month $8.10 of $30", "Host CPU 3% · memory 41% · disk 62%"]
        );
        assert_eq!(m.pause.as_deref(), Some("Pause all bots"));
    }

    #[test]
    fn a_revoked_token_is_broken_and_says_what_to_do() {
        let mut ana = member("Ana", LaneState::Idle, false);
        ana.bot = BotHealth { state: BotHealthState::TokenRevoked, label: String::new() };
        let mut ben = member("Ben", LaneState::Idle, false);
        ben.paired = false;
        let m = model(&snapshot(vec![ana, ben]));
        assert_eq!(m.health, Health::Broken);
        assert_eq!(m.lines[0], "2 members · 0 busy");
        assert_eq!(m.lines.last().unwrap(), "⚠ Ana's bot token was revoked: open Ana and replace the token. (+1 more)");
    }

    #[test]
    fn a_member_at_their_cap_needs_attention() {
        let mut ana = member("Ana", LaneState::Idle, false);
        ana.daily_cap_usd = Some(0.1);
        let m = model(&snapshot(vec![ana]));
        assert_eq!(m.health, Health::Attention);
        assert_eq!(m.tooltip, "Hearth — needs attention");
        assert_eq!(m.lines[0], "1 member · 0 busy");
    }

    #[test]
    fn all_paused_offers_resume_and_is_not_a_problem() {
        let m = model(&snapshot(vec![member("Ana", LaneState::Idle, true), member("Ben", LaneState::Idle, true)]));
        assert_eq!(m.pause.as_deref(), Some("Resume all bots"));
        assert_eq!(m.health, Health::Fine);
    }

    #[test]
    fn no_members_and_no_cap() {
        let mut s = snapshot(vec![]);
        s.household.monthly_cap_usd = None;
        s.household.month_usd = 0.0;
        s.household.today_usd = 0.001;
        s.host = None;
        let m = model(&s);
        assert_eq!(m.lines, vec!["No members yet", "Today <$0.01 · Month $0.00"]);
        assert_eq!(m.pause, None);
    }

    #[test]
    fn a_stopped_app_says_why() {
        let m = model(&crate::snapshot::stopped("Another Hearth is already serving this household's data folder."));
        assert_eq!(m.health, Health::Broken);
        assert_eq!(m.lines, vec!["Another Hearth is already serving this household's data folder."]);
        assert_eq!(m.tooltip, "Hearth — not running");
    }

    #[test]
    fn money_formats() {
        assert_eq!(usd(0.0), "$0.00");
        assert_eq!(usd(0.004), "<$0.01");
        assert_eq!(usd(12.345), "$12.35");
        assert_eq!(usd_whole(30.0), "$30");
        assert_eq!(usd_whole(12.5), "$12.50");
    }
}
