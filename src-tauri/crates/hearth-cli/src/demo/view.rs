//! What the demo shows. On a terminal: a compact screen redrawn every 500 ms with each member's
//! bot, lane and last exchange. Otherwise (CI, a pipe): one log line per event. Then a summary.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hearth_gateway::Gateway;
use hearth_proto::control::{IsolationLevel, StatusReport};
use tokio::sync::mpsc;

use crate::admin::{bot_state, lane_state};
use crate::table::excerpt;

const REDRAW: Duration = Duration::from_millis(500);

pub use hearth_sim::demo::Event;

struct PersonView {
    name: String,
    role: &'static str,
    bot: String,
    last_sent: Option<String>,
    last_reply: Option<String>,
}

pub struct View {
    tty: bool,
    started: Instant,
    members: usize,
    model_latency_ms: u64,
    data_dir: PathBuf,
    people: Vec<PersonView>,
    sent: u64,
    latencies: Vec<Duration>,
    status: Option<StatusReport>,
    /// Lines of the last frame, to move back over when redrawing.
    drawn: usize,
    cursor_hidden: bool,
}

impl View {
    pub fn new(tty: bool, started: Instant, members: usize, model_latency_ms: u64, data_dir: PathBuf) -> Self {
        Self {
            tty,
            started,
            members,
            model_latency_ms,
            data_dir,
            people: Vec::new(),
            sent: 0,
            latencies: Vec::new(),
            status: None,
            drawn: 0,
            cursor_hidden: false,
        }
    }

    pub fn header(&self) {
        println!(
            "Hearth demo — a household of {} chatting through the real gateway and a worker process per member, \
             at isolation \"process\" (a demo creates no OS accounts).",
            self.members
        );
        println!(
            "Telegram and the model are fakes on 127.0.0.1; \"demo-model\" gives canned answers after {} ms. No tokens, keys or network.",
            self.model_latency_ms
        );
        println!("Data directory (deleted on exit): {}", self.data_dir.display());
        println!("Try in another terminal:  hearth --data-dir {} status", self.data_dir.display());
        println!("{}", if self.tty { "Press Ctrl-C to stop.\n" } else { "Stops on Ctrl-C or after --duration.\n" });
        let _ = std::io::stdout().flush();
    }

    pub fn add_people(&mut self, people: Vec<(String, &'static str, String)>) {
        self.people = people
            .into_iter()
            .map(|(name, role, bot)| PersonView { name, role, bot, last_sent: None, last_reply: None })
            .collect();
    }

    /// Shows events until every simulated person has stopped; returns itself for the summary.
    pub async fn run(mut self, mut events: mpsc::UnboundedReceiver<(Instant, Event)>, gateway: Gateway) -> Self {
        let mut tick = tokio::time::interval(REDRAW);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        if self.tty {
            print!("\x1b[?25l");
            self.cursor_hidden = true;
        }
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some((at, event)) => self.on_event(at, event),
                    None => break,
                },
                _ = tick.tick(), if self.tty => {
                    if let Ok(status) = gateway.status().await {
                        self.status = Some(status);
                    }
                    self.draw();
                }
            }
        }
        if self.tty {
            if let Ok(status) = gateway.status().await {
                self.status = Some(status);
            }
            self.draw();
        }
        self
    }

    fn on_event(&mut self, at: Instant, event: Event) {
        let t = at.saturating_duration_since(self.started).as_secs_f64();
        let width = self.people.iter().map(|p| p.name.chars().count()).max().unwrap_or(0);
        let line = match event {
            Event::Added { member, code } => {
                let p = &self.people[member];
                format!("Added {} ({}) with the bot @{}; pairing code {code}", p.name, p.role, p.bot)
            }
            Event::Paired { member } => {
                let p = &self.people[member];
                format!("{} paired their Telegram account with @{}", p.name, p.bot)
            }
            Event::Sent { member, text } => {
                self.sent += 1;
                let p = &mut self.people[member];
                let line = format!("{:<width$}  says:      {}", p.name, excerpt(&text, 110));
                p.last_sent = Some(text);
                line
            }
            Event::Replied { member, text, latency } => {
                self.latencies.push(latency);
                let p = &mut self.people[member];
                let line = format!("{:<width$}  assistant: {}  ({})", p.name, excerpt(&text, 110), secs(latency));
                p.last_reply = Some(text);
                line
            }
        };
        if !self.tty {
            println!("[{t:>6.1}s] {line}");
        }
    }

    fn draw(&mut self) {
        let width = terminal_width().saturating_sub(1).max(40);
        let mut frame = String::new();
        let elapsed = self.started.elapsed().as_secs();
        let _ = writeln!(frame, "Hearth demo · {}:{:02} · Ctrl-C to stop", elapsed / 60, elapsed % 60);
        if let Some(s) = &self.status {
            let weak = if s.isolation == IsolationLevel::Process {
                " (the demo's level: no OS accounts for simulated members)"
            } else {
                ""
            };
            let _ = writeln!(
                frame,
                "answering {} of {} at most · worker processes {} · isolation {}{weak}",
                s.turns_in_flight,
                s.turn_cap,
                s.worker_processes,
                s.isolation.as_str()
            );
        } else {
            frame.push('\n');
        }
        let _ = writeln!(
            frame,
            "messages {} · replies {} · median reply {}",
            self.sent,
            self.latencies.len(),
            self.median().map_or("—".into(), secs)
        );
        frame.push('\n');
        let name_w = self.people.iter().map(|p| p.name.chars().count() + p.role.len() + 3).max().unwrap_or(0);
        let bot_w = self.people.iter().map(|p| p.bot.len() + 1).max().unwrap_or(0);
        for p in &self.people {
            let member = self.status.as_ref().and_then(|s| s.members.iter().find(|m| m.name == p.name));
            let (bot, lane, calls) = member
                .map_or(("…".into(), "…".into(), 0), |m| (bot_state(&m.bot), lane_state(&m.lane), m.today.calls));
            let who = format!("{} ({})", p.name, p.role);
            let _ = writeln!(
                frame,
                "{who:<name_w$}  {:<bot_w$}  {bot:<10}  {lane:<22}  calls today {calls}",
                format!("@{}", p.bot)
            );
            let _ = writeln!(
                frame,
                "   ▸ {}",
                p.last_sent.as_deref().map_or(String::new(), |t| excerpt(t, width.saturating_sub(5)))
            );
            let _ = writeln!(
                frame,
                "   ◂ {}",
                p.last_reply.as_deref().map_or(String::new(), |t| excerpt(t, width.saturating_sub(5)))
            );
        }
        let lines: Vec<String> = frame.lines().map(|l| excerpt_keep_spaces(l, width)).collect();
        let mut out = String::new();
        if self.drawn > 0 {
            let _ = write!(out, "\x1b[{}A\r", self.drawn);
        }
        for l in &lines {
            let _ = writeln!(out, "\x1b[2K{l}");
        }
        out.push_str("\x1b[J");
        self.drawn = lines.len();
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.flush();
    }

    fn median(&self) -> Option<Duration> {
        let mut l = self.latencies.clone();
        l.sort();
        match l.len() {
            0 => None,
            n if n % 2 == 1 => Some(l[n / 2]),
            n => Some((l[n / 2 - 1] + l[n / 2]) / 2),
        }
    }

    pub fn summary(mut self, elapsed: Duration) {
        self.restore_cursor();
        let replies = self.latencies.len();
        let mut line =
            format!("\nDemo finished after {}s: {} messages sent, {} replies", elapsed.as_secs(), self.sent, replies);
        if let Some(median) = self.median() {
            let min = self.latencies.iter().min().copied().unwrap_or_default();
            let max = self.latencies.iter().max().copied().unwrap_or_default();
            let _ = write!(line, ", median reply {} (fastest {}, slowest {})", secs(median), secs(min), secs(max));
        }
        println!("{line}.");
        println!(
            "Every reply came from a member's own worker process through the real gateway; the demo data directory is removed."
        );
    }

    fn restore_cursor(&mut self) {
        if self.cursor_hidden {
            print!("\x1b[?25h");
            let _ = std::io::stdout().flush();
            self.cursor_hidden = false;
        }
    }
}

impl Drop for View {
    fn drop(&mut self) {
        self.restore_cursor();
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Cuts a line to `max` characters, keeping its spacing.
fn excerpt_keep_spaces(line: &str, max: usize) -> String {
    if line.chars().count() <= max {
        line.to_owned()
    } else {
        let mut cut: String = line.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

fn terminal_width() -> usize {
    // SAFETY: TIOCGWINSZ fills a winsize we own; on failure we fall back.
    unsafe {
        let mut size: libc::winsize = std::mem::zeroed();
        if libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) == 0 && size.ws_col > 0 {
            return size.ws_col as usize;
        }
    }
    100
}
