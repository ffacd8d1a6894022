//! `hearth demo`: a simulated household chatting through the real gateway and real worker
//! processes, with the testkit's fake Telegram and a canned demo model on 127.0.0.1 — no tokens,
//! no keys, no network.
//!
//! - `household`: the family members and what they ask.
//! - `model`: the demo model's canned, topical answers.
//! - `view`: the live view (a redrawn screen on a terminal, one line per event otherwise) and
//!   the closing summary.
//!
//! The demo drives the gateway exactly as an admin and a family would: it sets the provider and
//! adds members through [`Gateway::control`], pairs each simulated person with `/start <code>`,
//! and then they write to their bots at random moments. Workers always run at isolation
//! "process", so the demo never creates OS accounts. Every simulated person is one task that
//! reports what happens to the view over a channel.

mod household;
mod model;
mod view;

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use hearth_gateway::{Gateway, GatewayConfig, IsolationChoice};
use hearth_proto::control::{ControlReply, ControlRequest, ProviderKind};
use hearth_testkit::llm::FakeLlm;
use hearth_testkit::telegram::{FakeBot, FakeTelegram, FakeUser};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::args::DemoArgs;
use crate::failure::Failure;
use view::{Event, View};

/// After the demo is told to stop, how long simulated people keep waiting for answers already
/// asked for, so the summary counts them.
const DRAIN: Duration = Duration::from_secs(5);
/// Longest a simulated person waits for any one answer.
const ANSWER_WAIT: Duration = Duration::from_secs(60);

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

/// One simulated person and their bot.
#[derive(Clone)]
struct Person {
    index: usize,
    name: String,
    profile: &'static household::Profile,
    bot: FakeBot,
    user: FakeUser,
}

pub async fn run(args: DemoArgs) -> Result<(), Failure> {
    crate::serve::init_logging("warn");
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
    llm.set_responder(model::responder());

    let exe = std::env::current_exe()
        .map_err(|e| Failure::unexpected(format!("find the hearth binary to run workers with: {e}")))?;
    let mut config = GatewayConfig::new(data.path().to_owned(), exe);
    config.telegram_api_url = Some(telegram.api_url());
    // The demo is ephemeral: its simulated members never get OS accounts, whoever runs it (even
    // root, where "auto" would create them).
    config.isolation = IsolationChoice::Process;
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
        tracker.spawn(simulate(
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

/// Sets the provider, adds every member with a bot on the fake Telegram, and pairs each
/// simulated person by sending `/start <code>`, as a family would.
async fn set_up_household(
    gateway: &Gateway,
    telegram: &FakeTelegram,
    llm: &FakeLlm,
    members: usize,
    events: &mpsc::UnboundedSender<(Instant, Event)>,
) -> Result<Vec<Person>, Failure> {
    gateway
        .control(ControlRequest::ProviderSet {
            kind: ProviderKind::Openai,
            base_url: llm.base_url(),
            model: "demo-model".into(),
            api_key: "demo-key-not-secret".into(),
        })
        .await?;
    let mut people = Vec::new();
    for index in 0..members {
        let (name, profile) = household::member(index);
        let bot = telegram.add_bot(&household::bot_username(&name));
        let reply =
            gateway.control(ControlRequest::MemberAdd { name: name.clone(), bot_token: bot.token.clone() }).await?;
        let ControlReply::MemberAdded(added) = reply else {
            return Err(Failure::unexpected("the gateway did not confirm the new member"));
        };
        let user = telegram.user(7_000_000 + index as i64, &name);
        people.push(Person { index, name, profile, bot, user });
        let person = people.last().expect("just pushed");
        emit(events, Event::Added { member: index, code: added.pair_code.clone() });
        telegram.send_text(&person.bot.token, &person.user, &format!("/start {}", added.pair_code));
    }
    for person in &people {
        match telegram.wait_for_sent(&person.bot.token, person.user.id, 1, Duration::from_secs(30)).await {
            Ok(_) => {
                emit(events, Event::Paired { member: person.index });
            }
            Err(e) => return Err(Failure::unexpected(format!("{} could not pair with their bot: {e}", person.name))),
        }
    }
    Ok(people)
}

/// One simulated person: thinks for a while, writes (sometimes a quick second message too),
/// waits for the answer, and again — until told to stop sending; answers already asked for are
/// still awaited until told to stop waiting.
async fn simulate(
    person: Person,
    telegram: FakeTelegram,
    events: mpsc::UnboundedSender<(Instant, Event)>,
    stop_sending: CancellationToken,
    stop_waiting: CancellationToken,
    model_latency_ms: u64,
) {
    let token = person.bot.token.clone();
    let chat = person.user.id;
    // The pairing confirmation is already there.
    let mut seen = telegram.sent_to(&token, chat).len();
    let mut order: Vec<usize> = (0..person.profile.messages.len()).collect();
    shuffle(&mut order);
    let mut questions = (0..).map(|i| person.profile.messages[order[i % order.len()]]);
    let mut first = true;
    let mut thank = false;
    let mut next_follow_up = "";
    loop {
        let think = match (first, thank) {
            (true, _) => rand::random_range(200..1500),
            (false, true) => rand::random_range(800..2500),
            (false, false) => rand::random_range(1500..6000),
        };
        first = false;
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(think)) => {}
            () = stop_sending.cancelled() => return,
        }
        let text = if thank {
            person.profile.thanks[rand::random_range(0..person.profile.thanks.len())]
        } else {
            let (question, follow_up) = questions.next().expect("an endless cycle");
            next_follow_up = follow_up;
            question
        };
        let mut pending = vec![Instant::now()];
        telegram.send_text(&token, &person.user, text);
        emit(&events, Event::Sent { member: person.index, text: text.to_owned() });
        let follow_up =
            if thank || rand::random_range(0..100) >= 35 { "" } else { std::mem::take(&mut next_follow_up) };
        thank = !thank && rand::random_range(0..100) < 30;
        if !follow_up.is_empty() {
            tokio::time::sleep(Duration::from_millis(rand::random_range(300..800))).await;
            pending.push(Instant::now());
            telegram.send_text(&token, &person.user, follow_up);
            emit(&events, Event::Sent { member: person.index, text: follow_up.to_owned() });
        }
        // Wait for the answers. A follow-up that arrived before the first turn started is
        // answered together with it, so after the first answer a second one is only awaited for
        // about one model call.
        let mut waited_for = ANSWER_WAIT;
        let mut answered = 0;
        while answered < pending.len() {
            let got = tokio::select! {
                r = telegram.wait_for_sent(&token, chat, seen + 1, waited_for) => r,
                () = stop_waiting.cancelled() => return,
            };
            let Ok(sent) = got else { break };
            for message in &sent[seen..] {
                let asked = pending.get(answered).or(pending.last()).copied().unwrap_or_else(Instant::now);
                let latency = message.at.saturating_duration_since(asked);
                emit(
                    &events,
                    Event::Replied { member: person.index, text: message.current_text().to_owned(), latency },
                );
                answered += 1;
            }
            seen = sent.len();
            waited_for = Duration::from_millis(model_latency_ms * 2 + 2000);
        }
        if stop_sending.is_cancelled() {
            return;
        }
    }
}

fn emit(events: &mpsc::UnboundedSender<(Instant, Event)>, event: Event) {
    // The view outlives every sender; a send fails only while the demo is being torn down.
    let _ = events.send((Instant::now(), event));
}

fn shuffle(v: &mut [usize]) {
    for i in (1..v.len()).rev() {
        v.swap(i, rand::random_range(0..=i));
    }
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
