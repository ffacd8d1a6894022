//! The strings an admin types that the `hearth` CLI hands to the engine: dollar amounts, months,
//! days, time zones, pairing codes, bot tokens, member names and the isolation level. Never a
//! panic, and whatever is accepted is accepted again in its canonical form with the same value.
//! (The clap tree itself lives in the binary crate and is not fuzzed here.)
#![no_main]

use hearth_gateway::IsolationChoice;
use hearth_gateway::control::validate_name;
use hearth_gateway::routing::pairing::normalize;
use hearth_gateway::spend::period::{month_key, parse_day, parse_month, parse_timezone};
use hearth_gateway::spend::{format_usd, parse_usd};
use hearth_gateway::telegram::token_shape_ok;
use libfuzzer_sys::fuzz_target;

fn check(s: &str) {
    if let Ok(micros) = parse_usd(s) {
        assert_eq!(parse_usd(&format_usd(micros)), Ok(micros), "{s:?}");
    }
    if let Ok((year, month)) = parse_month(s) {
        assert_eq!(parse_month(&month_key(year, month)), Ok((year, month)), "{s:?}");
    }
    if let Ok(day) = parse_day(s) {
        assert_eq!(parse_day(&day.format("%Y-%m-%d").to_string()), Ok(day), "{s:?}");
    }
    if let Ok(zone) = parse_timezone(s) {
        assert_eq!(parse_timezone(zone.name()), Ok(zone), "{s:?}");
    }
    if let Some(code) = normalize(s) {
        assert_eq!(normalize(&code).as_deref(), Some(code.as_str()), "{s:?}");
    }
    if let Ok(name) = validate_name(s) {
        assert_eq!(validate_name(&name).ok().as_deref(), Some(name.as_str()), "{s:?}");
    }
    let _ = token_shape_ok(s);
    let _ = s.parse::<IsolationChoice>();
}

fuzz_target!(|data: &[u8]| {
    // Every u64 that format_usd prints must parse back exactly.
    if let Some(bytes) = data.first_chunk::<8>() {
        let micros = u64::from_le_bytes(*bytes);
        assert_eq!(parse_usd(&format_usd(micros)), Ok(micros));
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    // The whole input as one argument, and each word as the shell would split it.
    check(text);
    for word in text.split_whitespace() {
        check(word);
    }
});
