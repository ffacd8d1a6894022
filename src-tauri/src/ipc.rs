//! The IPC boundary: every type the window sends or receives. Engine types are not `Serialize`
//! for the UI's sake; these DTOs are, and `bindings` generates them into
//! `ui/src/lib/ipc.gen.ts` (a test fails when the committed file is stale).
//!
//! Money crosses as US dollars (`f64`), times as RFC 3339 strings, and no count is a `u64` so
//! that TypeScript sees plain numbers.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// The one error shape across IPC. A person reads `message`: what happened and what to do.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct IpcError {
    pub code: ErrorCode,
    pub message: String,
}

/// Only the codes the UI branches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidInput,
    NotFound,
    Conflict,
    /// Telegram or the provider said no (a revoked token, a wrong key).
    Rejected,
    /// Telegram or the provider could not be reached.
    Unreachable,
    /// The gateway is not running (another program serves this data folder, or it failed to
    /// start); `AppInfo.problem` says why.
    NotServing,
    Internal,
}

/// What the app is doing, for the first screen the window shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Serving, but the admin has not finished the setup wizard.
    Setup,
    /// Serving the household.
    Serving,
    /// Running the demo household on fakes, in a throwaway folder.
    Demo,
    /// The gateway is not running; `AppInfo.problem` says why and what to do.
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct AppInfo {
    pub phase: Phase,
    pub version: String,
    pub data_dir: String,
    /// Why the gateway is not running, in words, when `phase` is `stopped`.
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Adult,
    Teen,
    Child,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Openai,
    Anthropic,
}

/// The overall state the menu-bar icon shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Fine,
    Attention,
    Broken,
}

/// Everything the dashboard and the tray show, in one value. Sent as the `snapshot` event
/// (throttled) and returned by the `snapshot` command. No message content, ever.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct Snapshot {
    pub phase: Phase,
    pub health: Health,
    /// What needs the admin, the worst first (the dashboard's headline); empty when all is fine.
    pub problems: Vec<Problem>,
    pub provider: Option<ProviderDto>,
    pub members: Vec<MemberCard>,
    pub household: HouseholdSpend,
    pub turns_in_flight: u32,
    pub turn_cap: u32,
    /// "process", "account" or "account + sandbox".
    pub isolation: String,
    pub host: Option<HostLoad>,
    /// Every member is paused (and there is at least one).
    pub all_paused: bool,
    /// RFC 3339: when this app saw every member become paused; `None` when it did not see it
    /// happen (they were already paused when it started) or someone is not paused.
    pub paused_since: Option<String>,
    pub uptime_secs: u32,
}

/// One thing that needs the admin.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct Problem {
    /// How bad: `broken` (someone gets no answers) or `attention`.
    pub health: Health,
    /// One sentence a family admin reads: what is wrong and what to do.
    pub text: String,
    /// The one action that fixes it, when the window has one.
    pub fix: Option<Fix>,
    /// The member it is about, for `open_member`.
    pub member_id: Option<String>,
}

/// The action that fixes a problem, as a button on the dashboard or a tray item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Fix {
    /// Resume every assistant.
    ResumeAll,
    /// Open the member's page (a new token, pairing, their limits).
    OpenMember,
    /// Open Settings (the AI provider, the household budget).
    OpenSettings,
    /// Register and allow the Hearth supervisor (macOS), which gives each member an account.
    AllowSupervisor,
    /// Restart Hearth so an allowed supervisor takes effect.
    Restart,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct ProviderDto {
    pub kind: ProviderKind,
    pub base_url: String,
    pub model: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct MemberCard {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub bot_username: String,
    pub bot: BotHealth,
    pub paired: bool,
    pub paused: bool,
    pub lane: Lane,
    /// RFC 3339; when the member last wrote to their bot.
    pub last_activity: Option<String>,
    pub today_usd: f64,
    /// Model calls today (each answer is at least one).
    pub today_calls: u32,
    pub month_usd: f64,
    pub daily_cap_usd: Option<f64>,
    pub monthly_cap_usd: Option<f64>,
    pub isolation: String,
    /// `"07:00"`: the assistant rests now (quiet hours, on the household's clock) until then.
    pub resting_until: Option<String>,
    /// What the member's assistant is doing, in one sentence ("Answering · 2 waiting").
    pub status: MemberStatus,
    /// Spend and messages per day (household's calendar): this month and the 30 days before
    /// today, only days with either, oldest first. Counts, never content.
    pub days: Vec<MemberDay>,
}

/// One member's day on their activity chart.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct MemberDay {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub usd: f64,
    pub messages: u32,
}

/// One member's state in one sentence, the most important first: a dead bot, not connected,
/// paused, a limit hit, answering, resting, waiting, ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct MemberStatus {
    pub text: String,
    pub tone: Tone,
}

/// How something reads: fine, going on, needs a look, broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Tone {
    Good,
    Info,
    Warn,
    Bad,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum BotHealthState {
    Starting,
    Polling,
    TokenRevoked,
    UsedElsewhere,
    RateLimited,
    Unreachable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct BotHealth {
    pub state: BotHealthState,
    /// The state in a few plain words, e.g. "Token revoked — paste a new one".
    pub label: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum LaneState {
    Idle,
    Queued,
    Thinking,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct Lane {
    pub state: LaneState,
    /// Messages waiting.
    pub queued: u32,
    /// How long the current turn has run.
    pub secs: u32,
    /// What the running turn does now (`thinking` when no turn runs): never what it is about.
    pub doing: TurnActivity,
}

/// What a running turn is doing, so a lane can say "Listening…" rather than "Thinking".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum TurnActivity {
    /// Asking the assistant (the model, its tools).
    Thinking,
    /// Fetching and transcribing a voice note.
    Listening,
    /// Showing the model photos.
    Looking,
    /// Recording a voice reply.
    Speaking,
    /// Writing the answer, which the member sees appear in Telegram as it is written.
    Writing,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct HouseholdSpend {
    pub today_usd: f64,
    pub month_usd: f64,
    pub monthly_cap_usd: Option<f64>,
    /// Every day of this month so far, oldest first.
    pub per_day: Vec<DaySpend>,
    /// `YYYY-MM`: the month `per_day` and `month_usd` are about.
    pub month: String,
    pub timezone: String,
    /// This month's spend by kind.
    pub month_split: SpendSplit,
}

/// A period's spend by kind: chat (photos included), voice notes heard, voice replies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, TS)]
pub struct SpendSplit {
    pub chat_usd: f64,
    /// Photos shown to the model (their cost is in `chat_usd`).
    pub images: u32,
    pub heard_usd: f64,
    /// Voice notes transcribed.
    pub heard_notes: u32,
    pub heard_minutes: f64,
    pub replies_usd: f64,
    /// Voice replies spoken.
    pub replies: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct DaySpend {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub usd: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct HostLoad {
    pub cpu_pct: f64,
    pub memory_pct: f64,
    /// Of the disk holding the data folder.
    pub disk_pct: f64,
}

/// A native notification, also shown in the window.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct Notice {
    pub kind: NoticeKind,
    pub title: String,
    pub body: String,
    pub member_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    Paired,
    BotTrouble,
    CapReached,
    // A member's folder passed the household's disk quota.
    DiskFull,
}

/// Which page the window opens on when a tray row is clicked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct Navigate {
    pub view: View,
    /// The member, for `member`.
    pub member_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum View {
    Dashboard,
    Member,
    Settings,
}

// ----- arguments and replies of commands -----

#[derive(Debug, Clone, Deserialize, TS)]
#[ts(optional_fields)]
pub struct ProviderArgs {
    pub kind: ProviderKind,
    pub base_url: String,
    pub model: String,
    pub api_key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct ProviderTestDto {
    pub model: String,
    /// The first words of the model's answer.
    pub reply: String,
    pub latency_ms: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct LocalProviderDto {
    /// "Ollama" or "LM Studio".
    pub name: String,
    pub base_url: String,
    pub models: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, TS)]
#[ts(optional_fields)]
pub struct HouseholdArgs {
    /// `None` removes the cap.
    pub monthly_cap_usd: Option<f64>,
    /// IANA zone; `None` keeps the current one.
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, Deserialize, TS)]
#[ts(optional_fields)]
pub struct TokenArgs {
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct BotIdentityDto {
    pub bot_username: String,
    pub bot_name: String,
}

#[derive(Debug, Clone, Deserialize, TS)]
#[ts(optional_fields)]
pub struct MemberAddArgs {
    pub name: String,
    pub role: Role,
    pub token: String,
    /// Make the new member the household's admin: asked about spending limits, told about
    /// problems (the wizard's "Is this you?"). `None`: not an admin.
    pub admin: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, TS)]
#[ts(optional_fields)]
pub struct MemberRef {
    /// A member's id (or name).
    pub member: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct PairingDto {
    pub member_id: String,
    pub name: String,
    pub bot_username: String,
    pub code: String,
    /// `https://t.me/<bot>?start=<code>`: opening it on the member's phone pairs them.
    pub link: String,
    /// The link as a QR code, an SVG document.
    pub qr_svg: String,
    /// RFC 3339.
    pub expires_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct MemberDetail {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub bot_username: String,
    pub paired: bool,
    pub paused: bool,
    pub is_admin: bool,
    pub persona: String,
    /// `None`: the household's model.
    pub model: Option<String>,
    pub fallback_model: Option<String>,
    pub daily_cap_usd: Option<f64>,
    pub monthly_cap_usd: Option<f64>,
    /// `"20:00-07:00"` in the household's time zone: the assistant rests then. `None`: always on.
    pub quiet_hours: Option<String>,
    /// When the assistant answers with a voice note.
    pub voice_replies: VoiceReplies,
    /// The member sees the answer appear in Telegram while it is written (a live draft), rather
    /// than only when it is finished.
    pub streaming: bool,
    /// RFC 3339.
    pub created_at: String,
}

/// When a member's assistant answers in voice (a voice note with the text as its caption).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum VoiceReplies {
    Never,
    /// Voice notes are answered with a voice note, text with text.
    WhenSpoken,
    Always,
}

#[derive(Debug, Clone, Deserialize, TS)]
#[ts(optional_fields)]
pub struct MemberVoiceArgs {
    pub member: String,
    pub voice_replies: VoiceReplies,
}

#[derive(Debug, Clone, Deserialize, TS)]
#[ts(optional_fields)]
pub struct MemberStreamingArgs {
    pub member: String,
    /// Show replies as they are written (on), or only when finished (off).
    pub streaming: bool,
}

#[derive(Debug, Clone, Deserialize, TS)]
#[ts(optional_fields)]
pub struct MemberUpdateArgs {
    pub member: String,
    pub role: Option<Role>,
    pub persona: Option<String>,
    /// `Some(None)` is not expressible in JSON; an empty string means "the household's model".
    pub model: Option<String>,
    pub is_admin: Option<bool>,
    /// `"HH:MM-HH:MM"`; an empty string turns quiet hours off.
    pub quiet_hours: Option<String>,
}

#[derive(Debug, Clone, Deserialize, TS)]
#[ts(optional_fields)]
pub struct MemberCapsArgs {
    pub member: String,
    /// `None` removes the cap.
    pub daily_usd: Option<f64>,
    pub monthly_usd: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, TS)]
#[ts(optional_fields)]
pub struct PauseArgs {
    /// `None`: every member.
    pub member: Option<String>,
    pub paused: bool,
}

#[derive(Debug, Clone, Deserialize, TS)]
#[ts(optional_fields)]
pub struct MemberTokenArgs {
    pub member: String,
    pub token: String,
}

#[derive(Debug, Clone, Deserialize, TS)]
#[ts(optional_fields)]
pub struct MemberExportArgs {
    pub member: String,
    /// An existing folder; `None`: the admin's Documents (or home) folder.
    pub dest_dir: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct ExportDto {
    /// The folder the export was written to.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct PriceDto {
    pub model: String,
    pub input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
    pub cached_input_usd_per_mtok: f64,
    /// "admin" or "default (as of …)".
    pub source: String,
    /// A speech-recognition model's price per minute of audio (its token prices are 0).
    pub usd_per_minute: Option<f64>,
    /// A text-to-speech model's price per million characters (its token prices are 0).
    pub usd_per_million_chars: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, TS)]
#[ts(optional_fields)]
pub struct PriceArgs {
    pub model: String,
    pub input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
    pub cached_input_usd_per_mtok: Option<f64>,
}

/// The price of a speech model: per minute of audio heard (`in`) or per million characters
/// spoken (`out`).
#[derive(Debug, Clone, Deserialize, TS)]
#[ts(optional_fields)]
pub struct SpeechPriceArgs {
    pub model: String,
    pub direction: SpeechDirection,
    pub usd: f64,
}

/// Which way a speech service goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum SpeechDirection {
    /// Hearing voice notes (speech to text).
    In,
    /// Answering in voice (text to speech).
    Out,
}

/// Where a speech service in force comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum SpeechSource {
    /// The admin set one.
    Own,
    /// The chat provider's own (it is OpenAI-compatible), with its key.
    ChatProvider,
    /// The admin turned it off.
    Off,
    /// Nothing set, and the chat provider offers none.
    None,
}

/// One direction's speech service as the Settings screen shows it. Never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct SpeechServiceDto {
    pub direction: SpeechDirection,
    pub source: SpeechSource,
    pub base_url: Option<String>,
    pub model: Option<String>,
    /// The voice name (`out` only).
    pub voice: Option<String>,
}

/// Both directions: hearing voice notes and answering in voice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct VoiceSettingsDto {
    pub hearing: SpeechServiceDto,
    pub speaking: SpeechServiceDto,
}

#[derive(Debug, Clone, Deserialize, TS)]
#[ts(optional_fields)]
pub struct SpeechServiceArgs {
    pub direction: SpeechDirection,
    pub base_url: String,
    pub model: String,
    /// The voice name (`out`; empty or `None`: the service's default), ignored for `in`.
    pub voice: Option<String>,
    /// May be empty (a local server needs none). Never sent back.
    pub api_key: String,
}

#[derive(Debug, Clone, Deserialize, TS)]
#[ts(optional_fields)]
pub struct SpeechDirectionArgs {
    pub direction: SpeechDirection,
}

/// What a speech test found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct SpeechTestDto {
    pub direction: SpeechDirection,
    pub model: String,
    pub latency_ms: u32,
    /// `in`: what the service heard in the test sample (may be empty).
    pub heard: Option<String>,
    /// `out`: how much audio the service answered, in bytes.
    pub audio_bytes: Option<u32>,
}

/// The Settings screen.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct SettingsDto {
    pub data_dir: String,
    pub launch_at_login: bool,
    pub keep_awake: KeepAwakeDto,
    /// Whether the computer turns itself on again after a power cut.
    pub power_restart: PowerRestartDto,
    pub turn_cap: u32,
    pub timezone: String,
    pub provider: Option<ProviderDto>,
    pub backup: BackupStatusDto,
    /// Which appliance steps the screen shows (power, sleep, login, the supervisor).
    pub platform: Platform,
    /// The supervisor's LaunchDaemon, on macOS; `None` where the app registers none.
    pub daemon: Option<DaemonDto>,
}

/// Where the Hearth supervisor (the root helper that gives each member an OS account) stands
/// with macOS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct DaemonDto {
    pub state: DaemonState,
    /// What that means for the admin, in a sentence.
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum DaemonState {
    NotRegistered,
    /// Registered, waiting for the admin in System Settings → General → Login Items.
    RequiresApproval,
    Enabled,
    /// The app bundle lacks the daemon's plist.
    NotFound,
}

impl From<hearth_isolation::macos_daemon::DaemonStatus> for DaemonDto {
    fn from(status: hearth_isolation::macos_daemon::DaemonStatus) -> Self {
        use hearth_isolation::macos_daemon::DaemonStatus as S;
        let state = match status {
            S::NotRegistered => DaemonState::NotRegistered,
            S::RequiresApproval => DaemonState::RequiresApproval,
            S::Enabled => DaemonState::Enabled,
            S::NotFound => DaemonState::NotFound,
        };
        DaemonDto { state, text: status.describe().to_owned() }
    }
}

/// The operating system the app runs on, as far as the Settings screen cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Macos,
    Linux,
    Other,
}

impl Platform {
    /// The platform this binary was built for.
    pub const fn current() -> Self {
        if cfg!(target_os = "macos") {
            Self::Macos
        } else if cfg!(target_os = "linux") {
            Self::Linux
        } else {
            Self::Other
        }
    }
}

/// Backups of the household, as Settings shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct BackupStatusDto {
    /// Where scheduled backups go; `None` when they are off.
    pub dest_dir: Option<String>,
    /// Every how many hours; 0 when off.
    pub every_hours: u32,
    /// RFC 3339: the newest complete backup in the scheduled (or suggested) folder.
    pub last: Option<String>,
    /// A folder to suggest: beside the data folder (better: an external disk or a synced folder).
    pub suggested_dir: String,
}

#[derive(Debug, Clone, Deserialize, TS)]
#[ts(optional_fields)]
pub struct BackupNowArgs {
    /// An existing (or creatable) folder; `None`: the scheduled folder, else the suggested one.
    pub dest_dir: Option<String>,
}

#[derive(Debug, Clone, Deserialize, TS)]
#[ts(optional_fields)]
pub struct BackupScheduleArgs {
    /// `None` turns scheduled backups off.
    pub dest_dir: Option<String>,
    pub every_hours: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct BackupDto {
    /// The new backup's folder.
    pub path: String,
    pub members: u32,
    /// Its size, in megabytes, rounded up.
    pub megabytes: u32,
}

/// Restart after a power failure, as far as the app can read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct PowerRestartDto {
    /// `None`: the app cannot read it here (Linux: it is a firmware setting).
    pub on: Option<bool>,
    /// What it means or how to set it, in words.
    pub detail: String,
    /// The command that turns it on, to paste into Terminal, where there is one.
    pub command: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct KeepAwakeDto {
    /// The admin wants it (stored in the app's settings).
    pub enabled: bool,
    /// The machine is being kept awake right now (the power assertion is held).
    pub holding: bool,
    /// Whether this machine can be kept awake by Hearth.
    pub available: bool,
    /// Why not, or how, in words.
    pub detail: String,
}

#[derive(Debug, Clone, Deserialize, TS)]
#[ts(optional_fields)]
pub struct SettingsArgs {
    pub launch_at_login: Option<bool>,
    pub keep_awake: Option<bool>,
    pub turn_cap: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_isolation::macos_daemon::DaemonStatus;

    #[test]
    fn every_daemon_status_reaches_the_window_with_its_sentence() {
        for (status, state) in [
            (DaemonStatus::NotRegistered, DaemonState::NotRegistered),
            (DaemonStatus::RequiresApproval, DaemonState::RequiresApproval),
            (DaemonStatus::Enabled, DaemonState::Enabled),
            (DaemonStatus::NotFound, DaemonState::NotFound),
        ] {
            let dto = DaemonDto::from(status);
            assert_eq!((dto.state, dto.text.as_str()), (state, status.describe()));
        }
        assert!(DaemonDto::from(DaemonStatus::RequiresApproval).text.contains("Login Items"));
    }
}
