//! Small but real media files, made in memory, for the simulated services and the tests that use
//! them: a PNG of any size (photos and their thumbnails), an Ogg Opus stream of any length (voice
//! notes, and what the simulated speech service answers), and the duration a voice file
//! announces. Real enough that an image-header reader reports the right dimensions and an Ogg
//! reader finds valid pages with valid checksums; no sound or picture to speak of (a grey square,
//! silent Opus frames), so nothing here needs an image or audio codec.

/// A valid grayscale PNG of `width` × `height` (clamped to at least 1×1), one flat grey.
/// Uncompressed (deflate "stored" blocks), so it costs about `width × height` bytes.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let (w, h) = (width.max(1), height.max(1));
    let mut raw = Vec::with_capacity((w as usize + 1) * h as usize);
    for _ in 0..h {
        raw.push(0); // filter: none
        raw.extend(std::iter::repeat_n(0x80u8, w as usize));
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]); // 8-bit grayscale, deflate, adaptive filtering, no interlace
    png_chunk(&mut out, b"IHDR", &ihdr);
    png_chunk(&mut out, b"IDAT", &zlib_stored(&raw));
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// `(width, height)` from a PNG's header, or `None` when `bytes` is not a PNG.
pub fn png_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") || bytes.get(12..16) != Some(b"IHDR") {
        return None;
    }
    let w = u32::from_be_bytes(bytes.get(16..20)?.try_into().ok()?);
    let h = u32::from_be_bytes(bytes.get(20..24)?.try_into().ok()?);
    Some((w, h))
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend((data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend(kind);
    out.extend(data);
    let crc = crc32(&out[start..]);
    out.extend(crc.to_be_bytes());
}

/// zlib framing around deflate "stored" (uncompressed) blocks of at most 65 535 bytes.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let mut blocks = data.chunks(65_535).peekable();
    if blocks.peek().is_none() {
        out.extend([1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none()));
        let len = block.len() as u16;
        out.extend(len.to_le_bytes());
        out.extend((!len).to_le_bytes());
        out.extend(block);
    }
    out.extend(adler32(data).to_be_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

/// Opus always counts granules at 48 kHz.
const OPUS_RATE: u64 = 48_000;
/// The encoder delay announced in the OpusHead (libopus's usual value).
const PRE_SKIP: u16 = 312;

/// A valid Ogg Opus stream (mono, 48 kHz) of `duration_secs` seconds of silence: the OpusHead
/// and OpusTags pages, then 20 ms frames of one byte each (a TOC byte with no frame data, which
/// a decoder treats as silence). What Telegram's voice notes are (`audio/ogg`, `.oga`), and what
/// the simulated speech service answers. About 50 bytes per second plus headers.
pub fn ogg_opus(duration_secs: u32) -> Vec<u8> {
    let serial = 0x4865_6172; // "Hear"
    let mut out = Vec::new();
    let mut seq = 0u32;

    let mut head = b"OpusHead".to_vec();
    head.push(1); // version
    head.push(1); // channels
    head.extend(PRE_SKIP.to_le_bytes());
    head.extend(48_000u32.to_le_bytes()); // input sample rate (informational)
    head.extend(0i16.to_le_bytes()); // output gain
    head.push(0); // channel mapping family
    ogg_page(&mut out, serial, &mut seq, 0x02, 0, &[&head]);

    let mut tags = b"OpusTags".to_vec();
    let vendor = b"hearth-sim";
    tags.extend((vendor.len() as u32).to_le_bytes());
    tags.extend(vendor);
    tags.extend(0u32.to_le_bytes()); // no comments
    ogg_page(&mut out, serial, &mut seq, 0, 0, &[&tags]);

    // Config 11 (SILK wideband, 20 ms), mono, one frame: the smallest honest 20 ms packet.
    let frame: &[u8] = &[11 << 3];
    let frames = u64::from(duration_secs) * 50;
    let mut written = 0u64;
    loop {
        let n = (frames - written).min(255);
        written += n;
        let granule = u64::from(PRE_SKIP) + written * OPUS_RATE / 50;
        let last = written == frames;
        let packets: Vec<&[u8]> = std::iter::repeat_n(frame, n as usize).collect();
        ogg_page(&mut out, serial, &mut seq, if last { 0x04 } else { 0 }, granule, &packets);
        if last {
            break;
        }
    }
    out
}

/// One Ogg page holding whole packets (each under 255 bytes, or split into lacing values).
fn ogg_page(out: &mut Vec<u8>, serial: u32, seq: &mut u32, flags: u8, granule: u64, packets: &[&[u8]]) {
    let mut lacing = Vec::new();
    for p in packets {
        let mut left = p.len();
        while left >= 255 {
            lacing.push(255u8);
            left -= 255;
        }
        lacing.push(left as u8);
    }
    let start = out.len();
    out.extend(b"OggS");
    out.push(0); // version
    out.push(flags);
    out.extend(granule.to_le_bytes());
    out.extend(serial.to_le_bytes());
    out.extend(seq.to_le_bytes());
    out.extend([0u8; 4]); // checksum, filled below
    out.push(lacing.len() as u8);
    out.extend(&lacing);
    for p in packets {
        out.extend(*p);
    }
    *seq += 1;
    let crc = ogg_crc(&out[start..]);
    out[start + 22..start + 26].copy_from_slice(&crc.to_le_bytes());
}

/// Ogg's CRC-32: polynomial 0x04c11db7, not reflected, zero initial value and no final xor.
fn ogg_crc(data: &[u8]) -> u32 {
    let mut crc = 0u32;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 { (crc << 1) ^ 0x04c1_1db7 } else { crc << 1 };
        }
    }
    crc
}

/// The whole seconds an Ogg Opus stream lasts, from its last page's granule position (what
/// Telegram reports as a voice note's `duration`); `None` when `bytes` is not Ogg Opus or a page
/// checksum is wrong.
pub fn ogg_opus_duration_secs(bytes: &[u8]) -> Option<u32> {
    if !bytes.starts_with(b"OggS") || bytes.get(28..36) != Some(b"OpusHead") {
        return None;
    }
    let pre_skip = u64::from(u16::from_le_bytes(bytes.get(38..40)?.try_into().ok()?));
    let mut pos = 0;
    let mut granule = 0u64;
    while pos < bytes.len() {
        let header = bytes.get(pos..pos + 27)?;
        if &header[..4] != b"OggS" {
            return None;
        }
        let segments = usize::from(header[26]);
        let lacing = bytes.get(pos + 27..pos + 27 + segments)?;
        let len = 27 + segments + lacing.iter().map(|&l| usize::from(l)).sum::<usize>();
        let mut page = bytes.get(pos..pos + len)?.to_vec();
        let stated = u32::from_le_bytes(page[22..26].try_into().ok()?);
        page[22..26].fill(0);
        if ogg_crc(&page) != stated {
            return None;
        }
        granule = u64::from_le_bytes(header[6..14].try_into().ok()?);
        pos += len;
    }
    Some((granule.saturating_sub(pre_skip) / OPUS_RATE) as u32)
}

/// A small real PDF, written by hand: one page per entry, each showing its text in Helvetica,
/// or (`None`) a page that only draws a line — what a scan without a text layer looks like to a text
/// extractor. The cross-reference table's offsets are computed, so the file is valid PDF 1.4.
pub fn pdf(pages: &[Option<&str>]) -> Vec<u8> {
    let n = pages.len();
    // Objects: 1 catalog, 2 pages, 3 font, then per page: page, contents.
    let mut objects: Vec<String> = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".into(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {n} >>",
            (0..n).map(|i| format!("{} 0 R", 4 + 2 * i)).collect::<Vec<_>>().join(" ")
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".into(),
    ];
    for (i, page) in pages.iter().enumerate() {
        let content = match page {
            Some(text) => format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET"),
            None => "0 0 m 300 300 l S".to_owned(),
        };
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            5 + 2 * i
        ));
        objects.push(format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()));
    }
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_header_and_checksums() {
        let p = png(640, 480);
        assert_eq!(png_dimensions(&p), Some((640, 480)));
        // IHDR's CRC covers type and data.
        let crc = u32::from_be_bytes(p[29..33].try_into().unwrap());
        assert_eq!(crc, crc32(&p[12..29]));
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
        assert!(p.ends_with(&[0xae, 0x42, 0x60, 0x82]), "IEND's fixed CRC");
        assert_eq!(png_dimensions(b"GIF89a"), None);
        assert_eq!(png_dimensions(&png(0, 0)), Some((1, 1)));
    }

    #[test]
    fn ogg_opus_round_trips_its_duration() {
        for secs in [0, 1, 5, 30, 61] {
            let ogg = ogg_opus(secs);
            assert_eq!(ogg_opus_duration_secs(&ogg), Some(secs), "{secs} s");
        }
        let mut broken = ogg_opus(3);
        let last = broken.len() - 1;
        broken[last] ^= 0xff;
        assert_eq!(ogg_opus_duration_secs(&broken), None, "a bad checksum is caught");
        assert_eq!(ogg_opus_duration_secs(b"OggS"), None);
        assert_eq!(ogg_opus_duration_secs(&[]), None);
    }
}
