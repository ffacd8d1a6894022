//! The bench's world: the simulated Telegram and model in this process, a real `hearth serve`
//! child on a temp data directory, a household set up through the control socket, and readings
//! from `/proc`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use hearth_gateway::control::{self, ClientError};
use hearth_proto::control::{ControlReply, ControlRequest, ProviderKind, StatusReport};
use hearth_sim::llm::{FakeLlm, LlmCall, Reply};
use hearth_sim::telegram::{FakeTelegram, FakeUser, SentMessage};
use tokio::task::JoinSet;

/// Member adds in flight at once over the control socket.
const ADD_CONCURRENCY: usize = 8;

/// One scenario's fakes and scratch directory; dropped (and removed) when the scenario ends.
pub struct Env {
    pub tg: FakeTelegram,
    pub llm: FakeLlm,
    /// When the model was asked for the newest message of a turn, keyed by its bench sequence
    /// number (see [`token`]); filled by the fake LLM's responder.
    pub model_calls: Arc<Mutex<Vec<(u64, Instant)>>>,
    pub hearth: PathBuf,
    tmp: tempfile::TempDir,
}

impl Env {
    /// `tmp_in`: where the scratch directory (and so the data directory) goes; default the
    /// system's temp directory.
    pub async fn new(hearth: &Path, tmp_in: Option<&Path>) -> anyhow::Result<Env> {
        let tg = FakeTelegram::start().await;
        let llm = FakeLlm::start().await;
        let model_calls: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
        let calls = model_calls.clone();
        // The default reply, plus a note of when the call came in. The responder runs after the
        // fake's latency, so these times are exact only for an instant model (the overhead runs).
        llm.set_responder(move |call: &LlmCall| {
            let text = call.last_user_text();
            if let Some(seq) = tokens(&text).max() {
                calls.lock().unwrap().push((seq, Instant::now()));
            }
            Reply::text(format!("You said: {text}"))
        });
        let mut builder = tempfile::Builder::new();
        builder.prefix("hearth-bench-");
        let tmp = match tmp_in {
            Some(dir) => builder.tempdir_in(dir),
            None => builder.tempdir(),
        }
        .context("create a temp directory")?;
        Ok(Env { tg, llm, model_calls, hearth: hearth.to_owned(), tmp })
    }

    pub fn data_dir(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.tmp.path().join("gateway.log")
    }

    /// Starts `hearth serve` on this env's data directory and waits until it answers.
    pub async fn start_gateway(&self) -> anyhow::Result<GatewayProc> {
        let gw = GatewayProc::spawn(&self.hearth, &self.data_dir(), &self.tg.api_url(), &self.log_path())?;
        gw.wait_ready(Duration::from_secs(30)).await.map_err(|e| anyhow!("{e}\n{}", self.log_tail()))?;
        Ok(gw)
    }

    /// The end of the gateway's log, for error messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n");
        format!("gateway log ({}):\n{tail}", self.log_path().display())
    }

    pub async fn control(&self, request: ControlRequest) -> anyhow::Result<ControlReply> {
        control::request(&self.data_dir(), request)
            .await
            .map_err(|e: ClientError| anyhow!("control request failed: {e}"))
    }

    pub async fn status(&self) -> anyhow::Result<StatusReport> {
        match self.control(ControlRequest::Status).await? {
            ControlReply::Status(s) => Ok(s),
            other => bail!("unexpected reply to Status: {other:?}"),
        }
    }

    pub async fn set_provider(&self) -> anyhow::Result<()> {
        self.control(ControlRequest::ProviderSet {
            kind: ProviderKind::Openai,
            base_url: self.llm.base_url(),
            model: "bench-model".into(),
            api_key: "sk-bench-not-a-secret".into(),
        })
        .await?;
        Ok(())
    }

    /// Adds `n` members, each with a new bot on the fake, and pairs a fake user with each by
    /// sending `/start <code>` and waiting for the welcome.
    pub async fn add_members(&self, first: usize, n: usize) -> anyhow::Result<Vec<Member>> {
        let mut added = Vec::with_capacity(n);
        let mut set = JoinSet::new();
        let mut next = first;
        let end = first + n;
        while next < end || !set.is_empty() {
            while next < end && set.len() < ADD_CONCURRENCY {
                let i = next;
                next += 1;
                let bot = self.tg.add_bot(&format!("bench{i}_bot"));
                let dir = self.data_dir();
                set.spawn(async move {
                    let reply = control::request(
                        &dir,
                        ControlRequest::MemberAdd {
                            name: format!("Bench {i}"),
                            bot_token: bot.token.clone(),
                            role: Default::default(),
                        },
                    )
                    .await;
                    (i, bot, reply)
                });
            }
            let Some(joined) = set.join_next().await else { break };
            let (i, bot, reply) = joined.context("member add task")?;
            match reply {
                Ok(ControlReply::MemberAdded(m)) => added.push((i, bot, m)),
                Ok(other) => bail!("unexpected reply to MemberAdd: {other:?}"),
                Err(e) => bail!("adding member {i} failed: {e}\n{}", self.log_tail()),
            }
        }
        added.sort_by_key(|(i, _, _)| *i);
        let mut members = Vec::with_capacity(n);
        for (i, bot, m) in added {
            let user = self.tg.user(500_000 + i as i64, &format!("User{i}"));
            self.tg.send_text(&bot.token, &user, &format!("/start {}", m.pair_code));
            members.push(Member { id: m.id, token: bot.token, user });
        }
        let want: Vec<usize> = vec![1; members.len()];
        let timeout = Duration::from_secs(60 + n as u64 / 10);
        self.wait_counts(&members, &want, timeout).await.context("waiting for the pairing welcomes")?;
        for m in &members {
            let welcome = self.tg.sent_to(&m.token, m.user.id);
            if !welcome[0].text.contains("all set") {
                bail!("pairing {} failed: {:?}", m.id, welcome[0].text);
            }
        }
        Ok(members)
    }

    /// How many messages each member's bot has sent them so far.
    pub fn sent_counts(&self, members: &[Member]) -> Vec<usize> {
        members.iter().map(|m| self.tg.sent_to(&m.token, m.user.id).len()).collect()
    }

    /// Waits until member `i`'s bot has sent them at least `want[i]` messages. Polls (every
    /// 20 ms) rather than waking a waiter per bot on every send, so that waiting costs the
    /// machine almost nothing while it measures the gateway.
    pub async fn wait_counts(&self, members: &[Member], want: &[usize], timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut left: Vec<usize> = (0..members.len()).collect();
        loop {
            left.retain(|&i| self.tg.sent_to(&members[i].token, members[i].user.id).len() < want[i]);
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let i = left[0];
                let got = self.tg.sent_to(&members[i].token, members[i].user.id);
                bail!(
                    "{} of {} bots had not answered within {timeout:?}; e.g. {} sent {} of {} messages: {:?}\n{}",
                    left.len(),
                    members.len(),
                    members[i].id,
                    got.len(),
                    want[i],
                    got.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Each member sends one message and waits for its answer: starts every worker.
    pub async fn warm_up(&self, members: &[Member], seq: &mut u64) -> anyhow::Result<()> {
        let mut want = self.sent_counts(members);
        for (m, w) in members.iter().zip(want.iter_mut()) {
            *seq += 1;
            self.tg.send_text(&m.token, &m.user, &format!("warm up {}", token(*seq)));
            *w += 1;
        }
        self.wait_counts(members, &want, Duration::from_secs(60 + members.len() as u64 / 2)).await
    }
}

pub struct Member {
    pub id: String,
    pub token: String,
    pub user: FakeUser,
}

/// The marker the bench puts in each message so a reply can be traced to what it answers.
pub fn token(seq: u64) -> String {
    format!("q{seq}x")
}

/// Every bench marker in a text.
pub fn tokens(text: &str) -> impl Iterator<Item = u64> + '_ {
    text.split(|c: char| !c.is_ascii_alphanumeric()).filter_map(|w| {
        let digits = w.strip_prefix('q')?.strip_suffix('x')?;
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok()).flatten()
    })
}

/// A message the bench sent in a measured phase.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    pub member: usize,
    pub seq: u64,
    pub at: Instant,
}

/// What became of a phase's messages.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Per answered message: time from its sending to the reply that answered it, with the
    /// sequence number.
    pub latencies: Vec<(u64, Duration)>,
    /// Replies that carried an answer (one reply may answer several messages: collect mode).
    pub replies: usize,
    /// Messages answered together with at least one other message.
    pub collected: usize,
    /// "Give me a moment" refusals (the member's queue was full).
    pub refused: usize,
    /// Replies that were neither: apologies for failures.
    pub errors: usize,
    pub unanswered: usize,
    /// When the last reply arrived.
    pub last_reply: Option<Instant>,
}

/// Matches replies to messages, per chat: a reply answers every earlier unanswered message up
/// to the newest marker it carries (the fake model echoes the turn's newest user text).
pub fn collect(env: &Env, members: &[Member], base_counts: &[usize], sent: &[Sent]) -> Outcome {
    let mut out = Outcome::default();
    let mut by_member: Vec<Vec<Sent>> = vec![Vec::new(); members.len()];
    for s in sent {
        by_member[s.member].push(*s);
    }
    for (i, m) in members.iter().enumerate() {
        let mut pending: Vec<Sent> = std::mem::take(&mut by_member[i]);
        if pending.is_empty() {
            continue;
        }
        pending.sort_by_key(|s| s.seq);
        let replies: Vec<SentMessage> = env.tg.sent_to(&m.token, m.user.id).into_iter().skip(base_counts[i]).collect();
        for r in &replies {
            let newest = tokens(&r.text).max();
            let Some(newest) = newest else {
                if r.text.starts_with("I still have") {
                    out.refused += 1;
                } else {
                    out.errors += 1;
                }
                continue;
            };
            let answered: Vec<Sent> = pending.iter().filter(|s| s.seq <= newest).copied().collect();
            if answered.is_empty() {
                continue;
            }
            pending.retain(|s| s.seq > newest);
            out.replies += 1;
            if answered.len() > 1 {
                out.collected += answered.len();
            }
            for s in answered {
                out.latencies.push((s.seq, r.at.saturating_duration_since(s.at)));
            }
            out.last_reply = out.last_reply.max(Some(r.at));
        }
        out.unanswered += pending.len();
    }
    out
}

/// Waits until every message of a phase is answered or refused, or `timeout` passes. Checks
/// every 50 ms, only once sending is over.
pub async fn wait_answered(env: &Env, members: &[Member], base: &[usize], sent: &[Sent], timeout: Duration) -> Outcome {
    let deadline = Instant::now() + timeout;
    loop {
        let o = collect(env, members, base, sent);
        if o.unanswered <= o.refused + o.errors || Instant::now() >= deadline {
            return o;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The gateway process

/// A soft and hard open-files limit to start the gateway with (`--gateway-nofile`), to see how it
/// fares under a service manager's default; unset, it inherits the bench's.
pub static GATEWAY_NOFILE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

pub struct GatewayProc {
    child: tokio::process::Child,
    pub pid: u32,
    pub spawned_at: Instant,
    data_dir: PathBuf,
}

impl GatewayProc {
    pub fn spawn(hearth: &Path, data_dir: &Path, tg_url: &str, log: &Path) -> anyhow::Result<GatewayProc> {
        let log_file =
            std::fs::OpenOptions::new().create(true).append(true).open(log).context("open the gateway log")?;
        let spawned_at = Instant::now();
        let mut cmd = tokio::process::Command::new(hearth);
        if let Some(&n) = GATEWAY_NOFILE.get() {
            // SAFETY: between fork and exec only setrlimit runs, which is async-signal-safe.
            unsafe {
                cmd.pre_exec(move || {
                    let l = libc::rlimit { rlim_cur: n, rlim_max: n };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &l) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let child = cmd
            .arg("serve")
            .env("HEARTH_DATA_DIR", data_dir)
            .env("HEARTH_TELEGRAM_API_URL", tg_url)
            .env("HEARTH_ISOLATION", "process")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {} serve", hearth.display()))?;
        let pid = child.id().context("the gateway exited at once")?;
        Ok(GatewayProc { child, pid, spawned_at, data_dir: data_dir.to_owned() })
    }

    /// Waits until the control socket answers `Status`.
    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            match control::request(&self.data_dir, ControlRequest::Status).await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => bail!("the gateway did not answer within {timeout:?}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    /// SIGTERM, then up to 20 s for the drain, then SIGKILL.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        // SAFETY: a signal to our own child, whose pid we hold and have not reaped.
        unsafe { libc::kill(self.pid as i32, libc::SIGTERM) };
        match tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                self.child.kill().await?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// /proc

/// Clock ticks per second, as `/proc/<pid>/stat` counts CPU time.
fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf only reads a constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// CPU time a process has used (user + system), in milliseconds, or `None` when it is gone.
pub fn cpu_ms(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line; `rest` starts at field 3.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 1000.0 / ticks_per_sec())
}

/// CPU milliseconds of this bench process (the fakes run here).
pub fn self_cpu_ms() -> f64 {
    cpu_ms(std::process::id()).unwrap_or(0.0)
}

/// A `kB` field of `/proc/<pid>/status` (VmRSS, VmHWM, …) in MB.
pub fn status_mb(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
    let kb: f64 = line[field.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb / 1024.0)
}

pub fn threads(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|v| v.trim().parse().ok())
}

pub fn open_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd")).ok().map(|d| d.count())
}

/// Child processes of `pid` (every thread's children).
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Summed CPU milliseconds of a set of processes (those gone count as 0).
pub fn cpu_ms_sum(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|&p| cpu_ms(p)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found() {
        let got: Vec<u64> = tokens("You said: hello q12x\n\nand q7x, not q x or qx or q1y").collect();
        assert_eq!(got, vec![12, 7]);
        assert_eq!(token(3), "q3x");
    }

    #[test]
    fn own_cpu_and_memory_are_readable() {
        let me = std::process::id();
        assert!(cpu_ms(me).is_some());
        assert!(status_mb(me, "VmRSS").unwrap() > 0.1);
        assert!(threads(me).unwrap() >= 1);
    }
}
