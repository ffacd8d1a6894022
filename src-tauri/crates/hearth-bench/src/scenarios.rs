//! The first five scenarios (the voice scenario is `voice.rs`). Each sets up its own fakes and gateway, measures, stops everything, and
//! returns its figures as JSON, a table, and the targets it speaks to.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hearth_sim::llm::Rule;
use serde_json::{Value, json};

use crate::Params;
use crate::harness::{self, Env, Member, Sent, token};
use crate::report::{Summary, Table, Target, ms, r2};

pub struct Section {
    pub title: String,
    pub json: Value,
    pub text: String,
    pub targets: Vec<Target>,
}

/// OpenClaw's figures from the issue, on the same kind of machine and the same fakes.
pub const OPENCLAW_IDLE: &str = "20 bots: ~1.8 GB resident, 18–25 s until every bot polls";
pub const OPENCLAW_FANOUT_20: &str = "20 bots, 2 s model: replies after 4–18 s, median ~11 s";
pub const OPENCLAW_FANOUT_5: &str = "5 bots, 2 s model: replies after 3–8 s";
pub const OPENCLAW_CPU: &str = "0.3–1 CPU-second per message";

fn mb(x: f64) -> String {
    format!("{x:.1} MB")
}

// ---------------------------------------------------------------------------------------------
// idle

struct IdleRow {
    bots: usize,
    rss: f64,
    hwm: f64,
    threads: u64,
    fds: usize,
    all_polling: Duration,
    first_poll: Duration,
    cpu_ms_per_s: f64,
    workers: usize,
    setup: Duration,
}

pub async fn idle(p: &Params) -> anyhow::Result<Section> {
    let mut rows = Vec::new();
    for &n in &p.idle_sizes {
        eprintln!("  idle: {n} bots");
        rows.push(idle_one(p, n).await.with_context(|| format!("idle with {n} bots"))?);
    }
    let mut t = Table::new(&[
        "bots",
        "gateway RSS",
        "peak RSS",
        "threads",
        "fds",
        "all polling",
        "idle CPU",
        "workers",
        "+MB/bot",
    ]);
    let mut marginal = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let per_bot = (i > 0).then(|| {
            let prev = &rows[i - 1];
            (r.rss - prev.rss) / (r.bots as f64 - prev.bots as f64)
        });
        if let Some(m) = per_bot {
            marginal.push(json!({ "from": rows[i - 1].bots, "to": r.bots, "mb_per_bot": r2(m * 1000.0) / 1000.0 }));
        }
        t.row(vec![
            r.bots.to_string(),
            mb(r.rss),
            mb(r.hwm),
            r.threads.to_string(),
            r.fds.to_string(),
            ms(r.all_polling.as_secs_f64() * 1000.0),
            format!("{:.2} ms/s", r.cpu_ms_per_s),
            r.workers.to_string(),
            per_bot.map(|m| format!("{:.3}", m)).unwrap_or_else(|| "–".into()),
        ]);
    }
    let mut targets = Vec::new();
    match rows.iter().find(|r| r.bots == 20) {
        Some(r) => {
            targets.push(Target::new("idle: 20 bots resident", "< 40 MB", mb(r.rss), Some(r.rss < 40.0)));
            let s = r.all_polling.as_secs_f64() * 1000.0;
            targets.push(Target::new("idle: 20 bots all polling", "≤ 1 s from start", ms(s), Some(s <= 1000.0)));
        }
        None => {
            targets.push(Target::new("idle: 20 bots resident", "< 40 MB", "not run".into(), None));
            targets.push(Target::new("idle: 20 bots all polling", "≤ 1 s from start", "not run".into(), None));
        }
    }
    // The issue asks between 100 and 1000; take the widest span inside it that was run.
    let lo = rows.iter().filter(|r| r.bots >= 100).min_by_key(|r| r.bots);
    let hi = rows.iter().filter(|r| r.bots <= 1000).max_by_key(|r| r.bots);
    match (lo, hi) {
        (Some(lo), Some(hi)) if hi.bots > lo.bots => {
            let m = (hi.rss - lo.rss) / (hi.bots - lo.bots) as f64;
            targets.push(Target::new(
                &format!("idle: MB per extra bot, {}→{}", lo.bots, hi.bots),
                "< 0.5 MB",
                format!("{m:.3} MB"),
                Some(m < 0.5),
            ));
        }
        _ => targets.push(Target::new("idle: MB per extra bot, 100→1000", "< 0.5 MB", "not run".into(), None)),
    }
    let text = format!(
        "{}\n  all polling = from spawning `hearth serve` (members already configured) until every bot has a\n  getUpdates waiting at the fake. RSS = VmRSS after {} settled; idle CPU over the next {}.\n  Workers: none run while idle (worker RSS is under cold start).\n  OpenClaw: {OPENCLAW_IDLE}.\n",
        t.render(),
        ms(p.idle_settle.as_secs_f64() * 1000.0),
        ms(p.idle_window.as_secs_f64() * 1000.0),
    );
    let json = json!({
        "sizes": rows.iter().map(|r| json!({
            "bots": r.bots, "gateway_rss_mb": r2(r.rss), "gateway_peak_rss_mb": r2(r.hwm), "threads": r.threads,
            "open_fds": r.fds, "all_polling_ms": r2(r.all_polling.as_secs_f64() * 1000.0),
            "first_poll_ms": r2(r.first_poll.as_secs_f64() * 1000.0),
            "idle_cpu_ms_per_s": r2(r.cpu_ms_per_s), "worker_processes": r.workers, "worker_rss_mb": 0.0,
            "setup_s": r2(r.setup.as_secs_f64()),
        })).collect::<Vec<_>>(),
        "marginal": marginal,
        "settle_ms": p.idle_settle.as_millis() as u64,
        "openclaw": OPENCLAW_IDLE,
    });
    Ok(Section { title: "idle".into(), json, text, targets })
}

async fn idle_one(p: &Params, n: usize) -> anyhow::Result<IdleRow> {
    let env = Env::new(&p.hearth, p.tmp_dir.as_deref()).await?;
    let setup_start = Instant::now();
    let gw = env.start_gateway().await?;
    env.set_provider().await?;
    let members = env.add_members(0, n).await?;
    gw.stop().await?;
    let setup = setup_start.elapsed();

    // A fresh start with N configured bots: how soon does every one of them poll?
    let base: Vec<usize> = members.iter().map(|m| env.tg.poll_count(&m.token)).collect();
    let gw = harness::GatewayProc::spawn(&env.hearth, &env.data_dir(), &env.tg.api_url(), &env.log_path())?;
    let deadline = gw.spawned_at + Duration::from_secs(120);
    let mut first_poll = None;
    let all_polling = loop {
        let polling = members
            .iter()
            .zip(&base)
            .filter(|(m, b)| env.tg.poll_count(&m.token) > **b && env.tg.pending_polls(&m.token) == 1)
            .count();
        if polling > 0 && first_poll.is_none() {
            first_poll = Some(gw.spawned_at.elapsed());
        }
        if polling == n {
            break gw.spawned_at.elapsed();
        }
        if Instant::now() > deadline {
            bail!("only {polling} of {n} bots were polling 120 s after start\n{}", env.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    gw.wait_ready(Duration::from_secs(30)).await?;

    tokio::time::sleep(p.idle_settle).await;
    let rss = harness::status_mb(gw.pid, "VmRSS").context("read the gateway's VmRSS")?;
    let hwm = harness::status_mb(gw.pid, "VmHWM").unwrap_or(rss);
    let threads = harness::threads(gw.pid).unwrap_or(0);
    let fds = harness::open_fds(gw.pid).unwrap_or(0);
    let cpu0 = harness::cpu_ms(gw.pid).unwrap_or(0.0);
    let t0 = Instant::now();
    tokio::time::sleep(p.idle_window).await;
    let cpu_ms_per_s = (harness::cpu_ms(gw.pid).unwrap_or(0.0) - cpu0) / t0.elapsed().as_secs_f64();
    let status = env.status().await?;
    let workers = (status.worker_processes as usize).max(harness::children(gw.pid).len());
    gw.stop().await?;
    Ok(IdleRow {
        bots: n,
        rss,
        hwm,
        threads,
        fds,
        all_polling,
        first_poll: first_poll.unwrap_or_default(),
        cpu_ms_per_s,
        workers,
        setup,
    })
}

// ---------------------------------------------------------------------------------------------
// fan-out

pub async fn fanout(p: &Params) -> anyhow::Result<Section> {
    let mut t = Table::new(&[
        "bots",
        "workers",
        "model",
        "min",
        "p50",
        "p90",
        "max",
        "all ≤ model+0.3 s",
        "turns at once (cap)",
        "OpenClaw",
    ]);
    let mut runs = Vec::new();
    let mut targets = Vec::new();
    let mut variants = vec![true];
    if p.fanout_cold {
        variants.push(false);
    }
    for &n in &p.fanout_sizes {
        for &warm in &variants {
            eprintln!("  fan-out: {n} bots, {} workers", if warm { "warm" } else { "cold" });
            let (s, sorted, conc) = fanout_one(p, n, warm).await.with_context(|| format!("fan-out with {n} bots"))?;
            let bound = p.fanout_latency.as_secs_f64() * 1000.0 + 300.0;
            let within = s.max <= bound;
            let reference = match n {
                20 => "4–18 s, median ~11 s",
                5 => "3–8 s",
                _ => "–",
            };
            t.row(vec![
                n.to_string(),
                if warm { "warm".into() } else { "cold".into() },
                ms(p.fanout_latency.as_secs_f64() * 1000.0),
                ms(s.min),
                ms(s.p50),
                ms(s.p90),
                ms(s.max),
                if within { "yes".into() } else { "no".into() },
                format!("{} ({})", conc.peak_in_flight, conc.turn_cap),
                reference.into(),
            ]);
            if n == 20 && warm && p.fanout_latency == Duration::from_secs(2) {
                targets.push(Target::new(
                    "fan-out: 20 bots, 2 s model, every reply",
                    "≤ 2.3 s",
                    ms(s.max),
                    Some(s.max <= 2300.0),
                ));
            }
            runs.push(json!({
                "bots": n, "workers": if warm { "warm" } else { "cold" },
                "model_latency_ms": p.fanout_latency.as_millis() as u64, "latency": s.json(),
                "latencies_ms": sorted.iter().map(|x| r2(*x)).collect::<Vec<_>>(),
                "peak_turns_in_flight": conc.peak_in_flight, "turn_cap": conc.turn_cap,
            }));
        }
    }
    if targets.is_empty() {
        targets.push(Target::new("fan-out: 20 bots, 2 s model, every reply", "≤ 2.3 s", "not run".into(), None));
    }
    let text = format!(
        "{}\n  Every bot gets one message at the same instant; latency = from sending to the bot's sendMessage\n  arriving at the fake. warm = each member's worker already running; cold = started by this message.\n  turns at once = the most turns the gateway's Status showed running together (sampled every 50 ms),\n  and its global cap on concurrent turns.\n  OpenClaw: {OPENCLAW_FANOUT_20}; {OPENCLAW_FANOUT_5}.\n",
        t.render()
    );
    Ok(Section {
        title: "fan-out".into(),
        json: json!({ "runs": runs, "openclaw": [OPENCLAW_FANOUT_20, OPENCLAW_FANOUT_5] }),
        text,
        targets,
    })
}

/// Turns the gateway ran at once during a fan-out, and its cap on them (from `Status`).
#[derive(Debug, Default, Clone, Copy)]
struct Concurrency {
    peak_in_flight: u32,
    turn_cap: u32,
}

async fn fanout_one(p: &Params, n: usize, warm: bool) -> anyhow::Result<(Summary, Vec<f64>, Concurrency)> {
    let env = Env::new(&p.hearth, p.tmp_dir.as_deref()).await?;
    let gw = env.start_gateway().await?;
    env.set_provider().await?;
    let members = env.add_members(0, n).await?;
    let mut seq = 0;
    if warm {
        env.warm_up(&members, &mut seq).await?;
    }
    env.llm.set_latency(p.fanout_latency);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = env.sent_counts(&members);
    let mut sent = Vec::with_capacity(n);
    for (i, m) in members.iter().enumerate() {
        seq += 1;
        let at = Instant::now();
        env.tg.send_text(&m.token, &m.user, &format!("What should we cook tonight? {}", token(seq)));
        sent.push(Sent { member: i, seq, at });
    }
    let want: Vec<usize> = base.iter().map(|b| b + 1).collect();
    // Wait for the replies, watching how many turns run at once.
    let mut conc = Concurrency::default();
    let deadline = Instant::now() + Duration::from_secs(60) + p.fanout_latency * n as u32;
    loop {
        if let Ok(s) = env.status().await {
            conc.peak_in_flight = conc.peak_in_flight.max(s.turns_in_flight);
            conc.turn_cap = s.turn_cap;
        }
        if env.sent_counts(&members).iter().zip(&want).all(|(c, w)| c >= w) {
            break;
        }
        if Instant::now() > deadline {
            env.wait_counts(&members, &want, Duration::ZERO).await?;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let o = harness::collect(&env, &members, &base, &sent);
    gw.stop().await?;
    if o.latencies.len() != n {
        bail!("{} of {n} messages were answered ({} errors)", o.latencies.len(), o.errors);
    }
    let mut sorted: Vec<f64> = o.latencies.iter().map(|(_, d)| d.as_secs_f64() * 1000.0).collect();
    let s = Summary::of_ms(&mut sorted);
    Ok((s, sorted, conc))
}

// ---------------------------------------------------------------------------------------------
// overhead and throughput

/// One open-loop phase: `rate` messages per second spread round-robin over the members, for
/// `secs`, then wait for the answers.
struct Phase {
    rate: f64,
    achieved_rate: f64,
    messages: usize,
    outcome: harness::Outcome,
    latency: Summary,
    inbound: Summary,
    outbound: Summary,
    gateway_cpu_ms: f64,
    workers_cpu_ms: f64,
    bench_cpu_ms: f64,
    /// Messages answered per second, from the first send to the last reply.
    answered_rate: f64,
    wall: Duration,
}

impl Phase {
    /// Every message answered, none refused, and the replies not lagging: p99 under `lag_ms`.
    fn keeps_up(&self, lag_ms: f64) -> bool {
        self.outcome.unanswered == 0
            && self.outcome.refused == 0
            && self.outcome.errors == 0
            && self.latency.p99 < lag_ms
    }

    fn json(&self, lag_ms: f64) -> Value {
        let n = self.messages.max(1) as f64;
        json!({
            "offered_rate": self.rate, "achieved_send_rate": r2(self.achieved_rate), "messages": self.messages,
            "replies": self.outcome.replies, "messages_collected_into_shared_replies": self.outcome.collected,
            "refused_queue_full": self.outcome.refused, "error_replies": self.outcome.errors,
            "unanswered": self.outcome.unanswered, "answered_rate": r2(self.answered_rate),
            "overhead": self.latency.json(),
            "inbound_send_to_model_call": self.inbound.json(), "outbound_model_call_to_reply": self.outbound.json(),
            "gateway_cpu_ms_per_message": r2(self.gateway_cpu_ms / n),
            "workers_cpu_ms_per_message": r2(self.workers_cpu_ms / n),
            "bench_and_fakes_cpu_ms_per_message": r2(self.bench_cpu_ms / n),
            "gateway_cpu_ms_total": r2(self.gateway_cpu_ms), "workers_cpu_ms_total": r2(self.workers_cpu_ms),
            "replies_per_s": r2(self.outcome.replies as f64 / self.wall.as_secs_f64().max(1e-9)),
            "keeps_up": self.keeps_up(lag_ms), "wall_s": r2(self.wall.as_secs_f64()),
        })
    }
}

async fn worker_pids(env: &Env) -> anyhow::Result<Vec<u32>> {
    Ok(env.status().await?.members.iter().filter_map(|m| m.worker_pid).collect())
}

async fn open_loop(
    env: &Env,
    members: &[Member],
    seq: &mut u64,
    gw_pid: u32,
    rate: f64,
    secs: f64,
) -> anyhow::Result<Phase> {
    let base = env.sent_counts(members);
    let total = (rate * secs).round() as usize;
    let pids = worker_pids(env).await?;
    let (g0, w0, b0) = (harness::cpu_ms(gw_pid).unwrap_or(0.0), harness::cpu_ms_sum(&pids), harness::self_cpu_ms());
    let calls_before = env.model_calls.lock().unwrap().len();
    let mut sent = Vec::with_capacity(total);
    let start = Instant::now();
    for k in 0..total {
        let due = start + Duration::from_secs_f64(k as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let i = k % members.len();
        *seq += 1;
        let at = Instant::now();
        env.tg.send_text(&members[i].token, &members[i].user, &format!("Quick question {}", token(*seq)));
        sent.push(Sent { member: i, seq: *seq, at });
    }
    let send_time = start.elapsed();
    let o = harness::wait_answered(env, members, &base, &sent, Duration::from_secs(30) + send_time).await;
    let pids_after = worker_pids(env).await?;
    // Workers started during the phase count from zero; those that exited are lost (rare).
    let w1: f64 = pids_after.iter().filter_map(|&p| harness::cpu_ms(p)).sum();
    let (g1, b1) = (harness::cpu_ms(gw_pid).unwrap_or(0.0), harness::self_cpu_ms());
    let wall = o.last_reply.map(|t| t.saturating_duration_since(start)).unwrap_or(start.elapsed());

    let send_at: std::collections::HashMap<u64, Instant> = sent.iter().map(|s| (s.seq, s.at)).collect();
    let calls: Vec<(u64, Instant)> = env.model_calls.lock().unwrap()[calls_before..].to_vec();
    let call_at: std::collections::HashMap<u64, Instant> = calls.iter().copied().collect();
    let inbound =
        Summary::of(calls.iter().filter_map(|(s, at)| send_at.get(s).map(|t0| at.saturating_duration_since(*t0))));
    let replies_at: std::collections::HashMap<u64, Duration> = o.latencies.iter().copied().collect();
    let outbound = Summary::of(call_at.iter().filter_map(|(s, at)| {
        let t0 = send_at.get(s)?;
        let reply = *t0 + *replies_at.get(s)?;
        Some(reply.saturating_duration_since(*at))
    }));
    let latency = Summary::of(o.latencies.iter().map(|(_, d)| *d));
    let answered = o.latencies.len();
    Ok(Phase {
        rate,
        achieved_rate: total as f64 / send_time.as_secs_f64().max(1e-9),
        messages: total,
        answered_rate: answered as f64 / wall.as_secs_f64().max(1e-9),
        outcome: o,
        latency,
        inbound,
        outbound,
        gateway_cpu_ms: g1 - g0,
        workers_cpu_ms: w1 - w0,
        bench_cpu_ms: b1 - b0,
        wall,
    })
}

/// `/new` to every member, and their "fresh start" replies.
async fn fresh_conversations(env: &Env, members: &[Member]) -> anyhow::Result<()> {
    let mut want = env.sent_counts(members);
    for (m, w) in members.iter().zip(want.iter_mut()) {
        env.tg.send_text(&m.token, &m.user, "/new");
        *w += 1;
    }
    env.wait_counts(members, &want, Duration::from_secs(60)).await
}

pub async fn overhead(p: &Params) -> anyhow::Result<Section> {
    let env = Env::new(&p.hearth, p.tmp_dir.as_deref()).await?;
    let gw = env.start_gateway().await?;
    env.set_provider().await?;
    eprintln!("  overhead: setting up {} members", p.rate_bots);
    let members = env.add_members(0, p.rate_bots).await?;
    let mut seq = 0;
    env.warm_up(&members, &mut seq).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    eprintln!("  overhead: {} msg/s for {} s", p.rate, p.rate_secs);
    let fixed = open_loop(&env, &members, &mut seq, gw.pid, p.rate, p.rate_secs).await?;
    let lag = p.lag_ms;
    let mut ramp = Vec::new();
    let mut failed_steps = 0;
    for &rate in p.ceiling_rates.iter().filter(|r| **r > 0.0) {
        // Every step starts from fresh conversations (`/new`), so the prompts of later steps are
        // not longer just because earlier steps ran.
        fresh_conversations(&env, &members).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        eprintln!("  throughput: {rate} msg/s for {} s", p.ceiling_secs);
        let phase = open_loop(&env, &members, &mut seq, gw.pid, rate, p.ceiling_secs).await?;
        failed_steps += usize::from(!phase.keeps_up(lag));
        ramp.push(phase);
        // One step past the first that lags, to show the trend; then stop.
        if failed_steps >= 2 {
            break;
        }
    }
    let rss = harness::status_mb(gw.pid, "VmRSS").unwrap_or(0.0);
    let pids = worker_pids(&env).await?;
    let worker_rss: f64 = pids.iter().filter_map(|&p| harness::status_mb(p, "VmRSS")).sum();
    gw.stop().await?;

    let n = fixed.messages.max(1) as f64;
    let mut t = Table::new(&[
        "offered",
        "sent/s",
        "msgs",
        "replies",
        "collected",
        "refused",
        "unanswered",
        "p50",
        "p90",
        "p99",
        "max",
        "gw CPU/msg",
        "workers CPU/msg",
        "answered/s",
        "replies/s",
        "keeps up",
    ]);
    for ph in std::iter::once(&fixed).chain(ramp.iter()) {
        let m = ph.messages.max(1) as f64;
        t.row(vec![
            format!("{}/s", ph.rate),
            format!("{:.0}", ph.achieved_rate),
            ph.messages.to_string(),
            ph.outcome.replies.to_string(),
            ph.outcome.collected.to_string(),
            ph.outcome.refused.to_string(),
            ph.outcome.unanswered.to_string(),
            ms(ph.latency.p50),
            ms(ph.latency.p90),
            ms(ph.latency.p99),
            ms(ph.latency.max),
            ms(ph.gateway_cpu_ms / m),
            ms(ph.workers_cpu_ms / m),
            format!("{:.0}", ph.answered_rate),
            format!("{:.0}", ph.outcome.replies as f64 / ph.wall.as_secs_f64().max(1e-9)),
            if ph.keeps_up(lag) { "yes".into() } else { "no".into() },
        ]);
    }
    // The ceiling: the highest rate kept up with before the first step that lagged.
    let mut ceiling = if fixed.keeps_up(lag) { fixed.rate } else { 0.0 };
    for ph in &ramp {
        if !ph.keeps_up(lag) {
            break;
        }
        ceiling = ceiling.max(ph.rate);
    }
    let peak_answered = std::iter::once(&fixed).chain(ramp.iter()).map(|ph| ph.answered_rate).fold(0.0, f64::max);
    let fixed_ok = fixed.rate >= 200.0 && p.rate_bots >= 100;
    let mut targets = vec![
        Target::new(
            &format!("overhead p50 at {} msg/s, {} bots", p.rate, p.rate_bots),
            "< 2 ms",
            ms(fixed.latency.p50),
            fixed_ok.then_some(fixed.latency.p50 < 2.0),
        ),
        Target::new(
            &format!("overhead p99 at {} msg/s, {} bots", p.rate, p.rate_bots),
            "< 10 ms",
            ms(fixed.latency.p99),
            fixed_ok.then_some(fixed.latency.p99 < 10.0),
        ),
        Target::new(
            "gateway CPU per message",
            "< 5 ms",
            format!("{} (workers +{})", ms(fixed.gateway_cpu_ms / n), ms(fixed.workers_cpu_ms / n)),
            Some(fixed.gateway_cpu_ms / n < 5.0),
        ),
    ];
    let ceiling_run = !ramp.is_empty() && p.rate_bots >= 100;
    targets.push(Target::new(
        &format!("throughput across {} bots", p.rate_bots),
        "≥ 500 msg/s",
        format!("{ceiling:.0} msg/s with p99 < {lag:.0} ms (peak {peak_answered:.0} answered/s)"),
        ceiling_run.then_some(ceiling >= 500.0),
    ));
    let text = format!(
        "{}\n  {} members, model latency 0, warm workers; message k goes to bot k mod {} at t0 + k/rate (open loop).\n  Overhead = reply time minus model time (here 0) = from sending to the bot's sendMessage at the fake.\n  At {} msg/s: send→model call p50 {} / p99 {}; model call→reply p50 {} / p99 {}.\n  CPU: gateway utime+stime / messages; workers summed from their /proc entries; the bench process\n  (fakes included) used {} per message. Gateway RSS after the runs {}, workers {} in total.\n  Collect mode: messages that arrive while the member's turn runs are answered together in one reply;\n  \"collected\" counts messages answered that way. replies/s counts turns. A step keeps up when every\n  message is answered, none is refused and p99 < {lag:.0} ms; each step starts from fresh conversations\n  (/new), and the ramp stops one step after the first that does not keep up.\n  OpenClaw: {OPENCLAW_CPU}.\n",
        t.render(),
        p.rate_bots,
        p.rate_bots,
        p.rate,
        ms(fixed.inbound.p50),
        ms(fixed.inbound.p99),
        ms(fixed.outbound.p50),
        ms(fixed.outbound.p99),
        ms(fixed.bench_cpu_ms / n),
        mb(rss),
        mb(worker_rss),
    );
    let json = json!({
        "bots": p.rate_bots, "model_latency_ms": 0,
        "fixed_rate": fixed.json(lag), "lag_ms": lag,
        "ramp": ramp.iter().map(|ph| ph.json(lag)).collect::<Vec<_>>(),
        "ceiling_msgs_per_s": ceiling, "peak_answered_per_s": r2(peak_answered),
        "gateway_rss_mb_after": r2(rss), "workers_rss_mb_total": r2(worker_rss), "worker_processes": pids.len(),
        "openclaw": OPENCLAW_CPU,
    });
    Ok(Section { title: "overhead & throughput".into(), json, text, targets })
}

// ---------------------------------------------------------------------------------------------
// head-of-line

/// The others chat for `secs`: each member sends every `every`, staggered.
async fn chatter(
    env: &Env,
    members: &[Member],
    idx: &[usize],
    seq: &mut u64,
    secs: Duration,
    every: Duration,
) -> Vec<Sent> {
    let mut sent = Vec::new();
    let start = Instant::now();
    let per = every.as_secs_f64() / idx.len() as f64;
    let mut k = 0u64;
    loop {
        let due = start + Duration::from_secs_f64(k as f64 * per);
        if due >= start + secs {
            return sent;
        }
        tokio::time::sleep_until(due.into()).await;
        let i = idx[k as usize % idx.len()];
        *seq += 1;
        let at = Instant::now();
        env.tg.send_text(&members[i].token, &members[i].user, &format!("How is it going? {}", token(*seq)));
        sent.push(Sent { member: i, seq: *seq, at });
        k += 1;
    }
}

pub async fn head_of_line(p: &Params) -> anyhow::Result<Section> {
    let env = Env::new(&p.hearth, p.tmp_dir.as_deref()).await?;
    let gw = env.start_gateway().await?;
    env.set_provider().await?;
    let stalled = p.hol_stalled;
    let members = env.add_members(0, p.hol_bots + stalled).await?;
    let mut seq = 0;
    env.warm_up(&members, &mut seq).await?;
    env.llm.set_latency(p.hol_latency);
    env.llm.add_rule(Rule::matching("STALL-NOW").delay(p.hol_stall).times(stalled as u32));
    let others: Vec<usize> = (stalled..members.len()).collect();
    let every = Duration::from_secs(1);

    eprintln!("  head-of-line: baseline, {} members chatting for {:?}", p.hol_bots, p.hol_phase);
    let base = env.sent_counts(&members);
    let sent = chatter(&env, &members, &others, &mut seq, p.hol_phase, every).await;
    let before = harness::wait_answered(&env, &members, &base, &sent, Duration::from_secs(30)).await;

    eprintln!("  head-of-line: {stalled} member(s) stalled {:?} while the others chat", p.hol_stall);
    let base = env.sent_counts(&members);
    let stall_start = Instant::now();
    let mut stalled_sent = Vec::new();
    for (i, m) in members.iter().enumerate().take(stalled) {
        seq += 1;
        let at = Instant::now();
        env.tg.send_text(&m.token, &m.user, &format!("STALL-NOW please {}", token(seq)));
        stalled_sent.push(Sent { member: i, seq, at });
    }
    let during_window = p.hol_stall.saturating_sub(Duration::from_secs(1)).max(Duration::from_secs(1));
    let sent = chatter(&env, &members, &others, &mut seq, during_window, every).await;
    let during = harness::wait_answered(&env, &members, &base, &sent, Duration::from_secs(30)).await;
    let still_stalled = stall_start.elapsed() < p.hol_stall;
    let stalled_reply =
        harness::wait_answered(&env, &members, &base, &stalled_sent, p.hol_stall + Duration::from_secs(30)).await;
    gw.stop().await?;

    let a = Summary::of(before.latencies.iter().map(|(_, d)| *d));
    let b = Summary::of(during.latencies.iter().map(|(_, d)| *d));
    let s = Summary::of(stalled_reply.latencies.iter().map(|(_, d)| *d));
    let mut t = Table::new(&["phase", "messages", "answered", "min", "p50", "p90", "max"]);
    t.row(vec![
        "others, no stall".into(),
        sent_len(&before).to_string(),
        before.latencies.len().to_string(),
        ms(a.min),
        ms(a.p50),
        ms(a.p90),
        ms(a.max),
    ]);
    t.row(vec![
        format!("others, {stalled} stalled"),
        sent_len(&during).to_string(),
        during.latencies.len().to_string(),
        ms(b.min),
        ms(b.p50),
        ms(b.p90),
        ms(b.max),
    ]);
    t.row(vec![
        "stalled member".into(),
        stalled.to_string(),
        stalled_reply.latencies.len().to_string(),
        ms(s.min),
        ms(s.p50),
        ms(s.p90),
        ms(s.max),
    ]);
    let unchanged = during.unanswered == 0 && b.p90 <= a.p90 * 1.5 + 20.0 && b.max <= a.max * 2.0 + 50.0;
    let text = format!(
        "{}\n  {} members each send a message every {:?} (staggered), model latency {}. Then {stalled} member(s)' model\n  call is held {:?} (a FakeLlm rule on their text) while the others go on chatting. The stall was{} still on\n  when the others' last message was answered. Unchanged = p90 within 1.5× + 20 ms and max within 2× + 50 ms.\n",
        t.render(),
        p.hol_bots,
        every,
        ms(p.hol_latency.as_secs_f64() * 1000.0),
        p.hol_stall,
        if still_stalled { "" } else { " NOT" },
    );
    let targets = vec![Target::new(
        &format!("head-of-line: others while {stalled} member(s) stalled {}s", p.hol_stall.as_secs()),
        "latency unchanged",
        format!("p50 {} → {}, max {} → {}", ms(a.p50), ms(b.p50), ms(a.max), ms(b.max)),
        Some(unchanged && still_stalled),
    )];
    let json = json!({
        "others": p.hol_bots, "stalled_members": stalled, "stall_s": p.hol_stall.as_secs_f64(),
        "model_latency_ms": p.hol_latency.as_millis() as u64, "message_every_s": every.as_secs_f64(),
        "baseline": a.json(), "during_stall": b.json(), "stalled_member_reply": s.json(),
        "baseline_unanswered": before.unanswered, "during_unanswered": during.unanswered,
        "stall_still_on_at_end": still_stalled, "unchanged": unchanged,
    });
    Ok(Section { title: "head-of-line".into(), json, text, targets })
}

fn sent_len(o: &harness::Outcome) -> usize {
    o.latencies.len() + o.unanswered
}

// ---------------------------------------------------------------------------------------------
// cold start

pub async fn cold_start(p: &Params) -> anyhow::Result<Section> {
    let env = Env::new(&p.hearth, p.tmp_dir.as_deref()).await?;
    let gw = env.start_gateway().await?;
    env.set_provider().await?;
    let members = env.add_members(0, p.cold_members).await?;
    let mut seq = 0;
    let (mut first_call, mut first_reply, mut warm_reply, mut worker_rss) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, m) in members.iter().enumerate() {
        let one = std::slice::from_ref(m);
        for warm in [false, true] {
            let base = env.sent_counts(one);
            seq += 1;
            let calls_before = env.llm.calls().len();
            let at = Instant::now();
            env.tg.send_text(&m.token, &m.user, &format!("Hello there {}", token(seq)));
            let sent = [Sent { member: 0, seq, at }];
            env.wait_counts(one, &[base[0] + 1], Duration::from_secs(60)).await?;
            let o = harness::collect(&env, one, &base, &sent);
            let Some(&(_, reply)) = o.latencies.first() else { bail!("member {i}: no answer") };
            if warm {
                warm_reply.push(reply);
            } else {
                let calls = env.llm.calls();
                let call = calls.get(calls_before).context("no model call was recorded")?;
                first_call.push(call.at.saturating_duration_since(at));
                first_reply.push(reply);
                let status = env.status().await?;
                if let Some(pid) = status.members.iter().find(|s| s.id == m.id).and_then(|s| s.worker_pid) {
                    worker_rss.push(harness::status_mb(pid, "VmRSS").unwrap_or(0.0));
                }
            }
        }
    }
    let gw_rss = harness::status_mb(gw.pid, "VmRSS").unwrap_or(0.0);
    gw.stop().await?;
    let fc = Summary::of(first_call.iter().copied());
    let fr = Summary::of(first_reply.iter().copied());
    let wr = Summary::of(warm_reply.iter().copied());
    let wrss = worker_rss.iter().sum::<f64>() / worker_rss.len().max(1) as f64;
    let mut t = Table::new(&["", "n", "min", "p50", "p90", "max"]);
    t.row(vec![
        "first message → first model call".into(),
        fc.n.to_string(),
        ms(fc.min),
        ms(fc.p50),
        ms(fc.p90),
        ms(fc.max),
    ]);
    t.row(vec![
        "first message → reply (cold)".into(),
        fr.n.to_string(),
        ms(fr.min),
        ms(fr.p50),
        ms(fr.p90),
        ms(fr.max),
    ]);
    t.row(vec!["next message → reply (warm)".into(), wr.n.to_string(), ms(wr.min), ms(wr.p50), ms(wr.p90), ms(wr.max)]);
    let text = format!(
        "{}\n  Fresh members, one after another; model latency 0. Cold = the worker process is started by the\n  message (spawn + handshake + history open + prompt). Worker RSS after its first turn: {} each on\n  average; gateway {} with {} members.\n",
        t.render(),
        mb(wrss),
        mb(gw_rss),
        members.len(),
    );
    let json = json!({
        "members": members.len(), "first_model_call": fc.json(), "cold_reply": fr.json(), "warm_reply": wr.json(),
        "worker_rss_mb_avg": r2(wrss), "worker_rss_mb": worker_rss.iter().map(|x| r2(*x)).collect::<Vec<_>>(),
    });
    let targets = vec![Target::new(
        "cold start: first message → reply",
        "(no target)",
        format!("p50 {}, max {}", ms(fr.p50), ms(fr.max)),
        None,
    )];
    Ok(Section { title: "cold start".into(), json, text, targets })
}
