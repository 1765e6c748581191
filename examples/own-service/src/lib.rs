//! A small key-value service, written the way a tokio service is written:
//! a TCP listener, one task per connection, a text protocol of one command
//! per line (`GET key`, `SET key value`, `INCR key`), and a shared map.
//!
//! `INCR` has a planted flaw, behind the `incr` setting: the textbook
//! version reads the value, records an audit entry (an await), then writes
//! the value plus one, so two increments of one key that overlap both read
//! the same value and one increment is lost. The fixed version holds the
//! key's lock across the read, the audit and the write.
//!
//! `faultline_system` (with the `simulation` feature) is the glue that lets
//! faultline run this service under faults: docs/own-system.md in the
//! faultline repository walks through it.

#[cfg(feature = "simulation")]
pub mod faultline_system;
pub mod net;

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

/// How `INCR` is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Incr {
    /// Read, audit, write: concurrent increments of one key can be lost.
    Racy,
    /// Read, audit and write under the key's lock.
    Locked,
}

/// The service's settings.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub incr: Incr,
    /// How long writing an audit entry takes.
    pub audit_delay: Duration,
}

/// The store: values by key, and a lock per key for locked increments.
#[derive(Default)]
pub struct Store {
    values: Mutex<BTreeMap<String, i64>>,
    locks: Mutex<BTreeMap<String, Rc<Mutex<()>>>>,
}

impl Store {
    async fn get(&self, key: &str) -> i64 {
        self.values.lock().await.get(key).copied().unwrap_or(0)
    }

    async fn set(&self, key: &str, value: i64) {
        self.values.lock().await.insert(key.to_string(), value);
    }

    async fn lock_of(&self, key: &str) -> Rc<Mutex<()>> {
        Rc::clone(self.locks.lock().await.entry(key.to_string()).or_default())
    }

    /// Increments `key` and returns its new value.
    async fn incr(&self, key: &str, config: &Config) -> i64 {
        let lock = self.lock_of(key).await;
        let _held = match config.incr {
            Incr::Locked => Some(lock.lock().await),
            Incr::Racy => None,
        };
        let value = self.get(key).await + 1;
        // The audit log is another service; writing to it takes a while.
        tokio::time::sleep(config.audit_delay).await;
        self.set(key, value).await;
        value
    }

    /// Answers one command line.
    pub async fn execute(&self, line: &str, config: &Config) -> String {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["GET", key] => format!("VALUE {}", self.get(key).await),
            ["SET", key, value] => match value.parse() {
                Ok(value) => {
                    self.set(key, value).await;
                    "OK".to_string()
                }
                Err(_) => format!("ERROR not a number: {value}"),
            },
            ["INCR", key] => format!("VALUE {}", self.incr(key, config).await),
            _ => format!("ERROR unknown command: {line}"),
        }
    }
}

/// Serves the protocol on `listener` until it fails. Single-threaded (one
/// `LocalSet`): the store is shared by `Rc`.
pub async fn serve(listener: net::TcpListener, config: Config) -> std::io::Result<()> {
    let store = Rc::new(Store::default());
    loop {
        let (stream, _) = listener.accept().await?;
        let store = Rc::clone(&store);
        tokio::task::spawn_local(async move {
            let _ = connection(stream, &store, &config).await;
        });
    }
}

async fn connection(stream: net::TcpStream, store: &Store, config: &Config) -> std::io::Result<()> {
    let (reader, mut writer) = tokio::io::split(stream);
    let mut lines = BufReader::new(reader).lines();
    while let Some(line) = lines.next_line().await? {
        let answer = store.execute(&line, config).await;
        writer.write_all(format!("{answer}\n").as_bytes()).await?;
        writer.flush().await?;
    }
    Ok(())
}

/// Sends one command on a fresh connection and returns the answer line.
pub async fn request(host: &str, port: u16, command: &str) -> std::io::Result<String> {
    let stream = net::TcpStream::connect((host, port)).await?;
    let (reader, mut writer) = tokio::io::split(stream);
    writer.write_all(format!("{command}\n").as_bytes()).await?;
    writer.flush().await?;
    let mut lines = BufReader::new(reader).lines();
    lines.next_line().await?.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed"))
}
