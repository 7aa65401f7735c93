//! The result cache: one file per job, named by its key.
//!
//! Architecture Invariant: an entry is either absent or complete and
//! verified. Writes go to a temporary file that is renamed into place, and
//! every entry starts with a header line holding its key and the SHA-256 of
//! its body, so a truncated, corrupted or misplaced file is detected on read
//! and recomputed, never trusted.
//!
//! Writes go through `files::write_atomically`; a process killed midway
//! leaves a `.partial-<pid>_<host>-*.tmp` file that never has an entry's name
//! (`<key>.json`), so it is never read as one (see `files`).
//!
//! With a remote (`remote.rs`), a local miss is looked up there: an entry
//! that comes back is verified like a local file (header, key, checksum)
//! before it is kept locally and served; a damaged one is reported and
//! recomputed. What this run computes is stored there too if the remote
//! writes.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::files::{prepare_dir, write_atomically};
use crate::remote::{Fetched, Remote};

const MAGIC: &str = "learning-dynamics-cache v1";

pub struct Cache {
    dir: PathBuf,
    remote: Option<Remote>,
}

/// What a lookup found.
pub enum Lookup<T> {
    Hit(T),
    Miss,
    /// The entry exists but cannot be trusted; it will be recomputed.
    Damaged(String),
}

impl Cache {
    /// Opens (creating it if needed) a cache directory, checks that it can
    /// be written to, and removes what killed writers left behind.
    pub fn open(dir: &Path) -> Result<Cache> {
        prepare_dir(dir, "cache directory")?;
        Ok(Cache { dir: dir.to_path_buf(), remote: None })
    }

    /// The same cache, reading through to `remote` (and writing to it if it writes).
    pub fn with_remote(self, remote: Option<Remote>) -> Cache {
        Cache { remote, ..self }
    }

    /// What went wrong with the remote since the last call (unreachable, slow,
    /// refusing writes, a damaged entry), for the run to report.
    pub fn remote_problems(&self) -> Vec<String> {
        self.remote.as_ref().map_or_else(Vec::new, Remote::take_problems)
    }

    pub fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// Every entry's key and size in bytes, by key: the files named
    /// `<key>.json` with a 64-hex-digit key (temporary files never are).
    pub fn entries(&self) -> Result<Vec<(String, u64)>> {
        let mut entries = Vec::new();
        let listing = fs::read_dir(&self.dir).with_context(|| format!("cannot list {}", self.dir.display()))?;
        for item in listing {
            let item = item.with_context(|| format!("cannot list {}", self.dir.display()))?;
            let name = item.file_name().to_string_lossy().into_owned();
            let Some(key) = name.strip_suffix(".json") else { continue };
            if key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()) {
                let size = item.metadata().map_or(0, |m| m.len());
                entries.push((key.to_string(), size));
            }
        }
        entries.sort();
        Ok(entries)
    }

    /// Removes one entry (gone already counts as removed).
    pub fn remove(&self, key: &str) -> Result<()> {
        match fs::remove_file(self.path(key)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove {}", self.path(key).display()))
            }
            _ => Ok(()),
        }
    }

    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Lookup<T> {
        let local = read_entry(&self.path(key), key);
        let Some(remote) = &self.remote else { return local };
        if matches!(local, Lookup::Hit(_)) {
            return local;
        }
        match remote.fetch(key) {
            Fetched::Found(bytes) => match decode(key, &bytes) {
                Ok(value) => {
                    // Kept locally as it came, verified: the next run needs no network.
                    if let Err(e) = write_atomically(&self.path(key), &bytes) {
                        remote.note(format!("{}: not kept locally: {e:#}", remote.url(key)));
                    }
                    Lookup::Hit(value)
                }
                Err(why) => Lookup::Damaged(format!("remote entry {}: {why}", remote.url(key))),
            },
            Fetched::Absent | Fetched::Failed => local,
        }
    }

    /// Stores a value atomically: a reader sees the old state or the new
    /// entry, never a partial one, even if this process is killed.
    pub fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        let body = serde_json::to_vec(value).context("cannot serialize a cache entry")?;
        let mut bytes = format!("{MAGIC} {key} {}\n", hex::encode(Sha256::digest(&body))).into_bytes();
        bytes.extend_from_slice(&body);
        write_atomically(&self.path(key), &bytes)?;
        if let Some(remote) = &self.remote {
            remote.store(key, &bytes);
        }
        Ok(())
    }
}

/// Reads and verifies the entry at `path`, which must hold `key`. Touches
/// nothing else in its directory.
pub fn read_entry<T: DeserializeOwned>(path: &Path, key: &str) -> Lookup<T> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Lookup::Miss,
        Err(e) => return Lookup::Damaged(format!("cannot read {}: {e}", path.display())),
    };
    match decode(key, &bytes) {
        Ok(v) => Lookup::Hit(v),
        Err(why) => Lookup::Damaged(format!("{}: {why}", path.display())),
    }
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> std::result::Result<T, String> {
    let newline = bytes.iter().position(|&b| b == b'\n').ok_or("no header line")?;
    let header = std::str::from_utf8(&bytes[..newline]).map_err(|_| "header is not text")?;
    let body = &bytes[newline + 1..];
    let mut parts = header.rsplitn(3, ' ');
    let (checksum, found_key, magic) = (parts.next(), parts.next(), parts.next());
    if magic != Some(MAGIC) {
        return Err("not a cache entry of this program (bad header)".into());
    }
    if found_key != Some(key) {
        return Err(format!("entry holds key {}, not the key it is filed under", found_key.unwrap_or("?")));
    }
    if checksum != Some(hex::encode(Sha256::digest(body)).as_str()) {
        return Err("checksum mismatch (truncated or corrupted)".into());
    }
    serde_json::from_slice(body).map_err(|e| format!("body does not parse: {e}"))
}
