//! A minimal `multipart/form-data` reader shared by the simulated Telegram (`sendVoice` uploads)
//! and the simulated speech service (`/audio/transcriptions`): enough for what reqwest and
//! teloxide send, strict enough to refuse a body that is not multipart at all.

/// One part of a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    pub name: String,
    /// `filename` from the part's `Content-Disposition`: set for file uploads.
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

impl Part {
    /// The content as text (lossy), for ordinary fields.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// A parameter of a header value (`boundary` of a Content-Type, `name` of a Content-Disposition).
pub(crate) fn header_param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().trim_matches('"').to_owned())
    })
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > haystack.len() {
        return None;
    }
    haystack[from..].windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// The parts of a `multipart/form-data` body; `Err(())` when it cannot be read.
pub(crate) fn parse(body: &[u8], boundary: &str) -> Result<Vec<Part>, ()> {
    let delim = format!("--{boundary}");
    let mut pos = find(body, delim.as_bytes(), 0).ok_or(())? + delim.len();
    let mut parts = Vec::new();
    loop {
        if body[pos..].starts_with(b"--") {
            return Ok(parts);
        }
        let next = find(body, format!("\r\n{delim}").as_bytes(), pos).map(|p| p + 2).ok_or(())?;
        let part = &body[pos..next];
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let part = part.strip_suffix(b"\r\n").unwrap_or(part);
        let split = find(part, b"\r\n\r\n", 0).ok_or(())?;
        let headers = String::from_utf8_lossy(&part[..split]);
        let header = |name: &str| {
            headers.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
        };
        let disposition = header("content-disposition").ok_or(())?;
        parts.push(Part {
            name: header_param(&disposition, "name").ok_or(())?,
            file_name: header_param(&disposition, "filename"),
            content_type: header("content-type"),
            bytes: part[split + 4..].to_vec(),
        });
        pos = next + delim.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_binary_files() {
        let mut body = b"--XX\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n".to_vec();
        body.extend(b"--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"v.oga\"\r\n");
        body.extend(b"Content-Type: audio/ogg\r\n\r\n\x00\r\n--X\xff\r\n--XX--\r\n");
        let parts = parse(&body, "XX").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].text(), "whisper-1");
        assert_eq!(parts[1].file_name.as_deref(), Some("v.oga"));
        assert_eq!(parts[1].content_type.as_deref(), Some("audio/ogg"));
        assert_eq!(parts[1].bytes, b"\x00\r\n--X\xff", "bytes that look like a boundary stay");
        assert!(parse(b"garbage", "XX").is_err());
        assert_eq!(header_param("multipart/form-data; boundary=\"a b\"", "boundary").as_deref(), Some("a b"));
    }
}
