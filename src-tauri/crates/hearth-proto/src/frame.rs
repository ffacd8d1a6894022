//! Length-prefixed JSON frames: a 4-byte big-endian payload length, then that many bytes of
//! UTF-8 JSON. One frame is one message. A frame longer than [`MAX_FRAME`] is refused before it
//! is read, so a confused or hostile peer cannot make the reader allocate without bound.

use serde::{Serialize, de::DeserializeOwned};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest payload accepted: generous for a long conversation prompt, small enough to bound
/// memory per connection.
pub const MAX_FRAME: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("peer closed the connection")]
    Closed,
    #[error("frame of {0} bytes is over the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    /// Over a reader's own, smaller limit ([`read_frame_limited`]).
    #[error("frame of {len} bytes is over this socket's {max}-byte limit")]
    OverLimit { len: usize, max: usize },
    #[error("frame is not valid: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes one value as a complete frame (length prefix included).
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, FrameError> {
    let body = serde_json::to_vec(value)?;
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLarge(body.len()));
    }
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Writes one frame and flushes it.
pub async fn write_frame<W, T>(w: &mut W, value: &T) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let bytes = encode(value)?;
    w.write_all(&bytes).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one frame. A clean end of stream before the first length byte is [`FrameError::Closed`];
/// an end of stream in the middle of a frame is an I/O error.
pub async fn read_frame<R, T>(r: &mut R) -> Result<T, FrameError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(decode(&body)?)
}

/// Reads one frame of at most `max` bytes (and never more than [`MAX_FRAME`]) and returns it with
/// its payload's size, so a reader that bounds each message kind on its own can check it. A
/// longer frame is refused with [`FrameError::OverLimit`] before its body is read or allocated.
pub async fn read_frame_limited<R, T>(r: &mut R, max: usize) -> Result<(T, usize), FrameError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    let max = max.min(MAX_FRAME);
    if len > max {
        return Err(FrameError::OverLimit { len, max });
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok((decode(&body)?, len))
}

/// Decodes a frame payload (without its length prefix).
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::{GatewayToWorker, WorkerToGateway};

    #[tokio::test]
    async fn round_trip_over_a_socket_pair() {
        let (mut a, mut b) = tokio::net::UnixStream::pair().unwrap();
        let sent = WorkerToGateway::Hello { version: crate::PROTOCOL_VERSION, claimed_member: None };
        write_frame(&mut a, &sent).await.unwrap();
        let got: WorkerToGateway = read_frame(&mut b).await.unwrap();
        assert_eq!(got, sent);
        drop(a);
        let end = read_frame::<_, WorkerToGateway>(&mut b).await;
        assert!(matches!(end, Err(FrameError::Closed)), "{end:?}");
    }

    #[tokio::test]
    async fn oversized_length_is_refused_without_reading() {
        let (mut a, mut b) = tokio::net::UnixStream::pair().unwrap();
        a.write_all(&(u32::MAX).to_be_bytes()).await.unwrap();
        let got = read_frame::<_, GatewayToWorker>(&mut b).await;
        assert!(matches!(got, Err(FrameError::TooLarge(n)) if n == u32::MAX as usize), "{got:?}");
    }

    #[tokio::test]
    async fn a_limited_reader_refuses_more_than_its_limit_and_reports_the_size() {
        let (mut a, mut b) = tokio::net::UnixStream::pair().unwrap();
        let sent = WorkerToGateway::Hello { version: 1, claimed_member: Some("x".repeat(100)) };
        write_frame(&mut a, &sent).await.unwrap();
        let size = encode(&sent).unwrap().len() - 4;
        let (got, len) = read_frame_limited::<_, WorkerToGateway>(&mut b, size).await.unwrap();
        assert_eq!((got, len), (sent.clone(), size));
        write_frame(&mut a, &sent).await.unwrap();
        let got = read_frame_limited::<_, WorkerToGateway>(&mut b, size - 1).await;
        assert!(matches!(got, Err(FrameError::OverLimit { len, max }) if len == size && max == size - 1), "{got:?}");
        // The limit never exceeds the global one.
        a.write_all(&((MAX_FRAME + 1) as u32).to_be_bytes()).await.unwrap();
        let got = read_frame_limited::<_, WorkerToGateway>(&mut b, usize::MAX).await;
        assert!(matches!(got, Err(FrameError::OverLimit { max: MAX_FRAME, .. })), "{got:?}");
    }

    #[tokio::test]
    async fn garbage_payload_is_a_decode_error() {
        let (mut a, mut b) = tokio::net::UnixStream::pair().unwrap();
        a.write_all(&3u32.to_be_bytes()).await.unwrap();
        a.write_all(b"{x}").await.unwrap();
        let got = read_frame::<_, GatewayToWorker>(&mut b).await;
        assert!(matches!(got, Err(FrameError::Decode(_))), "{got:?}");
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = decode::<GatewayToWorker>(&bytes);
            let _ = decode::<WorkerToGateway>(&bytes);
            let _ = decode::<crate::control::ControlRequest>(&bytes);
        }
    }
}
