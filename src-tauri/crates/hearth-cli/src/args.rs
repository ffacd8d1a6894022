//! The command tree. Names, flags and `--json` shapes are a public interface: people script
//! against them, so change them only with a deprecation path.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  unexpected error
  2  usage error (unknown command or flag)
  3  Hearth is not running for this data directory (start it with `hearth serve`)
  4  invalid input (malformed token, empty key, bad name or URL)
  5  not found (no such member)
  6  conflict (that name or bot is already taken)
  7  rejected by Telegram or the provider (e.g. a revoked token)
  8  Telegram or the provider could not be reached

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
    /// as root, else ~/.local/share/hearth; on macOS .../Application Support/Hearth]
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
    Serve,

    /// Choose the AI model provider the whole household uses.
    #[command(subcommand)]
    Provider(ProviderCommand),

    /// Add, list, pair or remove household members (each has their own Telegram bot).
    #[command(subcommand)]
    Member(MemberCommand),

    /// Show how every member's bot, queue and usage is doing right now.
    ///
    /// Per member: bot connection, whether their Telegram account is paired, their lane (idle,
    /// queued, or running for how long) and today's model calls and tokens. Overall: answers in
    /// progress against the household cap, worker processes, and the isolation level.
    Status(StatusArgs),

    /// Watch a simulated household chat through the real gateway — no tokens, keys or network.
    ///
    /// Starts a fake Telegram and a canned demo model on 127.0.0.1, a throwaway data directory,
    /// and the real gateway with a worker process per member. Simulated family members pair with
    /// their bots and chat; a live view shows each member's lane. Stops on Ctrl-C (or after
    /// --duration) and prints a summary. The data directory is deleted on exit.
    Demo(DemoArgs),

    /// Internal: one member's worker process, started by the gateway.
    #[command(hide = true)]
    Worker,
}

impl Command {
    /// Whether the command was asked for machine-readable output (errors then go to stdout too).
    pub fn json(&self) -> bool {
        match self {
            Command::Provider(ProviderCommand::Set(a)) => a.json,
            Command::Member(MemberCommand::Add(a)) => a.json,
            Command::Member(MemberCommand::List(a)) => a.json,
            Command::Member(MemberCommand::Remove(a) | MemberCommand::Pair(a)) => a.json,
            Command::Status(a) => a.json,
            Command::Serve | Command::Demo(_) | Command::Worker => false,
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
    ///   hearth provider set --kind anthropic --base-url https://api.anthropic.com --model claude-sonnet-4-5 --api-key-env ANTHROPIC_API_KEY
    ///   hearth provider set --kind openai --base-url http://localhost:11434/v1 --model llama3.2 --no-key
    #[command(verbatim_doc_comment)]
    Set(ProviderSetArgs),
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
    /// Print the result as JSON: {"kind","base_url","model"}.
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
    /// --json prints {"id","name","bot_username","pair_code","pair_link"}.
    Add(MemberAddArgs),
    /// List household members and whether their Telegram account is paired.
    ///
    /// --json prints {"members":[{"id","name","bot_username","paired","created_at"}]}.
    List(JsonArgs),
    /// Remove a member: stop their bot and worker, forget their token and pairing.
    ///
    /// Their conversations are moved to the data directory's archive/ folder, not deleted.
    /// --json prints {"removed":"NAME"}.
    Remove(MemberNameArgs),
    /// Issue a fresh pairing code for a member (e.g. a new phone, or the old code expired).
    ///
    /// --json prints {"member_id","name","bot_username","pair_code","pair_link","expires_at"}.
    Pair(MemberNameArgs),
}

#[derive(Debug, Args)]
pub struct MemberAddArgs {
    /// The member's name as the assistant will call them, e.g. Rosa.
    pub name: String,
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn command_tree_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
