//! How full the disk holding the data folder is, for the admins' alerts and the heartbeat: the
//! same share the app's host line shows (used blocks over all blocks, space reserved for root
//! counted as used), read with `statvfs` on the folder itself, so no mount table is searched.

use std::path::Path;

/// The disk is "nearly full" from this share on…
pub const FULL_PERCENT: u8 = 90;
/// …and has room again below this one, so a disk hovering at 90 % is not told every few minutes.
pub const ROOM_PERCENT: u8 = 88;

/// Percent of the disk holding `path` that is in use (0–100).
pub fn used_percent(path: &Path) -> std::io::Result<u8> {
    let st = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    let (total, available) = (st.blocks() as u128, st.blocks_available() as u128);
    if total == 0 {
        return Ok(0);
    }
    Ok((100 * total.saturating_sub(available)).div_ceil(total).min(100) as u8)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_data_folder_disk_is_measured() {
        let dir = tempfile::tempdir().unwrap();
        let used = super::used_percent(dir.path()).unwrap();
        assert!(used <= 100);
        assert!(super::used_percent(&dir.path().join("missing")).is_err());
    }
}
