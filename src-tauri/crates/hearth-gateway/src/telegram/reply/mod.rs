//! Rendering a model's Markdown reply into Telegram messages that cannot fail to parse.
//!
//! Telegram refuses a whole message over one stray `<` in HTML mode or one unescaped `.` in
//! MarkdownV2, and counts its 4096-character limit in UTF-16 units of the text *after* entity
//! parsing. So the reply goes through three stages, one file each:
//!
//! - [`markdown`]: pulldown-cmark parses the reply as CommonMark, and its events become a
//!   [`Doc`] — one cell per visible character, each pointing at a [`Style`] (bold, italic,
//!   code, link, code block). Telegram's rules for what may nest are applied here, and a few of
//!   ours on top of CommonMark (emphasis never inside a word, only http(s) links).
//! - [`chunk`]: splits the cells into chunks by that visible length, at the best break
//!   (paragraph, line, word, grapheme cluster).
//! - [`html`]: writes each chunk as HTML from scratch: every `&`, `<`, `>` escaped, every tag
//!   opened and closed inside the chunk, and nesting kept within what Telegram accepts (nothing
//!   inside `code`/`pre` except the `code` of a `pre`, no `code` inside bold/italic/links, no
//!   link inside a link) — plus the plain-text fallback.
//!
//! The Doc in the middle is why the writer and chunker are ours and the parser is not: Telegram
//! needs a split by visible length with formatting closed and reopened across it, which no
//! Markdown-to-HTML writer does.

use std::collections::HashMap;

mod chunk;
mod html;
mod markdown;

/// One Telegram message's worth of reply: `html` is sent with `parse_mode=HTML`; `plain` is the
/// fallback sent with no parse mode if Telegram still refuses (the same visible text, with link
/// targets written out after their text when that still fits the limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyChunk {
    pub html: String,
    pub plain: String,
}

/// Renders `markdown` into chunks that Telegram can never refuse to parse, each at most `limit`
/// UTF-16 units of visible text (Telegram's 4096 counts text after entity parsing; use 4000 in
/// production to keep a margin). Limits below 2 are treated as 2: one character outside the
/// Basic Multilingual Plane needs two units.
///
/// Chunks are split between paragraphs if possible, else between lines, else between words,
/// else between characters (never inside a grapheme cluster — an emoji sequence, a flag, an
/// accented letter — when the chunk allows). Formatting that spans a split is closed at the end
/// of one chunk and reopened at the start of the next. Whitespace at split points is dropped,
/// and no chunk is empty or whitespace only.
///
/// Empty or whitespace-only input gives no chunks: the caller decides what (if anything) the
/// member sees then.
pub fn render_reply(markdown: &str, limit: usize) -> Vec<ReplyChunk> {
    let doc = markdown::parse(markdown);
    let limit = limit.max(2);
    chunk::ranges(&doc, limit).into_iter().map(|(start, end)| html::render_chunk(&doc, start, end, limit)).collect()
}

/// The visible text of `markdown`, with no formatting marks and no link targets: what a voice
/// reply speaks.
pub fn visible_text(markdown: &str) -> String {
    markdown::parse(markdown).cells.iter().map(|c| c.ch).collect()
}

// ---------------------------------------------------------------------------------------------
// The parsed document: one cell per visible character, each pointing at an interned style.

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct Style {
    bold: bool,
    italic: bool,
    /// Inline code. Never combined with anything else (Telegram allows no entity around or
    /// inside `code`).
    code: bool,
    /// Link target, already checked to be http(s).
    link: Option<String>,
    /// Inside a code block; the language, "" for none. Excludes every other style.
    pre: Option<String>,
}

#[derive(Debug, Clone, Copy)]
struct Cell {
    ch: char,
    style: u32,
}

#[derive(Default)]
struct Doc {
    cells: Vec<Cell>,
    styles: Vec<Style>,
    index: HashMap<Style, u32>,
}

impl Doc {
    /// Appends `text` in `style`. Control characters other than line breaks and tabs are
    /// dropped: Telegram may choke on them, and CommonMark's entities (`&#1;`) can produce them.
    fn push(&mut self, text: &str, style: &Style) {
        if text.is_empty() {
            return;
        }
        let id = match self.index.get(style) {
            Some(&id) => id,
            None => {
                let id = self.styles.len() as u32;
                self.styles.push(style.clone());
                self.index.insert(style.clone(), id);
                id
            }
        };
        self.cells.extend(
            text.chars().filter(|&c| c == '\n' || c == '\t' || !c.is_control()).map(|ch| Cell { ch, style: id }),
        );
    }

    fn style(&self, cell: &Cell) -> &Style {
        &self.styles[cell.style as usize]
    }
}

/// Characters a chunk may not start or end with and that do not count as content. Telegram
/// trims whitespace itself; the zero-width characters are included so a chunk can never be
/// "empty" in Telegram's eyes while looking non-empty here.
fn is_blank(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_visible_text_has_no_marks_or_link_targets() {
        let text = visible_text("**Yes**, see [the list](https://example.com/x) and `code`.\n\n- one\n- two");
        assert!(text.starts_with("Yes, see the list and code."), "{text:?}");
        assert!(!text.contains('*') && !text.contains("https") && !text.contains('`'), "{text:?}");
        assert!(text.contains("one") && text.contains("two"), "{text:?}");
    }

    /// Checks `html` the way Telegram's parser would and returns its visible text: only the tags
    /// we emit, properly nested within Telegram's rules, only the four named entities, no bare
    /// `<`, `>` or `&`.
    fn validate(html: &str) -> Result<String, String> {
        let mut visible = String::new();
        let mut stack: Vec<&str> = Vec::new();
        let mut rest = html;
        while let Some(c) = rest.chars().next() {
            match c {
                '<' => {
                    let end = rest.find('>').ok_or("unterminated tag")?;
                    let tag = &rest[1..end];
                    rest = &rest[end + 1..];
                    if let Some(name) = tag.strip_prefix('/') {
                        if stack.pop() != Some(name) {
                            return Err(format!("</{name}> closes the wrong tag in {html:?}"));
                        }
                        continue;
                    }
                    let name = match tag {
                        "b" | "i" | "code" | "pre" => tag,
                        t if t.starts_with("code class=\"language-") && t.ends_with('"') => {
                            check_attr(&t[20..t.len() - 1])?;
                            if stack.last() != Some(&"pre") {
                                return Err("code with a language outside pre".into());
                            }
                            "code"
                        }
                        t if t.starts_with("a href=\"") && t.ends_with('"') => {
                            let url = check_attr(&t[8..t.len() - 1])?;
                            if !(url.starts_with("http://") || url.starts_with("https://")) {
                                return Err(format!("link to {url:?}"));
                            }
                            "a"
                        }
                        other => return Err(format!("tag <{other}> not allowed")),
                    };
                    let inside_code = stack.iter().any(|t| *t == "code" || *t == "pre");
                    if inside_code && !(name == "code" && stack == ["pre"]) {
                        return Err(format!("<{name}> inside code in {html:?}"));
                    }
                    if (name == "code" || name == "pre") && !stack.is_empty() && stack != ["pre"] {
                        return Err(format!("<{name}> inside {stack:?} in {html:?}"));
                    }
                    if name == "a" && stack.contains(&"a") {
                        return Err("link inside a link".into());
                    }
                    if stack.contains(&name) {
                        return Err(format!("<{name}> nested in itself"));
                    }
                    stack.push(name);
                }
                '&' => {
                    let (entity, ch) = [("&lt;", '<'), ("&gt;", '>'), ("&amp;", '&'), ("&quot;", '"')]
                        .into_iter()
                        .find(|(e, _)| rest.starts_with(e))
                        .ok_or_else(|| format!("bad entity at {rest:?}"))?;
                    visible.push(ch);
                    rest = &rest[entity.len()..];
                }
                '>' => return Err("bare >".into()),
                c => {
                    visible.push(c);
                    rest = &rest[c.len_utf8()..];
                }
            }
        }
        if !stack.is_empty() {
            return Err(format!("unclosed {stack:?} in {html:?}"));
        }
        Ok(visible)
    }

    /// An attribute value: no raw `<`, `>`, `"`, only the four entities. Returns it decoded.
    fn check_attr(value: &str) -> Result<String, String> {
        if value.contains(['<', '>', '"']) {
            return Err(format!("raw markup in attribute {value:?}"));
        }
        let mut out = String::new();
        let mut rest = value;
        while let Some(c) = rest.chars().next() {
            if c == '&' {
                let (entity, ch) = [("&lt;", '<'), ("&gt;", '>'), ("&amp;", '&'), ("&quot;", '"')]
                    .into_iter()
                    .find(|(e, _)| rest.starts_with(e))
                    .ok_or_else(|| format!("bad entity in attribute {value:?}"))?;
                out.push(ch);
                rest = &rest[entity.len()..];
            } else {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        Ok(out)
    }

    fn one(markdown: &str) -> String {
        let chunks = render_reply(markdown, 4000);
        assert_eq!(chunks.len(), 1, "{chunks:?}");
        validate(&chunks[0].html).unwrap();
        chunks[0].html.clone()
    }

    fn utf16(s: &str) -> usize {
        s.encode_utf16().count()
    }

    #[test]
    fn escapes_markup_characters() {
        assert_eq!(one("a < b && c > d \"q\""), "a &lt; b &amp;&amp; c &gt; d \"q\"");
        assert_eq!(one("<b>not bold</b>"), "&lt;b&gt;not bold&lt;/b&gt;");
    }

    #[test]
    fn bold_and_italic() {
        assert_eq!(one("**bold** and __bold__"), "<b>bold</b> and <b>bold</b>");
        assert_eq!(one("*it* and _it_"), "<i>it</i> and <i>it</i>");
        assert_eq!(one("***both***"), "<b><i>both</i></b>");
        assert_eq!(one("**bold _and it_**"), "<b>bold <i>and it</i></b>");
        assert_eq!(one("**Note:** read"), "<b>Note:</b> read");
    }

    #[test]
    fn words_and_arithmetic_stay_literal() {
        assert_eq!(one("snake_case_words and my_var_"), "snake_case_words and my_var_");
        assert_eq!(one("2*3*4 = 24"), "2*3*4 = 24");
        assert_eq!(one("2 * 3 * 4"), "2 * 3 * 4");
        assert_eq!(one("**unclosed and *half"), "**unclosed and *half");
        assert_eq!(one("**mismatch*"), "**mismatch*");
        assert_eq!(one("\\*escaped\\*"), "*escaped*");
        assert_eq!(one("a **** b"), "a **** b");
    }

    #[test]
    fn inline_code_is_literal() {
        assert_eq!(one("run `ls *.rs <dir>` now"), "run <code>ls *.rs &lt;dir&gt;</code> now");
        assert_eq!(one("``a ` b``"), "<code>a ` b</code>");
        assert_eq!(one("unclosed ` tick"), "unclosed ` tick");
        // Telegram allows no entity around code: bold is closed around it.
        assert_eq!(one("**use `x` here**"), "<b>use </b><code>x</code><b> here</b>");
    }

    #[test]
    fn fenced_blocks() {
        assert_eq!(
            one("Try:\n```rust\nfn main() { a < b && **c** }\n```\nDone."),
            "Try:\n<pre><code class=\"language-rust\">fn main() { a &lt; b &amp;&amp; **c** }</code></pre>\nDone."
        );
        assert_eq!(one("```\nplain\n  indented\n```"), "<pre>plain\n  indented</pre>");
        // Unclosed fences run to the end; a hostile language name is sanitised.
        assert_eq!(one("```py\"><b>\nx"), "<pre><code class=\"language-py\">x</code></pre>");
        assert_eq!(one("  ```\n  indented fence\n  ```"), "<pre>indented fence</pre>");
        assert!(render_reply("```\n\n```", 100).is_empty());
    }

    #[test]
    fn links() {
        assert_eq!(
            one("see [the docs](https://example.com/a?b=1&c='2') now"),
            "see <a href=\"https://example.com/a?b=1&amp;c='2'\">the docs</a> now"
        );
        // Characters no real URL holds are not links at all.
        assert_eq!(one("[x](https://e.com/\"y)"), "[x](https://e.com/\"y)");
        assert_eq!(one("[x](https://e.com/<y>)"), "[x](https://e.com/&lt;y&gt;)");
        assert_eq!(
            one("[Foo](https://en.wikipedia.org/wiki/Foo_(bar))"),
            "<a href=\"https://en.wikipedia.org/wiki/Foo_(bar)\">Foo</a>"
        );
        assert_eq!(one("[x](javascript:alert(1))"), "[x](javascript:alert(1))");
        assert_eq!(one("[x](tg://user?id=1)"), "[x](tg://user?id=1)");
        assert_eq!(one("[x](https://)"), "[x](https://)");
        assert_eq!(
            one("[**b** `c`](http://e.com)"),
            "<b><a href=\"http://e.com\">b</a></b><a href=\"http://e.com\"> c</a>"
        );
        assert_eq!(one("[](https://e.com)"), "<a href=\"https://e.com\">https://e.com</a>");
        let chunks = render_reply("read [this](https://e.com) ok", 100);
        assert_eq!(chunks[0].plain, "read this (https://e.com) ok");
    }

    #[test]
    fn headings_and_bullets() {
        assert_eq!(one("# Title\ntext"), "<b>Title</b>\ntext");
        assert_eq!(one("### Sub ###"), "<b>Sub</b>");
        assert_eq!(one("#hashtag"), "#hashtag");
        assert_eq!(one("- one\n* two\n  - nested"), "• one\n• two\n  • nested");
        assert_eq!(one("- **bold** item"), "• <b>bold</b> item");
        assert_eq!(one("a\n\n---\n\nb"), "a\n\n———\n\nb");
    }

    /// What CommonMark (through pulldown-cmark) brings beyond the old hand-written parser.
    #[test]
    fn commonmark_structures() {
        assert_eq!(one("1. one\n2. two\n\n3) other"), "1. one\n2. two\n\n3) other");
        assert_eq!(one("> quoted\n> more\n\nafter"), "&gt; quoted\n&gt; more\n\nafter");
        assert_eq!(one("<https://e.com/x>"), "<a href=\"https://e.com/x\">https://e.com/x</a>");
        assert_eq!(one("<mailto:a@b.c> stays"), "&lt;mailto:a@b.c&gt; stays");
        assert_eq!(one("![cat](https://e.com/c.png)"), "<a href=\"https://e.com/c.png\">cat</a>");
        assert_eq!(one("[ref] it\n\n[ref]: https://e.com"), "<a href=\"https://e.com\">ref</a> it");
        assert_eq!(one("*a\nb*"), "<i>a\nb</i>", "emphasis may span a line break within a paragraph");
        assert_eq!(one("&lt;b&gt; &amp; &#1;x"), "&lt;b&gt; &amp; x", "entities decoded, control characters dropped");
        assert_eq!(one("    indented code\n\ntext"), "<pre>indented code</pre>\n\ntext");
        assert_eq!(one("Title\n=====\nbody"), "<b>Title</b>\nbody");
        assert_eq!(one("<div>\nhi\n</div>\n\nafter"), "&lt;div&gt;\nhi\n&lt;/div&gt;\n\nafter");
        assert_eq!(one("- a\n  - b\n    - c"), "• a\n  • b\n    • c");
        assert_eq!(one("- item\n  continued"), "• item\n  continued");
        assert_eq!(one("a  \nb\\\nc"), "a\nb\nc", "hard breaks are line breaks");
        // Left as written: extensions Telegram's subset does not have.
        assert_eq!(one("| a | b |\n|---|---|"), "| a | b |\n|---|---|");
        assert_eq!(one("~~strike~~ - [ ] task"), "~~strike~~ - [ ] task");
        assert_eq!(one("****four****"), "****four****");
        assert_eq!(
            one("[**x**](javascript:y)"),
            "[<b>x</b>](javascript:y)",
            "a refused link keeps its inside's formatting"
        );
    }

    #[test]
    fn blank_lines_collapse_and_empty_input_gives_nothing() {
        assert_eq!(one("a\n\n\n\nb\r\nc"), "a\n\nb\nc");
        assert!(render_reply("", 4000).is_empty());
        assert!(render_reply(" \n\t\n  ", 4000).is_empty());
    }

    #[test]
    fn splits_between_paragraphs_first() {
        let text = format!("{}\n\n{}\n{}", "a".repeat(30), "b".repeat(30), "c".repeat(30));
        let chunks = render_reply(&text, 70);
        let html: Vec<&str> = chunks.iter().map(|c| c.html.as_str()).collect();
        assert_eq!(html, vec!["a".repeat(30), format!("{}\n{}", "b".repeat(30), "c".repeat(30))]);
    }

    #[test]
    fn splits_lines_then_words_then_hard() {
        let chunks = render_reply("one two three\nfour five", 12);
        let html: Vec<&str> = chunks.iter().map(|c| c.html.as_str()).collect();
        assert_eq!(html, vec!["one two", "three", "four five"]);
        let chunks = render_reply(&"x".repeat(25), 10);
        assert_eq!(chunks.iter().map(|c| c.html.len()).collect::<Vec<_>>(), vec![10, 10, 5]);
    }

    #[test]
    fn formatting_is_closed_and_reopened_across_chunks() {
        let chunks = render_reply("**bold words that go on and on**", 12);
        assert!(chunks.len() > 1);
        for c in &chunks {
            assert!(c.html.starts_with("<b>") && c.html.ends_with("</b>"), "{c:?}");
        }
        let code = format!("```python\n{}\n```", (0..20).map(|i| format!("x = {i}")).collect::<Vec<_>>().join("\n"));
        let chunks = render_reply(&code, 40);
        assert!(chunks.len() > 2);
        for c in &chunks {
            assert!(c.html.starts_with("<pre><code class=\"language-python\">x = "), "{c:?}");
            assert!(c.html.ends_with("</code></pre>"), "{c:?}");
        }
    }

    #[test]
    fn counts_utf16_and_keeps_emoji_whole() {
        // Each family emoji is 8 UTF-16 units in 5 chars.
        let family = "👨\u{200D}👩\u{200D}👧";
        let text = family.repeat(3);
        for c in render_reply(&text, 10) {
            assert_eq!(c.html, family);
        }
        let flags = "🇩🇪🇫🇷🇮🇹";
        let got: Vec<String> = render_reply(flags, 6).into_iter().map(|c| c.html).collect();
        assert_eq!(got, vec!["🇩🇪", "🇫🇷", "🇮🇹"]);
        // Limit below two is raised so an astral character still fits.
        assert_eq!(render_reply("😀😀", 1).len(), 2);
    }

    #[test]
    fn code_block_indentation_survives_a_split() {
        let code = "```\ndef f():\n    return 1\n```";
        let chunks = render_reply(code, 10);
        let visible: Vec<String> = chunks.iter().map(|c| validate(&c.html).unwrap()).collect();
        assert_eq!(visible, vec!["def f():", "    return", "1"]);
    }

    #[test]
    fn plain_fallback_drops_link_targets_that_do_not_fit() {
        let md = format!("[site](https://example.com/{})", "p".repeat(50));
        let chunks = render_reply(&md, 20);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].plain, "site");
        assert!(chunks[0].html.contains("href"));
    }

    /// Pieces models actually produce, and the ones that break naive renderers.
    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("**".to_owned()),
            Just("*".to_owned()),
            Just("_".to_owned()),
            Just("__".to_owned()),
            Just("***".to_owned()),
            Just("`".to_owned()),
            Just("```".to_owned()),
            Just("\n```rust\n".to_owned()),
            Just("\n```\n".to_owned()),
            Just("\n~~~\n".to_owned()),
            Just("[".to_owned()),
            Just("]".to_owned()),
            Just("(".to_owned()),
            Just(")".to_owned()),
            Just("[a link](https://e.com/x?a=1&b=<2>)".to_owned()),
            Just("[bad](javascript:x)".to_owned()),
            Just("](http://e.com)".to_owned()),
            Just("\n# ".to_owned()),
            Just("\n- ".to_owned()),
            Just("\n* ".to_owned()),
            Just("\n---\n".to_owned()),
            Just("\n".to_owned()),
            Just("\n\n".to_owned()),
            Just(" ".to_owned()),
            Just("    ".to_owned()),
            Just("\\".to_owned()),
            Just("<".to_owned()),
            Just(">".to_owned()),
            Just("&".to_owned()),
            Just("\"".to_owned()),
            Just("&amp;".to_owned()),
            Just("<b>".to_owned()),
            Just("é".to_owned()),
            Just("e\u{301}".to_owned()),
            Just("👨\u{200D}👩\u{200D}👧".to_owned()),
            Just("🇩🇪".to_owned()),
            Just("😀".to_owned()),
            Just("\u{200B}".to_owned()),
            Just("\r".to_owned()),
            Just("\t".to_owned()),
            Just("\u{0}".to_owned()),
            "[a-z]{1,12}",
            "[a-z0-9_*]{1,8}",
            any::<char>().prop_map(String::from),
        ]
    }

    fn markdown() -> impl Strategy<Value = String> {
        proptest::collection::vec(piece(), 0..60).prop_map(|p| p.concat())
    }

    fn squeeze(s: &str) -> String {
        s.chars().filter(|&c| !is_blank(c)).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn chunks_are_valid_within_limit_and_lose_nothing(md in markdown(), limit in 2usize..120) {
            let whole = render_reply(&md, usize::MAX);
            prop_assert!(whole.len() <= 1);
            let whole_visible = match whole.first() {
                Some(c) => validate(&c.html).map_err(TestCaseError::fail)?,
                None => String::new(),
            };

            let chunks = render_reply(&md, limit);
            let mut joined = String::new();
            for c in &chunks {
                let visible = validate(&c.html).map_err(TestCaseError::fail)?;
                prop_assert!(utf16(&visible) <= limit, "{} > {limit}: {:?}", utf16(&visible), c.html);
                prop_assert!(utf16(&c.plain) <= limit, "plain {:?}", c.plain);
                prop_assert!(visible.chars().any(|ch| !is_blank(ch)), "empty chunk {:?}", c.html);
                prop_assert!(c.plain.chars().any(|ch| !is_blank(ch)));
                joined.push_str(&visible);
            }
            prop_assert_eq!(squeeze(&joined), squeeze(&whole_visible));
        }

        #[test]
        fn arbitrary_text_never_breaks(md in "\\PC{0,300}", limit in 2usize..50) {
            for c in render_reply(&md, limit) {
                let visible = validate(&c.html).map_err(TestCaseError::fail)?;
                prop_assert!(utf16(&visible) <= limit);
            }
        }
    }
    /// A draft (`telegram/draft.rs`) is the reply cut wherever the stream happens to be: inside
    /// `**bold`, an open code fence, a link without its target. Every such cut still renders as
    /// HTML Telegram's parser accepts.
    #[test]
    fn half_written_markdown_still_renders_valid() {
        for md in [
            "**bo",
            "**bold** and *it",
            "```rust\nfn main() {",
            "`co",
            "[link](https://exa",
            "> quo",
            "- item\n- it",
            "__x",
        ] {
            for chunk in render_reply(md, 4000) {
                validate(&chunk.html).unwrap_or_else(|e| panic!("{md:?}: {e}"));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        #[test]
        fn every_prefix_of_a_reply_renders_valid(md in markdown()) {
            let cuts = md.char_indices().map(|(i, _)| i).chain([md.len()]);
            for cut in cuts {
                for c in render_reply(&md[..cut], 4000) {
                    validate(&c.html).map_err(|e| TestCaseError::fail(format!("cut at {cut}: {e}")))?;
                }
            }
        }
    }
}
