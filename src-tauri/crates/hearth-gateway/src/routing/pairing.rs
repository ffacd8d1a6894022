//! Pairing codes: how a member's Telegram account is bound to their bot. The admin hands the
//! member a code (or the deep link carrying it); the member's first `/start <code>` binds them.
//!
//! Codes are 8 characters from an alphabet without look-alikes (no 0/O, 1/I/L), live one hour,
//! are single use, and at most three are pending per member — as in OpenClaw, whose scheme
//! families already know.

use rand::Rng;

/// Upper-case letters and digits a person cannot confuse when reading a code aloud.
pub const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
pub const CODE_LEN: usize = 8;
pub const CODE_TTL_SECS: i64 = 3600;

pub fn new_code() -> String {
    let mut rng = rand::rng();
    (0..CODE_LEN).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

/// Reads a code as a person might type it: case and surrounding spaces do not matter. Returns
/// `None` for anything that cannot be a code.
pub fn normalize(input: &str) -> Option<String> {
    let code = input.trim().to_ascii_uppercase();
    (code.len() == CODE_LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// The link that opens the member's bot and sends `/start <code>` with one tap.
pub fn deep_link(bot_username: &str, code: &str) -> String {
    format!("https://t.me/{bot_username}?start={code}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_use_only_the_unambiguous_alphabet_and_round_trip() {
        for _ in 0..200 {
            let c = new_code();
            assert_eq!(c.len(), CODE_LEN);
            assert!(!c.contains(['0', 'O', '1', 'I', 'L']), "{c}");
            assert_eq!(normalize(&format!("  {}\n", c.to_lowercase())), Some(c));
        }
    }

    #[test]
    fn non_codes_are_refused() {
        for bad in ["", "ABC", "ABCDEFGHJ", "ABCDEF0H", "ABCD EFG", "ABCDEFG!", "ÄBCDEFGH"] {
            assert_eq!(normalize(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn deep_link_shape() {
        assert_eq!(deep_link("ana_hearth_bot", "ABCD2345"), "https://t.me/ana_hearth_bot?start=ABCD2345");
    }
}
