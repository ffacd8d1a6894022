//! `hearth-probe abuse PLAN`: a stand-in worker that speaks the real worker protocol to a real
//! gateway and then asks for what a hostile worker would (issue 13, "the gateway decides what a
//! turn may do"). `tests/it/abuse.rs` runs it as every member's worker.
//!
//! PLAN is a JSON file read again at every turn, so a test can change what happens next without
//! restarting anything: `{"<member name>": {"mode": …, …}, "*": {"mode": …}}`, keyed by the name
//! the turn's context carries (the entry `"*"` for everyone else; none at all means `polite`).
//! Every turn ends with one `TurnDone` whose reply is a JSON summary of what was answered, so the
//! test reads the outcome from the fake Telegram.
//!
//! Modes:
//! - `polite`: what an honest worker does — a chat turn asks for one completion and replies with
//!   its text (`"polite: <text>"`); any other turn replies `"polite: <kind>"` with no request.
//! - `flood {count}`: `count` completions and `count` knowledge searches sent back to back,
//!   without waiting; replies `{"complete": {outcome: n}, "kb": {outcome: n}}`.
//! - `steps {count}`: first two completions at once, then up to `count` one after another, each
//!   awaited; replies `{"pair": [outcome, outcome], "sequential": [outcome, …]}`.
//! - `reminders {due: [[id, due_at], …]}` or `{count, due_at}` (ids 1…count): finishes the turn
//!   with that reminder schedule; replies `"reminders: <n>"`.
//! - `oversize {bytes}`: one completion whose system prompt is `bytes` long and one search whose
//!   query is `bytes` long; replies `{"complete": outcome, "kb": outcome}`.
//! - `reply {bytes}`: replies with `bytes` bytes of text.
//!
//! An outcome is `ok`, `refused:<reason>` (the gateway's `Refusal`), `error:<kind>` (any other
//! broker error) or, for a search, `err:<sentence>`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;

use hearth_proto::PROTOCOL_VERSION;
use hearth_proto::frame;
use hearth_proto::llm::{BrokerError, BrokerErrorKind, ChatMessage, Completion, CompletionRequest};
use hearth_proto::worker::{GatewayToWorker, KbHit, ReminderDue, Turn, TurnKind, TurnOutcome, WorkerToGateway};
use serde_json::{Value, json};

/// Runs the probe as a worker on `stream` until the gateway hangs up or says to stop.
pub fn run(stream: UnixStream, plan: &str) -> i32 {
    let mut w = Worker { stream, next_id: 1, rx: None };
    if let Err(e) = w.serve(plan) {
        eprintln!("hearth-probe abuse: {e}");
        return 1;
    }
    0
}

struct Worker {
    stream: UnixStream,
    next_id: u64,
    /// Frames from the gateway, read on their own thread: a flood is written without reading,
    /// and the gateway's answers must not fill the socket meanwhile.
    rx: Option<mpsc::Receiver<GatewayToWorker>>,
}

type Res<T> = Result<T, String>;

impl Worker {
    fn serve(&mut self, plan: &str) -> Res<()> {
        self.send(&WorkerToGateway::Hello { version: PROTOCOL_VERSION, claimed_member: None })?;
        let (tx, rx) = mpsc::channel();
        let mut reader = self.stream.try_clone().map_err(|e| e.to_string())?;
        std::thread::spawn(move || {
            while let Ok(msg) = read(&mut reader) {
                if tx.send(msg).is_err() {
                    return;
                }
            }
        });
        self.rx = Some(rx);
        match self.recv()? {
            GatewayToWorker::Welcome { .. } => {}
            other => return Err(format!("expected welcome, got {other:?}")),
        }
        loop {
            match self.recv() {
                Ok(GatewayToWorker::Turn(turn)) => self.turn(plan, &turn)?,
                Ok(GatewayToWorker::Shutdown) | Err(_) => return Ok(()),
                Ok(_) => {}
            }
        }
    }

    fn turn(&mut self, plan: &str, turn: &Turn) -> Res<()> {
        let plan: Value = std::fs::read(plan).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null);
        let step = plan
            .get(&turn.context.member_name)
            .or_else(|| plan.get("*"))
            .cloned()
            .unwrap_or_else(|| json!({"mode": "polite"}));
        let count = step["count"].as_u64().unwrap_or(10) as usize;
        let mut reminders = None;
        let text = match step["mode"].as_str().unwrap_or("polite") {
            "flood" => self.flood(turn.turn_id, count)?,
            "steps" => self.steps(turn.turn_id, count)?,
            "reminders" => {
                let due: Vec<ReminderDue> = match step["due"].as_array() {
                    Some(list) => list
                        .iter()
                        .map(|d| ReminderDue { id: d[0].as_i64().unwrap_or(0), due_at: d[1].as_i64().unwrap_or(0) })
                        .collect(),
                    None => {
                        let due_at = step["due_at"].as_i64().unwrap_or(0);
                        (1..=count as i64).map(|id| ReminderDue { id, due_at }).collect()
                    }
                };
                let text = format!("reminders: {}", due.len());
                reminders = Some(due);
                text
            }
            "oversize" => {
                let bytes = step["bytes"].as_u64().unwrap_or(0) as usize;
                let mut request = small_request("x");
                request.system = "x".repeat(bytes);
                let id = self.ask(turn.turn_id, request)?;
                let complete = self.wait(&[id])?.remove(0);
                let id = self.search(turn.turn_id, "x".repeat(bytes))?;
                let kb = self.wait(&[id])?.remove(0);
                json!({ "complete": complete, "kb": kb }).to_string()
            }
            "reply" => {
                // Words, so the gateway can split it into messages the way it splits a long answer.
                let bytes = step["bytes"].as_u64().unwrap_or(0) as usize;
                "word ".repeat(bytes / 5)
            }
            _ => self.polite(turn)?,
        };
        self.send(&WorkerToGateway::TurnDone { turn_id: turn.turn_id, outcome: TurnOutcome::Reply { text }, reminders })
    }

    fn polite(&mut self, turn: &Turn) -> Res<String> {
        if turn.kind != TurnKind::Chat {
            return Ok(format!("polite: {}", turn.kind.name()));
        }
        let words: Vec<&str> = turn.messages.iter().map(|m| m.text.as_str()).collect();
        let id = self.ask(turn.turn_id, small_request(&words.join("\n")))?;
        let answer = self.wait_raw(&[id])?.remove(0);
        Ok(match answer {
            Answer::Completion(Ok(c)) => format!("polite: {}", c.text),
            other => format!("polite failed: {}", other.outcome()),
        })
    }

    fn flood(&mut self, turn_id: u64, count: usize) -> Res<String> {
        let mut ids = Vec::with_capacity(2 * count);
        for _ in 0..count {
            ids.push(self.ask(turn_id, small_request("flood"))?);
        }
        for _ in 0..count {
            ids.push(self.search(turn_id, "wifi".to_owned())?);
        }
        let outcomes = self.wait(&ids)?;
        let tally = |part: &[String]| {
            let mut t = BTreeMap::<String, usize>::new();
            for o in part {
                *t.entry(o.split(':').take(2).collect::<Vec<_>>().join(":")).or_default() += 1;
            }
            t
        };
        Ok(json!({ "complete": tally(&outcomes[..count]), "kb": tally(&outcomes[count..]) }).to_string())
    }

    fn steps(&mut self, turn_id: u64, count: usize) -> Res<String> {
        let a = self.ask(turn_id, small_request("pair one"))?;
        let b = self.ask(turn_id, small_request("pair two"))?;
        let pair = self.wait(&[a, b])?;
        let mut sequential = Vec::new();
        for i in 0..count {
            let id = self.ask(turn_id, small_request(&format!("step {i}")))?;
            sequential.extend(self.wait(&[id])?);
        }
        Ok(json!({ "pair": pair, "sequential": sequential }).to_string())
    }

    fn ask(&mut self, turn_id: u64, request: CompletionRequest) -> Res<u64> {
        let request_id = self.id();
        self.send(&WorkerToGateway::Complete { request_id, turn_id, request })?;
        Ok(request_id)
    }

    fn search(&mut self, turn_id: u64, query: String) -> Res<u64> {
        let request_id = self.id();
        self.send(&WorkerToGateway::KbSearch { request_id, turn_id, query })?;
        Ok(request_id)
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The outcome of each request in `ids`, in that order.
    fn wait(&mut self, ids: &[u64]) -> Res<Vec<String>> {
        Ok(self.wait_raw(ids)?.iter().map(Answer::outcome).collect())
    }

    fn wait_raw(&mut self, ids: &[u64]) -> Res<Vec<Answer>> {
        let mut got: BTreeMap<u64, Answer> = BTreeMap::new();
        while got.len() < ids.len() {
            match self.recv()? {
                GatewayToWorker::CompletionResult { request_id, result, .. } => {
                    got.insert(request_id, Answer::Completion(result));
                }
                GatewayToWorker::KbResults { request_id, result } => {
                    got.insert(request_id, Answer::Search(result));
                }
                _ => {}
            }
        }
        ids.iter().map(|id| got.remove(id).ok_or_else(|| format!("no answer to request {id}"))).collect()
    }

    fn send(&mut self, msg: &WorkerToGateway) -> Res<()> {
        let bytes = frame::encode(msg).map_err(|e| e.to_string())?;
        self.stream.write_all(&bytes).map_err(|e| format!("write: {e}"))
    }

    fn recv(&mut self) -> Res<GatewayToWorker> {
        let rx = self.rx.as_ref().ok_or("not connected")?;
        rx.recv().map_err(|_| "the gateway hung up".to_owned())
    }
}

enum Answer {
    Completion(Result<Completion, BrokerError>),
    Search(Result<Vec<KbHit>, String>),
}

impl Answer {
    fn outcome(&self) -> String {
        match self {
            Answer::Completion(Ok(_)) | Answer::Search(Ok(_)) => "ok".to_owned(),
            Answer::Completion(Err(e)) => match &e.kind {
                BrokerErrorKind::Refused { reason } => format!("refused:{}", json!(reason).as_str().unwrap_or("?")),
                other => format!("error:{}", json!(other)["type"].as_str().unwrap_or("?")),
            },
            Answer::Search(Err(why)) => format!("err:{why}"),
        }
    }
}

fn small_request(text: &str) -> CompletionRequest {
    CompletionRequest {
        system: "probe".into(),
        messages: vec![ChatMessage::user(text)],
        max_tokens: 16,
        tools: Vec::new(),
    }
}

fn read(r: &mut UnixStream) -> Res<GatewayToWorker> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).map_err(|e| e.to_string())?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    r.read_exact(&mut body).map_err(|e| e.to_string())?;
    frame::decode(&body).map_err(|e| e.to_string())
}
