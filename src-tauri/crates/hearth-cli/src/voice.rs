//! Voice replies from the command line: `hearth provider voice` (the text-to-speech service, or
//! off), `hearth provider test-speech --in|--out` (the Test button), and how voice settings read
//! in `provider show`, `status`, `member set` and `member list`.

use std::path::Path;

use hearth_proto::control::{ControlReply, ControlRequest, SpeechDirection, SpeechSource, VoiceReplies, VoiceSummary};

use crate::admin::{ask, print_json, service_key, unexpected_reply};
use crate::args::{ProviderTestSpeechArgs, ProviderVoiceArgs, VoiceRepliesArg};
use crate::failure::Failure;

/// `hearth provider voice`: a service of the household's own, or off.
pub async fn provider_voice(data_dir: &Path, args: ProviderVoiceArgs) -> Result<(), Failure> {
    // Fails with "not running" before the admin is asked to paste a key for nothing.
    ask(data_dir, ControlRequest::VoiceGet).await?;
    let request = match (&args.base_url, &args.model) {
        (Some(base_url), Some(model)) if !args.off => ControlRequest::VoiceSet {
            api_key: service_key("voice", base_url, args.no_key, args.api_key_env.as_deref()).await?,
            base_url: base_url.clone(),
            model: model.clone(),
            voice: args.voice.clone().unwrap_or_default(),
        },
        _ => ControlRequest::VoiceOff,
    };
    match ask(data_dir, request).await? {
        ControlReply::Voice(summary) => {
            if args.json {
                print_json(&summary);
            } else if args.off {
                println!("Voice replies are off: every answer is text, whatever members chose.");
            } else {
                println!("{}", describe_voice(&summary));
                println!("Its key is kept by the gateway only; no member's assistant ever sees it.");
            }
            Ok(())
        }
        other => Err(unexpected_reply(&other)),
    }
}

/// `hearth provider test-speech --in|--out`.
pub async fn test_speech(data_dir: &Path, args: ProviderTestSpeechArgs) -> Result<(), Failure> {
    let direction = if args.speaking { SpeechDirection::Out } else { SpeechDirection::In };
    match ask(data_dir, ControlRequest::SpeechTest { direction }).await? {
        ControlReply::SpeechTested(t) => {
            if args.json {
                print_json(&t);
            } else {
                match direction {
                    SpeechDirection::In => match t.heard.as_deref().map(str::trim).filter(|h| !h.is_empty()) {
                        Some(heard) => println!("It works: {} heard {heard:?} in {} ms.", t.model, t.latency_ms),
                        None => println!(
                            "It works: {} answered in {} ms and heard nothing in the sample (a second of silence).",
                            t.model, t.latency_ms
                        ),
                    },
                    SpeechDirection::Out => println!(
                        "It works: {} spoke a short sentence in {} ms ({} bytes of audio).",
                        t.model,
                        t.latency_ms,
                        t.audio_bytes.unwrap_or(0)
                    ),
                }
                println!("Nothing was saved and no member's spending was charged.");
            }
            Ok(())
        }
        other => Err(unexpected_reply(&other)),
    }
}

/// One line on the voice-reply service, as the admin reads it.
pub fn describe_voice(v: &VoiceSummary) -> String {
    let at = || {
        format!(
            "{} voice {} at {}",
            v.model.as_deref().unwrap_or("?"),
            v.voice.as_deref().unwrap_or("?"),
            v.base_url.as_deref().unwrap_or("?")
        )
    };
    match v.source {
        SpeechSource::Own => format!("Voice replies: {}.", at()),
        SpeechSource::ChatProvider => format!("Voice replies: {} (the provider's own service).", at()),
        SpeechSource::Off => {
            "Voice replies: off — every answer is text (`hearth provider voice --base-url URL --model NAME` turns \
             them on)."
                .to_owned()
        }
        SpeechSource::None => "Voice replies: none — every answer is text; set a voice with `hearth provider voice \
                               --base-url URL --model NAME`."
            .to_owned(),
    }
}

/// A member's voice setting in a sentence's middle.
pub fn describe_voice_replies(v: VoiceReplies) -> &'static str {
    match v {
        VoiceReplies::Never => "always answers in text",
        VoiceReplies::WhenSpoken => "answers voice messages in voice",
        VoiceReplies::Always => "answers in voice",
    }
}

pub fn voice_replies(v: VoiceRepliesArg) -> VoiceReplies {
    match v {
        VoiceRepliesArg::Never => VoiceReplies::Never,
        VoiceRepliesArg::WhenSpoken => VoiceReplies::WhenSpoken,
        VoiceRepliesArg::Always => VoiceReplies::Always,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voice_lines_read_plainly() {
        let own = VoiceSummary {
            source: SpeechSource::Own,
            base_url: Some("http://localhost:8880/v1".into()),
            model: Some("kokoro".into()),
            voice: Some("af_bella".into()),
        };
        assert_eq!(describe_voice(&own), "Voice replies: kokoro voice af_bella at http://localhost:8880/v1.");
        let off = VoiceSummary { source: SpeechSource::Off, base_url: None, model: None, voice: None };
        assert!(describe_voice(&off).contains("every answer is text"));
        for (arg, want) in [
            (VoiceRepliesArg::Never, VoiceReplies::Never),
            (VoiceRepliesArg::WhenSpoken, VoiceReplies::WhenSpoken),
            (VoiceRepliesArg::Always, VoiceReplies::Always),
        ] {
            assert_eq!(voice_replies(arg), want);
        }
    }
}
