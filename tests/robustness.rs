//! The `paper-figures` process under abuse: rejected specs, SIGKILL at random
//! moments, Ctrl-C, damaged caches, unusable directories, concurrent runs,
//! diverging trainings, and determinism across processes. Each test spawns
//! the release binary on the small configurations.
#![cfg(unix)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use learning_dynamics::figure::FigureData;
use learning_dynamics::pipeline::{self, PlannedJob};

fn run(cmd: &mut std::process::Command) -> Output {
    cmd.output().expect("cannot start paper-figures")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn planned(spec: &Path) -> Vec<PlannedJob> {
    let paper = learning_dynamics::spec::load(spec).unwrap();
    pipeline::plan(&pipeline::select(&paper, &[]).unwrap())
}

fn keys(planned: &[PlannedJob]) -> Vec<String> {
    planned.iter().flat_map(|p| &p.shards).map(|s| s.key.clone()).collect()
}

/// The output files other than temporary ones.
fn outputs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    common::files(dir).into_iter().filter(|(name, _)| !common::is_partial(name)).collect()
}

fn partials(dir: &Path) -> Vec<String> {
    common::files(dir).into_keys().filter(|n| common::is_partial(n)).collect()
}

/// The events a run reported (`--json-events`: one JSON object per line of
/// stderr) of one kind, e.g. "job_trained".
fn events(stderr: &str, kind: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["event"] == kind)
        .collect()
}

/// The keys of the jobs a run says it trained.
fn computed_keys(stderr: &str) -> BTreeSet<String> {
    events(stderr, "job_trained").iter().map(|e| e["key"].as_str().expect("a key").to_string()).collect()
}

#[test]
fn a_rejected_spec_exits_2_with_a_location_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mistakes: &[(&str, &str, &str, &str)] = &[
        ("syntax", "input_dim = 2", "input_dim = = 2", "expected"),
        ("unknown key", "input_dim = 2", "input_dims = 2", "unknown field `input_dims`, expected one of"),
        ("negative count", "seed_count = 3", "seed_count = -3", "invalid value -3: expected a whole number >= 1"),
        (
            "wrong type",
            "input_norm = 1.0",
            "input_norm = \"one\"",
            "invalid value \"one\": expected a finite number > 0",
        ),
        ("missing value", "input_norm = 1.0\n", "", "missing field `input_norm`"),
        ("out of range", "depth = 3", "depth = 9", "expected a depth between 1 and 8"),
        ("duplicate id", "id = \"sigmoid-error\"", "id = \"phase-diagram\"", "duplicate figure id"),
        ("missing series", "than = \"linear\"", "than = \"lineal\"", "does not produce; expected one of"),
        (
            "unknown kind",
            "[figure.experiment.sigmoid]",
            "[figure.experiment.sigmoidal]",
            "expected one of `phase_diagram`, `sigmoid`",
        ),
    ];
    for (i, (what, from, to, expect)) in mistakes.iter().enumerate() {
        let spec = common::small_spec_with(tmp.path(), &format!("bad{i}.toml"), &[(from, to)]);
        let (cache, out) = (tmp.path().join("cache"), tmp.path().join("out"));
        let result = run(&mut common::figures_command(&spec, &cache, &out, &[]));
        let err = stderr(&result);
        assert_eq!(result.status.code(), Some(2), "{what}: {err}");
        let location = format!("error: {}:", spec.display());
        assert!(err.starts_with(&location), "{what}: no file:line:col:\n{err}");
        let (line, col) = {
            let rest = &err[location.len()..];
            let mut parts = rest.splitn(3, ':');
            (parts.next().unwrap().parse::<usize>(), parts.next().unwrap().parse::<usize>())
        };
        assert!(line.is_ok() && col.is_ok(), "{what}: no line and column:\n{err}");
        assert!(err.contains(expect), "{what}: message lacks {expect:?}:\n{err}");
        assert!(err.contains("nothing was run or written"), "{what}:\n{err}");
        assert!(!cache.exists() && !out.exists(), "{what}: a rejected spec created a directory");
    }
    // A file that is not UTF-8 is located too.
    let spec = tmp.path().join("latin1.toml");
    // "Petit \u{1}test" with the marker byte replaced by a Latin-1 "e acute".
    let text = common::small_spec_text().replacen("Small test", "Petit \u{1}test", 1);
    std::fs::write(&spec, text.bytes().map(|b| if b == 1 { 0xE9 } else { b }).collect::<Vec<u8>>()).unwrap();
    let result = run(&mut common::figures_command(&spec, &tmp.path().join("cache"), &tmp.path().join("out"), &[]));
    let err = stderr(&result);
    assert_eq!(result.status.code(), Some(2), "{err}");
    assert!(err.starts_with(&format!("error: {}:6:", spec.display())) && err.contains("not UTF-8"), "{err}");
}

/// Kills `paper-figures` with SIGKILL at seeded random moments, over and over,
/// on one cache and output directory; then lets a run finish. Nothing
/// finished is lost, nothing half-written is ever visible, and the result is
/// the reference run's, byte for byte.
#[test]
fn sigkill_at_random_moments_loses_no_finished_job_and_corrupts_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = common::small_spec_path();
    let planned = planned(&spec);
    let keys = keys(&planned);

    let start = Instant::now();
    let reference = run(&mut common::figures_command(
        &spec,
        &tmp.path().join("ref-cache"),
        &tmp.path().join("ref-out"),
        &["--jobs", "2"],
    ));
    assert!(reference.status.success(), "{}", stderr(&reference));
    let full = start.elapsed();
    let reference = outputs(&tmp.path().join("ref-out"));
    assert_eq!(reference.len(), 5, "{:?}", reference.keys());

    let (cache, out) = (tmp.path().join("cache"), tmp.path().join("out"));
    let mut rng = common::TestRng::new("test/kill-times", 20_240_601);
    let (mut kills, mut partials_seen, mut reused_checked, mut rounds) = (0, 0, 0, 1);
    const ATTEMPTS: usize = 30;
    for i in 0..ATTEMPTS {
        let mut before = common::verified_entries(&cache, &keys);
        // Once every job is cached: either a forced run (it rewrites every
        // entry, so kills land on overwrites), or a new round from an empty
        // cache (so kills land on runs that resume from a partial one).
        let complete = before.len() == keys.len();
        let force = complete && rng.next().is_multiple_of(2);
        if complete && !force {
            std::fs::remove_dir_all(&cache).unwrap();
            before.clear();
            rounds += 1;
        }
        let jobs = if rng.next().is_multiple_of(2) { "1" } else { "2" };
        let log = tmp.path().join(format!("run{i}.log"));
        let mut args = vec!["--jobs", jobs];
        if force {
            args.push("--force");
        }
        let mut child = common::figures_command(&spec, &cache, &out, &args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        // A moment within the run: its length is about that of the jobs left.
        let left = if force { 1.0 } else { (keys.len() - before.len()) as f64 / keys.len() as f64 };
        std::thread::sleep(full.mul_f64(rng.unit() * (left + 0.2)));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.signal() == Some(9) {
            kills += 1;
        } else {
            assert!(status.success(), "run {i} failed: {}", std::fs::read_to_string(&log).unwrap());
        }
        // Every entry verifies, none was lost, and a run recomputes no job
        // that was cached when it started.
        let after = common::verified_entries(&cache, &keys);
        assert!(before.is_subset(&after), "run {i} lost cache entries");
        if !force {
            let recomputed = computed_keys(&std::fs::read_to_string(&log).unwrap());
            assert!(recomputed.is_disjoint(&before), "run {i} recomputed a cached job");
            reused_checked += before.len();
        }
        // Every figure file present is whole and the reference's.
        for (name, bytes) in outputs(&out) {
            assert!(reference.get(&name) == Some(&bytes), "run {i} left {name} different from the reference");
        }
        partials_seen += partials(&cache).len() + partials(&out).len();
    }
    assert!(kills >= ATTEMPTS / 2, "only {kills} of {ATTEMPTS} runs were killed before they finished");

    let before = common::verified_entries(&cache, &keys);
    let last = run(&mut common::figures_command(&spec, &cache, &out, &["--jobs", "2"]));
    assert!(last.status.success(), "{}", stderr(&last));
    let recomputed = computed_keys(&stderr(&last));
    let missing: BTreeSet<String> = keys.iter().filter(|k| !before.contains(*k)).cloned().collect();
    assert_eq!(recomputed, missing, "the last run computes exactly the jobs that were not cached");
    assert!(outputs(&out) == reference, "the figures differ from the reference run's");
    assert!(
        partials(&cache).is_empty() && partials(&out).is_empty(),
        "temporary files of killed runs were not removed"
    );
    assert_eq!(common::verified_entries(&cache, &keys).len(), keys.len());
    eprintln!(
        "{kills} of {ATTEMPTS} runs killed over {rounds} round(s); {partials_seen} temporary files seen after kills; \
         {reused_checked} cached jobs checked for reuse; a full run took {:.2}s",
        full.as_secs_f64()
    );
}

/// A spawned run whose stderr lines arrive on a channel.
fn spawn_watched(cmd: &mut std::process::Command) -> (Child, mpsc::Receiver<String>) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn wait_for(rx: &mpsc::Receiver<String>, seen: &mut Vec<String>, what: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("never saw the line: {seen:?}"));
        seen.push(line);
        if what(seen.last().unwrap()) {
            return;
        }
    }
}

fn interrupt(child: &Child) {
    let status = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

/// The small spec with sigmoid trainings `factor` times longer, so that a
/// Ctrl-C lands while one of them runs.
fn slow_spec(dir: &Path, factor: u32) -> std::path::PathBuf {
    common::small_spec_with(dir, "slow.toml", &[("steps = 4000", &format!("steps = {}", 4000 * factor))])
}

#[test]
fn ctrl_c_stops_cleanly_and_says_what_was_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = slow_spec(tmp.path(), 20);
    let planned = planned(&spec);
    let (cache, out) = (tmp.path().join("cache"), tmp.path().join("out"));
    let (mut child, rx) = spawn_watched(&mut common::figures_command(&spec, &cache, &out, &["--jobs", "1"]));
    let mut seen = Vec::new();
    // After the first finished job.
    wait_for(&rx, &mut seen, |l| !events(l, "job_trained").is_empty());
    interrupt(&child);
    let status = child.wait().unwrap();
    seen.extend(rx.iter());
    let err = seen.join("\n");
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted: ") && err.contains("nothing written"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // What it says it kept is exactly what the cache holds, and not everything.
    let kept: BTreeSet<String> = seen.iter().filter_map(|l| l.strip_prefix("  kept: ")).map(str::to_string).collect();
    let paper = learning_dynamics::spec::load(&spec).unwrap();
    let named = |p: &PlannedJob| format!("{} / {}", paper.figures[p.figure].id(), p.job.name);
    let cached = common::verified_entries(&cache, &keys(&planned));
    let cached_names: BTreeSet<String> =
        planned.iter().filter(|p| p.shards.iter().all(|s| cached.contains(&s.key))).map(named).collect();
    assert_eq!(kept, cached_names, "{err}");
    assert!(!kept.is_empty() && kept.len() < planned.len(), "{err}");
    assert!(outputs(&out).is_empty(), "an interrupted run wrote figures");
    assert!(partials(&cache).is_empty());

    // The next run reuses them.
    let again = run(&mut common::figures_command(&spec, &cache, &out, &["--jobs", "2", "--only", "phase-diagram"]));
    assert!(again.status.success(), "{}", stderr(&again));
    let recomputed = computed_keys(&stderr(&again));
    assert!(recomputed.is_disjoint(&cached), "a kept job was computed again");
}

#[test]
fn a_second_ctrl_c_stops_at_once_and_leaves_the_cache_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = slow_spec(tmp.path(), 200);
    let planned = planned(&spec);
    let (cache, out) = (tmp.path().join("cache"), tmp.path().join("out"));
    let (mut child, rx) = spawn_watched(&mut common::figures_command(&spec, &cache, &out, &["--jobs", "1"]));
    let mut seen = Vec::new();
    // The phase diagram's jobs are short; then a sigmoid job runs for seconds:
    // once it has started, the first Ctrl-C waits for it.
    wait_for(&rx, &mut seen, |l| events(l, "job_starts").iter().any(|e| e["figure"] == "sigmoid-error"));
    interrupt(&child);
    wait_for(&rx, &mut seen, |l| l.starts_with("interrupt: "));
    let second = Instant::now();
    interrupt(&child);
    let status = child.wait().unwrap();
    let stopped_in = second.elapsed();
    assert_eq!(status.code(), Some(130), "{seen:?}");
    assert!(stopped_in < Duration::from_secs(2), "the second Ctrl-C took {stopped_in:?}");
    assert!(outputs(&out).is_empty());
    assert!(common::verified_entries(&cache, &keys(&planned)).len() >= 2, "the finished phase-diagram jobs are kept");
}

#[test]
fn damaged_entries_are_reported_and_recomputed_by_the_command() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = common::small_spec_path();
    let planned = planned(&spec);
    let (cache, out) = (tmp.path().join("cache"), tmp.path().join("out"));
    assert!(run(&mut common::figures_command(&spec, &cache, &out, &[])).status.success());
    let first = outputs(&out);
    let entry = |i: usize| cache.join(format!("{}.json", planned[i].shards[0].key));

    std::fs::write(entry(0), b"").unwrap(); // truncated to nothing
    std::fs::write(entry(2), b"{\"some\":\n\"other program's file\"}").unwrap(); // foreign
    let mut bytes = std::fs::read(entry(4)).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20; // one flipped bit in the body
    std::fs::write(entry(4), bytes).unwrap();

    let again = run(&mut common::figures_command(&spec, &cache, &out, &[]));
    let err = stderr(&again);
    assert!(again.status.success(), "{err}");
    let damaged: Vec<String> =
        events(&err, "damaged_cache_entry").iter().map(|e| e["why"].as_str().unwrap().to_string()).collect();
    assert_eq!(damaged.len(), 3, "{err}");
    for (why, expected) in damaged.iter().zip(["no header line", "bad header", "checksum mismatch"]) {
        assert!(why.contains(expected), "{damaged:?}");
    }
    assert!(damaged[2].contains(&entry(4).display().to_string()), "the path is named: {damaged:?}");
    let table = String::from_utf8_lossy(&again.stdout);
    assert!(table.contains("damaged entry(ies) recomputed"), "{table}");
    assert_eq!(computed_keys(&err), [0, 2, 4].iter().map(|&i| planned[i].shards[0].key.clone()).collect());
    assert!(outputs(&out) == first);
    assert_eq!(common::verified_entries(&cache, &keys(&planned)).len(), planned.len());
}

#[test]
fn stale_temporary_files_are_removed_and_live_ones_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    // A writer that is gone (no such process) and one that runs (this test).
    let dead = cache.join(".partial-4294967-abcdef.tmp");
    let live = cache.join(format!(".partial-{}-abcdef.tmp", std::process::id()));
    std::fs::write(&dead, b"half an entr").unwrap();
    std::fs::write(&live, b"half an entr").unwrap();
    let result = run(&mut common::figures_command(
        &common::small_spec_path(),
        &cache,
        &tmp.path().join("out"),
        &["--only", "phase-diagram"],
    ));
    assert!(result.status.success(), "{}", stderr(&result));
    assert!(!dead.exists() && live.exists());
}

#[test]
fn unusable_directories_give_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("afile");
    std::fs::write(&file, b"not a directory").unwrap();
    let spec = common::small_spec_path();
    let ok = tmp.path().join("ok");
    let cases = [
        (file.join("cache"), ok.join("out"), "cannot create the cache directory", file.join("cache")),
        (file.clone(), ok.join("out"), "the cache directory", file.clone()),
        (ok.join("cache"), file.join("figures"), "cannot create the output directory", file.join("figures")),
        (ok.join("cache"), file.clone(), "the output directory", file.clone()),
    ];
    for (cache, out, expect, path) in cases {
        let result = run(&mut common::figures_command(&spec, &cache, &out, &[]));
        let err = stderr(&result);
        assert_eq!(result.status.code(), Some(2), "{err}");
        assert!(
            err.starts_with("error: ") && err.contains(expect) && err.contains(&path.display().to_string()),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        let training = [events(&err, "training_starts"), events(&err, "job_trained")];
        assert!(training.iter().all(Vec::is_empty), "it must fail before training:\n{err}");
    }
}

#[test]
fn two_runs_at_once_on_one_cache_both_succeed_with_identical_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = common::small_spec_path();
    let planned = planned(&spec);
    let cache = tmp.path().join("cache");
    // Cold cache, separate outputs; then forced (both rewrite every entry)
    // into one output directory.
    let rounds: [(&str, &str, &[&str]); 2] = [("a", "b", &[]), ("same", "same", &["--force"])];
    let mut results = Vec::new();
    for (out_a, out_b, extra) in rounds {
        let spawn = |out: &str| {
            let mut args = vec!["--jobs", "1"];
            args.extend_from_slice(extra);
            common::figures_command(&spec, &cache, &tmp.path().join(out), &args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(out_a), spawn(out_b));
        for child in [a, b] {
            let result = child.wait_with_output().unwrap();
            assert!(result.status.success(), "{}", stderr(&result));
        }
        results.push(outputs(&tmp.path().join(out_a)));
        results.push(outputs(&tmp.path().join(out_b)));
    }
    assert_eq!(results[0].len(), 5);
    assert!(results.iter().all(|r| *r == results[0]), "concurrent runs wrote different figures");
    assert_eq!(common::verified_entries(&cache, &keys(&planned)).len(), planned.len());
    assert!(partials(&cache).is_empty());
}

#[test]
fn a_diverging_training_is_recorded_shown_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = common::small_spec_with(tmp.path(), "diverge.toml", &[("learning_rate = 0.25", "learning_rate = 1e30")]);
    let out = tmp.path().join("out");
    let result = run(&mut common::figures_command(&spec, &tmp.path().join("cache"), &out, &[]));
    let err = stderr(&result);
    // Claims fail (exit 1), but nothing panics and the figures are written.
    assert_eq!(result.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let data: FigureData = serde_json::from_slice(&std::fs::read(out.join("sigmoid-error.json")).unwrap()).unwrap();
    assert!(!data.body.divergences.is_empty());
    for d in data.body.divergences.iter().take(20) {
        let line = format!("figure sigmoid-error: job {:?} seed {} diverged at step {}", d.job, d.seed, d.step);
        assert!(err.contains(&line), "no {line:?} in:\n{err}");
    }
    let table = String::from_utf8_lossy(&result.stdout);
    let row = table.lines().find(|l| l.starts_with("sigmoid-error")).unwrap();
    assert!(row.split_whitespace().any(|w| w == data.body.divergences.len().to_string()), "{row}");
    let svg = std::fs::read_to_string(out.join("sigmoid-error.svg")).unwrap();
    assert!(svg.contains("DIVERGED"), "the SVG shows the divergence");
    // The other figure is untouched by it.
    let phase: FigureData = serde_json::from_slice(&std::fs::read(out.join("phase-diagram.json")).unwrap()).unwrap();
    assert!(phase.body.divergences.is_empty());
}

#[test]
fn figure_files_are_bit_identical_across_processes_thread_counts_and_cold_or_warm_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = common::small_spec_path();
    let p = |name: &str| tmp.path().join(name);
    let runs: [(&str, &str, &[&str]); 4] = [
        ("cache1", "cold-1-thread", &["--jobs", "1"]),
        ("cache2", "cold-2-threads", &["--jobs", "2"]),
        ("cache3", "cold-3-threads", &["--jobs", "3"]),
        ("cache1", "warm", &["--jobs", "2"]),
    ];
    let mut outs = Vec::new();
    for (cache, out, args) in runs {
        let result = run(&mut common::figures_command(&spec, &p(cache), &p(out), args));
        assert!(result.status.success(), "{}", stderr(&result));
        outs.push(outputs(&p(out)));
    }
    let warm = run(&mut common::figures_command(&spec, &p("cache1"), &p("warm"), &[]));
    assert!(String::from_utf8_lossy(&warm.stdout).matches("all cached").count() == 2);
    assert_eq!(outs[0].len(), 5);
    for (i, o) in outs.iter().enumerate() {
        assert!(*o == outs[0], "run {i} wrote different bytes");
    }
}
