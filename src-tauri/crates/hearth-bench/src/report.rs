//! Figures and how they are shown: latency summaries, the machine the bench ran on, the targets
//! from the benchmarks issue, and the human table.

use std::time::Duration;

use serde_json::{Value, json};

/// min / p50 / p90 / p99 / max of a set of durations, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Summary {
    pub fn of(durations: impl IntoIterator<Item = Duration>) -> Summary {
        let mut ms: Vec<f64> = durations.into_iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        Self::of_ms(&mut ms)
    }

    pub fn of_ms(ms: &mut [f64]) -> Summary {
        if ms.is_empty() {
            return Summary::default();
        }
        ms.sort_by(f64::total_cmp);
        // Nearest rank: the smallest value with at least p of the samples at or below it.
        let rank = |p: f64| ms[((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
        Summary {
            n: ms.len(),
            min: ms[0],
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: ms[ms.len() - 1],
            mean: ms.iter().sum::<f64>() / ms.len() as f64,
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "n": self.n, "min_ms": r2(self.min), "p50_ms": r2(self.p50), "p90_ms": r2(self.p90),
            "p99_ms": r2(self.p99), "max_ms": r2(self.max), "mean_ms": r2(self.mean),
        })
    }
}

/// Rounds to two decimals for JSON.
pub fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A duration in ms for a table: `0.84 ms`, `12.3 ms`, `2.01 s`.
pub fn ms(x: f64) -> String {
    if x >= 1000.0 {
        format!("{:.2} s", x / 1000.0)
    } else if x >= 10.0 {
        format!("{x:.1} ms")
    } else {
        format!("{x:.2} ms")
    }
}

/// A target from the issue, beside what this run measured.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub target: String,
    pub measured: String,
    /// `None` when this run did not measure it.
    pub met: Option<bool>,
}

impl Target {
    pub fn new(name: &str, target: &str, measured: String, met: Option<bool>) -> Self {
        Self { name: name.into(), target: target.into(), measured, met }
    }

    pub fn mark(&self) -> &'static str {
        match self.met {
            Some(true) => "✓",
            Some(false) => "✗",
            None => "–",
        }
    }

    pub fn json(&self) -> Value {
        json!({ "name": self.name, "target": self.target, "measured": self.measured, "met": self.met })
    }
}

/// What the bench ran on.
pub fn machine(hearth: &std::path::Path) -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_owned()))
        .unwrap_or_else(|| "unknown".into());
    let mhz = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("cpu MHz").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_owned()));
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_mb = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| (kb / 1024.0).round() as u64);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
    let os = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_owned()))
        .unwrap_or_default();
    let version = std::process::Command::new(hearth)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    let (soft, hard) = nofile_limit();
    json!({
        "cpu": cpu, "cpu_mhz": mhz, "cores": cores, "memory_mb": mem_mb, "kernel": kernel, "os": os,
        "hearth_version": version, "hearth_binary": hearth.display().to_string(), "build_profile": profile,
        "open_files_limit": { "soft": soft, "hard": hard },
        "load_average_at_start": load_average(),
        "started_at": chrono::Local::now().to_rfc3339(),
    })
}

/// A pretty JSON object with its keys in the order given.
pub fn ordered_json(fields: &[(&str, Value)]) -> serde_json::Result<String> {
    let mut out = String::from("{\n");
    for (i, (k, v)) in fields.iter().enumerate() {
        let value = serde_json::to_string_pretty(v)?.replace('\n', "\n  ");
        out.push_str(&format!(
            "  {}: {value}{}\n",
            serde_json::to_string(k)?,
            if i + 1 < fields.len() { "," } else { "" }
        ));
    }
    out.push('}');
    Ok(out)
}

/// The 1-, 5- and 15-minute load averages.
pub fn load_average() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .filter_map(|v| v.parse().ok())
        .collect()
}

fn nofile_limit() -> (u64, u64) {
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) };
    (l.rlim_cur, l.rlim_max)
}

/// A plain text table with aligned columns.
pub struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(head: &[&str]) -> Self {
        Self { head: head.iter().map(|s| s.to_string()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let cols = self.head.len();
        let width = |s: &str| s.chars().count();
        let mut w: Vec<usize> = self.head.iter().map(|h| width(h)).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(cols) {
                w[i] = w[i].max(width(c));
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::from(" ");
            for (i, c) in cells.iter().enumerate().take(cols) {
                s.push(' ');
                s.push_str(c);
                s.push_str(&" ".repeat(w[i] - width(c)));
                s.push(' ');
            }
            s.trim_end().to_owned() + "\n"
        };
        let mut out = line(&self.head);
        out.push_str(&format!("  {}\n", w.iter().map(|n| "-".repeat(*n)).collect::<Vec<_>>().join("  ")));
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let s = Summary::of((1..=100).map(Duration::from_millis));
        assert_eq!((s.min, s.p50, s.p90, s.p99, s.max), (1.0, 50.0, 90.0, 99.0, 100.0));
        let one = Summary::of([Duration::from_millis(7)]);
        assert_eq!((one.p50, one.p99), (7.0, 7.0));
        assert_eq!(Summary::of([]).n, 0);
    }

    #[test]
    fn json_keeps_the_order_given() {
        let text = ordered_json(&[("z", json!({"b": 1, "a": [1, 2]})), ("a", json!("x"))]).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, json!({"z": {"a": [1, 2], "b": 1}, "a": "x"}));
        assert!(text.find("\"z\"").unwrap() < text.find("\"a\": \"x\"").unwrap(), "{text}");
    }

    #[test]
    fn tables_align() {
        let mut t = Table::new(&["a", "bbb"]);
        t.row(vec!["xxxx".into(), "y".into()]);
        assert_eq!(t.render(), "  a     bbb\n  ----  ---\n  xxxx  y\n");
    }
}
