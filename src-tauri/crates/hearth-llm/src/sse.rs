//! Server-sent events, as both providers stream them. The network may split the byte stream
//! anywhere — inside a line, between `\r` and `\n`, inside a UTF-8 character — so the parser
//! keeps the unfinished line between pushes and only decodes whole lines.

/// One dispatched event. `data` joins the event's `data:` lines with `\n`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field (Anthropic names every event; OpenAI names none).
    pub event: Option<String>,
    pub data: String,
}

/// Incremental parser following the WHATWG event-stream rules: lines end in `\n`, `\r\n` or
/// `\r`; a blank line dispatches; `:` starts a comment; one space after the field's colon is
/// dropped; `id` and `retry` are ignored; an event without `data` is not dispatched.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the line not yet terminated.
    line: Vec<u8>,
    /// The last byte seen was `\r`, so a `\n` at the start of the next push belongs to it.
    after_cr: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next piece of the stream; complete events are appended to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        let mut rest = chunk;
        // An empty push must leave a pending `\r` pending: its `\n` may still come.
        if self.after_cr && !rest.is_empty() {
            self.after_cr = false;
            if let Some(tail) = rest.strip_prefix(b"\n") {
                rest = tail;
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&rest[..pos]);
            self.end_line(out);
            let is_cr = rest[pos] == b'\r';
            rest = &rest[pos + 1..];
            if is_cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.line.extend_from_slice(rest);
    }

    /// The stream ended: an unterminated last line and a pending event are still delivered.
    /// Stricter parsers would drop them, but some servers close right after the last `data:`
    /// line; whether the stream was complete is decided by its terminal event, not here.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if !self.line.is_empty() {
            self.end_line(out);
        }
        self.dispatch(out);
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            return;
        }
        let line = String::from_utf8_lossy(&line);
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = self.event.take();
        if std::mem::take(&mut self.has_data) {
            out.push(SseEvent { event, data: std::mem::take(&mut self.data) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.push(c, &mut out);
        }
        p.finish(&mut out);
        out
    }

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent { event: event.map(str::to_owned), data: data.to_owned() }
    }

    #[test]
    fn anthropic_shaped_stream() {
        let s = b"event: message_start\ndata: {\"a\":1}\n\n: keep-alive\n\nevent: ping\ndata: {}\n\n";
        assert_eq!(parse_all(&[s]), vec![ev(Some("message_start"), "{\"a\":1}"), ev(Some("ping"), "{}")]);
    }

    #[test]
    fn multi_line_data_and_field_rules() {
        let s = b"data:first\ndata:  second\nid: 7\nretry: 100\ndata\n\n";
        assert_eq!(parse_all(&[s]), vec![ev(None, "first\n second\n")]);
    }

    #[test]
    fn event_without_data_is_not_dispatched_and_name_does_not_leak() {
        let s = b"event: lonely\n\ndata: x\n\n";
        assert_eq!(parse_all(&[s]), vec![ev(None, "x")]);
    }

    #[test]
    fn crlf_split_between_pushes_is_one_line_end() {
        assert_eq!(parse_all(&[b"data: a\r", b"\n\r", b"\ndata: b\r\r"]), vec![ev(None, "a"), ev(None, "b")]);
        assert_eq!(parse_all(&[b"event: e\r", b"", b"\ndata: c\r\n\r\n"]), vec![ev(Some("e"), "c")]);
    }

    #[test]
    fn unterminated_tail_is_delivered_at_finish() {
        assert_eq!(parse_all(&[b"data: [DONE]"]), vec![ev(None, "[DONE]")]);
    }

    #[test]
    fn utf8_split_inside_a_character() {
        let s = "data: héllo 🌍\n\n".as_bytes();
        let (a, b) = s.split_at(9);
        assert_eq!(parse_all(&[a, b]), vec![ev(None, "héllo 🌍")]);
    }

    fn arb_event() -> impl Strategy<Value = SseEvent> {
        (proptest::option::of("[a-z_]{1,12}"), proptest::collection::vec("[^\r\n]{0,20}", 1..4))
            .prop_map(|(event, lines)| SseEvent { event, data: lines.join("\n") })
    }

    /// Serialises events the way a server might, with a chosen line ending and optional
    /// comments between events.
    fn render(events: &[SseEvent], eol: &str, comments: bool) -> String {
        let mut s = String::new();
        for e in events {
            if comments {
                s.push_str(": ping");
                s.push_str(eol);
            }
            if let Some(name) = &e.event {
                s.push_str(&format!("event: {name}{eol}"));
            }
            for line in e.data.split('\n') {
                s.push_str(&format!("data: {line}{eol}"));
            }
            s.push_str(eol);
        }
        s
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_events(
            events in proptest::collection::vec(arb_event(), 0..6),
            eol in prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
            comments in any::<bool>(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let bytes = render(&events, eol, comments).into_bytes();
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut start = 0;
            for p in points {
                chunks.push(&bytes[start..p]);
                start = p;
            }
            chunks.push(&bytes[start..]);
            prop_assert_eq!(parse_all(&chunks), events);
        }

        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
            let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
            let _ = parse_all(&refs);
        }
    }
}
