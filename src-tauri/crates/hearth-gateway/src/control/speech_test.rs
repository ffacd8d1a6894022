//! The admin's Test button for speech, in either direction: hearing (`In`: a short sample is
//! transcribed by the speech-recognition service in force) or speaking (`Out`: a short sentence
//! is spoken by the voice-reply service in force). Like a provider test, it goes straight through
//! `hearth_llm`, not the broker: it is the admin's own check, charged to no member and leaving
//! nothing in the ledger or the settings.
//!
//! The sample to hear is real speech when a voice service works ("Hello from Hearth", spoken
//! first), otherwise a second of silent Ogg Opus built here — a service that hears nothing in it
//! still proves the address, key and model work.

use std::time::{Duration, Instant};

use hearth_llm::{CallLimits, LlmError, SpeechService};
use hearth_proto::control::{ControlError, ErrorCode, SpeechDirection, SpeechTestResult};

use super::internal;
use crate::core::Engine;

/// The whole test call, connect to last byte.
const TEST_TIMEOUT: Duration = Duration::from_secs(20);
/// What the voice test says, and what the hearing test speaks first when it can.
const SAMPLE_SENTENCE: &str = "Hello from Hearth";
/// Characters of a service's error shown to the admin.
const SHOWN_CHARS: usize = 200;

/// Tries the speech service in force for `direction`; nothing is stored or charged.
pub(super) async fn test(e: &Engine, direction: SpeechDirection) -> Result<SpeechTestResult, ControlError> {
    let limits = CallLimits {
        connect: Duration::from_secs(10),
        first_byte: TEST_TIMEOUT,
        idle: TEST_TIMEOUT,
        total: TEST_TIMEOUT,
    };
    let http = hearth_llm::http_client(&limits).map_err(internal)?;
    match direction {
        SpeechDirection::Out => {
            let (Some(voice), _) = e.broker.voice_service() else {
                return Err(none_set("voice-reply", "hearth provider voice --base-url URL --model NAME"));
            };
            let service = voice.service();
            let started = Instant::now();
            let audio = hearth_llm::speak(&http, &service, SAMPLE_SENTENCE, &voice.voice, &limits)
                .await
                .map_err(|err| test_error(&err, direction, &service))?;
            tracing::info!(model = %service.model, "voice test worked");
            Ok(SpeechTestResult {
                direction,
                model: service.model,
                latency_ms: started.elapsed().as_millis() as u64,
                heard: None,
                audio_bytes: Some(audio.len() as u64),
            })
        }
        SpeechDirection::In => {
            let (Some(speech), _) = e.broker.speech_service() else {
                return Err(none_set("speech recognition", "hearth provider speech --base-url URL --model NAME"));
            };
            // Real words to hear when the voice service can say them; silence otherwise.
            let spoken = match e.broker.voice_service().0 {
                Some(v) => hearth_llm::speak(&http, &v.service(), SAMPLE_SENTENCE, &v.voice, &limits).await.ok(),
                None => None,
            };
            let sample = spoken.unwrap_or_else(silent_ogg_opus);
            let service = SpeechService { base_url: speech.base_url, api_key: speech.api_key, model: speech.model };
            let started = Instant::now();
            let heard = hearth_llm::transcribe(&http, &service, sample, "sample.ogg", "audio/ogg", &limits)
                .await
                .map_err(|err| test_error(&err, direction, &service))?;
            tracing::info!(model = %service.model, "speech recognition test worked");
            Ok(SpeechTestResult {
                direction,
                model: service.model,
                latency_ms: started.elapsed().as_millis() as u64,
                heard: Some(clip(&heard, SHOWN_CHARS)),
                audio_bytes: None,
            })
        }
    }
}

fn none_set(what: &str, command: &str) -> ControlError {
    ControlError::new(
        ErrorCode::InvalidInput,
        format!(
            "There is no {what} service to test. Set one with `{command}`, or choose a chat provider of kind openai, \
             whose own service is used."
        ),
    )
}

/// What went wrong with a speech test, in words the admin can act on.
fn test_error(e: &LlmError, direction: SpeechDirection, service: &SpeechService) -> ControlError {
    let (what, endpoint, command) = match direction {
        SpeechDirection::In => ("speech recognition", "/audio/transcriptions", "hearth provider speech"),
        SpeechDirection::Out => ("voice-reply", "/audio/speech", "hearth provider voice"),
    };
    let (base_url, model) = (&service.base_url, &service.model);
    let (code, message) = match e {
        LlmError::Status { status: status @ (401 | 403), .. } => (
            ErrorCode::Rejected,
            format!(
                "The {what} service refused its API key (HTTP {status}). Set the key again with `{command} --base-url \
                 {base_url} --model {model}` (the key is read from stdin)."
            ),
        ),
        LlmError::Status { status: status @ (404 | 405), message, .. } => (
            ErrorCode::Rejected,
            format!(
                "The {what} service has no model called {model:?}, or no {endpoint} at {base_url} (HTTP {status}: {}). \
                 Check the model's exact name, and that the address ends where the API starts (often /v1).",
                clip(message, SHOWN_CHARS)
            ),
        ),
        LlmError::Status { status: 429, .. } => (
            ErrorCode::Rejected,
            format!(
                "The {what} service is turning requests away (HTTP 429). The account may be out of credit or over its \
                 rate limit; check it on the provider's website, then try again."
            ),
        ),
        LlmError::Status { status, .. } if *status >= 500 => (
            ErrorCode::Unreachable,
            format!("The {what} service had trouble answering (HTTP {status}). Try again in a minute."),
        ),
        LlmError::Status { status, message, .. } => (
            ErrorCode::Rejected,
            format!(
                "The {what} service refused the test (HTTP {status}: {}). Check the model's name{}.",
                clip(message, SHOWN_CHARS),
                if direction == SpeechDirection::Out { " and the voice's" } else { "" }
            ),
        ),
        LlmError::Network(detail) => (
            ErrorCode::Unreachable,
            format!(
                "Couldn't reach {base_url}: {}. Check the address, and that the server is running.",
                clip(detail, SHOWN_CHARS)
            ),
        ),
        LlmError::Timeout { .. } => (
            ErrorCode::Unreachable,
            format!(
                "Couldn't reach {base_url}: no answer within {} seconds. Check the address; a local server may still \
                 be loading its model, so try again in a minute.",
                TEST_TIMEOUT.as_secs()
            ),
        ),
        LlmError::Malformed(detail) => (
            ErrorCode::Rejected,
            format!(
                "{base_url} answered, but not as an OpenAI-compatible {endpoint} does ({}). Check the address.",
                clip(detail, SHOWN_CHARS)
            ),
        ),
        LlmError::Config(detail) => (ErrorCode::InvalidInput, format!("These settings cannot work: {detail}.")),
        LlmError::Redirected { status, location, .. } => (
            ErrorCode::Rejected,
            format!(
                "{base_url} answered with a redirect (HTTP {status}) to {}. Hearth does not follow a service's \
                 redirects, because the API key would go along; if that address is right, set it instead.",
                clip(location, SHOWN_CHARS)
            ),
        ),
    };
    ControlError::new(code, message)
}

fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

/// Opus counts time in 48 kHz samples; one 20 ms frame is 960 of them.
const SAMPLES_PER_FRAME: u64 = 960;
/// Frames in the silent sample: one second.
const SILENT_FRAMES: usize = 50;
/// Samples a decoder drops at the start (RFC 7845 recommends at least 3840 for an encoder;
/// libopus writes 312).
const PRE_SKIP: u16 = 312;

/// About one second of silence as Ogg Opus (RFC 7845), mono: an identification page, a comment
/// page, and one page of fifty 20 ms packets that are each only a TOC byte (CELT, full band,
/// 20 ms, one frame; a frame of no bytes decodes as silence). What a voice note is, so any
/// speech service takes it.
pub(crate) fn silent_ogg_opus() -> Vec<u8> {
    const SERIAL: u32 = 0x7465_7374; // "test"
    let mut head = Vec::with_capacity(19);
    head.extend_from_slice(b"OpusHead");
    head.extend_from_slice(&[1, 1]); // version 1, one channel
    head.extend_from_slice(&PRE_SKIP.to_le_bytes());
    head.extend_from_slice(&48_000u32.to_le_bytes());
    head.extend_from_slice(&[0, 0, 0]); // no gain, mapping family 0
    let mut tags = Vec::new();
    tags.extend_from_slice(b"OpusTags");
    tags.extend_from_slice(&6u32.to_le_bytes());
    tags.extend_from_slice(b"hearth");
    tags.extend_from_slice(&0u32.to_le_bytes());
    // TOC: configuration 31 (CELT FB 20 ms), mono, code 0 (one frame).
    let silence = [31u8 << 3];
    let frames = vec![&silence[..]; SILENT_FRAMES];
    let end = u64::from(PRE_SKIP) + SAMPLES_PER_FRAME * SILENT_FRAMES as u64;
    let mut out = Vec::new();
    for (sequence, (flags, granule, packets)) in
        [(0x02, 0, vec![&head[..]]), (0x00, 0, vec![&tags[..]]), (0x04, end, frames)].into_iter().enumerate()
    {
        write_page(&mut out, SERIAL, sequence as u32, flags, granule, &packets);
    }
    out
}

/// One Ogg page of whole packets, each shorter than 255 bytes (all of ours are).
fn write_page(out: &mut Vec<u8>, serial: u32, sequence: u32, flags: u8, granule: u64, packets: &[&[u8]]) {
    let start = out.len();
    out.extend_from_slice(b"OggS\0");
    out.push(flags);
    out.extend_from_slice(&granule.to_le_bytes());
    out.extend_from_slice(&serial.to_le_bytes());
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(packets.len() as u8);
    out.extend(packets.iter().map(|p| p.len() as u8));
    for p in packets {
        out.extend_from_slice(p);
    }
    let crc = page_checksum(&out[start..]);
    out[start + 22..start + 26].copy_from_slice(&crc.to_le_bytes());
}

/// The Ogg page checksum: CRC-32 with polynomial 0x04c11db7, MSB first, no reflection, starting
/// at 0, over the page with its checksum field zero.
fn page_checksum(page: &[u8]) -> u32 {
    page.iter().fold(0u32, |crc, &byte| {
        (0..8).fold(crc ^ (u32::from(byte) << 24), |c, _| if c >> 31 == 1 { (c << 1) ^ 0x04c1_1db7 } else { c << 1 })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (flags, granule, packet lengths) of each page, checking every checksum.
    fn pages(bytes: &[u8]) -> Vec<(u8, u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < bytes.len() {
            assert_eq!(&bytes[pos..pos + 4], b"OggS");
            let segments = usize::from(bytes[pos + 26]);
            let lacing = bytes[pos + 27..pos + 27 + segments].to_vec();
            let len = 27 + segments + lacing.iter().map(|&l| usize::from(l)).sum::<usize>();
            let mut page = bytes[pos..pos + len].to_vec();
            let stated = u32::from_le_bytes(page[22..26].try_into().unwrap());
            page[22..26].fill(0);
            assert_eq!(page_checksum(&page), stated, "page at {pos}");
            out.push((bytes[pos + 5], u64::from_le_bytes(bytes[pos + 6..pos + 14].try_into().unwrap()), lacing));
            pos += len;
        }
        out
    }

    #[test]
    fn the_silent_sample_is_one_second_of_ogg_opus() {
        let ogg = silent_ogg_opus();
        assert_eq!(&ogg[28..36], b"OpusHead");
        let pages = pages(&ogg);
        assert_eq!(pages.len(), 3);
        assert_eq!((pages[0].0, pages[1].0, pages[2].0), (0x02, 0x00, 0x04), "begins, then ends the stream");
        assert_eq!(pages[2].1 - u64::from(PRE_SKIP), 48_000, "one second at 48 kHz");
        assert_eq!(pages[2].2, vec![1u8; 50]);
        assert!(ogg.len() < 256, "about 50 bytes a second plus headers: {}", ogg.len());
    }

    #[test]
    fn the_checksum_is_ogg_s() {
        // The CRC-32/MPEG-2 family without the final xor and init: a known value for "123456789".
        assert_eq!(page_checksum(b"123456789"), 0x89a1_897f);
    }

    #[test]
    fn errors_name_what_to_fix() {
        let service = SpeechService { base_url: "http://127.0.0.1:9/v1".into(), api_key: None, model: "tts-1".into() };
        let status = |status| LlmError::Status { status, retry_after: None, message: "no".into() };
        let e = test_error(&status(401), SpeechDirection::Out, &service);
        assert_eq!(e.code, ErrorCode::Rejected);
        assert!(
            e.message.contains("refused its API key") && e.message.contains("hearth provider voice"),
            "{}",
            e.message
        );
        let e = test_error(&status(404), SpeechDirection::In, &service);
        assert!(
            e.message.contains("no model called \"tts-1\"") && e.message.contains("/audio/transcriptions"),
            "{}",
            e.message
        );
        let e = test_error(&LlmError::Network("connection refused".into()), SpeechDirection::Out, &service);
        assert_eq!(e.code, ErrorCode::Unreachable);
        assert!(e.message.starts_with("Couldn't reach http://127.0.0.1:9/v1: connection refused."), "{}", e.message);
        assert_eq!(test_error(&status(503), SpeechDirection::In, &service).code, ErrorCode::Unreachable);
    }
}
