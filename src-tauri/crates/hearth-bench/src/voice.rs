//! The voice scenario (issue #15): a 30-second voice note's way through the gateway — from its
//! arrival to the transcription call, and from the transcript to the first reply with a model
//! that takes 1 s — and the gateway's memory while 20 voice notes are in flight at once.
//!
//! The fake's latency holds both the transcription and the chat call, so what is left of a
//! reply's time after two latencies is Hearth's own: the download, the hand-over to the worker
//! (the audio in chunks), the worker's turn, and the reply's sending.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hearth_sim::media::ogg_opus;
use serde_json::json;

use crate::Params;
use crate::harness::{self, Env, token};
use crate::report::{Summary, Table, Target, ms, r2};
use crate::scenarios::Section;

/// The bound on the gateway's own part of a voice note's reply.
const OVERHEAD_TARGET_MS: f64 = 50.0;

pub async fn voice(p: &Params) -> anyhow::Result<Section> {
    let env = Env::new(&p.hearth, p.tmp_dir.as_deref()).await?;
    let gw = env.start_gateway().await?;
    env.set_provider().await?;
    let members = env.add_members(0, p.voice_in_flight.max(1)).await?;
    // Workers already running: a cold start is the cold-start scenario's to measure.
    let mut seq = 0;
    env.warm_up(&members, &mut seq).await?;
    env.llm.set_latency(p.voice_latency);
    // The fake's Ogg is tiny; a real 30-second note (Opus at about 32 kbit/s) is ~120 KB, and
    // its bytes are what the gateway downloads and hands over, so it gets that size.
    let mut note = ogg_opus(30);
    note.resize(note.len().max(120 * 1024), 0);

    // One voice note at a time, from one member.
    let m = &members[0];
    let one = std::slice::from_ref(m);
    let (mut to_call, mut to_reply, mut own) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..p.voice_notes {
        seq += 1;
        env.llm.set_transcript(format!("What should we cook tonight {}", token(seq)));
        let base = env.sent_counts(one);
        let (heard_before, calls_before) = (env.llm.transcriptions().len(), env.llm.calls().len());
        let at = Instant::now();
        env.tg.send_voice(&m.token, &m.user, note.clone(), 30);
        env.wait_counts(one, &[base[0] + 1], Duration::from_secs(60)).await?;
        let heard = env.llm.transcriptions().get(heard_before).map(|t| t.at).context("no transcription")?;
        let call = env.llm.calls().get(calls_before).map(|c| c.at).context("no model call")?;
        let reply = env.tg.sent_to(&m.token, m.user.id).get(base[0]).map(|r| r.at).context("no reply")?;
        if !env.tg.sent_to(&m.token, m.user.id)[base[0]].text.starts_with('🎤') {
            bail!("the reply did not quote the voice note");
        }
        // The fake answers a call one latency after it arrived.
        let transcript = heard + p.voice_latency;
        to_call.push(heard.saturating_duration_since(at));
        to_reply.push(reply.saturating_duration_since(transcript));
        own.push(
            heard.saturating_duration_since(at)
                + call.saturating_duration_since(transcript)
                + reply.saturating_duration_since(call + p.voice_latency),
        );
    }

    // Every member sends one at once; the gateway's memory is read while they are in flight.
    let rss_before = harness::status_mb(gw.pid, "VmRSS").unwrap_or(0.0);
    let base = env.sent_counts(&members);
    let started = Instant::now();
    for m in &members {
        env.tg.send_voice(&m.token, &m.user, note.clone(), 30);
    }
    let want: Vec<usize> = base.iter().map(|b| b + 1).collect();
    let mut peak: f64 = rss_before;
    let waiting = env.wait_counts(&members, &want, Duration::from_secs(120));
    tokio::pin!(waiting);
    loop {
        tokio::select! {
            done = &mut waiting => { done?; break; }
            _ = tokio::time::sleep(Duration::from_millis(20)) => {
                peak = peak.max(harness::status_mb(gw.pid, "VmRSS").unwrap_or(0.0));
            }
        }
    }
    let all_answered = started.elapsed();
    let hwm = harness::status_mb(gw.pid, "VmHWM").unwrap_or(0.0);
    gw.stop().await?;

    let (c, r, o) = (Summary::of(to_call), Summary::of(to_reply), Summary::of(own));
    let mut t = Table::new(&["", "n", "min", "p50", "p90", "max"]);
    for (label, s) in
        [("arrival → transcription call", &c), ("transcript → first reply", &r), ("Hearth's own time per note", &o)]
    {
        t.row(vec![label.into(), s.n.to_string(), ms(s.min), ms(s.p50), ms(s.p90), ms(s.max)]);
    }
    let text = format!(
        "{}\n  A 30-second voice note ({} bytes), one at a time, warm worker; the fake takes {} per call (the\n  transcription and the chat call each). Hearth's own time = the reply's time less both calls.\n  {} voice notes at once: all answered after {}; the gateway's resident memory {} before, {} at\n  its peak while they were in flight (high-water mark {}).\n",
        t.render(),
        note.len(),
        ms(p.voice_latency.as_secs_f64() * 1000.0),
        members.len(),
        ms(all_answered.as_secs_f64() * 1000.0),
        mb(rss_before),
        mb(peak),
        mb(hwm),
    );
    let json = json!({
        "note_bytes": note.len(), "latency_ms": p.voice_latency.as_millis() as u64,
        "arrival_to_transcription_call": c.json(), "transcript_to_first_reply": r.json(), "own_time": o.json(),
        "in_flight": members.len(), "in_flight_all_answered_ms": r2(all_answered.as_secs_f64() * 1000.0),
        "gateway_rss_mb_before": r2(rss_before), "gateway_rss_mb_peak": r2(peak), "gateway_hwm_mb": r2(hwm),
    });
    let targets = vec![
        Target::new(
            "voice note: Hearth's own time (30 s note, 1 s model)",
            &format!("under {OVERHEAD_TARGET_MS} ms"),
            format!("p50 {}, max {}", ms(o.p50), ms(o.max)),
            Some(o.max < OVERHEAD_TARGET_MS),
        ),
        Target::new(
            "voice notes in flight: gateway memory",
            "(no target)",
            format!("{} at {} in flight", mb(peak), members.len()),
            None,
        ),
    ];
    Ok(Section { title: "voice".into(), json, text, targets })
}

fn mb(x: f64) -> String {
    format!("{x:.1} MB")
}
