//! The demo model: short, friendly canned answers picked by the words in the question. It is
//! plainly a stand-in — it never pretends to look things up, and says so where it matters.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::demo::household::{MEDIA, ScriptedMedia};
use crate::llm::{FakeLlm, LlmCall, Reply, Transcription};

struct Topic {
    /// Word beginnings that select the topic (`cook` matches "cooking").
    stems: &'static [&'static str],
    replies: &'static [&'static str],
}

const TOPICS: &[Topic] = &[
    Topic {
        stems: &["dinner", "lunch", "cook", "recipe", "pancake", "soup", "shopping", "vegetarian", "meal"],
        replies: &[
            "How about a creamy chicken and leek pie? Soften the leeks in butter, add the chicken and a splash of cream, top with puff pastry and bake for 25 minutes.",
            "A one-pan traybake never fails: whatever vegetables you have, a drizzle of oil, salt and herbs, 30 minutes at 200°C. Add sausages or chickpeas for protein.",
            "Here's an easy plan: pasta on Monday, a stir-fry on Tuesday, soup and bread on Wednesday, tacos on Thursday, and something fun on Friday. Want the shopping list?",
            "A quick vegetarian lunch: a jar salad — chickpeas, feta, cucumber and tomatoes with a lemony dressing at the bottom. Shake before eating.",
            "Fluffy pancakes for four: 200 g flour, 2 tsp baking powder, a pinch of salt, 2 eggs, 300 ml milk, 2 tbsp melted butter. Let the batter rest 5 minutes first!",
        ],
    },
    Topic {
        stems: &["photosynthesis", "solve", "x", "essay", "homework", "spell", "history", "math", "test"],
        replies: &[
            "Photosynthesis in one line: plants use sunlight to turn water and carbon dioxide into sugar (their food), and breathe out oxygen as a bonus.",
            "To solve it: x² − 5x + 6 factors into (x − 2)(x − 3), so x = 2 or x = 3. Check: 4 − 10 + 6 = 0. ✓",
            "Three essay angles: why the war started (alliances and one assassination), life in the trenches, and how it changed women's work at home. Pick the one you find most interesting!",
            "Necessary: one collar, two sleeves — one c, double s. N-E-C-E-S-S-A-R-Y.",
        ],
    },
    Topic {
        stems: &["tomato", "garden", "plant", "rose", "seed", "flower"],
        replies: &[
            "Yellow lower leaves on tomatoes are usually nothing serious: older leaves fade as the plant grows. Water at the base, not the leaves, and snip off the yellow ones.",
            "Roses are happiest planted in late autumn or early spring, when the soil is workable but not frozen. Give them a sunny spot and plenty of compost.",
        ],
    },
    Topic {
        stems: &["birthday", "gift", "present", "retiring"],
        replies: &[
            "For a grandpa who loves his garden: a good pair of secateurs, a kneeling pad, or seeds for something he's never grown. A handwritten card from the grandchildren always wins, though.",
            "For a retiring colleague, something personal goes a long way: a nice notebook with a note from the team, a plant for their new free time, or a voucher for a class they've always wanted to try.",
        ],
    },
    Topic {
        stems: &["remind", "pill", "appointment", "form", "dentist"],
        replies: &[
            "Got it — I'll remind you then. (This is the demo model, so it's pretend; the real Hearth keeps reminders for you.)",
            "Noted! I'll nudge you at the right time. (Demo model here, so no real reminder — but that's the idea.)",
        ],
    },
    Topic {
        stems: &["film", "movie", "series", "watch", "book", "western"],
        replies: &[
            "A classic western: \"The Magnificent Seven\" (1960). Great cast, great music, and just the right length for an evening.",
            "A great series for two: \"Slow Horses\" — funny, tense, and the episodes fly by.",
            "For a train ride: \"A Gentleman in Moscow\" — warm, witty, and easy to dip in and out of.",
        ],
    },
    Topic {
        stems: &["game", "football", "guitar", "song", "music", "running", "draw"],
        replies: &[
            "On guitar, try \"Wonderwall\" or \"Riptide\" — four easy chords each, and everyone can sing along.",
            "Better football in midfield: scan over your shoulder before the ball arrives, and practise first touch with both feet. Ten minutes against a wall every day makes a big difference.",
            "Fun with friends online: Minecraft, Rocket League or Among Us. All good for a laugh and easy to join in.",
            "Start gently: run one minute, walk two, ten times, three days a week. Add a minute each week and you'll be running half an hour before you know it.",
            "I can't check tonight's fixtures (demo model, no internet), but a big football match is always better with snacks and company.",
            "Draw your dream treehouse! Give it a slide, a secret door and a room just for snacks.",
        ],
    },
    Topic {
        stems: &["weather", "rain", "fishing", "cloudy", "windy", "picnic", "sunny"],
        replies: &[
            "I'm only the demo model, so I can't see a forecast. But cloudy and a little windy is classic fishing weather — the fish feel safer near the surface.",
            "I can't check the weather from here (demo model, no internet!). Pack the picnic blanket and a backup plan, and it'll be a good day either way.",
        ],
    },
    Topic {
        stems: &["stain", "wine", "laundry", "clean"],
        replies: &[
            "Act fast: blot the red wine stain (don't rub), cover it with salt or bicarbonate of soda, then rinse with cold water and wash as usual.",
        ],
    },
    Topic {
        stems: &["trip", "travel", "holiday", "lisbon"],
        replies: &[
            "Three days in Lisbon: the castle and Alfama on day one, Belém and its custard tarts on day two, a tram ride and a sunset miradouro on day three.",
        ],
    },
    Topic {
        stems: &["sunday", "weekend", "teen", "rainy", "bored", "ideas"],
        replies: &[
            "Rainy-day rescue: a board game tournament with silly prizes, homemade pizzas where everyone picks a topping, or a film marathon where the teenager chooses.",
        ],
    },
    Topic {
        stems: &["joke", "funny", "haha"],
        replies: &[
            "Why was the maths book sad? It had too many problems. 📚",
            "What do you call a sleeping dinosaur? A dino-snore! 🦕 Dinosaurs need their sleep too.",
            "Why don't skeletons fight each other? They don't have the guts.",
        ],
    },
    Topic {
        stems: &["video", "call", "phone", "password", "email", "tap"],
        replies: &[
            "Open WhatsApp, tap her name, then tap the little camera at the top right. Hold the phone at arm's length and smile!",
            "On the sign-in page, tap \"Forgot password?\", enter your email, and follow the link they send you. Choose something long that you'll remember.",
            "A dripping tap usually needs a new washer: turn off the water under the sink, unscrew the handle, swap the rubber washer, and put it back together.",
        ],
    },
    Topic {
        stems: &["sky", "spider", "bee", "why"],
        replies: &[
            "Sunlight has all the colours in it, and the air scatters blue light the most — so blue comes at us from all over the sky!",
            "Spiders have eight legs — insects have six. That's how you tell them apart.",
            "Seven letters, where bees live: APIARY? That's six… try BEEHIVE! 🐝",
        ],
    },
    Topic {
        stems: &["cat", "purr", "kitten", "dog", "pet"],
        replies: &[
            "Cats purr when they're happy and relaxed — and sometimes to calm themselves down. The rumble comes from their voice box, about 25 times a second! 🐱",
        ],
    },
    Topic {
        stems: &["thank", "thx", "cheers", "kindly", "nvm"],
        replies: &["You're very welcome! 😊", "Any time — that's what I'm here for.", "Glad I could help!"],
    },
];

const FALLBACK: &[&str] = &[
    "Good question! Here's a simple way to start: break it into small steps and do the first one today. Want me to help plan them?",
    "I'd keep it simple: pick one thing, give it twenty minutes, and see how it feels. Tell me more and I'll get specific.",
    "Happy to help with that. Could you tell me a little more about what you have in mind?",
];

/// What the demo model "sees" in a photo of homework: it cannot see at all, and says so.
const LOOKING: &[&str] = &[
    "Looking at your photo of the worksheet: the first sum, 7 × 8 = 56, is right ✓. For the fractions, find a common denominator first — 1/2 + 1/3 = 3/6 + 2/6 = 5/6. (I'm the demo model, so I'm only pretending to see; a real model reads the page.)",
    "I can see the page you sent: the long division at the top checks out ✓, and in the last question remember to carry the 1. (Demo model here — pretend eyes; a real model reads the photo.)",
];

/// The pause between the pieces (about two words each) of a streamed demo answer: the demo's
/// answers appear as they are written, as a real model's do (a 250-character answer takes about
/// a second after the model's latency).
pub const STREAM_PIECE_DELAY: std::time::Duration = std::time::Duration::from_millis(40);

/// Sets up a fake model as the demo's: [`responder`] for chat, [`transcriber`] for voice notes,
/// and answers streamed a piece at a time ([`STREAM_PIECE_DELAY`]).
pub fn install(llm: &FakeLlm) {
    llm.set_responder(responder());
    llm.set_transcriber(transcriber());
    llm.set_stream_chunk_delay(STREAM_PIECE_DELAY);
}

/// What the demo's speech service hears: the scripted transcript of the voice note as long as
/// this one ([`MEDIA`]), or a plain greeting for any other.
pub fn transcriber() -> impl Fn(&Transcription) -> String + Send + Sync + 'static {
    |t: &Transcription| {
        let seconds = crate::media::ogg_opus_duration_secs(&t.bytes);
        MEDIA
            .iter()
            .find_map(|(_, m)| match m {
                ScriptedMedia::Voice { seconds: s, transcript } if Some(*s) == seconds => Some(*transcript),
                _ => None,
            })
            .unwrap_or("Hello Hearth, can you hear me?")
            .to_owned()
    }
}

/// Makes replies for the fake LLM; each call picks the next variant so answers vary. A message
/// with photos gets an answer about what it "sees", naming how many there are.
pub fn responder() -> impl Fn(&LlmCall) -> Reply + Send + Sync + 'static {
    let turn = AtomicUsize::new(0);
    move |call: &LlmCall| {
        let n = turn.fetch_add(1, Ordering::Relaxed);
        let photos = call.last_user_images().len();
        if photos > 0 {
            let looking = LOOKING[n % LOOKING.len()];
            return Reply::text(match photos {
                1 => looking.to_owned(),
                _ => format!("Thanks for the {photos} photos! {looking}"),
            });
        }
        // A quick follow-up ("nothing too spicy please") is answered by the question before it.
        let texts = user_texts(call);
        let last = texts.last().map_or("", String::as_str);
        if topic(last).is_none()
            && let Some(earlier) = texts.iter().rev().skip(1).find(|t| topic(t).is_some())
        {
            let ack = ["Sure thing! In short:", "Noted. The short version:", "Of course! In a nutshell:"][n % 3];
            return Reply::text(format!("{ack} {}", first_sentence(answer(earlier, n))));
        }
        Reply::text(answer(last, n))
    }
}

/// `text` up to the end of its first sentence.
fn first_sentence(text: &str) -> &str {
    text.char_indices()
        .find(|&(i, c)| matches!(c, '.' | '!' | '?') && text[i + 1..].starts_with(' '))
        .map_or(text, |(i, _)| &text[..=i])
}

/// The text of every user message in the request, oldest first.
fn user_texts(call: &LlmCall) -> Vec<String> {
    let Some(messages) = call.body.get("messages").and_then(|m| m.as_array()) else {
        return vec![call.last_user_text()];
    };
    messages
        .iter()
        .filter(|m| m.get("role").and_then(|r| r.as_str()) == Some("user"))
        .filter_map(|m| match m.get("content")? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Array(blocks) => {
                Some(blocks.iter().filter_map(|b| b.get("text")?.as_str()).collect::<Vec<_>>().join("\n"))
            }
            _ => None,
        })
        .collect()
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// The topic most of the question's words point at, if any.
fn topic(question: &str) -> Option<&'static Topic> {
    let words = words(question);
    let score = |t: &Topic| {
        words.iter().filter(|w| t.stems.iter().any(|s| w.starts_with(s) && (s.len() > 1 || w.len() == 1))).count()
    };
    TOPICS.iter().map(|t| (score(t), t)).filter(|(s, _)| *s > 0).max_by_key(|(s, _)| *s).map(|(_, t)| t)
}

/// The canned answer to `question`; `n` picks among the topic's variants.
pub fn answer(question: &str, n: usize) -> &'static str {
    let words = words(question);
    let replies = topic(question).map_or(FALLBACK, |t| t.replies);
    // Prefer the variant that mentions a word from the question, then rotate.
    let mentions = |r: &&str| {
        let said = self::words(r);
        words.iter().filter(|w| w.len() > 3 && said.contains(w)).count()
    };
    let top = replies.iter().map(mentions).max().unwrap_or(0);
    let candidates: Vec<&&str> = replies.iter().filter(|r| mentions(r) == top).collect();
    candidates[n % candidates.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::household::PROFILES;

    #[test]
    fn answers_fit_the_question() {
        assert!(answer("What could I make for dinner with chicken and leeks?", 0).contains("leek"));
        assert!(answer("how do I solve x^2 - 5x + 6 = 0", 0).contains("x = 2"));
        assert!(answer("Yellow leaves on my tomato plants", 0).contains("tomato"));
        assert!(answer("tell me a joke about maths", 0).contains("maths"));
        assert!(answer("what should i draw today", 0).contains("Draw"));
        assert!(answer("What's a good way to start running again at 45?", 0).contains("running"));
        assert!(FALLBACK.contains(&answer("hmm", 0)));
        // Variants rotate only among equally fitting answers.
        assert_eq!(
            answer("whats a chill song to learn on guitar", 0),
            answer("whats a chill song to learn on guitar", 1)
        );
    }

    #[test]
    fn a_follow_up_is_answered_from_the_question_before_it() {
        let call = |messages: serde_json::Value| LlmCall {
            api: crate::llm::Api::OpenAi,
            model: "demo-model".into(),
            stream: false,
            api_key: None,
            body: serde_json::json!({ "messages": messages }),
            at: std::time::Instant::now(),
        };
        let reply = responder();
        let first = call(serde_json::json!([
            {"role": "system", "content": "You are a helpful family assistant."},
            {"role": "user", "content": "What could I make for dinner with chicken and leeks?"},
        ]));
        let Reply::Text(text) = reply(&first) else { panic!("text") };
        assert!(text.contains("leek"), "{text}");
        let follow_up = call(serde_json::json!([
            {"role": "user", "content": "What could I make for dinner with chicken and leeks?"},
            {"role": "assistant", "content": text},
            {"role": "user", "content": [{"type": "text", "text": "nothing too spicy please"}]},
        ]));
        let Reply::Text(text) = reply(&follow_up) else { panic!("text") };
        assert!(text.ends_with(": How about a creamy chicken and leek pie?"), "{text}");
    }

    #[test]
    fn scripted_follow_ups_stay_on_their_question() {
        for p in PROFILES {
            for (question, follow_up) in p.messages.iter().filter(|(_, f)| !f.is_empty()) {
                if let Some(t) = topic(follow_up) {
                    assert!(
                        std::ptr::eq(t, topic(question).unwrap()),
                        "{follow_up:?} changes the subject of {question:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn photos_get_an_answer_about_what_is_seen_and_voice_notes_their_transcript() {
        use base64::Engine as _;
        let png = base64::engine::general_purpose::STANDARD.encode(crate::media::png(80, 60));
        let image = serde_json::json!({"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{png}")}});
        let call = |content: serde_json::Value| LlmCall {
            api: crate::llm::Api::OpenAi,
            model: "demo-model".into(),
            stream: false,
            api_key: None,
            body: serde_json::json!({ "messages": [{"role": "user", "content": content}] }),
            at: std::time::Instant::now(),
        };
        let reply = responder();
        let one = call(serde_json::json!([{"type": "text", "text": "can u check my maths homework"}, image]));
        let Reply::Text(text) = reply(&one) else { panic!("text") };
        assert!(text.contains("photo") && text.contains("pretend"), "{text}");
        let three = call(serde_json::json!([image, image, image]));
        let Reply::Text(text) = reply(&three) else { panic!("text") };
        assert!(text.starts_with("Thanks for the 3 photos!"), "{text}");

        let hear = transcriber();
        for (_, m) in MEDIA {
            if let ScriptedMedia::Voice { seconds, transcript } = m {
                let t = Transcription {
                    model: "whisper-1".into(),
                    file_name: Some("voice.oga".into()),
                    content_type: None,
                    bytes: crate::media::ogg_opus(*seconds),
                    response_format: None,
                    language: None,
                    api_key: None,
                    at: std::time::Instant::now(),
                };
                assert_eq!(hear(&t), *transcript);
                let a = answer(transcript, 0);
                assert!(!FALLBACK.contains(&a), "{transcript:?} gets a topical answer, not {a:?}");
            }
        }
    }

    #[test]
    fn follow_ups_get_the_short_version() {
        assert_eq!(first_sentence("One. Two."), "One.");
        assert_eq!(first_sentence("x = 2.5 is fine"), "x = 2.5 is fine");
        assert_eq!(first_sentence("Hi! Yes."), "Hi!");
    }

    #[test]
    fn every_scripted_message_gets_a_topical_answer() {
        for p in PROFILES {
            for (m, _) in p.messages {
                let a = answer(m, 0);
                assert!(!FALLBACK.contains(&a), "{m:?} fell back to a generic answer");
                let said = words(a);
                assert!(
                    words(m).iter().any(|w| w.len() > 3 && said.contains(w)),
                    "{m:?} got an answer about something else: {a:?}"
                );
            }
        }
    }
}
