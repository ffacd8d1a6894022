//! The simulated household: who lives there and what they tend to ask.

/// One simulated family member.
pub struct Profile {
    pub name: &'static str,
    /// Who they are in the family, for the demo's header.
    pub role: &'static str,
    /// What they ask, in their own voice, each with a quick second message they may send while
    /// the first is still being answered (`""` for none).
    pub messages: &'static [(&'static str, &'static str)],
    /// Sometimes sent after an answer arrives.
    pub thanks: &'static [&'static str],
}

pub const PROFILES: &[Profile] = &[
    Profile {
        name: "Rosa",
        role: "mum",
        messages: &[
            (
                "What could I make for dinner tonight with chicken, leeks and a bit of cream?",
                "oh, and nothing too spicy please",
            ),
            ("Can you help me write a shopping list for a week of simple dinners?", "we're four, and Leo eats for two"),
            ("Sam's birthday is on Saturday — any gift ideas for a grandpa who loves his garden?", "under £30 ideally"),
            ("Remind me to sign Leo's school trip form tomorrow morning", ""),
            ("How do I get a red wine stain out of a white tablecloth?", ""),
            ("Any ideas for a rainy Sunday with a teenager who'd rather be on his phone?", ""),
            ("What's a quick vegetarian lunch I can take to work?", "it has to be quick, I only have 20 minutes"),
        ],
        thanks: &["thanks, you're a star", "perfect, thank you!"],
    },
    Profile {
        name: "Leo",
        role: "teen",
        messages: &[
            ("can u explain photosynthesis really simply, test tomorrow", "keep it short pls"),
            ("how do I solve x^2 - 5x + 6 = 0", "show the steps pls"),
            ("need 3 ideas for my history essay on the first world war", ""),
            ("whats a good game to play online with friends that isnt fortnite", "free ones pls"),
            ("how do i get better at football, I play midfield", ""),
            ("tell me a joke about maths", ""),
            ("whats a chill song to learn on guitar", "im a beginner"),
        ],
        thanks: &["thx", "nvm got it, thx"],
    },
    Profile {
        name: "Sam",
        role: "grandpa",
        messages: &[
            (
                "Good morning. My tomato plants have yellow leaves at the bottom. What is wrong with them?",
                "I water them every evening.",
            ),
            (
                "How do I make a video call to my granddaughter on this phone?",
                "I am not very good with these things, so slowly please.",
            ),
            ("Is it a good day for fishing if it is cloudy and a bit windy?", ""),
            ("Please remind me to take my blood pressure pill at 8 o'clock.", ""),
            ("Can you recommend a good old western film for tonight?", "Nothing too violent, my wife is watching too."),
            ("What is a 7 letter word for 'a place where bees live'? It is for the crossword.", ""),
            ("When is the best time to plant roses?", ""),
        ],
        thanks: &["Thank you kindly.", "Thank you, that is very helpful."],
    },
    Profile {
        name: "Mia",
        role: "kid",
        messages: &[
            ("why is the sky blue", "pleeease"),
            ("tell me a funny joke about dinosaurs", ""),
            ("how many legs does a spider have", ""),
            ("can you help with my spelling homework, how do you spell necessary", ""),
            ("what should i draw today", "with lots of colours"),
        ],
        thanks: &["haha thank you!!"],
    },
    Profile {
        name: "Tom",
        role: "dad",
        messages: &[
            ("Fluffy pancake recipe for four, please", "no buttermilk in the house"),
            ("How do I fix a dripping kitchen tap?", ""),
            ("Who's playing in the football tonight, and is it worth watching?", ""),
            ("Can you suggest a series to watch with Rosa this weekend?", "nothing too scary"),
            ("What's a good way to start running again at 45?", ""),
        ],
        thanks: &["cheers"],
    },
    Profile {
        name: "Ada",
        role: "aunt",
        messages: &[
            ("Recommend a book for a long train ride?", "something light"),
            ("How do I reset my email password?", ""),
            ("What's a nice gift for a colleague who is retiring?", "on a budget, ideally"),
            ("Is it going to rain this weekend? Planning a picnic.", ""),
            ("Can you help me plan a three-day trip to Lisbon?", "we love food and old streets"),
        ],
        thanks: &["thanks!", "lovely, thank you"],
    },
];

/// Something a member sends that they did not type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptedMedia {
    /// A voice note lasting `seconds` (distinct per note: it is how the demo's speech service
    /// knows which one it hears), in which the simulated speech service hears `transcript`.
    Voice { seconds: u32, transcript: &'static str },
    /// A photo of `width` × `height` pixels with a caption.
    Photo { width: u32, height: u32, caption: &'static str },
}

impl ScriptedMedia {
    /// How the demo's view shows it being sent.
    pub fn shown_as(&self) -> String {
        match self {
            Self::Voice { seconds, .. } => format!("🎤 a voice note ({seconds} s)"),
            Self::Photo { caption, .. } => format!("📷 a photo: {caption}"),
        }
    }
}

/// The demo's one voice note and one photo: a child's short spoken question, and a photo of
/// homework. Each is sent once, by the member named, as their second message. Sam's voice note
/// is answered in voice (every member's default: a voice note gets a voice reply, spoken by the
/// demo's simulated speech service).
pub const MEDIA: &[(&str, ScriptedMedia)] = &[
    ("Sam", ScriptedMedia::Voice { seconds: 4, transcript: "Hearth, why do cats purr?" }),
    ("Leo", ScriptedMedia::Photo { width: 800, height: 600, caption: "can u check my maths homework" }),
];

/// What the member with this profile sends besides text, if anything.
pub fn media_of(profile: &Profile) -> Option<ScriptedMedia> {
    MEDIA.iter().find(|(name, _)| *name == profile.name).map(|(_, m)| *m)
}

/// The `i`-th member of a household of any size: the profiles in order, then again with a
/// number (`Rosa 2`) so names stay unique.
pub fn member(i: usize) -> (String, &'static Profile) {
    let profile = &PROFILES[i % PROFILES.len()];
    let round = i / PROFILES.len();
    let name = if round == 0 { profile.name.to_owned() } else { format!("{} {}", profile.name, round + 1) };
    (name, profile)
}

/// A bot username for the member, as the admin might pick in BotFather.
pub fn bot_username(name: &str) -> String {
    let slug: String = name.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_lowercase();
    format!("{slug}_family_bot")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_bots_are_unique() {
        let names: std::collections::HashSet<String> = (0..50).map(|i| member(i).0).collect();
        assert_eq!(names.len(), 50);
        let bots: std::collections::HashSet<String> = (0..50).map(|i| bot_username(&member(i).0)).collect();
        assert_eq!(bots.len(), 50);
        assert_eq!(bot_username("Rosa 2"), "rosa2_family_bot");
    }

    #[test]
    fn scripted_media_belong_to_members_and_voice_notes_differ_in_length() {
        for (name, _) in MEDIA {
            assert!(PROFILES.iter().any(|p| p.name == *name), "{name} is not in the household");
        }
        let mut seconds: Vec<u32> = MEDIA
            .iter()
            .filter_map(|(_, m)| match m {
                ScriptedMedia::Voice { seconds, .. } => Some(*seconds),
                ScriptedMedia::Photo { .. } => None,
            })
            .collect();
        let all = seconds.len();
        seconds.sort_unstable();
        seconds.dedup();
        assert_eq!(seconds.len(), all);
        assert!(media_of(&PROFILES[2]).is_some_and(|m| m.shown_as().contains("voice note")));
    }
}
