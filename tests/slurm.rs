//! The cluster path without a cluster: how shards are assigned to array
//! tasks, the script `--emit-sbatch` writes, and many writers: array tasks
//! (`paper-figures shard-task`, as the script runs them) writing shards of the
//! same jobs into one cache at once, two of them computing the same shards,
//! after which the figures assembled from the cache alone are byte for byte
//! those of a local run. The real Slurm runs in CI (`.ci/slurm-cluster-test`).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use learning_dynamics::slurm::{assign, Assignment};
use learning_dynamics::status::{self, ShardPlan};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `paper-figures --spec SPEC ARGS...` from the repository root.
fn command(spec: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(common::binary());
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("PAPER_FIGURES_CALLER_DIR")
        .arg("--spec")
        .arg(spec)
        .args(args);
    cmd
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    out
}

/// Every file under `dir`, by its path relative to `dir`.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (name, bytes) in common::files(dir) {
        out.insert(name, bytes);
    }
    for (name, bytes) in common::files(&dir.join("paper")) {
        out.insert(format!("paper/{name}"), bytes);
    }
    out
}

/// The small spec with every figure split into shards of one network.
fn sharded_spec(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("sharded.toml");
    std::fs::write(&path, common::small_spec_text().replace("[[figure]]\n", "[[figure]]\nshard_size = 1\n")).unwrap();
    path
}

fn shard(key: &str, estimate: Option<f64>) -> ShardPlan {
    ShardPlan {
        figure: "f".into(),
        job: "j".into(),
        job_key: "k".into(),
        key: key.into(),
        members: [0, 1],
        of: 1,
        networks: 1,
        cached: false,
        estimate_seconds: estimate,
        estimate_from: None,
        why: None,
    }
}

#[test]
fn shards_are_spread_over_tasks_by_cost_the_same_way_every_time() {
    let shards: Vec<ShardPlan> =
        [8.0, 1.0, 4.0, 4.0, 2.0, 1.0].iter().enumerate().map(|(i, &s)| shard(&format!("s{i}"), Some(s))).collect();
    let tasks = assign(&shards, 3);
    assert_eq!(tasks, assign(&shards, 3), "the same plan gives the same tasks");
    let keys = |t: &[learning_dynamics::slurm::AssignedShard]| t.iter().map(|s| s.key.clone()).collect::<Vec<_>>();
    // Longest first, each to the least loaded task: 8 | 4 + 2 | 4 + 1 + 1.
    assert_eq!(keys(&tasks[0]), ["s0"]);
    assert_eq!(keys(&tasks[1]), ["s2", "s4"]);
    assert_eq!(keys(&tasks[2]), ["s3", "s1", "s5"]);
    // Never more tasks than shards, every shard once; an unknown cost counts as the mean.
    let few = assign(&shards[..2], 10);
    assert_eq!(few.len(), 2);
    let unknown = assign(&[shard("a", None), shard("b", Some(3.0)), shard("c", Some(1.0))], 2);
    assert_eq!(unknown.iter().map(|t| t.len()).sum::<usize>(), 3);
    assert_eq!(unknown[0][0].estimate_seconds, 3.0);
    assert_eq!(unknown[1][0].estimate_seconds, 2.0, "the unknown one costs the mean of the known");
}

#[test]
fn many_writers_on_one_cache_then_assembly_gives_the_local_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = sharded_spec(tmp.path());
    let (cache, local_cache) = (tmp.path().join("cache"), tmp.path().join("local-cache"));
    let (out, local_out) = (tmp.path().join("out"), tmp.path().join("local-out"));

    // The reference: the same spec trained and written by one local run.
    let arg = |p: &Path| p.to_str().unwrap().to_string();
    ok(command(&spec, &["figures", "--cache-dir", &arg(&local_cache), "--out", &arg(&local_out)]).output().unwrap());

    // Three tasks whose shards overlap: every shard is computed by two of them, at once.
    let paper = learning_dynamics::spec::load(&spec).unwrap();
    let plan = status::plan(&paper, &[], &cache, false).unwrap();
    assert!(plan.len() > 20, "{} shards", plan.len());
    let all = assign(&plan, 1).remove(0);
    let third = all.len() / 3;
    let mut reversed = all.clone();
    reversed.reverse();
    let tasks = vec![
        all[..2 * third].to_vec(),
        all[third..].to_vec(),
        [&reversed[..all.len() - 2 * third], &reversed[all.len() - third..]].concat(),
    ];
    for s in &all {
        let holders = tasks.iter().filter(|t| t.iter().any(|x| x.key == s.key)).count();
        assert_eq!(holders, 2, "every shard is given to two tasks");
    }
    let assignment = tmp.path().join("assignment.json");
    std::fs::write(&assignment, serde_json::to_vec(&Assignment { force: false, tasks }).unwrap()).unwrap();
    let children: Vec<_> = (0..3)
        .map(|t| {
            command(
                &spec,
                &[
                    "shard-task",
                    "--assignment",
                    &arg(&assignment),
                    "--task",
                    &t.to_string(),
                    "--cache-dir",
                    &arg(&cache),
                ],
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for child in children {
        ok(child.wait_with_output().unwrap());
    }
    // Every entry whole and verified, one per shard, no temporary file left.
    let keys: Vec<String> = plan.iter().map(|s| s.key.clone()).collect();
    assert_eq!(common::verified_entries(&cache, &keys).len(), keys.len());
    assert!(!common::files(&cache).keys().any(|name| common::is_partial(name)), "a temporary file was left");

    let assembled = ok(command(
        &spec,
        &["figures", "--assemble-only", "--json-events", "--cache-dir", &arg(&cache), "--out", &arg(&out)],
    )
    .output()
    .unwrap());
    assert!(!text(&assembled.stderr).contains("job_trained"), "assembly trained nothing");
    let (got, want) = (tree(&out), tree(&local_out));
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    for (name, bytes) in &want {
        assert!(&got[name] == bytes, "{name} differs between the cluster-style and the local run");
    }
}

#[test]
fn assembly_names_the_missing_shards_and_trains_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = sharded_spec(tmp.path());
    let cache = tmp.path().join("cache");
    let arg = |p: &Path| p.to_str().unwrap().to_string();
    ok(command(
        &spec,
        &["figures", "--only", "phase-diagram", "--cache-dir", &arg(&cache), "--out", &arg(&tmp.path().join("o"))],
    )
    .output()
    .unwrap());
    let out = command(
        &spec,
        &["figures", "--assemble-only", "--cache-dir", &arg(&cache), "--out", &arg(&tmp.path().join("o"))],
    )
    .output()
    .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("shard(s) are not in the cache, and this run trains nothing"), "{err}");
    assert!(err.contains("missing: sigmoid-error / ") && err.contains("(networks 0-0 of "), "{err}");
    assert!(!err.contains("missing: phase-diagram"), "{err}");
}

#[test]
fn emit_sbatch_writes_a_job_array_over_the_missing_shards() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = sharded_spec(tmp.path());
    let (cache, script) = (tmp.path().join("cache"), tmp.path().join("array.sbatch"));
    let arg = |p: &Path| p.to_str().unwrap().to_string();
    let out = ok(command(
        &spec,
        &[
            "figures",
            "--slurm",
            "--array-tasks",
            "3",
            "--partition",
            "short",
            "--sbatch-arg=--mem=2G",
            "--emit-sbatch",
            &arg(&script),
            "--cache-dir",
            &arg(&cache),
            "--out",
            &arg(&tmp.path().join("o")),
        ],
    )
    .output()
    .unwrap());
    let said = text(&out.stdout);
    assert!(said.contains("a job array of 3 task(s)") && said.contains("--assemble-only"), "{said}");
    let body = std::fs::read_to_string(&script).unwrap();
    for line in ["#SBATCH --array=0-2", "#SBATCH --partition=short", "#SBATCH --mem=2G", "shard-task --assignment"] {
        assert!(body.contains(line), "{line:?} not in\n{body}");
    }
    // The run directory beside the cache holds the binary, the spec and the assignment the script names.
    let runs: Vec<_> = std::fs::read_dir(cache.join("slurm")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(runs.len(), 1);
    for file in ["paper-figures", "spec.toml", "assignment.json", "array.sbatch"] {
        assert!(runs[0].join(file).is_file(), "{file} missing from {}", runs[0].display());
    }
    let assignment: Assignment =
        serde_json::from_slice(&std::fs::read(runs[0].join("assignment.json")).unwrap()).unwrap();
    assert_eq!(assignment.tasks.len(), 3);
    let paper = learning_dynamics::spec::load(&spec).unwrap();
    assert_eq!(assignment.shards().count(), status::plan(&paper, &[], &cache, false).unwrap().len());

    // `cache gc` keeps the run directory while its shards are missing, and removes it
    // once its tasks (run here by hand, as Slurm would) have put every one in the cache.
    let gc = || text(&ok(command(&spec, &["cache", "--cache-dir", &arg(&cache), "gc"]).output().unwrap()).stdout);
    let said = gc();
    assert!(said.contains("unfinished, kept") && runs[0].is_dir(), "{said}");
    let assignment_path = runs[0].join("assignment.json");
    for t in 0..3 {
        let task = ["shard-task", "--assignment", &arg(&assignment_path), "--task", &t.to_string()];
        ok(command(&spec, &[&task[..], &["--cache-dir", &arg(&cache)]].concat()).output().unwrap());
    }
    let said = gc();
    assert!(said.contains("removed 1 finished Slurm run director(ies)"), "{said}");
    assert!(!runs[0].exists(), "the finished run directory is still there");
    assert!(!gc().contains("Slurm run directory"), "a run directory is still listed");
}
