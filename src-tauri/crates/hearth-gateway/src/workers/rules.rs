//! What a running turn may ask of the gateway, decided by the gateway (issue 13): a worker's
//! frames say which turn they belong to and what they want, and the gateway believes neither
//! further than it can check.
//!
//! - **Kind.** Only a chat turn asks the model or searches the household's knowledge
//!   ([`TurnKind::uses_model`], [`TurnKind::may_search`]); `/memory`, `/forget`, `/reminders`,
//!   `/new` and a reminder firing are answered from the member's own files, so anything they ask
//!   for is refused ([`Refusal::NotThisTurn`]).
//! - **Member state.** A member paused or resting (quiet hours) when the turn started gets no
//!   completion and no search in it. A pause takes effect in the middle of a turn too: it is the
//!   admin's way to stop an assistant now, so each request checks it ([`TurnRules::paused_now`]);
//!   the completion already with the provider finishes (it is paid for), the next is refused and
//!   the member reads that they are paused. Quiet hours that begin while a turn runs do not cut
//!   it short: the turn started in the member's time, and it is bounded anyway.
//! - **How much.** One completion and one search in flight at a time (a worker asks, waits, asks
//!   again), at most [`MAX_COMPLETIONS_PER_TURN`] completions (the step loop and one summary) and
//!   [`KB_MAX_SEARCHES_PER_TURN`] searches per turn. Spending caps (`broker.rs`) bound what a
//!   capped member spends; an uncapped adult has no spend bound, so these per-turn bounds — with
//!   one turn per member at a time — are what keep a hostile worker from spending without end.
//! - **Refusals** answer the worker at once with a [`BrokerErrorKind::Refused`] (or a sentence
//!   for a search), log a warning with member and turn, and are audited (`worker_refused`) once
//!   per turn; later ones in the same turn are counted and summed up when the turn ends.
//!
//! **Images.** A worker names a photo for the model only by its inbox row
//! ([`ImageSource::Attachment`]); [`TurnFiles::resolve_images`] puts the bytes in — only a photo
//! of this very turn — right before the broker sees the request, and refuses a request that
//! carries image bytes itself ([`ImageSource::Inline`]) or names any other row.
//!
//! **Drafts.** While the model writes the member's answer, the turn's [`DraftSink`] (when it has
//! one: `core/stream.rs` decides) hears the text so far and which tools a step asked for, so the
//! chat can show the answer being written. Only a completion that offers the model tools is a
//! step of the answer (`agent.rs`'s step loop always offers them); one without — the running
//! summary of `context.rs` — is never shown.
//!
//! The reply a worker finishes a turn with is bounded here too ([`bound_outcome`]); its reminder
//! schedule is checked by `household::reminders::check_schedule`.

use std::sync::Arc;

use base64::Engine as _;
use hearth_proto::llm::{BrokerError, BrokerErrorKind, CompletionRequest, ImageSource, Refusal};
use hearth_proto::worker::{
    KB_MAX_SEARCHES_PER_TURN, MAX_COMPLETIONS_PER_TURN, MAX_REPLY_BYTES, TurnKind, TurnOutcome,
};

use crate::clock::Clock;

/// What the gateway knew about the member when it started a turn, and how to learn whether they
/// have been paused since.
#[derive(Clone)]
pub struct TurnRules {
    /// Why the member may not use the model in this turn at all: paused or resting at its start.
    pub refused: Option<Refusal>,
    /// Whether the member is paused now (or gone). Asked before every completion and search.
    pub paused_now: Arc<dyn Fn() -> bool + Send + Sync>,
    /// The gateway's clock: reminder instants are checked against it.
    pub clock: Clock,
    /// The files the member sent with this turn, in memory for its length.
    pub files: TurnFiles,
    /// Where the answer goes while it is being written (`None`: nowhere; the member waits for
    /// the finished reply).
    pub draft: Option<Arc<dyn DraftSink>>,
    /// Told when a completion starts waiting on the provider (`None`) and when it is back
    /// (`Some`, answered once the turn holds a turn slot again): the wait costs no slot
    /// (`core/lanes.rs`). `None`: the turn keeps its slot throughout.
    pub provider_wait: Option<ProviderWait>,
}

/// See [`TurnRules::provider_wait`].
pub type ProviderWait = Arc<dyn Fn(Option<tokio::sync::oneshot::Sender<()>>) + Send + Sync>;

/// Hears a turn's answer while the model writes it (the chat's draft, `core/stream.rs`).
/// Called from the completion's task; must not block.
pub trait DraftSink: Send + Sync {
    /// The text of the current step so far (the whole text each time; a retried call starts
    /// again from nothing).
    fn writing(&self, text_so_far: &str);
    /// A step ended asking for these tools: the answer goes on after they run.
    fn using_tools(&self, names: &[String]);
    /// Cancelled when the member presses Stop: the completion in flight ends, and so does every
    /// later one of the turn.
    fn stop_signal(&self) -> Option<tokio_util::sync::CancellationToken> {
        None
    }
    /// Once the member pressed Stop: what they are sent instead of the rest of the answer (the
    /// text so far, marked as stopped). The worker is told it, to keep as the turn's answer.
    fn stopped_text(&self) -> Option<String> {
        None
    }
}

impl TurnRules {
    /// No restriction beyond the turn's kind and the per-turn bounds (a member neither paused nor
    /// resting), on the system clock, with no files.
    pub fn open() -> Self {
        Self {
            refused: None,
            paused_now: Arc::new(|| false),
            clock: Clock::system(),
            files: TurnFiles::default(),
            draft: None,
            provider_wait: None,
        }
    }
}

/// One file of a turn: the inbox row it came with, its bytes, and — for a photo — its media
/// type, which makes it something the model may be shown.
#[derive(Debug, Clone)]
pub struct TurnFile {
    pub inbox_id: i64,
    pub bytes: Arc<[u8]>,
    pub image_type: Option<String>,
}

/// The files of one turn (cheap to clone): streamed to the worker before the turn
/// (`Workers::run_turn`), and its photos shown to the model when a request names them.
#[derive(Debug, Clone, Default)]
pub struct TurnFiles(Arc<Vec<TurnFile>>);

impl TurnFiles {
    pub fn new(files: Vec<TurnFile>) -> Self {
        Self(Arc::new(files))
    }

    pub fn iter(&self) -> impl Iterator<Item = &TurnFile> {
        self.0.iter()
    }

    pub fn has_images(&self) -> bool {
        self.0.iter().any(|f| f.image_type.is_some())
    }

    /// Puts each image a worker's request names into it as bytes, or refuses the request: an
    /// image the worker sent itself, or a row that is not one of this turn's photos, is a
    /// `BadRequest` and nothing reaches the broker.
    pub fn resolve_images(&self, request: &mut CompletionRequest) -> Result<(), BrokerError> {
        let refuse = |message: String| BrokerError { kind: BrokerErrorKind::BadRequest, message };
        for message in &mut request.messages {
            for image in &mut message.images {
                let inbox_id = match image {
                    ImageSource::Attachment { inbox_id } => *inbox_id,
                    ImageSource::Inline { .. } => {
                        return Err(refuse("a worker may name an image only by its inbox row, never send one".into()));
                    }
                };
                let photo = self.0.iter().find(|f| f.inbox_id == inbox_id);
                let Some((file, media_type)) = photo.and_then(|f| f.image_type.as_ref().map(|t| (f, t))) else {
                    return Err(refuse(format!("inbox row {inbox_id} is not a photo of this turn")));
                };
                *image = ImageSource::Inline {
                    media_type: media_type.clone(),
                    data: base64::engine::general_purpose::STANDARD.encode(&file.bytes),
                };
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for TurnRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnRules").field("refused", &self.refused).finish_non_exhaustive()
    }
}

/// The two things a worker may ask for during a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ask {
    Completion,
    Search,
}

impl Ask {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Ask::Completion => "completion",
            Ask::Search => "knowledge search",
        }
    }
}

/// One running turn's count of what it asked for.
#[derive(Debug)]
pub(crate) struct Allowance {
    kind: TurnKind,
    completions: usize,
    completing: bool,
    searches: usize,
    searching: bool,
    /// Requests refused in this turn; the first is warned about and audited.
    pub(crate) refusals: usize,
}

impl Allowance {
    pub(crate) fn new(kind: TurnKind) -> Self {
        Self { kind, completions: 0, completing: false, searches: 0, searching: false, refusals: 0 }
    }

    pub(crate) fn kind(&self) -> TurnKind {
        self.kind
    }

    /// Whether the turn may ask for one more `ask` now; if so it is counted and in flight until
    /// [`Allowance::finished`]. `refused` is the member's state at the turn's start, `paused`
    /// their state now.
    pub(crate) fn admit(&mut self, ask: Ask, refused: Option<Refusal>, paused: bool) -> Result<(), Refusal> {
        let allowed = match ask {
            Ask::Completion => self.kind.uses_model(),
            Ask::Search => self.kind.may_search(),
        };
        if !allowed {
            return Err(Refusal::NotThisTurn);
        }
        if let Some(why) = refused {
            return Err(why);
        }
        if paused {
            return Err(Refusal::Paused);
        }
        let (count, busy, limit) = match ask {
            Ask::Completion => (&mut self.completions, &mut self.completing, MAX_COMPLETIONS_PER_TURN),
            Ask::Search => (&mut self.searches, &mut self.searching, KB_MAX_SEARCHES_PER_TURN),
        };
        if *busy {
            return Err(Refusal::Busy);
        }
        if *count >= limit {
            return Err(Refusal::Limit);
        }
        *count += 1;
        *busy = true;
        Ok(())
    }

    /// The request admitted last for `ask` has been answered.
    pub(crate) fn finished(&mut self, ask: Ask) {
        match ask {
            Ask::Completion => self.completing = false,
            Ask::Search => self.searching = false,
        }
    }

    /// Counts a refusal; true for the turn's first (the one to warn about and audit).
    pub(crate) fn note_refusal(&mut self) -> bool {
        self.refusals += 1;
        self.refusals == 1
    }
}

/// What the worker is told when a completion is refused.
pub(crate) fn refused_completion(why: Refusal) -> BrokerError {
    BrokerError { kind: BrokerErrorKind::Refused { reason: why }, message: describe(why, Ask::Completion) }
}

/// What the model reads when a search is refused.
pub(crate) fn refused_search(why: Refusal) -> String {
    describe(why, Ask::Search)
}

/// A plain sentence about a refusal, for logs, the audit log and the model.
pub(crate) fn describe(why: Refusal, ask: Ask) -> String {
    let what = ask.name();
    match why {
        Refusal::Paused => format!("the member is paused, so no {what} is allowed"),
        Refusal::Resting => format!("it is the member's quiet time, so no {what} is allowed"),
        Refusal::NotThisTurn => format!("this kind of turn needs no {what}"),
        Refusal::Busy => format!("another {what} of this turn is still being answered: one at a time"),
        Refusal::Limit => match ask {
            Ask::Completion => format!("this turn has had its {MAX_COMPLETIONS_PER_TURN} completions"),
            Ask::Search => {
                format!("this message has had its {KB_MAX_SEARCHES_PER_TURN} searches; answer with what was found")
            }
        },
    }
}

/// What a user message and a failure detail may be at most, in bytes.
const MAX_USER_MESSAGE_BYTES: usize = 2048;
const MAX_DETAIL_BYTES: usize = 1024;

/// Put after a reply cut to [`MAX_REPLY_BYTES`].
pub const CUT_NOTE: &str = "\n\n[… the rest was cut: too long to send]";

/// Bounds what a worker finishes a turn with: a reply to [`MAX_REPLY_BYTES`] (cut with
/// [`CUT_NOTE`]), a failure's user message to 2 KiB, and its detail — which the gateway logs — to
/// 1 KiB with control characters escaped, so a worker cannot forge log lines. Returns whether the
/// reply was cut.
pub(crate) fn bound_outcome(outcome: TurnOutcome) -> (TurnOutcome, bool) {
    match outcome {
        TurnOutcome::Reply { text } if text.len() > MAX_REPLY_BYTES => {
            let keep = MAX_REPLY_BYTES - CUT_NOTE.len();
            let mut text = cut(&text, keep).trim_end().to_owned();
            text.push_str(CUT_NOTE);
            (TurnOutcome::Reply { text }, true)
        }
        TurnOutcome::Failed { user_message, detail } => {
            let user_message = cut(&user_message, MAX_USER_MESSAGE_BYTES).to_owned();
            (TurnOutcome::Failed { user_message, detail: for_log(&detail, MAX_DETAIL_BYTES) }, false)
        }
        other => (other, false),
    }
}

/// `text` cut to at most `max` bytes at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Text from a worker made safe for a log line: at most `max` bytes, control characters escaped.
pub(crate) fn for_log(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
        if out.len() >= max {
            out.push('…');
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_chat_turn_asks_and_only_as_much_as_one_turn_may() {
        for kind in [
            TurnKind::NewConversation,
            TurnKind::ListMemory,
            TurnKind::Forget,
            TurnKind::Reminders,
            TurnKind::Reminder { id: 1, due_at: 0 },
        ] {
            let mut a = Allowance::new(kind);
            assert_eq!(a.admit(Ask::Completion, None, false), Err(Refusal::NotThisTurn), "{kind:?}");
            assert_eq!(a.admit(Ask::Search, None, false), Err(Refusal::NotThisTurn), "{kind:?}");
        }
        let mut a = Allowance::new(TurnKind::Chat);
        for _ in 0..MAX_COMPLETIONS_PER_TURN {
            assert_eq!(a.admit(Ask::Completion, None, false), Ok(()));
            assert_eq!(a.admit(Ask::Completion, None, false), Err(Refusal::Busy));
            // A search may run beside a completion (the model's tools run between completions,
            // but the two are counted apart).
            a.finished(Ask::Completion);
        }
        assert_eq!(a.admit(Ask::Completion, None, false), Err(Refusal::Limit));
        for _ in 0..KB_MAX_SEARCHES_PER_TURN {
            assert_eq!(a.admit(Ask::Search, None, false), Ok(()));
            a.finished(Ask::Search);
        }
        assert_eq!(a.admit(Ask::Search, None, false), Err(Refusal::Limit));
    }

    #[test]
    fn images_are_this_turns_photos_named_by_row_and_never_a_workers_bytes() {
        use hearth_proto::llm::ChatMessage;
        let files = TurnFiles::new(vec![
            TurnFile { inbox_id: 7, bytes: Arc::from(&b"\xff\xd8jpeg"[..]), image_type: Some("image/jpeg".into()) },
            TurnFile { inbox_id: 8, bytes: Arc::from(&b"%PDF-1.4"[..]), image_type: None },
        ]);
        let request = |images| CompletionRequest {
            system: String::new(),
            messages: vec![ChatMessage::user("look"), ChatMessage::user_with_images("and this", images)],
            max_tokens: 10,
            tools: Vec::new(),
        };
        let mut ok = request(vec![ImageSource::Attachment { inbox_id: 7 }]);
        files.resolve_images(&mut ok).unwrap();
        assert_eq!(
            ok.messages[1].images,
            vec![ImageSource::Inline { media_type: "image/jpeg".into(), data: "/9hqcGVn".into() }]
        );
        for bad in [
            ImageSource::Attachment { inbox_id: 8 },
            ImageSource::Attachment { inbox_id: 99 },
            ImageSource::Inline { media_type: "image/png".into(), data: "AAAA".into() },
        ] {
            let mut r = request(vec![bad.clone()]);
            let e = files.resolve_images(&mut r).unwrap_err();
            assert_eq!(e.kind, BrokerErrorKind::BadRequest, "{bad:?}");
        }
        assert!(files.has_images() && !TurnFiles::default().has_images());
    }

    #[test]
    fn a_paused_or_resting_member_gets_nothing() {
        let mut a = Allowance::new(TurnKind::Chat);
        assert_eq!(a.admit(Ask::Completion, Some(Refusal::Resting), false), Err(Refusal::Resting));
        assert_eq!(a.admit(Ask::Completion, Some(Refusal::Paused), false), Err(Refusal::Paused));
        assert_eq!(a.admit(Ask::Search, None, true), Err(Refusal::Paused));
        // Nothing was counted for the refusals.
        assert_eq!(a.admit(Ask::Completion, None, false), Ok(()));
        assert!(a.note_refusal() && !a.note_refusal());
    }

    #[test]
    fn outcomes_are_bounded_and_details_cannot_forge_log_lines() {
        let (o, cut_) = bound_outcome(TurnOutcome::Reply { text: "é".repeat(MAX_REPLY_BYTES) });
        let TurnOutcome::Reply { text } = o else { panic!() };
        assert!(cut_ && text.len() <= MAX_REPLY_BYTES && text.ends_with(CUT_NOTE), "{}", text.len());
        let short = TurnOutcome::Reply { text: "hi".into() };
        assert_eq!(bound_outcome(short.clone()), (short, false));
        let (o, _) = bound_outcome(TurnOutcome::Failed {
            user_message: "x".repeat(10_000),
            detail: "boom\n2026-01-01T00:00:00Z  INFO forged\u{1b}[31m".into(),
        });
        let TurnOutcome::Failed { user_message, detail } = o else { panic!() };
        assert_eq!(user_message.len(), MAX_USER_MESSAGE_BYTES);
        assert!(!detail.chars().any(char::is_control), "{detail}");
        assert!(detail.contains("\\n2026") && detail.contains("\\u{1b}"), "{detail}");
        assert!(for_log(&"y".repeat(5000), 100).len() <= 104);
    }
}
