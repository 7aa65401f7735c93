//! `status`, `plan` and the reason each computed job gives: what a user is
//! told about stale figures and jobs, on the small spec.

mod common;

use learning_dynamics::pipeline::Status as State;
use learning_dynamics::pipeline::{self, Event};
use learning_dynamics::status;

/// After a run every figure is current and every job cached; then each kind
/// of change is named: a paper.toml value (with old and new), a source file,
/// a missing figure; and a job that runs again says why.
#[test]
fn status_names_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let paper = common::small_paper();
    let opts = common::options(dir.path(), 2);
    let (run, events) = common::run_with_events(&paper, &opts);
    pipeline::write(&opts.out_dir, &run).unwrap();
    let whys: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::JobTrained { why, .. } => Some(why.as_str()),
            _ => None,
        })
        .collect();
    assert!(!whys.is_empty() && whys.iter().all(|w| *w == "new"), "{whys:?}");

    let now = status::statuses(&paper, &[], &opts.out_dir, dir.path()).unwrap();
    assert!(now.iter().all(|s| s.state == State::Current && s.reasons.is_empty() && s.uncached == 0), "{now:?}");
    let plan = status::plan(&paper, &[], dir.path(), false).unwrap();
    assert!(plan.iter().all(|j| j.cached && j.why.is_none()));
    // Forced, every job would run, with its recorded time as the estimate.
    let forced = status::plan(&paper, &[], dir.path(), true).unwrap();
    assert!(forced.iter().all(|j| !j.cached
        && j.why.as_deref() == Some("forced")
        && j.estimate_from == Some(learning_dynamics::pipeline::Estimate::Recorded)));

    // A changed value: the figure is stale, says which value (old -> new), and its jobs say why they run.
    let changed = common::parse(&common::small_spec_text().replacen("learning_rate = 0.25", "learning_rate = 0.5", 1));
    let stale = status::statuses(&changed, &["sigmoid-error".into()], &opts.out_dir, dir.path()).unwrap();
    assert_eq!(stale[0].state, State::Stale);
    assert!(stale[0].reasons[0].contains("sigmoid.learning_rate 0.25 -> 0.5"), "{:?}", stale[0].reasons);
    assert!(stale[0].reasons.iter().any(|r| r.ends_with("shards not cached")), "{:?}", stale[0].reasons);
    let plan = status::plan(&changed, &["sigmoid-error".into()], dir.path(), false).unwrap();
    assert!(plan.iter().all(|j| j.why.as_deref() == Some("config changed: learning_rate")), "{plan:?}");

    // A changed source file, as the committed JSON records it.
    let path = opts.out_dir.join("phase-diagram.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    json["provenance"]["files"]["src/theory.rs"] = "0".repeat(64).into();
    json["provenance"]["key"] = "an older key".into();
    std::fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();
    let stale = status::statuses(&paper, &["phase-diagram".into()], &opts.out_dir, dir.path()).unwrap();
    assert_eq!(stale[0].state, State::Stale);
    assert_eq!(stale[0].reasons, ["code changed: src/theory.rs"]);

    // A missing figure.
    std::fs::remove_file(&path).unwrap();
    let missing = status::statuses(&paper, &["phase-diagram".into()], &opts.out_dir, dir.path()).unwrap();
    assert_eq!(missing[0].state, State::Missing);
}

/// The binary's exit status: 0 when everything is current, 1 when a figure is stale.
#[test]
fn status_exit_code_tells_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, out) = (dir.path().join("cache"), dir.path().join("figures"));
    let spec = common::small_spec_path();
    let ok = common::figures_command(&spec, &cache, &out, &["--only", "phase-diagram"]).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let status = |spec: &std::path::Path| {
        std::process::Command::new(common::binary())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("--spec")
            .arg(spec)
            .args(["status", "--only", "phase-diagram", "--cache-dir"])
            .arg(&cache)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap()
    };
    let current = status(&spec);
    assert_eq!(current.status.code(), Some(0), "{}", String::from_utf8_lossy(&current.stdout));
    let changed =
        common::small_spec_with(dir.path(), "changed.toml", &[("learning_rate = 0.01", "learning_rate = 0.02")]);
    let stale = status(&changed);
    let text = String::from_utf8_lossy(&stale.stdout);
    assert_eq!(stale.status.code(), Some(1), "{text}");
    assert!(text.contains("phase_diagram.learning_rate 0.01 -> 0.02"), "{text}");
}
