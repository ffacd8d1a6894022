//! Telegram's `parse_mode` parsers: HTML, MarkdownV2 and legacy Markdown turned into plain text
//! plus message entities, with Telegram's rejections ("can't parse entities: …") — so a gateway
//! that escapes badly fails against the fake as it would against the real Bot API.
//!
//! The HTML parser follows tdlib's `parse_html` closely (tags, attributes, nesting, error
//! wording with byte offsets), with one deliberate difference: a bare `&` that does not start
//! `&lt;` `&gt;` `&amp;` `&quot;` or a numeric entity is rejected, where Telegram passes it
//! through. Stricter is safer: text that relies on that leniency is text the gateway forgot to
//! escape, and it shows up wrongly in real Telegram as soon as it happens to look like an entity.
//!
//! MarkdownV2 is an approximation of tdlib's `parse_markdown_v2`: every reserved character
//! outside code must be escaped; `*bold*`, `_italic_`, `__underline__`, `~strike~`,
//! `||spoiler||`, `[text](url)`, `![emoji](tg://emoji?id=N)`, `` `code` ``, fenced pre with a
//! language, `>` quote lines and `**>` expandable quotes ending in `||`. An entity can only be
//! closed when it is the innermost one open, and `__` is always underline (Telegram's documented
//! greedy rule). Legacy Markdown is the small non-nesting subset Telegram documents.
//!
//! Lengths and offsets are in UTF-16 code units, as in the Bot API.

use serde_json::{Value, json};

/// Text as the recipient sees it, with its formatting.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Formatted {
    pub text: String,
    pub entities: Vec<Entity>,
}

/// One Bot API `MessageEntity`; offsets and lengths in UTF-16 code units.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entity {
    pub kind: Kind,
    pub offset: usize,
    pub length: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Bold,
    Italic,
    Underline,
    Strikethrough,
    Spoiler,
    Code,
    Pre { language: Option<String> },
    TextLink { url: String },
    CustomEmoji { id: String },
    Blockquote,
    ExpandableBlockquote,
    BotCommand,
}

impl Kind {
    /// The Bot API `type` string.
    fn api_name(&self) -> &'static str {
        match self {
            Kind::Bold => "bold",
            Kind::Italic => "italic",
            Kind::Underline => "underline",
            Kind::Strikethrough => "strikethrough",
            Kind::Spoiler => "spoiler",
            Kind::Code => "code",
            Kind::Pre { .. } => "pre",
            Kind::TextLink { .. } => "text_link",
            Kind::CustomEmoji { .. } => "custom_emoji",
            Kind::Blockquote => "blockquote",
            Kind::ExpandableBlockquote => "expandable_blockquote",
            Kind::BotCommand => "bot_command",
        }
    }

    /// The name tdlib uses in "Can't find end of … entity" errors.
    fn md_name(&self) -> &'static str {
        match self {
            Kind::Bold => "Bold",
            Kind::Italic => "Italic",
            Kind::Underline => "Underline",
            Kind::Strikethrough => "Strikethrough",
            Kind::Spoiler => "Spoiler",
            Kind::Code => "Code",
            Kind::Pre { .. } => "Pre",
            Kind::TextLink { .. } => "TextUrl",
            Kind::CustomEmoji { .. } => "CustomEmoji",
            Kind::Blockquote | Kind::ExpandableBlockquote => "BlockQuote",
            Kind::BotCommand => "BotCommand",
        }
    }
}

impl Entity {
    pub fn to_json(&self) -> Value {
        let mut v =
            json!({ "type": self.kind.api_name(), "offset": self.offset, "length": self.length });
        match &self.kind {
            Kind::Pre {
                language: Some(language),
            } => v["language"] = json!(language),
            Kind::TextLink { url } => v["url"] = json!(url),
            Kind::CustomEmoji { id } => v["custom_emoji_id"] = json!(id),
            _ => {}
        }
        v
    }
}

/// The `parse_mode` values Telegram accepts (case-insensitively).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParseMode {
    Html,
    MarkdownV2,
    Markdown,
}

impl ParseMode {
    /// `None` for a mode Telegram does not know ("Bad Request: unsupported parse_mode").
    pub fn from_param(s: &str) -> Option<ParseMode> {
        match s.to_ascii_lowercase().as_str() {
            "html" => Some(ParseMode::Html),
            "markdownv2" => Some(ParseMode::MarkdownV2),
            "markdown" => Some(ParseMode::Markdown),
            _ => None,
        }
    }
}

/// Parses `src` in `mode` (plain text when `None`), then trims surrounding whitespace as
/// Telegram does. `Err` is the reason that follows "Bad Request: can't parse entities: ".
pub(crate) fn parse(src: &str, mode: Option<ParseMode>) -> Result<Formatted, String> {
    let parsed = match mode {
        None => Formatted {
            text: src.to_owned(),
            entities: Vec::new(),
        },
        Some(ParseMode::Html) => parse_html(src)?,
        Some(ParseMode::MarkdownV2) => parse_markdown_v2(src)?,
        Some(ParseMode::Markdown) => parse_markdown(src)?,
    };
    Ok(trim(parsed))
}

/// Length in UTF-16 code units: the unit of every Bot API length and offset.
pub(crate) fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// The `bot_command` entity real Telegram attaches to a text starting with `/command` or
/// `/command@botname`.
pub(crate) fn command_entity(text: &str) -> Option<Entity> {
    let rest = text.strip_prefix('/')?;
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let name_len = rest.chars().take_while(|&c| is_word(c)).count();
    if name_len == 0 {
        return None;
    }
    let mut len = 1 + name_len;
    if let Some(after) = rest[name_len..].strip_prefix('@') {
        let bot_len = after.chars().take_while(|&c| is_word(c)).count();
        if bot_len > 0 {
            len += 1 + bot_len;
        }
    }
    Some(Entity {
        kind: Kind::BotCommand,
        offset: 0,
        length: len,
    })
}

/// Output under construction, counting UTF-16 units as it goes.
#[derive(Default)]
struct Out {
    text: String,
    utf16: usize,
    entities: Vec<Entity>,
}

impl Out {
    fn push(&mut self, c: char) {
        self.text.push(c);
        self.utf16 += c.len_utf16();
    }

    /// Records an entity from `start` to here; Telegram drops empty ones.
    fn entity(&mut self, kind: Kind, start: usize) {
        if self.utf16 > start {
            self.entities.push(Entity {
                kind,
                offset: start,
                length: self.utf16 - start,
            });
        }
    }

    fn finish(mut self) -> Formatted {
        self.entities
            .sort_by(|a, b| a.offset.cmp(&b.offset).then(b.length.cmp(&a.length)));
        Formatted {
            text: self.text,
            entities: self.entities,
        }
    }
}

/// Strips leading and trailing whitespace and moves the entities with the text.
fn trim(f: Formatted) -> Formatted {
    let trimmed_start = f.text.trim_start();
    let lead = utf16_len(&f.text[..f.text.len() - trimmed_start.len()]);
    let text = trimmed_start.trim_end().to_owned();
    let len = utf16_len(&text);
    let entities = f
        .entities
        .into_iter()
        .filter_map(|e| {
            let start = e.offset.saturating_sub(lead).min(len);
            let end = (e.offset + e.length).saturating_sub(lead).min(len);
            (end > start).then_some(Entity {
                offset: start,
                length: end - start,
                ..e
            })
        })
        .collect();
    Formatted { text, entities }
}

/// Telegram keeps a link only when it looks like a URL; a bare domain gets `http://`.
/// Anything else is dropped (the text stays) — and the URL must be one teloxide can parse.
fn normalize_url(url: &str) -> Option<String> {
    let url = url.trim();
    if url.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    if let Some((scheme, rest)) = url.split_once(':') {
        let scheme_ok = scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if scheme_ok
            && ["http", "https", "tg", "ton", "mailto", "tel"]
                .contains(&scheme.to_ascii_lowercase().as_str())
        {
            let host_ok = !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https")
                || rest
                    .strip_prefix("//")
                    .is_some_and(|h| h.chars().next().is_some_and(|c| c.is_alphanumeric()));
            return host_ok.then(|| url.to_owned());
        }
    }
    let host = url.split(['/', '?', '#']).next().unwrap_or_default();
    let looks_like_domain = host.contains('.')
        && host
            .chars()
            .all(|c| c.is_alphanumeric() || "-.:".contains(c))
        && !host.starts_with('.')
        && !host.ends_with('.');
    looks_like_domain.then(|| format!("http://{url}"))
}

// ---------------------------------------------------------------------------------------------
// HTML

/// An open HTML tag.
struct OpenTag {
    name: String,
    /// Where its text starts, in UTF-16 units.
    start: usize,
    /// What it becomes when closed; `None` for tags that carry no entity (a link with a bad URL).
    kind: Option<Kind>,
}

fn decode_html_entity(s: &str) -> Option<(char, usize)> {
    for (name, ch) in [
        ("&lt;", '<'),
        ("&gt;", '>'),
        ("&amp;", '&'),
        ("&quot;", '"'),
    ] {
        if s.starts_with(name) {
            return Some((ch, name.len()));
        }
    }
    let rest = s.strip_prefix("&#")?;
    let (radix, digits_from) = if rest.starts_with(['x', 'X']) {
        (16, 1)
    } else {
        (10, 0)
    };
    let digits: String = rest[digits_from..]
        .chars()
        .take_while(|c| c.is_digit(radix))
        .take(8)
        .collect();
    if digits.is_empty() || !rest[digits_from + digits.len()..].starts_with(';') {
        return None;
    }
    let code = u32::from_str_radix(&digits, radix).ok()?;
    let ch = char::from_u32(code).filter(|&c| c != '\0')?;
    Some((ch, 2 + digits_from + digits.len() + 1))
}

/// Decodes entities inside an attribute value; a bad `&` is kept as is there, like tdlib.
fn decode_attribute(raw: &str) -> String {
    let mut out = String::new();
    let mut i = 0;
    while let Some(c) = raw[i..].chars().next() {
        if c == '&'
            && let Some((ch, len)) = decode_html_entity(&raw[i..])
        {
            out.push(ch);
            i += len;
            continue;
        }
        out.push(c);
        i += c.len_utf8();
    }
    out
}

const HTML_TAGS: &[&str] = &[
    "a",
    "b",
    "strong",
    "i",
    "em",
    "s",
    "strike",
    "del",
    "u",
    "ins",
    "tg-spoiler",
    "tg-emoji",
    "span",
    "pre",
    "code",
    "blockquote",
];

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn parse_html(src: &str) -> Result<Formatted, String> {
    let bytes = src.as_bytes();
    let mut out = Out::default();
    let mut stack: Vec<OpenTag> = Vec::new();
    let mut i = 0;
    while let Some(c) = src[i..].chars().next() {
        match c {
            '&' => {
                let (ch, len) = decode_html_entity(&src[i..]).ok_or_else(|| {
                    format!("Character '&' at byte offset {i} does not start an HTML entity; escape it as &amp;")
                })?;
                out.push(ch);
                i += len;
            }
            '<' if bytes.get(i + 1) == Some(&b'/') => {
                let begin = i;
                let mut j = i + 2;
                while j < bytes.len() && is_name_char(bytes[j]) {
                    j += 1;
                }
                let name = src[i + 2..j].to_ascii_lowercase();
                while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                    j += 1;
                }
                if bytes.get(j) != Some(&b'>') {
                    return Err(format!("Unclosed end tag at byte offset {begin}"));
                }
                let Some(open) = stack.pop() else {
                    return Err(format!("Unexpected end tag at byte offset {begin}"));
                };
                if open.name != name {
                    return Err(format!(
                        "Unmatched end tag at byte offset {begin}, expected \"</{}>\", found \"</{name}>\"",
                        open.name
                    ));
                }
                close_html_tag(&mut out, &mut stack, open);
                i = j + 1;
            }
            '<' => {
                let begin = i;
                let mut j = i + 1;
                while j < bytes.len() && is_name_char(bytes[j]) {
                    j += 1;
                }
                let name = src[i + 1..j].to_ascii_lowercase();
                if !HTML_TAGS.contains(&name.as_str()) {
                    return Err(format!(
                        "Unsupported start tag \"{name}\" at byte offset {begin}"
                    ));
                }
                let (attrs, end) = parse_attributes(src, j, &name, begin)?;
                let attr = |key: &str| {
                    attrs
                        .iter()
                        .find(|(k, _)| k == key)
                        .map(|(_, v)| v.as_str())
                };
                let inside_code = stack
                    .iter()
                    .any(|t| matches!(t.kind, Some(Kind::Code | Kind::Pre { .. })));
                let kind = match name.as_str() {
                    "b" | "strong" => Some(Kind::Bold),
                    "i" | "em" => Some(Kind::Italic),
                    "u" | "ins" => Some(Kind::Underline),
                    "s" | "strike" | "del" => Some(Kind::Strikethrough),
                    "tg-spoiler" => Some(Kind::Spoiler),
                    "span" => {
                        if attr("class") != Some("tg-spoiler") {
                            return Err(format!(
                                "Tag \"span\" must have class \"tg-spoiler\" at byte offset {begin}"
                            ));
                        }
                        Some(Kind::Spoiler)
                    }
                    "a" => attr("href")
                        .and_then(normalize_url)
                        .map(|url| Kind::TextLink { url }),
                    "tg-emoji" => {
                        let id = attr("emoji-id")
                            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()));
                        let Some(id) = id else {
                            return Err(format!(
                                "Tag \"tg-emoji\" must have attribute \"emoji-id\" at byte offset {begin}"
                            ));
                        };
                        Some(Kind::CustomEmoji { id: id.to_owned() })
                    }
                    "code" => {
                        // Inside <pre>, <code class="language-x"> names the pre block's language.
                        let language = attr("class")
                            .and_then(|c| c.strip_prefix("language-"))
                            .map(str::to_owned);
                        match stack.last_mut() {
                            Some(OpenTag {
                                kind: Some(Kind::Pre { language: pre_lang }),
                                ..
                            }) => {
                                if pre_lang.is_none() {
                                    *pre_lang = language;
                                }
                                None
                            }
                            _ => Some(Kind::Code),
                        }
                    }
                    "pre" => Some(Kind::Pre { language: None }),
                    "blockquote" => Some(if attr("expandable").is_some() {
                        Kind::ExpandableBlockquote
                    } else {
                        Kind::Blockquote
                    }),
                    _ => None,
                };
                // Telegram drops formatting nested inside code and pre.
                let kind = if inside_code { None } else { kind };
                stack.push(OpenTag {
                    name,
                    start: out.utf16,
                    kind,
                });
                i = end;
            }
            _ => {
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    if let Some(open) = stack.last() {
        return Err(format!(
            "Can't find end tag corresponding to start tag \"{}\"",
            open.name
        ));
    }
    Ok(out.finish())
}

fn close_html_tag(out: &mut Out, stack: &mut [OpenTag], open: OpenTag) {
    let Some(kind) = open.kind else { return };
    // A quote inside a quote is dropped, as Telegram does.
    let is_quote =
        |k: &Option<Kind>| matches!(k, Some(Kind::Blockquote | Kind::ExpandableBlockquote));
    if is_quote(&Some(kind.clone())) && stack.iter().any(|t| is_quote(&t.kind)) {
        return;
    }
    out.entity(kind, open.start);
}

/// Parses the attributes of a start tag from byte `from`; returns them and the byte after `>`.
fn parse_attributes(
    src: &str,
    from: usize,
    tag: &str,
    begin: usize,
) -> Result<(Vec<(String, String)>, usize), String> {
    let bytes = src.as_bytes();
    let mut attrs = Vec::new();
    let mut j = from;
    loop {
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        match bytes.get(j) {
            None => return Err(format!("Unclosed start tag at byte offset {begin}")),
            Some(b'>') => return Ok((attrs, j + 1)),
            Some(_) => {}
        }
        let name_start = j;
        while j < bytes.len() && is_name_char(bytes[j]) {
            j += 1;
        }
        if j == name_start {
            return Err(format!(
                "Empty attribute name in the tag \"{tag}\" at byte offset {j}"
            ));
        }
        let name = src[name_start..j].to_ascii_lowercase();
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        if bytes.get(j) != Some(&b'=') {
            // A bare attribute such as `expandable`.
            attrs.push((name, String::new()));
            continue;
        }
        j += 1;
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        let value = match bytes.get(j) {
            None => return Err(format!("Unclosed start tag at byte offset {begin}")),
            Some(&q @ (b'"' | b'\'')) => {
                let Some(len) = src[j + 1..].find(q as char) else {
                    return Err(format!("Unclosed start tag at byte offset {begin}"));
                };
                let v = &src[j + 1..j + 1 + len];
                j += len + 2;
                v
            }
            Some(_) => {
                let start = j;
                while j < bytes.len() && !bytes[j].is_ascii_whitespace() && bytes[j] != b'>' {
                    j += 1;
                }
                &src[start..j]
            }
        };
        attrs.push((name, decode_attribute(value)));
    }
}

// ---------------------------------------------------------------------------------------------
// MarkdownV2

const MD_RESERVED: &str = "_*[]()~`>#+-=|{}.!\\";

fn reserved(c: char) -> String {
    format!("Character '{c}' is reserved and must be escaped with the preceding '\\'")
}

/// An entity opened by a Markdown marker; `Kind::TextLink`/`CustomEmoji` here stand for an
/// open `[` / `![` whose URL is not known yet.
struct MdOpen {
    kind: Kind,
    start: usize,
    byte: usize,
}

/// An open `>` quote: where it started and where its last line ended.
struct Quote {
    start: usize,
    expandable: bool,
    /// UTF-16 offset of the end of the last quoted line (before its newline).
    end: usize,
    closed_by_marker: bool,
}

fn parse_markdown_v2(src: &str) -> Result<Formatted, String> {
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let at = |k: usize| chars.get(k).map(|&(_, c)| c);
    let mut out = Out::default();
    let mut stack: Vec<MdOpen> = Vec::new();
    let mut quote: Option<Quote> = None;
    let mut line_start = true;
    let mut k = 0;
    while let Some(&(byte, c)) = chars.get(k) {
        if line_start {
            line_start = false;
            let quote_open = quote.as_ref().is_some_and(|q| !q.closed_by_marker);
            if c == '>' {
                if !quote_open {
                    close_quote(&mut out, &mut quote);
                    quote = Some(Quote {
                        start: out.utf16,
                        expandable: false,
                        end: out.utf16,
                        closed_by_marker: false,
                    });
                }
                k += 1;
                continue;
            }
            if c == '*' && at(k + 1) == Some('*') && at(k + 2) == Some('>') && !quote_open {
                close_quote(&mut out, &mut quote);
                quote = Some(Quote {
                    start: out.utf16,
                    expandable: true,
                    end: out.utf16,
                    closed_by_marker: false,
                });
                k += 3;
                continue;
            }
            close_quote(&mut out, &mut quote);
        }
        match c {
            '\\' => match at(k + 1) {
                Some(next) if (1..=126).contains(&(next as u32)) => {
                    out.push(next);
                    k += 2;
                }
                _ => return Err(reserved('\\')),
            },
            '*' => {
                md_toggle(&mut out, &mut stack, Kind::Bold, byte);
                k += 1;
            }
            '_' if at(k + 1) == Some('_') => {
                md_toggle(&mut out, &mut stack, Kind::Underline, byte);
                k += 2;
            }
            '_' => {
                md_toggle(&mut out, &mut stack, Kind::Italic, byte);
                k += 1;
            }
            '~' => {
                md_toggle(&mut out, &mut stack, Kind::Strikethrough, byte);
                k += 1;
            }
            '|' if at(k + 1) == Some('|') => {
                let ends_line = matches!(at(k + 2), None | Some('\n'));
                let in_expandable = quote
                    .as_ref()
                    .is_some_and(|q| q.expandable && !q.closed_by_marker);
                let spoiler_open = stack.last().is_some_and(|o| o.kind == Kind::Spoiler);
                if ends_line && in_expandable && !spoiler_open {
                    if let Some(q) = quote.as_mut() {
                        q.end = out.utf16;
                        q.closed_by_marker = true;
                    }
                } else {
                    md_toggle(&mut out, &mut stack, Kind::Spoiler, byte);
                }
                k += 2;
            }
            '[' => {
                stack.push(MdOpen {
                    kind: Kind::TextLink { url: String::new() },
                    start: out.utf16,
                    byte,
                });
                k += 1;
            }
            '!' if at(k + 1) == Some('[') => {
                stack.push(MdOpen {
                    kind: Kind::CustomEmoji { id: String::new() },
                    start: out.utf16,
                    byte,
                });
                k += 2;
            }
            ']' if stack.last().is_some_and(|o| {
                matches!(o.kind, Kind::TextLink { .. } | Kind::CustomEmoji { .. })
            }) =>
            {
                let Some(open) = stack.pop() else { break };
                k += 1;
                if at(k) != Some('(') {
                    if matches!(open.kind, Kind::CustomEmoji { .. }) {
                        return Err(format!(
                            "Custom emoji entity must contain a tg://emoji URL at byte offset {}",
                            open.byte
                        ));
                    }
                    // `[text]` without a URL stays plain text.
                    continue;
                }
                k += 1;
                let mut url = String::new();
                loop {
                    match at(k) {
                        None => {
                            return Err(format!(
                                "Can't find end of a URL at byte offset {}",
                                open.byte
                            ));
                        }
                        Some(')') => break,
                        Some('\\') if at(k + 1).is_some() => {
                            url.extend(at(k + 1));
                            k += 2;
                        }
                        Some(ch) => {
                            url.push(ch);
                            k += 1;
                        }
                    }
                }
                k += 1;
                match open.kind {
                    Kind::CustomEmoji { .. } => {
                        let id = url
                            .strip_prefix("tg://emoji?id=")
                            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()));
                        let Some(id) = id else {
                            return Err(format!(
                                "Custom emoji entity must contain a tg://emoji URL at byte offset {}",
                                open.byte
                            ));
                        };
                        out.entity(Kind::CustomEmoji { id: id.to_owned() }, open.start);
                    }
                    _ => {
                        if let Some(url) = normalize_url(&url) {
                            out.entity(Kind::TextLink { url }, open.start);
                        }
                    }
                }
            }
            '`' if at(k + 1) == Some('`') && at(k + 2) == Some('`') => {
                k = md_pre(&chars, k, byte, &mut out)?;
            }
            '`' => {
                let start = out.utf16;
                k += 1;
                loop {
                    match at(k) {
                        None => {
                            return Err(format!(
                                "Can't find end of Code entity at byte offset {byte}"
                            ));
                        }
                        Some('`') => break,
                        Some('\\') if at(k + 1).is_some() => {
                            out.extend_one(at(k + 1));
                            k += 2;
                        }
                        Some(ch) => {
                            out.push(ch);
                            k += 1;
                        }
                    }
                }
                k += 1;
                out.entity(Kind::Code, start);
            }
            '\n' => {
                if let Some(q) = quote.as_mut().filter(|q| !q.closed_by_marker) {
                    q.end = out.utf16;
                }
                out.push('\n');
                line_start = true;
                k += 1;
            }
            c if MD_RESERVED.contains(c) => return Err(reserved(c)),
            c => {
                out.push(c);
                k += 1;
            }
        }
    }
    if let Some(q) = quote.as_mut().filter(|q| !q.closed_by_marker) {
        q.end = out.utf16;
    }
    close_quote(&mut out, &mut quote);
    if let Some(open) = stack.last() {
        let name = match open.kind {
            Kind::TextLink { .. } | Kind::CustomEmoji { .. } => "TextUrl",
            ref kind => kind.md_name(),
        };
        return Err(format!(
            "Can't find end of {name} entity at byte offset {}",
            open.byte
        ));
    }
    Ok(out.finish())
}

impl Out {
    fn extend_one(&mut self, c: Option<char>) {
        if let Some(c) = c {
            self.push(c);
        }
    }
}

fn close_quote(out: &mut Out, quote: &mut Option<Quote>) {
    if let Some(q) = quote.take()
        && q.end > q.start
    {
        let kind = if q.expandable {
            Kind::ExpandableBlockquote
        } else {
            Kind::Blockquote
        };
        out.entities.push(Entity {
            kind,
            offset: q.start,
            length: q.end - q.start,
        });
    }
}

/// Closes `kind` when it is the innermost open entity, else opens it.
fn md_toggle(out: &mut Out, stack: &mut Vec<MdOpen>, kind: Kind, byte: usize) {
    if stack.last().is_some_and(|o| o.kind == kind) {
        if let Some(open) = stack.pop() {
            out.entity(open.kind, open.start);
        }
    } else {
        stack.push(MdOpen {
            kind,
            start: out.utf16,
            byte,
        });
    }
}

/// Parses a fenced pre block starting at char index `k` (the first backtick); returns the index
/// after the closing fence.
fn md_pre(
    chars: &[(usize, char)],
    mut k: usize,
    byte: usize,
    out: &mut Out,
) -> Result<usize, String> {
    let at = |k: usize| chars.get(k).map(|&(_, c)| c);
    k += 3;
    let is_fence =
        |k: usize| at(k) == Some('`') && at(k + 1) == Some('`') && at(k + 2) == Some('`');
    // A first line without whitespace, ended by a newline, names the language.
    let mut language = None;
    let mut probe = k;
    while let Some(ch) = at(probe) {
        if ch == '\n' || ch.is_whitespace() || ch == '`' || ch == '\\' {
            break;
        }
        probe += 1;
    }
    if at(probe) == Some('\n') {
        if probe > k {
            language = Some(chars[k..probe].iter().map(|&(_, c)| c).collect::<String>());
        }
        k = probe + 1;
    }
    let start = out.utf16;
    loop {
        if is_fence(k) {
            break;
        }
        match at(k) {
            None => {
                return Err(format!(
                    "Can't find end of Pre entity at byte offset {byte}"
                ));
            }
            Some('\\') if at(k + 1).is_some() => {
                out.extend_one(at(k + 1));
                k += 2;
            }
            Some(ch) => {
                out.push(ch);
                k += 1;
            }
        }
    }
    out.entity(Kind::Pre { language }, start);
    Ok(k + 3)
}

// ---------------------------------------------------------------------------------------------
// Legacy Markdown

fn parse_markdown(src: &str) -> Result<Formatted, String> {
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let at = |k: usize| chars.get(k).map(|&(_, c)| c);
    let mut out = Out::default();
    let mut k = 0;
    while let Some(&(byte, c)) = chars.get(k) {
        let unclosed = || format!("Can't find end of the entity starting at byte offset {byte}");
        match c {
            '\\' if at(k + 1).is_some_and(|n| "_*`[".contains(n)) => {
                out.extend_one(at(k + 1));
                k += 2;
            }
            '*' | '_' => {
                let start = out.utf16;
                k += 1;
                loop {
                    match at(k) {
                        None => return Err(unclosed()),
                        Some(ch) if ch == c => break,
                        Some(ch) => {
                            out.push(ch);
                            k += 1;
                        }
                    }
                }
                k += 1;
                out.entity(if c == '*' { Kind::Bold } else { Kind::Italic }, start);
            }
            '`' if at(k + 1) == Some('`') && at(k + 2) == Some('`') => {
                let start = out.utf16;
                k += 3;
                loop {
                    if at(k) == Some('`') && at(k + 1) == Some('`') && at(k + 2) == Some('`') {
                        break;
                    }
                    match at(k) {
                        None => return Err(unclosed()),
                        Some(ch) => {
                            out.push(ch);
                            k += 1;
                        }
                    }
                }
                k += 3;
                out.entity(Kind::Pre { language: None }, start);
            }
            '`' => {
                let start = out.utf16;
                k += 1;
                loop {
                    match at(k) {
                        None => return Err(unclosed()),
                        Some('`') => break,
                        Some(ch) => {
                            out.push(ch);
                            k += 1;
                        }
                    }
                }
                k += 1;
                out.entity(Kind::Code, start);
            }
            '[' => {
                let start = out.utf16;
                k += 1;
                loop {
                    match at(k) {
                        None => return Err(unclosed()),
                        Some(']') => break,
                        Some(ch) => {
                            out.push(ch);
                            k += 1;
                        }
                    }
                }
                k += 1;
                if at(k) == Some('(') {
                    k += 1;
                    let mut url = String::new();
                    loop {
                        match at(k) {
                            None => return Err(unclosed()),
                            Some(')') => break,
                            Some(ch) => {
                                url.push(ch);
                                k += 1;
                            }
                        }
                    }
                    k += 1;
                    if let Some(url) = normalize_url(&url) {
                        out.entity(Kind::TextLink { url }, start);
                    }
                }
            }
            c => {
                out.push(c);
                k += 1;
            }
        }
    }
    Ok(out.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html(s: &str) -> Result<Formatted, String> {
        parse(s, Some(ParseMode::Html))
    }
    fn md2(s: &str) -> Result<Formatted, String> {
        parse(s, Some(ParseMode::MarkdownV2))
    }
    fn kinds(f: &Formatted) -> Vec<(&'static str, usize, usize)> {
        f.entities
            .iter()
            .map(|e| (e.kind.api_name(), e.offset, e.length))
            .collect()
    }

    #[test]
    fn html_tags_become_entities_and_text_is_plain() {
        let f =
            html("<b>Hi</b> <i>there</i> &lt;3 &amp; <a href=\"https://x.org\">link</a>").unwrap();
        assert_eq!(f.text, "Hi there <3 & link");
        assert_eq!(
            kinds(&f),
            vec![("bold", 0, 2), ("italic", 3, 5), ("text_link", 14, 4)]
        );
    }

    #[test]
    fn html_offsets_are_utf16() {
        let f = html("😀 <b>x</b>").unwrap();
        assert_eq!(kinds(&f), vec![("bold", 3, 1)]);
    }

    #[test]
    fn html_pre_takes_language_from_code() {
        let f = html("<pre><code class=\"language-rust\">fn main() {}</code></pre>").unwrap();
        assert_eq!(
            f.entities[0].to_json(),
            json!({"type":"pre","offset":0,"length":12,"language":"rust"})
        );
    }

    #[test]
    fn html_rejections_name_the_problem() {
        assert_eq!(
            html("a < b").unwrap_err(),
            "Unsupported start tag \"\" at byte offset 2"
        );
        assert_eq!(
            html("<foo>x</foo>").unwrap_err(),
            "Unsupported start tag \"foo\" at byte offset 0"
        );
        assert_eq!(
            html("<b><i>x</b></i>").unwrap_err(),
            "Unmatched end tag at byte offset 7, expected \"</i>\", found \"</b>\""
        );
        assert_eq!(
            html("<b>x").unwrap_err(),
            "Can't find end tag corresponding to start tag \"b\""
        );
        assert_eq!(
            html("x</b>").unwrap_err(),
            "Unexpected end tag at byte offset 1"
        );
        assert!(html("fish & chips").unwrap_err().contains("byte offset 5"));
        assert!(html("&nbsp;").is_err());
        assert!(html("<span>x</span>").is_err());
        assert!(html("<b").is_err());
        assert!(html("<a href=\"x>y</a>").is_err());
    }

    #[test]
    fn html_accepts_what_telegram_accepts() {
        for ok in [
            "<B>caps</B>",
            "<blockquote expandable>q</blockquote>",
            "<span class=\"tg-spoiler\">s</span><tg-spoiler>t</tg-spoiler>",
            "<a href='https://e.com/?a=1&amp;b=2'>x</a>",
            "&#128512; &#x1F600;",
            "<code>a &lt; b</code>",
            "<u>u</u><ins>i</ins><s>s</s><strike>t</strike><del>d</del><em>e</em><strong>s</strong>",
        ] {
            assert!(html(ok).is_ok(), "{ok}: {:?}", html(ok));
        }
    }

    #[test]
    fn whitespace_is_trimmed_and_entities_follow() {
        let f = html("  <b>x</b>  ").unwrap();
        assert_eq!(f.text, "x");
        assert_eq!(kinds(&f), vec![("bold", 0, 1)]);
    }

    #[test]
    fn markdown_v2_entities() {
        let f = md2("*bold* _it_ __u__ ~s~ ||sp|| [l](https://e.com) `c\\`` \\.").unwrap();
        assert_eq!(f.text, "bold it u s sp l c` .");
        assert_eq!(
            kinds(&f),
            vec![
                ("bold", 0, 4),
                ("italic", 5, 2),
                ("underline", 8, 1),
                ("strikethrough", 10, 1),
                ("spoiler", 12, 2),
                ("text_link", 15, 1),
                ("code", 17, 2)
            ]
        );
    }

    #[test]
    fn markdown_v2_pre_and_quotes() {
        let f = md2("```rust\nlet x = 1;\n```").unwrap();
        assert_eq!(f.text, "let x = 1;");
        assert_eq!(f.entities[0].to_json()["language"], "rust");
        let f = md2(">one\n>two\nthree").unwrap();
        assert_eq!(f.text, "one\ntwo\nthree");
        assert_eq!(kinds(&f), vec![("blockquote", 0, 7)]);
        let f = md2("**>hidden\n>more||\nafter").unwrap();
        assert_eq!(kinds(&f), vec![("expandable_blockquote", 0, 11)]);
    }

    #[test]
    fn markdown_v2_rejections() {
        assert_eq!(
            md2("Hello.").unwrap_err(),
            "Character '.' is reserved and must be escaped with the preceding '\\'"
        );
        assert_eq!(
            md2("*bold").unwrap_err(),
            "Can't find end of Bold entity at byte offset 0"
        );
        assert!(md2("a - b").is_err());
        assert!(md2("`code").is_err());
        assert!(md2("[x](https://e.com").is_err());
        assert!(md2("trailing \\").is_err());
    }

    #[test]
    fn legacy_markdown() {
        let f = parse(
            "*b* _i_ `c` [l](https://e.com) 1.5-2",
            Some(ParseMode::Markdown),
        )
        .unwrap();
        assert_eq!(f.text, "b i c l 1.5-2");
        assert!(parse("*open", Some(ParseMode::Markdown)).is_err());
    }

    #[test]
    fn bot_command_entity() {
        assert_eq!(command_entity("/start abc").map(|e| e.length), Some(6));
        assert_eq!(
            command_entity("/start@hearth_bot x").map(|e| e.length),
            Some(17)
        );
        assert_eq!(command_entity("/ hi"), None);
        assert_eq!(command_entity("hi"), None);
    }

    #[test]
    fn links_need_a_url() {
        let f = html("<a href=\"not a url\">x</a> <a href=\"example.com\">y</a>").unwrap();
        assert_eq!(f.entities.len(), 1);
        assert_eq!(f.entities[0].to_json()["url"], "http://example.com");
    }

    /// Deterministic fuzzing: the parsers never panic and entities always lie inside the text.
    #[test]
    fn parsers_never_panic_and_entities_fit() {
        let alphabet: Vec<char> = "<>/&;#x1abipre\"'= \n*_~|[]()`\\!.-😀é".chars().collect();
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            let len = (seed % 24) as usize;
            let mut s = String::new();
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            for mode in [
                None,
                Some(ParseMode::Html),
                Some(ParseMode::MarkdownV2),
                Some(ParseMode::Markdown),
            ] {
                if let Ok(f) = parse(&s, mode) {
                    let n = utf16_len(&f.text);
                    for e in &f.entities {
                        assert!(
                            e.length > 0 && e.offset + e.length <= n,
                            "{s:?} {mode:?} {e:?}"
                        );
                    }
                }
            }
            seed = seed.wrapping_add(0x2545_F491_4F6C_DD1D);
        }
    }
}
