//! `figures --check`: the regenerated figures against the committed ones.
//! Compares the data and the claims, not the provenance (base commit, uncommitted changes) that
//! changes with every commit, and finds committed figure files that no
//! figure of the spec produces any more.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::figure::{FigureData, Series};
use crate::pipeline::{publication_paths, Run};
use crate::publication;
use crate::spec::{Paper, PublicationSpec};

/// Numbers match within a relative 1e-4 (absolute near zero): values are
/// already rounded to 6 significant digits, and the last bits of a float may
/// differ between CPUs (see the README's guarantees).
pub fn close(a: f64, b: f64) -> bool {
    // NaN marks an undefined measurement (a scalar): equal to itself here.
    a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-4 * a.abs().max(b.abs()).max(1.0)
}

const MAX_LISTED: usize = 8;

/// Human-readable differences, empty when the figures agree.
pub fn figures(committed: &FigureData, now: &FigureData) -> Vec<String> {
    let mut out = Vec::new();
    let same_text = [
        ("title", committed.title == now.title),
        ("caption", committed.caption == now.caption),
        ("panels (titles, axes, ranges)", committed.body.panels == now.body.panels),
        ("experiment config", committed.provenance.config == now.provenance.config),
        ("seeds", committed.provenance.seeds == now.provenance.seeds),
    ];
    out.extend(same_text.iter().filter(|(_, same)| !same).map(|(what, _)| format!("{what} changed")));
    for old in &committed.body.series {
        match now.body.series.iter().find(|s| s.name == old.name) {
            None => out.push(format!("series {:?} is gone", old.name)),
            Some(new) => series(old, new, &mut out),
        }
    }
    for new in &now.body.series {
        if !committed.body.series.iter().any(|s| s.name == new.name) {
            out.push(format!("series {:?} is new", new.name));
        }
    }
    for (name, old) in &committed.body.scalars {
        match now.body.scalars.get(name) {
            None => out.push(format!("scalar {name:?} is gone")),
            Some(new) if !close(*old, *new) => out.push(format!("scalar {name:?}: committed {old}, now {new}")),
            _ => {}
        }
    }
    for name in now.body.scalars.keys().filter(|k| !committed.body.scalars.contains_key(*k)) {
        out.push(format!("scalar {name:?} is new"));
    }
    for old in &committed.claims {
        match now.claims.iter().find(|c| c.name == old.name) {
            None => out.push(format!("claim {:?} is gone", old.name)),
            Some(new) => {
                if old.passed != new.passed {
                    out.push(format!(
                        "claim {:?}: committed {}, now {}",
                        old.name,
                        verdict(old.passed),
                        verdict(new.passed)
                    ));
                }
                if old.expected_to_pass != new.expected_to_pass {
                    out.push(format!("claim {:?}: its declared expectation changed", old.name));
                }
                if (&old.expected, &old.reason) != (&new.expected, &new.reason) {
                    out.push(format!("claim {:?}: its threshold or reason changed", old.name));
                }
                let same = match (old.measured, new.measured) {
                    (Some(a), Some(b)) => close(a, b),
                    (a, b) => a == b,
                };
                if !same {
                    out.push(format!(
                        "claim {:?}: measured {:?} committed, {:?} now",
                        old.name, old.measured, new.measured
                    ));
                }
                if old.class != new.class {
                    out.push(format!("claim {:?}: its class changed", old.name));
                }
                if (&old.control.counterfactual, old.control.passed)
                    != (&new.control.counterfactual, new.control.passed)
                {
                    out.push(format!(
                        "claim {:?}: its control ({}) {} committed, {} now",
                        old.name,
                        new.control.counterfactual,
                        verdict(old.control.passed),
                        verdict(new.control.passed)
                    ));
                }
            }
        }
    }
    for new in now.claims.iter().filter(|c| !committed.claims.iter().any(|o| o.name == c.name)) {
        out.push(format!("claim {:?} is new", new.name));
    }
    if committed.body.divergences != now.body.divergences {
        out.push(format!(
            "divergences: {} committed, {} now",
            committed.body.divergences.len(),
            now.body.divergences.len()
        ));
    }
    out
}

/// The committed figures/paper/<id>.pdf and .png against what the committed
/// JSON draws now, byte for byte (same data, same bytes): a stale file, a
/// changed size in paper.toml or changed drawing code shows here. Drawn
/// from the committed JSON, not from this run's numbers, so the last bits
/// of another CPU (within `close`) do not count.
fn publication_files(out_dir: &Path, id: &str, committed_json: &str, spec: &PublicationSpec) -> Vec<String> {
    let export = match publication::from_json(committed_json, spec) {
        Ok(export) => export,
        Err(e) => return vec![format!("its publication variant cannot be drawn: {e:#}")],
    };
    let mut out = Vec::new();
    for (path, now) in publication_paths(out_dir, id).iter().zip([&export.pdf, &export.png]) {
        match std::fs::read(path) {
            Err(e) => {
                out.push(format!("cannot read {}: {e} (run `cargo xtask figures` and commit it)", path.display()))
            }
            Ok(committed) if committed != *now => out.push(format!(
                "{} differs from what its JSON draws now ({} bytes committed, {} now)",
                path.display(),
                committed.len(),
                now.len()
            )),
            Ok(_) => {}
        }
    }
    out
}

fn verdict(passed: bool) -> &'static str {
    if passed {
        "passed"
    } else {
        "failed"
    }
}

fn series(old: &Series, new: &Series, out: &mut Vec<String>) {
    let name = &old.name;
    if (old.panel, old.source, old.style, old.legend, &old.color, &old.legend_label, &old.labels, &old.identical_to)
        != (new.panel, new.source, new.style, new.legend, &new.color, &new.legend_label, &new.labels, &new.identical_to)
    {
        out.push(format!(
            "series {name:?}: panel, source, style, colour, legend, legend label, labels or declared identity changed"
        ));
    }
    let mut listed = 0;
    let mut more = 0;
    let mut values = |what: &str, a: &[f64], b: &[f64]| {
        if a.len() != b.len() {
            out.push(format!("series {name:?}: {what} has {} values committed, {} now", a.len(), b.len()));
            return;
        }
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            if !close(*x, *y) {
                if listed < MAX_LISTED {
                    out.push(format!("series {name:?}: {what}[{i}] committed {x}, now {y}"));
                    listed += 1;
                } else {
                    more += 1;
                }
            }
        }
    };
    values("x", &old.x, &new.x);
    values("y", &old.y, &new.y);
    match (&old.band, &new.band) {
        (Some(a), Some(b)) => {
            values("band.lo", &a.lo, &b.lo);
            values("band.hi", &a.hi, &b.hi);
        }
        (None, None) => {}
        _ => out.push(format!("series {name:?}: band added or removed")),
    }
    if more > 0 {
        out.push(format!("series {name:?}: ... and {more} more differing values"));
    }
}

/// Compares each regenerated figure with the committed JSON, and the
/// committed publication files with what that JSON draws. Returns the
/// differences, per figure; empty when everything matches.
pub fn against_committed(out_dir: &Path, run: &Run) -> BTreeMap<String, Vec<String>> {
    let mut problems = BTreeMap::new();
    for ((data, _), spec) in run.figures.iter().zip(&run.publication) {
        let path = out_dir.join(format!("{}.json", data.id));
        let diffs = match std::fs::read_to_string(&path) {
            Err(e) => vec![format!("cannot read {}: {e} (run `cargo xtask figures` and commit it)", path.display())],
            Ok(text) => match serde_json::from_str::<FigureData>(&text) {
                Err(e) => vec![format!("{} does not parse as figure data: {e}", path.display())],
                Ok(committed) => {
                    let mut diffs = figures(&committed, data);
                    diffs.extend(publication_files(out_dir, &data.id, &text, spec));
                    diffs
                }
            },
        };
        if !diffs.is_empty() {
            problems.insert(data.id.clone(), diffs);
        }
    }
    problems
}

/// Figure files in `out_dir` that no figure of the spec produces (a figure
/// removed or renamed in paper.toml): `<id>.json` files that parse as figure
/// data, and the `<id>.svg` beside them, and `paper/<id>.pdf` and `.png`
/// (that folder is ours). Other files are not ours to judge.
pub fn orphans(paper: &Paper, out_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(out_dir.join("paper")) {
        for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else { continue };
            let ours = path.extension().is_some_and(|e| e == "pdf" || e == "png");
            if ours && !paper.figures.iter().any(|f| f.id() == stem) {
                out.push(path);
            }
        }
    }
    let Ok(entries) = std::fs::read_dir(out_dir) else {
        out.sort();
        return out;
    };
    for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else { continue };
        if path.extension().is_none_or(|e| e != "json") || paper.figures.iter().any(|f| f.id() == stem) {
            continue;
        }
        // Figure data of any schema version: an id and a provenance.
        let is_figure = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| v.get("id").is_some() && v.get("provenance").is_some());
        if is_figure {
            let svg = path.with_extension("svg");
            if svg.exists() {
                out.push(svg);
            }
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Removes [`orphans`], returning what it removed.
pub fn remove_orphans(paper: &Paper, out_dir: &Path) -> Result<Vec<PathBuf>> {
    let found = orphans(paper, out_dir);
    for path in &found {
        std::fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(found)
}
