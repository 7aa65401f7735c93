//! Files written whole or not at all: every output of a run (cache
//! entries, figures, the gallery) goes through `write_atomically`.
//!
//! A process killed between creating its temporary file and renaming it
//! leaves a `.partial-<pid>_<host>-*.tmp` file behind. Such a file never has
//! the name of a real output, so it is never read as one; the next process
//! on the same host that prepares the directory removes those whose writer
//! is gone. A file of another host (a cache on a file system that cluster
//! nodes share) is left alone for a day: its writer's pid means nothing here.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// The name prefix of temporary files: `.partial-<pid>_<host>-`.
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
    format!("{PARTIAL}{}_{}-", std::process::id(), host())
}

/// This machine's name, letters and digits only (so that it never holds the
/// `-` and `_` that delimit it in a temporary file's name).
fn host() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        let name = fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_default();
        let name: String = name.trim().chars().filter(char::is_ascii_alphanumeric).collect();
        if name.is_empty() {
            "unknown".to_string()
        } else {
            name
        }
    })
}

/// Removes `.partial-<pid>_<host>-*` files of this host whose process no
/// longer runs, and those of other hosts (or of unreadable names) older than
/// a day. Files of a live process (a concurrent run still writing) are left
/// alone. Best effort: a file that cannot be removed is harmless, since it is
/// never read. (`.partial-<pid>-*`, without a host, counts as this host's.)
pub fn remove_stale_partials(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(writer) = name.to_str().and_then(|n| n.strip_prefix(PARTIAL)).and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        let (pid, writer_host) = writer.split_once('_').unwrap_or((writer, host()));
        let gone = match pid.parse::<u32>() {
            Ok(pid) if writer_host == host() => pid != std::process::id() && !process_alive(pid, &entry.path()),
            _ => older_than_a_day(&entry.path()),
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
    !older_than_a_day(file)
}

fn older_than_a_day(file: &Path) -> bool {
    let age = fs::metadata(file).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
    age.is_some_and(|a| a >= std::time::Duration::from_secs(24 * 3600))
}

/// Writes `bytes` to `path` through a temporary file in the same directory
/// (named `.partial-<pid>_<host>-*.tmp`), flushed to disk, renamed into place, and
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_hosts_files_of_gone_writers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: String| {
            let path = dir.path().join(name);
            fs::write(&path, b"partial").unwrap();
            path
        };
        // A pid far above any live one: gone on this host, unknown on another.
        let dead_here = file(format!("{PARTIAL}4294967_{}-abc.tmp", host()));
        let old_format = file(format!("{PARTIAL}4294967-abc.tmp"));
        let live_here = file(format!("{}abc.tmp", partial_prefix()));
        let other_host = file(format!("{PARTIAL}4294967_othernode7-abc.tmp"));
        remove_stale_partials(dir.path());
        assert!(!dead_here.exists() && !old_format.exists(), "this host's gone writers are cleaned up");
        assert!(live_here.exists(), "a live writer's file is kept");
        assert!(other_host.exists(), "another node's writer may still be running: its file is kept");
    }
}
