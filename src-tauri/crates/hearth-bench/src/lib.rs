//! `hearth-bench`: measures the real `hearth serve` against `hearth-sim`'s simulated Telegram and
//! model on loopback, and prints the figures beside the targets of the benchmarks issue (and
//! OpenClaw's numbers). A crate of its own: it is a tool for whoever works on Hearth, not part of
//! what is installed, and it drives the `hearth` binary from outside like a service manager would.
//!
//! Each scenario starts its own fake Telegram and fake LLM in this process and its own
//! `hearth serve` child (`HEARTH_ISOLATION=process`, `RUST_LOG=warn`) on a temp data directory,
//! sets up the household through the control socket (provider, members, pairing by `/start
//! <code>`), measures, and stops everything. Nothing leaves loopback; every wait is bounded.
//!
//! ```text
//! cargo build --release -p hearth-cli -p hearth-bench   # both: the bench runs the `hearth` beside it
//! target/release/hearth-bench            # the full preset
//! target/release/hearth-bench --quick    # under a minute, for CI
//! target/release/hearth-bench --scenario fanout --fanout-sizes 20 --json
//! ```
//!
//! Modules: `harness` (the simulated services, the gateway process, the household, `/proc`
//! readings), `scenarios` (idle, fan-out, overhead & throughput, head-of-line, cold start),
//! `voice` (a voice note's way), `streaming` (first visible text, and streaming's cost),
//! `report` (summaries, machine details, targets, tables). `main.rs` only parses the command line
//! and prints what [`run`] returns; hearth-cli's `tests/it/bench.rs` calls [`run`] with the
//! `hearth` binary of its own build.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use serde_json::json;

mod harness;
mod report;
mod scenarios;
mod streaming;
mod voice;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Idle,
    Fanout,
    Overhead,
    HeadOfLine,
    ColdStart,
    Voice,
    Streaming,
}

/// Benchmarks of the Hearth gateway on local fakes.
#[derive(Debug, Parser)]
#[command(name = "hearth-bench", version, max_term_width = 100)]
pub struct Cli {
    /// A small preset that runs in under a minute (for CI). Default: the full preset.
    #[arg(long)]
    quick: bool,
    /// Scenarios to run (comma-separated); default all.
    #[arg(long, value_enum, value_delimiter = ',')]
    scenario: Vec<Scenario>,
    /// Print JSON (machine details first) instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write the JSON to this file.
    #[arg(long, value_name = "FILE")]
    json_out: Option<PathBuf>,
    /// The `hearth` binary to measure [default: the one next to this binary].
    #[arg(long, value_name = "PATH")]
    hearth: Option<PathBuf>,
    /// Where the data directories go [default: the system's temp directory]. E.g. a tmpfs, to
    /// see what the disk's fsyncs cost.
    #[arg(long, value_name = "DIR")]
    tmp_dir: Option<PathBuf>,
    /// Start the gateway with this open-files limit (soft and hard), e.g. 1024 as under a service
    /// manager's default [default: the bench's own, raised to its hard limit].
    #[arg(long, value_name = "N")]
    gateway_nofile: Option<u64>,
    /// Before starting, wait (up to 15 minutes) until the 1-minute load average is below this.
    #[arg(long, value_name = "LOAD")]
    wait_load: Option<f64>,

    /// Idle: numbers of bots, e.g. 1,20,200,1000.
    #[arg(long, value_delimiter = ',')]
    idle_sizes: Option<Vec<usize>>,
    /// Idle: how long to let the gateway settle before reading its memory (ms).
    #[arg(long)]
    idle_settle_ms: Option<u64>,
    /// Fan-out: numbers of bots, e.g. 5,20.
    #[arg(long, value_delimiter = ',')]
    fanout_sizes: Option<Vec<usize>>,
    /// Fan-out: model latency (ms).
    #[arg(long)]
    fanout_latency_ms: Option<u64>,
    /// Fan-out: also run with cold workers (started by the message).
    #[arg(long)]
    fanout_cold: Option<bool>,
    /// Overhead: messages per second at the fixed rate.
    #[arg(long)]
    rate: Option<f64>,
    /// Overhead and throughput: bots the messages are spread over.
    #[arg(long)]
    rate_bots: Option<usize>,
    /// Overhead: seconds at the fixed rate.
    #[arg(long)]
    rate_secs: Option<f64>,
    /// Throughput: the open-loop rates to step through until replies lag (msg/s).
    #[arg(long, value_delimiter = ',')]
    ceiling_rates: Option<Vec<f64>>,
    /// Throughput: seconds per step.
    #[arg(long)]
    ceiling_secs: Option<f64>,
    /// Throughput: a step lags when its p99 latency reaches this (ms).
    #[arg(long)]
    lag_ms: Option<f64>,
    /// Head-of-line: how long the stalled member's model call is held (s).
    #[arg(long)]
    hol_stall_secs: Option<u64>,
    /// Head-of-line: members whose model stalls.
    #[arg(long)]
    hol_stalled: Option<usize>,
    /// Head-of-line: members chatting meanwhile.
    #[arg(long)]
    hol_bots: Option<usize>,
    /// Head-of-line: seconds of the no-stall baseline.
    #[arg(long)]
    hol_phase_secs: Option<u64>,
    /// Head-of-line: model latency for everyone else (ms).
    #[arg(long)]
    hol_latency_ms: Option<u64>,
    /// Cold start: fresh members to measure.
    #[arg(long)]
    cold_members: Option<usize>,
    /// Voice: 30-second voice notes to time, one after another.
    #[arg(long)]
    voice_notes: Option<usize>,
    /// Voice: members sending a voice note at once, for the memory reading.
    #[arg(long)]
    voice_in_flight: Option<usize>,
    /// Voice: the fake's latency per call, transcription and chat (ms).
    #[arg(long)]
    voice_latency_ms: Option<u64>,
    /// Streaming: members answered at once, streaming on against off.
    #[arg(long)]
    stream_members: Option<usize>,
    /// Streaming: messages timed one at a time, each way (on and off).
    #[arg(long)]
    stream_repeats: Option<usize>,
    /// Streaming: rounds of every member at once, each way (alternating on and off).
    #[arg(long)]
    stream_rounds: Option<usize>,
}

/// Everything a scenario is told: a preset with the command line's overrides applied.
pub(crate) struct Params {
    pub hearth: PathBuf,
    pub tmp_dir: Option<PathBuf>,
    pub idle_sizes: Vec<usize>,
    pub idle_settle: Duration,
    pub idle_window: Duration,
    pub fanout_sizes: Vec<usize>,
    pub fanout_latency: Duration,
    pub fanout_cold: bool,
    pub rate: f64,
    pub rate_bots: usize,
    pub rate_secs: f64,
    pub ceiling_rates: Vec<f64>,
    pub ceiling_secs: f64,
    pub lag_ms: f64,
    pub hol_stall: Duration,
    pub hol_stalled: usize,
    pub hol_bots: usize,
    pub hol_phase: Duration,
    pub hol_latency: Duration,
    pub cold_members: usize,
    pub voice_notes: usize,
    pub voice_in_flight: usize,
    pub voice_latency: Duration,
    pub stream_members: usize,
    pub stream_repeats: usize,
    pub stream_rounds: usize,
}

impl Params {
    fn full(hearth: PathBuf) -> Self {
        Self {
            hearth,
            tmp_dir: None,
            idle_sizes: vec![1, 20, 100, 200, 1000],
            idle_settle: Duration::from_secs(3),
            // Longer than the 25 s long poll, so every bot re-polls inside the window.
            idle_window: Duration::from_secs(30),
            fanout_sizes: vec![5, 20],
            fanout_latency: Duration::from_secs(2),
            fanout_cold: true,
            rate: 200.0,
            rate_bots: 100,
            rate_secs: 10.0,
            ceiling_rates: vec![300.0, 400.0, 500.0, 600.0, 800.0, 1000.0, 1500.0, 2000.0],
            ceiling_secs: 5.0,
            lag_ms: 100.0,
            hol_stall: Duration::from_secs(60),
            hol_stalled: 1,
            hol_bots: 10,
            hol_phase: Duration::from_secs(20),
            hol_latency: Duration::from_millis(200),
            cold_members: 10,
            voice_notes: 10,
            voice_in_flight: 20,
            voice_latency: Duration::from_secs(1),
            stream_members: 20,
            stream_repeats: 5,
            stream_rounds: 2,
        }
    }

    fn quick(hearth: PathBuf) -> Self {
        Self {
            idle_sizes: vec![1, 20],
            idle_settle: Duration::from_millis(500),
            idle_window: Duration::from_secs(1),
            fanout_sizes: vec![5, 20],
            fanout_cold: false,
            rate: 100.0,
            rate_bots: 20,
            rate_secs: 2.0,
            ceiling_rates: vec![250.0],
            ceiling_secs: 2.0,
            hol_stall: Duration::from_secs(10),
            hol_bots: 5,
            hol_phase: Duration::from_secs(4),
            cold_members: 3,
            voice_notes: 3,
            stream_members: 5,
            stream_repeats: 2,
            stream_rounds: 1,
            ..Self::full(hearth)
        }
    }

    fn apply(&mut self, c: &Cli) {
        macro_rules! set {
            ($field:ident, $from:expr) => {
                if let Some(v) = $from {
                    self.$field = v;
                }
            };
        }
        self.tmp_dir = c.tmp_dir.clone();
        set!(idle_sizes, c.idle_sizes.clone());
        set!(idle_settle, c.idle_settle_ms.map(Duration::from_millis));
        set!(fanout_sizes, c.fanout_sizes.clone());
        set!(fanout_latency, c.fanout_latency_ms.map(Duration::from_millis));
        set!(fanout_cold, c.fanout_cold);
        set!(rate, c.rate);
        set!(rate_bots, c.rate_bots);
        set!(rate_secs, c.rate_secs);
        set!(ceiling_rates, c.ceiling_rates.clone());
        set!(ceiling_secs, c.ceiling_secs);
        set!(lag_ms, c.lag_ms);
        set!(hol_stall, c.hol_stall_secs.map(Duration::from_secs));
        set!(hol_stalled, c.hol_stalled);
        set!(hol_bots, c.hol_bots);
        set!(hol_phase, c.hol_phase_secs.map(Duration::from_secs));
        set!(hol_latency, c.hol_latency_ms.map(Duration::from_millis));
        set!(cold_members, c.cold_members);
        set!(voice_notes, c.voice_notes);
        set!(voice_in_flight, c.voice_in_flight);
        set!(voice_latency, c.voice_latency_ms.map(Duration::from_millis));
        set!(stream_members, c.stream_members);
        set!(stream_repeats, c.stream_repeats);
        set!(stream_rounds, c.stream_rounds);
    }

    fn json(&self) -> serde_json::Value {
        let tmp = self.tmp_dir.clone().unwrap_or_else(std::env::temp_dir);
        let nofile = harness::GATEWAY_NOFILE.get().copied();
        let fs = std::process::Command::new("stat").args(["-f", "-c", "%T"]).arg(&tmp).output().ok();
        let fs = fs.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default();
        json!({
            "data_dirs_in": tmp.display().to_string(), "data_dirs_filesystem": fs, "gateway_nofile": nofile,
            "idle_sizes": self.idle_sizes, "idle_settle_ms": self.idle_settle.as_millis() as u64,
            "fanout_sizes": self.fanout_sizes, "fanout_latency_ms": self.fanout_latency.as_millis() as u64,
            "fanout_cold": self.fanout_cold, "rate": self.rate, "rate_bots": self.rate_bots, "rate_secs": self.rate_secs,
            "ceiling_rates": self.ceiling_rates, "ceiling_secs": self.ceiling_secs, "lag_ms": self.lag_ms,
            "hol_stall_s": self.hol_stall.as_secs(), "hol_stalled": self.hol_stalled, "hol_bots": self.hol_bots,
            "hol_phase_s": self.hol_phase.as_secs(), "hol_latency_ms": self.hol_latency.as_millis() as u64,
            "cold_members": self.cold_members, "voice_notes": self.voice_notes,
            "voice_in_flight": self.voice_in_flight, "voice_latency_ms": self.voice_latency.as_millis() as u64,
            "stream_members": self.stream_members, "stream_repeats": self.stream_repeats,
            "stream_rounds": self.stream_rounds,
        })
    }
}

/// Runs the scenarios `cli` asks for and returns what to print: the JSON report with `--json`, else
/// the tables. Progress goes to stderr as it happens; `--json-out` is written here.
pub async fn run(cli: Cli) -> anyhow::Result<String> {
    let hearth = match &cli.hearth {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("find this binary")?.with_file_name("hearth"),
    };
    anyhow::ensure!(
        hearth.is_file(),
        "{} not found; build it with `cargo build --release -p hearth-cli` (or pass --hearth)",
        hearth.display()
    );
    let mut p = if cli.quick { Params::quick(hearth.clone()) } else { Params::full(hearth.clone()) };
    p.apply(&cli);
    raise_open_files_limit();
    if let Some(n) = cli.gateway_nofile {
        let _ = harness::GATEWAY_NOFILE.set(n);
    }

    if let Some(max) = cli.wait_load {
        let deadline = Instant::now() + Duration::from_secs(900);
        while report::load_average().first().is_some_and(|l| *l >= max) && Instant::now() < deadline {
            eprintln!("load average {:?} ≥ {max}; waiting", report::load_average());
            tokio::time::sleep(Duration::from_secs(15)).await;
        }
    }
    let machine = report::machine(&hearth);
    let scenarios = if cli.scenario.is_empty() {
        vec![
            Scenario::Idle,
            Scenario::Fanout,
            Scenario::Overhead,
            Scenario::HeadOfLine,
            Scenario::ColdStart,
            Scenario::Voice,
            Scenario::Streaming,
        ]
    } else {
        cli.scenario.clone()
    };
    let started = Instant::now();
    let mut sections = Vec::new();
    for s in &scenarios {
        eprintln!("hearth-bench: {s:?}");
        let t0 = Instant::now();
        let mut section = match s {
            Scenario::Idle => scenarios::idle(&p).await,
            Scenario::Fanout => scenarios::fanout(&p).await,
            Scenario::Overhead => scenarios::overhead(&p).await,
            Scenario::HeadOfLine => scenarios::head_of_line(&p).await,
            Scenario::ColdStart => scenarios::cold_start(&p).await,
            Scenario::Voice => voice::voice(&p).await,
            Scenario::Streaming => streaming::streaming(&p).await,
        }
        .with_context(|| format!("scenario {s:?}"))?;
        section.json["duration_s"] = json!(report::r2(t0.elapsed().as_secs_f64()));
        sections.push(section);
    }
    let targets: Vec<&report::Target> = sections.iter().flat_map(|s| s.targets.iter()).collect();
    let load_end = report::load_average();
    let scenario_json: serde_json::Map<String, serde_json::Value> =
        sections.iter().map(|s| (s.title.clone(), s.json.clone())).collect();
    // Machine details first, then the rest in reading order (serde_json's maps sort their keys).
    let fields = [
        ("machine", machine),
        ("load_average_at_end", json!(load_end)),
        ("preset", json!(if cli.quick { "quick" } else { "full" })),
        ("params", p.json()),
        ("duration_s", json!(report::r2(started.elapsed().as_secs_f64()))),
        ("targets", json!(targets.iter().map(|t| t.json()).collect::<Vec<_>>())),
        ("scenarios", serde_json::Value::Object(scenario_json)),
    ];
    let text = report::ordered_json(&fields)?;
    let out: serde_json::Map<String, serde_json::Value> = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    if let Some(path) = &cli.json_out {
        std::fs::write(path, text.clone() + "\n").with_context(|| format!("write {}", path.display()))?;
    }
    if cli.json {
        return Ok(text + "\n");
    }
    let m = &out["machine"];
    let params = &out["params"];
    let mut printed = format!(
        "Hearth benchmarks ({} preset) — {} | {} cores | {} MB | Linux {} | {} ({} build)\n\
         data directories in {} ({}) | load average at start {} / at end {} | {:.0} s in all\n",
        out["preset"].as_str().unwrap_or_default(),
        m["cpu"].as_str().unwrap_or_default(),
        m["cores"],
        m["memory_mb"],
        m["kernel"].as_str().unwrap_or_default(),
        m["hearth_version"].as_str().unwrap_or_default(),
        m["build_profile"].as_str().unwrap_or_default(),
        params["data_dirs_in"].as_str().unwrap_or_default(),
        params["data_dirs_filesystem"].as_str().unwrap_or_default(),
        m["load_average_at_start"],
        json!(load_end),
        started.elapsed().as_secs_f64(),
    );
    printed.push('\n');
    for s in &sections {
        printed += &format!("== {} ==\n{}\n", s.title, s.text);
    }
    let mut t = report::Table::new(&["", "target", "issue's target", "measured"]);
    for target in &targets {
        t.row(vec![target.mark().into(), target.name.clone(), target.target.clone(), target.measured.clone()]);
    }
    printed += &format!("== targets ==\n{}\n", t.render());
    Ok(printed)
}

/// A thousand bots need more than the usual 1024 descriptors (a socket each, in the gateway and
/// in the fake): raise the soft limit to the hard one, for this process and the gateway it
/// starts. The limit in force is printed with the machine details.
fn raise_open_files_limit() {
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: get/setrlimit read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}
