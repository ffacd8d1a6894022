//! A model's reply, as arbitrary UTF-8, rendered with `render_reply` at a limit taken from the
//! input. Never a panic; every chunk is within the limit in UTF-16 units of visible text (both
//! the HTML, read as Telegram reads it, and the plain fallback) and none is blank.
#![no_main]

use hearth_gateway::telegram::reply::render_reply;
use libfuzzer_sys::fuzz_target;

/// The text Telegram shows for our HTML: tags dropped, the four entities we emit decoded. Only
/// the visible length matters here; `telegram/reply/`'s own tests check the markup itself.
fn visible(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        if c == '<' {
            let end = rest.find('>').expect("tag is closed");
            rest = &rest[end + 1..];
        } else if c == '&' {
            let (entity, ch) = [("&lt;", '<'), ("&gt;", '>'), ("&amp;", '&'), ("&quot;", '"')]
                .into_iter()
                .find(|(e, _)| rest.starts_with(e))
                .unwrap_or_else(|| panic!("bad entity in {html:?}"));
            out.push(ch);
            rest = &rest[entity.len()..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn units(s: &str) -> usize {
    s.encode_utf16().count()
}

fuzz_target!(|data: &[u8]| {
    let Some((head, text)) = data.split_first_chunk::<2>() else { return };
    let Ok(text) = std::str::from_utf8(text) else { return };
    // Mostly small limits, where the splitting is busiest; sometimes the production 4000.
    let limit = match u16::from_le_bytes(*head) {
        n if n >= 0xF000 => 4000,
        n => usize::from(n % 300),
    };
    for chunk in render_reply(text, limit) {
        let shown = visible(&chunk.html);
        if limit >= 2 {
            assert!(units(&shown) <= limit, "{} > {limit}: {:?}", units(&shown), chunk.html);
            assert!(units(&chunk.plain) <= limit, "plain {} > {limit}: {:?}", units(&chunk.plain), chunk.plain);
        }
        assert!(!shown.trim().is_empty(), "blank chunk {:?}", chunk.html);
    }
});
