//! The gateway's shape, held: each top-level module imports only the modules the table below
//! allows — those beneath it on the message's path — so no lower layer reaches up and no two
//! folders import each other in a circle. It reads the crate's own sources: a `crate::x` (or
//! `crate::{x, …}`) in a module `x` may not use fails here, naming the file and line. (`super::`
//! is for a module's own folder; another module is named with `crate::`.)
//!
//! Also held: `impl Gateway` only in `gateway.rs`, and no source file over 800 lines (tests in
//! files of their own), `gateway.rs` under 500.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every top-level module and the modules it may import, bottom to top.
const LAYERS: &[(&str, &[&str])] = &[
    // Leaves: they import nothing above them.
    ("paths", &[]),
    ("clock", &[]),
    ("keeper", &[]),
    ("logs", &[]),
    ("data_dir", &[]),
    ("lock", &["paths"]),
    ("secrets", &["paths", "data_dir"]),
    // The database.
    ("store", &[]),
    // Telegram, and the reply renderer inside it (`telegram/reply/`).
    ("telegram", &["store"]),
    // Model calls and money.
    ("broker", &["store", "clock"]),
    // Pure decisions about a message.
    ("routing", &["store"]),
    // The household's own things beside the message path.
    ("household", &["store", "clock", "secrets", "lock", "paths"]),
    // Member workers.
    ("workers", &["broker", "household", "store", "clock", "keeper"]),
    // What the gateway is told at start, and the level decided from it.
    ("config", &["broker", "clock", "keeper", "secrets", "telegram"]),
    ("isolation", &["config", "paths", "data_dir"]),
    // The core loop.
    (
        "core",
        &["config", "routing", "workers", "broker", "telegram", "store", "household", "keeper", "paths", "secrets", "clock"],
    ),
    // The admin API.
    (
        "control",
        &[
            "core", "config", "routing", "workers", "broker", "telegram", "store", "household", "keeper", "paths",
            "data_dir", "secrets",
        ],
    ),
    // The wiring, and the crate's root.
    (
        "gateway",
        &[
            "core", "control", "config", "isolation", "keeper", "lock", "routing", "workers", "broker", "telegram",
            "store", "household", "paths", "data_dir", "secrets", "clock",
        ],
    ),
    ("lib", &["*"]),
];

/// Edges that point up the table, each with the reason it may for now. Every other edge must
/// point down. (None today.)
const UPWARDS: &[(&str, &str)] = &[];

/// Files that may be over the size limit for now, and why. (None today.)
const OVERSIZE: &[&str] = &[];

fn sources() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path, text));
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    walk(&root, &mut out);
    out.sort();
    out.into_iter().map(|(p, t)| (p.strip_prefix(&root).unwrap().to_owned(), t)).collect()
}

/// The top-level module a source file belongs to: `core/inbox.rs` → `core`, `gateway.rs` →
/// `gateway`.
fn module_of(path: &Path) -> String {
    let first = path.components().next().unwrap().as_os_str().to_str().unwrap();
    first.strip_suffix(".rs").unwrap_or(first).to_owned()
}

/// The crate's top-level modules a line names: `crate::x::…` and `crate::{x, y::…}`.
fn crate_paths(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() && name != "self" {
                    out.push(name);
                }
            }
        } else {
            let name: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
        rest = after;
    }
    out
}

/// Code lines (comments left out), numbered from 1.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim_start().starts_with("//"))
}

#[test]
fn every_module_imports_only_the_layers_below_it() {
    let table: BTreeMap<&str, BTreeSet<&str>> = LAYERS.iter().map(|(m, deps)| (*m, deps.iter().copied().collect())).collect();
    let mut wrong = Vec::new();
    for (path, text) in sources() {
        let module = module_of(&path);
        let Some(allowed) = table.get(module.as_str()) else {
            wrong.push(format!("{}: the module `{module}` is not in the LAYERS table; add it where it belongs", path.display()));
            continue;
        };
        for (n, line) in code_lines(&text) {
            for used in crate_paths(line) {
                let ok = used == module || allowed.contains("*") || allowed.contains(used.as_str());
                if !ok {
                    wrong.push(format!("{}:{n}: `{module}` may not import `{used}`: {}", path.display(), line.trim()));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layering:\n{}", wrong.join("\n"));
}

#[test]
fn the_layers_form_no_circle_and_point_down() {
    let position: BTreeMap<&str, usize> = LAYERS.iter().enumerate().map(|(i, (m, _))| (*m, i)).collect();
    let mut wrong = Vec::new();
    for (module, deps) in LAYERS {
        for dep in deps.iter().filter(|d| **d != "*") {
            let Some(&at) = position.get(dep) else {
                wrong.push(format!("`{module}` may import `{dep}`, which is not in the table"));
                continue;
            };
            if at >= position[module] && !UPWARDS.contains(&(module, dep)) {
                wrong.push(format!("`{module}` may import `{dep}`, which sits above it: move one of them"));
            }
        }
    }
    for (module, dep) in UPWARDS {
        let allowed = LAYERS.iter().find(|(m, _)| m == module).is_some_and(|(_, deps)| deps.contains(dep));
        assert!(allowed, "UPWARDS names {module} → {dep}, which the table does not allow: remove it from UPWARDS");
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_gateway_has_one_impl_and_files_stay_small() {
    let mut wrong = Vec::new();
    for (path, text) in sources() {
        let name = path.display().to_string();
        let impls = code_lines(&text).filter(|(_, l)| l.trim_start().starts_with("impl Gateway {")).count();
        if impls > 0 && name != "gateway.rs" {
            wrong.push(format!("{name}: `impl Gateway` outside gateway.rs; make it a function over the engine"));
        }
        let lines = text.lines().count();
        let limit = if name == "gateway.rs" { 500 } else { 800 };
        if lines > limit && !OVERSIZE.contains(&name.as_str()) {
            wrong.push(format!("{name}: {lines} lines, over {limit}; split it (tests may go in a file of their own)"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_reader_of_imports_reads_both_forms() {
    assert_eq!(crate_paths("use crate::store::{self, MemberRow};"), ["store"]);
    assert_eq!(crate_paths("use crate::{broker, core::Engine};"), ["broker", "core"]);
    assert_eq!(crate_paths("let x = crate::clock::system_timezone(); crate::keeper::panic_message(p)"), ["clock", "keeper"]);
    assert!(crate_paths("use super::Engine;").is_empty());
    assert_eq!(module_of(Path::new("core/inbox.rs")), "core");
    assert_eq!(module_of(Path::new("gateway.rs")), "gateway");
}
