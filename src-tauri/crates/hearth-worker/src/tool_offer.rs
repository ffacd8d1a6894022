//! Which of the member's tools a chat turn offers the model: the ones the turn may need, not all
//! eleven. Every definition rides along with every completion — with all of them a "hello" was
//! 82 % tool definitions (issue #19) — so a turn offers a small always-on set and adds a family of
//! tools when the turn or its conversation calls for it. The decision is local and cheap: words
//! in the new messages (several phrasings, German and Spanish included), the files the turn
//! brought, the conversation's last exchange (a follow-up like "and tomorrow too" or "cancel
//! that" keeps the family of the message before it) and the families the conversation's last
//! turn offered or used. Never an extra model call.
//!
//! Always on: `remember`. People mention lasting facts in passing ("my sister Anna is coming on
//! Friday") with no word that announces them, and a fact not saved is lost for good; every other
//! tool answers a request that names what it is about (a reminder, a list, the wifi).
//!
//! Families, each offered whole so the model can finish what it starts (set, then list, then
//! cancel): memory (`recall`, `forget`), reminders, household knowledge, files. The selection only
//! ever narrows [`role_tools::specs`]: a tool the member's role may not have is never offered,
//! whatever the words.
//!
//! A word list misses some phrasings: `tests/fixtures/family-corpus.tsv` holds 200 family
//! messages with the tool each needs, and a test checks that none loses its tool.

use hearth_proto::control::Role;
use hearth_proto::llm::{ChatMessage, Role as ChatRole, ToolSpec};

use crate::{knowledge, role_tools};

/// A group of tools offered together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `recall`, `forget` (`remember` is always on).
    Memory,
    Reminders,
    Knowledge,
    Files,
}

impl Family {
    fn bit(self) -> u8 {
        1 << self as u8
    }

    /// The family a tool belongs to; `None` for the always-on ones and unknown names.
    pub fn of(tool: &str) -> Option<Family> {
        match tool {
            "recall" | "forget" => Some(Family::Memory),
            "set_reminder" | "list_reminders" | "cancel_reminder" => Some(Family::Reminders),
            knowledge::TOOL => Some(Family::Knowledge),
            "list_files" | "read_file" | "write_file" | "delete_file" => Some(Family::Files),
            _ => None,
        }
    }
}

/// A set of [`Family`]s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Families(u8);

impl Families {
    pub const NONE: Families = Families(0);
    /// Every family: the selection turned off (the whole of the role's table).
    #[cfg(test)]
    pub const EVERY: Families = Families(0b1111);

    pub fn with(self, f: Family) -> Families {
        Families(self.0 | f.bit())
    }

    pub fn union(self, other: Families) -> Families {
        Families(self.0 | other.0)
    }

    pub fn contains(self, f: Family) -> bool {
        self.0 & f.bit() != 0
    }

    /// The families of the tools named.
    pub fn of_tools<'a>(names: impl IntoIterator<Item = &'a str>) -> Families {
        names.into_iter().filter_map(Family::of).fold(Families::NONE, Families::with)
    }
}

/// Tools offered on every chat turn.
pub const ALWAYS: &[&str] = &["remember"];

/// Word starts that call for each family, matched at the start of a word of the lowercased
/// text with punctuation turned into spaces (so "remind" also matches "reminders", and
/// "don't" is written "don t"). A leading space is part of every entry; a trailing one makes
/// it a whole word.
const MEMORY_WORDS: &[&str] = &[
    " forget", " forgot", " remember", " recall", " what did i ", " did i ever", " did i tell", " did i say",
    " i told you", " told you", " you know", " do you know", " what was the", " what s my", " whats my",
    " again", " anymore", " any more", " not true", " that was wrong", " my old ",
    // German, Spanish
    " vergiss", " vergessen", " weißt du", " weisst du", " erinnerst", " merk", " olvid", " recuerda ",
    " recuerdas", " te acuerdas", " te dije",
];

const REMINDER_WORDS: &[&str] = &[
    " remind", " alarm", " wake me", " ping me", " nudge me", " tell me at", " tell me in", " tell me when",
    " let me forget", " don t forget", " dont forget", " make sure i", " schedule", " every ", " each ", " daily",
    " weekly", " monthly", " tomorrow", " 2morrow", " tmrw", " tonight", " this evening", " this afternoon",
    " in an hour", " in half an hour", " in a minute", " noon", " midnight", " half past", " quarter past",
    " quarter to", " o clock", " monday", " tuesday", " wednesday", " thursday", " friday", " saturday",
    " sunday", " weekend", " next week", " same time", " cancel", " snooze", " make it ", " instead",
    // German
    " erinner", " wecker", " weck mich", " morgen", " heute abend", " jeden ", " jede ", " täglich",
    " wöchentlich", " montag", " dienstag", " mittwoch", " donnerstag", " freitag", " samstag", " sonntag",
    " nicht vergessen", " um ",
    // Spanish
    " recuérdame", " recuerdame", " recordatorio", " alarma", " despiértame", " mañana", " esta noche",
    " cada ", " todos los", " lunes", " martes", " miércoles", " jueves", " viernes", " sábado", " domingo",
    " se me olvide", " a las ",
];

const KNOWLEDGE_WORDS: &[&str] = &[
    " wifi", " wi fi", " wlan", " internet", " router", " password", " passwort", " contraseña", " bin ",
    " bins", " rubbish", " trash", " garbage", " recycling", " müll", " basura", " key", " code", " alarm",
    " dentist", " doctor", " gp ", " vet", " plumber", " electrician", " babysitter", " nanny", " school",
    " term", " holiday", " parents evening", " teacher", " rule", " screen time", " bedtime", " pocket money",
    " allowance", " chores", " insurance", " policy", " boiler", " heating", " thermostat", " fuse", " meter",
    " emergency", " number", " phone", " address", " our ", " we keep", " who do we", " where do we",
    " where is", " where s", " wheres", " how do i turn", " how does the", " house", " home", " landlord",
    " neighbour", " neighbor", " next week",
    // German, Spanish
    " schlüssel", " schule", " arzt", " nummer", " regel", " wo ist", " llave", " colegio", " escuela",
    " médico", " número", " dónde",
];

const FILE_WORDS: &[&str] = &[
    " list", " shopping", " grocer", " to do", " todo", " note", " file", " document", " doc ", " pdf",
    " photo", " picture", " attachment", " i sent", " sent you", " write down", " write it down", " jot",
    " save this", " save it", " add ", " put ", " take off", " cross off", " remove", " delete", " get rid",
    " packing", " recipe", " on it", " read me",
    // German, Spanish
    " liste", " einkauf", " notiz", " datei", " füge", " lösche", " lista", " compra", " nota", " añade",
    " apunta", " borra", " archivo",
];

/// The text as the word lists are matched against it: lowercase, anything but letters and
/// digits a space, with a space at each end.
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(' ');
    for c in text.chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else {
            out.push(' ');
        }
    }
    out.push(' ');
    out
}

/// Whether the text names a clock time: "8am", "6 pm", "7:30", "17.00", "at 8", "um 8".
fn names_a_time(text: &str) -> bool {
    let lower = text.to_lowercase();
    let bytes = lower.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if !b.is_ascii_digit() {
            continue;
        }
        let rest = lower[i + 1..].trim_start_matches(|c: char| c.is_ascii_digit());
        let after_space = rest.trim_start();
        if after_space.starts_with("am") || after_space.starts_with("pm") || after_space.starts_with("uhr") {
            return true;
        }
        let mut r = rest.chars();
        if let (Some(':' | '.'), Some(d)) = (r.next(), r.next())
            && d.is_ascii_digit()
        {
            return true;
        }
        let before = lower[..i].trim_end();
        if before.ends_with(" at") || before == "at" || before.ends_with(" in") || before == "in" {
            return true;
        }
    }
    false
}

/// The families the words of `text` call for.
pub fn families_in(text: &str) -> Families {
    let norm = normalise(text);
    let hit = |words: &[&str]| words.iter().any(|w| norm.contains(w));
    let mut f = Families::NONE;
    if hit(MEMORY_WORDS) {
        f = f.with(Family::Memory);
    }
    if hit(REMINDER_WORDS) || names_a_time(text) {
        f = f.with(Family::Reminders);
    }
    if hit(KNOWLEDGE_WORDS) {
        f = f.with(Family::Knowledge);
    }
    if hit(FILE_WORDS) {
        f = f.with(Family::Files);
    }
    f
}

/// What a chat turn brings to the decision.
#[derive(Debug, Clone, Copy, Default)]
pub struct Signals<'a> {
    /// The turn's messages as the model reads them.
    pub new: &'a [&'a str],
    /// The conversation before the turn, oldest first (only its last exchange is read).
    pub earlier: &'a [ChatMessage],
    /// The turn brought a photo or a document (kept in `files/`): the file tools may be asked for.
    pub files_attached: bool,
    /// The families the conversation's previous turn offered or called, when this worker process
    /// ran it: within a conversation the tool set only grows, so the prompt's cacheable prefix
    /// (tools first) changes only when a family is first needed.
    pub used_last_turn: Families,
}

/// The families a turn offers.
pub fn families(s: &Signals<'_>) -> Families {
    let mut f = s.used_last_turn;
    for text in s.new {
        f = f.union(families_in(text));
    }
    if s.files_attached {
        f = f.with(Family::Files);
    }
    // The last exchange: the member's previous message and the reply to it.
    let last_user = s.earlier.iter().rposition(|m| m.role == ChatRole::User);
    if let Some(i) = last_user {
        for m in &s.earlier[i..] {
            if m.role != ChatRole::Tool {
                f = f.union(families_in(&m.content));
            }
        }
    }
    f
}

/// The tools a chat turn of a member of `role` offers: the always-on ones and those of
/// `families`, in the table's order, never one the role may not have.
pub fn offer(role: Role, families: Families) -> Vec<ToolSpec> {
    role_tools::specs(role)
        .into_iter()
        .filter(|t| ALWAYS.contains(&t.name.as_str()) || Family::of(&t.name).is_some_and(|f| families.contains(f)))
        .collect()
}

#[cfg(test)]
mod tests;
