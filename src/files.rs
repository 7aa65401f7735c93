//! Files written whole or not at all: every output of a run (cache
//! entries, figures, the gallery) goes through `write_atomically`.
//!
//! A process killed between creating its temporary file and renaming it
//! leaves a `.partial-<pid>-*.tmp` file behind. Such a file never has the
//! name of a real output, so it is never read as one; the next process that
//! prepares the directory removes those whose writer is gone.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

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
