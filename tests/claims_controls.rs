//! Claims and their negative controls: every check kind passing and failing
//! on hand-built data, every control kind flipping the outcome (and a control
//! too weak to flip it caught), the spec errors that keep a claim from being
//! untestable, and the binary's handling of stray figures, stale data and a
//! control that cannot flip its claim.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use learning_dynamics::claims;
use learning_dynamics::figure::{ClaimResult, FigureBody, FigureData, Series, Source};
use learning_dynamics::shapes::{exponential_like, logistic_over_exponential, transition_width};
use learning_dynamics::spec::{self, ClaimSpec};

// ---------------------------------------------------------------------------
// Hand-built figure data

fn series(name: &str, x: &[f64], y: &[f64]) -> Series {
    Series::line(name, 0, Source::Measured, "#000000", x.to_vec(), y.to_vec())
}

/// t = 0, then 81 points log-spaced from 1e-2 to 1e6: a training log's times.
fn times() -> Vec<f64> {
    std::iter::once(0.0).chain((-20..=60).map(|k| 10f64.powf(k as f64 / 10.0))).collect()
}

/// A logistic step in log t, 1 / (1 + (t / center)^slope): 1 at t = 0, half
/// at `center`, its 10%-90% drop spanning 2 log10(9) / slope decades.
fn step(center: f64, slope: f64) -> Vec<f64> {
    times().iter().map(|t| 1.0 / (1.0 + (t / center).powf(slope))).collect()
}

/// Scalars a = 1 < b = 2 < c = 3, ref = 1.05 (5% from a), nan undefined;
/// series `sharp` (a step 0.48 decades wide), `wide` (1.9 decades), `expo`
/// (e^(-t/100), 1.34 decades, no plateau).
fn body() -> FigureBody {
    let t = times();
    let expo: Vec<f64> = t.iter().map(|t| (-t / 100.0).exp()).collect();
    FigureBody {
        panels: Vec::new(),
        series: vec![
            series("sharp", &t, &step(100.0, 4.0)),
            series("wide", &t, &step(100.0, 1.0)),
            series("expo", &t, &expo),
        ],
        scalars: [("a", 1.0), ("b", 2.0), ("c", 3.0), ("ref", 1.05), ("nan", f64::NAN)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        // Per-seed values: a clear effect, no effect, and too few to decide.
        samples: [
            ("effect", vec![0.31, 0.27, 0.35, 0.29, 0.33, 0.30]),
            ("null", vec![0.04, -0.05, 0.02, -0.03, 0.01, -0.02]),
            ("one", vec![0.3]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        divergences: Vec::new(),
    }
}

/// A claim from the lines of a `[[figure.claim]]` table (its name added).
fn claim(lines: &str) -> ClaimSpec {
    // Consistency unless the lines say otherwise: the class rules are the spec's, tested there.
    let class = if lines.contains("class = ") { "" } else { "class = \"consistency\"\n" };
    let text = format!("name = \"the claim\"\n{class}{lines}");
    toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn evaluate(lines: &str) -> ClaimResult {
    let results = claims::evaluate(&[claim(lines)], &body());
    assert_eq!(results.len(), 1);
    results.into_iter().next().unwrap()
}

// ---------------------------------------------------------------------------
// claims::evaluate

/// `lines` (a check and its control) gives `passed` on the data and
/// `control_passed` on its counterfactual.
fn check(lines: &str, passed: bool, control_passed: bool) {
    let r = evaluate(lines);
    assert_eq!(r.passed, passed, "check on the data:\n{lines}\n{r:#?}");
    assert_eq!(r.control.passed, control_passed, "check on the counterfactual:\n{lines}\n{r:#?}");
    assert!(!r.control.counterfactual.is_empty() && r.control.counterfactual != "none declared", "{r:#?}");
    assert!(r.expected_to_pass && r.reason.is_none());
}

#[test]
fn every_check_kind_passes_and_fails_and_its_control_flips_it() {
    #[rustfmt::skip]
    let cases: &[(&str, bool, bool)] = &[
        // at_least
        ("check.at_least = { scalar = \"a\", min = 0.5 }\ncontrol.offset = { scalar = \"a\", by = -1.0 }",
         true, false),
        ("check.at_least = { scalar = \"a\", min = 1.5 }\ncontrol.offset = { scalar = \"a\", by = 1.0 }", false, true),
        // at_most
        ("check.at_most = { scalar = \"a\", max = 1.5 }\ncontrol.scale = { scalar = \"a\", by = 2.0 }", true, false),
        ("check.at_most = { scalar = \"c\", max = 2.5 }\ncontrol.scale = { scalar = \"c\", by = 0.5 }", false, true),
        // between (strictly)
        ("check.between = { scalar = \"a\", min = 0.5, max = 1.5 }\ncontrol.offset = { scalar = \"a\", by = 1.0 }",
         true, false),
        ("check.between = { scalar = \"b\", min = 0.5, max = 1.5 }\ncontrol.swap = { a = \"a\", b = \"b\" }",
         false, true),
        // a = 1.5 is not strictly inside
        ("check.between = { scalar = \"a\", min = 0.5, max = 1.5 }\ncontrol.offset = { scalar = \"a\", by = 0.5 }",
         true, false),
        // near
        ("check.near = { scalar = \"a\", value = 1.0, tolerance = 0.1 }\n\
          control.offset = { scalar = \"a\", by = 0.2 }",
         true, false),
        ("check.near = { scalar = \"a\", value = 2.0, tolerance = 0.1 }\ncontrol.swap = { a = \"a\", b = \"b\" }",
         false, true),
        // matches: a is 4.8% from ref
        ("check.matches = { scalar = \"a\", reference = \"ref\", relative_tolerance = 0.1 }\n\
          control.scale = { scalar = \"a\", by = 1.5 }", true, false),
        ("check.matches = { scalar = \"b\", reference = \"ref\", relative_tolerance = 0.1 }\n\
          control.scale = { scalar = \"ref\", by = 2.0 }", false, true),
        // increasing
        ("check.increasing = { scalars = [\"a\", \"b\", \"c\"] }\ncontrol = \"reverse\"", true, false),
        ("check.increasing = { scalars = [\"c\", \"b\", \"a\"] }\ncontrol = \"reverse\"", false, true),
        ("check.increasing = { scalars = [\"a\", \"b\"] }\ncontrol = \"reverse\"", true, false),
        // decreasing
        ("check.decreasing = { scalars = [\"c\", \"b\", \"a\"] }\ncontrol.swap = { a = \"a\", b = \"c\" }",
         true, false),
        ("check.decreasing = { scalars = [\"a\", \"b\", \"c\"] }\ncontrol = \"reverse\"", false, true),
        // sharper
        ("check.sharper = { series = \"sharp\", than = \"wide\" }\ncontrol = \"reverse\"", true, false),
        ("check.sharper = { series = \"wide\", than = \"sharp\" }\ncontrol.swap = { a = \"wide\", b = \"sharp\" }",
         false, true),
        // logistic_beats_exponential
        ("check.logistic_beats_exponential = { series = [\"sharp\"], min_ratio = 3.0 }\n\
          control.exponential = { series = [\"sharp\"] }", true, false),
        ("check.logistic_beats_exponential = { series = [\"expo\"], min_ratio = 3.0 }\n\
          control.swap = { a = \"expo\", b = \"sharp\" }", false, true),
        // drop_width: an exponential decay spans 1.34 decades
        ("check.drop_width = { series = [\"sharp\"], max_decades = 1.0 }\n\
          control.exponential = { series = [\"sharp\"] }", true, false),
        ("check.drop_width = { series = [\"wide\"], max_decades = 1.5 }\n\
          control.exponential = { series = [\"wide\"] }", false, true),
        // the worst series decides: `wide` fails, and still fails as an exponential decay
        ("check.drop_width = { series = [\"sharp\", \"wide\"], max_decades = 1.0 }\n\
          control.swap = { a = \"wide\", b = \"expo\" }", false, false),
        // an undefined scalar fails every check, on the data and on any counterfactual
        ("check.at_most = { scalar = \"nan\", max = 1.0 }\ncontrol.offset = { scalar = \"nan\", by = 1.0 }",
         false, false),
        ("check.increasing = { scalars = [\"a\", \"nan\", \"c\"] }\ncontrol = \"reverse\"", false, false),
    ];
    for (lines, passed, control_passed) in cases {
        check(lines, *passed, *control_passed);
    }
}

#[test]
fn a_control_too_weak_to_flip_its_claim_is_caught() {
    let cases = [
        // 1.0 - 0.01 is still >= 0.5
        "check.at_least = { scalar = \"a\", min = 0.5 }\ncontrol.offset = { scalar = \"a\", by = -0.01 }",
        // 1.0 x 1.1 is still <= 1.5
        "check.at_most = { scalar = \"a\", max = 1.5 }\ncontrol.scale = { scalar = \"a\", by = 1.1 }",
        // b = 2 is in (0.5, 2.5) as well
        "check.between = { scalar = \"a\", min = 0.5, max = 2.5 }\ncontrol.swap = { a = \"a\", b = \"b\" }",
        // an exponential decay spans 1.34 decades, within 2
        "check.drop_width = { series = [\"sharp\"], max_decades = 2.0 }\n\
         control.exponential = { series = [\"sharp\"] }",
        // the reference moves by 2%, still within 10%
        "check.matches = { scalar = \"a\", reference = \"ref\", relative_tolerance = 0.1 }\n\
         control.scale = { scalar = \"ref\", by = 0.98 }",
        // a claim built in code without a control: none can flip it
        "check.at_least = { scalar = \"a\", min = 0.5 }",
    ];
    for lines in cases {
        let r = evaluate(lines);
        assert!(r.passed && r.control.passed, "{lines}\n{r:#?}");
        assert!(r.control_failed(), "a control that does not flip the claim is not reported:\n{lines}\n{r:#?}");
        assert!(!r.surprising(), "{lines}");
    }
    let r = evaluate("check.at_least = { scalar = \"a\", min = 0.5 }");
    assert_eq!(r.control.counterfactual, "none declared");
}

#[test]
fn a_claim_marked_not_holding_needs_a_control_that_passes() {
    let not_holding = "class = \"finding\"\nreason = \"the measurement does not support it\"";
    // Fails as declared; its control passes: the check can tell them apart.
    let r = evaluate(&format!(
        "check.at_least = {{ scalar = \"a\", min = 1.5 }}\n\
                               control.offset = {{ scalar = \"a\", by = 1.0 }}\n{not_holding}"
    ));
    assert!(!r.passed && r.control.passed && !r.expected_to_pass, "{r:#?}");
    assert!(!r.surprising() && !r.control_failed(), "{r:#?}");
    assert_eq!(r.reason.as_deref(), Some("the measurement does not support it"));
    // A control that fails as well cannot tell them apart.
    let r = evaluate(&format!(
        "check.at_least = {{ scalar = \"a\", min = 1.5 }}\n\
                               control.offset = {{ scalar = \"a\", by = 0.1 }}\n{not_holding}"
    ));
    assert!(!r.passed && !r.control.passed, "{r:#?}");
    assert!(r.control_failed(), "{r:#?}");
    // One that starts to hold is surprising.
    let r = evaluate(&format!(
        "check.at_least = {{ scalar = \"a\", min = 0.5 }}\n\
                               control.offset = {{ scalar = \"a\", by = -1.0 }}\n{not_holding}"
    ));
    assert!(r.passed && r.surprising(), "{r:#?}");
}

#[test]
fn results_record_what_was_measured_on_the_data_and_the_counterfactual() {
    let r = evaluate("check.at_least = { scalar = \"a\", min = 0.5 }\ncontrol.offset = { scalar = \"a\", by = -1.0 }");
    assert_eq!((r.measured, r.control.measured), (Some(1.0), Some(0.0)));
    assert_eq!(r.expected, ">= 0.5");
    assert_eq!(r.detail, "a = 1");
    assert_eq!(r.control.counterfactual, "\"a\" - 1");
    assert_eq!(r.control.detail, "a = 0");

    let r = evaluate("check.at_most = { scalar = \"a\", max = 1.5 }\ncontrol.scale = { scalar = \"a\", by = 2.0 }");
    assert_eq!((r.measured, r.control.measured), (Some(1.0), Some(2.0)));
    assert_eq!(r.control.counterfactual, "\"a\" x 2");

    // The smallest step in the claimed direction, negative once reversed.
    let r = evaluate("check.increasing = { scalars = [\"a\", \"b\", \"c\"] }\ncontrol = \"reverse\"");
    assert_eq!((r.measured, r.control.measured), (Some(1.0), Some(-1.0)));
    assert_eq!(r.control.detail, "a = 3; b = 2; c = 1");

    let r = evaluate(
        "check.near = { scalar = \"nan\", value = 1.0, tolerance = 0.1 }\n\
                      control.offset = { scalar = \"nan\", by = 1.0 }",
    );
    assert_eq!((r.measured, r.control.measured), (None, None));
    assert_eq!(r.detail, "nan = NaN");

    // The exponential control leaves the other series as they are.
    let r = evaluate(
        "check.drop_width = { series = [\"sharp\", \"wide\"], max_decades = 2.0 }\n\
                      control.exponential = { series = [\"sharp\"] }",
    );
    // A step 1 / (1 + t^slope) drops from 90% to 10% over 2 log10(9) / slope decades.
    let width = |slope: f64| 2.0 * 9f64.log10() / slope;
    assert!((r.measured.unwrap() - width(1.0)).abs() < 0.01, "{r:#?}");
    assert!((r.control.measured.unwrap() - width(1.0)).abs() < 0.01, "{r:#?}");
    assert!(r.detail.contains("; wide: 10%-90% drop over decades: 1.91"), "{}", r.detail);
    assert!(r.control.detail.starts_with("sharp: 10%-90% drop over decades: 1.34;"), "{}", r.control.detail);
}

#[test]
fn claims_are_evaluated_in_order_each_on_its_own_counterfactual() {
    let specs = [
        claim("check.at_least = { scalar = \"a\", min = 0.5 }\ncontrol.offset = { scalar = \"a\", by = -1.0 }"),
        // Sees a = 1, not the first claim's counterfactual a = 0.
        claim(
            "check.near = { scalar = \"a\", value = 1.0, tolerance = 0.0 }\n\
               control.offset = { scalar = \"a\", by = 0.5 }",
        ),
    ];
    let results = claims::evaluate(&specs, &body());
    let outcomes: Vec<(bool, bool)> = results.iter().map(|r| (r.passed, r.control.passed)).collect();
    assert_eq!(outcomes, [(true, false), (true, false)]);
}

// ---------------------------------------------------------------------------
// exponential_like and logistic_over_exponential

/// The exponential stand-in of (x, y) is y_end + (y_0 - y_end) 2^(-x / t_half)
/// at every x: the curve's endpoints (x starts at 0 and runs far past
/// t_half) and `t_half`, where the curve first is half-way between them.
fn check_exponential_like(x: &[f64], y: &[f64], t_half: f64) {
    let e = exponential_like(x, y);
    let (first, last) = (y[0], y[y.len() - 1]);
    assert_eq!(e.len(), y.len());
    assert_eq!(e[0], first, "{e:?}");
    assert!((e[e.len() - 1] - last).abs() < 1e-9, "{e:?}");
    for (t, v) in x.iter().zip(&e) {
        let expected = last + (first - last) * 2f64.powf(-t / t_half);
        assert!((v - expected).abs() < 1e-12, "at x = {t}: {v}, expected {expected} ({e:?})");
    }
}

#[test]
fn exponential_like_keeps_the_endpoints_and_the_half_way_time() {
    let x = [0.0, 50.0, 100.0, 150.0, 200.0, 1000.0, 10000.0];
    // Half-way at a logged point, falling, rising, and away from 0 and 1.
    check_exponential_like(&x, &[1.0, 1.0, 0.5, 0.0, 0.0, 0.0, 0.0], 100.0);
    check_exponential_like(&x, &[0.0, 0.0, 0.5, 1.0, 1.0, 1.0, 1.0], 100.0);
    check_exponential_like(&x, &[3.0, 3.0, 2.0, 1.0, 1.0, 1.0, 1.0], 100.0);
    // Half-way between two logged points (0.7 at 40, 0.3 at 80): at 60.
    let x = [0.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 10000.0];
    check_exponential_like(&x, &[1.0, 1.0, 0.9, 0.7, 0.3, 0.1, 0.0, 0.0], 60.0);
    // A plateau becomes a plain decay: no longer flat where the curve was.
    let e = exponential_like(&x, &[1.0, 1.0, 0.9, 0.7, 0.3, 0.1, 0.0, 0.0]);
    assert!(e[1] < 0.9 && e.windows(2).all(|w| w[1] < w[0]), "{e:?}");
    // The training-log shape: a logistic step centred at t = 100.
    let t = times();
    let y = step(100.0, 4.0);
    let half = 0.5 * (y[0] + y[y.len() - 1]);
    assert!((half - 0.5).abs() < 1e-12);
    let e = exponential_like(&t, &y);
    let at_100 = t.iter().position(|&x| x == 100.0).unwrap();
    assert!((y[at_100] - 0.5).abs() < 1e-12 && (e[at_100] - 0.5).abs() < 0.01, "{}", e[at_100]);
    assert_eq!(e[0], 1.0);
    assert!(e[e.len() - 1].abs() < 1e-9);
    // Nothing to do for an empty curve.
    assert!(exponential_like(&[], &[]).is_empty());
}

#[test]
fn the_logistic_fit_beats_the_exponential_only_where_there_is_a_plateau() {
    let t = times();
    let curve = |f: &dyn Fn(f64) -> f64| series("curve", &t, &t.iter().map(|&t| f(t)).collect::<Vec<_>>());
    // (curve, ratio above `min`, ratio below `max`)
    let cases: [(Series, f64, f64); 6] = [
        (curve(&|t| (-t / 100.0).exp()), 0.0, 1.0),
        (curve(&|t| 0.2 + 0.8 * (-t / 30.0).exp()), 0.0, 1.0),
        (series("curve", &t, &exponential_like(&t, &step(1000.0, 3.0))), 0.0, 1.0),
        // Flat for 4 decades, then a drop: a step in log t.
        (series("curve", &t, &step(1000.0, 3.0)), 3.0, f64::INFINITY),
        (series("curve", &t, &step(100.0, 4.0)), 3.0, f64::INFINITY),
        (series("curve", &t, &step(10.0, 2.0)), 3.0, f64::INFINITY),
    ];
    for (i, (s, min, max)) in cases.iter().enumerate() {
        let ratio = logistic_over_exponential(s);
        assert!(ratio > *min && ratio < *max, "case {i}: ratio {ratio}, expected in ({min}, {max})");
    }
    // Too few points (x <= 0 left out) to fit three parameters.
    let few = series("few", &[0.0, 1.0, 10.0, 100.0], &[1.0, 1.0, 0.5, 0.0]);
    assert!(logistic_over_exponential(&few).is_nan());
}

#[test]
fn transition_width_measures_the_drop_in_decades() {
    let t = times();
    let width = |y: Vec<f64>| transition_width(&series("curve", &t, &y));
    // (curve, expected width, tolerance): the 10%-90% drop of a step
    // 1 / (1 + t^slope) spans 2 log10(9) / slope decades, that of any
    // exponential decay log10(ln 10 / ln(10 / 9)) = 1.34, whatever its time scale.
    let exponential = (10f64.ln() / (10.0 / 9.0f64).ln()).log10();
    let cases = [
        (step(100.0, 1.0), 2.0 * 9f64.log10(), 0.01),
        (step(100.0, 4.0), 0.5 * 9f64.log10(), 0.03),
        (t.iter().map(|t| (-t / 100.0).exp()).collect(), exponential, 0.01),
        (t.iter().map(|t| (-t / 3.0).exp()).collect(), exponential, 0.01),
        (exponential_like(&t, &step(1000.0, 3.0)), exponential, 0.01),
    ];
    for (i, (y, expected, tolerance)) in cases.into_iter().enumerate() {
        let w = width(y);
        assert!((w - expected).abs() < tolerance, "case {i}: {w}, expected {expected}");
    }
    // Never down to 10%: infinitely wide; already dropping at the first x > 0: undefined.
    assert_eq!(width(t.iter().map(|t| 0.5 + 0.5 / (1.0 + t / 100.0)).collect()), f64::INFINITY);
    assert!(width(t.iter().map(|t| (-t * 100.0).exp()).collect()).is_nan());
}

// ---------------------------------------------------------------------------
// Spec errors: a claim that cannot be tested is rejected, at its line

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/controls.toml")
}

fn fixture_text() -> String {
    std::fs::read_to_string(fixture_path()).unwrap()
}

fn edited(edits: &[(&str, &str)]) -> String {
    let mut text = fixture_text();
    for (from, to) in edits {
        assert!(text.contains(from), "the fixture has no {from:?}");
        text = text.replacen(from, to, 1);
    }
    text
}

/// 1-based line and column of the first `needle` in `text`.
fn position(text: &str, needle: &str) -> (usize, usize) {
    let at = text.find(needle).unwrap_or_else(|| panic!("no {needle:?} in the edited spec"));
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    (text[..at].matches('\n').count() + 1, text[line_start..at].chars().count() + 1)
}

/// The fixture with `edits` is rejected with exactly one error, on the line of
/// `at` (and, where `exact_column`, at its first character), whose message
/// holds every one of `expect`.
fn spec_error(edits: &[(&str, &str)], at: &str, exact_column: bool, expect: &[&str]) {
    let text = edited(edits);
    let errors = match spec::parse(Path::new("controls.toml"), &text) {
        Ok(_) => panic!("accepted a spec edited with {edits:?}"),
        Err(e) => e,
    };
    let shown = errors.to_string();
    assert_eq!(errors.0.len(), 1, "expected one error:\n{shown}");
    let e = &errors.0[0];
    let (line, column) = position(&text, at);
    assert_eq!(e.line, line, "wrong line (expected that of {at:?}):\n{shown}");
    if exact_column {
        assert_eq!(e.column, column, "wrong column (expected that of {at:?}):\n{shown}");
    }
    assert!(e.source_line.contains(at.lines().next().unwrap()), "{shown}");
    assert!(shown.starts_with(&format!("controls.toml:{line}:{}: ", e.column)), "no file:line:col prefix:\n{shown}");
    for expect in expect {
        assert!(e.message.contains(expect), "the message lacks {expect:?}:\n{shown}");
    }
    assert!(shown.contains("nothing was run or written"), "{shown}");
}

const GRID_CLAIM: &str = "every grid point away from the boundary ends where the analytic rule says";
const DRIFT_CLAIM: &str = "trained trajectories stay on their hyperbola y^2 - z^2 = const while in view";
const GRID_CHECK: &str = "check.at_least = { scalar = \"grid agreement\", min = 1.0 }";
const GRID_CONTROL: &str = "control.offset = { scalar = \"grid agreement\", by = -1000.0 }";
const DRIFT_CONTROL: &str = "control.offset = { scalar = \"largest hyperbola drift\", by = 1000.0 }";

#[test]
fn the_fixture_is_valid() {
    let paper = spec::parse(&fixture_path(), &fixture_text()).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<&str> = paper.figures.iter().map(|f| f.id()).collect();
    assert_eq!(ids, ["phase-diagram", "phase-diagram-unrun"]);
    assert!(paper.figures.iter().flat_map(|f| &f.claims).all(|c| c.control.is_some()));
}

#[test]
fn a_claim_without_a_negative_control_is_rejected_at_its_check() {
    let no_control = format!("claim {GRID_CLAIM:?} has no negative control");
    let expect = [no_control.as_str(), "`control.<kind>`", "must fail"];
    spec_error(&[(&format!("{GRID_CONTROL}\n"), "")], GRID_CHECK, true, &expect);
    // One marked not holding needs a control under which it passes.
    let finding = format!("name = {GRID_CLAIM:?}\nclass = \"finding\"\nreason = \"a test\"");
    spec_error(
        &[(&format!("{GRID_CONTROL}\n"), ""), (&format!("name = {GRID_CLAIM:?}\nclass = \"consistency\""), &finding)],
        GRID_CHECK,
        true,
        &[&no_control, "must pass"],
    );
}

#[test]
fn a_control_that_cannot_change_what_the_check_reads_is_rejected_at_the_control() {
    let drift = format!("claim {DRIFT_CLAIM:?}: control: ");
    let grid = format!("claim {GRID_CLAIM:?}: control: ");
    #[rustfmt::skip]
    let cases: &[(&str, &str, &[&str])] = &[
        // reverse on a check with no order
        (DRIFT_CONTROL, "control = \"reverse\"",
         &[&drift, "`reverse` turns around an ordering", "this check has none"]),
        // an offset of a scalar the check does not read
        (GRID_CONTROL, "control.offset = { scalar = \"largest hyperbola drift\", by = -5.0 }",
         &[&grid, "it changes \"largest hyperbola drift\", which this check does not read"]),
        (GRID_CONTROL, "control.scale = { scalar = \"grid points checked\", by = 2.0 }",
         &[&grid, "it changes \"grid points checked\", which this check does not read"]),
        // a swap naming something the figure does not have
        (GRID_CONTROL, "control.swap = { a = \"grid agreement\", b = \"no such scalar\" }",
         &[&grid, "swap names \"no such scalar\", which is neither a series, a scalar nor samples of the figure"]),
        (GRID_CONTROL, "control.swap = { a = \"c9 (trained)\", b = \"grid agreement\" }",
         &[&grid, "swap names \"c9 (trained)\", which is neither a series, a scalar nor samples"]),
        // a swap of two real names, neither read by the check
        (GRID_CONTROL, "control.swap = { a = \"c1 (trained)\", b = \"c1 (theory)\" }",
         &[&grid, "swap changes neither \"c1 (trained)\" nor \"c1 (theory)\" for this check"]),
        (GRID_CONTROL, "control.swap = { a = \"grid agreement\", b = \"grid agreement\" }",
         &[&grid, "swap needs two different names"]),
        (GRID_CONTROL, "control.offset = { scalar = \"grid agreement\", by = nan }",
         &[&grid, "expected a finite `by`"]),
        // an exponential of a series the check does not read
        (GRID_CONTROL, "control.exponential = { series = [\"c1 (trained)\"] }",
         &[&grid, "it changes \"c1 (trained)\", which this check does not read"]),
    ];
    for (from, to, expect) in cases {
        spec_error(&[(from, to)], to, false, expect);
    }
}

/// The caption is a multi-line basic string with line continuations; a bad
/// placeholder is reported at its own line and column, not the caption's.
#[test]
fn a_bad_caption_placeholder_is_rejected_at_its_place() {
    let caption = "figure \"phase-diagram\": caption: ";
    #[rustfmt::skip]
    let cases: &[(&str, &str, &[&str])] = &[
        ("{config.learning_rate}", "{config.no_such_key}",
         &[caption, "`{config.no_such_key}` names no value of the experiment's config; its keys:", "learning_rate"]),
        ("{config.steps}", "{config.grid.no_such_key}", &["`{config.grid.no_such_key}` names no value"]),
        ("{config.seed_count}", "{config.start.7.name}", &["`{config.start.7.name}` names no value"]),
        ("{scalar.grid agreement|3}", "{scalar.no such scalar}",
         &[caption, "`{scalar.no such scalar}` names no scalar of the figure; expected one of: grid agreement"]),
        ("{scalar.grid agreement|3}", "{scalar.grid agreement|9}",
         &["`|9`: expected a number of significant digits from 1 to 8"]),
        ("{config.steps}", "{steps}", &["`{steps}`: expected `{config.PATH}` or `{scalar.NAME}`"]),
        // The last `{` of the caption, left open (on the caption's last line).
        ("{scalar.grid agreement|3}", "{scalar.grid agreement|3",
         &[caption, "a `{` without its closing `}` (write `{{` for a literal brace)"]),
    ];
    for (from, to, expect) in cases {
        spec_error(&[(from, to)], to, true, expect);
    }
    // The placeholders that are right fill in from the config.
    let paper = spec::parse(&fixture_path(), &fixture_text()).unwrap();
    let fig = &paper.figures[0];
    let config = learning_dynamics::caption::experiment_config(&fig.experiment);
    let scalars = [("grid agreement".to_string(), 0.96875)].into_iter().collect();
    let filled = learning_dynamics::caption::fill(fig.caption.get_ref(), &config, &scalars);
    assert_eq!(
        filled,
        "Small test configuration: 2 seeds per grid point, learning rate 0.01 for 2500 steps; grid agreement 0.969."
    );
}

// ---------------------------------------------------------------------------
// The binary

fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("cannot start paper-figures")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `paper-figures --spec SPEC figures --only phase-diagram --jobs 2 EXTRA...`.
fn figures(spec: &Path, cache: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["--only", "phase-diagram", "--jobs", "2"];
    args.extend_from_slice(extra);
    output(&mut common::figures_command(spec, cache, out, &args))
}

/// `paper-figures --spec SPEC list --out OUT`: each figure's id and status.
fn list(spec: &Path, out: &Path) -> Vec<(String, String)> {
    let mut cmd = Command::new(common::binary());
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).arg("--spec").arg(spec).arg("list").arg("--out").arg(out);
    let result = output(&mut cmd);
    assert!(result.status.success(), "{}", stderr(&result));
    // "<id>  (<kind>, <status>)" lines; claims and titles are indented; the
    // counts of each class close the list after an empty line.
    let text = stdout(&result);
    let (figures, counts) = text.split_once("\n\nclaims: ").expect("the counts of each class");
    assert!(counts.starts_with("evidence ") && counts.contains(", consistency ") && counts.contains(", findings "));
    figures
        .lines()
        .filter(|l| !l.starts_with(' '))
        .map(|l| {
            let (id, rest) = l.split_once("  (").unwrap_or_else(|| panic!("not a figure line: {l:?}"));
            let status = rest.strip_suffix(')').and_then(|r| r.rsplit_once(", ")).expect("kind, status").1;
            (id.to_string(), status.to_string())
        })
        .collect()
}

fn statuses(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

/// The fixture with each `(from, to)` replaced once, written to `dir`.
fn fixture_with(dir: &Path, name: &str, edits: &[(&str, &str)]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, edited(edits)).unwrap();
    path
}

#[test]
fn stray_figure_files_fail_the_check_and_a_run_removes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = fixture_path();
    let (cache, out) = (tmp.path().join("cache"), tmp.path().join("out"));
    let written = figures(&spec, &cache, &out, &[]);
    assert!(written.status.success(), "{}", stderr(&written));
    let json = out.join("phase-diagram.json");
    let data: FigureData = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(data.caption.starts_with("Small test configuration: 2 seeds per grid point, learning rate 0.01 for 2500"));
    let clean = figures(&spec, &cache, &out, &["--check"]);
    assert!(clean.status.success(), "{}", stderr(&clean));
    assert!(stdout(&clean).contains("check: 1 figure(s) match"), "{}", stdout(&clean));

    // A figure removed from the spec, and files that are not figures.
    let mut old: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    old["id"] = "old-figure".into();
    let stray = [out.join("old-figure.json"), out.join("old-figure.svg")];
    std::fs::write(&stray[0], serde_json::to_string_pretty(&old).unwrap()).unwrap();
    std::fs::copy(out.join("phase-diagram.svg"), &stray[1]).unwrap();
    let kept = [out.join("notes.json"), out.join("drawing.svg")];
    std::fs::write(&kept[0], "{\"id\": \"notes\"}").unwrap();
    std::fs::write(&kept[1], "<svg/>").unwrap();

    let checked = figures(&spec, &cache, &out, &["--check"]);
    let err = stderr(&checked);
    assert_eq!(checked.status.code(), Some(1), "{err}");
    for path in &stray {
        let line = format!("{} belongs to no figure of {} (removed or renamed?)", path.display(), spec.display());
        assert!(err.contains(&line), "no {line:?} in:\n{err}");
        assert!(path.exists(), "--check removed {}", path.display());
    }
    assert!(err.contains("check failed"), "{err}");
    assert!(!err.contains("notes.json") && !err.contains("drawing.svg"), "{err}");

    let cleaned = figures(&spec, &cache, &out, &[]);
    let said = stdout(&cleaned);
    assert!(cleaned.status.success(), "{}", stderr(&cleaned));
    for path in &stray {
        let line = format!("removed {}: no figure of {} produces it", path.display(), spec.display());
        assert!(said.contains(&line), "no {line:?} in:\n{said}");
        assert!(!path.exists(), "{} is still there", path.display());
    }
    assert!(kept.iter().chain([&json]).all(|p| p.exists()), "a run removed a file that is not a stray figure");
    let gallery = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(gallery.contains("phase-diagram.svg") && !gallery.contains("old-figure"), "{gallery}");
    let again = figures(&spec, &cache, &out, &["--check"]);
    assert!(again.status.success(), "{}", stderr(&again));
}

#[test]
fn list_marks_figures_current_stale_or_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = fixture_path();
    let out = tmp.path().join("out");
    assert_eq!(list(&spec, &out), statuses(&[("phase-diagram", "missing"), ("phase-diagram-unrun", "missing")]));
    let written = figures(&spec, &tmp.path().join("cache"), &out, &[]);
    assert!(written.status.success(), "{}", stderr(&written));
    assert_eq!(list(&spec, &out), statuses(&[("phase-diagram", "current"), ("phase-diagram-unrun", "missing")]));

    // Another learning rate (of the first figure only), or another claim: stale.
    let rate = fixture_with(tmp.path(), "rate.toml", &[("learning_rate = 0.01", "learning_rate = 0.02")]);
    assert_eq!(list(&rate, &out), statuses(&[("phase-diagram", "STALE"), ("phase-diagram-unrun", "missing")]));
    let threshold = fixture_with(tmp.path(), "claim.toml", &[("max = 0.02 }", "max = 0.03 }")]);
    assert_eq!(list(&threshold, &out), statuses(&[("phase-diagram", "STALE"), ("phase-diagram-unrun", "missing")]));
    // A JSON that does not parse as figure data is stale, not missing.
    std::fs::write(out.join("phase-diagram-unrun.json"), "{}").unwrap();
    assert_eq!(list(&spec, &out), statuses(&[("phase-diagram", "current"), ("phase-diagram-unrun", "STALE")]));
}

#[test]
fn a_control_that_cannot_flip_its_claim_fails_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    // Agreement is a fraction: >= 0 holds, and still holds 0.5 higher.
    let spec = fixture_with(
        tmp.path(),
        "weak.toml",
        &[(
            &format!("{GRID_CHECK}\n{GRID_CONTROL}"),
            "check.at_least = { scalar = \"grid agreement\", min = 0.0 }\n\
            control.offset = { scalar = \"grid agreement\", by = 0.5 }",
        )],
    );
    let (cache, out) = (tmp.path().join("cache"), tmp.path().join("out"));
    let result = figures(&spec, &cache, &out, &[]);
    let err = stderr(&result);
    assert_eq!(result.status.code(), Some(1), "{err}");
    let line = format!(
        "error: claim phase-diagram / {GRID_CLAIM}: its negative control (\"grid agreement\" + 0.5) passes as well"
    );
    assert!(err.contains(&line) && err.contains("negative control"), "no {line:?} in:\n{err}");
    assert!(!err.contains(DRIFT_CLAIM), "the other claim's control flipped it:\n{err}");
    // Written all the same, with the control's outcome and the gallery's verdict.
    let data: FigureData = serde_json::from_slice(&std::fs::read(out.join("phase-diagram.json")).unwrap()).unwrap();
    let claim = data.claims.iter().find(|c| c.name == GRID_CLAIM).unwrap();
    assert!(claim.passed && claim.control.passed && claim.control_failed(), "{claim:#?}");
    let gallery = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(gallery.contains("**did not flip**"), "{gallery}");
    // --check fails on it too.
    let checked = figures(&spec, &cache, &out, &["--check"]);
    assert_eq!(checked.status.code(), Some(1), "{}", stderr(&checked));
    assert!(stderr(&checked).contains(&line), "{}", stderr(&checked));
}

#[test]
fn an_interval_check_decides_on_the_interval_of_the_mean() {
    // A clear effect: its interval lies above 0.2; swapped for the null arm, it does not.
    let effect = "check.interval = { samples = \"effect\", min = 0.2, level = 0.95 }\n\
                  control.swap = { a = \"effect\", b = \"null\" }";
    check(effect, true, false);
    let r = evaluate(effect);
    assert!(
        r.detail.contains("n = 6") && r.detail.contains("95% interval ["),
        "the claim shows n and its interval: {r:#?}"
    );
    // An equivalence claim: the null arm's interval lies inside (-0.1, 0.1); the effect's does not.
    check(
        "check.interval = { samples = \"null\", min = -0.1, max = 0.1, level = 0.95 }\n\
         control.swap = { a = \"null\", b = \"effect\" }",
        true,
        false,
    );
    // A mean above the bound is not enough: the interval of the null arm reaches below 0.
    check(
        "check.interval = { samples = \"null\", min = -0.02, level = 0.95 }\n\
         control.swap = { a = \"null\", b = \"effect\" }",
        false,
        true,
    );
    // One value has no interval: the claim fails rather than pass on nothing.
    let one = evaluate(
        "check.interval = { samples = \"one\", min = 0.0, level = 0.95 }\n\
                        control.swap = { a = \"one\", b = \"effect\" }",
    );
    assert!(!one.passed && one.measured == Some(0.3), "{one:#?}");
}

#[test]
fn an_evidence_claim_needs_counterfactual_data_as_its_control() {
    // The grid claim as evidence, with its offset control: refused at the control.
    let evidence = format!("name = {GRID_CLAIM:?}\nclass = \"evidence\"");
    spec_error(
        &[(&format!("name = {GRID_CLAIM:?}\nclass = \"consistency\""), &evidence)],
        GRID_CONTROL,
        true,
        &["is evidence", "counterfactual data", "`offset` only moves the claim's own number"],
    );
    // With another arm's data swapped in, it is accepted.
    let text = edited(&[
        (&format!("name = {GRID_CLAIM:?}\nclass = \"consistency\""), &evidence),
        (
            GRID_CONTROL,
            "control.swap = { a = \"grid agreement\", b = \"grid agreement of the naive rule (learns iff z0 > 0)\" }",
        ),
    ]);
    spec::parse(Path::new("controls.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn only_a_finding_gives_a_reason() {
    let with_reason = format!("name = {GRID_CLAIM:?}\nclass = \"consistency\"\nreason = \"why not\"");
    spec_error(
        &[(&format!("name = {GRID_CLAIM:?}\nclass = \"consistency\""), &with_reason)],
        "class = \"consistency\"\nreason",
        false,
        &["has a `reason` but is expected to hold"],
    );
}

#[test]
fn the_summary_counts_each_class() {
    let mut results = claims::evaluate(
        &[
            claim("check.at_least = { scalar = \"a\", min = 0.5 }\ncontrol.offset = { scalar = \"a\", by = -1.0 }"),
            claim(
                "class = \"evidence\"\ncheck.at_least = { scalar = \"b\", min = 1.5 }\n\
                 control.swap = { a = \"b\", b = \"nan\" }",
            ),
            claim(
                "class = \"finding\"\nreason = \"r\"\ncheck.at_least = { scalar = \"a\", min = 5.0 }\n\
                 control.offset = { scalar = \"a\", by = 10.0 }",
            ),
        ],
        &body(),
    );
    assert_eq!(learning_dynamics::figure::class_counts(&results), "evidence 1/1, consistency 1/1, findings 1");
    results[2].passed = true;
    assert_eq!(
        learning_dynamics::figure::class_counts(&results),
        "evidence 1/1, consistency 1/1, findings 0/1 as declared"
    );
}
