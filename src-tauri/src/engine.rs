//! The engine as the app runs it: the gateway in-process (the same `Gateway::start` as
//! `hearth serve`), or the demo household, or nothing with a reason. [`Shell`] is the one piece
//! of state the commands, the tray and the event pump share.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use hearth_gateway::{AlreadyServing, Gateway, GatewayConfig, IsolationChoice};
use hearth_proto::control::{ControlError, ControlReply, ControlRequest, ErrorCode as ProtoCode, UsageReport};
use tokio_util::sync::CancellationToken;

use crate::demo::Demo;
use crate::host::Host;
use crate::ipc::{AppInfo, DaemonState, ErrorCode, IpcError, Phase, Platform, Snapshot};
use crate::keep_awake::{self, KeepAwake};
use crate::settings::{self, AppSettings};
use crate::snapshot;

/// How long a quitting app lets running turns finish; anything left is answered after the next
/// start (the inbox keeps it).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Where the app's engine comes from: the environment, as for `hearth serve`.
#[derive(Debug, Clone)]
pub struct Options {
    pub data_dir: PathBuf,
    /// `HEARTH_TELEGRAM_API_URL`: another Bot API server (tests point it at the fake).
    pub telegram_api_url: Option<String>,
    pub isolation: IsolationChoice,
    pub supervisor_socket: Option<PathBuf>,
    /// This binary: it runs workers when started as `hearth-app worker`.
    pub worker_exe: PathBuf,
    /// `HEARTH_TEST_DISK_USED_PCT`: the data folder's disk is said to be this full instead of
    /// measured — for the window tests, which cannot fill a real disk.
    pub disk_used_pct: Option<f64>,
}

impl Options {
    pub fn from_env() -> Result<Options, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let isolation = match var("HEARTH_ISOLATION") {
            Some(v) => v.parse().map_err(|e| format!("HEARTH_ISOLATION: {e}"))?,
            None => IsolationChoice::Auto,
        };
        Ok(Options {
            data_dir: var("HEARTH_DATA_DIR").map(PathBuf::from).unwrap_or_else(hearth_gateway::paths::default_data_dir),
            telegram_api_url: var("HEARTH_TELEGRAM_API_URL"),
            isolation,
            supervisor_socket: var("HEARTH_SUPERVISOR_SOCKET").map(PathBuf::from),
            worker_exe: std::env::current_exe().map_err(|e| format!("find the Hearth app binary to run workers with: {e}"))?,
            disk_used_pct: match var("HEARTH_TEST_DISK_USED_PCT") {
                Some(v) => Some(
                    v.parse::<f64>()
                        .ok()
                        .filter(|p| (0.0..=100.0).contains(p))
                        .ok_or_else(|| format!("HEARTH_TEST_DISK_USED_PCT: {v:?} is not a percentage"))?,
                ),
                None => None,
            },
        })
    }

    fn gateway_config(&self, turn_cap: u32) -> GatewayConfig {
        let mut config = GatewayConfig::new(self.data_dir.clone(), self.worker_exe.clone());
        config.worker_args = vec!["worker".into()];
        config.telegram_api_url = self.telegram_api_url.clone();
        config.isolation = self.isolation;
        config.supervisor_socket = self.supervisor_socket.clone().or_else(registered_supervisor);
        config.turn_cap = turn_cap.max(1) as usize;
        // The CLI talks to the app's gateway the same way it talks to `hearth serve`.
        config.control_socket = true;
        config
    }
}

/// On macOS the app registers the supervisor as a LaunchDaemon (Settings); once the admin has
/// allowed it, its socket exists and the gateway asks it for members' accounts. Looked for at
/// every start, so a restart after approval is enough. Elsewhere only HEARTH_SUPERVISOR_SOCKET
/// names one: the Linux supervisor serves the hearth service's user, not a desktop's.
fn registered_supervisor() -> Option<PathBuf> {
    let socket = std::path::Path::new(hearth_isolation::supervisor::DEFAULT_SOCKET);
    (cfg!(target_os = "macos") && socket.exists()).then(|| socket.to_owned())
}

/// The power assertion, as far as the app knows.
enum Awake {
    Off,
    Held(KeepAwake),
    /// The last attempt failed; why, in words.
    Unavailable(String),
}

enum Engine {
    /// Not running; the reason, for the admin.
    Stopped { problem: String },
    Serving { gateway: Gateway },
    /// The demo household runs; the real gateway keeps serving beside it, or the reason it
    /// could not start is kept for when the demo ends.
    Demo { demo: Demo, real: Result<Gateway, String> },
}

/// Shared state of the shell.
pub struct Shell {
    pub options: Options,
    // A tokio Mutex: starting and stopping a gateway awaits while holding it, so two clicks
    // cannot start two engines. Commands only hold it long enough to clone a handle.
    engine: tokio::sync::Mutex<Engine>,
    // std Mutexes below: each is held for a read or an update, never across an await.
    settings: Mutex<AppSettings>,
    keep_awake: Mutex<Awake>,
    host: Mutex<Host>,
    /// When the showing engine's members all became paused.
    paused: Mutex<snapshot::PausedWatch>,
    /// Cancels the event pump of the engine that is showing.
    pump: Mutex<CancellationToken>,
}

impl Shell {
    pub fn new(options: Options) -> Shell {
        let host = Host::new(options.disk_used_pct);
        Shell {
            options,
            engine: tokio::sync::Mutex::new(Engine::Stopped { problem: "Hearth is starting…".to_owned() }),
            settings: Mutex::new(AppSettings::default()),
            keep_awake: Mutex::new(Awake::Off),
            host: Mutex::new(host),
            paused: Mutex::new(snapshot::PausedWatch::default()),
            pump: Mutex::new(CancellationToken::new()),
        }
    }

    /// Starts the gateway on the data folder. On failure the app keeps running and shows why.
    pub async fn start(&self) -> AppInfo {
        let mut engine = self.engine.lock().await;
        if let Engine::Serving { .. } | Engine::Demo { real: Ok(_), .. } = &*engine {
            drop(engine);
            return self.info().await;
        }
        // Checked as the gateway checks it, before app.json is read from it.
        let loaded = match hearth_gateway::data_dir::prepare(&self.options.data_dir, None) {
            Ok(_) => settings::load(&self.options.data_dir),
            Err(e) => Err(anyhow::Error::new(e)),
        };
        let loaded = match loaded {
            Ok(s) => s,
            Err(e) => {
                *engine = Engine::Stopped { problem: format!("{e:#}") };
                drop(engine);
                return self.info().await;
            }
        };
        *self.settings.lock().unwrap() = loaded.clone();
        match Gateway::start(self.options.gateway_config(loaded.turn_cap)).await {
            Ok(gateway) => {
                // A household set up with the CLI (or before an upgrade) needs no wizard.
                if !loaded.setup_complete && household_exists(&gateway).await {
                    self.update_settings(|s| s.setup_complete = true).ok();
                }
                *engine = match std::mem::replace(&mut *engine, Engine::Stopped { problem: String::new() }) {
                    Engine::Demo { demo, .. } => Engine::Demo { demo, real: Ok(gateway) },
                    _ => Engine::Serving { gateway },
                };
                self.apply_keep_awake(loaded.keep_awake);
            }
            Err(e) => {
                let problem = match e.downcast_ref::<AlreadyServing>() {
                    Some(a) => format!(
                        "Another Hearth is already serving this household's data folder ({}) — probably the “hearth serve” command, or the app \
                         under another account. Stop it, then press Try again.",
                        a.data_dir.display()
                    ),
                    None => format!("Hearth could not start: {e:#}"),
                };
                tracing::error!(%problem, "the gateway did not start");
                *engine = Engine::Stopped { problem };
            }
        }
        drop(engine);
        self.info().await
    }

    /// Stops everything, letting running turns finish for a moment.
    pub async fn stop(&self) {
        self.pump.lock().unwrap().cancel();
        let mut engine = self.engine.lock().await;
        match std::mem::replace(&mut *engine, Engine::Stopped { problem: "Hearth has stopped.".to_owned() }) {
            Engine::Serving { gateway } => gateway.shutdown(SHUTDOWN_GRACE).await,
            Engine::Demo { demo, real } => {
                demo.stop().await;
                if let Ok(g) = real {
                    g.shutdown(SHUTDOWN_GRACE).await;
                }
            }
            Engine::Stopped { .. } => {}
        }
        *self.keep_awake.lock().unwrap() = Awake::Off;
    }

    pub async fn start_demo(&self) -> Result<AppInfo, IpcError> {
        let mut engine = self.engine.lock().await;
        let real = match std::mem::replace(&mut *engine, Engine::Stopped { problem: String::new() }) {
            Engine::Serving { gateway } => Ok(gateway),
            Engine::Demo { demo, real } => {
                *engine = Engine::Demo { demo, real };
                drop(engine);
                return Ok(self.info().await);
            }
            Engine::Stopped { problem } => Err(problem),
        };
        match Demo::start(self.options.worker_exe.clone()).await {
            Ok(demo) => *engine = Engine::Demo { demo, real },
            Err(e) => {
                *engine = match real {
                    Ok(gateway) => Engine::Serving { gateway },
                    Err(problem) => Engine::Stopped { problem },
                };
                return Err(IpcError { code: ErrorCode::Internal, message: format!("The demo could not start: {e:#}") });
            }
        }
        drop(engine);
        Ok(self.info().await)
    }

    pub async fn leave_demo(&self) -> AppInfo {
        let mut engine = self.engine.lock().await;
        if let Engine::Demo { demo, real } = std::mem::replace(&mut *engine, Engine::Stopped { problem: String::new() }) {
            demo.stop().await;
            *engine = match real {
                Ok(gateway) => Engine::Serving { gateway },
                Err(problem) => Engine::Stopped { problem },
            };
        }
        drop(engine);
        self.info().await
    }

    /// The engine as it stands: a gateway that stopped on its own (a task kept panicking; see
    /// hearth-gateway's `keeper.rs`) is shown as stopped, with why, until the admin starts it again.
    async fn engine(&self) -> tokio::sync::MutexGuard<'_, Engine> {
        let mut engine = self.engine.lock().await;
        let failure = match &*engine {
            Engine::Serving { gateway } | Engine::Demo { real: Ok(gateway), .. } => gateway.failure(),
            _ => None,
        };
        if let Some(reason) = failure {
            let problem = format!("Hearth stopped after an internal error ({reason}). Press Try again to start it.");
            *engine = match std::mem::replace(&mut *engine, Engine::Stopped { problem: String::new() }) {
                Engine::Demo { demo, .. } => Engine::Demo { demo, real: Err(problem) },
                _ => Engine::Stopped { problem },
            };
        }
        engine
    }

    /// The gateway the window is looking at: the demo's while it runs.
    pub async fn gateway(&self) -> Result<Gateway, IpcError> {
        match &*self.engine().await {
            Engine::Serving { gateway } => Ok(gateway.clone()),
            Engine::Demo { demo, .. } => Ok(demo.gateway().clone()),
            Engine::Stopped { problem } => Err(IpcError { code: ErrorCode::NotServing, message: problem.clone() }),
        }
    }

    /// Sends one admin request to the showing gateway.
    pub async fn control(&self, request: ControlRequest) -> Result<ControlReply, IpcError> {
        self.gateway().await?.control(request).await.map_err(IpcError::from)
    }

    pub async fn phase(&self) -> Phase {
        match &*self.engine().await {
            Engine::Stopped { .. } => Phase::Stopped,
            Engine::Demo { .. } => Phase::Demo,
            Engine::Serving { .. } if self.settings.lock().unwrap().setup_complete => Phase::Serving,
            Engine::Serving { .. } => Phase::Setup,
        }
    }

    pub async fn info(&self) -> AppInfo {
        let problem = match &*self.engine().await {
            Engine::Stopped { problem } => Some(problem.clone()),
            _ => None,
        };
        AppInfo {
            phase: self.phase().await,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            data_dir: self.options.data_dir.display().to_string(),
            problem,
        }
    }

    /// Everything the dashboard and the tray show.
    pub async fn snapshot(&self) -> Snapshot {
        let phase = self.phase().await;
        let gateway = match self.gateway().await {
            Ok(g) => g,
            Err(e) => return snapshot::stopped(&e.message),
        };
        let status = gateway.status().await;
        let usage = gateway.control(ControlRequest::Usage { month: None }).await;
        match (status, usage) {
            (Ok(status), Ok(ControlReply::Usage(usage))) => {
                let host = self.host.lock().unwrap().load(&self.options.data_dir);
                let all_paused = !status.members.is_empty() && status.members.iter().all(|m| m.paused);
                let now = || hearth_gateway::clock::Clock::system().now().to_rfc3339();
                let paused_since = self.paused.lock().unwrap().see(all_paused, now);
                let level = status.isolation.as_str();
                let stronger_isolation = snapshot::stronger_isolation(Platform::current(), daemon_state(level), level);
                let resting = resting(&status, &usage.timezone);
                snapshot::build(phase, &status, &usage, snapshot::Observed { host, paused_since, stronger_isolation, resting })
            }
            (Err(e), _) => snapshot::stopped(&format!("Hearth could not read its status: {e:#}")),
            (_, Err(e)) => snapshot::stopped(&format!("Hearth could not read this month's spending: {}", e.message)),
            (_, Ok(_)) => snapshot::stopped("Hearth could not read this month's spending."),
        }
    }

    pub fn settings(&self) -> AppSettings {
        self.settings.lock().unwrap().clone()
    }

    /// Changes and saves the app settings; nothing changes when saving fails.
    pub fn update_settings(&self, change: impl FnOnce(&mut AppSettings)) -> Result<AppSettings, IpcError> {
        let mut current = self.settings.lock().unwrap();
        let mut next = current.clone();
        change(&mut next);
        settings::save(&self.options.data_dir, &next)
            .map_err(|e| IpcError { code: ErrorCode::Internal, message: format!("{e:#}") })?;
        *current = next.clone();
        Ok(next)
    }

    /// Takes or releases the power assertion.
    pub fn apply_keep_awake(&self, on: bool) {
        let mut awake = self.keep_awake.lock().unwrap();
        if !on {
            *awake = Awake::Off;
        } else if !matches!(*awake, Awake::Held(_)) {
            *awake = match keep_awake::acquire() {
                Ok(k) => Awake::Held(k),
                Err(why) => {
                    tracing::warn!(%why, "cannot keep the machine awake");
                    Awake::Unavailable(why)
                }
            };
        }
    }

    /// Whether the power assertion is held right now.
    pub fn keep_awake_held(&self) -> bool {
        matches!(*self.keep_awake.lock().unwrap(), Awake::Held(_))
    }

    /// `(available, words)`: whether this machine can be kept awake, and how or why not.
    pub fn keep_awake_state(&self) -> (bool, String) {
        match &*self.keep_awake.lock().unwrap() {
            Awake::Held(k) => (true, k.detail.clone()),
            Awake::Off => (true, "Off.".to_owned()),
            Awake::Unavailable(why) => (false, why.clone()),
        }
    }

    /// A fresh token for a new event pump; the previous pump stops.
    pub fn new_pump(&self) -> CancellationToken {
        let token = CancellationToken::new();
        std::mem::replace(&mut *self.pump.lock().unwrap(), token.clone()).cancel();
        // Another engine shows now: its pauses were not seen happening.
        *self.paused.lock().unwrap() = snapshot::PausedWatch::default();
        token
    }
}

/// Each member whose assistant rests now, and until when: their quiet hours read on the
/// household's clock by the gateway's own rule (`routing::roles::quiet_at`).
fn resting(status: &hearth_proto::control::StatusReport, timezone: &str) -> Vec<(String, String)> {
    let Ok(tz) = hearth_gateway::spend::period::parse_timezone(timezone) else { return Vec::new() };
    let now = hearth_gateway::clock::Clock::system().now();
    status
        .members
        .iter()
        .filter_map(|m| {
            let quiet = hearth_gateway::routing::roles::quiet_at(m.quiet_hours?, tz, now)?;
            Some((m.id.clone(), quiet.until))
        })
        .collect()
}

/// Where the supervisor stands with macOS, asked only while members share one account (the
/// only time the answer changes what the dashboard says); `None` elsewhere.
fn daemon_state(level: &str) -> Option<DaemonState> {
    #[cfg(target_os = "macos")]
    if level == "process" {
        return Some(crate::ipc::DaemonDto::from(hearth_isolation::macos_daemon::status()).state);
    }
    let _ = level;
    None
}

/// A provider and at least one member: someone set this household up already.
async fn household_exists(gateway: &Gateway) -> bool {
    match gateway.status().await {
        Ok(s) => s.provider.is_some() && !s.members.is_empty(),
        Err(_) => false,
    }
}

impl From<ControlError> for IpcError {
    fn from(e: ControlError) -> IpcError {
        let code = match e.code {
            ProtoCode::InvalidInput => ErrorCode::InvalidInput,
            ProtoCode::NotFound => ErrorCode::NotFound,
            ProtoCode::Conflict => ErrorCode::Conflict,
            ProtoCode::Rejected => ErrorCode::Rejected,
            ProtoCode::Unreachable => ErrorCode::Unreachable,
            ProtoCode::VersionMismatch | ProtoCode::Internal => ErrorCode::Internal,
        };
        IpcError { code, message: e.message }
    }
}

/// The usage report of this month, for callers that only need spend.
pub async fn usage(shell: &Shell) -> Result<UsageReport, IpcError> {
    match shell.control(ControlRequest::Usage { month: None }).await? {
        ControlReply::Usage(u) => Ok(u),
        other => Err(unexpected(&other)),
    }
}

/// The gateway answered with a reply of the wrong kind: a bug, said plainly.
pub fn unexpected(reply: &ControlReply) -> IpcError {
    let kind = serde_json::to_value(reply).ok().and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned));
    IpcError {
        code: ErrorCode::Internal,
        message: format!("Hearth's engine gave an unexpected answer ({}). Please report this.", kind.unwrap_or_default()),
    }
}
