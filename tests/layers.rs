//! Imports run one way (ARCHITECTURE.md, "Imports run one way"): every
//! module of src/ is given a layer, and may name (`crate::x`,
//! `learning_dynamics::x`, `use crate::{x, ..}`) only modules of lower
//! layers. A new module fails here until it is placed.

use std::collections::BTreeMap;
use std::path::Path;

/// Layer of each top-level module (a folder counts as one module).
const LAYERS: &[(&str, usize)] = &[
    // Leaves: they name nothing of the crate.
    ("values", 0),
    ("stats", 0),
    ("rng", 0),
    ("files", 0),
    ("provenance", 0),
    ("datasets", 0),
    ("suggest", 0),
    ("remote", 0),
    ("theory", 1),
    ("figure", 1),
    ("cache", 1),
    ("records", 1),
    ("caption", 2),
    ("shapes", 2),
    ("engine", 2),
    ("kinds", 3),
    ("spec", 4),
    ("claims", 5),
    ("render", 5),
    ("preflight", 5),
    ("publication", 6),
    ("lint", 7),
    ("pipeline", 8),
    ("check", 9),
    ("gallery", 9),
    ("status", 9),
    ("slurm", 10),
    ("main", 11),
    ("bin", 11),
    ("lib", 12),
];

/// The module a source file belongs to: `src/kinds/sigmoid.rs` -> `kinds`.
fn module_of(path: &str) -> &str {
    let rest = path.strip_prefix("src/").unwrap();
    rest.split('/').next().unwrap().trim_end_matches(".rs")
}

/// Every module a file names, comments left out.
fn named_modules(source: &str) -> Vec<String> {
    let code: String = source.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
    let mut out = Vec::new();
    for prefix in ["crate::", "learning_dynamics::"] {
        for (at, _) in code.match_indices(prefix) {
            let rest = &code[at + prefix.len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // The group's top-level items, then each one's first segment.
                let (mut depth, mut items, mut item) = (0, Vec::new(), String::new());
                for c in group.chars() {
                    match c {
                        '}' if depth == 0 => break,
                        ',' if depth == 0 => items.push(std::mem::take(&mut item)),
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    if depth == 0 && c != ',' && c != '}' || depth > 0 {
                        item.push(c);
                    }
                }
                items.push(item);
                out.extend(items.iter().map(|i| {
                    i.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>()
                }));
            } else {
                out.push(rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect());
            }
        }
    }
    out.retain(|m| !m.is_empty() && m != "self");
    out
}

fn sources(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            out.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
        }
    }
}

#[test]
fn every_module_names_only_lower_layers() {
    let layers: BTreeMap<&str, usize> = LAYERS.iter().copied().collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    let mut problems = Vec::new();
    for file in &files {
        let module = module_of(file);
        let own = *layers.get(module).unwrap_or_else(|| panic!("{file}: module {module:?} has no layer in LAYERS"));
        let source = std::fs::read_to_string(root.join(file)).unwrap();
        for named in named_modules(&source) {
            if named == module {
                continue;
            }
            match layers.get(named.as_str()) {
                Some(&layer) if layer < own => {}
                Some(&layer) => problems.push(format!("{file} ({module}, layer {own}) names {named} (layer {layer})")),
                None => problems.push(format!("{file} names {named:?}, which has no layer")),
            }
        }
    }
    assert!(problems.is_empty(), "imports that run up or sideways:\n{}", problems.join("\n"));
}

#[test]
fn the_layer_check_sees_imports() {
    let names = named_modules(
        "use crate::{engine::{self, TrainLog}, figure};\nlet x = crate::stats::mean(&y); // crate::spec\n",
    );
    assert_eq!(names, ["engine", "figure", "stats"]);
}
