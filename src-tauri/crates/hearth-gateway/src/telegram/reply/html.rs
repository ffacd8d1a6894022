//! Writing one chunk as Telegram HTML (and its plain-text fallback) from the styled cells.

use super::{Doc, ReplyChunk, Style};

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

/// The chunk of cells `start..end`: its HTML, and the plain text sent should Telegram refuse it.
pub(super) fn render_chunk(doc: &Doc, start: usize, end: usize, limit: usize) -> ReplyChunk {
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
