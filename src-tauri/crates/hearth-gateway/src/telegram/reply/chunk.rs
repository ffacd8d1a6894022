//! Splitting a [`Doc`] into chunks of at most `limit` UTF-16 units of visible text, at the best
//! break the chunk allows.

use unicode_segmentation::UnicodeSegmentation;

use super::{Cell, Doc, is_blank};

/// Chunk boundaries as cell ranges, each with at most `limit` UTF-16 units and at least one
/// non-blank character.
pub(super) fn ranges(doc: &Doc, limit: usize) -> Vec<(usize, usize)> {
    let cells = &doc.cells;
    let n = cells.len();
    let in_pre = |i: usize| doc.style(&cells[i]).pre.is_some();
    let boundaries = grapheme_boundaries(cells);
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
        let cut = if end == n { n } else { best_cut(doc, &boundaries, solid + 1, end) };
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
/// latest character boundary that does not split a grapheme cluster, else `hi`.
fn best_cut(doc: &Doc, boundaries: &[bool], lo: usize, hi: usize) -> usize {
    let cells = &doc.cells;
    let pre = |i: Option<usize>| i.and_then(|i| cells.get(i)).map(|c| doc.style(c).pre.is_some());
    let mut best = (-1, hi);
    for p in (lo..=hi).rev() {
        let c = cells[p].ch;
        let level = if c == '\n' {
            let blank_line = cells.get(p + 1).is_some_and(|n| n.ch == '\n');
            let block_edge = pre(p.checked_sub(1)) != pre(Some(p + 1));
            if blank_line || block_edge { 3 } else { 2 }
        } else if c.is_whitespace() {
            1
        } else if boundaries[p] {
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

/// For each cell, whether an extended grapheme cluster (UAX #29) starts there, so a cut before
/// it keeps emoji sequences, flags and combining marks whole. One more entry for the end.
fn grapheme_boundaries(cells: &[Cell]) -> Vec<bool> {
    let text: String = cells.iter().map(|c| c.ch).collect();
    let mut boundaries = vec![false; cells.len() + 1];
    let mut cell = 0;
    for grapheme in text.graphemes(true) {
        boundaries[cell] = true;
        cell += grapheme.chars().count();
    }
    boundaries[cell] = true;
    boundaries
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telegram::reply::Style;

    fn doc(text: &str) -> Doc {
        let mut doc = Doc::default();
        doc.push(text, &Style::default());
        doc
    }

    #[test]
    fn grapheme_clusters_are_whole() {
        // e + combining acute, a family (ZWJ sequence), a flag, a thumbs-up with a skin tone,
        // Devanagari "ksha" (conjunct with a virama), a keycap.
        let text = "e\u{301}👨\u{200D}👩\u{200D}👧🇩🇪👍🏽क्ष1\u{FE0F}\u{20E3}";
        let d = doc(text);
        let starts: Vec<usize> =
            grapheme_boundaries(&d.cells).iter().enumerate().filter_map(|(i, &b)| b.then_some(i)).collect();
        assert_eq!(starts, vec![0, 2, 7, 9, 11, 14, 17]);
    }

    #[test]
    fn a_hard_split_never_cuts_a_cluster_when_a_boundary_fits() {
        // Three flags (4 units each) at a limit of 6: one flag per chunk, never half of one.
        let d = doc("🇩🇪🇫🇷🇮🇹");
        let texts: Vec<String> =
            ranges(&d, 6).into_iter().map(|(s, e)| d.cells[s..e].iter().map(|c| c.ch).collect()).collect();
        assert_eq!(texts, vec!["🇩🇪", "🇫🇷", "🇮🇹"]);
        // Accented letters written with combining marks stay with their letter.
        let d = doc("e\u{301}e\u{301}e\u{301}");
        let texts: Vec<String> =
            ranges(&d, 3).into_iter().map(|(s, e)| d.cells[s..e].iter().map(|c| c.ch).collect()).collect();
        assert_eq!(texts, vec!["e\u{301}", "e\u{301}", "e\u{301}"]);
    }
}
