//! Shards: a job split into ranges of its networks gives, once its shards'
//! logs are put one after the other, the bits of the whole job trained at
//! once, for every kind, several shard sizes and thread counts; and a whole
//! run is the same figures whatever the shard size and the number of threads.

mod common;

use learning_dynamics::engine::TrainLog;
use learning_dynamics::kinds::numbered_jobs;
use learning_dynamics::pipeline::{self, shard_ranges};

/// Every bit of a log: f32 values as their bit patterns (NaN, -0.0 included).
fn bits(log: &TrainLog) -> Vec<u32> {
    let rows = log.margins.iter().chain(&log.probe_margins).chain(&log.weight_norms).chain(&log.samples);
    let weights = log
        .weights
        .iter()
        .flat_map(|(step, w)| std::iter::once(*step as u32).chain(w.layers.iter().flatten().map(|v| v.to_bits())));
    let diverged = log.diverged_at.iter().map(|d| d.map_or(u32::MAX, |s| s as u32));
    rows.flatten().map(|v| v.to_bits()).chain(weights).chain(diverged).collect()
}

#[test]
fn the_shards_of_every_job_of_every_kind_are_the_whole_job_bit_for_bit() {
    let mut checked = 0;
    for paper in [common::small_paper(), common::small_kinds_paper()] {
        for fig in &paper.figures {
            let kind = fig.experiment.kind();
            for job in numbered_jobs(kind) {
                let n = job.members();
                if n < 2 {
                    continue;
                }
                let whole = kind.train(&job, 0..n).unwrap();
                // One network per shard, a size that leaves a shorter last
                // shard, and two halves; on one thread and on three (the GAN's
                // seeds run side by side inside a shard).
                for (size, threads) in [(1, 1), (n.div_ceil(2), 3), (3.min(n - 1), 1)] {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                    let parts = shard_ranges(n, size)
                        .into_iter()
                        .map(|range| pool.install(|| kind.train(&job, range)).unwrap())
                        .collect();
                    let merged = TrainLog::concat(parts).unwrap();
                    assert_eq!(merged.log_steps, whole.log_steps);
                    assert!(
                        bits(&merged) == bits(&whole),
                        "{} / {}: shards of {size} networks differ from the whole job",
                        fig.id(),
                        job.name
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 30, "only {checked} shardings checked");
}

#[test]
fn a_run_is_the_same_figures_for_every_shard_size_and_thread_count() {
    let reference = {
        let dir = tempfile::tempdir().unwrap();
        common::run(&common::small_paper(), dir.path(), 1)
    };
    let as_json = |run: &pipeline::Run| -> Vec<String> {
        run.figures.iter().map(|(d, svg)| serde_json::to_string(d).unwrap() + svg).collect()
    };
    let text = common::small_spec_text();
    for (shard_size, threads) in [(1, 3), (2, 2), (4, 1)] {
        // Every figure of the small spec, split into shards of `shard_size` networks.
        let sharded = text.replace("[[figure]]\n", &format!("[[figure]]\nshard_size = {shard_size}\n"));
        let paper = common::parse(&sharded);
        let dir = tempfile::tempdir().unwrap();
        let (run, events) = common::run_with_events(&paper, &common::options(dir.path(), threads));
        let trained = events.iter().filter(|e| matches!(e, pipeline::Event::JobTrained { .. })).count();
        let planned: usize =
            pipeline::plan(&paper.figures.iter().collect::<Vec<_>>()).iter().map(|p| p.shards.len()).sum();
        assert_eq!(trained, planned, "every shard trained once");
        if shard_size == 1 {
            assert!(planned > 20, "shards of 1: only {planned} shards for the small spec");
        }
        assert!(
            as_json(&run) == as_json(&reference),
            "shards of {shard_size} on {threads} thread(s) change the figures"
        );
    }
}

#[test]
fn shard_ranges_cover_the_job_in_order() {
    assert_eq!(shard_ranges(7, 3), vec![0..3, 3..6, 6..7]);
    assert_eq!(shard_ranges(6, 3), vec![0..3, 3..6]);
    assert_eq!(shard_ranges(2, 5), vec![0..2]);
    assert_eq!(shard_ranges(4, 1).len(), 4);
}
