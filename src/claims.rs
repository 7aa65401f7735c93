//! Claims: computed from a figure's data, never typed in, and each run once
//! more on a declared counterfactual of that data (its negative control),
//! where it must give the opposite outcome.

use crate::figure::{ClaimResult, ControlResult, FigureBody, Series};
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
        expected_to_pass: claim.holds,
        measured: rounded(outcome.measured),
        expected: outcome.expected,
        detail: outcome.detail,
        reason: claim.reason.clone(),
        class: claim.class,
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

/// Swaps two scalars, or the points of two series (their names, panels and
/// styles stay).
fn swap(body: &mut FigureBody, a: &str, b: &str) {
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

/// y_end + (y_0 - y_end) e^(-x / tau), with tau set so that it is half-way
/// between its endpoints where the given curve first is.
pub fn exponential_like(x: &[f64], y: &[f64]) -> Vec<f64> {
    let (Some(&first), Some(&last)) = (y.first(), y.last()) else { return y.to_vec() };
    let half = 0.5 * (first + last);
    let falling = first > last;
    let crossing = (1..x.len()).find(|&i| if falling { y[i] <= half } else { y[i] >= half }).map(|i| {
        let (x0, x1, y0, y1) = (x[i - 1], x[i], y[i - 1], y[i]);
        x0 + (x1 - x0) * (y0 - half) / (y0 - y1)
    });
    let tau = crossing.filter(|t| *t > 0.0).map_or(1.0, |t| t / std::f64::consts::LN_2);
    x.iter().map(|t| last + (first - last) * (-t / tau).exp()).collect()
}

/// Residual sum of squares of the best exponential decay in x (y = c + a
/// e^(-x / tau)) over that of the best logistic step in ln x (y = a sigma(-(ln
/// x - mu) / w)), both with three parameters: above 1 where the curve is
/// better described as a plateau then a drop than as a plain decay. Points
/// at x <= 0 are left out of both fits (the log axis cannot place them).
pub fn logistic_over_exponential(s: &Series) -> f64 {
    let pts: Vec<(f64, f64)> =
        s.x.iter().zip(&s.y).filter(|(x, y)| **x > 0.0 && y.is_finite()).map(|(x, y)| (*x, *y)).collect();
    if pts.len() < 4 {
        return f64::NAN;
    }
    let (xs, ys): (Vec<f64>, Vec<f64>) = pts.into_iter().unzip();
    let logistic = fit_logistic_in_log_x(&xs, &ys);
    let exponential = fit_exponential(&xs, &ys);
    let total: f64 = {
        let mean = ys.iter().sum::<f64>() / ys.len() as f64;
        ys.iter().map(|y| (y - mean).powi(2)).sum()
    };
    // Residuals below 1e-12 of the total are round-off: a perfect fit.
    let floor = 1e-12 * total;
    exponential.sse.max(floor) / logistic.sse.max(floor)
}

/// Least-squares fit of y = c + a e^(-x / tau): for a fixed tau, c and a are
/// linear and solved exactly; ln tau is found by a grid search refined
/// around the best cell.
pub fn fit_exponential(x: &[f64], y: &[f64]) -> ExponentialFit {
    let n = x.len() as f64;
    let sse = |tau: f64| -> (f64, f64, f64) {
        let phi: Vec<f64> = x.iter().map(|t| (-t / tau).exp()).collect();
        let (sp, spp) = (phi.iter().sum::<f64>(), phi.iter().map(|p| p * p).sum::<f64>());
        let (sy, spy) = (y.iter().sum::<f64>(), phi.iter().zip(y).map(|(p, y)| p * y).sum::<f64>());
        let det = n * spp - sp * sp;
        let (a, c) =
            if det.abs() > 1e-300 { ((n * spy - sp * sy) / det, (sy * spp - sp * spy) / det) } else { (0.0, sy / n) };
        (phi.iter().zip(y).map(|(p, y)| (y - c - a * p).powi(2)).sum(), a, c)
    };
    let positive: Vec<f64> = x.iter().copied().filter(|&t| t > 0.0).collect();
    let (lo, hi) = positive.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &t| (lo.min(t), hi.max(t)));
    if !(lo.is_finite() && hi > 0.0) {
        return ExponentialFit { tau: f64::NAN, amplitude: f64::NAN, offset: f64::NAN, sse: f64::NAN };
    }
    // tau from a decade below the first x to a decade above the last.
    let (mut l_lo, mut l_hi) = ((lo / 10.0).ln(), (hi * 10.0).ln());
    let mut best = (f64::INFINITY, 0.0, 0.0, 0.0);
    const CELLS: usize = 200;
    for _round in 0..6 {
        for i in 0..=CELLS {
            let tau = (l_lo + (l_hi - l_lo) * i as f64 / CELLS as f64).exp();
            let (e, a, c) = sse(tau);
            if e < best.0 {
                best = (e, tau, a, c);
            }
        }
        let step = (l_hi - l_lo) / CELLS as f64 * 2.0;
        (l_lo, l_hi) = (best.1.ln() - step, best.1.ln() + step);
    }
    ExponentialFit { tau: best.1, amplitude: best.2, offset: best.3, sse: best.0 }
}

#[derive(Debug, Clone, Copy)]
pub struct ExponentialFit {
    pub tau: f64,
    pub amplitude: f64,
    pub offset: f64,
    pub sse: f64,
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

/// A logistic step in log x: y = a * sigma(-(ln x - mu) / w).
#[derive(Debug, Clone, Copy)]
pub struct LogisticFit {
    pub amplitude: f64,
    pub center: f64,
    pub width: f64,
    pub r2: f64,
    /// Residual sum of squares.
    pub sse: f64,
}

/// Least-squares fit of a falling logistic in ln x to the points with x > 0.
/// For fixed (mu, w) the amplitude is linear, so it is solved exactly; (mu, w)
/// are found by a grid search refined around the best cell.
pub fn fit_logistic_in_log_x(x: &[f64], y: &[f64]) -> LogisticFit {
    let pts: Vec<(f64, f64)> =
        x.iter().zip(y).filter(|(x, y)| **x > 0.0 && y.is_finite()).map(|(x, y)| (x.ln(), *y)).collect();
    let nan = LogisticFit { amplitude: f64::NAN, center: f64::NAN, width: f64::NAN, r2: f64::NAN, sse: f64::NAN };
    if pts.len() < 4 {
        return nan;
    }
    let mean = pts.iter().map(|p| p.1).sum::<f64>() / pts.len() as f64;
    let total: f64 = pts.iter().map(|p| (p.1 - mean).powi(2)).sum();
    if total == 0.0 {
        return nan;
    }
    let sse = |mu: f64, w: f64| -> (f64, f64) {
        let phi: Vec<f64> = pts.iter().map(|p| crate::theory::sigmoid(-(p.0 - mu) / w)).collect();
        let pp: f64 = phi.iter().map(|f| f * f).sum();
        let a = if pp > 0.0 { pts.iter().zip(&phi).map(|(p, f)| p.1 * f).sum::<f64>() / pp } else { 0.0 };
        (pts.iter().zip(&phi).map(|(p, f)| (p.1 - a * f).powi(2)).sum(), a)
    };
    let (lo, hi) = (pts[0].0, pts[pts.len() - 1].0);
    let span = (hi - lo).max(1e-9);
    // Search mu over the data's range (and a little beyond), ln w over a wide range.
    let (mut mu_lo, mut mu_hi) = (lo - 0.25 * span, hi + 0.25 * span);
    let (mut lw_lo, mut lw_hi) = ((span * 1e-3).ln(), span.ln());
    let mut best = (f64::INFINITY, 0.0, 0.0, 0.0);
    const CELLS: usize = 40;
    for _round in 0..6 {
        for i in 0..=CELLS {
            for j in 0..=CELLS {
                let mu = mu_lo + (mu_hi - mu_lo) * i as f64 / CELLS as f64;
                let w = (lw_lo + (lw_hi - lw_lo) * j as f64 / CELLS as f64).exp();
                let (e, a) = sse(mu, w);
                if e < best.0 {
                    best = (e, a, mu, w);
                }
            }
        }
        let (dmu, dlw) = ((mu_hi - mu_lo) / CELLS as f64 * 2.0, (lw_hi - lw_lo) / CELLS as f64 * 2.0);
        (mu_lo, mu_hi) = (best.2 - dmu, best.2 + dmu);
        (lw_lo, lw_hi) = (best.3.ln() - dlw, best.3.ln() + dlw);
    }
    LogisticFit { amplitude: best.1, center: best.2, width: best.3, r2: 1.0 - best.0 / total, sse: best.0 }
}

/// Decades of x over which a falling curve goes from 90% to 10% of its
/// starting level (its value at the smallest x, t = 0 included). NaN when the
/// drop had already begun at the first x > 0 (the log axis cannot place it),
/// infinite when the curve never gets down to 10%.
pub fn transition_width(s: &Series) -> f64 {
    let Some(&start) = s.y.first() else { return f64::NAN };
    let pts: Vec<(f64, f64)> = s.x.iter().zip(&s.y).filter(|(x, _)| **x > 0.0).map(|(x, y)| (x.log10(), *y)).collect();
    if pts.first().is_none_or(|p| p.1 <= 0.9 * start) {
        return f64::NAN;
    }
    let crossing = |level: f64| -> Option<f64> {
        pts.windows(2).find(|w| w[1].1 <= level).map(|w| {
            let (a, b) = (w[0], w[1]);
            a.0 + (b.0 - a.0) * (a.1 - level) / (a.1 - b.1)
        })
    };
    match (crossing(0.9 * start), crossing(0.1 * start)) {
        (Some(t90), Some(t10)) => t10 - t90,
        _ => f64::INFINITY,
    }
}
