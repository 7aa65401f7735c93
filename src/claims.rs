//! Claims: computed from a figure's data, never typed in, and each run once
//! more on a declared counterfactual of that data (its negative control),
//! where it must give the opposite outcome.

use crate::figure::{ClaimResult, ControlResult, FigureBody, Series};
use crate::shapes::{exponential_like, logistic_over_exponential, transition_width};
use crate::spec::{Check, ClaimSpec, Control};

/// Evaluates every claim of a figure on its data, and on its control.
pub fn evaluate(claims: &[ClaimSpec], body: &FigureBody) -> Vec<ClaimResult> {
    claims.iter().map(|c| evaluate_one(c, body)).collect()
}

/// What a check found: whether it passed, the number it tested, what it
/// tested it against and the per-item values.
struct Outcome {
    passed: bool,
    measured: f64,
    expected: String,
    detail: String,
}

fn evaluate_one(claim: &ClaimSpec, body: &FigureBody) -> ClaimResult {
    let check = claim.check.get_ref();
    let outcome = run_check(check, body);
    let control = match &claim.control {
        Some(control) => {
            let (counterfactual, perturbed) = perturb(control.get_ref(), check, body);
            let o = run_check(check, &perturbed);
            ControlResult { counterfactual, passed: o.passed, measured: rounded(o.measured), detail: o.detail }
        }
        // Rejected when the spec is loaded; a claim built without one in
        // code has a control that cannot flip it.
        None => ControlResult {
            counterfactual: "none declared".into(),
            passed: outcome.passed,
            measured: rounded(outcome.measured),
            detail: String::new(),
        },
    };
    ClaimResult {
        name: claim.name.clone(),
        passed: outcome.passed,
        expected_to_pass: claim.holds(),
        measured: rounded(outcome.measured),
        expected: outcome.expected,
        detail: outcome.detail,
        reason: claim.reason.clone(),
        class: *claim.class.get_ref(),
        control,
    }
}

/// Rounded like the rest of the figure data, so the JSON round-trips exactly.
fn rounded(v: f64) -> Option<f64> {
    v.is_finite().then(|| crate::figure::round_sig(v, 6))
}

fn run_check(check: &Check, body: &FigureBody) -> Outcome {
    // Names were validated against the experiment's outputs before running,
    // so a missing one here is a bug in the experiment, reported as a failure.
    let scalar = |name: &str| body.scalars.get(name).copied().unwrap_or(f64::NAN);
    let series = |name: &str| body.series(name);
    // The worst of several values; NaN wins, so an undefined one fails.
    let worst = |values: &[f64], low_is_bad: bool| {
        values.iter().copied().fold(if low_is_bad { f64::INFINITY } else { f64::NEG_INFINITY }, |a, b| {
            if a.is_nan() || b.is_nan() {
                f64::NAN
            } else if low_is_bad {
                a.min(b)
            } else {
                a.max(b)
            }
        })
    };
    let per_series = |names: &[String], f: &dyn Fn(&Series) -> f64, what: &str| -> (Vec<f64>, String) {
        let values: Vec<f64> = names.iter().map(|n| series(n).map_or(f64::NAN, f)).collect();
        let detail =
            names.iter().zip(&values).map(|(n, v)| format!("{n}: {what} {}", fmt(*v))).collect::<Vec<_>>().join("; ");
        (values, detail)
    };
    match check {
        Check::AtLeast { scalar: name, min } => {
            let v = scalar(name);
            Outcome {
                passed: v >= *min,
                measured: v,
                expected: format!(">= {min}"),
                detail: format!("{name} = {}", fmt(v)),
            }
        }
        Check::AtMost { scalar: name, max } => {
            let v = scalar(name);
            Outcome {
                passed: v <= *max,
                measured: v,
                expected: format!("<= {max}"),
                detail: format!("{name} = {}", fmt(v)),
            }
        }
        Check::Between { scalar: name, min, max } => {
            let v = scalar(name);
            Outcome {
                passed: *min < v && v < *max,
                measured: v,
                expected: format!("strictly between {min} and {max}"),
                detail: format!("{name} = {}", fmt(v)),
            }
        }
        Check::LogisticBeatsExponential { series: names, min_ratio } => {
            let (ratios, detail) = per_series(names, &logistic_over_exponential, "exponential/logistic residual ratio");
            let w = worst(&ratios, true);
            Outcome {
                passed: w >= *min_ratio,
                measured: w,
                expected: format!("ratio >= {min_ratio} for every series"),
                detail,
            }
        }
        Check::DropWidth { series: names, max_decades } => {
            let (widths, detail) = per_series(names, &transition_width, "10%-90% drop over decades:");
            let w = worst(&widths, false);
            Outcome {
                passed: w <= *max_decades,
                measured: w,
                expected: format!("<= {max_decades} decades for every series"),
                detail,
            }
        }
        Check::Near { scalar: name, value, tolerance } => {
            let v = scalar(name);
            Outcome {
                passed: (v - value).abs() <= *tolerance,
                measured: v,
                expected: format!("{value} +- {tolerance}"),
                detail: format!("{name} = {}", fmt(v)),
            }
        }
        Check::Matches { scalar: name, reference, relative_tolerance } => {
            let (v, r) = (scalar(name), scalar(reference));
            let gap = ((v - r) / r).abs();
            Outcome {
                passed: gap <= *relative_tolerance,
                measured: v,
                expected: format!("{reference} = {} +- {}%", fmt(r), fmt(100.0 * relative_tolerance)),
                detail: format!("{name} = {}, {}% from {}", fmt(v), fmt(100.0 * gap), fmt(r)),
            }
        }
        Check::Increasing { scalars } | Check::Decreasing { scalars } => {
            let up = matches!(check, Check::Increasing { .. });
            let values: Vec<f64> = scalars.iter().map(|n| scalar(n)).collect();
            // The smallest step in the claimed direction: > 0 iff the claim holds.
            let steps: Vec<f64> = values.windows(2).map(|w| if up { w[1] - w[0] } else { w[0] - w[1] }).collect();
            let step = worst(&steps, true);
            let detail =
                scalars.iter().zip(&values).map(|(n, v)| format!("{n} = {}", fmt(*v))).collect::<Vec<_>>().join("; ");
            let direction = if up { "larger" } else { "smaller" };
            Outcome {
                passed: step > 0.0,
                measured: step,
                expected: format!("each {direction} than the one before (smallest step > 0)"),
                detail,
            }
        }
        Check::Interval { samples: name, min, max, level } => {
            let values = body.samples.get(name).map_or(&[][..], Vec::as_slice);
            let i = crate::stats::mean_interval(values, *level);
            let bounds = [min.map(|m| format!("above {m}")), max.map(|m| format!("below {m}"))];
            let within = min.is_none_or(|m| i.lo > m) && max.is_none_or(|m| i.hi < m);
            Outcome {
                passed: within,
                measured: i.mean,
                expected: format!(
                    "{}% interval of the mean wholly {}",
                    fmt(100.0 * level),
                    bounds.into_iter().flatten().collect::<Vec<_>>().join(" and ")
                ),
                detail: format!(
                    "{name}: n = {}, mean {}, {}% interval [{}, {}] (Student's t)",
                    i.n,
                    fmt(i.mean),
                    fmt(100.0 * level),
                    fmt(i.lo),
                    fmt(i.hi)
                ),
            }
        }
        Check::Sharper { series: a, than: b } => {
            let wa = series(a).map_or(f64::NAN, transition_width);
            let wb = series(b).map_or(f64::NAN, transition_width);
            Outcome {
                passed: wa < wb,
                measured: wa,
                expected: format!("< {} decades (width of {b})", fmt(wb)),
                detail: format!("10%-90% drop: {a} {} decades, {b} {} decades", fmt(wa), fmt(wb)),
            }
        }
    }
}

/// The figure's data under a claim's counterfactual, and that counterfactual in words.
fn perturb(control: &Control, check: &Check, body: &FigureBody) -> (String, FigureBody) {
    let mut out = body.clone();
    let what = match control {
        Control::Reverse => {
            let names: Vec<String> = match check {
                Check::Sharper { series, than } => vec![series.clone(), than.clone()],
                _ => check.scalar_names().into_iter().map(String::from).collect(),
            };
            for (a, b) in names.iter().zip(names.iter().rev()).take(names.len() / 2) {
                swap(&mut out, a, b);
            }
            "the order reversed".to_string()
        }
        Control::Swap { a, b } => {
            swap(&mut out, a, b);
            format!("{a:?} and {b:?} trade values")
        }
        Control::Offset { scalar, by } => {
            if let Some(v) = out.scalars.get_mut(scalar) {
                *v += by;
            }
            format!("{scalar:?} {} {}", if *by < 0.0 { "-" } else { "+" }, fmt(by.abs()))
        }
        Control::Scale { scalar, by } => {
            if let Some(v) = out.scalars.get_mut(scalar) {
                *v *= by;
            }
            format!("{scalar:?} x {}", fmt(*by))
        }
        Control::Exponential { series } => {
            for s in out.series.iter_mut().filter(|s| series.contains(&s.name)) {
                s.y = exponential_like(&s.x, &s.y);
                s.band = None;
            }
            "each curve replaced by an exponential decay in t with the same endpoints and half-way time (no plateau)"
                .into()
        }
    };
    (what, out)
}

/// Swaps two scalars, two sets of samples, or the points of two series
/// (their names, panels and styles stay).
fn swap(body: &mut FigureBody, a: &str, b: &str) {
    if let (Some(va), Some(vb)) = (body.samples.get(a).cloned(), body.samples.get(b).cloned()) {
        body.samples.insert(a.into(), vb);
        body.samples.insert(b.into(), va);
    }
    if let (Some(&va), Some(&vb)) = (body.scalars.get(a), body.scalars.get(b)) {
        body.scalars.insert(a.into(), vb);
        body.scalars.insert(b.into(), va);
    }
    let ia = body.series.iter().position(|s| s.name == a);
    let ib = body.series.iter().position(|s| s.name == b);
    if let (Some(ia), Some(ib)) = (ia, ib) {
        if ia != ib {
            let (lo, hi) = (ia.min(ib), ia.max(ib));
            let (left, right) = body.series.split_at_mut(hi);
            let (sa, sb) = (&mut left[lo], &mut right[0]);
            std::mem::swap(&mut sa.x, &mut sb.x);
            std::mem::swap(&mut sa.y, &mut sb.y);
            std::mem::swap(&mut sa.band, &mut sb.band);
        }
    }
}

fn fmt(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        "inf".into()
    } else {
        format!("{}", crate::figure::round_sig(v, 3))
    }
}
