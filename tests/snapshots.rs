//! Snapshots of every figure's data on the small configurations. Values are
//! rounded to 3 significant digits by our own code, so the snapshots hold
//! across runs; an intended change is accepted with `cargo insta review`.

mod common;

use learning_dynamics::figure::{round_sig, FigureData, Source};
use serde_json::{json, Value};

fn r(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| round_sig(*x, 3)).collect()
}

/// Panels and every series' drawing (panel, style, colour, legend, band
/// text, labels) in full; measured series' numbers in full, theory series'
/// numbers (long, exact curves) as a digest.
fn digest(fig: &FigureData) -> Value {
    let series: Vec<Value> = fig
        .body
        .series
        .iter()
        .map(|s| {
            let drawn = json!({
                "panel": s.panel, "style": s.style, "color": s.color, "legend": s.legend, "legend_label": s.legend_label,
                "band": s.band.as_ref().map(|b| &b.what), "labels": s.labels,
            });
            match s.source {
                Source::Measured => json!({
                    "name": s.name, "drawn": drawn, "x": r(&s.x), "y": r(&s.y),
                    "band": s.band.as_ref().map(|b| json!({ "lo": r(&b.lo), "hi": r(&b.hi) })),
                }),
                Source::Theory => json!({
                    "name": s.name, "drawn": drawn, "theory_points": s.x.len(),
                    "sum_x": round_sig(s.x.iter().sum(), 3), "sum_y": round_sig(s.y.iter().sum(), 3),
                }),
            }
        })
        .collect();
    let scalars: serde_json::Map<String, Value> =
        fig.body.scalars.iter().map(|(k, v)| (k.clone(), json!(round_sig(*v, 3)))).collect();
    let claims: Vec<Value> = fig
        .claims
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "passed": c.passed,
                "measured": c.measured.map(|m| round_sig(m, 3)),
                "control": c.control.counterfactual,
                "control_passed": c.control.passed,
            })
        })
        .collect();
    json!({ "id": fig.id, "panels": fig.body.panels, "series": series, "scalars": scalars, "claims": claims, "divergences": fig.body.divergences.len() })
}

#[test]
fn figure_data_on_small_configs() {
    let dir = tempfile::tempdir().unwrap();
    let run = common::run(&common::small_paper(), dir.path(), 2);
    for (fig, _) in &run.figures {
        insta::assert_json_snapshot!(fig.id.clone(), digest(fig));
    }
}

#[test]
fn figure_data_of_the_other_kinds_on_small_configs() {
    // Rates are coarse here, so some "follows its ODE" claims fail: the
    // snapshot records that they can.
    let dir = tempfile::tempdir().unwrap();
    let paper = common::small_kinds_paper();
    let run = common::run(&paper, dir.path(), 2);
    assert_eq!(run.figures.len(), paper.figures.len());
    for (fig, _) in &run.figures {
        insta::assert_json_snapshot!(format!("small-kinds-{}", fig.id), digest(fig));
    }
}
