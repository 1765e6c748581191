//! An append-only log of records on turmoil's simulated disk: what a
//! database's write-ahead log or a broker's journal keeps.
//!
//! turmoil 0.7.2's disk rules (its `unstable-fs`, which the harness turns on):
//! a write is pending until the file is synced (`sync_all`/`sync_data`); a
//! `crash` discards everything pending, while a `restart` (a bounce) loses
//! nothing; a new file (or a renamed one) also needs its parent directory
//! synced (`sync_dir`) to survive a crash, else the crash removes it whole;
//! `read_dir` returns entries in a hash set's order, so sort what it gives.
//! [`Log::open`] follows the rules: it syncs a new file and its directory.
//!
//! A record is framed like a network message (a big-endian u32 length, then
//! JSON). A torn or unreadable tail (a crash mid-append cannot leave one in
//! turmoil 0.7.2, but a real disk can) is cut off at open.

use std::io;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use turmoil::fs::shim::tokio::fs::{self, File, OpenOptions};

use super::wire::FRAME_BYTES_MAX;

/// When a log's appends become durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// Sync after every append, before it is acknowledged.
    Always,
    /// Sync on a timer: a crash loses up to one interval of appends.
    Batch,
    /// Never sync: a crash loses everything since the log was created.
    Never,
}

/// An open append-only log.
pub struct Log {
    file: File,
    path: PathBuf,
    /// Where the next record goes.
    end: u64,
    /// Records appended and not yet synced.
    unsynced: u64,
}

impl Log {
    /// Opens (or creates) the log at `path` and reads back every whole record.
    pub async fn open<T: DeserializeOwned>(path: impl AsRef<Path>) -> io::Result<(Log, Vec<T>)> {
        let path = path.as_ref().to_path_buf();
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("/")).to_path_buf();
        if !fs::try_exists(&parent).await? {
            fs::create_dir_all(&parent).await?;
            fs::sync_dir("/").await?;
        }
        let existed = fs::try_exists(&path).await?;
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).await?;
        if !existed {
            file.sync_all().await?;
            fs::sync_dir(&parent).await?;
        }
        let bytes = fs::read(&path).await?;
        let (records, good) = parse::<T>(&bytes);
        if good < bytes.len() as u64 {
            file.set_len(good).await?;
            file.sync_all().await?;
        }
        Ok((Log { file, path, end: good, unsynced: 0 }, records))
    }

    /// Appends a record; pending until [`Log::sync`].
    pub async fn append<T: Serialize>(&mut self, record: &T) -> io::Result<()> {
        let body = serde_json::to_vec(record).map_err(io::Error::other)?;
        let length = u32::try_from(body.len()).ok().filter(|l| *l <= FRAME_BYTES_MAX);
        let length = length.ok_or_else(|| io::Error::other("a log record is over the frame limit"))?;
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame.extend_from_slice(&length.to_be_bytes());
        frame.extend_from_slice(&body);
        let written = self.file.write_at(&frame, self.end).await?;
        if written != frame.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "a short write to the log"));
        }
        self.end += frame.len() as u64;
        self.unsynced += 1;
        Ok(())
    }

    /// Makes every appended record durable.
    pub async fn sync(&mut self) -> io::Result<()> {
        if self.unsynced > 0 {
            self.file.sync_data().await?;
            self.unsynced = 0;
        }
        Ok(())
    }

    /// Records appended since the last sync (what a crash now would lose).
    pub fn unsynced(&self) -> u64 {
        self.unsynced
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Every whole record of a log's bytes, and where the whole ones end.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> (Vec<T>, u64) {
    let mut records = Vec::new();
    let mut at = 0usize;
    while at + 4 <= bytes.len() {
        let length = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("four bytes")) as usize;
        let Some(body) = bytes.get(at + 4..at + 4 + length) else { break };
        let Ok(record) = serde_json::from_slice(body) else { break };
        records.push(record);
        at += 4 + length;
    }
    (records, at as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_tail_is_cut_off() {
        let mut bytes = Vec::new();
        for value in [1u32, 2, 3] {
            let body = serde_json::to_vec(&value).unwrap();
            bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
            bytes.extend_from_slice(&body);
        }
        let whole = bytes.len() as u64;
        bytes.extend_from_slice(&[0, 0, 0, 9, b'4']);
        let (records, good) = parse::<u32>(&bytes);
        assert_eq!(records, vec![1, 2, 3]);
        assert_eq!(good, whole);
    }
}
