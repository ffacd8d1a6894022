//! A model's Markdown into a [`Doc`]: pulldown-cmark parses it as CommonMark, and its events
//! become styled cells.
//!
//! CommonMark decides the structure (paragraphs, headings, lists, quotes, code blocks, code
//! spans, emphasis, links, escapes, entities). On top of it, four rules of ours, for chat:
//! - Emphasis is never inside a word and pairs only like with like (`**` with `**`, `*` with
//!   `*`; `***` is both), so `2*3*4` and `**mismatch*` stay as written rather than becoming
//!   CommonMark's italics. A refused emphasis keeps its markers as literal text.
//! - Only `http(s)` links with a host, at most 2,048 characters and none of `<`, `>`, `"`,
//!   space or a control character, become links; any other link is shown as it was written.
//! - Nothing CommonMark would pass through as HTML is: raw HTML is text like any other.
//! - Headings are bold lines, rules `———`, list items `•` or their number, quotes `> `; blank
//!   lines between blocks are kept as one blank line, and a block that followed the one before
//!   on the next line still does (models write "Try:" straight above a code block).

use std::ops::Range;

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

use super::{Doc, Style};

/// Longest link target accepted; longer ones stay literal text.
const MAX_URL: usize = 2048;

/// Longest code-block language kept (it becomes a `class` attribute).
const MAX_LANG: usize = 32;

pub(super) fn parse(markdown: &str) -> Doc {
    // One line ending, no control characters Telegram might choke on (tabs stay).
    let text: String = markdown
        .replace("\r\n", "\n")
        .chars()
        .map(|c| if c == '\r' { '\n' } else { c })
        .filter(|&c| c == '\n' || c == '\t' || !c.is_control())
        .collect();
    let mut b = Builder::new(&text);
    // Plain CommonMark: no tables, strikethrough or footnotes — Telegram's subset has none of
    // them worth the surprise, and as text they read as the model wrote them.
    for (event, range) in Parser::new_ext(&text, Options::empty()).into_offset_iter() {
        b.event(event, range);
    }
    b.doc
}

/// Where the current leaf block (paragraph, heading, code block…) stands.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Leaf {
    /// Between blocks.
    None,
    /// A block started at this source offset, nothing written yet (an empty one writes nothing).
    Pending(usize),
    /// Its separator and prefix are written.
    Open,
}

/// A block that holds others, for the prefix of the lines written inside it.
enum Container {
    Quote,
    /// A list item: its marker, written before its first line only.
    Item {
        marker: String,
        used: bool,
    },
}

/// Text collected for a code or HTML block, written whole at its end.
struct Buffer {
    /// `Some(language)` for a code block ("" for none); `None` for raw HTML, shown as text.
    pre: Option<String>,
    text: String,
    end: usize,
}

/// A link or image being read.
struct Link {
    /// The target, if it is one we keep; `None` shows the link as it was written.
    url: Option<String>,
    range: Range<usize>,
    /// Cells before it, to see whether its text was empty.
    cells: usize,
    /// For a refused link: whether its opening (`[`, `![`, `<`) is written yet, and where the
    /// last thing inside it ended (its closing, `](…)`, is the source from there).
    opened: bool,
    inner_end: usize,
}

struct Builder<'a> {
    src: &'a str,
    doc: Doc,
    leaf: Leaf,
    /// Where the content of the last block written ended, to tell whether a blank line follows.
    last_end: usize,
    heading: bool,
    strong: u32,
    emphasis: u32,
    /// One entry per open emphasis: `None` if kept, else the source of its closing marker.
    delims: Vec<Option<Range<usize>>>,
    links: Vec<Link>,
    containers: Vec<Container>,
    /// One per open list: the next item's number, `None` for bullets.
    lists: Vec<Option<u64>>,
    buffer: Option<Buffer>,
}

impl<'a> Builder<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            src,
            doc: Doc::default(),
            leaf: Leaf::None,
            last_end: 0,
            heading: false,
            strong: 0,
            emphasis: 0,
            delims: Vec::new(),
            links: Vec::new(),
            containers: Vec::new(),
            lists: Vec::new(),
            buffer: None,
        }
    }

    fn event(&mut self, event: Event<'_>, range: Range<usize>) {
        let own_end = matches!(event, Event::End(TagEnd::Link | TagEnd::Image));
        if !own_end && self.links.last().is_some_and(|l| l.url.is_none() && !l.opened) {
            // The first thing inside a refused link: its opening goes first, as written.
            let link = self.links.last_mut().expect("checked above");
            link.opened = true;
            let opening = link.range.start..range.start.max(link.range.start);
            self.literal(opening);
        }
        let open_links = self.links.len();
        match event {
            Event::Start(tag) => self.start(tag, range.clone()),
            Event::End(tag) => self.end(tag),
            Event::Text(text) | Event::Html(text) | Event::InlineHtml(text) => match &mut self.buffer {
                Some(buffer) => {
                    buffer.text.push_str(&text);
                    buffer.end = trimmed_end(self.src, &range);
                }
                None => self.write(&text, &self.style(), &range),
            },
            Event::Code(code) => {
                let style = if self.style().link.is_some() {
                    self.style() // Telegram allows nothing around `code`; inside a link the link matters more.
                } else {
                    Style { code: true, ..Style::default() }
                };
                self.write(&code, &style, &range);
            }
            Event::SoftBreak | Event::HardBreak => {
                let mut line = String::from("\n");
                for c in &self.containers {
                    line.push_str(match c {
                        Container::Quote => "> ",
                        Container::Item { .. } => "  ",
                    });
                }
                self.write(&line, &self.style(), &range);
            }
            Event::Rule => {
                self.end_leaf();
                self.leaf = Leaf::Pending(range.start);
                self.write("———", &Style::default(), &range);
                self.end_leaf();
            }
            // Not enabled in the parser's options; shown as written should that ever change.
            Event::FootnoteReference(_) | Event::TaskListMarker(_) | Event::InlineMath(_) | Event::DisplayMath(_) => {
                self.literal(range.clone());
            }
        }
        // Everything up to here is inside the links that were open before this event (not a
        // link's own start or end, whose range is the whole link).
        let inside = open_links.min(self.links.len());
        for link in &mut self.links[..inside] {
            link.inner_end = link.inner_end.max(range.end);
        }
    }

    fn start(&mut self, tag: Tag<'_>, range: Range<usize>) {
        match tag {
            Tag::Paragraph => self.begin_leaf(range.start),
            Tag::Heading { .. } => {
                self.begin_leaf(range.start);
                self.heading = true;
            }
            Tag::CodeBlock(kind) => {
                self.begin_leaf(range.start);
                let lang = match kind {
                    CodeBlockKind::Fenced(info) => language(&info),
                    CodeBlockKind::Indented => String::new(),
                };
                self.buffer = Some(Buffer { pre: Some(lang), text: String::new(), end: range.start });
            }
            Tag::HtmlBlock => {
                self.begin_leaf(range.start);
                self.buffer = Some(Buffer { pre: None, text: String::new(), end: range.start });
            }
            Tag::BlockQuote(_) => {
                self.end_leaf();
                self.containers.push(Container::Quote);
            }
            Tag::List(first) => {
                self.end_leaf();
                self.lists.push(first);
            }
            Tag::Item => {
                self.end_leaf();
                let marker = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        // "1." or "1)", as the model wrote it.
                        let after = self.src[range.start..].trim_start_matches(|c: char| c.is_ascii_digit());
                        let delim = if after.starts_with(')') { ')' } else { '.' };
                        let marker = format!("{n}{delim} ");
                        *n = n.saturating_add(1);
                        marker
                    }
                    _ => "• ".to_owned(),
                };
                self.containers.push(Container::Item { marker, used: false });
            }
            Tag::Emphasis => self.open_emphasis(range, 1),
            Tag::Strong => self.open_emphasis(range, 2),
            Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. } => {
                let url = dest_url.into_string();
                let url = link_ok(&url).then_some(url);
                let cells = self.doc.cells.len();
                self.links.push(Link { url, inner_end: range.start, range, cells, opened: false });
            }
            // Not enabled in the parser's options: their content is shown plainly.
            Tag::Strikethrough
            | Tag::Superscript
            | Tag::Subscript
            | Tag::FootnoteDefinition(_)
            | Tag::Table(_)
            | Tag::TableHead
            | Tag::TableRow
            | Tag::TableCell
            | Tag::MetadataBlock(_)
            | Tag::DefinitionList
            | Tag::DefinitionListTitle
            | Tag::DefinitionListDefinition => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph => self.end_leaf(),
            TagEnd::Heading(_) => {
                self.end_leaf();
                self.heading = false;
            }
            TagEnd::CodeBlock | TagEnd::HtmlBlock => {
                if let Some(buffer) = self.buffer.take() {
                    let body = buffer.text.trim_end_matches('\n');
                    let style = match buffer.pre {
                        Some(lang) => Style { pre: Some(lang), ..Style::default() },
                        None => Style::default(),
                    };
                    if !body.trim().is_empty() {
                        self.write(body, &style, &(buffer.end..buffer.end));
                    }
                }
                self.end_leaf();
            }
            TagEnd::BlockQuote(_) | TagEnd::Item => {
                self.end_leaf();
                self.containers.pop();
            }
            TagEnd::List(_) => {
                self.end_leaf();
                self.lists.pop();
            }
            TagEnd::Emphasis => self.close_emphasis(|b| &mut b.emphasis),
            TagEnd::Strong => self.close_emphasis(|b| &mut b.strong),
            TagEnd::Link | TagEnd::Image => {
                let Some(link) = self.links.pop() else { return };
                match link.url {
                    // No text: the address is the text.
                    Some(url) if self.doc.cells.len() == link.cells => {
                        let style = Style { link: Some(url.clone()), ..self.style() };
                        self.write(&url, &style, &link.range);
                    }
                    Some(_) => {}
                    None if !link.opened => self.literal(link.range.clone()),
                    None => self.literal(link.inner_end.min(link.range.end)..link.range.end),
                }
            }
            TagEnd::Strikethrough
            | TagEnd::Superscript
            | TagEnd::Subscript
            | TagEnd::FootnoteDefinition
            | TagEnd::Table
            | TagEnd::TableHead
            | TagEnd::TableRow
            | TagEnd::TableCell
            | TagEnd::MetadataBlock(_)
            | TagEnd::DefinitionList
            | TagEnd::DefinitionListTitle
            | TagEnd::DefinitionListDefinition => {}
        }
    }

    /// The style of inline text here.
    fn style(&self) -> Style {
        Style {
            bold: self.heading || self.strong > 0,
            italic: self.emphasis > 0,
            link: self.links.iter().rev().find_map(|l| l.url.clone()),
            ..Style::default()
        }
    }

    /// The source in `range`, as written, in the style here.
    fn literal(&mut self, range: Range<usize>) {
        if let Some(text) = self.src.get(range.clone()) {
            let text = text.to_owned();
            self.write(&text, &self.style(), &range);
        }
    }

    fn open_emphasis(&mut self, range: Range<usize>, len: usize) {
        if emphasis_ok(self.src, &range, len) {
            if len == 1 {
                self.emphasis += 1;
            } else {
                self.strong += 1;
            }
            self.delims.push(None);
        } else {
            self.literal(range.start..range.start + len);
            self.delims.push(Some(range.end - len..range.end));
        }
    }

    fn close_emphasis(&mut self, depth: impl FnOnce(&mut Self) -> &mut u32) {
        match self.delims.pop() {
            Some(None) => {
                let d = depth(self);
                *d = d.saturating_sub(1);
            }
            Some(Some(closing)) => self.literal(closing),
            None => {}
        }
    }

    fn begin_leaf(&mut self, start: usize) {
        self.end_leaf();
        self.leaf = Leaf::Pending(start);
    }

    fn end_leaf(&mut self) {
        self.leaf = Leaf::None;
    }

    /// Writes `text` in `style` as part of the current block, which it opens if need be: the
    /// separator from the block before (a line break, two if the source had a blank line) and
    /// the prefix of the containers it is in.
    fn write(&mut self, text: &str, style: &Style, range: &Range<usize>) {
        if text.is_empty() {
            return;
        }
        if self.leaf != Leaf::Open {
            let start = match self.leaf {
                Leaf::Pending(start) => start,
                _ => range.start,
            };
            if !self.doc.cells.is_empty() {
                let gap = self.src.get(self.last_end.min(start)..start).unwrap_or("");
                let sep = if has_blank_line(gap) { "\n\n" } else { "\n" };
                self.doc.push(sep, &Style::default());
            }
            let mut prefix = String::new();
            for c in &mut self.containers {
                match c {
                    Container::Quote => prefix.push_str("> "),
                    Container::Item { marker, used: false } => {
                        prefix.push_str(marker);
                        *c = Container::Item { marker: std::mem::take(marker), used: true };
                    }
                    Container::Item { .. } => prefix.push_str("  "),
                }
            }
            self.doc.push(&prefix, &Style::default());
            self.leaf = Leaf::Open;
        }
        self.doc.push(text, style);
        self.last_end = self.last_end.max(trimmed_end(self.src, range));
    }
}

/// The end of `range` in `src` without trailing whitespace.
fn trimmed_end(src: &str, range: &Range<usize>) -> usize {
    src.get(range.clone()).map_or(range.end, |s| range.start + s.trim_end().len())
}

/// Whether `gap` (source between two blocks) holds a whole line that is empty but for
/// whitespace and quote markers.
fn has_blank_line(gap: &str) -> bool {
    let lines: Vec<&str> = gap.split('\n').collect();
    lines.len() > 2 && lines[1..lines.len() - 1].iter().any(|l| l.chars().all(|c| c.is_whitespace() || c == '>'))
}

/// A code block's language: the first word of its info string, only characters a language
/// name has, at most [`MAX_LANG`].
fn language(info: &str) -> String {
    info.split_whitespace()
        .next()
        .unwrap_or("")
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "_+#.-".contains(*c))
        .take(MAX_LANG)
        .collect()
}

/// Whether CommonMark's emphasis over `range` (markers of `len` at each end) is one we keep:
/// not inside a word, and each marker run as long as what it pairs with (a run of 2 is only
/// ever bold, a run of 3 both, longer runs nothing).
fn emphasis_ok(src: &str, range: &Range<usize>, len: usize) -> bool {
    let bytes = src.as_bytes();
    if range.end < range.start + 2 * len || range.end > bytes.len() {
        return true; // not the shape expected: trust the parser
    }
    let c = bytes[range.start];
    let (open, close) = (range.start..range.start + len, range.end - len..range.end);
    if !matches!(c, b'*' | b'_') || !bytes[open].iter().chain(&bytes[close]).all(|&b| b == c) {
        return true;
    }
    let before = src[..range.start].chars().next_back();
    let after = src[range.end..].chars().next();
    if before.is_some_and(char::is_alphanumeric) || after.is_some_and(char::is_alphanumeric) {
        return false;
    }
    [range.start, range.end - len].into_iter().all(|at| {
        let run = run_around(bytes, at, c);
        run <= 3 && !(run == 2 && len == 1)
    })
}

/// The length of the run of `c` that contains `bytes[at]`.
fn run_around(bytes: &[u8], at: usize, c: u8) -> usize {
    let left = bytes[..at].iter().rev().take_while(|&&b| b == c).count();
    let right = bytes[at..].iter().take_while(|&&b| b == c).count();
    left + right
}

/// A link target we keep: http(s) with a host, and nothing no real URL holds.
fn link_ok(url: &str) -> bool {
    if url.len() > MAX_URL || url.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"')) {
        return false;
    }
    let lower = url.to_ascii_lowercase();
    let rest = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://"));
    rest.is_some_and(|rest| !rest.is_empty() && !rest.starts_with(['/', '?', '#']))
}
