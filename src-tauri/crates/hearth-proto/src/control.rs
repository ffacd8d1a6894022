//! The admin API: the CLI (over the owner-only control socket) and the GUI (in-process) both
//! speak these types to the gateway, which is the only writer of `gateway.sqlite`.
//!
//! Every request is answered by `Result<ControlReply, ControlError>`. `ControlError` is the one
//! `{ code, message }` shape used across every admin boundary: `message` is read by a person and
//! says what happened and what to do; `code` exists only where a caller branches on it.

use serde::{Deserialize, Serialize};

/// One request frame on the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlEnvelope {
    pub version: u32,
    pub request: ControlRequest,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum ControlRequest {
    /// Configure the (single, household-wide) LLM provider. Replaces any earlier one.
    ProviderSet { kind: ProviderKind, base_url: String, model: String, api_key: String },
    /// Try provider settings without storing them: one small real completion (nothing is
    /// stored, nothing is charged to any member). Checked like `ProviderSet`.
    ProviderTest { kind: ProviderKind, base_url: String, model: String, api_key: String },
    /// Look for model servers on this machine (Ollama, LM Studio) and the models they offer.
    ProviderDetect,
    /// How many provider calls (answers being written, voice notes heard, replies spoken) may be
    /// open at once across the household (1..=10 000; default 256), from now on. A call waiting
    /// for one waits in line and holds no turn slot. Stored as the household setting
    /// `provider.max_connections`. Added in protocol 8.
    ProviderConnections { max: u32 },
    /// Use this speech-recognition service for voice notes and audio (an OpenAI-compatible
    /// `POST {base_url}/audio/transcriptions`: OpenAI, Groq, a local whisper server). `api_key`
    /// may be empty (a local server needs none). Replaces the default (the chat provider's own
    /// service when it is of kind openai) and any earlier one. Added in protocol 6.
    SpeechSet { base_url: String, model: String, api_key: String },
    /// No speech recognition at all, not even the chat provider's: voice notes get a kind
    /// sentence asking to type. `SpeechSet` turns it on again. Added in protocol 6.
    SpeechOff,
    /// The speech service in force and where it comes from. Added in protocol 6.
    SpeechGet,
    /// Use this text-to-speech service for voice replies (an OpenAI-compatible
    /// `POST {base_url}/audio/speech` answering Ogg Opus: OpenAI, a local server). `voice` is the
    /// service's voice name (`alloy`, `nova`, …); `api_key` may be empty. Replaces the default
    /// (the chat provider's own service, model `tts-1`, voice `alloy`, when it is of kind
    /// openai). Added in protocol 7.
    VoiceSet { base_url: String, model: String, voice: String, api_key: String },
    /// No voice replies for anyone, whatever members chose: answers stay text. Added in
    /// protocol 7.
    VoiceOff,
    /// The voice-reply service in force and where it comes from. Added in protocol 7.
    VoiceGet,
    /// Try the speech service in force for one direction — hearing (`In`: a short sample is
    /// transcribed) or speaking (`Out`: a short sentence is spoken) — without storing anything
    /// or charging any member. Added in protocol 7.
    SpeechTest { direction: SpeechDirection },
    /// Check a pasted bot token live with `getMe` without storing anything; `Conflict` if a
    /// member already has that bot.
    BotCheck { bot_token: String },
    /// Add a member with their bot. The token is validated live with `getMe`; on failure nothing
    /// is stored.
    MemberAdd {
        name: String,
        bot_token: String,
        #[serde(default)]
        role: Role,
    },
    /// Change a member's role, persona notes and/or model; `None` keeps that setting.
    MemberUpdate {
        member: String,
        #[serde(default)]
        role: Option<Role>,
        #[serde(default)]
        persona: Option<String>,
        #[serde(default)]
        model: Option<ModelChange>,
    },
    /// Pause (or resume) one member (`Some(name or id)`) or every member (`None`). A paused
    /// member's messages reach no worker and no model; they get a short note instead.
    MemberPause {
        #[serde(default)]
        member: Option<String>,
        paused: bool,
        /// When the pause ends by itself (RFC 3339, in the future, within a week); `None`: when
        /// resumed. Only with `paused`. Added in protocol 8.
        #[serde(default)]
        until: Option<String>,
    },
    /// Replace a member's bot token (revoked in BotFather, or a new bot). Validated with `getMe`
    /// first; the pairing stays.
    MemberToken { member: String, bot_token: String },
    /// Copy a member's data into a new folder inside `dest_dir` (absolute, existing).
    MemberExport { member: String, dest_dir: String },
    /// How many turns may run at once across the household (1..=10 000), from now on. Not
    /// stored: the caller passes it again in the config at the next start.
    TurnCap { cap: u32 },
    MemberList,
    /// Remove a member by name (case-insensitive) or id: stops their bot and worker, forgets the
    /// token and the pairing. Their data directory is left in place for the admin.
    MemberRemove { member: String },
    /// Issue a fresh pairing code for a member (earlier unused codes stay valid until expiry,
    /// at most three pending).
    MemberPair { member: String },
    Status,
    /// Set the price of a model (integer micro-USD per million tokens). Overrides the shipped
    /// default for that model. `cache_write_micros_per_mtok`: tokens written into the provider's
    /// prompt cache (Anthropic); `None` keeps the default, 1.25 × input. Added in protocol 8.
    PriceSet {
        model: String,
        input_micros_per_mtok: u64,
        output_micros_per_mtok: u64,
        cached_input_micros_per_mtok: Option<u64>,
        #[serde(default)]
        cache_write_micros_per_mtok: Option<u64>,
    },
    PriceList,
    /// Set what a speech-recognition model costs per minute of audio (integer micro-USD per
    /// minute). Overrides the shipped default for that model. Added in protocol 6.
    SpeechPriceSet { model: String, micros_per_minute: u64 },
    /// Set what a text-to-speech model costs per million characters of text (integer micro-USD).
    /// Overrides the shipped default for that model. Added in protocol 7.
    VoicePriceSet { model: String, micros_per_mchar: u64 },
    /// Mark a model as unable (`vision: false`) or able to see images. A request showing images
    /// to a model marked unable is refused before any call, with a kind sentence to the member.
    /// Added in protocol 6.
    ModelVision { model: String, vision: bool },
    /// Change a member's daily and/or monthly cap.
    MemberCap { member: String, daily: CapChange, monthly: CapChange },
    /// Mark a member as (not) an admin: admins are asked over Telegram when someone hits a cap,
    /// and may use `/family`.
    MemberAdmin { member: String, admin: bool },
    /// A cheaper model to route down to instead of refusing when a cap would be exceeded.
    MemberFallback { member: String, model: Option<String> },
    /// When the member's assistant answers in voice (a voice note with the text as caption).
    /// Added in protocol 7.
    MemberVoice { member: String, voice_replies: VoiceReplies },
    /// Set a member's quiet hours (`None`: none). During them the gateway answers the member's
    /// messages with a short "resting time" note, no worker and no model; reminders still come.
    /// A child gets 20:00–07:00 when added or made a child (`hearth_gateway::roles`).
    MemberQuietHours {
        member: String,
        #[serde(default)]
        quiet_hours: Option<QuietHours>,
    },
    /// Whether a member sees replies as they are written (drafts in their private chat while
    /// the model writes) or only when finished. On by default. Added in protocol 7.
    MemberStreaming {
        member: String,
        streaming: bool,
    },
    /// Start a member's conversation afresh (as `/new` would) when they write after more than
    /// `hours` without writing; 0 turns it off (the default). Stored as the household setting
    /// `context.reset_after_idle_hours`.
    HouseholdIdleReset { hours: u32 },
    /// How much disk each member's folder may take, in MB (0: no limit; default 1024). A member
    /// whose folder is larger gets a kind note instead of new turns until it is smaller, and the
    /// admin is told once. Stored as the household setting `members.disk_quota_mb`.
    HouseholdDiskQuota { mb: u32 },
    HouseholdCap { monthly: CapChange },
    /// IANA zone name; days and months for caps are counted in it.
    HouseholdTimezone { timezone: String },
    /// Spend per member and in total for a month (`YYYY-MM`; default: this month).
    Usage { month: Option<String> },
    /// Every ledger row of a month as CSV.
    UsageExport { month: String },
    /// A security self-check: the isolation level in force per member and findings.
    Doctor,
    /// A consistent backup of the whole household into a new `hearth-backup-<time>/` folder inside
    /// `dest_dir` (absolute; created if its parent exists). `secrets.json` only with
    /// `include_secrets`.
    BackupCreate { dest_dir: String, include_secrets: bool },
    /// Back up into `dest_dir` every `every_hours`, keeping the last 7 there; `dest_dir: None`
    /// turns scheduled backups off. Stored as the household settings `backup.dir` and
    /// `backup.every_hours`.
    BackupSchedule { dest_dir: Option<String>, every_hours: u32 },
    /// What an admin member is told over Telegram about the household's health (see
    /// [`AlertLevel`]); stored for any member, read only while they are an admin. Added in
    /// protocol 8.
    MemberAlerts { member: String, alerts: AlertLevel },
    /// A dead-man's switch: while all is well (no bot stopped working, the provider answers, the
    /// disk has room) the gateway sends a GET to `url` (http or https) every `every_minutes`
    /// (1..=1440), and none otherwise or while it is stopped, so a service such as
    /// healthchecks.io notices a dead box. `url: None` turns it off (the default). Stored as the
    /// household settings `heartbeat.url` and `heartbeat.every_minutes`. Added in protocol 8.
    HouseholdHeartbeat {
        #[serde(default)]
        url: Option<String>,
        #[serde(default)]
        every_minutes: u32,
    },
    // The household bot and the family groups (#17).
    /// Set the household's one shared bot (the family group's bot and the admin's channel). The
    /// token is checked live with `getMe`; it may be no member's bot. Replaces an earlier one.
    /// Added in protocol 8.
    HouseholdBotSet { bot_token: String },
    /// Stop and forget the household bot (its token, the admins' chats with it); groups stay
    /// known with their decisions. Added in protocol 8.
    HouseholdBotRemove,
    /// The household bot, if one is set. Added in protocol 8.
    HouseholdBotGet,
    /// The group chats the household bot was added to or heard from. Added in protocol 8.
    HouseholdGroups,
    /// Let the household bot answer in a group (`allow: true`), or keep it silent there for good
    /// (`allow: false`). Added in protocol 8.
    HouseholdGroupDecide { chat_id: i64, allow: bool },
}

/// What a member is, for the assistant's tone and care: children and teens get age-appropriate
/// guidance in their assistant's instructions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Adult,
    Teen,
    Child,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Adult => "adult",
            Self::Teen => "teen",
            Self::Child => "child",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "adult" => Ok(Self::Adult),
            "teen" => Ok(Self::Teen),
            "child" => Ok(Self::Child),
            other => Err(format!("unknown role {other:?}: use adult, teen or child")),
        }
    }
}

/// A daily stretch of local time (the household's zone) when a member's assistant rests, e.g.
/// 20:30–07:00. It may wrap midnight (start after end); start and end are never equal. Written
/// and read as `"HH:MM-HH:MM"`, on the wire too, so a person can read a request or a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct QuietHours {
    /// Minutes after local midnight when the quiet time starts (inclusive), 0..1440.
    pub start: u16,
    /// Minutes after local midnight when it ends (exclusive), 0..1440.
    pub end: u16,
}

impl QuietHours {
    /// `None` when a time is out of range or the two are equal (no stretch at all).
    pub fn new(start: u16, end: u16) -> Option<Self> {
        (start < 1440 && end < 1440 && start != end).then_some(Self { start, end })
    }

    /// Whether `minute` (after local midnight) falls in the quiet time.
    pub fn contains(self, minute: u16) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }

    /// "07:00": when the quiet time ends, as a person reads it.
    pub fn end_text(self) -> String {
        hhmm(self.end)
    }
}

fn hhmm(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

impl std::fmt::Display for QuietHours {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", hhmm(self.start), hhmm(self.end))
    }
}

impl std::str::FromStr for QuietHours {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a time range: write it like 20:00-07:00 (24-hour clock, local time)");
        let minute = |t: &str| -> Option<u16> {
            let (h, m) = t.trim().split_once(':')?;
            let digits = |s: &str, max: usize| (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
            if !digits(h, 2) || !digits(m, 2) || m.len() != 2 {
                return None;
            }
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        let (a, b) = s.split_once(['-', '–']).ok_or_else(bad)?;
        let (start, end) = (minute(a).ok_or_else(bad)?, minute(b).ok_or_else(bad)?);
        Self::new(start, end).ok_or_else(|| format!("{s:?} starts and ends at the same time; give two different times"))
    }
}

impl TryFrom<String> for QuietHours {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<QuietHours> for String {
    fn from(q: QuietHours) -> String {
        q.to_string()
    }
}

/// Which model a member's assistant uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum ModelChange {
    /// The household provider's model (the default).
    Household,
    /// This model, on the household's provider.
    Set { model: String },
}

/// How to change one cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum CapChange {
    Keep,
    Remove,
    Set { micros: u64 },
}

impl std::fmt::Debug for ControlRequest {
    // Hand-written so a secret never reaches a log line through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ProviderSet { kind, base_url, model, .. } => f
                .debug_struct("ProviderSet")
                .field("kind", kind)
                .field("base_url", base_url)
                .field("model", model)
                .field("api_key", &"<redacted>")
                .finish(),
            Self::ProviderTest { kind, base_url, model, .. } => f
                .debug_struct("ProviderTest")
                .field("kind", kind)
                .field("base_url", base_url)
                .field("model", model)
                .field("api_key", &"<redacted>")
                .finish(),
            Self::ProviderDetect => f.write_str("ProviderDetect"),
            Self::ProviderConnections { max } => f.debug_struct("ProviderConnections").field("max", max).finish(),
            Self::SpeechSet { base_url, model, .. } => f
                .debug_struct("SpeechSet")
                .field("base_url", base_url)
                .field("model", model)
                .field("api_key", &"<redacted>")
                .finish(),
            Self::SpeechOff => f.write_str("SpeechOff"),
            Self::SpeechGet => f.write_str("SpeechGet"),
            Self::VoiceSet { base_url, model, voice, .. } => f
                .debug_struct("VoiceSet")
                .field("base_url", base_url)
                .field("model", model)
                .field("voice", voice)
                .field("api_key", &"<redacted>")
                .finish(),
            Self::VoiceOff => f.write_str("VoiceOff"),
            Self::VoiceGet => f.write_str("VoiceGet"),
            Self::SpeechTest { direction } => f.debug_struct("SpeechTest").field("direction", direction).finish(),
            Self::VoicePriceSet { model, micros_per_mchar } => f
                .debug_struct("VoicePriceSet")
                .field("model", model)
                .field("micros_per_mchar", micros_per_mchar)
                .finish(),
            Self::MemberVoice { member, voice_replies } => {
                f.debug_struct("MemberVoice").field("member", member).field("voice_replies", voice_replies).finish()
            }
            Self::BotCheck { .. } => f.debug_struct("BotCheck").field("bot_token", &"<redacted>").finish(),
            Self::MemberAdd { name, role, .. } => f
                .debug_struct("MemberAdd")
                .field("name", name)
                .field("bot_token", &"<redacted>")
                .field("role", role)
                .finish(),
            Self::MemberUpdate { member, role, persona, model } => f
                .debug_struct("MemberUpdate")
                .field("member", member)
                .field("role", role)
                .field("persona", persona)
                .field("model", model)
                .finish(),
            Self::MemberPause { member, paused, until } => f
                .debug_struct("MemberPause")
                .field("member", member)
                .field("paused", paused)
                .field("until", until)
                .finish(),
            Self::MemberToken { member, .. } => {
                f.debug_struct("MemberToken").field("member", member).field("bot_token", &"<redacted>").finish()
            }
            Self::MemberExport { member, dest_dir } => {
                f.debug_struct("MemberExport").field("member", member).field("dest_dir", dest_dir).finish()
            }
            Self::TurnCap { cap } => f.debug_struct("TurnCap").field("cap", cap).finish(),
            Self::MemberList => f.write_str("MemberList"),
            Self::MemberRemove { member } => f.debug_struct("MemberRemove").field("member", member).finish(),
            Self::MemberPair { member } => f.debug_struct("MemberPair").field("member", member).finish(),
            Self::Status => f.write_str("Status"),
            Self::PriceSet {
                model,
                input_micros_per_mtok,
                output_micros_per_mtok,
                cached_input_micros_per_mtok,
                cache_write_micros_per_mtok,
            } => f
                .debug_struct("PriceSet")
                .field("model", model)
                .field("input_micros_per_mtok", input_micros_per_mtok)
                .field("output_micros_per_mtok", output_micros_per_mtok)
                .field("cached_input_micros_per_mtok", cached_input_micros_per_mtok)
                .field("cache_write_micros_per_mtok", cache_write_micros_per_mtok)
                .finish(),
            Self::PriceList => f.write_str("PriceList"),
            Self::SpeechPriceSet { model, micros_per_minute } => f
                .debug_struct("SpeechPriceSet")
                .field("model", model)
                .field("micros_per_minute", micros_per_minute)
                .finish(),
            Self::ModelVision { model, vision } => {
                f.debug_struct("ModelVision").field("model", model).field("vision", vision).finish()
            }
            Self::MemberCap { member, daily, monthly } => {
                f.debug_struct("MemberCap").field("member", member).field("daily", daily).field("monthly", monthly).finish()
            }
            Self::MemberAdmin { member, admin } => {
                f.debug_struct("MemberAdmin").field("member", member).field("admin", admin).finish()
            }
            Self::MemberFallback { member, model } => {
                f.debug_struct("MemberFallback").field("member", member).field("model", model).finish()
            }
            Self::MemberQuietHours { member, quiet_hours } => {
                f.debug_struct("MemberQuietHours").field("member", member).field("quiet_hours", quiet_hours).finish()
            }
            Self::MemberStreaming { member, streaming } => {
                f.debug_struct("MemberStreaming").field("member", member).field("streaming", streaming).finish()
            }
            Self::HouseholdIdleReset { hours } => f.debug_struct("HouseholdIdleReset").field("hours", hours).finish(),
            Self::HouseholdDiskQuota { mb } => f.debug_struct("HouseholdDiskQuota").field("mb", mb).finish(),
            Self::HouseholdCap { monthly } => f.debug_struct("HouseholdCap").field("monthly", monthly).finish(),
            Self::HouseholdTimezone { timezone } => f.debug_struct("HouseholdTimezone").field("timezone", timezone).finish(),
            Self::Usage { month } => f.debug_struct("Usage").field("month", month).finish(),
            Self::UsageExport { month } => f.debug_struct("UsageExport").field("month", month).finish(),
            Self::Doctor => f.write_str("Doctor"),
            Self::BackupCreate { dest_dir, include_secrets } => f
                .debug_struct("BackupCreate")
                .field("dest_dir", dest_dir)
                .field("include_secrets", include_secrets)
                .finish(),
            Self::BackupSchedule { dest_dir, every_hours } => {
                f.debug_struct("BackupSchedule").field("dest_dir", dest_dir).field("every_hours", every_hours).finish()
            }
            Self::MemberAlerts { member, alerts } => {
                f.debug_struct("MemberAlerts").field("member", member).field("alerts", alerts).finish()
            }
            // The URL may carry a token of the monitoring service's (its path or query).
            Self::HouseholdHeartbeat { url, every_minutes } => f
                .debug_struct("HouseholdHeartbeat")
                .field("url", &url.as_ref().map(|_| "<redacted>"))
                .field("every_minutes", every_minutes)
                .finish(),
            Self::HouseholdBotSet { .. } => f.debug_struct("HouseholdBotSet").field("bot_token", &"<redacted>").finish(),
            Self::HouseholdBotRemove => f.write_str("HouseholdBotRemove"),
            Self::HouseholdBotGet => f.write_str("HouseholdBotGet"),
            Self::HouseholdGroups => f.write_str("HouseholdGroups"),
            Self::HouseholdGroupDecide { chat_id, allow } => {
                f.debug_struct("HouseholdGroupDecide").field("chat_id", chat_id).field("allow", allow).finish()
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// OpenAI chat completions and everything compatible with it: OpenAI, OpenRouter, DeepSeek,
    /// Gemini's compatible endpoint, Ollama, LM Studio.
    Openai,
    /// Anthropic Messages API.
    Anthropic,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::Anthropic => "anthropic",
        }
    }
}

impl std::str::FromStr for ProviderKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "openai" => Ok(Self::Openai),
            "anthropic" => Ok(Self::Anthropic),
            other => Err(format!("unknown provider kind {other:?}: use openai or anthropic")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum ControlReply {
    Done,
    ProviderSet(ProviderSummary),
    MemberAdded(MemberAdded),
    Members { members: Vec<MemberSummary> },
    PairCode(PairCode),
    Status(StatusReport),
    Prices { prices: Vec<PriceRow> },
    /// A member's or the household's caps after a change.
    Caps(CapsReport),
    Usage(UsageReport),
    Csv { text: String },
    Doctor(DoctorReport),
    /// `ProviderTest` worked: what the model said and how long it took.
    ProviderTested(ProviderTestResult),
    /// `ProviderDetect`: the model servers that answered (absent ones are not listed).
    LocalProviders { found: Vec<LocalProvider> },
    /// `BotCheck`: the bot the token belongs to.
    BotChecked(BotIdentity),
    /// A member after a change (`MemberUpdate`, `MemberToken`).
    Member(MemberSummary),
    /// `MemberExport`: the folder that was written.
    Exported { path: String },
    /// `BackupCreate`: the backup that was written.
    BackedUp(BackupSummary),
    /// `SpeechSet`, `SpeechOff`, `SpeechGet`: the speech service in force afterwards.
    Speech(SpeechSummary),
    /// `VoiceSet`, `VoiceOff`, `VoiceGet`: the voice-reply service in force afterwards.
    /// Added in protocol 7.
    Voice(VoiceSummary),
    /// `SpeechTest` worked. Added in protocol 7.
    SpeechTested(SpeechTestResult),
    /// `HouseholdBotSet`, `HouseholdBotRemove`, `HouseholdBotGet`: the household bot afterwards
    /// (`None`: there is none). Added in protocol 8.
    HouseholdBot { bot: Option<HouseholdBotSummary> },
    /// `HouseholdGroups`: every known group, oldest first. Added in protocol 8.
    Groups { groups: Vec<GroupSummary> },
    /// `HouseholdGroupDecide`: the group after the decision. Added in protocol 8.
    Group(GroupSummary),
}

/// The household's shared bot as the admin sees it. Never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HouseholdBotSummary {
    pub bot_username: String,
    pub bot: BotState,
    /// Admins who have sent /start to it in a private chat: where alerts and approvals may go.
    pub admin_chats: u32,
}

/// Whether the household bot may answer in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupState {
    /// Known (the bot was added, or heard a message there), not decided yet: silent.
    Pending,
    /// Answers members who mention it or reply to it.
    Allowed,
    /// Silent for good, whatever is written there.
    Refused,
}

impl GroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Allowed => "allowed",
            Self::Refused => "refused",
        }
    }

    /// The stored spelling back; anything unknown reads as pending (silent).
    pub fn parse(s: &str) -> Self {
        match s {
            "allowed" => Self::Allowed,
            "refused" => Self::Refused,
            _ => Self::Pending,
        }
    }
}

/// A group chat the household bot knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSummary {
    /// Telegram's chat id (negative for groups).
    pub chat_id: i64,
    pub title: String,
    pub state: GroupState,
    /// Whether the bot is in the group now, as Telegram last said.
    pub present: bool,
    /// RFC 3339: when the group became known.
    pub first_seen: String,
    /// RFC 3339: when the admin allowed or refused it.
    #[serde(default)]
    pub decided_at: Option<String>,
}

/// The text-to-speech service voice replies go to, and why that one. Never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoiceSummary {
    /// `Own`, `ChatProvider` (its address and key with `tts-1`), `Off` or `None`, as for
    /// speech recognition.
    pub source: SpeechSource,
    /// The API root (`None` when there is no service).
    pub base_url: Option<String>,
    pub model: Option<String>,
    pub voice: Option<String>,
}

/// Which way a speech service goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpeechDirection {
    /// Speech recognition: voice notes become text.
    In,
    /// Text to speech: voice replies.
    Out,
}

/// What a `SpeechTest` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpeechTestResult {
    pub direction: SpeechDirection,
    /// The model that was asked.
    pub model: String,
    pub latency_ms: u64,
    /// `In`: what the service heard in the sample (may be empty: the sample may be silence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heard: Option<String>,
    /// `Out`: how many bytes of audio the service answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_bytes: Option<u64>,
}

/// When a member's assistant answers in voice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoiceReplies {
    /// Always text.
    Never,
    /// A voice note is answered with a voice note (text as its caption); text with text.
    #[default]
    WhenSpoken,
    /// Every answer is a voice note.
    Always,
}

impl VoiceReplies {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Never => "never",
            Self::WhenSpoken => "when_spoken",
            Self::Always => "always",
        }
    }
}

impl std::str::FromStr for VoiceReplies {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "never" | "off" => Ok(Self::Never),
            "when_spoken" | "when_i_speak" => Ok(Self::WhenSpoken),
            "always" => Ok(Self::Always),
            other => Err(format!("{other:?} is not a voice-reply setting: use never, when-spoken or always")),
        }
    }
}

/// What an admin member is told over Telegram about the household's health (a bot that stopped
/// working, the provider failing, the disk nearly full, a failed backup, a restart after a power
/// cut, a cap reached). Stored per member as `members.alerts`; read only for admins. Added in
/// protocol 8.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertLevel {
    /// Every alert, and a "fixed" line when its condition clears.
    #[default]
    All,
    /// Only what needs the admin: a bot that stopped working, the provider down, the disk
    /// nearly full, a failed backup.
    Important,
    /// Nothing (cap questions still come: they need an answer).
    Off,
}

impl AlertLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Important => "important",
            Self::Off => "off",
        }
    }
}

impl std::str::FromStr for AlertLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "all" => Ok(Self::All),
            "important" => Ok(Self::Important),
            "off" | "none" => Ok(Self::Off),
            other => Err(format!("{other:?} is not an alert setting: use all, important or off")),
        }
    }
}

/// The speech-recognition service voice notes go to, and why that one. Never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpeechSummary {
    pub source: SpeechSource,
    /// The API root (`None` when there is no service).
    pub base_url: Option<String>,
    pub model: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpeechSource {
    /// Set by the admin with `SpeechSet`.
    Own,
    /// Nothing set: the chat provider is of kind openai, so its own address and key are used
    /// with the model `whisper-1`.
    ChatProvider,
    /// Turned off by the admin (`SpeechOff`).
    Off,
    /// Nothing set and the chat provider offers none (not set, or not of kind openai).
    None,
}

/// A finished backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupSummary {
    /// The new `hearth-backup-YYYYMMDD-HHMMSS` folder.
    pub path: String,
    /// Member directories it holds.
    pub members: u32,
    /// Total size of the files it holds, manifest excluded.
    pub bytes: u64,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Whether `secrets.json` (bot tokens, provider key) is in it.
    pub includes_secrets: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderTestResult {
    /// The model that answered, as the provider names it.
    pub model: String,
    /// The first 200 characters at most of the model's answer.
    pub reply: String,
    pub latency_ms: u64,
}

/// A model server found on this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalProvider {
    /// "Ollama" or "LM Studio".
    pub name: String,
    /// Its OpenAI-compatible API root, e.g. `http://127.0.0.1:11434/v1`: what `ProviderSet` takes
    /// (kind `openai`, no key).
    pub base_url: String,
    /// The models it has, as it names them (may be empty).
    pub models: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotIdentity {
    /// Without the `@`.
    pub bot_username: String,
    /// The bot's display name (its `first_name`).
    pub bot_name: String,
}

/// What the engine tells a subscriber (the app) as it happens; see `Gateway::subscribe`. Events
/// are hints to refresh, never the only record: a lagging subscriber loses some and then asks
/// for `Status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum GatewayEvent {
    /// Something a `Status` snapshot shows may have changed (a lane, a bot's state, a pairing,
    /// spend, members). Sent often while the household is busy, never while it is idle.
    Changed,
    /// A member's Telegram account was paired with their bot.
    Paired { member_id: String, name: String, telegram_name: String },
    /// A member's bot entered a state only the admin can fix (`TokenRevoked`, `UsedElsewhere`).
    /// Sent once on entering it, not while it lasts.
    BotTrouble { member_id: String, name: String, state: BotState },
    /// A member (`member_id`) or the household (`None`) reached a spending cap, once per cap
    /// and period. `period` is "day" or "month".
    CapReached { member_id: Option<String>, name: String, period: String },
    /// A member's folder grew past the household's disk quota: their assistant takes no new
    /// messages until it is smaller. Sent once each time the quota is passed.
    DiskQuotaReached { member_id: String, name: String, bytes: u64, quota_bytes: u64 },
}

/// `hearth doctor`: what isolation is really in force, and what to fix, in the manner of a
/// security audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoctorReport {
    /// The level the gateway runs workers at.
    pub isolation: IsolationLevel,
    /// What the kernel offers for the sandbox, in words.
    pub sandbox_support: String,
    pub members: Vec<MemberDoctor>,
    /// Findings about the gateway itself (data directory, secrets, database).
    pub findings: Vec<Finding>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberDoctor {
    pub id: String,
    pub name: String,
    /// The level in force for this member: of the running worker, else what the next one gets.
    pub isolation: IsolationLevel,
    /// The member's OS account, when they have one.
    pub account: Option<String>,
    pub uid: Option<u32>,
    pub worker_pid: Option<u32>,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub severity: Severity,
    /// What is wrong, in a sentence.
    pub what: String,
    /// What to do about it.
    pub fix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// One rate-card line. USD per million tokens, as providers publish them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceRow {
    pub model: String,
    pub input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
    pub cached_input_usd_per_mtok: f64,
    /// Tokens written into the provider's prompt cache (Anthropic's cache writes). Added in
    /// protocol 8; absent from an older gateway, read as 0.
    #[serde(default)]
    pub cache_write_usd_per_mtok: f64,
    /// "admin", or "default (as of 2025-10)".
    pub source: String,
    /// A speech-recognition model's price per minute of audio (its token prices are then 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd_per_minute: Option<f64>,
    /// The admin marked the model as unable to see images.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_vision: bool,
    /// A text-to-speech model's price per million characters of text (its token prices are
    /// then 0). Added in protocol 7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd_per_million_chars: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapsReport {
    /// `None` for the household.
    pub member: Option<String>,
    pub daily_usd: Option<f64>,
    pub monthly_usd: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageReport {
    /// `YYYY-MM`.
    pub month: String,
    pub timezone: String,
    pub members: Vec<MemberUsage>,
    pub total: UsageTotals,
    pub household_monthly_cap_usd: Option<f64>,
    /// Spend per day of the month (household), for charts: `(YYYY-MM-DD, USD)`.
    pub per_day: Vec<(String, f64)>,
    /// The household's totals today (only meaningful for the current month). Added in
    /// protocol 6.
    #[serde(default)]
    pub today_total: UsageTotals,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberUsage {
    pub id: String,
    pub name: String,
    pub totals: UsageTotals,
    /// Spent today (only meaningful for the current month).
    pub today_usd: f64,
    pub daily_cap_usd: Option<f64>,
    pub monthly_cap_usd: Option<f64>,
    /// Today's totals with the same split (only meaningful for the current month). Added in
    /// protocol 6.
    #[serde(default)]
    pub today: UsageTotals,
    /// Spend and messages per day, for the member's activity and the chart's per-member bars:
    /// every day of the report's month, and for the current month also the 30 days before
    /// today. Only days with spend or messages are listed, oldest first. Counts only, never
    /// content. Added in protocol 8.
    #[serde(default)]
    pub days: Vec<DayActivity>,
}

/// One member's day: what it cost and how many messages they sent. Added in protocol 8.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DayActivity {
    /// `YYYY-MM-DD` in the household's time zone.
    pub date: String,
    pub usd: f64,
    /// Messages the member sent (text, voice, photos, files; not button taps).
    pub messages: u64,
}

/// A period's spend. `calls`, the tokens and `cost_usd` count everything; the rest splits it
/// into chat (completions, with the images they showed) and speech (transcriptions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageTotals {
    pub calls: u64,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// Completions and what they cost (images included). Added in protocol 6.
    #[serde(default)]
    pub chat_calls: u64,
    #[serde(default)]
    pub chat_cost_usd: f64,
    /// Images the model was shown. Added in protocol 6.
    #[serde(default)]
    pub images: u64,
    /// Transcriptions, the audio they heard and what they cost. Added in protocol 6.
    #[serde(default)]
    pub speech_calls: u64,
    #[serde(default)]
    pub audio_seconds: u64,
    #[serde(default)]
    pub speech_cost_usd: f64,
    /// Voice replies (text to speech), the characters they spoke and what they cost. Added in
    /// protocol 7.
    #[serde(default)]
    pub voice_calls: u64,
    #[serde(default)]
    pub voice_chars: u64,
    #[serde(default)]
    pub voice_cost_usd: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ControlError {
    pub code: ErrorCode,
    pub message: String,
}

impl ControlError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// Codes a caller branches on. The CLI maps them to exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The input was wrong (bad name, malformed token, unknown provider kind).
    InvalidInput,
    /// The named member does not exist.
    NotFound,
    /// Something with that name exists already.
    Conflict,
    /// Telegram or the provider refused (e.g. `getMe` said the token is invalid).
    Rejected,
    /// Telegram or the provider could not be reached.
    Unreachable,
    /// The protocol versions differ.
    VersionMismatch,
    /// Anything else; the message says what.
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderSummary {
    pub kind: ProviderKind,
    pub base_url: String,
    pub model: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAdded {
    pub id: String,
    pub name: String,
    pub bot_username: String,
    pub pair_code: String,
    pub pair_link: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairCode {
    pub member_id: String,
    pub name: String,
    pub bot_username: String,
    pub pair_code: String,
    pub pair_link: String,
    /// RFC 3339.
    pub expires_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberSummary {
    pub id: String,
    pub name: String,
    pub bot_username: String,
    pub paired: bool,
    /// RFC 3339.
    pub created_at: String,
    pub role: Role,
    pub paused: bool,
    /// RFC 3339: when a timed pause ends by itself; `None` while paused: until resumed.
    /// Added in protocol 8.
    #[serde(default)]
    pub paused_until: Option<String>,
    /// The admin's notes on how to help this member; may be empty.
    pub persona: String,
    /// The member's own model; `None`: the household provider's model.
    pub model: Option<String>,
    /// The cheaper model used at a cap instead of refusing.
    pub fallback_model: Option<String>,
    /// Asked over Telegram when someone reaches a cap; may use `/family`.
    pub is_admin: bool,
    pub daily_cap_usd: Option<f64>,
    pub monthly_cap_usd: Option<f64>,
    /// When the assistant rests (local time); `None`: never.
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
    /// When the assistant answers in voice. Added in protocol 7.
    #[serde(default)]
    pub voice_replies: VoiceReplies,
    /// Replies shown as they are written (drafts in the private chat). Added in protocol 7;
    /// on when an older gateway does not say.
    #[serde(default = "streaming_by_default")]
    pub streaming: bool,
    /// What the member is told over Telegram about the household's health while an admin.
    /// Added in protocol 8.
    #[serde(default)]
    pub alerts: AlertLevel,
}

fn streaming_by_default() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    pub version: String,
    pub data_dir: String,
    pub uptime_secs: u64,
    pub provider: Option<ProviderSummary>,
    pub members: Vec<MemberStatus>,
    pub turns_in_flight: u32,
    pub turn_cap: u32,
    pub worker_processes: u32,
    pub isolation: IsolationLevel,
    /// Speech recognition in force (voice notes). Added in protocol 7.
    #[serde(default)]
    pub speech: Option<SpeechSummary>,
    /// Voice replies in force. Added in protocol 7.
    #[serde(default)]
    pub voice: Option<VoiceSummary>,
    /// Provider calls open now and the bound on them. Added in protocol 8.
    #[serde(default)]
    pub provider_connections: Option<ProviderConnections>,
    /// The household bot, if one is set. Added in protocol 8.
    #[serde(default)]
    pub household_bot: Option<HouseholdBotSummary>,
}

/// Provider calls open at once across the household, against the admin's bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderConnections {
    /// Calls open now (above `max` for a while after the bound was lowered: none is cut off).
    pub open: u32,
    pub max: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    pub id: String,
    pub name: String,
    pub bot_username: String,
    pub bot: BotState,
    pub paired: bool,
    pub lane: LaneState,
    /// The member's worker process, while one runs.
    pub worker_pid: Option<u32>,
    /// The isolation level of the running worker, or the level the next one will get.
    pub isolation: IsolationLevel,
    pub today: DayUsage,
    pub role: Role,
    pub paused: bool,
    /// RFC 3339: when a timed pause ends by itself; `None` while paused: until resumed.
    /// Added in protocol 8.
    #[serde(default)]
    pub paused_until: Option<String>,
    /// RFC 3339: when the gateway last received a message from the member (never its text).
    pub last_activity: Option<String>,
    /// When the assistant rests (local time); `None`: never.
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
    /// How much disk the member's folder took when last measured; `None`: not measured yet.
    #[serde(default)]
    pub disk: Option<DiskUsage>,
}

/// A member's folder on disk against the household's quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskUsage {
    pub bytes: u64,
    /// `None`: no quota.
    pub quota_bytes: Option<u64>,
}

impl DiskUsage {
    pub fn over(&self) -> bool {
        self.quota_bytes.is_some_and(|q| self.bytes > q)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayUsage {
    pub calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// What today's calls cost, in micro-USD.
    pub cost_micros: u64,
}

/// The health of one member's bot connection, as the admin should read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum BotState {
    /// Not polling yet (just added, or the gateway is starting).
    Starting,
    /// Long-polling normally.
    Polling,
    /// Telegram said the token is invalid (revoked in BotFather or mistyped). Needs a new token.
    TokenRevoked,
    /// Another program is polling with the same token (Telegram 409). Hearth keeps retrying.
    UsedElsewhere,
    /// Telegram asked us to slow down; polling resumes by itself.
    RateLimited { retry_after_secs: u64 },
    /// Telegram could not be reached or answered with an error; retrying with backoff.
    Unreachable { error: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum LaneState {
    Idle,
    /// Messages are waiting for a turn slot.
    Queued { messages: u32 },
    /// A turn is running; `queued` more messages arrived meanwhile; `doing` what it does now.
    Running {
        secs: u64,
        queued: u32,
        #[serde(default, skip_serializing_if = "TurnActivity::is_thinking")]
        doing: TurnActivity,
    },
}

/// What a running turn is doing, for the dashboard (never what it is about).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnActivity {
    /// Asking the member's assistant (the model, its tools).
    #[default]
    Thinking,
    /// Fetching and transcribing a voice note.
    Listening,
    /// A turn that shows the model photos.
    Looking,
    /// Speaking the answer for a voice reply. Added in protocol 7.
    Speaking,
    /// The answer is being written and shown in the chat as a draft. Added in protocol 7.
    Writing,
}

impl TurnActivity {
    pub fn is_thinking(&self) -> bool {
        *self == TurnActivity::Thinking
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TurnActivity::Thinking => "thinking",
            TurnActivity::Listening => "listening",
            TurnActivity::Looking => "looking",
            TurnActivity::Speaking => "speaking",
            TurnActivity::Writing => "writing",
        }
    }
}

/// How strongly a member's worker is separated from everyone else's. See DESIGN.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IsolationLevel {
    /// Own process and 0700 directory, same OS user as the gateway. Development only.
    Process,
    /// Own OS account.
    Account,
    /// Own OS account plus a kernel sandbox.
    AccountSandbox,
}

impl IsolationLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Process => "process",
            Self::Account => "account",
            Self::AccountSandbox => "account + sandbox",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_secrets() {
        let add = ControlRequest::MemberAdd { name: "Ana".into(), bot_token: "123:SECRET".into(), role: Role::Child };
        let set = ControlRequest::ProviderSet {
            kind: ProviderKind::Openai,
            base_url: "http://x".into(),
            model: "m".into(),
            api_key: "sk-SECRET".into(),
        };
        let test = ControlRequest::ProviderTest {
            kind: ProviderKind::Openai,
            base_url: "http://x".into(),
            model: "m".into(),
            api_key: "sk-SECRET".into(),
        };
        let check = ControlRequest::BotCheck { bot_token: "123:SECRET".into() };
        let token = ControlRequest::MemberToken { member: "Ana".into(), bot_token: "123:SECRET".into() };
        let speech = ControlRequest::SpeechSet { base_url: "http://x".into(), model: "m".into(), api_key: "sk-SECRET".into() };
        let voice = ControlRequest::VoiceSet {
            base_url: "http://x".into(),
            model: "tts-1".into(),
            voice: "alloy".into(),
            api_key: "sk-SECRET".into(),
        };
        let household = ControlRequest::HouseholdBotSet { bot_token: "123:SECRET".into() };
        for r in [add, set, test, check, token, speech, voice, household] {
            let s = format!("{r:?}");
            assert!(!s.contains("SECRET"), "{s}");
            assert!(s.contains("redacted"), "{s}");
        }
    }

    /// Requests written before roles, pausing and partial updates existed still read, and the
    /// new shapes are what the app will send.
    #[test]
    fn wire_shapes() {
        let old: ControlRequest =
            serde_json::from_str(r#"{"type":"member_add","name":"Ana","bot_token":"1:x"}"#).unwrap();
        assert_eq!(old, ControlRequest::MemberAdd { name: "Ana".into(), bot_token: "1:x".into(), role: Role::Adult });
        let update: ControlRequest =
            serde_json::from_str(r#"{"type":"member_update","member":"Ana","model":{"type":"set","model":"m"}}"#)
                .unwrap();
        assert_eq!(
            update,
            ControlRequest::MemberUpdate {
                member: "Ana".into(),
                role: None,
                persona: None,
                model: Some(ModelChange::Set { model: "m".into() })
            }
        );
        let all: ControlRequest = serde_json::from_str(r#"{"type":"member_pause","paused":true}"#).unwrap();
        assert_eq!(all, ControlRequest::MemberPause { member: None, paused: true, until: None });
        let teen = ControlRequest::MemberAdd { name: "Bo".into(), bot_token: "t".into(), role: Role::Teen };
        assert_eq!(serde_json::to_value(teen).unwrap()["role"], "teen");
        let state = BotState::TokenRevoked;
        let event = GatewayEvent::BotTrouble { member_id: "a".into(), name: "Ana".into(), state };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({"type": "bot_trouble", "member_id": "a", "name": "Ana",
                               "state": {"state": "token_revoked"}})
        );
        assert_eq!(serde_json::to_value(GatewayEvent::Changed).unwrap(), serde_json::json!({"type": "changed"}));
        assert_eq!("Child".parse::<Role>(), Ok(Role::Child));
        assert!("baby".parse::<Role>().unwrap_err().contains("adult, teen or child"));
    }

    /// A usage report and a price row from before the media split still read (the split is
    /// zero), and the speech requests have the shapes the app will send.
    #[test]
    fn media_wire_shapes() {
        let totals: UsageTotals = serde_json::from_str(
            r#"{"calls":2,"input_tokens":5,"cached_input_tokens":0,"output_tokens":3,"cost_usd":0.5}"#,
        )
        .unwrap();
        assert_eq!((totals.calls, totals.speech_calls, totals.images), (2, 0, 0));
        let row: PriceRow = serde_json::from_str(
            r#"{"model":"m","input_usd_per_mtok":1.0,"output_usd_per_mtok":2.0,"cached_input_usd_per_mtok":1.0,"source":"admin"}"#,
        )
        .unwrap();
        assert_eq!((row.usd_per_minute, row.no_vision), (None, false));
        let json = serde_json::to_value(&row).unwrap();
        assert!(json.get("usd_per_minute").is_none() && json.get("no_vision").is_none(), "{json}");
        assert_eq!(serde_json::to_value(ControlRequest::SpeechOff).unwrap(), serde_json::json!({"type": "speech_off"}));
        let set: ControlRequest =
            serde_json::from_str(r#"{"type":"speech_set","base_url":"http://x","model":"whisper-1","api_key":""}"#).unwrap();
        assert_eq!(set, ControlRequest::SpeechSet { base_url: "http://x".into(), model: "whisper-1".into(), api_key: String::new() });
        let summary = SpeechSummary { source: SpeechSource::ChatProvider, base_url: Some("u".into()), model: Some("whisper-1".into()) };
        assert_eq!(
            serde_json::to_value(ControlReply::Speech(summary)).unwrap(),
            serde_json::json!({"type": "speech", "source": "chat_provider", "base_url": "u", "model": "whisper-1"})
        );
    }

    #[test]
    fn quiet_hours_parse_print_and_wrap() {
        let q: QuietHours = "20:30-07:00".parse().unwrap();
        assert_eq!((q.start, q.end), (20 * 60 + 30, 7 * 60));
        assert_eq!(q.to_string(), "20:30-07:00");
        assert_eq!(q.end_text(), "07:00");
        assert_eq!("8:05 – 9:00".parse::<QuietHours>().unwrap().to_string(), "08:05-09:00");
        // Wraps midnight: 20:30 up to (not including) 07:00.
        for (minute, quiet) in [(20 * 60 + 29, false), (20 * 60 + 30, true), (0, true), (6 * 60 + 59, true), (7 * 60, false)] {
            assert_eq!(q.contains(minute), quiet, "{minute}");
        }
        let day: QuietHours = "13:00-15:00".parse().unwrap();
        assert!(day.contains(13 * 60) && day.contains(14 * 60 + 59) && !day.contains(15 * 60) && !day.contains(0));
        for bad in ["", "20:00", "25:00-07:00", "20:60-07:00", "20:00-20:00", "8pm-7am", "20:000-07:00"] {
            assert!(bad.parse::<QuietHours>().is_err(), "{bad}");
        }
        let request = ControlRequest::MemberQuietHours { member: "Mia".into(), quiet_hours: Some(q) };
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(json["quiet_hours"], "20:30-07:00");
        assert_eq!(serde_json::from_value::<ControlRequest>(json).unwrap(), request);
        let off: ControlRequest = serde_json::from_str(r#"{"type":"member_quiet_hours","member":"Mia"}"#).unwrap();
        assert_eq!(off, ControlRequest::MemberQuietHours { member: "Mia".into(), quiet_hours: None });
        assert!(serde_json::from_str::<QuietHours>(r#""07:00-07:00""#).is_err());
    }

    /// The voice-reply requests have the shapes the app sends, and a member from before protocol
    /// 7 reads as "when spoken".
    #[test]
    fn voice_shapes_and_defaults() {
        let member: ControlRequest =
            serde_json::from_str(r#"{"type":"member_voice","member":"Sam","voice_replies":"always"}"#).unwrap();
        assert_eq!(member, ControlRequest::MemberVoice { member: "Sam".into(), voice_replies: VoiceReplies::Always });
        let test: ControlRequest = serde_json::from_str(r#"{"type":"speech_test","direction":"out"}"#).unwrap();
        assert_eq!(test, ControlRequest::SpeechTest { direction: SpeechDirection::Out });
        for (text, want) in [
            ("never", VoiceReplies::Never),
            ("when-spoken", VoiceReplies::WhenSpoken),
            ("When_I_Speak", VoiceReplies::WhenSpoken),
            ("always", VoiceReplies::Always),
        ] {
            assert_eq!(text.parse::<VoiceReplies>().unwrap(), want);
            assert_eq!(want.as_str().parse::<VoiceReplies>().unwrap(), want);
        }
        assert!("loud".parse::<VoiceReplies>().unwrap_err().contains("never, when-spoken or always"));
        let old = serde_json::json!({
            "id": "a", "name": "A", "bot_username": "a_bot", "paired": true, "created_at": "2026-01-01T00:00:00Z",
            "role": "adult", "paused": false, "persona": "", "model": null, "fallback_model": null,
            "is_admin": false, "daily_cap_usd": null, "monthly_cap_usd": null
        });
        let old: MemberSummary = serde_json::from_value(old).unwrap();
        assert_eq!(old.voice_replies, VoiceReplies::WhenSpoken);
        // And sees replies as they are written.
        assert!(old.streaming);
        let member: ControlRequest =
            serde_json::from_str(r#"{"type":"member_streaming","member":"Sam","streaming":false}"#).unwrap();
        assert_eq!(member, ControlRequest::MemberStreaming { member: "Sam".into(), streaming: false });
    }

    /// The alert and heartbeat requests have the shapes the CLI sends; a member from before
    /// protocol 8 reads as "all"; the heartbeat's URL never reaches `{:?}`.
    #[test]
    fn alert_and_heartbeat_shapes() {
        let alerts: ControlRequest =
            serde_json::from_str(r#"{"type":"member_alerts","member":"Ana","alerts":"important"}"#).unwrap();
        assert_eq!(alerts, ControlRequest::MemberAlerts { member: "Ana".into(), alerts: AlertLevel::Important });
        let off: ControlRequest = serde_json::from_str(r#"{"type":"household_heartbeat"}"#).unwrap();
        assert_eq!(off, ControlRequest::HouseholdHeartbeat { url: None, every_minutes: 0 });
        let on = ControlRequest::HouseholdHeartbeat { url: Some("https://hc-ping.com/SECRET-UUID".into()), every_minutes: 5 };
        let shown = format!("{on:?}");
        assert!(!shown.contains("SECRET") && shown.contains("redacted"), "{shown}");
        let old = serde_json::json!({
            "id": "a", "name": "A", "bot_username": "a_bot", "paired": true, "created_at": "2026-01-01T00:00:00Z",
            "role": "adult", "paused": false, "persona": "", "model": null, "fallback_model": null,
            "is_admin": true, "daily_cap_usd": null, "monthly_cap_usd": null
        });
        assert_eq!(serde_json::from_value::<MemberSummary>(old).unwrap().alerts, AlertLevel::All);
        for level in [AlertLevel::All, AlertLevel::Important, AlertLevel::Off] {
            assert_eq!(level.as_str().parse::<AlertLevel>().unwrap(), level);
        }
    }
}