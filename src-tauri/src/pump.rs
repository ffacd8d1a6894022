//! Engine events to the window and the tray. One pump runs per showing engine: it listens to the
//! gateway's events and re-reads the snapshot when something changed — at most every
//! [`THROTTLE`], so a burst of messages is one repaint — and turns pairings, dead bots and
//! reached caps into native notifications.

use std::sync::Arc;
use std::time::Duration;

use hearth_proto::control::{BotState, GatewayEvent};
use tauri::{AppHandle, Emitter as _, Runtime};
use tauri_plugin_notification::NotificationExt as _;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::engine::Shell;
use crate::ipc::{LaneState, Notice, NoticeKind};
use crate::tray::{self, TrayModel};

pub const EVENT_SNAPSHOT: &str = "snapshot";
pub const EVENT_NOTICE: &str = "notice";
/// A tray row was clicked: the window opens on the page it names.
pub const EVENT_NAVIGATE: &str = "navigate";
/// "Quit Hearth" was chosen in the tray: the window asks before the family's assistants stop.
pub const EVENT_QUIT: &str = "quit";
/// The fastest the window and tray are repainted.
pub const THROTTLE: Duration = Duration::from_millis(250);
/// While someone's turn runs, "Thinking N s" counts up.
const BUSY_TICK: Duration = Duration::from_secs(1);
/// Otherwise the host load line and "last activity" are refreshed now and then.
const IDLE_TICK: Duration = Duration::from_secs(15);

/// Stops the running pump and starts one for the engine that shows now.
pub fn restart<R: Runtime>(app: &AppHandle<R>, shell: Arc<Shell>) {
    let cancel = shell.new_pump();
    let app = app.clone();
    tauri::async_runtime::spawn(run(app, shell, cancel));
}

async fn run<R: Runtime>(app: AppHandle<R>, shell: Arc<Shell>, cancel: CancellationToken) {
    let mut events = shell.gateway().await.ok().map(|g| g.subscribe());
    let mut tray_now: Option<TrayModel> = None;
    let mut dirty = true;
    let mut busy = false;
    let mut next_paint = Instant::now();
    loop {
        if dirty && Instant::now() >= next_paint {
            let snapshot = shell.snapshot().await;
            if cancel.is_cancelled() {
                return;
            }
            let _ = app.emit(EVENT_SNAPSHOT, &snapshot);
            let model = tray::model(&snapshot);
            if tray_now.as_ref() != Some(&model) {
                if let Err(e) = tray::show(&app, tray_now.as_ref(), &model) {
                    tracing::warn!(error = %e, "could not update the tray");
                }
                tray_now = Some(model);
            }
            busy = snapshot.members.iter().any(|m| m.lane.state != LaneState::Idle);
            dirty = false;
            next_paint = Instant::now() + THROTTLE;
        }
        let wake = if dirty { next_paint } else { Instant::now() + if busy { BUSY_TICK } else { IDLE_TICK } };
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep_until(wake) => dirty = true,
            event = next(&mut events) => match event {
                Some(Ok(event)) => {
                    if let Some(notice) = notice(&event) {
                        show_notice(&app, &notice);
                    }
                    dirty = true;
                }
                // Missed some events: the snapshot catches up anyway.
                Some(Err(RecvError::Lagged(_))) => dirty = true,
                Some(Err(RecvError::Closed)) | None => events = None,
            },
        }
    }
}

async fn next(events: &mut Option<tokio::sync::broadcast::Receiver<GatewayEvent>>) -> Option<Result<GatewayEvent, RecvError>> {
    match events {
        Some(rx) => Some(rx.recv().await),
        None => std::future::pending().await,
    }
}

/// What the admin is told about an engine event, if anything.
pub fn notice(event: &GatewayEvent) -> Option<Notice> {
    match event {
        GatewayEvent::Changed => None,
        GatewayEvent::Paired { member_id, name, telegram_name } => Some(Notice {
            kind: NoticeKind::Paired,
            title: format!("{name} is connected"),
            body: format!("{name}'s bot now answers {telegram_name} on Telegram."),
            member_id: Some(member_id.clone()),
        }),
        GatewayEvent::BotTrouble { member_id, name, state } => {
            let body = match state {
                BotState::TokenRevoked => {
                    format!("Telegram no longer accepts {name}'s bot token. Open Hearth and paste a new token from BotFather.")
                }
                BotState::UsedElsewhere => {
                    format!("Another program is using {name}'s bot, so Hearth can't read its messages. Stop the other program.")
                }
                other => format!("{name}'s bot has a problem ({other:?})."),
            };
            Some(Notice { kind: NoticeKind::BotTrouble, title: format!("{name}'s bot stopped working"), body, member_id: Some(member_id.clone()) })
        }
        GatewayEvent::CapReached { member_id, name, period } => {
            let period = if period == "day" { "daily" } else { "monthly" };
            let (title, body) = match member_id {
                Some(_) => (
                    format!("{name} reached their {period} limit"),
                    format!("{name}'s assistant stops answering until the limit resets or you raise it."),
                ),
                None => (
                    format!("The household reached its {period} limit"),
                    "Nobody's assistant answers until the limit resets or you raise it.".to_owned(),
                ),
            };
            Some(Notice { kind: NoticeKind::CapReached, title, body, member_id: member_id.clone() })
        }
        GatewayEvent::DiskQuotaReached { member_id, name, bytes, quota_bytes } => Some(Notice {
            kind: NoticeKind::DiskFull,
            title: format!("{name}'s folder is full"),
            body: format!(
                "{name}'s folder takes {} MB, more than the {} MB each member may use, so their assistant takes no new messages. Free some space there, or raise the limit.",
                bytes.div_ceil(1 << 20),
                quota_bytes.div_ceil(1 << 20)
            ),
            member_id: Some(member_id.clone()),
        }),
    }
}

fn show_notice<R: Runtime>(app: &AppHandle<R>, notice: &Notice) {
    let _ = app.emit(EVENT_NOTICE, notice);
    if let Err(e) = app.notification().builder().title(&notice.title).body(&notice.body).show() {
        // No notification service (a headless box): the window and the tray still show it.
        tracing::info!(error = %e, title = %notice.title, "could not show a desktop notification");
    }
}
