//! How busy the host machine is, for the menu-bar line "Host CPU 3% · memory 41% · disk 62%".
//! Sampled at most every few seconds: CPU use is measured between two samples, and a glance does
//! not need more.

use std::path::Path;
use std::time::{Duration, Instant};

use sysinfo::{Disks, System};

use crate::ipc::HostLoad;

const EVERY: Duration = Duration::from_secs(5);

pub struct Host {
    system: System,
    /// How full the disk is said to be instead of measuring it (tests).
    disk_pct: Option<f64>,
    last: Option<(Instant, HostLoad)>,
}

impl Host {
    /// `disk_pct`: a fixed value for the disk instead of measuring it, so a test can show a
    /// nearly full disk without filling one; `None` measures.
    pub fn new(disk_pct: Option<f64>) -> Host {
        let mut system = System::new();
        // The first CPU sample is the baseline the next one is measured against.
        system.refresh_cpu_usage();
        Host { system, disk_pct, last: None }
    }

    /// The current load; `None` when the system does not report memory (it always does on
    /// macOS and Linux).
    pub fn load(&mut self, data_dir: &Path) -> Option<HostLoad> {
        if let Some((at, load)) = &self.last
            && at.elapsed() < EVERY
        {
            return Some(load.clone());
        }
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        let total = self.system.total_memory();
        if total == 0 {
            return None;
        }
        let memory_pct = 100.0 * (total.saturating_sub(self.system.available_memory())) as f64 / total as f64;
        let load = HostLoad { cpu_pct: f64::from(self.system.global_cpu_usage()), memory_pct, disk_pct: self.disk_pct.unwrap_or_else(|| disk_pct(data_dir)) };
        self.last = Some((Instant::now(), load.clone()));
        Some(load)
    }
}

/// How full the disk holding `path` is: the mounted disk with the longest mount point that
/// contains it.
fn disk_pct(path: &Path) -> f64 {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let disks = Disks::new_with_refreshed_list();
    disks
        .list()
        .iter()
        .filter(|d| path.starts_with(d.mount_point()) && d.total_space() > 0)
        .max_by_key(|d| d.mount_point().as_os_str().len())
        .map(|d| 100.0 * (d.total_space() - d.available_space()) as f64 / d.total_space() as f64)
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn load_is_in_range() {
        let mut h = super::Host::new(None);
        let load = h.load(std::path::Path::new("/")).expect("memory is reported");
        for v in [load.cpu_pct, load.memory_pct, load.disk_pct] {
            assert!((0.0..=100.0).contains(&v), "{load:?}");
        }
        assert!(load.memory_pct > 0.0);
    }

    #[test]
    fn a_given_disk_fill_is_reported_as_is() {
        let mut h = super::Host::new(Some(91.0));
        assert_eq!(h.load(std::path::Path::new("/")).expect("memory is reported").disk_pct, 91.0);
    }
}
