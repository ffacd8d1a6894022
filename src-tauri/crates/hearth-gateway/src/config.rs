//! What the gateway can be told at start: [`GatewayConfig`] and [`IsolationChoice`]. Plain
//! data; `isolation.rs` turns the choice into a level, `gateway.rs` wires the rest.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hearth_llm::{CallLimits, RetryPolicy};

use crate::broker;
use crate::clock::Clock;
use crate::keeper;
use crate::secrets::SecretsBackend;
use crate::telegram::Backoff;

/// Which isolation level to run workers at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationChoice {
    /// As root, or through a `hearth supervisor` that answers: an OS account per member, plus
    /// the sandbox where the kernel supports it. Otherwise "process", with a loud warning.
    #[default]
    Auto,
    Process,
    Account,
    AccountSandbox,
}

impl std::str::FromStr for IsolationChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "auto" => Ok(Self::Auto),
            "process" => Ok(Self::Process),
            "account" => Ok(Self::Account),
            "sandbox" | "account+sandbox" => Ok(Self::AccountSandbox),
            other => Err(format!("unknown isolation {other:?}: use auto, process, account or sandbox")),
        }
    }
}

/// Everything the gateway can be told at start. [`GatewayConfig::new`] gives the appliance
/// defaults; tests and the demo shorten the times.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub data_dir: PathBuf,
    /// Bot API root for every bot; `None` means Telegram itself.
    pub telegram_api_url: Option<String>,
    /// Binary and arguments that run a worker (`hearth worker`).
    pub worker_exe: PathBuf,
    pub worker_args: Vec<OsString>,
    /// Turns running at once across the household (`HEARTH_TURN_CAP`, default 64).
    pub turn_cap: usize,
    /// Messages one member may have waiting.
    pub queue_cap: usize,
    pub worker_idle: Duration,
    pub turn_timeout: Duration,
    pub poll_timeout: Duration,
    pub backoff: Backoff,
    pub llm_limits: CallLimits,
    pub llm_retry: RetryPolicy,
    /// Ask providers to stream their answers (usage is read from the stream's end).
    pub llm_stream: bool,
    /// Serve the owner-only control socket for the CLI.
    pub control_socket: bool,
    /// How often a stranger may get the "private bot" reply.
    pub stranger_reply_window: Duration,
    /// Tokens of conversation the worker may put in a prompt.
    pub context_tokens: u32,
    pub max_output_tokens: u32,
    /// How strongly members' workers are separated (`HEARTH_ISOLATION`).
    pub isolation: IsolationChoice,
    /// The `hearth supervisor` socket (`HEARTH_SUPERVISOR_SOCKET`): when the gateway is not
    /// root, member accounts are created and workers started through it. Ignored as root, where
    /// the gateway does this itself.
    pub supervisor_socket: Option<PathBuf>,
    /// Where `ProviderDetect` looks for model servers on this machine: (name, root URL). A name
    /// containing "ollama" is asked Ollama's `/api/tags`; any other the OpenAI-style `/v1/models`.
    pub local_providers: Vec<(String, String)>,
    /// "Now" for reminders and turn contexts: the system clock, or a manual one in tests.
    pub clock: Clock,
    /// Where bot tokens and provider keys are kept. `None`: `HEARTH_SECRETS` (`file` or
    /// `keychain`) when set, else [`SecretsBackend::platform_default`] — the Keychain on macOS,
    /// a 0600 file elsewhere. A throwaway household (the demo) sets `File`, so that it leaves
    /// nothing behind in the Keychain.
    pub secrets: Option<SecretsBackend>,
    /// How a long-lived task that panicked is restarted, and when the gateway gives up
    /// (`keeper.rs`).
    pub restarts: keeper::Policy,
    /// How full the data folder's disk is, in percent, for the admins' alerts: `None` measures
    /// the real disk (`statvfs`, as the app's host line does); tests hand in a probe to play a
    /// full disk.
    pub disk_fill: Option<DiskProbe>,
    /// Test-only: panics injected on purpose, to show that a panic is contained. Empty in every
    /// real gateway; not part of the supported API.
    #[doc(hidden)]
    pub faults: Faults,
}

impl GatewayConfig {
    pub fn new(data_dir: PathBuf, worker_exe: PathBuf) -> Self {
        Self {
            data_dir,
            telegram_api_url: None,
            worker_exe,
            worker_args: vec!["worker".into()],
            // Each member has at most one turn at a time, so a household's lanes bound themselves;
            // this cap only guards very large installs. At 8 (OpenClaw's figure, and the first
            // draft of the spec) a 20-member fan-out came back in waves of 8 and 8 stalled models
            // held everyone up (BENCHMARKS.md).
            turn_cap: 64,
            queue_cap: 20,
            worker_idle: Duration::from_secs(300),
            turn_timeout: Duration::from_secs(600),
            poll_timeout: Duration::from_secs(25),
            backoff: Backoff::default(),
            llm_limits: broker::default_limits(),
            llm_retry: RetryPolicy::default(),
            llm_stream: true,
            control_socket: true,
            stranger_reply_window: Duration::from_secs(3600),
            context_tokens: 12_000,
            max_output_tokens: 1_024,
            isolation: IsolationChoice::Auto,
            supervisor_socket: None,
            local_providers: vec![
                ("Ollama".to_owned(), "http://127.0.0.1:11434".to_owned()),
                ("LM Studio".to_owned(), "http://127.0.0.1:1234".to_owned()),
            ],
            clock: Clock::system(),
            secrets: None,
            restarts: keeper::Policy::default(),
            disk_fill: None,
            faults: Faults::default(),
        }
    }
}

/// Measures how full the disk holding a folder is, in percent (see `GatewayConfig::disk_fill`).
#[derive(Clone)]
pub struct DiskProbe(pub Arc<MeasureDisk>);

/// What a [`DiskProbe`] calls: the folder in, percent used out.
pub type MeasureDisk = dyn Fn(&std::path::Path) -> std::io::Result<u8> + Send + Sync;

impl std::fmt::Debug for DiskProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DiskProbe")
    }
}

/// Where a test may make the gateway panic (see [`Faults`]).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultSite<'a> {
    /// The core loop is about to handle an inbox row with this text.
    InboxRow { member_id: &'a str, text: &'a str },
    /// A turn's task has the worker's answer and is about to send it.
    TurnReply { member_id: &'a str, text: &'a str },
}

/// Test-only fault injection: `panic_at` is asked at each [`FaultSite`], and the gateway panics
/// there when it answers `true`. The panic-containment tests use it; nothing else sets it.
#[doc(hidden)]
#[derive(Clone, Default)]
pub struct Faults {
    pub panic_at: Option<PanicAt>,
}

/// Asked at each [`FaultSite`]: `true` panics there.
#[doc(hidden)]
pub type PanicAt = Arc<dyn Fn(FaultSite<'_>) -> bool + Send + Sync>;

impl Faults {
    /// Panics if the test asked for a panic at `site`.
    pub(crate) fn check(&self, site: FaultSite<'_>) {
        if let Some(hook) = &self.panic_at
            && hook(site)
        {
            panic!("injected for a test at {site:?}");
        }
    }
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.panic_at.is_some() { "Faults(test hook set)" } else { "Faults(none)" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolation_choices_parse() {
        assert_eq!("sandbox".parse::<IsolationChoice>(), Ok(IsolationChoice::AccountSandbox));
        assert_eq!("process".parse::<IsolationChoice>(), Ok(IsolationChoice::Process));
        assert!("strong".parse::<IsolationChoice>().unwrap_err().contains("auto, process, account or sandbox"));
    }
}
