//! The streaming scenario (issue #16): how soon a member sees text when the answer is shown as it
//! is written, beside how long they waited for the whole reply before; and what showing it costs
//! the gateway when twenty members are answered at once, streaming on against streaming off in
//! the same run.
//!
//! The fake model streams a 30-word answer in 12-character pieces over about three seconds. The
//! "first word" is the model's first piece of text: the fake sends its role frame at once and
//! each later frame one gap after the one before, so it leaves one gap after the call arrived.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hearth_proto::control::ControlRequest;
use hearth_sim::llm::{LlmCall, Reply};
use serde_json::json;

use crate::Params;
use crate::harness::{self, Env, Member, Sent, token, tokens};
use crate::report::{Summary, Table, Target, ms, r2};
use crate::scenarios::Section;

/// Thirty words with a little Markdown, as the figure asks.
const THIRTY_WORDS: &str = "Here is **a bold start** to the answer, then some `code` and a list of things worth \
    knowing about gardens: roses like sun, mint spreads fast, tomatoes want water daily.";

/// How long the fake takes to stream [`THIRTY_WORDS`].
const STREAM: Duration = Duration::from_secs(3);

/// The bound on the first draft after the model's first word.
const FIRST_TEXT_TARGET_MS: f64 = 300.0;

/// The gap between the fake's frames that spreads the answer (plus its bench marker) over
/// [`STREAM`]: the role frame, one frame per 12 characters, the finish and usage frames.
fn frame_gap() -> Duration {
    let frames = (THIRTY_WORDS.chars().count() + 8).div_ceil(12) + 3;
    STREAM / frames as u32
}

/// Every member's streaming switch.
async fn set_streaming(env: &Env, members: &[Member], on: bool) -> anyhow::Result<()> {
    for m in members {
        env.control(ControlRequest::MemberStreaming { member: m.id.clone(), streaming: on }).await?;
    }
    Ok(())
}

pub async fn streaming(p: &Params) -> anyhow::Result<Section> {
    let env = Env::new(&p.hearth, p.tmp_dir.as_deref()).await?;
    let gw = env.start_gateway().await?;
    env.set_provider().await?;
    let members = env.add_members(0, p.stream_members.max(1)).await?;
    let mut seq = 0;
    env.warm_up(&members, &mut seq).await?;
    // The answer, then the newest marker of the turn, so each reply names what it answers.
    env.llm.set_responder(|call: &LlmCall| {
        let newest = tokens(&call.last_user_text()).max().unwrap_or(0);
        Reply::text(format!("{THIRTY_WORDS} {}", token(newest)))
    });
    let gap = frame_gap();
    env.llm.set_stream_chunk_delay(gap);

    // (a) One member, one message at a time: first visible text, then the whole reply.
    let m = &members[0];
    let one = std::slice::from_ref(m);
    let mut to_first_text = Vec::new();
    let mut first_word_to_draft = Vec::new();
    let mut streamed_whole = Vec::new();
    let mut unstreamed_whole = Vec::new();
    for streaming in [true, false] {
        set_streaming(&env, one, streaming).await?;
        for _ in 0..p.stream_repeats {
            seq += 1;
            let base = env.sent_counts(one);
            let calls_before = env.llm.calls().len();
            let at = Instant::now();
            env.tg.send_text(&m.token, &m.user, &format!("Tell me about gardens {}", token(seq)));
            env.wait_counts(one, &[base[0] + 1], Duration::from_secs(60)).await?;
            let reply = env.tg.sent_to(&m.token, m.user.id).get(base[0]).map(|r| r.at).context("no reply")?;
            if !streaming {
                unstreamed_whole.push(reply.saturating_duration_since(at));
                continue;
            }
            let call = env.llm.calls().get(calls_before).map(|c| c.at).context("no model call")?;
            let first = env
                .tg
                .drafts(&m.token)
                .into_iter()
                .find(|d| d.at >= at && !d.text.is_empty())
                .map(|d| d.at)
                .context("no draft with text")?;
            to_first_text.push(first.saturating_duration_since(at));
            first_word_to_draft.push(first.saturating_duration_since(call + gap));
            streamed_whole.push(reply.saturating_duration_since(at));
        }
    }

    // (b) Every member at once, streaming on and off in turns (on, off, on, off): the gateway's
    // CPU per message and each reply's time after its model call began.
    let mut rounds = Vec::new();
    for round in 0..2 * p.stream_rounds.max(1) {
        let on = round % 2 == 0;
        set_streaming(&env, &members, on).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let workers = harness::children(gw.pid);
        let (gw_cpu, workers_cpu) = (harness::cpu_ms(gw.pid).unwrap_or(0.0), harness::cpu_ms_sum(&workers));
        let base = env.sent_counts(&members);
        let calls_before = env.llm.calls().len();
        let mut sent = Vec::with_capacity(members.len());
        for (i, m) in members.iter().enumerate() {
            seq += 1;
            let at = Instant::now();
            env.tg.send_text(&m.token, &m.user, &format!("Tell me about gardens {}", token(seq)));
            sent.push(Sent { member: i, seq, at });
        }
        let want: Vec<usize> = base.iter().map(|b| b + 1).collect();
        env.wait_counts(&members, &want, Duration::from_secs(60)).await?;
        let gw_cpu = harness::cpu_ms(gw.pid).unwrap_or(0.0) - gw_cpu;
        let workers_cpu = harness::cpu_ms_sum(&workers) - workers_cpu;
        let o = harness::collect(&env, &members, &base, &sent);
        if o.latencies.len() != members.len() {
            bail!("{} of {} messages were answered ({} errors)", o.latencies.len(), members.len(), o.errors);
        }
        // Each reply after its own model call began: the stream's three seconds plus Hearth's part.
        let calls = env.llm.calls();
        let mut after_call = Vec::new();
        for (i, m) in members.iter().enumerate() {
            let s = sent[i];
            let call = calls[calls_before..]
                .iter()
                .find(|c| tokens(&c.last_user_text()).max() == Some(s.seq))
                .map(|c| c.at)
                .context("no model call for a message")?;
            let reply = env.tg.sent_to(&m.token, m.user.id).get(base[i]).map(|r| r.at).context("no reply")?;
            after_call.push(reply.saturating_duration_since(call));
        }
        let drafts: usize = members.iter().map(|m| env.tg.drafts(&m.token).len()).sum();
        rounds.push(Round {
            on,
            gateway_cpu_ms: gw_cpu / members.len() as f64,
            workers_cpu_ms: workers_cpu / members.len() as f64,
            after_call: Summary::of(after_call),
            drafts,
        });
    }
    gw.stop().await?;

    let (first, word, whole_on, whole_off) = (
        Summary::of(to_first_text),
        Summary::of(first_word_to_draft),
        Summary::of(streamed_whole),
        Summary::of(unstreamed_whole),
    );
    let mut t = Table::new(&["one member, one message", "n", "min", "p50", "p90", "max"]);
    for (label, s) in [
        ("message → first visible text (streaming on)", &first),
        ("model's first word → first draft with text", &word),
        ("message → whole reply (streaming on)", &whole_on),
        ("message → whole reply (streaming off)", &whole_off),
    ] {
        t.row(vec![label.into(), s.n.to_string(), ms(s.min), ms(s.p50), ms(s.p90), ms(s.max)]);
    }
    let mean = |on: bool, f: fn(&Round) -> f64| {
        let picked: Vec<f64> = rounds.iter().filter(|r| r.on == on).map(f).collect();
        picked.iter().sum::<f64>() / picked.len().max(1) as f64
    };
    let (cpu_on, cpu_off) = (mean(true, |r| r.gateway_cpu_ms), mean(false, |r| r.gateway_cpu_ms));
    let (wcpu_on, wcpu_off) = (mean(true, |r| r.workers_cpu_ms), mean(false, |r| r.workers_cpu_ms));
    let (late_on, late_off) = (mean(true, |r| r.after_call.p50), mean(false, |r| r.after_call.p50));
    let mut rt = Table::new(&[
        "round",
        "streaming",
        "gw CPU/msg",
        "workers CPU/msg",
        "call → reply p50",
        "max",
        "drafts so far",
    ]);
    for (i, r) in rounds.iter().enumerate() {
        rt.row(vec![
            (i + 1).to_string(),
            if r.on { "on".into() } else { "off".into() },
            ms(r.gateway_cpu_ms),
            ms(r.workers_cpu_ms),
            ms(r.after_call.p50),
            ms(r.after_call.max),
            r.drafts.to_string(),
        ]);
    }
    let cpu_ratio = cpu_on / cpu_off.max(1e-9);
    let text = format!(
        "{}\n  30 words in 12-character pieces, one frame every {} (about {} in all); {} times each way.\n  The first word is the fake's first text frame, one frame gap after the call arrived.\n\n{}\n  {} members each send one message at the same instant, {} rounds each way, alternating.\n  CPU: utime+stime of the gateway (workers summed) over the round / messages.\n  Streaming on / off: gateway CPU per message {} / {} (ratio {:.2}), workers {} / {};\n  model call → reply p50 {} / {} (the stream's {} included).\n",
        t.render(),
        ms(gap.as_secs_f64() * 1000.0),
        ms(STREAM.as_secs_f64() * 1000.0),
        p.stream_repeats,
        rt.render(),
        members.len(),
        p.stream_rounds.max(1),
        ms(cpu_on),
        ms(cpu_off),
        cpu_ratio,
        ms(wcpu_on),
        ms(wcpu_off),
        ms(late_on),
        ms(late_off),
        ms(STREAM.as_secs_f64() * 1000.0),
    );
    let json = json!({
        "words": THIRTY_WORDS.split_whitespace().count(), "frame_gap_ms": r2(gap.as_secs_f64() * 1000.0),
        "stream_ms": STREAM.as_millis() as u64, "repeats": p.stream_repeats,
        "message_to_first_text": first.json(), "first_word_to_first_draft": word.json(),
        "message_to_whole_reply_streaming": whole_on.json(), "message_to_whole_reply_not_streaming": whole_off.json(),
        "members_at_once": members.len(),
        "rounds": rounds.iter().map(|r| json!({
            "streaming": r.on, "gateway_cpu_ms_per_msg": r2(r.gateway_cpu_ms),
            "workers_cpu_ms_per_msg": r2(r.workers_cpu_ms), "call_to_reply": r.after_call.json(),
        })).collect::<Vec<_>>(),
        "gateway_cpu_ms_per_msg_on": r2(cpu_on), "gateway_cpu_ms_per_msg_off": r2(cpu_off),
        "gateway_cpu_ratio_on_off": r2(cpu_ratio),
        "call_to_reply_p50_ms_on": r2(late_on), "call_to_reply_p50_ms_off": r2(late_off),
    });
    let targets = vec![
        Target::new(
            "streaming: model's first word → first draft",
            &format!("≤ {FIRST_TEXT_TARGET_MS} ms"),
            format!("p50 {}, max {} (whole reply unstreamed: p50 {})", ms(word.p50), ms(word.max), ms(whole_off.p50)),
            Some(word.max <= FIRST_TEXT_TARGET_MS),
        ),
        Target::new(
            &format!("streaming: gateway CPU per message, {} members at once, on / off", members.len()),
            "within noise",
            format!("{} / {} (×{cpu_ratio:.2})", ms(cpu_on), ms(cpu_off)),
            None,
        ),
    ];
    Ok(Section { title: "streaming".into(), json, text, targets })
}

/// One round of everyone at once.
struct Round {
    on: bool,
    gateway_cpu_ms: f64,
    workers_cpu_ms: f64,
    after_call: Summary,
    /// Drafts sent to all members so far (they grow only in the rounds with streaming on).
    drafts: usize,
}
