//! Fetching a member's file from Telegram: `getFile`, then `GET {api}/file/bot<token>/<path>`
//! through the bot's own client (which follows no redirect), into memory.
//!
//! The bytes never touch the gateway's disk: they go to the member's worker, which alone writes
//! into `members/<id>/`. The download is capped while it streams — at [`MAX_ATTACHMENT_BYTES`]
//! (the Bot API serves no more) or less when the member's folder has less room — and the size
//! Telegram states is checked before anything is fetched. The file's URL holds the bot token,
//! so no error from here carries a URL.

use std::time::Duration;

use futures_util::StreamExt as _;
use hearth_proto::worker::MAX_ATTACHMENT_BYTES;
use teloxide::net::Download as _;
use teloxide::requests::Requester;
use teloxide::types::FileId;
use teloxide::{ApiError, Bot, RequestError};

/// Longest a whole download may take (20 MB at a slow 200 KB/s is under two minutes).
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(150);

/// Longest `getFile` may take.
const GET_FILE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the limit applies, for the member's sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// What Telegram lets a bot download.
    Telegram,
    /// What is left of the member's disk quota.
    Quota,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownloadError {
    /// Over the limit: `size` is Telegram's stated size, or at least what arrived before the
    /// download was cut off.
    #[error("the file ({size:?} bytes) is over the {limit}-byte limit ({why:?})")]
    TooLarge { size: Option<u64>, limit: u64, why: Limit },
    #[error("the file is empty")]
    Empty,
    #[error("the download stopped after {got} of {expected} bytes")]
    Truncated { got: u64, expected: u64 },
    /// Telegram does not have (or no longer has) the file.
    #[error("Telegram refused the file: {0}")]
    Refused(String),
    #[error("could not reach Telegram: {0}")]
    Unreachable(String),
}

impl DownloadError {
    /// What the member reads: plain, naming the limit when there is one.
    pub fn member_sentence(&self) -> String {
        match self {
            DownloadError::TooLarge { size, limit, why: Limit::Telegram } => match size {
                Some(size) => {
                    format!("That file is {}; I can take files up to {}.", megabytes(*size), megabytes(*limit))
                }
                None => format!("That file is too big for me; I can take files up to {}.", megabytes(*limit)),
            },
            DownloadError::TooLarge { size, limit, why: Limit::Quota } => {
                let what =
                    size.map_or_else(|| "That file".to_owned(), |s| format!("That file is {} and", megabytes(s)));
                let left =
                    if *limit == 0 { "no room left".to_owned() } else { format!("only {} left", megabytes(*limit)) };
                format!(
                    "{what} won't fit: your space here has {left}. Ask whoever runs Hearth at home for more room, or delete some files."
                )
            }
            DownloadError::Empty => {
                "That file arrived empty (0 bytes), so there is nothing in it for me. Could you send it again?"
                    .to_owned()
            }
            DownloadError::Truncated { .. } => {
                "That file didn't come through completely. Could you send it again?".to_owned()
            }
            DownloadError::Refused(_) => {
                "Telegram wouldn't give me that file (it may be too old). Could you send it again?".to_owned()
            }
            DownloadError::Unreachable(_) => {
                "I couldn't fetch that file from Telegram just now. Please send it again in a moment.".to_owned()
            }
        }
    }

    /// The inbox outcome a row closed by this error gets.
    pub fn outcome(&self) -> &'static str {
        match self {
            DownloadError::TooLarge { why: Limit::Telegram, .. } => "file_too_large",
            DownloadError::TooLarge { why: Limit::Quota, .. } => "file_over_quota",
            DownloadError::Empty => "file_empty",
            DownloadError::Truncated { .. } => "file_truncated",
            DownloadError::Refused(_) => "file_refused",
            DownloadError::Unreachable(_) => "file_unreachable",
        }
    }
}

/// `bytes` as people say it: "23 MB", "2.5 MB", "300 KB" (binary units, as Telegram counts).
pub fn megabytes(bytes: u64) -> String {
    const MB: u64 = 1024 * 1024;
    if bytes >= 10 * MB {
        format!("{} MB", (bytes + MB / 2) / MB)
    } else if bytes >= MB {
        format!("{:.1} MB", bytes as f64 / MB as f64)
    } else {
        format!("{} KB", bytes.div_ceil(1024))
    }
}

/// Fetches the file `file_id` into memory. `stated` is the size the message said (checked
/// first); `room` what the member's folder still takes (`None`: no quota). Never more than
/// [`MAX_ATTACHMENT_BYTES`] nor `room` is read.
pub async fn download(
    bot: &Bot,
    file_id: &str,
    stated: Option<u64>,
    room: Option<u64>,
) -> Result<Vec<u8>, DownloadError> {
    let (limit, why) = match room {
        Some(room) if room < MAX_ATTACHMENT_BYTES => (room, Limit::Quota),
        _ => (MAX_ATTACHMENT_BYTES, Limit::Telegram),
    };
    let over = |size: Option<u64>| DownloadError::TooLarge { size, limit, why };
    if let Some(size) = stated.filter(|s| *s > limit) {
        return Err(over(Some(size)));
    }
    let file = match tokio::time::timeout(GET_FILE_TIMEOUT, bot.get_file(FileId(file_id.to_owned()))).await {
        Err(_) => return Err(DownloadError::Unreachable("getFile took too long".into())),
        Ok(Ok(file)) => file,
        Ok(Err(RequestError::Api(ApiError::Unknown(d)))) if d.to_ascii_lowercase().contains("too big") => {
            return Err(over(stated));
        }
        Ok(Err(RequestError::Api(e))) => return Err(DownloadError::Refused(e.to_string())),
        // teloxide takes the token out of a network error's URL; `Display` of the rest has none.
        Ok(Err(e)) => return Err(DownloadError::Unreachable(e.to_string())),
    };
    // teloxide reads a missing size as u32::MAX: then nothing is expected but the cap.
    let expected = match file.meta.size {
        u32::MAX => 0,
        size => u64::from(size),
    };
    if expected > limit {
        return Err(over(Some(expected)));
    }
    let fetch = async {
        let mut bytes: Vec<u8> = Vec::with_capacity(expected.min(limit) as usize);
        let mut stream = bot.download_file_stream(&file.path);
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => {
                    if bytes.len() as u64 + chunk.len() as u64 > limit {
                        return Err(over(Some(bytes.len() as u64 + chunk.len() as u64)));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Err(e) if bytes.is_empty() && e.is_connect() => {
                    return Err(DownloadError::Unreachable(e.without_url().to_string()));
                }
                Err(e) if e.is_status() => {
                    return Err(DownloadError::Refused(e.without_url().to_string()));
                }
                Err(_) => return Err(DownloadError::Truncated { got: bytes.len() as u64, expected }),
            }
        }
        Ok(bytes)
    };
    let bytes = tokio::time::timeout(DOWNLOAD_TIMEOUT, fetch)
        .await
        .map_err(|_| DownloadError::Unreachable("the download took too long".into()))??;
    if bytes.is_empty() {
        return Err(DownloadError::Empty);
    }
    if expected > 0 && bytes.len() as u64 != expected {
        return Err(DownloadError::Truncated { got: bytes.len() as u64, expected });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_the_way_people_say_them() {
        assert_eq!(megabytes(MAX_ATTACHMENT_BYTES), "20 MB");
        assert_eq!(megabytes(23 * 1024 * 1024 + 100), "23 MB");
        assert_eq!(megabytes(2_621_440), "2.5 MB");
        assert_eq!(megabytes(300 * 1024), "300 KB");
    }

    #[test]
    fn the_member_hears_the_limit_plainly() {
        let e =
            DownloadError::TooLarge { size: Some(23 * 1024 * 1024), limit: MAX_ATTACHMENT_BYTES, why: Limit::Telegram };
        assert_eq!(e.member_sentence(), "That file is 23 MB; I can take files up to 20 MB.");
        let e = DownloadError::TooLarge { size: Some(5 * 1024 * 1024), limit: 1024 * 1024, why: Limit::Quota };
        assert!(e.member_sentence().contains("only 1.0 MB left"), "{}", e.member_sentence());
        // What went wrong underneath is for the log, never the member.
        for e in [DownloadError::Refused("detail-7".into()), DownloadError::Unreachable("detail-7".into())] {
            assert!(!e.member_sentence().contains("detail-7"), "{e}");
        }
    }
}
