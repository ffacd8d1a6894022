//! `hearth demo`: a simulated household chatting through the real gateway and real worker
//! processes, with `hearth-sim`'s simulated Telegram and canned demo model on 127.0.0.1 — no tokens,
//! no keys, no network.
//!
//! The household, the canned model and the simulated people live in `hearth_sim::demo`, shared
//! with the app's "Try the demo household".
//!
//! - `view`: the live view (a redrawn screen on a terminal, one line per event otherwise) and
//!   the closing summary.
//!
//! The demo drives the gateway exactly as an admin and a family would: it sets the provider and
//! adds members through [`Gateway::control`], pairs each simulated person with `/start <code>`,
//! and then they write to their bots at random moments. Workers always run at isolation
//! "process", so the demo never creates OS accounts. Every simulated person is one task that
//! reports what happens to the view over a channel.

mod view;

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use hearth_gateway::{Gateway, GatewayConfig, IsolationChoice};
use hearth_proto::control::{ControlReply, ControlRequest, ProviderKind};
use hearth_sim::demo::{self, Person, model};
use hearth_sim::llm::FakeLlm;
use hearth_sim::telegram::FakeTelegram;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::args::DemoArgs;
use crate::failure::Failure;
use view::View;

/// After the demo is told to stop, how long simulated people keep waiting for answers already
/// asked for, so the summary counts them.
const DRAIN: Duration = Duration::from_secs(5);

/// Worker processes inherit `RUST_LOG` and log to the shared stderr; in the demo that would
/// drown the view. Unless the user chose a level, keep them (and us) to warnings — errors only
/// under the redrawn screen. Called before any thread exists, which is what makes
/// `set_var` sound.
pub fn quiet_workers_by_default() {
    if std::env::var_os("RUST_LOG").is_none() {
        let level = if std::io::stdout().is_terminal() { "error" } else { "warn" };
        // SAFETY: called from `main` before the runtime or any other thread starts.
        unsafe { std::env::set_var("RUST_LOG", level) };
    }
}

pub async fn run(args: DemoArgs) -> Result<(), Failure> {
    crate::serve::init_logging("warn", None);
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| Failure::unexpected(format!("listen for Ctrl-C: {e}")))?;
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| Failure::unexpected(format!("listen for SIGTERM: {e}")))?;
    let tty = std::io::stdout().is_terminal();
    let started = Instant::now();

    let data = tempfile::Builder::new()
        .prefix("hearth-demo-")
        .tempdir()
        .map_err(|e| Failure::unexpected(format!("create a temporary data directory: {e}")))?;
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start().await;
    llm.set_latency(Duration::from_millis(args.model_latency_ms));
    model::install(&llm);

    let exe = std::env::current_exe()
        .map_err(|e| Failure::unexpected(format!("find the hearth binary to run workers with: {e}")))?;
    let mut config = GatewayConfig::new(data.path().to_owned(), exe);
    config.telegram_api_url = Some(telegram.api_url());
    // The demo is ephemeral: its simulated members never get OS accounts, whoever runs it (even
    // root, where "auto" would create them).
    config.isolation = IsolationChoice::Process;
    // Its tokens are made up and its folder is temporary: nothing of it goes into the Keychain.
    config.secrets = Some(hearth_gateway::secrets::SecretsBackend::File);
    // The control socket stays on so `hearth --data-dir <dir> status` works while the demo runs.
    config.control_socket = true;
    let gateway = Gateway::start(config).await.map_err(|e| Failure::unexpected(format!("start the gateway: {e:#}")))?;

    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let mut view = View::new(tty, started, args.members as usize, args.model_latency_ms, data.path().to_owned());
    view.header();

    let result = async {
        let people = set_up_household(&gateway, &telegram, &llm, args.members as usize, &events_tx).await?;
        view.add_people(people.iter().map(|p| (p.name.clone(), p.profile.role, p.bot.username.clone())).collect());
        Ok::<_, Failure>(people)
    }
    .await;
    let people = match result {
        Ok(p) => p,
        Err(e) => {
            gateway.shutdown(Duration::from_secs(5)).await;
            drop(data);
            return Err(e);
        }
    };

    // Chat until told to stop.
    let stop_sending = CancellationToken::new();
    let stop_waiting = CancellationToken::new();
    let tracker = TaskTracker::new();
    for person in people {
        tracker.spawn(demo::simulate(
            person,
            telegram.clone(),
            events_tx.clone(),
            stop_sending.clone(),
            stop_waiting.clone(),
            args.model_latency_ms,
        ));
    }
    tracker.close();
    drop(events_tx);
    let view_task = tokio::spawn(view.run(events_rx, gateway.clone()));

    let deadline = async {
        match args.duration {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = deadline => {}
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    stop_sending.cancel();
    // Let answers already on their way arrive; a second Ctrl-C skips the wait.
    tokio::select! {
        () = tracker.wait() => {}
        () = tokio::time::sleep(DRAIN) => {}
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    stop_waiting.cancel();
    tracker.wait().await;
    let view = view_task.await.map_err(|e| Failure::unexpected(format!("the live view failed: {e}")))?;

    // Nothing is running after the drain; the grace only covers a second Ctrl-C.
    gateway.shutdown(Duration::from_secs(3)).await;
    drop(gateway);
    telegram.shutdown();
    llm.shutdown();
    view.summary(started.elapsed());
    remove_data_dir(data);
    Ok(())
}

/// Sets the provider, then adds every member and pairs each simulated person with
/// `/start <code>`, as a family would.
async fn set_up_household(
    gateway: &Gateway,
    telegram: &FakeTelegram,
    llm: &FakeLlm,
    members: usize,
    events: &demo::Events,
) -> Result<Vec<Person>, Failure> {
    gateway
        .control(ControlRequest::ProviderSet {
            kind: ProviderKind::Openai,
            base_url: llm.base_url(),
            model: "demo-model".into(),
            api_key: "demo-key-not-secret".into(),
        })
        .await?;
    let add = |name: String, bot_token: String| async move {
        match gateway.control(ControlRequest::MemberAdd { name, bot_token, role: Default::default() }).await {
            Ok(ControlReply::MemberAdded(added)) => Ok(added.pair_code),
            Ok(_) => Err("the gateway did not confirm the new member".to_owned()),
            Err(e) => Err(e.message),
        }
    };
    demo::set_up(telegram, members, add, events).await.map_err(Failure::unexpected)
}

/// Deletes the demo's data directory. A worker that was killed a moment ago may still be
/// closing its files, so one failure is retried.
fn remove_data_dir(data: tempfile::TempDir) {
    let path = data.path().to_owned();
    if data.close().is_err() {
        std::thread::sleep(Duration::from_millis(300));
        if let Err(e) = std::fs::remove_dir_all(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!("note: could not remove the demo's data directory {}: {e}", path.display());
        }
    }
}
