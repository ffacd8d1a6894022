//! A worker's stderr, into the spawner's log — and nowhere else.
//!
//! A worker is less trusted than the process that reads what it writes: its bytes could be
//! terminal escape sequences for an admin watching the log in a terminal, lines forged to look
//! like the gateway's own, or a flood meant to fill the disk or bury a real warning. So each
//! line becomes one `tracing` event tagged with the member and the worker's pid, after:
//!
//! - control characters (C0 with ESC, DEL, C1) and Unicode's bidirectional overrides are shown
//!   as escapes (`\x1b`, `\u{202e}`) rather than passed on, and bytes that are not UTF-8 as
//!   U+FFFD — so nothing a worker writes can move the cursor, recolour or retitle a terminal,
//!   or start a line of its own;
//! - a line is cut after [`MAX_LINE`] bytes;
//! - at most [`BURST`] lines at once and [`PER_SECOND`] a second on average reach the log; the
//!   rest are counted and the count is logged when lines flow again (and when the pipe ends).
//!
//! A worker cannot raise its lines above `warn`: one that says `ERROR` is logged as a warning.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

use tokio::io::AsyncReadExt;

/// Bytes of one line that reach the log; the rest of the line is counted, not shown.
pub const MAX_LINE: usize = 1_000;
/// Lines that may reach the log at once.
pub const BURST: u32 = 200;
/// Lines a second that may reach the log on average.
pub const PER_SECOND: u32 = 20;

/// `bytes` as text that is safe to show: valid UTF-8 with every control character and
/// bidirectional override escaped. A trailing carriage return (a CRLF line end) is dropped.
pub fn sanitize(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || bidi {
            if (c as u32) < 0x80 {
                out.push_str(&format!("\\x{:02x}", c as u32));
            } else {
                out.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One line as read: at most [`MAX_LINE`] bytes, and how many more the line had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub bytes: Vec<u8>,
    pub cut: usize,
}

impl Line {
    /// The line as it goes into the log.
    pub fn text(&self) -> String {
        let shown = sanitize(&self.bytes);
        if self.cut == 0 { shown } else { format!("{shown}… ({} more bytes left out)", self.cut) }
    }
}

/// Splits a byte stream into [`Line`]s, holding at most [`MAX_LINE`] bytes of the one being read.
#[derive(Debug, Default)]
pub struct Lines {
    current: Vec<u8>,
    cut: usize,
}

impl Lines {
    pub fn push(&mut self, mut chunk: &[u8]) -> Vec<Line> {
        let mut out = Vec::new();
        while !chunk.is_empty() {
            let (part, rest, ended) = match chunk.iter().position(|b| *b == b'\n') {
                Some(i) => (&chunk[..i], &chunk[i + 1..], true),
                None => (chunk, &[][..], false),
            };
            let room = MAX_LINE - self.current.len();
            let keep = part.len().min(room);
            self.current.extend_from_slice(&part[..keep]);
            self.cut += part.len() - keep;
            if ended {
                out.push(Line { bytes: std::mem::take(&mut self.current), cut: std::mem::take(&mut self.cut) });
            }
            chunk = rest;
        }
        out
    }

    /// The last line, if the stream ended without a line break.
    pub fn finish(self) -> Option<Line> {
        (!self.current.is_empty() || self.cut > 0).then_some(Line { bytes: self.current, cut: self.cut })
    }
}

/// A token bucket: [`BURST`] lines at once, refilled at [`PER_SECOND`].
#[derive(Debug)]
pub struct Limiter {
    /// Tokens in thousandths of a line, so the refill needs no floating point.
    milli: u64,
    last: Instant,
    /// Lines left out since the last one logged.
    pub left_out: u64,
}

impl Limiter {
    pub fn new(now: Instant) -> Limiter {
        Limiter { milli: u64::from(BURST) * 1000, last: now, left_out: 0 }
    }

    /// Whether a line may be logged at `now`; if so, how many were left out before it.
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        // Whole milliseconds only; `last` moves only when some passed, so a flood of lines less
        // than a millisecond apart still refills.
        let elapsed = now.saturating_duration_since(self.last).as_millis() as u64;
        if elapsed > 0 {
            self.last = now;
            let refill = elapsed.saturating_mul(u64::from(PER_SECOND));
            self.milli = self.milli.saturating_add(refill).min(u64::from(BURST) * 1000);
        }
        if self.milli >= 1000 {
            self.milli -= 1000;
            Some(std::mem::take(&mut self.left_out))
        } else {
            self.left_out += 1;
            None
        }
    }
}

/// Whether the worker's line says it is a warning or an error (the worker's own log format,
/// or a `hearth:` message from the steps before exec).
fn is_warning(text: &str) -> bool {
    let head: String = text.chars().take(48).collect();
    head.contains("ERROR") || head.contains("WARN") || text.starts_with("hearth: ")
}

fn emit(member: &str, pid: u32, text: &str) {
    if is_warning(text) {
        tracing::warn!(member = %member, pid, "worker stderr: {text}");
    } else {
        tracing::info!(member = %member, pid, "worker stderr: {text}");
    }
}

fn left_out(member: &str, pid: u32, n: u64) {
    tracing::warn!(member = %member, pid, "worker stderr: {n} lines left out (more than {BURST} at once or {PER_SECOND} a second)");
}

/// Reads the worker's stderr until it ends (the worker and anything it started have exited)
/// and logs it as the module says.
pub(crate) async fn relay(member: String, pid: u32, mut pipe: tokio::net::unix::pipe::Receiver) {
    let mut lines = Lines::default();
    let mut limiter = Limiter::new(Instant::now());
    let mut buf = vec![0u8; 8192];
    let log = |line: Line, limiter: &mut Limiter| {
        if let Some(before) = limiter.admit(Instant::now()) {
            if before > 0 {
                left_out(&member, pid, before);
            }
            emit(&member, pid, &line.text());
        }
    };
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for line in lines.push(&buf[..n]) {
            log(line, &mut limiter);
        }
    }
    if let Some(line) = lines.finish() {
        log(line, &mut limiter);
    }
    if limiter.left_out > 0 {
        left_out(&member, pid, limiter.left_out);
    }
}

/// After a start failed (the child already reaped): logs what the child wrote before it gave
/// up — which step failed — and returns it, short, for the error.
pub(crate) fn drain(member: &str, pipe: OwnedFd) -> Option<String> {
    let fd = pipe.as_raw_fd();
    // SAFETY: fcntl and read on a descriptor we own, into a buffer of the size given.
    let bytes = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while out.len() < 64 * 1024 {
            let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            if n <= 0 {
                break;
            }
            out.extend_from_slice(&buf[..n as usize]);
        }
        out
    };
    let mut lines = Lines::default();
    let mut all = lines.push(&bytes);
    all.extend(lines.finish());
    let texts: Vec<String> = all.iter().map(Line::text).filter(|t| !t.trim().is_empty()).collect();
    for text in texts.iter().take(20) {
        tracing::warn!(member = %member, "worker stderr: {text}");
    }
    let said: String = texts.iter().rev().take(3).rev().cloned().collect::<Vec<_>>().join("; ");
    (!said.is_empty()).then(|| said.chars().take(500).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn control_characters_and_bidi_overrides_are_shown_not_obeyed() {
        assert_eq!(sanitize(b"plain text, tabs\tand all"), "plain text, tabs\\x09and all");
        assert_eq!(sanitize(b"\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
        assert_eq!(sanitize(b"\x1b]0;owned\x07title"), "\\x1b]0;owned\\x07title");
        assert_eq!(sanitize(b"bell\x07 del\x7f nul\0"), "bell\\x07 del\\x7f nul\\x00");
        // A carriage return mid-line would let a worker overwrite what the terminal shows.
        assert_eq!(sanitize(b"innocent\rFORGED"), "innocent\\x0dFORGED");
        assert_eq!(sanitize(b"crlf line\r"), "crlf line");
        // C1 controls (CSI as one character) and the bidirectional overrides.
        assert_eq!(sanitize("a\u{9b}31mb".as_bytes()), "a\\u{9b}31mb");
        assert_eq!(sanitize("x\u{202e}gnp.exe".as_bytes()), "x\\u{202e}gnp.exe");
        // Not UTF-8: replaced, never passed through.
        assert_eq!(sanitize(b"bad \xff\xfe bytes"), "bad \u{fffd}\u{fffd} bytes");
        assert_eq!(sanitize("Grüße, 世界 ✓".as_bytes()), "Grüße, 世界 ✓");
        // Every byte value: nothing below 0x20 or at 0x7f survives.
        let all: Vec<u8> = (0u8..=255).collect();
        let shown = sanitize(&all);
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
    }

    #[test]
    fn lines_are_split_cut_and_finished() {
        let mut l = Lines::default();
        assert_eq!(l.push(b"one\ntw"), [Line { bytes: b"one".to_vec(), cut: 0 }]);
        assert_eq!(l.push(b"o\n\nthree"), [Line { bytes: b"two".to_vec(), cut: 0 }, Line { bytes: vec![], cut: 0 }]);
        assert_eq!(l.finish(), Some(Line { bytes: b"three".to_vec(), cut: 0 }));

        // A line of 5,000 bytes in pieces keeps MAX_LINE of them and counts the rest.
        let mut l = Lines::default();
        let long = vec![b'x'; 5_000];
        assert!(l.push(&long[..3_000]).is_empty());
        let out = l.push(&[&long[3_000..], b"\nnext\n".as_slice()].concat());
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].bytes.len(), out[0].cut), (MAX_LINE, 5_000 - MAX_LINE));
        assert!(out[0].text().ends_with("… (4000 more bytes left out)"), "{}", out[0].text());
        assert_eq!(out[1].bytes, b"next");
        assert_eq!(l.finish(), None);
    }

    #[test]
    fn a_flood_is_capped_and_counted() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new(t0);
        let admitted = (0..1_000).filter(|_| limiter.admit(t0).is_some()).count();
        assert_eq!(admitted, BURST as usize);
        assert_eq!(limiter.left_out, 1_000 - u64::from(BURST));
        // A second later there is room for PER_SECOND more, and the first says what was lost.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(limiter.admit(t1), Some(1_000 - u64::from(BURST)));
        let more = (1..1_000).filter(|_| limiter.admit(t1).is_some()).count();
        assert_eq!(more + 1, PER_SECOND as usize);
        // After a long quiet the bucket is full again, never fuller.
        let t2 = t1 + Duration::from_secs(3_600);
        let admitted = (0..1_000).filter(|_| limiter.admit(t2).is_some()).count();
        assert_eq!(admitted, BURST as usize);
        // An endless flood, ten lines a millisecond for a minute, gets PER_SECOND lines a second
        // through after the first burst.
        let mut limiter = Limiter::new(t0);
        let mut through = 0;
        for tick in 0..600_000u64 {
            if limiter.admit(t0 + Duration::from_micros(tick * 100)).is_some() {
                through += 1;
            }
        }
        let most = BURST as usize + 60 * PER_SECOND as usize;
        assert!((most - 2..=most).contains(&through), "{through}");
    }

    #[test]
    fn a_worker_cannot_log_above_a_warning() {
        assert!(is_warning("2026-01-01T00:00:00Z ERROR worker{member=ana}: boom"));
        assert!(is_warning("2026-01-01T00:00:00Z  WARN worker: hm"));
        assert!(is_warning("hearth: starting the worker failed while connecting"));
        assert!(!is_warning("2026-01-01T00:00:00Z  INFO worker: turn done"));
        assert!(!is_warning(&format!("{} ERROR later in the line", "x".repeat(60))));
    }

    #[test]
    fn what_a_failed_start_wrote_is_returned() {
        let mut fds = [0; 2];
        // SAFETY: pipe fills the array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both were just created.
        let (read, write) = unsafe {
            use std::os::fd::FromRawFd;
            (OwnedFd::from_raw_fd(fds[0]), std::fs::File::from_raw_fd(fds[1]))
        };
        let mut write = write;
        std::io::Write::write_all(&mut write, b"hearth: starting the worker failed while \x1b[2Jconnecting\n").unwrap();
        drop(write);
        let said = drain("ana", read).unwrap();
        assert_eq!(said, "hearth: starting the worker failed while \\x1b[2Jconnecting");
    }
}
