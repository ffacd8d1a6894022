//! The bytes of a turn's attachments, as they arrive in `AttachmentChunk` frames right before
//! the turn's `Turn` frame: collected in memory per inbox row, strictly in order, and bounded,
//! so a confused or hostile gateway can make the worker hold at most
//! [`MAX_ATTACHMENTS_PER_TURN`] × [`MAX_ATTACHMENT_BYTES`] and never crash it. A chunk that
//! breaks a rule spoils the turn (the member is told why when the `Turn` comes), not the worker.
//!
//! Bytes only: what they are and where they go is `media.rs`'s concern.

use std::collections::BTreeMap;

use base64::Engine as _;
use hearth_proto::worker::{ATTACHMENT_CHUNK_BYTES, MAX_ATTACHMENT_BYTES, MAX_ATTACHMENTS_PER_TURN};

/// What the member reads when a file arrived broken on the way from the gateway: not their
/// fault, and sending it again usually works.
pub const NOT_WHOLE: &str = "Sorry, the file did not arrive whole, please send it again.";

/// The chunks of one turn so far.
#[derive(Debug, Default)]
pub struct Collector {
    turn_id: Option<u64>,
    files: BTreeMap<i64, Vec<u8>>,
    /// Why this turn's attachments cannot be used (for the log, never content); once set, the
    /// turn's remaining chunks are dropped and nothing more is kept.
    spoiled: Option<String>,
}

/// A turn's attachments once its `Turn` frame came.
#[derive(Debug, Default)]
pub struct Received {
    /// Bytes per inbox row.
    pub files: BTreeMap<i64, Vec<u8>>,
    /// Set when a chunk broke the rules: the turn must not use any of them.
    pub spoiled: Option<String>,
}

impl Collector {
    /// Takes one chunk. A chunk for a turn other than the one being collected starts over:
    /// chunks are sent right before their turn, so the earlier ones belong to a turn that
    /// will not come (the gateway gave up on it).
    pub fn chunk(&mut self, turn_id: u64, inbox_id: i64, offset: u64, data: &str) {
        if self.turn_id != Some(turn_id) {
            if self.turn_id.is_some() {
                tracing::warn!(dropped = ?self.turn_id, turn_id, "attachment chunks of another turn dropped");
            }
            *self = Collector { turn_id: Some(turn_id), ..Collector::default() };
        }
        if self.spoiled.is_some() {
            return;
        }
        if let Err(why) = self.add(inbox_id, offset, data) {
            tracing::warn!(turn_id, inbox_id, offset, why, "attachment chunk refused");
            self.files.clear();
            self.spoiled = Some(why);
        }
    }

    fn add(&mut self, inbox_id: i64, offset: u64, data: &str) -> Result<(), String> {
        // base64 of a full chunk, with room for padding: refused before decoding anything.
        if data.len() > ATTACHMENT_CHUNK_BYTES.div_ceil(3) * 4 {
            return Err(format!("a chunk of {} base64 bytes is larger than a chunk may be", data.len()));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| format!("a chunk is not valid base64 ({e})"))?;
        if !self.files.contains_key(&inbox_id) && self.files.len() >= MAX_ATTACHMENTS_PER_TURN {
            return Err(format!("more than {MAX_ATTACHMENTS_PER_TURN} attachments in one turn"));
        }
        let file = self.files.entry(inbox_id).or_default();
        if offset != file.len() as u64 {
            return Err(format!("a chunk at offset {offset} after {} bytes", file.len()));
        }
        if file.len() as u64 + bytes.len() as u64 > MAX_ATTACHMENT_BYTES {
            return Err(format!("an attachment larger than {MAX_ATTACHMENT_BYTES} bytes"));
        }
        file.extend_from_slice(&bytes);
        Ok(())
    }

    /// What was collected for `turn_id` (nothing when the chunks were for another turn);
    /// starts over for the next turn either way.
    pub fn take(&mut self, turn_id: u64) -> Received {
        let collected = std::mem::take(self);
        match collected.turn_id {
            Some(id) if id == turn_id => Received { files: collected.files, spoiled: collected.spoiled },
            Some(other) => {
                tracing::warn!(dropped = other, turn_id, "attachment chunks of another turn dropped");
                Received::default()
            }
            None => Received::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn chunks_in_order_make_the_file() {
        let mut c = Collector::default();
        c.chunk(1, 10, 0, &b64(b"hello "));
        c.chunk(1, 10, 6, &b64(b"world"));
        c.chunk(1, 11, 0, &b64(b"x"));
        let r = c.take(1);
        assert_eq!(r.spoiled, None);
        assert_eq!(r.files[&10], b"hello world");
        assert_eq!(r.files[&11], b"x");
        assert!(c.take(1).files.is_empty(), "taken once");
    }

    #[test]
    fn rules_spoil_the_turn_not_the_worker() {
        let spoiled = |f: &dyn Fn(&mut Collector)| {
            let mut c = Collector::default();
            f(&mut c);
            let r = c.take(1);
            assert!(r.files.is_empty());
            r.spoiled.expect("spoiled")
        };
        assert!(spoiled(&|c| c.chunk(1, 10, 0, "not base64!")).contains("base64"));
        assert!(spoiled(&|c| c.chunk(1, 10, 5, &b64(b"x"))).contains("offset 5"));
        assert!(
            spoiled(&|c| {
                c.chunk(1, 10, 0, &b64(b"ab"));
                c.chunk(1, 10, 1, &b64(b"c"));
            })
            .contains("offset 1 after 2")
        );
        assert!(
            spoiled(&|c| {
                for i in 0..=MAX_ATTACHMENTS_PER_TURN as i64 {
                    c.chunk(1, i, 0, &b64(b"x"));
                }
            })
            .contains("more than")
        );
        let big = b64(&vec![0u8; ATTACHMENT_CHUNK_BYTES]);
        assert!(
            spoiled(&|c| {
                let mut offset = 0;
                while offset <= MAX_ATTACHMENT_BYTES {
                    c.chunk(1, 10, offset, &big);
                    offset += ATTACHMENT_CHUNK_BYTES as u64;
                }
            })
            .contains("larger than")
        );
        assert!(spoiled(&|c| c.chunk(1, 10, 0, &b64(&vec![0u8; ATTACHMENT_CHUNK_BYTES + 3]))).contains("chunk"));
    }

    #[test]
    fn another_turns_chunks_are_dropped() {
        let mut c = Collector::default();
        c.chunk(1, 10, 0, &b64(b"old"));
        c.chunk(2, 20, 0, &b64(b"new"));
        assert!(c.take(1).files.is_empty(), "turn 1's chunks went when turn 2's came");
        c.chunk(3, 30, 0, &b64(b"x"));
        let r = c.take(4);
        assert!(r.files.is_empty() && r.spoiled.is_none());
    }
}
