//! The command tree. Names, flags and `--json` shapes are a public interface: people script
//! against them, so change them only with a deprecation path.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  unexpected error
  2  usage error (unknown command or flag)
  3  Hearth is not running for this data directory (start it with `hearth serve`)
  4  invalid input (malformed token, empty key, bad name, URL, amount or month)
  5  not found (no such member)
  6  conflict (that name or bot is already taken)
  7  rejected by Telegram or the provider (e.g. a revoked token)
  8  Telegram or the provider could not be reached
  9  `hearth doctor` found warnings (and nothing critical)
  10 `hearth doctor` found something critical
  11 `hearth backup verify` or `restore` found the backup damaged
  12 refused for safety: the data folder, or whoever serves its control socket, is
     not what it must be (someone else could change or impersonate it)

Errors print as `error: <message>` on stderr; with --json also as
{\"error\":{\"code\":\"...\",\"message\":\"...\"}} on stdout.";

/// Hearth: a family AI assistant on Telegram, one private bot per household member.
///
/// Run `hearth demo` to watch a simulated household chat through the real gateway — no bot
/// tokens or API keys needed. For a real household: `hearth serve` in one terminal (or as a
/// service), then `hearth provider set` and `hearth member add` in another.
#[derive(Debug, Parser)]
#[command(name = "hearth", version, after_long_help = EXIT_CODES, max_term_width = 100)]
pub struct Cli {
    /// Where Hearth keeps its database, secrets and member directories. [default: /var/lib/hearth
    /// as root, else ~/.local/share/hearth; on macOS /Users/Shared/Hearth, or
    /// /Library/Application Support/Hearth as root]
    #[arg(long, global = true, env = "HEARTH_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway in the foreground: poll every member's bot and answer their messages.
    ///
    /// Stops cleanly on Ctrl-C or SIGTERM, letting running answers finish for up to 10 seconds
    /// (anything unanswered is answered after the next start). Logs go to stderr; set RUST_LOG
    /// (e.g. RUST_LOG=debug) for more. HEARTH_TELEGRAM_API_URL points every bot at another Bot
    /// API server (a self-hosted one, or a test fake).
    ///
    /// `hearth doctor` shows how strongly members' assistants are kept apart; choose the level with
    /// --isolation (or HEARTH_ISOLATION).
    Serve(ServeArgs),

    /// Choose (and test) the AI model provider the whole household uses.
    #[command(subcommand)]
    Provider(ProviderCommand),

    /// Add, list, pair, pause or remove household members; set their role, model and caps.
    #[command(subcommand)]
    Member(MemberCommand),

    /// Set and list what each AI model costs, in USD per million tokens.
    #[command(subcommand)]
    Price(PriceCommand),

    /// Set the household's monthly spending cap and its time zone.
    #[command(subcommand)]
    Household(HouseholdCommand),

    /// Show what each member spent on AI this month against their caps, or export it as CSV.
    ///
    /// Per member: model calls, tokens (input / cached input / output), what they cost, what was
    /// spent today, and the member's caps; then the household's total and its monthly cap. Then
    /// what it paid for, this month and today: chat (with the images the model was shown),
    /// speech recognition (minutes of voice messages heard) and voice replies (characters
    /// spoken). Costs are in USD, from the prices in
    /// `hearth price list`.
    ///
    /// --json prints the whole report: {"month","timezone","members":[{"id","name","totals",
    /// "today","today_usd","daily_cap_usd","monthly_cap_usd"}],"total","today_total",
    /// "household_monthly_cap_usd","per_day"}, where totals are {"calls","input_tokens",
    /// "cached_input_tokens","output_tokens","cost_usd","chat_calls","chat_cost_usd","images",
    /// "speech_calls","audio_seconds","speech_cost_usd","voice_calls","voice_chars",
    /// "voice_cost_usd"} and a missing cap is null.
    ///
    /// Examples:
    ///   hearth usage
    ///   hearth usage --month 2026-10
    ///   hearth usage export --month 2026-10 > usage-2026-10.csv
    #[command(
        verbatim_doc_comment,
        about = "Show what each member spent on AI this month against their caps, or export it as CSV"
    )]
    Usage(UsageArgs),

    /// Show how every member's bot, queue and usage is doing right now.
    ///
    /// Per member: bot connection, whether their Telegram account is paired, their lane (idle,
    /// queued, or running — listening, looking or speaking — for how long), their worker and its
    /// isolation level, and today's model calls, tokens and cost. Overall: the provider, speech
    /// recognition (in) and voice replies (out), answers in progress against the household cap,
    /// worker processes, and the isolation level (`hearth doctor` checks it in depth).
    ///
    /// --json prints the whole report, with "speech" and "voice" as `hearth provider show` has
    /// them.
    Status(StatusArgs),

    /// Check how well members are kept apart, like a security audit, and say what to fix.
    ///
    /// Shows the isolation level in force and what the kernel offers for the sandbox; then, per
    /// member, the level their worker runs at, their OS account and uid, the worker's pid and
    /// any findings (files readable by others, stray ACLs, a worker under the wrong uid, secrets
    /// with loose permissions, an open stranger policy); then findings about the gateway itself.
    /// Each finding says what is wrong and what to do about it — among them member OS accounts
    /// that belong to no member of this household (`sudo hearth doctor --fix-orphans` removes
    /// them).
    ///
    /// Exit codes: 0 when nothing needs fixing (at most notes marked "info"), 9 when there are
    /// warnings but nothing critical, 10 when anything is critical; the usual codes otherwise
    /// (3: Hearth is not running). With --json the exit code is the same.
    ///
    /// --json prints the report: {"isolation","sandbox_support","members":[{"id","name",
    /// "isolation","account","uid","worker_pid","findings"}],"findings"}, where a finding is
    /// {"severity":"info"|"warning"|"critical","what","fix"}, isolation is "process", "account"
    /// or "account_sandbox", and a missing account, uid or pid is null.
    #[command(
        verbatim_doc_comment,
        about = "Check how well members are kept apart, like a security audit, and say what to fix"
    )]
    Doctor(DoctorArgs),

    /// Watch a simulated household chat through the real gateway — no tokens, keys or network.
    ///
    /// Starts a fake Telegram and a canned demo model on 127.0.0.1, a throwaway data directory,
    /// and the real gateway with a worker process per member. Simulated family members pair with
    /// their bots and chat; a live view shows each member's lane. Stops on Ctrl-C (or after
    /// --duration) and prints a summary. The data directory is deleted on exit. Workers run at
    /// isolation "process": the demo never creates OS accounts for its simulated members.
    Demo(DemoArgs),

    /// Run the root helper that gives members OS accounts when the gateway itself is not root.
    ///
    /// Hearth runs each member's assistant as an OS account of its own. Creating those accounts
    /// and starting workers as them needs root: `hearth serve` does it itself when it runs as
    /// root. Otherwise run this daemon as root, naming the user the gateway runs as, and start
    /// the gateway with --supervisor-socket (or HEARTH_SUPERVISOR_SOCKET) set to its socket.
    ///
    /// It serves only that user (the kernel's peer credentials are checked on every connection),
    /// runs workers only as `hearth-*` accounts it creates itself, only inside that user's own
    /// data directory, and only a hearth binary that nobody but root and that user can change.
    /// It stops on Ctrl-C or SIGTERM, stopping the workers it started.
    ///
    /// With --admin-group instead of a user, it serves the first member of that group (never
    /// root) to connect and remembers them in --admin-pin, a file of root's; remove that file to
    /// let another admin claim it. On macOS the Hearth app registers it this way, as a
    /// LaunchDaemon serving the first of the `admin` group; approve it in System Settings →
    /// General → Login Items.
    ///
    /// Examples:
    ///   sudo hearth supervisor --admin-user alice
    ///   hearth serve --supervisor-socket /run/hearth/supervisor.sock      (then, as alice)
    ///   sudo hearth supervisor --admin-group admin
    ///
    /// Exit codes: 0 after a clean stop; 1 when not run as root or the socket cannot be served;
    /// 4 when the admin user is unknown or invalid.
    #[command(
        verbatim_doc_comment,
        about = "Run the root helper that gives members OS accounts when the gateway itself is not root"
    )]
    Supervisor(SupervisorArgs),

    /// Back up the household, check a backup, restore one, or back up on a schedule.
    #[command(subcommand)]
    Backup(crate::backup::BackupCommand),

    /// Show the gateway's log: the last lines, and with --follow what comes next.
    ///
    /// Whichever runs the household (`hearth serve` or the app) writes its log to
    /// <data dir>/logs/hearth-YYYY-MM-DD.log, one file per day (UTC), keeping two weeks. No
    /// secret is ever logged. More detail: start the gateway with RUST_LOG=debug.
    ///
    /// Exit codes: 0; 3 when there is no log yet (Hearth has not run on this data directory).
    #[command(verbatim_doc_comment, about = "Show the gateway's log, or follow it")]
    Logs(LogsArgs),

    /// Internal: one member's worker process, started by the gateway.
    #[command(hide = true)]
    Worker,

    /// Internal: reads the folder on descriptor 3 with this process's rights and writes it to
    /// stdout, for a backup or export root makes (started as the folder's owner).
    #[command(hide = true, name = "tree-reader")]
    TreeReader {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

impl Command {
    /// Whether the command was asked for machine-readable output (errors then go to stdout too).
    pub fn json(&self) -> bool {
        match self {
            Command::Provider(ProviderCommand::Set(a) | ProviderCommand::Test(a)) => a.json,
            Command::Provider(ProviderCommand::Speech(a)) => a.json,
            Command::Provider(ProviderCommand::Voice(a)) => a.json,
            Command::Provider(ProviderCommand::TestSpeech(a)) => a.json,
            Command::Provider(ProviderCommand::Show(a)) => a.json,
            Command::Provider(ProviderCommand::Connections(a)) => a.json,
            Command::Member(MemberCommand::Add(a)) => a.json,
            Command::Member(MemberCommand::List(a)) => a.json,
            Command::Member(MemberCommand::Remove(a) | MemberCommand::Pair(a) | MemberCommand::Token(a)) => a.json,
            Command::Member(MemberCommand::Pause(a)) => a.who.json,
            Command::Member(MemberCommand::Resume(a)) => a.json,
            Command::Member(MemberCommand::Set(a)) => a.json,
            Command::Member(MemberCommand::Export(a)) => a.json,
            Command::Member(MemberCommand::Cap(a)) => a.json,
            Command::Member(MemberCommand::Admin(a)) => a.json,
            Command::Member(MemberCommand::Fallback(a)) => a.json,
            Command::Price(PriceCommand::Set(a)) => a.json,
            Command::Price(PriceCommand::List(a)) => a.json,
            Command::Household(HouseholdCommand::Cap(a)) => a.json,
            Command::Household(HouseholdCommand::Timezone(a)) => a.json,
            Command::Household(HouseholdCommand::IdleReset(a)) => a.json,
            Command::Household(HouseholdCommand::DiskQuota(a)) => a.json,
            Command::Household(HouseholdCommand::Heartbeat(a)) => a.json,
            Command::Household(HouseholdCommand::Bot(a)) => match &a.command {
                None => a.json,
                Some(HouseholdBotCommand::Set(j) | HouseholdBotCommand::Remove(j)) => j.json,
            },
            Command::Household(HouseholdCommand::Groups(a)) => a.json,
            Command::Household(HouseholdCommand::Group(a)) => a.json,
            // The export's output is CSV; its errors stay on stderr.
            Command::Usage(a) => a.command.is_none() && a.json,
            Command::Status(a) => a.json,
            Command::Doctor(a) => a.json,
            Command::Backup(c) => c.json(),
            Command::Serve(_)
            | Command::Demo(_)
            | Command::Supervisor(_)
            | Command::Logs(_)
            | Command::Worker
            | Command::TreeReader { .. } => false,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ProviderCommand {
    /// Set the provider, model and API key (replaces the current one).
    ///
    /// The API key is read from stdin (paste it when asked, or pipe it in), or from the
    /// environment variable named by --api-key-env. It is never taken as an argument, so it
    /// stays out of shell history and `ps`.
    ///
    /// Local servers (Ollama, LM Studio) need no key: with a localhost base URL an empty key is
    /// accepted; for any other URL pass --no-key to store none.
    ///
    /// Examples:
    ///   hearth provider set --kind openai --base-url https://api.openai.com/v1 --model gpt-4o-mini
    ///   hearth provider set --kind anthropic --base-url https://api.anthropic.com \
    ///       --model claude-sonnet-4-5 --api-key-env ANTHROPIC_API_KEY
    ///   hearth provider set --kind openai --base-url http://localhost:11434/v1 --model llama3.2 --no-key
    #[command(verbatim_doc_comment)]
    Set(ProviderSetArgs),
    /// Try a provider, model and API key with one small request, without saving anything.
    ///
    /// Takes the same options as `hearth provider set` and reads the key the same way. The model
    /// is asked to reply with one word; Hearth prints what it said and how long it took, or what
    /// went wrong and what to check. Nothing is stored and no member's spending is charged.
    ///
    /// Example:
    ///   hearth provider test --kind openai --base-url http://localhost:11434/v1 --model llama3.2 --no-key
    ///
    /// --json prints {"model","reply","latency_ms"}.
    #[command(
        verbatim_doc_comment,
        about = "Try a provider, model and API key with one small request, without saving anything"
    )]
    Test(ProviderSetArgs),
    /// Choose the speech recognition that turns members' voice messages into text, or turn it off.
    ///
    /// Any service that speaks OpenAI's /audio/transcriptions works: OpenAI, Groq, or a whisper
    /// server on this machine (whisper.cpp's server, faster-whisper-server). The API key is read
    /// from stdin (paste it when asked, or pipe it in) or from the variable named by
    /// --api-key-env, never from an argument; a local server needs none (--no-key, or just
    /// press Enter with a localhost address).
    ///
    /// Without one, and when the provider (`hearth provider set`) is of kind openai, voice
    /// messages go to that provider's own service with the model whisper-1. --off turns speech
    /// recognition off altogether: members are asked to type instead.
    ///
    /// Transcription is priced per minute of audio (`hearth price set MODEL --usd-per-minute X`)
    /// and counts against the same caps as everything else.
    ///
    /// Examples:
    ///   hearth provider speech --base-url https://api.openai.com/v1 --model whisper-1
    ///   hearth provider speech --base-url https://api.groq.com/openai/v1 \
    ///       --model whisper-large-v3-turbo --api-key-env GROQ_API_KEY
    ///   hearth provider speech --base-url http://localhost:8080/v1 --model whisper-1 --no-key
    ///   hearth provider speech --off
    ///
    /// --json prints {"source","base_url","model"}, where source is "own", "chat_provider",
    /// "off" or "none" and a missing address or model is null.
    #[command(
        verbatim_doc_comment,
        about = "Choose the speech recognition that turns members' voice messages into text, or turn it off"
    )]
    Speech(ProviderSpeechArgs),
    /// Choose the voice that answers members in voice messages, or turn voice replies off.
    ///
    /// Any service that speaks OpenAI's /audio/speech works: OpenAI, or a text-to-speech server
    /// on this machine that speaks the same API. The API key is read from stdin or from the
    /// variable named by --api-key-env, never from an argument; a local server needs none.
    ///
    /// Without one, and when the provider is of kind openai, voice replies use that provider's
    /// own service with the model tts-1 and the voice alloy. Who is answered in voice is each
    /// member's setting (`hearth member set NAME --voice-replies never|when-spoken|always`;
    /// "when-spoken", a voice message answered in voice, is the default). --off answers everyone
    /// in text.
    ///
    /// Speaking is priced per million characters (`hearth price set tts-1
    /// --usd-per-million-chars 15`) and counts against the same caps as everything else; a
    /// member whose allowance cannot cover it is answered in text.
    ///
    /// Examples:
    ///   hearth provider voice --base-url https://api.openai.com/v1 --model tts-1 --voice nova
    ///   hearth provider voice --base-url http://localhost:8880/v1 --model kokoro --voice af_bella --no-key
    ///   hearth provider voice --off
    ///
    /// --json prints {"source","base_url","model","voice"}, where source is "own",
    /// "chat_provider", "off" or "none" and a missing address, model or voice is null.
    #[command(
        verbatim_doc_comment,
        about = "Choose the voice that answers members in voice messages, or turn voice replies off"
    )]
    Voice(ProviderVoiceArgs),
    /// Try the speech service in force in one direction, without saving or charging anything.
    ///
    /// --in sends a short sample to speech recognition and prints what it heard (the sample is
    /// "Hello from Hearth" spoken by the voice service when there is one, otherwise a second of
    /// silence, which may be heard as nothing). --out has the voice service speak a short
    /// sentence and prints how much audio came back.
    ///
    /// Examples:
    ///   hearth provider test-speech --in
    ///   hearth provider test-speech --out
    ///
    /// --json prints {"direction","model","latency_ms"} plus "heard" (--in) or "audio_bytes"
    /// (--out).
    #[command(
        verbatim_doc_comment,
        name = "test-speech",
        about = "Try the speech service in force in one direction, without saving or charging anything"
    )]
    TestSpeech(ProviderTestSpeechArgs),
    /// Show the AI provider, the speech recognition and the voice replies in use (never a key).
    ///
    /// --json prints {"provider":{"kind","base_url","model"},"speech":{"source","base_url",
    /// "model"},"voice":{"source","base_url","model","voice"}}, where provider is null when none
    /// is set.
    #[command(
        verbatim_doc_comment,
        about = "Show the AI provider, the speech recognition and the voice replies in use (never a key)"
    )]
    Show(JsonArgs),
    /// How many answers may be written at once across the household (calls open to the AI
    /// provider, voice messages being heard and replies spoken included); default 256.
    ///
    /// A member whose answer would open one more waits in line until one finishes — without
    /// holding up anyone else's turn. Lower it for a model server that takes only a few requests
    /// at a time (a local Ollama on a small machine) or a provider's limit on concurrent
    /// requests; `hearth status` shows how many are open. A lower number takes effect as calls
    /// finish (none is cut off).
    ///
    /// Example:
    ///   hearth provider connections 4
    ///
    /// --json prints {"max_connections"}.
    #[command(
        verbatim_doc_comment,
        about = "How many answers may be written at once across the household (calls open to the AI provider)"
    )]
    Connections(ProviderConnectionsArgs),
}

#[derive(Debug, Args)]
pub struct ProviderConnectionsArgs {
    /// Provider calls open at once, 1 to 10000.
    #[arg(value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max: u32,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("voice_service").required(true).args(["base_url", "off"])))]
pub struct ProviderVoiceArgs {
    /// The service's API root, e.g. https://api.openai.com/v1 (it serves /audio/speech).
    #[arg(long, value_name = "URL", requires = "model", conflicts_with = "off")]
    pub base_url: Option<String>,
    /// The text-to-speech model, e.g. tts-1 or tts-1-hd.
    #[arg(long, value_name = "NAME", requires = "base_url", conflicts_with = "off")]
    pub model: Option<String>,
    /// The voice, as the service names it, e.g. alloy, nova or shimmer [default: alloy].
    #[arg(long, value_name = "NAME", conflicts_with = "off")]
    pub voice: Option<String>,
    /// Read the API key from this environment variable instead of stdin.
    #[arg(long, value_name = "VAR", conflicts_with_all = ["no_key", "off"])]
    pub api_key_env: Option<String>,
    /// The service needs no API key (a local server); don't ask for one.
    #[arg(long, conflicts_with = "off")]
    pub no_key: bool,
    /// No voice replies for anyone: every answer is text, whatever members chose.
    #[arg(long)]
    pub off: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("direction").required(true).args(["hearing", "speaking"])))]
pub struct ProviderTestSpeechArgs {
    /// Test speech recognition (voice messages in).
    #[arg(long = "in")]
    pub hearing: bool,
    /// Test voice replies (speech out).
    #[arg(long = "out")]
    pub speaking: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("speech").required(true).args(["base_url", "off"])))]
pub struct ProviderSpeechArgs {
    /// The service's API root, e.g. https://api.openai.com/v1 (it serves /audio/transcriptions).
    #[arg(long, value_name = "URL", requires = "model", conflicts_with = "off")]
    pub base_url: Option<String>,
    /// The speech model, e.g. whisper-1, gpt-4o-mini-transcribe or whisper-large-v3-turbo.
    #[arg(long, value_name = "NAME", requires = "base_url", conflicts_with = "off")]
    pub model: Option<String>,
    /// Read the API key from this environment variable instead of stdin.
    #[arg(long, value_name = "VAR", conflicts_with_all = ["no_key", "off"])]
    pub api_key_env: Option<String>,
    /// The service needs no API key (a local whisper server); don't ask for one.
    #[arg(long, conflicts_with = "off")]
    pub no_key: bool,
    /// No speech recognition at all: voice messages get a kind note asking to type.
    #[arg(long)]
    pub off: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// OpenAI chat completions and compatible APIs (OpenRouter, DeepSeek, Gemini, Ollama, LM
    /// Studio).
    Openai,
    /// Anthropic Messages API.
    Anthropic,
}

#[derive(Debug, Args)]
pub struct ProviderSetArgs {
    /// Which API the provider speaks.
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// The API root, e.g. https://api.openai.com/v1 or http://localhost:11434/v1.
    #[arg(long, value_name = "URL")]
    pub base_url: String,
    /// The model every member's assistant uses, e.g. gpt-4o-mini.
    #[arg(long, value_name = "NAME")]
    pub model: String,
    /// Read the API key from this environment variable instead of stdin.
    #[arg(long, value_name = "VAR", conflicts_with = "no_key")]
    pub api_key_env: Option<String>,
    /// The provider needs no API key (a local model server); don't ask for one.
    #[arg(long)]
    pub no_key: bool,
    /// Print the result as JSON (set: {"kind","base_url","model"}).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Add a household member with their own Telegram bot, and get a pairing code.
    ///
    /// Create the bot first: in Telegram, message @BotFather, send /newbot and follow the steps.
    /// Then run this and paste the token BotFather gives you when asked (or pipe it in on stdin;
    /// it is never taken as an argument). Hearth checks the token with Telegram and prints a
    /// link and a code: open the link on the member's phone (or send `/start CODE` to the bot)
    /// to pair their Telegram account. Codes work once and expire after an hour.
    ///
    /// --role child or teen gives their assistant age-appropriate care (see `hearth member set`).
    ///
    /// --json prints {"id","name","bot_username","pair_code","pair_link"}.
    Add(MemberAddArgs),
    /// List household members: their bot, role, whether they are paired or paused, their model.
    ///
    /// --json prints {"members":[{"id","name","bot_username","paired","created_at","role",
    /// "paused","persona","model","fallback_model","is_admin","daily_cap_usd","monthly_cap_usd"}]}
    /// (model null: the household's; a missing cap is null).
    #[command(
        verbatim_doc_comment,
        about = "List household members: their bot, role, whether they are paired or paused, their model"
    )]
    List(JsonArgs),
    /// Pause a member's assistant (or everyone's with --all) until `hearth member resume`, or
    /// for a while.
    ///
    /// Their bot stays connected, but their messages reach no assistant and no AI model: they get
    /// a short note (at most one an hour) that the household's admin paused it. Messages waiting
    /// for an answer are dropped. Pairing still works. With --for, --until or --tonight the
    /// assistant comes back by itself (also after a restart); times are the household's (`hearth
    /// household timezone`). An admin can do the same from Telegram: /pause NAME 1h.
    ///
    /// Examples:
    ///   hearth member pause Leo
    ///   hearth member pause Leo --for 1h
    ///   hearth member pause Mia --until 15:30
    ///   hearth member pause --all --tonight
    ///
    /// --json prints {"member","paused","until"} (member null with --all; until RFC 3339, or null
    /// until resumed).
    #[command(
        verbatim_doc_comment,
        about = "Pause a member's assistant (or everyone's with --all) until resumed, or for a while"
    )]
    Pause(MemberPauseArgs),
    /// Resume a paused member's assistant (or everyone's with --all).
    ///
    /// --json prints {"member","paused"} (member null with --all).
    Resume(MemberPickArgs),
    /// Give a member's assistant a new bot token: after /revoke in @BotFather, or a new bot.
    ///
    /// Paste the token when asked (or pipe it in on stdin; it is never taken as an argument).
    /// Hearth checks it with Telegram first and changes nothing if it is refused. Their Telegram
    /// account stays paired: with a new bot they just write to it.
    ///
    /// --json prints the member as `hearth member list --json` shows each one.
    Token(MemberNameArgs),
    /// Change a member's role, the notes their assistant follows, or the model it uses.
    ///
    /// A child's or teen's assistant keeps things age-appropriate, helps with nothing dangerous
    /// and suggests asking a parent about grown-up matters. Persona notes (up to 2000 characters)
    /// tell the assistant about the member, e.g. "Rosa is 78 and prefers short answers". A model of
    /// their own is used on the household's provider; a member with a spending cap needs a model
    /// with a price (`hearth price list`).
    ///
    /// Examples:
    ///   hearth member set Mia --role child --persona "Mia is 8 and loves horses."
    ///   hearth member set Leo --model gpt-4o-mini
    ///   hearth member set Leo --household-model
    ///   hearth member set Mia --quiet-hours 20:30-07:00
    ///   hearth member set Rosa --alerts important
    ///
    /// --json prints the member as `hearth member list --json` shows each one.
    #[command(
        verbatim_doc_comment,
        about = "Change a member's role, the notes their assistant follows, or the model it uses"
    )]
    Set(MemberSetArgs),
    /// Copy a member's data (conversations and files) into a new folder inside DIR.
    ///
    /// Writes "Hearth export - NAME - YYYY-MM-DD HHMM" in DIR (which must exist): a consistent
    /// copy of everything their assistant stores, and conversations.json with their conversations
    /// in plain JSON. It is private to them: keep it somewhere only the right people can read.
    ///
    /// --json prints {"path"}.
    Export(MemberExportArgs),
    /// Remove a member: stop their bot and worker, forget their token and pairing.
    ///
    /// Their conversations are moved to the data directory's archive/ folder, not deleted.
    /// --json prints {"removed":"NAME"}.
    Remove(MemberNameArgs),
    /// Issue a fresh pairing code for a member (e.g. a new phone, or the old code expired).
    ///
    /// --json prints {"member_id","name","bot_username","pair_code","pair_link","expires_at"}.
    Pair(MemberNameArgs),
    /// Set or remove a member's daily and monthly spending caps, in USD.
    ///
    /// Before every answer Hearth sets aside the most that answer could cost; if that would take
    /// the member past a cap, the answer is not sent to the model (or goes to their cheaper
    /// fallback model, see `hearth member fallback`), the member is told when the cap resets, and
    /// the admins are asked on Telegram whether to allow more. Days and months are counted in the
    /// household's time zone (`hearth household timezone`). Give `none` to remove a cap; a flag
    /// left out keeps that cap as it is.
    ///
    /// Examples:
    ///   hearth member cap Leo --daily-usd 1
    ///   hearth member cap Rosa --monthly-usd 5 --daily-usd none
    ///
    /// Prints the member's caps after the change; --json as {"member","daily_usd","monthly_usd"}
    /// (null: no cap).
    #[command(verbatim_doc_comment, about = "Set or remove a member's daily and monthly spending caps, in USD")]
    Cap(MemberCapArgs),
    /// Make a member an admin, or with --off no longer one.
    ///
    /// When someone reaches a cap, every admin gets a Telegram message from their own bot with
    /// buttons to allow that member $1 or $5 more for the current day or month, or to leave it.
    /// Admins can also send /family to their bot to see every member's spending at a glance.
    ///
    /// --json prints {"member","admin"}.
    Admin(MemberAdminArgs),
    /// Choose a cheaper model a member's assistant switches to at a cap, instead of stopping.
    ///
    /// When an answer would take the member past a cap with the household's model, Hearth tries
    /// MODEL instead (it must be offered by the household's provider and have a price, see
    /// `hearth price list`). --off removes the fallback: at a cap the assistant stops answering
    /// until the cap resets or an admin allows more.
    ///
    /// Examples:
    ///   hearth member fallback Leo gpt-4o-mini
    ///   hearth member fallback Leo --off
    ///
    /// --json prints {"member","fallback"} (null: none).
    #[command(
        verbatim_doc_comment,
        about = "Choose a cheaper model a member's assistant switches to at a cap, instead of stopping"
    )]
    Fallback(MemberFallbackArgs),
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("caps").required(true).multiple(true).args(["daily_usd", "monthly_usd"])))]
pub struct MemberCapArgs {
    /// The member's name (any case) or id.
    pub name: String,
    /// Most the member may spend in one day: USD, e.g. 1 or 0.50; `none` removes the cap.
    // A negative amount gets the amount's own error (exit 4), not "unexpected argument".
    #[arg(long, value_name = "USD", allow_negative_numbers = true)]
    pub daily_usd: Option<String>,
    /// Most the member may spend in one calendar month: USD, e.g. 5; `none` removes the cap.
    // A negative amount gets the amount's own error (exit 4), not "unexpected argument".
    #[arg(long, value_name = "USD", allow_negative_numbers = true)]
    pub monthly_usd: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct MemberAdminArgs {
    /// The member's name (any case) or id.
    pub name: String,
    /// Take admin rights away instead of giving them.
    #[arg(long)]
    pub off: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("choice").required(true).args(["model", "off"])))]
pub struct MemberFallbackArgs {
    /// The member's name (any case) or id.
    pub name: String,
    /// The cheaper model to switch to, e.g. gpt-4o-mini.
    pub model: Option<String>,
    /// Remove the member's fallback model.
    #[arg(long)]
    pub off: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PriceCommand {
    /// Set what a model costs, in USD per million tokens (or per minute of audio for speech
    /// recognition), as on the provider's pricing page; or mark a model that cannot see images.
    ///
    /// Replaces Hearth's built-in price for that model, if it has one. Caps are counted with
    /// these prices, and a model without a price cannot be used by a member who has a cap.
    /// Cached input is prompt text the provider had cached (most charge less for it); without
    /// --cached-input-usd-per-mtok it costs the same as input.
    ///
    /// Speech-recognition models (`hearth provider speech`) are priced per minute of audio with
    /// --usd-per-minute, text-to-speech models (`hearth provider voice`) per million characters
    /// with --usd-per-million-chars. --no-vision marks a model that cannot see images: a member's photo then
    /// gets a kind note instead of an error from the provider; --vision takes the mark away.
    ///
    /// Examples:
    ///   hearth price set gpt-4o-mini --input-usd-per-mtok 0.15 --output-usd-per-mtok 0.60
    ///   hearth price set claude-sonnet-4-5 --input-usd-per-mtok 3 --output-usd-per-mtok 15 \
    ///       --cached-input-usd-per-mtok 0.30
    ///   hearth price set claude-sonnet-4-5 --input-usd-per-mtok 3 --output-usd-per-mtok 15 \
    ///       --cache-write-usd-per-mtok 3.75
    ///   hearth price set whisper-1 --usd-per-minute 0.006
    ///   hearth price set tts-1 --usd-per-million-chars 15
    ///   hearth price set deepseek-chat --no-vision
    ///
    /// Prints the model's price; --json as {"model","input_usd_per_mtok","output_usd_per_mtok",
    /// "cached_input_usd_per_mtok","cache_write_usd_per_mtok","source"}, plus "usd_per_minute" for a speech model,
    /// "usd_per_million_chars" for a text-to-speech model and "no_vision":true for a model marked
    /// as unable to see.
    #[command(
        verbatim_doc_comment,
        about = "Set what a model costs, in USD per million tokens, as on the provider's pricing page"
    )]
    Set(PriceSetArgs),
    /// List every model's price (USD per million tokens) and where it came from.
    ///
    /// The source is "admin" for a price set with `hearth price set`, otherwise the date Hearth's
    /// built-in price was taken: providers change prices, so check and set the ones you use.
    ///
    /// --json prints {"prices":[{"model","input_usd_per_mtok","output_usd_per_mtok",
    /// "cached_input_usd_per_mtok","cache_write_usd_per_mtok","source"}]}, with "usd_per_minute" for speech models,
    /// "usd_per_million_chars" for text-to-speech models and "no_vision":true for models marked
    /// as unable to see images.
    List(JsonArgs),
}

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("what").required(true).multiple(true).args(["input_usd_per_mtok", "usd_per_minute", "usd_per_million_chars", "no_vision", "vision"])
))]
pub struct PriceSetArgs {
    /// The model's name as the provider spells it, e.g. gpt-4o-mini.
    pub model: String,
    /// USD per million input (prompt) tokens, e.g. 0.15.
    // A negative amount gets the amount's own error (exit 4), not "unexpected argument".
    #[arg(long, value_name = "USD", allow_negative_numbers = true, requires = "output_usd_per_mtok")]
    pub input_usd_per_mtok: Option<String>,
    /// USD per million output (generated) tokens, e.g. 0.60.
    // A negative amount gets the amount's own error (exit 4), not "unexpected argument".
    #[arg(long, value_name = "USD", allow_negative_numbers = true, requires = "input_usd_per_mtok")]
    pub output_usd_per_mtok: Option<String>,
    /// USD per million cached input tokens, e.g. 0.075 [default: the input price].
    // A negative amount gets the amount's own error (exit 4), not "unexpected argument".
    #[arg(long, value_name = "USD", allow_negative_numbers = true, requires = "input_usd_per_mtok")]
    pub cached_input_usd_per_mtok: Option<String>,
    /// USD per million tokens written into the provider's prompt cache (Anthropic's cache
    /// writes), e.g. 3.75 [default: 1.25 × the input price].
    // A negative amount gets the amount's own error (exit 4), not "unexpected argument".
    #[arg(
        long,
        value_name = "USD",
        allow_negative_numbers = true,
        requires = "input_usd_per_mtok",
        alias = "usd-per-million-cache-write"
    )]
    pub cache_write_usd_per_mtok: Option<String>,
    /// USD per minute of audio, for a speech-recognition model, e.g. 0.006.
    #[arg(long, value_name = "USD", allow_negative_numbers = true)]
    pub usd_per_minute: Option<String>,
    /// USD per million characters of text, for a text-to-speech model, e.g. 15.
    #[arg(long, value_name = "USD", allow_negative_numbers = true)]
    pub usd_per_million_chars: Option<String>,
    /// The model cannot see images: members' photos get a kind note instead of a provider error.
    #[arg(long, conflicts_with = "vision")]
    pub no_vision: bool,
    /// The model can see images (takes a --no-vision mark away).
    #[arg(long)]
    pub vision: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum HouseholdCommand {
    /// Set or remove the monthly spending cap for the whole household, in USD.
    ///
    /// Once everyone together has spent this much in a calendar month, no assistant answers
    /// until the month ends or an admin allows more, whatever each member's own caps say.
    ///
    /// Examples:
    ///   hearth household cap --monthly-usd 30
    ///   hearth household cap --monthly-usd none
    ///
    /// Prints the cap after the change; --json as {"member":null,"daily_usd":null,"monthly_usd"}.
    #[command(verbatim_doc_comment, about = "Set or remove the monthly spending cap for the whole household, in USD")]
    Cap(HouseholdCapArgs),
    /// Set the time zone caps count days and months in, e.g. Europe/Berlin.
    ///
    /// Daily caps start over at midnight and monthly caps on the 1st, in this zone. Use an IANA
    /// name such as Europe/Berlin or America/New_York (`timedatectl list-timezones` lists them).
    ///
    /// --json prints {"timezone"}.
    Timezone(HouseholdTimezoneArgs),
    /// Start a member's conversation afresh when they write after HOURS without writing.
    ///
    /// As if they had sent /new, without the note: their assistant no longer sees the earlier
    /// conversation (it stays on disk, and what it remembers about them stays). 0 turns it off,
    /// the default.
    ///
    /// --json prints {"reset_after_idle_hours"}.
    IdleReset(HouseholdIdleResetArgs),
    /// How much disk each member's folder may take, in MB; 0: no limit (default 1024).
    ///
    /// A member whose folder grows past it gets a short note instead of an answer until it is
    /// smaller again (reminders still come), and you are told once. `hearth status` and
    /// `hearth doctor` show each folder against it.
    ///
    /// --json prints {"disk_quota_mb"}.
    DiskQuota(HouseholdDiskQuotaArgs),
    /// Ping a dead-man's switch (e.g. healthchecks.io) while all is well, so a dead box is noticed.
    ///
    /// Every few minutes Hearth opens the URL (a GET) while every bot works, the AI provider
    /// answers and the disk has room; when those pings stop — the computer is off, Hearth
    /// stopped, or something is wrong — the service tells you. Off by default.
    ///
    /// Examples:
    ///   hearth household heartbeat --url https://hc-ping.com/your-check-id --every-minutes 5
    ///   hearth household heartbeat off
    ///
    /// --json prints {"url","every_minutes"} (url null when off).
    #[command(
        verbatim_doc_comment,
        about = "Ping a dead-man's switch (e.g. healthchecks.io) while all is well, so a dead box is noticed"
    )]
    Heartbeat(HouseholdHeartbeatArgs),
    // The household bot and the family groups (#17): `bot`, `groups`, `group`.
    /// Show, set or remove the household bot: the family group's bot and your line to Hearth.
    ///
    /// One optional bot for the whole household (make it in @BotFather with /newbot; it must be
    /// no member's bot). Added to your family group, it answers members who mention it or reply
    /// to it — once you allow the group (`hearth household groups`). Members are recognised by
    /// the Telegram account they paired with their own bot. An admin who sends it /start gets
    /// alerts and approvals there.
    ///
    /// Examples:
    ///   hearth household bot                 shows it
    ///   hearth household bot set < token.txt the token on stdin, never on the command line
    ///   hearth household bot remove
    ///
    /// --json prints {"bot_username", "state", "admin_chats"} (null when there is none).
    #[command(verbatim_doc_comment)]
    Bot(HouseholdBotArgs),
    /// The group chats the household bot is in, and whether it may answer there.
    ///
    /// A group is "pending" (silent) until you allow it: `hearth household group allow ID`.
    ///
    /// --json prints [{"id", "title", "state", "present", "first_seen"}].
    Groups(HouseholdGroupsArgs),
    /// Allow the household bot to answer in a group, or keep it silent there for good.
    Group(HouseholdGroupArgs),
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct HouseholdBotArgs {
    #[command(subcommand)]
    pub command: Option<HouseholdBotCommand>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum HouseholdBotCommand {
    /// Set the household bot: paste its token from @BotFather on stdin. --json prints
    /// {"bot_username"}.
    Set(JsonArgs),
    /// Stop and forget the household bot (its token and the admins' chats with it). Known groups
    /// and your decisions on them stay.
    Remove(JsonArgs),
}

#[derive(Debug, Args)]
pub struct HouseholdGroupsArgs {
    /// Print the groups as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HouseholdGroupArgs {
    /// allow: answer members who mention the bot there; refuse: silent there for good.
    #[arg(value_enum)]
    pub decision: GroupDecision,
    /// The group's id, as `hearth household groups` shows it (negative).
    #[arg(allow_negative_numbers = true)]
    pub id: i64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What the admin decides about a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GroupDecision {
    Allow,
    Refuse,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("beat").required(true).args(["url", "off"])))]
pub struct HouseholdHeartbeatArgs {
    /// `off` stops the pings.
    #[arg(value_parser = ["off"], value_name = "off")]
    pub off: Option<String>,
    /// The service's ping URL (https:// or http://).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Minutes between pings, 1 to 1440.
    #[arg(long, value_name = "MINUTES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1440))]
    pub every_minutes: u32,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HouseholdDiskQuotaArgs {
    /// Megabytes each member's folder may take; 0: no limit.
    pub mb: u32,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HouseholdIdleResetArgs {
    /// Hours without a message after which the next one starts afresh; 0: never.
    pub hours: u32,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HouseholdCapArgs {
    /// Most the household may spend in one calendar month: USD, e.g. 30; `none` removes the cap.
    // A negative amount gets the amount's own error (exit 4), not "unexpected argument".
    #[arg(long, value_name = "USD", allow_negative_numbers = true)]
    pub monthly_usd: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HouseholdTimezoneArgs {
    /// An IANA time zone name, e.g. Europe/Berlin.
    pub zone: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct UsageArgs {
    #[command(subcommand)]
    pub command: Option<UsageCommand>,
    /// The month to report, as YYYY-MM [default: this month].
    #[arg(long, value_name = "YYYY-MM")]
    pub month: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Write every model call of a month as CSV to stdout, e.g. `> usage-2026-10.csv`.
    ///
    /// A header line, then one line per call: who, which chat and model, tokens, cost, how long it
    /// took, how it ended, and what it was for (kind "chat" or "speech_in", seconds of audio,
    /// images shown). The text is exactly what the gateway produced, for a spreadsheet.
    Export(UsageExportArgs),
}

#[derive(Debug, Args)]
pub struct UsageExportArgs {
    /// The month to export, as YYYY-MM, e.g. 2026-10.
    #[arg(long, value_name = "YYYY-MM")]
    pub month: String,
}

#[derive(Debug, Args)]
pub struct MemberAddArgs {
    /// The member's name as the assistant will call them, e.g. Rosa.
    pub name: String,
    /// Adult, teen or child: shapes how carefully their assistant answers.
    #[arg(long, value_enum, default_value_t = RoleArg::Adult)]
    pub role: RoleArg,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

/// A member's age group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Adult,
    /// Age-appropriate answers; serious worries go to a parent.
    Teen,
    /// Simple, kind and safe answers; grown-up matters go to a parent.
    Child,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("who").required(true).args(["name", "all"])))]
pub struct MemberPickArgs {
    /// The member's name (any case) or id.
    pub name: Option<String>,
    /// Every member.
    #[arg(long)]
    pub all: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `hearth member pause`: who, and for how long.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("how_long").args(["for_", "until", "tonight"])))]
pub struct MemberPauseArgs {
    #[command(flatten)]
    pub who: MemberPickArgs,
    /// For a while: 1h, 30m or 2h30m (at most a week).
    #[arg(long = "for", value_name = "DURATION")]
    pub for_: Option<String>,
    /// Until the household's clock next shows this time, e.g. 15:30.
    #[arg(long, value_name = "HH:MM")]
    pub until: Option<String>,
    /// Until 07:00 the next morning.
    #[arg(long)]
    pub tonight: bool,
}

impl MemberPauseArgs {
    /// How long, in the words `/pause` takes in Telegram (`routing::pause`); empty: until
    /// resumed.
    pub fn how_long(&self) -> String {
        match (&self.for_, &self.until, self.tonight) {
            (Some(d), _, _) => d.clone(),
            (_, Some(t), _) => format!("until {t}"),
            (_, _, true) => "tonight".into(),
            _ => String::new(),
        }
    }
}

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("change").required(true).multiple(true).args(["role", "persona", "model", "household_model", "quiet_hours", "voice_replies", "streaming", "alerts"])
))]
pub struct MemberSetArgs {
    /// The member's name (any case) or id.
    pub name: String,
    /// Adult, teen or child.
    #[arg(long, value_enum)]
    pub role: Option<RoleArg>,
    /// Notes for their assistant about them (up to 2000 characters); "" removes them.
    #[arg(long, value_name = "TEXT")]
    pub persona: Option<String>,
    /// A model of their own on the household's provider, e.g. gpt-4o-mini.
    #[arg(long, value_name = "MODEL", conflicts_with = "household_model")]
    pub model: Option<String>,
    /// Use the household's model again.
    #[arg(long)]
    pub household_model: bool,
    /// When their assistant rests, local time, e.g. 20:30-07:00 (may wrap midnight); `off` for
    /// never. Messages then get one short "resting time" note; reminders still come. A child
    /// gets 20:00-07:00 when added or made a child.
    #[arg(long, value_name = "HH:MM-HH:MM|off")]
    pub quiet_hours: Option<String>,
    /// When their assistant answers in voice (a voice message with the text as its caption):
    /// never, when-spoken (a voice message is answered in voice; the default) or always. Needs a
    /// voice service (`hearth provider voice`).
    #[arg(long, value_enum, value_name = "WHEN")]
    pub voice_replies: Option<VoiceRepliesArg>,
    /// Show replies as they are written (a live draft in their private chat while the
    /// assistant writes), or only when finished. On for everyone unless turned off.
    #[arg(long, value_enum, value_name = "on|off")]
    pub streaming: Option<OnOff>,
    /// What an admin is told on their phone about the household's health (a bot that stopped
    /// working, the AI provider failing, the disk nearly full, a failed backup, a restart after
    /// a power cut): all (and a line when each is fixed; the default), important (only the
    /// first four) or off. Questions about spending limits still come.
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub alerts: Option<AlertsArg>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What an admin hears about the household's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AlertsArg {
    /// Every alert, and a line when it is fixed.
    All,
    /// A bot that stopped working, the provider down, the disk nearly full, a failed backup.
    Important,
    /// None.
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VoiceRepliesArg {
    /// Always text.
    Never,
    /// A voice message is answered in voice; text with text.
    WhenSpoken,
    /// Every answer in voice.
    Always,
}

#[derive(Debug, Args)]
pub struct MemberExportArgs {
    /// The member's name (any case) or id.
    pub name: String,
    /// The folder to write the export into (it must exist), e.g. ~/Documents.
    pub dir: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct MemberNameArgs {
    /// The member's name (any case) or id.
    pub name: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the full status report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// How strongly members' assistants are kept apart from each other.
    #[arg(long, value_enum, env = "HEARTH_ISOLATION", default_value_t = Isolation::Auto, value_name = "LEVEL")]
    pub isolation: Isolation,
    /// The socket of a `hearth supervisor` running as root: when Hearth itself is not root, it
    /// asks the supervisor for members' OS accounts (isolation account or sandbox). Not needed
    /// when Hearth runs as root. [default: none, so without root workers run at "process"]
    #[arg(long, env = "HEARTH_SUPERVISOR_SOCKET", value_name = "PATH")]
    pub supervisor_socket: Option<PathBuf>,

    /// How many members' turns may run at once across the household. Each member has at most
    /// one at a time anyway; this only guards very large installs.
    #[arg(long, env = "HEARTH_TURN_CAP", value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub turn_cap: u32,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("admin").required(true).args(["admin_user", "admin_uid", "admin_group"])))]
pub struct SupervisorArgs {
    /// Where to listen. Its directory is created if missing and must belong to root and be
    /// writable by nobody else.
    #[arg(long, value_name = "PATH", default_value = hearth_isolation::supervisor::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// The user the gateway runs as: the only one whose connections are served.
    #[arg(long, value_name = "NAME")]
    pub admin_user: Option<String>,
    /// The same, as a numeric uid (`id -u NAME`).
    #[arg(long, value_name = "UID")]
    pub admin_uid: Option<String>,
    /// Serve the first member of this group (a name or gid) to connect, and only them from then
    /// on: for a supervisor whose service file cannot name the admin (the macOS LaunchDaemon).
    #[arg(long, value_name = "GROUP")]
    pub admin_group: Option<String>,
    /// Where --admin-group remembers its admin: a file only root may change. [default:
    /// /Library/Application Support/Hearth/supervisor-admin on macOS,
    /// /var/lib/hearth-supervisor/admin elsewhere]
    #[arg(long, value_name = "PATH")]
    pub admin_pin: Option<PathBuf>,
}

/// `hearth serve --isolation`: the level asked for. `auto` is resolved by the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Isolation {
    /// The strongest level this machine supports: sandbox or account when run as root or with a
    /// `hearth supervisor` that answers, else process (with a loud warning).
    Auto,
    /// Each member's worker is its own process with its own 0700 directory, but runs as the same
    /// OS user as the gateway: for development only.
    Process,
    /// Each member's worker runs as the member's own OS account, created by Hearth; needs root
    /// (or --supervisor-socket).
    Account,
    /// Account, plus a kernel sandbox around each worker (Landlock and seccomp on Linux) so it
    /// can reach only its own directory and no network; needs root (or --supervisor-socket).
    Sandbox,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print the report as JSON (the exit code is the same).
    #[arg(long)]
    pub json: bool,
    /// As root, first remove the member OS accounts (`hearth-*`) this household left behind:
    /// those made for its former members, or for a household whose folder is gone. An account
    /// that still runs processes, or whose member folder is still there, is kept, and so is one
    /// made by an older Hearth that did not record its household. What was done goes to stderr.
    #[arg(long)]
    pub fix_orphans: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many simulated household members chat.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=50))]
    pub members: u16,
    /// Stop after this many seconds of chatting (default: run until Ctrl-C).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
    /// How long the demo model takes to answer, in milliseconds.
    #[arg(long, value_name = "N", default_value_t = 1200)]
    pub model_latency_ms: u64,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// How many of the last lines to show.
    #[arg(long, short = 'n', value_name = "N", default_value_t = 50)]
    pub lines: usize,
    /// Keep printing new lines as they are written, until Ctrl-C.
    #[arg(long, short = 'f')]
    pub follow: bool,
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser as _};

    #[test]
    fn command_tree_is_consistent() {
        super::Cli::command().debug_assert();
    }

    /// Every `--help` text in the tree, by the command's path ("hearth member set").
    pub(crate) fn help_texts() -> Vec<(String, String)> {
        fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<(String, String)>) {
            let texts = [cmd.get_long_about(), cmd.get_about(), cmd.get_after_help(), cmd.get_after_long_help()];
            let text: Vec<String> = texts.into_iter().flatten().map(|t| t.to_string()).collect();
            out.push((path.to_owned(), text.join("\n")));
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), out);
            }
        }
        let mut out = Vec::new();
        walk(&super::Cli::command(), "hearth", &mut out);
        out
    }

    /// Every example a `--help` shows parses (`hearth-cli/tests/it/examples.rs` runs them against
    /// a test gateway too): `hearth member set Mia --quiet-hours 20:30-07:00` once failed here.
    #[test]
    fn every_example_in_the_help_parses() {
        let mut seen = 0;
        for (path, help) in help_texts() {
            for words in hearth_testkit::examples::help_examples(&help) {
                seen += 1;
                if let Err(e) = super::Cli::try_parse_from(&words) {
                    panic!("{path}: the example `{}` does not parse:\n{e}", words.join(" "));
                }
            }
        }
        assert!(seen >= 30, "only {seen} examples found");
    }
}
