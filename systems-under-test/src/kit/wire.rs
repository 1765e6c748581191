//! Length-prefixed JSON frames over turmoil's simulated TCP: the one wire
//! format every system here speaks. A frame is a big-endian u32 length, then
//! that many bytes of JSON. Frames are bounded, so a corrupt length cannot
//! make a host allocate without limit.

use std::io;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Largest frame a host accepts.
pub const FRAME_BYTES_MAX: u32 = 1 << 20;

pub async fn write_frame<W, T>(writer: &mut W, message: &T) -> io::Result<()>
where
    W: AsyncWriteExt + Unpin,
    T: Serialize,
{
    let body = serde_json::to_vec(message).map_err(io::Error::other)?;
    let length = u32::try_from(body.len()).map_err(|_| io::Error::other("frame too large"))?;
    assert!(length <= FRAME_BYTES_MAX, "frames this crate writes stay under the limit");
    writer.write_all(&length.to_be_bytes()).await?;
    writer.write_all(&body).await?;
    writer.flush().await
}

/// Reads one frame; `Ok(None)` when the peer closed the stream cleanly first.
pub async fn read_frame<R, T>(reader: &mut R) -> io::Result<Option<T>>
where
    R: AsyncReadExt + Unpin,
    T: DeserializeOwned,
{
    let mut header = [0u8; 4];
    match reader.read_exact(&mut header).await {
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error),
    }
    let length = u32::from_be_bytes(header);
    if length > FRAME_BYTES_MAX {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {length} bytes is over the limit")));
    }
    let mut body = vec![0u8; length as usize];
    reader.read_exact(&mut body).await?;
    serde_json::from_slice(&body).map(Some).map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
}

/// An I/O error as a client reports it: its kind only, in fixed words. The
/// standard library's messages (and turmoil's, which name addresses) may
/// change between versions, and outcomes go into a run's digest.
pub fn describe(error: &io::Error) -> String {
    use io::ErrorKind as K;
    match error.kind() {
        K::ConnectionRefused => "connection refused".into(),
        K::ConnectionReset => "connection reset".into(),
        K::ConnectionAborted => "connection aborted".into(),
        K::NotConnected => "not connected".into(),
        K::BrokenPipe => "broken pipe".into(),
        K::TimedOut => "timed out".into(),
        K::UnexpectedEof => "connection closed".into(),
        K::InvalidData => "invalid data".into(),
        K::AddrInUse => "address in use".into(),
        K::AddrNotAvailable => "address not available".into(),
        other => format!("i/o error ({other:?})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_described_by_kind_only() {
        let error = io::Error::new(io::ErrorKind::ConnectionRefused, "192.168.0.3:7000 said no");
        assert_eq!(describe(&error), "connection refused");
        assert_eq!(describe(&io::Error::other("x")), "i/o error (Other)");
    }
}
