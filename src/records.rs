//! What each job was when it last ran: its key, config, seeds, the hashes of
//! the code its key covers, and how long it took. Kept beside the cache (in
//! `<cache dir>/records/`, one small file per figure and job, written whole),
//! so a run can say why a job runs again ("config changed: learning_rate",
//! "code changed: src/kinds/gan.rs") and `status` and `plan` can estimate
//! what is left from what earlier runs took.
//!
//! A record is a note, not a result: nothing is computed from it, a missing
//! or unreadable one only makes the explanation "new" and the estimate a
//! model's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::files::{prepare_dir, write_atomically};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub figure: String,
    pub job: String,
    pub key: String,
    pub config: Value,
    pub seeds: Vec<u64>,
    /// The files the job's key covers: path -> SHA-256.
    pub files: BTreeMap<String, String>,
    pub networks: usize,
    /// Wall time of the job's training (0 until it has run).
    pub seconds: f64,
}

/// `<cache dir>/records/`, beside the cache entries (which are `<key>.json`
/// in the cache directory itself).
pub fn dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("records")
}

fn path(cache_dir: &Path, figure: &str, job: &str) -> PathBuf {
    let name = hex::encode(Sha256::digest(format!("{figure}\0{job}").as_bytes()));
    dir(cache_dir).join(format!("{}.json", &name[..32]))
}

/// The record of the job's last run, if there is a readable one.
pub fn read(cache_dir: &Path, figure: &str, job: &str) -> Option<JobRecord> {
    let text = std::fs::read(path(cache_dir, figure, job)).ok()?;
    serde_json::from_slice::<JobRecord>(&text).ok().filter(|r| r.figure == figure && r.job == job)
}

pub fn write(cache_dir: &Path, record: &JobRecord) -> Result<()> {
    prepare_dir(&dir(cache_dir), "records directory")?;
    let bytes = serde_json::to_vec_pretty(record).context("cannot serialize a job record")?;
    write_atomically(&path(cache_dir, &record.figure, &record.job), &bytes)
}

/// Why a job that is not cached runs, in words: "new", "config changed: a, b",
/// "code changed: src/x.rs", ...; `previous` is its last record, `now` what it is.
pub fn why(previous: Option<&JobRecord>, now: &JobRecord) -> String {
    let Some(before) = previous else { return "new".into() };
    let mut reasons = Vec::new();
    let config: Vec<String> = changed_values(&before.config, &now.config).into_iter().map(|c| c.path).collect();
    if !config.is_empty() {
        reasons.push(format!("config changed: {}", config.join(", ")));
    }
    let code = changed_files(&before.files, &now.files);
    if !code.is_empty() {
        reasons.push(format!("code changed: {}", code.join(", ")));
    }
    if before.seeds != now.seeds {
        reasons.push("seeds changed".into());
    }
    if reasons.is_empty() {
        reasons.push(if before.key == now.key {
            "not in the cache (removed, or another cache directory)".into()
        } else {
            "build changed (toolchain, target, flags or profile)".into()
        });
    }
    reasons.join("; ")
}

/// One value that differs between two configs: its dotted path (list items
/// by index), and the old and new values where there was one.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangedValue {
    pub path: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

impl std::fmt::Display for ChangedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<Value>| v.as_ref().map_or("(none)".to_string(), Value::to_string);
        write!(f, "{} {} -> {}", self.path, show(&self.old), show(&self.new))
    }
}

/// Every leaf value that differs between `old` and `new`, by path.
pub fn changed_values(old: &Value, new: &Value) -> Vec<ChangedValue> {
    let mut out = Vec::new();
    walk("", Some(old), Some(new), &mut out);
    out
}

fn walk(path: &str, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<ChangedValue>) {
    let child = |key: &str| if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                walk(&child(key), a.get(key), b.get(key), out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                walk(&format!("{path}[{i}]"), Some(x), Some(y), out);
            }
        }
        (a, b) if a != b => out.push(ChangedValue { path: path.to_string(), old: a.cloned(), new: b.cloned() }),
        _ => {}
    }
}

/// The files whose hash differs, or that one side lacks, by path.
pub fn changed_files(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<String> {
    let paths: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    paths
        .into_iter()
        .filter(|p| old.get(*p) != new.get(*p))
        .map(|p| match (old.contains_key(p), new.contains_key(p)) {
            (false, _) => format!("{p} (new)"),
            (_, false) => format!("{p} (removed)"),
            _ => p.clone(),
        })
        .collect()
}
