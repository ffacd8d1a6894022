//! The Hearth desktop app: a Tauri shell around the engine. It runs the gateway in-process (the
//! same `Gateway::start` as `hearth serve`), registers the window's commands, keeps the
//! menu-bar glance current and turns engine events into UI events — and does no work of its own.
//!
//! - `engine`: the running gateway (or the demo household, or why nothing runs) behind [`Shell`].
//! - `commands`: the window's commands, thin; their table feeds the handler and the TypeScript.
//! - `ipc`: the DTOs that cross to the window; `bindings` generates `ui/src/lib/ipc.gen.ts`.
//! - `snapshot`: status + usage → the one value the dashboard and tray show (pure).
//! - `speech`: voice notes and voice replies — the engine's speech services, tests and members'
//!   choices as DTOs and back (pure).
//! - `tray`: the menu-bar icon and menu, built from a snapshot by a pure function.
//! - `pump`: engine events → throttled `snapshot` events, notifications.
//! - `demo`: the demo household on `hearth-sim`'s simulated Telegram and model, in a throwaway folder.
//! - `settings`, `keep_awake`, `power`, `host`, `qr`: the app's own settings file, the power
//!   assertion, whether the computer restarts after a power cut, host load (Settings → Advanced
//!   and the dashboard's disk rule), the pairing QR code.

pub mod bindings;
pub mod commands;
pub mod demo;
pub mod engine;
mod host;
pub mod ipc;
mod keep_awake;
mod power;
pub mod pump;
mod qr;
pub mod settings;
pub mod snapshot;
mod speech;
pub mod tray;

use std::sync::Arc;

use tauri::{AppHandle, Emitter as _, Manager as _, RunEvent, Runtime, WindowEvent};

pub use engine::{Options, Shell};

/// Registers the shell's state and commands on a builder — the part command tests share with
/// the real app (`tauri::test::mock_builder()` passes here).
pub fn build<R: Runtime>(builder: tauri::Builder<R>, shell: Arc<Shell>) -> tauri::Builder<R> {
    builder.manage(shell).invoke_handler(commands::handler())
}

/// The binary's entry point. `hearth-app worker` runs one member's worker (the gateway starts
/// them), `hearth-app tree-reader` reads a folder for a backup or export as its owner;
/// anything else opens the app. `--hidden` (used by launch at login) starts in the tray.
pub fn main() {
    if std::env::args_os().nth(1).is_some_and(|a| a == "worker") {
        // The worker builds its own runtime and must not run inside one.
        if let Err(e) = hearth_worker::run_from_env() {
            eprintln!("hearth worker: {e:#}");
            std::process::exit(1);
        }
        return;
    }
    // A gateway running as root has a member's folder read by this binary running as the member
    // (hearth_gateway::tree): nothing but the stream on stdout.
    if std::env::args_os().nth(1).is_some_and(|a| a == "tree-reader") {
        let args: Vec<std::ffi::OsString> = std::env::args_os().skip(2).collect();
        std::process::exit(i32::from(hearth_gateway::tree::reader_main(&args)));
    }
    let options = match Options::from_env() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("Hearth cannot start: {e}");
            std::process::exit(2);
        }
    };
    init_logging(&options.data_dir);
    let hidden = std::env::args().any(|a| a == "--hidden");
    let shell = Arc::new(Shell::new(options));
    let app = build(tauri::Builder::default(), shell.clone())
        // First: a second launch focuses this one instead of starting another gateway.
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| tray::open_window(app)))
        .plugin(tauri_plugin_autostart::Builder::new().arg("--hidden").build())
        .plugin(tauri_plugin_notification::init())
        .on_window_event(|window, event| {
            // Closing the window leaves the gateway and the tray running.
            if let WindowEvent::CloseRequested { api, .. } = event {
                api.prevent_close();
                let _ = window.hide();
                #[cfg(target_os = "macos")]
                let _ = window.app_handle().set_activation_policy(tauri::ActivationPolicy::Accessory);
            }
        })
        .setup(move |app| {
            let handle = app.handle().clone();
            if hidden && let Some(w) = app.get_webview_window("main") {
                let _ = w.hide();
            }
            // Info.plist's LSUIElement starts the app as a menu-bar app without a Dock icon;
            // with its window shown it gets one, as after `tray::open_window`.
            #[cfg(target_os = "macos")]
            let _ = handle.set_activation_policy(if hidden {
                tauri::ActivationPolicy::Accessory
            } else {
                tauri::ActivationPolicy::Regular
            });
            let starting = tray::model(&snapshot::stopped("Hearth is starting…"));
            let menu_shell = shell.clone();
            tray::install(&handle, &starting, move |app, id| on_tray_menu(app, &menu_shell, id))?;
            let shell = shell.clone();
            tauri::async_runtime::spawn(async move {
                shell.start().await;
                pump::restart(&handle, shell);
            });
            Ok(())
        })
        .build(tauri::generate_context!())
        .unwrap_or_else(|e| {
            eprintln!("Hearth cannot open its window: {e}");
            std::process::exit(1);
        });
    app.run(|_app, event| {
        if let RunEvent::ExitRequested { api, code: None, .. } = event {
            // Only "Quit" (which passes a code) ends the app; losing the last window does not.
            api.prevent_exit();
        }
    });
}

fn on_tray_menu<R: Runtime>(app: &AppHandle<R>, shell: &Arc<Shell>, id: &str) {
    match id {
        tray::MENU_OPEN => tray::open_window(app),
        tray::MENU_PAUSE => {
            let shell = shell.clone();
            tauri::async_runtime::spawn(async move {
                let paused = !shell.snapshot().await.all_paused;
                let request = hearth_proto::control::ControlRequest::MemberPause { member: None, paused, until: None };
                if let Err(e) = shell.control(request).await {
                    tracing::error!(error = %e.message, "could not pause or resume the bots");
                }
            });
        }
        // Quitting silences every assistant: the window asks first (its `quit` command quits).
        tray::MENU_QUIT => {
            tray::open_window(app);
            let _ = app.emit(pump::EVENT_QUIT, ());
        }
        other => {
            if let Some(to) = tray::target(other) {
                tray::open_window(app);
                let _ = app.emit(pump::EVENT_NAVIGATE, to);
            }
        }
    }
}

/// Logs to stderr and to the household's log files (`hearth logs` reads them), as `hearth
/// serve` does.
fn init_logging(data_dir: &std::path::Path) {
    use tracing_subscriber::prelude::*;
    // Everything the gateway writes is its own, the log folder included.
    // SAFETY: umask only changes this process's file creation mask.
    unsafe { libc::umask(0o077) };
    // Nothing is written in a data folder that fails the gateway's checks (the engine then says
    // why in the window).
    let file = hearth_gateway::data_dir::prepare(data_dir, None)
        .map_err(std::io::Error::other)
        .and_then(|_| hearth_gateway::logs::RollingFile::open(data_dir))
        .map_err(|e| eprintln!("warning: logging to stderr only; cannot write logs in {}: {e}", data_dir.display()))
        .ok()
        .map(|f| &*Box::leak(Box::new(f)));
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let file = file.map(|f| tracing_subscriber::fmt::layer().with_writer(move || f).with_ansi(false));
    let _ = tracing_subscriber::registry().with(filter).with(stderr).with(file).try_init();
}
