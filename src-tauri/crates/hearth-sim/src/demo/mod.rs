//! The demo household: simulated people writing to their bots on the fake Telegram at random
//! moments, answered by a canned model. The caller owns the gateway: it sets the provider to
//! [`model::responder`]'s fake and adds members through whatever admin API it has; [`set_up`] and
//! [`simulate`] then act as the family would.
//!
//! - `household`: the family members, what they ask, and the demo's voice note and photo.
//! - `model`: the demo model's canned, topical answers, what it "sees" in a photo, and what its
//!   speech service hears in a voice note ([`model::install`] sets both up).

pub mod household;
pub mod model;

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::telegram::{FakeBot, FakePhoto, FakeTelegram, FakeUser};

/// Whether [`simulate`] has people send the scripted voice note and photo
/// ([`household::MEDIA`]). The demo's model must be set up with [`model::install`], so its
/// speech service hears the scripted transcript. ([`simulate_with`] takes it as a parameter.)
pub const SEND_MEDIA: bool = true;

/// Longest a simulated person waits for any one answer.
const ANSWER_WAIT: Duration = Duration::from_secs(60);

/// What happened, as the simulated household reports it.
#[derive(Debug, Clone)]
pub enum Event {
    /// The member was added; their pairing code.
    Added { member: usize, code: String },
    /// The member's bot confirmed the pairing.
    Paired { member: usize },
    /// The member wrote to their bot.
    Sent { member: usize, text: String },
    /// Their bot answered, `latency` after the message it answers.
    Replied { member: usize, text: String, latency: Duration },
}

pub type Events = mpsc::UnboundedSender<(Instant, Event)>;

/// One simulated person and their bot.
#[derive(Clone)]
pub struct Person {
    pub index: usize,
    pub name: String,
    pub profile: &'static household::Profile,
    pub bot: FakeBot,
    pub user: FakeUser,
}

/// Adds `members` people: for each, a bot on the fake Telegram, `add(name, token)` (which adds the
/// member through the caller's admin API and returns the pairing code), and `/start <code>` from
/// their phone — then waits until every bot confirmed the pairing.
pub async fn set_up<F, Fut>(
    telegram: &FakeTelegram,
    members: usize,
    mut add: F,
    events: &Events,
) -> Result<Vec<Person>, String>
where
    F: FnMut(String, String) -> Fut,
    Fut: Future<Output = Result<String, String>>,
{
    let mut people = Vec::new();
    for index in 0..members {
        let (name, profile) = household::member(index);
        let bot = telegram.add_bot(&household::bot_username(&name));
        let code = add(name.clone(), bot.token.clone()).await?;
        let user = telegram.user(7_000_000 + index as i64, &name);
        emit(events, Event::Added { member: index, code: code.clone() });
        telegram.send_text(&bot.token, &user, &format!("/start {code}"));
        people.push(Person { index, name, profile, bot, user });
    }
    for person in &people {
        match telegram.wait_for_sent(&person.bot.token, person.user.id, 1, Duration::from_secs(30)).await {
            Ok(_) => emit(events, Event::Paired { member: person.index }),
            Err(e) => return Err(format!("{} could not pair with their bot: {e}", person.name)),
        }
    }
    Ok(people)
}

/// One simulated person: thinks for a while, writes (sometimes a quick second message too),
/// waits for the answer, and again — until told to stop sending; answers already asked for are
/// still awaited until told to stop waiting.
pub async fn simulate(
    person: Person,
    telegram: FakeTelegram,
    events: Events,
    stop_sending: CancellationToken,
    stop_waiting: CancellationToken,
    model_latency_ms: u64,
) {
    simulate_with(person, telegram, events, stop_sending, stop_waiting, model_latency_ms, SEND_MEDIA).await;
}

/// [`simulate`], saying whether the person sends their scripted voice note or photo (as their
/// second message).
pub async fn simulate_with(
    person: Person,
    telegram: FakeTelegram,
    events: Events,
    stop_sending: CancellationToken,
    stop_waiting: CancellationToken,
    model_latency_ms: u64,
    send_scripted_media: bool,
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
    // The scripted voice note or photo goes out as the second message.
    let mut media = person.profile_media().filter(|_| send_scripted_media);
    let mut asked = 0;
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
        let mut pending = vec![Instant::now()];
        if !thank
            && asked == 1
            && let Some(m) = media.take()
        {
            let shown = send_media(&telegram, &person, m);
            emit(&events, Event::Sent { member: person.index, text: shown });
            next_follow_up = "";
        } else {
            let text = if thank {
                person.profile.thanks[rand::random_range(0..person.profile.thanks.len())]
            } else {
                let (question, follow_up) = questions.next().expect("an endless cycle");
                next_follow_up = follow_up;
                question
            };
            telegram.send_text(&token, &person.user, text);
            emit(&events, Event::Sent { member: person.index, text: text.to_owned() });
        }
        if !thank {
            asked += 1;
        }
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
                // A voice reply (Sam's voice note is answered in voice) shows as its caption.
                let text = match &message.voice {
                    Some(_) => format!("🔊 {}", message.current_text()),
                    None => message.current_text().to_owned(),
                };
                emit(&events, Event::Replied { member: person.index, text, latency });
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

/// Sends `media` from `person` to their bot, as Telegram would deliver it (a real Ogg Opus voice
/// note of the scripted length, a real PNG of the scripted size), and returns how the demo's
/// view shows it.
pub fn send_media(telegram: &FakeTelegram, person: &Person, media: household::ScriptedMedia) -> String {
    match media {
        household::ScriptedMedia::Voice { seconds, .. } => {
            telegram.send_voice(&person.bot.token, &person.user, crate::media::ogg_opus(seconds), seconds);
        }
        household::ScriptedMedia::Photo { width, height, caption } => {
            telegram.send_photo(&person.bot.token, &person.user, FakePhoto::new(width, height), Some(caption));
        }
    }
    media.shown_as()
}

impl Person {
    /// The voice note or photo this person sends, if the script gives them one.
    pub fn profile_media(&self) -> Option<household::ScriptedMedia> {
        household::media_of(self.profile)
    }
}

fn emit(events: &Events, event: Event) {
    // The receiver outlives every sender; a send fails only while the demo is being torn down.
    let _ = events.send((Instant::now(), event));
}

fn shuffle(v: &mut [usize]) {
    for i in (1..v.len()).rev() {
        v.swap(i, rand::random_range(0..=i));
    }
}
