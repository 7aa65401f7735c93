//! Checks of a parsed spec against the files and the machine it will run on,
//! before anything is planned or trained: every data file has the SHA-256
//! its figure gives, and every job fits in memory. Each problem points at
//! the line to change, like the spec's own errors.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use sha2::Digest;
use toml::de::{DeTable, DeValue};

use crate::spec::{self, Paper, SpecError, SpecErrors};

/// Loads a spec to run it: parsed and validated (`spec::load`), its data
/// files checked against their SHA-256 ([`data_files`]) and its jobs against
/// `memory_limit` bytes ([`memory`]; `limit_source` says where the limit came
/// from, None checks no memory). Every command loads the spec this way.
pub fn load(path: &Path, memory_limit: Option<(f64, &str)>) -> anyhow::Result<Paper> {
    let paper = spec::load(path)?;
    // Data files now, at their line, not when their job runs after others trained.
    data_files(path, &paper)?;
    if let Some((limit, source)) = memory_limit {
        memory(path, &paper, limit, source)?;
    }
    Ok(paper)
}

/// A check's problem: where (a byte span of the spec's text) and what.
type Problem = (Range<usize>, String);

/// The spec's text, read again for the spans of the values the checks name
/// (it parsed once already, so it is valid TOML).
fn document(path: &Path) -> anyhow::Result<(String, PathBuf)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the figure specification {}: {e}", path.display()))?;
    Ok((text, path.to_path_buf()))
}

fn report(path: &Path, text: &str, mut problems: Vec<Problem>) -> Result<(), SpecErrors> {
    if problems.is_empty() {
        return Ok(());
    }
    problems.sort_by_key(|(span, _)| span.start);
    Err(SpecErrors(problems.into_iter().map(|(span, m)| spec::locate(path, text, span, m)).collect::<Vec<SpecError>>()))
}

/// The experiment table of figure `i`: `[figure.experiment.<kind>]`.
fn experiment<'a, 'i>(doc: &'a DeTable<'i>, i: usize, kind: &str) -> Option<&'a DeValue<'i>> {
    let figures = match doc.iter().find(|(k, _)| k.get_ref() == "figure")?.1.get_ref() {
        DeValue::Array(a) => a,
        _ => return None,
    };
    let experiment = entry(figures.get(i)?.get_ref(), "experiment")?;
    entry(experiment, kind)
}

fn entry<'a, 'i>(table: &'a DeValue<'i>, key: &str) -> Option<&'a DeValue<'i>> {
    match table {
        DeValue::Table(t) => t.iter().find(|(k, _)| k.get_ref() == key).map(|(_, v)| v.get_ref()),
        _ => None,
    }
}

/// One field of a table: its key, the key's span, the value's span, the value.
type Field<'a, 'i> = (String, Range<usize>, Range<usize>, &'a DeValue<'i>);

/// Every table under `value` (itself included) with its fields, for the checks below.
fn fields<'a, 'i>(value: &'a DeValue<'i>, out: &mut Vec<Vec<Field<'a, 'i>>>) {
    match value {
        DeValue::Table(t) => {
            out.push(t.iter().map(|(k, v)| (k.get_ref().to_string(), k.span(), v.span(), v.get_ref())).collect());
            for (_, v) in t.iter() {
                fields(v.get_ref(), out);
            }
        }
        DeValue::Array(a) => {
            for item in a.iter() {
                fields(item.get_ref(), out);
            }
        }
        _ => {}
    }
}

/// Every data file a figure reads (`data = "..."` beside `data_sha256 =
/// "..."` in any table of its experiment) has that SHA-256. Checked now, so a
/// wrong hash or a missing file stops the run at its line before any other
/// figure trains. Each file is hashed once.
pub fn data_files(path: &Path, paper: &Paper) -> anyhow::Result<()> {
    let (text, path) = document(path)?;
    let Ok(doc) = DeTable::parse(&text) else { return Ok(()) };
    let mut hashes: HashMap<String, Result<String, String>> = HashMap::new();
    let mut problems = Vec::new();
    for (i, fig) in paper.figures.iter().enumerate() {
        let Some(table) = experiment(doc.get_ref(), i, fig.experiment.name()) else { continue };
        let mut tables = Vec::new();
        fields(table, &mut tables);
        for table in tables {
            let string = |name: &str| {
                table.iter().find(|(k, ..)| k == name).and_then(|(_, _, span, v)| match v {
                    DeValue::String(s) => Some((span.clone(), s.to_string())),
                    _ => None,
                })
            };
            let (Some((_, file)), Some((sha_span, sha))) = (string("data"), string("data_sha256")) else { continue };
            let hash = hashes.entry(file.clone()).or_insert_with(|| {
                std::fs::read(&file)
                    .map(|bytes| hex::encode(sha2::Sha256::digest(&bytes)))
                    .map_err(|e| format!("cannot read the data file {file}: {e}"))
            });
            match hash {
                Err(why) => problems.push((sha_span, format!("figure {:?}: {why}", fig.id()))),
                Ok(h) if !h.eq_ignore_ascii_case(&sha) => problems.push((
                    sha_span,
                    format!(
                        "figure {:?}: {file} has SHA-256 {h}, not this one: the file is not the one the figure was made \
                         with (restore it, or put its new hash here to accept it)",
                        fig.id()
                    ),
                )),
                Ok(_) => {}
            }
        }
    }
    Ok(report(&path, &text, problems)?)
}

/// This machine's memory in bytes (Linux: MemTotal), if known, or less where
/// a container's limit (cgroup v2 `memory.max`, v1 `memory.limit_in_bytes`)
/// says so: the process is killed at that limit, not at MemTotal.
pub fn machine_memory() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    let container = ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok()?.trim().parse::<f64>().ok())
        .fold(f64::INFINITY, f64::min);
    Some((kib * 1024.0).min(container))
}

/// "1.5 GB", "7.3 TB".
pub fn bytes(n: f64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = n;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} {}", units[unit])
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// A count's key that is a size of the figure's problem (seeds, points,
/// widths, grid sides, classes); not steps (they cost time, not memory), a
/// seed (a value, not a number of things), a depth or a number of log points.
fn is_size(key: &str) -> bool {
    !(key.contains("steps")
        || key == "seed"
        || key.ends_with("_seed")
        || key.contains("depth")
        || key.starts_with("log")
        || key == "classes")
}

/// A size that counts networks rather than the size of one: the job's
/// member count already holds it.
fn counts_networks(key: &str) -> bool {
    key == "seed_count" || key == "count" || key.ends_with("_count")
}

/// An estimate of a job's memory: each of its networks holds at most its
/// weights (no more than the product of the two largest sizes per network
/// in the job's config, e.g. width x points), logged once per logged step
/// plus once for training, in 4-byte floats. Generous on purpose (a job near
/// the limit is refused rather than killed): the largest job of paper.toml,
/// the phase diagram's grid, is estimated at 1.4 GB.
pub fn job_bytes(job: &crate::kinds::Job) -> f64 {
    let mut sizes = Vec::new();
    let mut log_points = 1.0f64;
    collect_sizes(&job.config, "", &mut sizes, &mut log_points);
    sizes.sort_by(|a, b| b.total_cmp(a));
    let per_network = 4.0 * sizes.iter().take(2).product::<f64>() * (log_points + 1.0);
    job.members().max(1) as f64 * per_network
}

fn collect_sizes(value: &serde_json::Value, key: &str, sizes: &mut Vec<f64>, log_points: &mut f64) {
    match value {
        serde_json::Value::Object(map) => map.iter().for_each(|(k, v)| collect_sizes(v, k, sizes, log_points)),
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_sizes(v, key, sizes, log_points)),
        serde_json::Value::Number(n) if n.is_u64() => {
            let v = n.as_f64().unwrap_or(0.0);
            if key == "log_points" {
                *log_points = log_points.max(v);
            } else if is_size(key) && !counts_networks(key) {
                sizes.push(v);
            }
        }
        _ => {}
    }
}

/// Refuses, at its line, what cannot fit in `limit` bytes. First, before
/// anything is planned (planning a `seed_count` of 10^12 would abort the
/// process on allocation): a figure whose networks (`seed_count`) times its
/// two largest other sizes exceed the limit at 8 bytes each (a lower bound of
/// what its plan and its weights hold), at its largest size. Then every job whose
/// estimate ([`job_bytes`]) exceeds the limit, at its figure's `seed_count`
/// (or its id). `limit_source` says where the limit came from.
pub fn memory(path: &Path, paper: &Paper, limit: f64, limit_source: &str) -> anyhow::Result<()> {
    let (text, path) = document(path)?;
    let Ok(doc) = DeTable::parse(&text) else { return Ok(()) };
    let advice = format!(
        "more than the memory limit of {} ({limit_source}); make it smaller, or raise the limit with \
         --memory-limit GB on a machine with more memory",
        bytes(limit)
    );
    let mut problems = Vec::new();
    for (i, fig) in paper.figures.iter().enumerate() {
        let Some(table) = experiment(doc.get_ref(), i, fig.experiment.name()) else { continue };
        let mut tables = Vec::new();
        fields(table, &mut tables);
        // The largest value of each size key, with where it is.
        let mut sizes: Vec<(String, f64, Range<usize>)> = Vec::new();
        let mut seed_count = None;
        for (key, key_span, value_span, value) in tables.iter().flatten() {
            if key == "seed_count" && seed_count.is_none() {
                seed_count = Some(key_span.clone());
            }
            let items: Vec<(Range<usize>, &DeValue)> = match value {
                DeValue::Array(items) => items.iter().map(|item| (item.span(), item.get_ref())).collect(),
                v => vec![(value_span.clone(), v)],
            };
            for (span, v) in items {
                let DeValue::Integer(n) = v else { continue };
                let n = i128::from_str_radix(n.as_str(), n.radix()).map_or(0.0, |n| n as f64);
                if !is_size(key) || n < 1.0 {
                    continue;
                }
                match sizes.iter_mut().find(|(k, ..)| k == key) {
                    Some(s) if s.1 >= n => {}
                    Some(s) => *s = (key.clone(), n, span),
                    None => sizes.push((key.clone(), n, span)),
                }
            }
        }
        // A lower bound of what the plan and the weights hold: the networks (seed_count)
        // times the two largest other sizes (points x width, or width x width). Not the
        // product of every size: a figure's sizes do not all multiply (the GAN's batch,
        // width and evaluation samples are separate arrays), and that product refused
        // gan-ring at 2 GB for kilobytes of data.
        let mut others: Vec<f64> = sizes.iter().filter(|s| s.0 != "seed_count").map(|s| s.1).collect();
        others.sort_by(|a, b| b.total_cmp(a));
        let networks = sizes.iter().find(|s| s.0 == "seed_count").map_or(1.0, |s| s.1);
        let product: f64 = networks * others.iter().take(2).product::<f64>();
        if product * 8.0 > limit {
            let (key, n, span) = sizes.iter().max_by(|a, b| a.1.total_cmp(&b.1)).expect("a product > 1 has a size");
            let others: Vec<String> =
                sizes.iter().filter(|s| &s.0 != key).map(|s| format!("{} = {}", s.0, s.1)).collect();
            problems.push((
                span.clone(),
                format!(
                    "figure {:?}: {key} = {n} is too large: with the figure's other sizes ({}) it needs at least {} \
                     (8 bytes for each network times the two largest other sizes), {advice}",
                    fig.id(),
                    if others.is_empty() { "none".to_string() } else { others.join(", ") },
                    bytes(product * 8.0)
                ),
            ));
            continue;
        }
        let at = seed_count.unwrap_or_else(|| fig.id.span());
        for job in crate::kinds::numbered_jobs(fig.experiment.kind()) {
            let need = job_bytes(&job);
            if need > limit {
                problems.push((
                    at.clone(),
                    format!(
                        "figure {:?}, job {:?}: its {} networks need about {}, {advice}",
                        fig.id(),
                        job.name,
                        job.members(),
                        bytes(need)
                    ),
                ));
                break;
            }
        }
    }
    Ok(report(&path, &text, problems)?)
}
