//! The result cache: one file per job, named by its key.
//!
//! Architecture Invariant: an entry is either absent or complete and
//! verified. Writes go to a temporary file that is renamed into place, and
//! every entry starts with a header line holding its key and the SHA-256 of
//! its body, so a truncated, corrupted or misplaced file is detected on read
//! and recomputed, never trusted.
//!
//! A process killed between creating its temporary file and renaming it
//! leaves a `.partial-<pid>-*.tmp` file behind. Such a file never has an
//! entry's name (`<key>.json`), so it is never read as one; the next process
//! that opens the directory removes those whose writer is gone.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

const MAGIC: &str = "learning-dynamics-cache v1";

pub struct Cache {
    dir: PathBuf,
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
        Ok(Cache { dir: dir.to_path_buf() })
    }

    pub fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Lookup<T> {
        read_entry(&self.path(key), key)
    }

    /// Stores a value atomically: a reader sees the old state or the new
    /// entry, never a partial one, even if this process is killed.
    pub fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        let body = serde_json::to_vec(value).context("cannot serialize a cache entry")?;
        let mut bytes = format!("{MAGIC} {key} {}\n", hex::encode(Sha256::digest(&body))).into_bytes();
        bytes.extend_from_slice(&body);
        write_atomically(&self.path(key), &bytes)
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

/// The name prefix of temporary files: `.partial-<pid>-`.
const PARTIAL: &str = ".partial-";

/// Creates `dir` if needed, checks that a file can be created in it (so a
/// run fails before any work, with the path in the message, rather than
/// after it), and removes temporary files of writers that are gone.
/// `what` names the directory in messages ("cache directory").
pub fn prepare_dir(dir: &Path, what: &str) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        anyhow::bail!("the {what} {} exists but is not a directory", dir.display());
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create the {what} {}", dir.display()))?;
    tempfile::Builder::new()
        .prefix(&partial_prefix())
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write to the {what} {}", dir.display()))?;
    remove_stale_partials(dir);
    Ok(())
}

fn partial_prefix() -> String {
    format!("{PARTIAL}{}-", std::process::id())
}

/// Removes `.partial-<pid>-*` files whose process no longer runs. Files of a
/// live process (a concurrent run still writing) are left alone. Best effort:
/// a file that cannot be removed is harmless, since it is never read.
pub fn remove_stale_partials(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(PARTIAL)).and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        let gone = match pid.parse::<u32>() {
            Ok(pid) => pid != std::process::id() && !process_alive(pid, &entry.path()),
            Err(_) => false,
        };
        if gone {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Whether process `pid` (the writer of `file`) may still be running. Where
/// processes cannot be listed, a temporary file older than a day is taken as
/// abandoned.
fn process_alive(pid: u32, file: &Path) -> bool {
    let proc = Path::new("/proc");
    if cfg!(target_os = "linux") && proc.join("self").exists() {
        return proc.join(pid.to_string()).exists();
    }
    let age = fs::metadata(file).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
    age.is_none_or(|a| a < std::time::Duration::from_secs(24 * 3600))
}

/// Writes `bytes` to `path` through a temporary file in the same directory
/// (named `.partial-<pid>-*.tmp`), flushed to disk, renamed into place, and
/// the directory flushed too: a reader sees the old file or the whole new
/// one, never a part, even if the process or the machine stops midway.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(&partial_prefix())
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Temporary files are private (0600); results are ordinary files.
        let _ = tmp.as_file().set_permissions(fs::Permissions::from_mode(0o644));
    }
    tmp.as_file().sync_all().with_context(|| format!("cannot flush {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot move the new {} into place", path.display()))?;
    // The rename is durable once the directory is flushed (best effort: not
    // every platform can open a directory).
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
