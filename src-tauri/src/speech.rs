//! Voice notes and voice replies at the IPC boundary: the engine's speech summaries, tests and
//! voice-reply choices as the window's DTOs, and the window's choices as control requests. Pure
//! mapping, so the commands that use it stay one call each.

use hearth_proto::control::{self as proto, ControlRequest};

use crate::ipc::{SpeechDirection, SpeechServiceArgs, SpeechServiceDto, SpeechSource, SpeechTestDto, VoiceReplies};

pub fn direction(d: SpeechDirection) -> proto::SpeechDirection {
    match d {
        SpeechDirection::In => proto::SpeechDirection::In,
        SpeechDirection::Out => proto::SpeechDirection::Out,
    }
}

fn direction_dto(d: proto::SpeechDirection) -> SpeechDirection {
    match d {
        proto::SpeechDirection::In => SpeechDirection::In,
        proto::SpeechDirection::Out => SpeechDirection::Out,
    }
}

fn source(s: proto::SpeechSource) -> SpeechSource {
    match s {
        proto::SpeechSource::Own => SpeechSource::Own,
        proto::SpeechSource::ChatProvider => SpeechSource::ChatProvider,
        proto::SpeechSource::Off => SpeechSource::Off,
        proto::SpeechSource::None => SpeechSource::None,
    }
}

/// Hearing voice notes, as the engine has it in force.
pub fn hearing(s: proto::SpeechSummary) -> SpeechServiceDto {
    SpeechServiceDto {
        direction: SpeechDirection::In,
        source: source(s.source),
        base_url: s.base_url,
        model: s.model,
        voice: None,
    }
}

/// Answering in voice, as the engine has it in force.
pub fn speaking(s: proto::VoiceSummary) -> SpeechServiceDto {
    SpeechServiceDto {
        direction: SpeechDirection::Out,
        source: source(s.source),
        base_url: s.base_url,
        model: s.model,
        voice: s.voice,
    }
}

/// The request that sets one direction's own service. An empty voice name leaves the choice to
/// the gateway (its default voice).
pub fn set_request(args: SpeechServiceArgs) -> ControlRequest {
    let SpeechServiceArgs { direction, base_url, model, voice, api_key } = args;
    match direction {
        SpeechDirection::In => ControlRequest::SpeechSet { base_url, model, api_key },
        SpeechDirection::Out => ControlRequest::VoiceSet { base_url, model, voice: voice.unwrap_or_default(), api_key },
    }
}

/// The request that turns one direction off.
pub fn off_request(d: SpeechDirection) -> ControlRequest {
    match d {
        SpeechDirection::In => ControlRequest::SpeechOff,
        SpeechDirection::Out => ControlRequest::VoiceOff,
    }
}

pub fn test_result(t: proto::SpeechTestResult) -> SpeechTestDto {
    SpeechTestDto {
        direction: direction_dto(t.direction),
        model: t.model,
        latency_ms: u32::try_from(t.latency_ms).unwrap_or(u32::MAX),
        heard: t.heard,
        audio_bytes: t.audio_bytes.map(|b| u32::try_from(b).unwrap_or(u32::MAX)),
    }
}

pub fn voice_replies(v: proto::VoiceReplies) -> VoiceReplies {
    match v {
        proto::VoiceReplies::Never => VoiceReplies::Never,
        proto::VoiceReplies::WhenSpoken => VoiceReplies::WhenSpoken,
        proto::VoiceReplies::Always => VoiceReplies::Always,
    }
}

pub fn proto_voice_replies(v: VoiceReplies) -> proto::VoiceReplies {
    match v {
        VoiceReplies::Never => proto::VoiceReplies::Never,
        VoiceReplies::WhenSpoken => proto::VoiceReplies::WhenSpoken,
        VoiceReplies::Always => proto::VoiceReplies::Always,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(direction: SpeechDirection, voice: Option<&str>) -> SpeechServiceArgs {
        SpeechServiceArgs {
            direction,
            base_url: "http://127.0.0.1:8000/v1".into(),
            model: "m".into(),
            voice: voice.map(str::to_owned),
            api_key: String::new(),
        }
    }

    #[test]
    fn each_direction_sets_its_own_service() {
        assert!(matches!(set_request(args(SpeechDirection::In, Some("nova"))), ControlRequest::SpeechSet { .. }));
        let ControlRequest::VoiceSet { voice, .. } = set_request(args(SpeechDirection::Out, Some("nova"))) else {
            panic!("answering in voice sets the voice service");
        };
        assert_eq!(voice, "nova");
        let ControlRequest::VoiceSet { voice, .. } = set_request(args(SpeechDirection::Out, None)) else {
            panic!("answering in voice sets the voice service");
        };
        assert_eq!(voice, "", "the gateway picks its default voice");
        assert_eq!(off_request(SpeechDirection::In), ControlRequest::SpeechOff);
        assert_eq!(off_request(SpeechDirection::Out), ControlRequest::VoiceOff);
    }

    #[test]
    fn summaries_keep_where_the_service_comes_from() {
        let heard = hearing(proto::SpeechSummary {
            source: proto::SpeechSource::ChatProvider,
            base_url: Some("u".into()),
            model: Some("whisper-1".into()),
        });
        assert_eq!(
            (heard.direction, heard.source, heard.voice),
            (SpeechDirection::In, SpeechSource::ChatProvider, None)
        );
        let spoken = speaking(proto::VoiceSummary {
            source: proto::SpeechSource::Off,
            base_url: None,
            model: None,
            voice: None,
        });
        assert_eq!((spoken.direction, spoken.source), (SpeechDirection::Out, SpeechSource::Off));
        for v in [VoiceReplies::Never, VoiceReplies::WhenSpoken, VoiceReplies::Always] {
            assert_eq!(voice_replies(proto_voice_replies(v)), v);
        }
    }
}
