//! The pipeline end to end on the small configurations: the cache (hit,
//! miss, invalidation, damage), determinism, and `--check`.

mod common;

use learning_dynamics::pipeline::{self, Run};
use learning_dynamics::{check, figure::FigureData};

/// The figures' data as JSON, where an undefined (NaN) scalar is null and so
/// equal to itself.
fn data(run: &Run) -> Vec<serde_json::Value> {
    run.figures.iter().map(|(d, _)| serde_json::to_value(d).unwrap()).collect()
}

fn cached(run: &Run) -> Vec<(String, usize, usize)> {
    run.reports.iter().map(|r| (r.id.clone(), r.cached, r.jobs)).collect()
}

#[test]
fn cold_then_warm_then_one_value_changed() {
    let dir = tempfile::tempdir().unwrap();
    let paper = common::small_paper();
    let cold = common::run(&paper, dir.path(), 2);
    assert_eq!(cached(&cold), vec![("phase-diagram".into(), 0, 2), ("sigmoid-error".into(), 0, 5)]);

    let warm = common::run(&paper, dir.path(), 2);
    assert_eq!(cached(&warm), vec![("phase-diagram".into(), 2, 2), ("sigmoid-error".into(), 5, 5)]);
    assert!(data(&cold) == data(&warm), "a warm run gives the cold run's data, bit for bit");
    assert_eq!(cold.figures[0].1, warm.figures[0].1, "same data, same SVG bytes");

    // One value of one model of one figure: only that job recomputes.
    let text = common::small_spec_text().replace("init.random = { scale = 0.5 }", "init.random = { scale = 0.6 }");
    let changed = common::run(&common::parse(&text), dir.path(), 2);
    assert_eq!(cached(&changed), vec![("phase-diagram".into(), 2, 2), ("sigmoid-error".into(), 4, 5)]);

    // A value every phase-diagram job reads: that figure only.
    let text = common::small_spec_text().replace("learning_rate = 0.01", "learning_rate = 0.012");
    let changed = common::run(&common::parse(&text), dir.path(), 2);
    assert_eq!(cached(&changed), vec![("phase-diagram".into(), 0, 2), ("sigmoid-error".into(), 5, 5)]);

    // Titles, captions, rendering, claims and values read only by the theory
    // are not inputs of the training.
    let text = common::small_spec_text()
        .replace("width = 1000", "width = 900")
        .replace("Small test configuration.", "Another caption.")
        .replace("theory_dt = 0.1", "theory_dt = 0.05")
        .replace("boundary_distance = 0.1", "boundary_distance = 0.2");
    let restyled = common::run(&common::parse(&text), dir.path(), 2);
    assert_eq!(cached(&restyled), vec![("phase-diagram".into(), 2, 2), ("sigmoid-error".into(), 5, 5)]);

    // --force recomputes, and gets the same bits.
    let mut opts = common::options(dir.path(), 2);
    opts.force = true;
    let forced = pipeline::run(&paper, &opts, &|_| {}).unwrap();
    assert_eq!(cached(&forced), vec![("phase-diagram".into(), 0, 2), ("sigmoid-error".into(), 0, 5)]);
    assert!(data(&forced) == data(&cold));
}

#[test]
fn only_limits_the_run_and_rejects_unknown_ids() {
    let dir = tempfile::tempdir().unwrap();
    let paper = common::small_paper();
    let mut opts = common::options(dir.path(), 1);
    opts.only = vec!["sigmoid-error".into()];
    let run = pipeline::run(&paper, &opts, &|_| {}).unwrap();
    assert_eq!(run.figures.len(), 1);
    opts.only = vec!["sigmoid".into()];
    let err = pipeline::run(&paper, &opts, &|_| {}).err().unwrap().to_string();
    assert!(err.contains("no figure with id \"sigmoid\"") && err.contains("phase-diagram, sigmoid-error"), "{err}");
}

#[test]
fn damaged_entries_are_detected_and_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    let paper = common::small_paper();
    let cold = common::run(&paper, dir.path(), 2);
    let planned = pipeline::plan(&pipeline::select(&paper, &[]).unwrap());
    let entry = |i: usize| dir.path().join(format!("{}.json", planned[i].shards[0].key));

    // Truncated, corrupted in the body, and a foreign entry under this key.
    let bytes = std::fs::read(entry(0)).unwrap();
    std::fs::write(entry(0), &bytes[..bytes.len() / 2]).unwrap();
    let mut corrupted = std::fs::read(entry(2)).unwrap();
    let last = corrupted.len() - 3;
    corrupted[last] ^= 0x01;
    std::fs::write(entry(2), corrupted).unwrap();
    std::fs::copy(entry(4), entry(3)).unwrap();

    let again = common::run(&paper, dir.path(), 2);
    let damaged: usize = again.reports.iter().map(|r| r.damaged.len()).sum();
    assert_eq!(damaged, 3);
    assert_eq!(cached(&again), vec![("phase-diagram".into(), 1, 2), ("sigmoid-error".into(), 3, 5)]);
    assert!(data(&again) == data(&cold), "recomputed entries give the same data");
    // And the repaired entries are hits again.
    let healed = common::run(&paper, dir.path(), 2);
    assert_eq!(cached(&healed), vec![("phase-diagram".into(), 2, 2), ("sigmoid-error".into(), 5, 5)]);
}

#[test]
fn same_bits_whatever_the_thread_count() {
    let paper = common::small_paper();
    let runs: Vec<Vec<serde_json::Value>> = [1, 2, 3]
        .iter()
        .map(|&threads| {
            let dir = tempfile::tempdir().unwrap();
            data(&common::run(&paper, dir.path(), threads))
        })
        .collect();
    assert!(runs[0] == runs[1] && runs[0] == runs[2]);
}

#[test]
fn check_reports_changed_data_and_claims() {
    let dir = tempfile::tempdir().unwrap();
    let run = common::run(&common::small_paper(), dir.path(), 2);
    let out = dir.path().join("figures");
    pipeline::write(&out, &run).unwrap();
    assert!(check::against_committed(&out, &run).is_empty());

    // Provenance that changes with every commit is not compared.
    let mut moved = run.figures[0].0.clone();
    moved.provenance.commit = "0000".into();
    moved.provenance.dirty = !moved.provenance.dirty;
    assert!(check::figures(&run.figures[0].0, &moved).is_empty());

    let mut drifted = run.figures[1].0.clone();
    drifted.body.series[0].y[3] += 0.01;
    drifted.claims[0].passed = !drifted.claims[0].passed;
    let diffs = check::figures(&run.figures[1].0, &drifted);
    assert!(diffs.iter().any(|d| d.contains("y[3]")), "{diffs:?}");
    assert!(diffs.iter().any(|d| d.contains(&drifted.claims[0].name) && d.contains("now")), "{diffs:?}");

    // A committed file that is missing is reported, not skipped.
    std::fs::remove_file(out.join("sigmoid-error.json")).unwrap();
    let problems = check::against_committed(&out, &run);
    assert!(problems["sigmoid-error"][0].contains("cannot read"), "{problems:?}");
}

#[test]
fn outputs_carry_their_provenance() {
    let dir = tempfile::tempdir().unwrap();
    let run = common::run(&common::small_paper(), dir.path(), 2);
    for (data, svg) in &run.figures {
        assert_eq!(data.provenance.key.len(), 64);
        assert!(svg.contains(&format!("\"key\":\"{}\"", data.provenance.key)), "the SVG's metadata holds the key");
        assert!(data.provenance.config.is_object());
    }
    // The JSON round-trips: another tool can replot from it alone.
    let text = serde_json::to_string(&run.figures[1].0).unwrap();
    let back: FigureData = serde_json::from_str(&text).unwrap();
    assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&run.figures[1].0).unwrap());
}

#[test]
fn an_unreadable_entry_gives_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let paper = common::small_paper();
    let planned = pipeline::plan(&pipeline::select(&paper, &[]).unwrap());
    // A directory where an entry should be: it cannot be read or replaced.
    let entry = dir.path().join(format!("{}.json", planned[0].shards[0].key));
    std::fs::create_dir_all(entry.join("inside")).unwrap();
    let err =
        format!("{:#}", pipeline::run(&paper, &common::options(dir.path(), 2), &|_| {}).err().expect("the run fails"));
    assert!(err.contains("phase-diagram / grid") && err.contains(&entry.display().to_string()), "{err}");
}

#[test]
fn every_kind_records_divergence_instead_of_failing() {
    // A rate far too large makes every training blow up: each figure must
    // still be assembled, record the diverged trainings, and draw no NaN.
    // The two small specs hold every kind (tests/kinds.rs checks it).
    let diverging = |text: String| -> String {
        text.lines()
            .map(|l| match l.split(' ').next() {
                Some(key @ ("learning_rate" | "hinge_learning_rate")) if l.starts_with(&format!("{key} =")) => {
                    format!("{key} = 1e30")
                }
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let kinds_text =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/small_kinds.toml"))
            .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for text in [diverging(common::small_spec_text()), diverging(kinds_text)] {
        let paper = common::parse(&text);
        let dir = tempfile::tempdir().unwrap();
        let run = common::run(&paper, dir.path(), 2);
        seen.extend(paper.figures.iter().map(|f| f.experiment.name()));
        for (fig, _) in &run.figures {
            // The linear softmax model cannot blow up: a step moves its logits by at most
            // lr x 2 s / N, and once its softmax saturates in f32 the gradient is exactly 0.
            if fig.id == "multiclass-modes" {
                assert!(fig.body.divergences.is_empty(), "{}: diverged", fig.id);
                continue;
            }
            assert!(!fig.body.divergences.is_empty(), "{}: no divergence recorded", fig.id);
            for s in &fig.body.series {
                assert!(
                    s.x.iter().chain(&s.y).all(|v| v.is_finite()),
                    "{}: series {:?} holds a non-finite value",
                    fig.id,
                    s.name
                );
            }
        }
    }
    assert_eq!(seen.len(), learning_dynamics::kinds::NAMES.len(), "every kind diverged: {seen:?}");
}

#[test]
fn a_data_set_whose_bytes_differ_from_its_hash_is_refused() {
    let digits = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/digits.csv.gz");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("digits.csv.gz");
    let mut bytes = std::fs::read(&digits).unwrap();
    let sha = hex_sha256(&bytes);
    let images = learning_dynamics::datasets::uci_digits(&digits, &sha).unwrap();
    assert_eq!((images.x.len(), images.digit.len()), (1797, 1797), "the UCI digits as scikit-learn ships them");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&copy, &bytes).unwrap();
    let err = format!("{:#}", learning_dynamics::datasets::uci_digits(&copy, &sha).err().expect("refused"));
    assert!(err.contains("SHA-256 is") && err.contains(&sha) && err.contains("digits.csv.gz"), "{err}");
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
