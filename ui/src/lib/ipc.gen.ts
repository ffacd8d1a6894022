// Generated from src-tauri/src/ipc.rs and the command table in src-tauri/src/commands.rs.
// Do not edit: run `HEARTH_UPDATE_BINDINGS=1 cargo test -p hearth-app bindings`.

import { invoke } from "@tauri-apps/api/core";

export type IpcError = { code: ErrorCode, message: string, };

export type ErrorCode = "invalid_input" | "not_found" | "conflict" | "rejected" | "unreachable" | "not_serving" | "internal";

export type Phase = "setup" | "serving" | "demo" | "stopped";

export type AppInfo = { phase: Phase, version: string, data_dir: string, 
/**
 * Why the gateway is not running, in words, when `phase` is `stopped`.
 */
problem: string | null, };

export type Role = "adult" | "teen" | "child";

export type ProviderKind = "openai" | "anthropic";

export type Health = "fine" | "attention" | "broken";

export type Snapshot = { phase: Phase, health: Health, 
/**
 * What needs the admin, the worst first (the dashboard's headline); empty when all is fine.
 */
problems: Array<Problem>, provider: ProviderDto | null, members: Array<MemberCard>, household: HouseholdSpend, turns_in_flight: number, turn_cap: number, 
/**
 * "process", "account" or "account + sandbox".
 */
isolation: string, host: HostLoad | null, 
/**
 * Every member is paused (and there is at least one).
 */
all_paused: boolean, 
/**
 * RFC 3339: when this app saw every member become paused; `None` when it did not see it
 * happen (they were already paused when it started) or someone is not paused.
 */
paused_since: string | null, uptime_secs: number, };

export type Problem = { 
/**
 * How bad: `broken` (someone gets no answers) or `attention`.
 */
health: Health, 
/**
 * One sentence a family admin reads: what is wrong and what to do.
 */
text: string, 
/**
 * The one action that fixes it, when the window has one.
 */
fix: Fix | null, 
/**
 * The member it is about, for `open_member`.
 */
member_id: string | null, };

export type Fix = "resume_all" | "open_member" | "open_settings" | "allow_supervisor" | "restart";

export type ProviderDto = { kind: ProviderKind, base_url: string, model: string, };

export type MemberCard = { id: string, name: string, role: Role, bot_username: string, bot: BotHealth, paired: boolean, paused: boolean, lane: Lane, 
/**
 * RFC 3339; when the member last wrote to their bot.
 */
last_activity: string | null, today_usd: number, 
/**
 * Model calls today (each answer is at least one).
 */
today_calls: number, month_usd: number, daily_cap_usd: number | null, monthly_cap_usd: number | null, isolation: string, 
/**
 * `"07:00"`: the assistant rests now (quiet hours, on the household's clock) until then.
 */
resting_until: string | null, 
/**
 * What the member's assistant is doing, in one sentence ("Answering · 2 waiting").
 */
status: MemberStatus, 
/**
 * Spend and messages per day (household's calendar): this month and the 30 days before
 * today, only days with either, oldest first. Counts, never content.
 */
days: Array<MemberDay>, };

export type MemberStatus = { text: string, tone: Tone, };

export type MemberDay = { 
/**
 * `YYYY-MM-DD`.
 */
date: string, usd: number, messages: number, };

export type Tone = "good" | "info" | "warn" | "bad";

export type BotHealthState = "starting" | "polling" | "token_revoked" | "used_elsewhere" | "rate_limited" | "unreachable";

export type BotHealth = { state: BotHealthState, 
/**
 * The state in a few plain words, e.g. "Token revoked — paste a new one".
 */
label: string, };

export type LaneState = "idle" | "queued" | "thinking";

export type Lane = { state: LaneState, 
/**
 * Messages waiting.
 */
queued: number, 
/**
 * How long the current turn has run.
 */
secs: number, 
/**
 * What the running turn does now (`thinking` when no turn runs): never what it is about.
 */
doing: TurnActivity, };

export type TurnActivity = "thinking" | "listening" | "looking" | "speaking" | "writing";

export type HouseholdSpend = { today_usd: number, month_usd: number, monthly_cap_usd: number | null, 
/**
 * Every day of this month so far, oldest first.
 */
per_day: Array<DaySpend>, 
/**
 * `YYYY-MM`: the month `per_day` and `month_usd` are about.
 */
month: string, timezone: string, 
/**
 * This month's spend by kind.
 */
month_split: SpendSplit, };

export type SpendSplit = { chat_usd: number, 
/**
 * Photos shown to the model (their cost is in `chat_usd`).
 */
images: number, heard_usd: number, 
/**
 * Voice notes transcribed.
 */
heard_notes: number, heard_minutes: number, replies_usd: number, 
/**
 * Voice replies spoken.
 */
replies: number, };

export type DaySpend = { 
/**
 * `YYYY-MM-DD`.
 */
date: string, usd: number, };

export type HostLoad = { cpu_pct: number, memory_pct: number, 
/**
 * Of the disk holding the data folder.
 */
disk_pct: number, };

export type Notice = { kind: NoticeKind, title: string, body: string, member_id: string | null, };

export type NoticeKind = "paired" | "bot_trouble" | "cap_reached" | "disk_full";

export type Navigate = { view: View, 
/**
 * The member, for `member`.
 */
member_id: string | null, };

export type View = "dashboard" | "member" | "settings";

export type ProviderArgs = { kind: ProviderKind, base_url: string, model: string, api_key: string, };

export type ProviderTestDto = { model: string, 
/**
 * The first words of the model's answer.
 */
reply: string, latency_ms: number, };

export type LocalProviderDto = { 
/**
 * "Ollama" or "LM Studio".
 */
name: string, base_url: string, models: Array<string>, };

export type HouseholdArgs = { 
/**
 * `None` removes the cap.
 */
monthly_cap_usd?: number, 
/**
 * IANA zone; `None` keeps the current one.
 */
timezone?: string, };

export type TokenArgs = { token: string, };

export type BotIdentityDto = { bot_username: string, bot_name: string, };

export type MemberAddArgs = { name: string, role: Role, token: string, 
/**
 * Make the new member the household's admin: asked about spending limits, told about
 * problems (the wizard's "Is this you?"). `None`: not an admin.
 */
admin?: boolean, };

export type MemberRef = { 
/**
 * A member's id (or name).
 */
member: string, };

export type PairingDto = { member_id: string, name: string, bot_username: string, code: string, 
/**
 * `https://t.me/<bot>?start=<code>`: opening it on the member's phone pairs them.
 */
link: string, 
/**
 * The link as a QR code, an SVG document.
 */
qr_svg: string, 
/**
 * RFC 3339.
 */
expires_at: string | null, };

export type MemberDetail = { id: string, name: string, role: Role, bot_username: string, paired: boolean, paused: boolean, is_admin: boolean, persona: string, 
/**
 * `None`: the household's model.
 */
model: string | null, fallback_model: string | null, daily_cap_usd: number | null, monthly_cap_usd: number | null, 
/**
 * `"20:00-07:00"` in the household's time zone: the assistant rests then. `None`: always on.
 */
quiet_hours: string | null, 
/**
 * When the assistant answers with a voice note.
 */
voice_replies: VoiceReplies, 
/**
 * The member sees the answer appear in Telegram while it is written (a live draft), rather
 * than only when it is finished.
 */
streaming: boolean, 
/**
 * RFC 3339.
 */
created_at: string, };

export type VoiceReplies = "never" | "when_spoken" | "always";

export type MemberVoiceArgs = { member: string, voice_replies: VoiceReplies, };

export type MemberStreamingArgs = { member: string, 
/**
 * Show replies as they are written (on), or only when finished (off).
 */
streaming: boolean, };

export type MemberUpdateArgs = { member: string, role?: Role, persona?: string, 
/**
 * `Some(None)` is not expressible in JSON; an empty string means "the household's model".
 */
model?: string, is_admin?: boolean, 
/**
 * `"HH:MM-HH:MM"`; an empty string turns quiet hours off.
 */
quiet_hours?: string, };

export type MemberCapsArgs = { member: string, 
/**
 * `None` removes the cap.
 */
daily_usd?: number, monthly_usd?: number, };

export type PauseArgs = { 
/**
 * `None`: every member.
 */
member?: string, paused: boolean, };

export type MemberTokenArgs = { member: string, token: string, };

export type MemberExportArgs = { member: string, 
/**
 * An existing folder; `None`: the admin's Documents (or home) folder.
 */
dest_dir?: string, };

export type ExportDto = { 
/**
 * The folder the export was written to.
 */
path: string, };

export type PriceDto = { model: string, input_usd_per_mtok: number, output_usd_per_mtok: number, cached_input_usd_per_mtok: number, 
/**
 * "admin" or "default (as of …)".
 */
source: string, 
/**
 * A speech-recognition model's price per minute of audio (its token prices are 0).
 */
usd_per_minute: number | null, 
/**
 * A text-to-speech model's price per million characters (its token prices are 0).
 */
usd_per_million_chars: number | null, };

export type PriceArgs = { model: string, input_usd_per_mtok: number, output_usd_per_mtok: number, cached_input_usd_per_mtok?: number, };

export type SpeechPriceArgs = { model: string, direction: SpeechDirection, usd: number, };

export type SpeechDirection = "in" | "out";

export type SpeechSource = "own" | "chat_provider" | "off" | "none";

export type SpeechServiceDto = { direction: SpeechDirection, source: SpeechSource, base_url: string | null, model: string | null, 
/**
 * The voice name (`out` only).
 */
voice: string | null, };

export type VoiceSettingsDto = { hearing: SpeechServiceDto, speaking: SpeechServiceDto, };

export type SpeechServiceArgs = { direction: SpeechDirection, base_url: string, model: string, 
/**
 * The voice name (`out`; empty or `None`: the service's default), ignored for `in`.
 */
voice?: string, 
/**
 * May be empty (a local server needs none). Never sent back.
 */
api_key: string, };

export type SpeechDirectionArgs = { direction: SpeechDirection, };

export type SpeechTestDto = { direction: SpeechDirection, model: string, latency_ms: number, 
/**
 * `in`: what the service heard in the test sample (may be empty).
 */
heard: string | null, 
/**
 * `out`: how much audio the service answered, in bytes.
 */
audio_bytes: number | null, };

export type SettingsDto = { data_dir: string, launch_at_login: boolean, keep_awake: KeepAwakeDto, 
/**
 * Whether the computer turns itself on again after a power cut.
 */
power_restart: PowerRestartDto, turn_cap: number, timezone: string, provider: ProviderDto | null, backup: BackupStatusDto, 
/**
 * Which appliance steps the screen shows (power, sleep, login, the supervisor).
 */
platform: Platform, 
/**
 * The supervisor's LaunchDaemon, on macOS; `None` where the app registers none.
 */
daemon: DaemonDto | null, };

export type KeepAwakeDto = { 
/**
 * The admin wants it (stored in the app's settings).
 */
enabled: boolean, 
/**
 * The machine is being kept awake right now (the power assertion is held).
 */
holding: boolean, 
/**
 * Whether this machine can be kept awake by Hearth.
 */
available: boolean, 
/**
 * Why not, or how, in words.
 */
detail: string, };

export type PowerRestartDto = { 
/**
 * `None`: the app cannot read it here (Linux: it is a firmware setting).
 */
on: boolean | null, 
/**
 * What it means or how to set it, in words.
 */
detail: string, 
/**
 * The command that turns it on, to paste into Terminal, where there is one.
 */
command: string | null, };

export type BackupStatusDto = { 
/**
 * Where scheduled backups go; `None` when they are off.
 */
dest_dir: string | null, 
/**
 * Every how many hours; 0 when off.
 */
every_hours: number, 
/**
 * RFC 3339: the newest complete backup in the scheduled (or suggested) folder.
 */
last: string | null, 
/**
 * A folder to suggest: beside the data folder (better: an external disk or a synced folder).
 */
suggested_dir: string, };

export type BackupNowArgs = { 
/**
 * An existing (or creatable) folder; `None`: the scheduled folder, else the suggested one.
 */
dest_dir?: string, };

export type BackupScheduleArgs = { 
/**
 * `None` turns scheduled backups off.
 */
dest_dir?: string, every_hours: number, };

export type BackupDto = { 
/**
 * The new backup's folder.
 */
path: string, members: number, 
/**
 * Its size, in megabytes, rounded up.
 */
megabytes: number, };

export type Platform = "macos" | "linux" | "other";

export type DaemonDto = { state: DaemonState, 
/**
 * What that means for the admin, in a sentence.
 */
text: string, };

export type DaemonState = "not_registered" | "requires_approval" | "enabled" | "not_found";

export type SettingsArgs = { launch_at_login?: boolean, keep_awake?: boolean, turn_cap?: number, };

/** Every command of the app, typed. A rejection carries an `IpcError`. */
export const api = {
  appInfo: () => invoke<AppInfo>("app_info"),
  finishSetup: () => invoke<AppInfo>("finish_setup"),
  startDemo: () => invoke<AppInfo>("start_demo"),
  leaveDemo: () => invoke<AppInfo>("leave_demo"),
  retryStart: () => invoke<AppInfo>("retry_start"),
  snapshot: () => invoke<Snapshot>("snapshot"),
  providerDetect: () => invoke<Array<LocalProviderDto>>("provider_detect"),
  providerTest: (args: ProviderArgs) => invoke<ProviderTestDto>("provider_test", { args }),
  providerSet: (args: ProviderArgs) => invoke<ProviderDto>("provider_set", { args }),
  householdSet: (args: HouseholdArgs) => invoke<null>("household_set", { args }),
  botCheck: (args: TokenArgs) => invoke<BotIdentityDto>("bot_check", { args }),
  memberAdd: (args: MemberAddArgs) => invoke<PairingDto>("member_add", { args }),
  memberPair: (args: MemberRef) => invoke<PairingDto>("member_pair", { args }),
  memberList: () => invoke<Array<MemberDetail>>("member_list"),
  memberUpdate: (args: MemberUpdateArgs) => invoke<MemberDetail>("member_update", { args }),
  memberCaps: (args: MemberCapsArgs) => invoke<MemberDetail>("member_caps", { args }),
  memberVoice: (args: MemberVoiceArgs) => invoke<MemberDetail>("member_voice", { args }),
  memberStreaming: (args: MemberStreamingArgs) => invoke<MemberDetail>("member_streaming", { args }),
  memberPause: (args: PauseArgs) => invoke<null>("member_pause", { args }),
  memberToken: (args: MemberTokenArgs) => invoke<BotIdentityDto>("member_token", { args }),
  memberExport: (args: MemberExportArgs) => invoke<ExportDto>("member_export", { args }),
  memberRemove: (args: MemberRef) => invoke<null>("member_remove", { args }),
  prices: () => invoke<Array<PriceDto>>("prices"),
  priceSet: (args: PriceArgs) => invoke<Array<PriceDto>>("price_set", { args }),
  speechPriceSet: (args: SpeechPriceArgs) => invoke<Array<PriceDto>>("speech_price_set", { args }),
  voiceSettings: () => invoke<VoiceSettingsDto>("voice_settings"),
  speechServiceSet: (args: SpeechServiceArgs) => invoke<SpeechServiceDto>("speech_service_set", { args }),
  speechServiceOff: (args: SpeechDirectionArgs) => invoke<SpeechServiceDto>("speech_service_off", { args }),
  speechTest: (args: SpeechDirectionArgs) => invoke<SpeechTestDto>("speech_test", { args }),
  settings: () => invoke<SettingsDto>("settings"),
  settingsSet: (args: SettingsArgs) => invoke<SettingsDto>("settings_set", { args }),
  backupNow: (args: BackupNowArgs) => invoke<BackupDto>("backup_now", { args }),
  backupSchedule: (args: BackupScheduleArgs) => invoke<BackupStatusDto>("backup_schedule", { args }),
  daemonRegister: () => invoke<DaemonDto>("daemon_register"),
  daemonOpenSettings: () => invoke<null>("daemon_open_settings"),
  restart: () => invoke<AppInfo>("restart"),
  quit: () => invoke<null>("quit"),
} as const;

/** Events the app emits: `snapshot` carries a `Snapshot`, `notice` a `Notice`, `navigate` a `Navigate` (a tray row was clicked), `quit` nothing (Quit was chosen in the tray: ask first). */
export const EVENTS = { snapshot: "snapshot", notice: "notice", navigate: "navigate", quit: "quit" } as const;
