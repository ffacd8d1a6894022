//! The example commands a `--help` text shows, as argument lists: what `hearth-cli`'s tests
//! parse with clap (every example, daemons included) and run against a test gateway (the rest),
//! so an example that fails is caught.
//!
//! An example is a line that starts with `hearth ` (or `sudo hearth `) once indented, continued
//! on the next line after a trailing `\` as in a shell (so a long one fits the help's width and
//! still pastes as one command). A note after it in the help ("      (then, as alice)") and a
//! shell redirect (`> usage.csv`) are not part of the command; double quotes group words as a
//! shell would. A usage line (`hearth usage <COMMAND>`) is the command's form, not an example.

/// Every example in `help`, each as its words from `hearth` on (without `sudo`).
pub fn help_examples(help: &str) -> Vec<Vec<String>> {
    let mut lines = Vec::new();
    let mut continued: Option<String> = None;
    for line in help.lines() {
        let line = match continued.take() {
            Some(head) => format!("{head} {}", line.trim()),
            None => line.to_owned(),
        };
        match line.trim_end().strip_suffix('\\') {
            Some(head) => continued = Some(head.trim_end().to_owned()),
            None => lines.push(line),
        }
    }
    lines.extend(continued);
    lines.iter().filter_map(|l| example(l)).collect()
}

fn example(line: &str) -> Option<Vec<String>> {
    let line = line.trim();
    let line = line.strip_prefix("sudo ").unwrap_or(line);
    if !line.starts_with("hearth ") {
        return None;
    }
    // A note after the command, set off by a wide gap.
    let line = line.split("   ").next().unwrap_or(line);
    let mut words = Vec::new();
    let (mut word, mut quoted, mut any) = (String::new(), false, false);
    for c in line.chars() {
        match c {
            '"' => (quoted, any) = (!quoted, true),
            c if c.is_whitespace() && !quoted => {
                if any || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                any = false;
            }
            c => word.push(c),
        }
    }
    if any || !word.is_empty() {
        words.push(word);
    }
    // A usage line ("hearth usage <COMMAND>", "[OPTIONS]") shows the form, not an example.
    let placeholder = |w: &String| w.len() > 2 && (w.starts_with('<') || w.starts_with('['));
    if words.iter().any(placeholder) {
        return None;
    }
    // A shell redirect ends the command.
    if let Some(at) = words.iter().position(|w| w == ">" || w == "<" || w == "|") {
        words.truncate(at);
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_are_read_like_a_shell_reads_them() {
        let help = "Usage: hearth usage [OPTIONS]\n       hearth usage <COMMAND>\n\nChange a member.\n\nExamples:\n  hearth member set Mia --persona \"Mia is 8.\" --role child\n  \
                    sudo hearth supervisor --admin-user alice\n  hearth serve --x y      (then, as alice)\n  \
                    hearth usage export --month 2026-10 > usage.csv\n  hearth member set Mia --persona \"\"\n  \
                    hearth price set m --in 3 \\\n      --out 15\n\
                    The hearth is warm.\n";
        let words = |s: &[&str]| s.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        assert_eq!(
            help_examples(help),
            vec![
                words(&["hearth", "member", "set", "Mia", "--persona", "Mia is 8.", "--role", "child"]),
                words(&["hearth", "supervisor", "--admin-user", "alice"]),
                words(&["hearth", "serve", "--x", "y"]),
                words(&["hearth", "usage", "export", "--month", "2026-10"]),
                words(&["hearth", "member", "set", "Mia", "--persona", ""]),
                words(&["hearth", "price", "set", "m", "--in", "3", "--out", "15"]),
            ]
        );
    }
}
