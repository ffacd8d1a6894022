//! Rendering a model's Markdown-ish reply into Telegram messages that cannot fail to parse.
//!
//! Telegram refuses a whole message over one stray `<` in HTML mode or one unescaped `.` in
//! MarkdownV2, and counts its 4096-character limit in UTF-16 units of the text *after* entity
//! parsing. So the reply is parsed here into styled characters (bold, italic, code, link, code
//! block), split into chunks by that visible length, and each chunk is written as HTML from
//! scratch: every `&`, `<`, `>` escaped, every tag opened and closed inside the chunk, and
//! nesting kept within what Telegram accepts (nothing inside `code`/`pre` except the `code` of a
//! `pre`, no `code` inside bold/italic/links, no link inside a link).
//!
//! The Markdown understood is what models actually write in chat: `**bold**`/`__bold__`,
//! `*italic*`/`_italic_` (never inside a word, so `snake_case_names` and `2*3*4` stay as they
//! are), `` `code` ``, fenced blocks, `[text](https://…)`, `# headings` (bold lines) and
//! `-`/`*` bullets (`•`). Anything else, including unmatched markers, stays literal text.
//! Emphasis does not cross lines.

use std::collections::HashMap;

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
/// else between characters (avoiding the middle of an emoji sequence or accented letter when
/// the chunk allows). Formatting that spans a split is closed at the end of one chunk and
/// reopened at the start of the next. Whitespace at split points is dropped, and no chunk is
/// empty or whitespace only.
///
/// Empty or whitespace-only input gives no chunks: the caller decides what (if anything) the
/// member sees then.
pub fn render_reply(markdown: &str, limit: usize) -> Vec<ReplyChunk> {
    let doc = parse(markdown);
    let limit = limit.max(2);
    chunk_ranges(&doc.cells, &doc.styles, limit)
        .into_iter()
        .map(|(start, end)| render_chunk(&doc, start, end, limit))
        .collect()
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
    /// Inside a fenced code block; the language, "" for none. Excludes every other style.
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
        self.cells.extend(text.chars().map(|ch| Cell { ch, style: id }));
    }
}

/// Characters a chunk may not start or end with and that do not count as content. Telegram
/// trims whitespace itself; the zero-width characters are included so a chunk can never be
/// "empty" in Telegram's eyes while looking non-empty here.
fn is_blank(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}')
}

// ---------------------------------------------------------------------------------------------
// Block level: lines, fences, headings, bullets.

fn parse(markdown: &str) -> Doc {
    // One line ending, no control characters Telegram might choke on (tabs stay).
    let text: String = markdown
        .replace("\r\n", "\n")
        .chars()
        .map(|c| if c == '\r' { '\n' } else { c })
        .filter(|&c| c == '\n' || c == '\t' || !c.is_control())
        .collect();
    let lines: Vec<&str> = text.split('\n').collect();
    let mut doc = Doc::default();
    let mut blank_before = false;
    let separate = |doc: &mut Doc, blank_before: &mut bool| {
        if !doc.cells.is_empty() {
            let sep = if *blank_before { "\n\n" } else { "\n" };
            doc.push(sep, &Style::default());
        }
        *blank_before = false;
    };

    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if let Some(fence) = open_fence(line) {
            let mut body: Vec<&str> = Vec::new();
            while i < lines.len() && !fence.closed_by(lines[i]) {
                body.push(strip_indent(lines[i], fence.indent));
                i += 1;
            }
            i += 1; // the closing fence, if there was one
            let body = body.join("\n");
            if body.trim().is_empty() {
                continue;
            }
            separate(&mut doc, &mut blank_before);
            doc.push(&body, &Style { pre: Some(fence.lang), ..Style::default() });
            continue;
        }
        if line.trim().is_empty() {
            blank_before = true;
            continue;
        }
        let rest = line.trim_start();
        let indent = &line[..line.len() - rest.len()];
        let rest = rest.trim_end();
        if let Some(heading) = heading(rest) {
            if heading.is_empty() {
                blank_before = true;
                continue;
            }
            separate(&mut doc, &mut blank_before);
            inline(&mut doc, heading, &Style { bold: true, ..Style::default() });
        } else if is_thematic_break(rest) {
            separate(&mut doc, &mut blank_before);
            doc.push("———", &Style::default());
        } else if let Some(item) = rest.strip_prefix("- ").or_else(|| rest.strip_prefix("* ")) {
            separate(&mut doc, &mut blank_before);
            doc.push(indent, &Style::default());
            doc.push("• ", &Style::default());
            inline(&mut doc, item.trim_start(), &Style::default());
        } else {
            separate(&mut doc, &mut blank_before);
            doc.push(indent, &Style::default());
            inline(&mut doc, rest, &Style::default());
        }
    }
    doc
}

struct Fence {
    ch: char,
    len: usize,
    indent: usize,
    lang: String,
}

impl Fence {
    fn closed_by(&self, line: &str) -> bool {
        let t = line.trim();
        t.len() >= self.len && t.chars().all(|c| c == self.ch)
    }
}

/// A line opening a fenced block: any indentation (models indent fences inside lists), three or
/// more backticks or tildes, an optional info string whose first word is the language.
fn open_fence(line: &str) -> Option<Fence> {
    let rest = line.trim_start_matches([' ', '\t']);
    let indent = line.len() - rest.len();
    let ch = rest.chars().next().filter(|&c| c == '`' || c == '~')?;
    let len = rest.chars().take_while(|&c| c == ch).count();
    if len < 3 {
        return None;
    }
    let info = rest[len..].trim();
    if ch == '`' && info.contains('`') {
        return None; // "```code``` on one line" is an inline code span
    }
    let lang: String = info
        .split_whitespace()
        .next()
        .unwrap_or("")
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "_+#.-".contains(*c))
        .take(32)
        .collect();
    Some(Fence { ch, len, indent, lang })
}

/// Removes up to `indent` leading spaces or tabs (the fence's own indentation).
fn strip_indent(line: &str, indent: usize) -> &str {
    let ws = line.len() - line.trim_start_matches([' ', '\t']).len();
    &line[ws.min(indent)..]
}

/// `# Title` … `###### Title` (trailing `#`s dropped); `Some("")` for a bare `#`.
fn heading(line: &str) -> Option<&str> {
    let hashes = line.chars().take_while(|&c| c == '#').count();
    if !(1..=6).contains(&hashes) {
        return None;
    }
    let rest = &line[hashes..];
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return None; // "#hashtag"
    }
    let rest = rest.trim();
    let rest = match rest.trim_end_matches('#') {
        r if r.is_empty() || r.ends_with([' ', '\t']) => r.trim_end(),
        _ => rest,
    };
    Some(rest)
}

/// `---`, `***`, `___` (spaces allowed between): a rule, shown as a short line of dashes.
fn is_thematic_break(line: &str) -> bool {
    let mut chars = line.chars().filter(|c| !c.is_whitespace());
    let Some(first) = chars.next() else {
        return false;
    };
    matches!(first, '-' | '*' | '_') && {
        let n = 1 + chars.clone().count();
        n >= 3 && chars.all(|c| c == first)
    }
}

// ---------------------------------------------------------------------------------------------
// Inline level: code spans, links, emphasis. Tokenise, pair emphasis markers, emit.

#[derive(Debug)]
enum Tok {
    Text(String),
    /// A run of `*` or `_` of length 1 or 2, and whether it may open or close emphasis.
    Delim {
        ch: char,
        len: usize,
        open: bool,
        close: bool,
    },
    Code(String),
    Link {
        url: String,
        inner: Vec<Tok>,
    },
}

/// What pairing decided for a delimiter.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mark {
    Literal,
    Open,
    Close,
}

fn inline(doc: &mut Doc, line: &str, base: &Style) {
    let chars: Vec<char> = line.chars().collect();
    let toks = tokenize(&chars, &Brackets::new(&chars), &Backticks::new(&chars), 0, chars.len(), true);
    emit(doc, &toks, base);
}

/// Where each `[` closes (balanced, unescaped), found once per line so a line full of brackets
/// costs linear time.
struct Brackets {
    close_of: HashMap<usize, usize>,
}

impl Brackets {
    fn new(chars: &[char]) -> Self {
        let mut stack = Vec::new();
        let mut close_of = HashMap::new();
        for (i, &c) in chars.iter().enumerate() {
            let escaped = i > 0 && chars[i - 1] == '\\';
            match c {
                '[' if !escaped => stack.push(i),
                ']' if !escaped => {
                    if let Some(open) = stack.pop() {
                        close_of.insert(open, i);
                    }
                }
                _ => {}
            }
        }
        Self { close_of }
    }
}

/// Start positions of maximal backtick runs by length, so finding a code span's closing run is
/// a lookup rather than a scan.
struct Backticks {
    runs: HashMap<usize, Vec<usize>>,
}

impl Backticks {
    fn new(chars: &[char]) -> Self {
        let mut runs: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] == '`' {
                let len = run_len(chars, i, '`');
                runs.entry(len).or_default().push(i);
                i += len;
            } else {
                i += 1;
            }
        }
        Self { runs }
    }

    /// First run of exactly `len` backticks starting at or after `from` and before `to`.
    fn next(&self, len: usize, from: usize, to: usize) -> Option<usize> {
        let runs = self.runs.get(&len)?;
        let k = runs.partition_point(|&p| p < from);
        runs.get(k).copied().filter(|&p| p + len <= to)
    }
}

fn run_len(chars: &[char], i: usize, c: char) -> usize {
    chars[i..].iter().take_while(|&&x| x == c).count()
}

fn tokenize(chars: &[char], brackets: &Brackets, ticks: &Backticks, from: usize, to: usize, links: bool) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut text = String::new();
    let flush = |text: &mut String, toks: &mut Vec<Tok>| {
        if !text.is_empty() {
            toks.push(Tok::Text(std::mem::take(text)));
        }
    };
    let mut i = from;
    while i < to {
        let c = chars[i];
        match c {
            '\\' if i + 1 < to && chars[i + 1].is_ascii_punctuation() => {
                text.push(chars[i + 1]);
                i += 2;
            }
            '`' => {
                let len = run_len(&chars[..to], i, '`');
                match ticks.next(len, i + len, to) {
                    Some(close) => {
                        flush(&mut text, &mut toks);
                        let mut code: String = chars[i + len..close].iter().collect();
                        if code.len() >= 2 && code.starts_with(' ') && code.ends_with(' ') && !code.trim().is_empty() {
                            code = code[1..code.len() - 1].to_owned();
                        }
                        toks.push(Tok::Code(code));
                        i = close + len;
                    }
                    None => {
                        text.extend(std::iter::repeat_n('`', len));
                        i += len;
                    }
                }
            }
            '[' if links => match link_at(chars, brackets, i, to) {
                Some((text_end, url, end)) => {
                    flush(&mut text, &mut toks);
                    let inner = tokenize(chars, brackets, ticks, i + 1, text_end, false);
                    toks.push(Tok::Link { url, inner });
                    i = end;
                }
                None => {
                    text.push('[');
                    i += 1;
                }
            },
            '*' | '_' => {
                let len = run_len(&chars[..to], i, c);
                let prev = if i > from { Some(chars[i - 1]) } else { None };
                let next = chars.get(i + len).copied().filter(|_| i + len < to);
                // Never inside a word: keeps snake_case_names and 2*3*4 literal.
                let open = next.is_some_and(|n| !n.is_whitespace()) && !prev.is_some_and(char::is_alphanumeric);
                let close = prev.is_some_and(|p| !p.is_whitespace()) && !next.is_some_and(char::is_alphanumeric);
                if len > 3 || !(open || close) {
                    text.extend(std::iter::repeat_n(c, len));
                } else {
                    flush(&mut text, &mut toks);
                    // `***x***` is bold around italic: split so the runs nest.
                    let parts: &[usize] = match len {
                        3 if open => &[2, 1],
                        3 => &[1, 2],
                        1 => &[1],
                        _ => &[2],
                    };
                    for &len in parts {
                        toks.push(Tok::Delim { ch: c, len, open, close });
                    }
                }
                i += len;
            }
            _ => {
                text.push(c);
                i += 1;
            }
        }
    }
    flush(&mut text, &mut toks);
    toks
}

/// Longest link target accepted; longer ones stay literal text.
const MAX_URL: usize = 2048;

/// `[text](http(s)://url)` starting at `open`: the end of the text, the URL and the index after
/// the closing parenthesis. Other schemes and malformed targets are not links.
fn link_at(chars: &[char], brackets: &Brackets, open: usize, to: usize) -> Option<(usize, String, usize)> {
    let close = *brackets.close_of.get(&open)?;
    if close + 1 >= to || chars[close + 1] != '(' {
        return None;
    }
    let mut depth = 0usize;
    let mut j = close + 2;
    // Bounded so a line full of "[x](" cannot make parsing quadratic.
    let to = to.min(j + MAX_URL);
    while j < to {
        match chars[j] {
            '(' => depth += 1,
            ')' if depth == 0 => break,
            ')' => depth -= 1,
            c if c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"') => {
                return None;
            }
            _ => {}
        }
        j += 1;
    }
    if j >= to {
        return None;
    }
    let url: String = chars[close + 2..j].iter().collect();
    let lower = url.to_ascii_lowercase();
    let rest = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://"))?;
    if rest.is_empty() || rest.starts_with(['/', '?', '#']) {
        return None;
    }
    Some((close, url, j + 1))
}

/// Pairs emphasis markers: a closer takes the nearest unpaired opener of the same character and
/// length. Kinds are paired independently; crossing ranges are fine because styles are applied
/// per character and the HTML writer nests tags itself.
fn pair(toks: &[Tok]) -> Vec<Mark> {
    let mut marks = vec![Mark::Literal; toks.len()];
    let mut stacks: [Vec<usize>; 4] = Default::default();
    for (i, t) in toks.iter().enumerate() {
        if let Tok::Delim { ch, len, open, close } = *t {
            let stack = &mut stacks[slot(ch, len)];
            if close && let Some(j) = stack.pop() {
                marks[j] = Mark::Open;
                marks[i] = Mark::Close;
            } else if open {
                stack.push(i);
            }
        }
    }
    marks
}

/// Index of a delimiter kind: `*`, `**`, `_`, `__`.
fn slot(ch: char, len: usize) -> usize {
    (if ch == '*' { 0 } else { 2 }) + (len - 1)
}

fn emit(doc: &mut Doc, toks: &[Tok], base: &Style) {
    let marks = pair(toks);
    let mut depth = [0u32; 4];
    for (t, mark) in toks.iter().zip(marks) {
        let style = Style {
            bold: base.bold || depth[1] > 0 || depth[3] > 0,
            italic: base.italic || depth[0] > 0 || depth[2] > 0,
            ..base.clone()
        };
        match t {
            Tok::Text(s) => doc.push(s, &style),
            Tok::Delim { ch, len, .. } => match mark {
                Mark::Open => depth[slot(*ch, *len)] += 1,
                Mark::Close => depth[slot(*ch, *len)] -= 1,
                Mark::Literal => doc.push(&ch.to_string().repeat(*len), &style),
            },
            // Telegram allows nothing around `code`; inside a link the link matters more.
            Tok::Code(s) if style.link.is_some() => doc.push(s, &style),
            Tok::Code(s) => doc.push(s, &Style { code: true, ..Style::default() }),
            Tok::Link { url, inner } => {
                let style = Style { link: Some(url.clone()), ..style };
                if inner.is_empty() {
                    doc.push(url, &style);
                } else {
                    emit(doc, inner, &style);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Splitting.

/// Chunk boundaries as cell ranges, each with at most `limit` UTF-16 units and at least one
/// non-blank character.
fn chunk_ranges(cells: &[Cell], styles: &[Style], limit: usize) -> Vec<(usize, usize)> {
    let n = cells.len();
    let in_pre = |i: usize| styles[cells[i].style as usize].pre.is_some();
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        // Line breaks and the spaces of a word split never start a chunk; indentation at the
        // start of a code-block line does.
        while start < n {
            let c = cells[start].ch;
            let indentation = in_pre(start) && (start == 0 || cells[start - 1].ch == '\n');
            if c == '\n' || (is_blank(c) && !indentation) {
                start += 1;
            } else {
                break;
            }
        }
        let Some(solid) = (start..n).find(|&i| !is_blank(cells[i].ch)) else {
            break;
        };
        let mut end = start;
        let mut units = 0;
        while end < n && units + cells[end].ch.len_utf16() <= limit {
            units += cells[end].ch.len_utf16();
            end += 1;
        }
        if end <= solid {
            // Nothing but code-block indentation fits before the first real character.
            start = solid;
            continue;
        }
        let cut = if end == n { n } else { best_cut(cells, styles, solid + 1, end) };
        let mut last = cut;
        while last > start && is_blank(cells[last - 1].ch) {
            last -= 1;
        }
        out.push((start, last));
        start = cut;
    }
    out
}

/// The best place in `lo..=hi` to end a chunk (the cell at the result starts the next one):
/// the latest paragraph break, else the latest line break, else the latest space, else the
/// latest character boundary that does not split a grapheme, else `hi`.
fn best_cut(cells: &[Cell], styles: &[Style], lo: usize, hi: usize) -> usize {
    let pre = |i: Option<usize>| i.and_then(|i| cells.get(i)).map(|c| styles[c.style as usize].pre.is_some());
    let mut best = (-1, hi);
    for p in (lo..=hi).rev() {
        let c = cells[p].ch;
        let level = if c == '\n' {
            let blank_line = cells.get(p + 1).is_some_and(|n| n.ch == '\n');
            let block_edge = pre(p.checked_sub(1)) != pre(Some(p + 1));
            if blank_line || block_edge { 3 } else { 2 }
        } else if c.is_whitespace() {
            1
        } else if grapheme_boundary(cells, lo, p) {
            0
        } else {
            -1
        };
        if level == 3 {
            return p;
        }
        if level > best.0 {
            best = (level, p);
        }
    }
    best.1
}

/// Whether a cut before `cells[p]` keeps grapheme clusters whole, approximately: not before a
/// combining mark, variation selector, skin tone or ZWJ, not after a ZWJ, and not between the
/// two regional indicators of a flag. Looks back no further than `lo`.
fn grapheme_boundary(cells: &[Cell], lo: usize, p: usize) -> bool {
    let (prev, c) = (cells[p - 1].ch, cells[p].ch);
    if extends(c) || prev == '\u{200D}' {
        return false;
    }
    let ri = |c: char| ('\u{1F1E6}'..='\u{1F1FF}').contains(&c);
    if ri(c) && ri(prev) {
        let run = cells[lo.saturating_sub(1)..p].iter().rev().take_while(|x| ri(x.ch)).count();
        return run % 2 == 0;
    }
    true
}

/// Characters that attach to the one before them (a practical subset of Grapheme_Extend).
fn extends(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}' | '\u{0483}'..='\u{0489}' | '\u{0591}'..='\u{05BD}'
        | '\u{0610}'..='\u{061A}' | '\u{064B}'..='\u{065F}' | '\u{0670}'
        | '\u{0900}'..='\u{0903}' | '\u{093A}'..='\u{094F}' | '\u{0E31}' | '\u{0E34}'..='\u{0E3A}'
        | '\u{0E47}'..='\u{0E4E}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}'
        | '\u{200C}' | '\u{200D}' | '\u{20D0}'..='\u{20FF}' | '\u{3099}' | '\u{309A}'
        | '\u{FE00}'..='\u{FE0F}' | '\u{FE20}'..='\u{FE2F}' | '\u{1F3FB}'..='\u{1F3FF}'
        | '\u{E0020}'..='\u{E007F}' | '\u{E0100}'..='\u{E01EF}')
}

// ---------------------------------------------------------------------------------------------
// Writing one chunk.

#[derive(Debug, Clone, PartialEq)]
enum Tag<'a> {
    Pre,
    CodeLang(&'a str),
    Code,
    Bold,
    Italic,
    Link(&'a str),
}

/// Tags for a style, outermost first. Bold and italic sit outside links so a bold sentence with
/// a link in it stays one bold entity.
fn tags(style: &Style) -> Vec<Tag<'_>> {
    if let Some(lang) = &style.pre {
        return if lang.is_empty() { vec![Tag::Pre] } else { vec![Tag::Pre, Tag::CodeLang(lang)] };
    }
    if style.code {
        return vec![Tag::Code];
    }
    let mut t = Vec::new();
    if style.bold {
        t.push(Tag::Bold);
    }
    if style.italic {
        t.push(Tag::Italic);
    }
    if let Some(url) = &style.link {
        t.push(Tag::Link(url));
    }
    t
}

fn open_tag(out: &mut String, tag: &Tag<'_>) {
    match tag {
        Tag::Pre => out.push_str("<pre>"),
        Tag::CodeLang(lang) => {
            out.push_str("<code class=\"language-");
            escape(out, lang, true);
            out.push_str("\">");
        }
        Tag::Code => out.push_str("<code>"),
        Tag::Bold => out.push_str("<b>"),
        Tag::Italic => out.push_str("<i>"),
        Tag::Link(url) => {
            out.push_str("<a href=\"");
            escape(out, url, true);
            out.push_str("\">");
        }
    }
}

fn close_tag(out: &mut String, tag: &Tag<'_>) {
    out.push_str(match tag {
        Tag::Pre => "</pre>",
        Tag::CodeLang(_) | Tag::Code => "</code>",
        Tag::Bold => "</b>",
        Tag::Italic => "</i>",
        Tag::Link(_) => "</a>",
    });
}

fn escape(out: &mut String, text: &str, attribute: bool) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

fn render_chunk(doc: &Doc, start: usize, end: usize, limit: usize) -> ReplyChunk {
    let cells = &doc.cells[start..end];
    // Runs of one style.
    let mut runs: Vec<(u32, String)> = Vec::new();
    for cell in cells {
        match runs.last_mut() {
            Some((id, text)) if *id == cell.style => text.push(cell.ch),
            _ => runs.push((cell.style, cell.ch.to_string())),
        }
    }
    let runs: Vec<(&Style, String)> = runs.into_iter().map(|(id, text)| (&doc.styles[id as usize], text)).collect();

    let mut html = String::new();
    let mut open: Vec<Tag<'_>> = Vec::new();
    for (style, text) in &runs {
        let want = tags(style);
        let keep = open.iter().zip(&want).take_while(|(a, b)| a == b).count();
        while open.len() > keep {
            close_tag(&mut html, &open.pop().expect("len > keep"));
        }
        for tag in &want[keep..] {
            open_tag(&mut html, tag);
        }
        open = want;
        escape(&mut html, text, false);
    }
    while let Some(tag) = open.pop() {
        close_tag(&mut html, &tag);
    }

    // Plain fallback: the visible text, with each link's target after its text.
    let visible: String = cells.iter().map(|c| c.ch).collect();
    let mut plain = String::new();
    let mut link_text = String::new();
    for (i, (style, text)) in runs.iter().enumerate() {
        plain.push_str(text);
        if let Some(url) = &style.link {
            link_text.push_str(text);
            let continues = runs.get(i + 1).is_some_and(|(s, _)| s.link.as_ref() == Some(url));
            if !continues {
                if link_text.trim() != url {
                    plain.push_str(" (");
                    plain.push_str(url);
                    plain.push(')');
                }
                link_text.clear();
            }
        }
    }
    if plain.encode_utf16().count() > limit {
        plain = visible;
    }
    ReplyChunk { html, plain }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
}
