//! Claims: computed from a figure's data, never typed in.

use crate::figure::{ClaimResult, FigureBody, Series};
use crate::spec::{Check, ClaimSpec};

/// Evaluates every claim of a figure on its data.
pub fn evaluate(claims: &[ClaimSpec], body: &FigureBody) -> Vec<ClaimResult> {
    claims.iter().map(|c| evaluate_one(c, body)).collect()
}

fn evaluate_one(claim: &ClaimSpec, body: &FigureBody) -> ClaimResult {
    // Names were validated against the experiment's outputs before running,
    // so a missing one here is a bug in the experiment, reported as a failure.
    let scalar = |name: &str| body.scalars.get(name).copied().unwrap_or(f64::NAN);
    let series = |name: &str| body.series(name);
    let (passed, measured, expected, detail) = match claim.check.get_ref() {
        Check::AtLeast { scalar: name, min } => {
            let v = scalar(name);
            (v >= *min, v, format!(">= {min}"), format!("{name} = {}", fmt(v)))
        }
        Check::AtMost { scalar: name, max } => {
            let v = scalar(name);
            (v <= *max, v, format!("<= {max}"), format!("{name} = {}", fmt(v)))
        }
        Check::LogisticFit { series: names, min_r2 } => {
            let fits: Vec<(String, f64)> = names
                .iter()
                .map(|n| (n.clone(), series(n).map_or(f64::NAN, |s| fit_logistic_in_log_x(&s.x, &s.y).r2)))
                .collect();
            let worst = fits.iter().map(|f| f.1).fold(f64::INFINITY, |a, b| if b.is_nan() || b < a { b } else { a });
            let detail = fits.iter().map(|(n, r2)| format!("{n}: R^2 = {}", fmt(*r2))).collect::<Vec<_>>().join("; ");
            (worst >= *min_r2, worst, format!("R^2 >= {min_r2} for every series"), detail)
        }
        Check::Near { scalar: name, value, tolerance } => {
            let v = scalar(name);
            ((v - value).abs() <= *tolerance, v, format!("{value} +- {tolerance}"), format!("{name} = {}", fmt(v)))
        }
        Check::Increasing { scalars } | Check::Decreasing { scalars } => {
            let up = matches!(claim.check.get_ref(), Check::Increasing { .. });
            let values: Vec<f64> = scalars.iter().map(|n| scalar(n)).collect();
            // The smallest step in the claimed direction: > 0 iff the claim holds.
            let step = values.windows(2).map(|w| if up { w[1] - w[0] } else { w[0] - w[1] }).fold(f64::INFINITY, |a, b| if b.is_nan() || b < a { b } else { a });
            let detail = scalars.iter().zip(&values).map(|(n, v)| format!("{n} = {}", fmt(*v))).collect::<Vec<_>>().join("; ");
            (step > 0.0, step, format!("each {} than the one before (smallest step > 0)", if up { "larger" } else { "smaller" }), detail)
        }
        Check::Sharper { series: a, than: b } => {
            let wa = series(a).map_or(f64::NAN, transition_width);
            let wb = series(b).map_or(f64::NAN, transition_width);
            (
                wa < wb,
                wa,
                format!("< {} decades (width of {b})", fmt(wb)),
                format!("10%-90% drop: {a} {} decades, {b} {} decades", fmt(wa), fmt(wb)),
            )
        }
    };
    ClaimResult {
        name: claim.name.clone(),
        passed,
        expected_to_pass: claim.holds,
        // Rounded like the rest of the figure data, so the JSON round-trips exactly.
        measured: measured.is_finite().then(|| crate::figure::round_sig(measured, 6)),
        expected,
        detail,
        reason: claim.reason.clone(),
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

/// A logistic step in log x: y = a * sigma(-(ln x - mu) / w).
#[derive(Debug, Clone, Copy)]
pub struct LogisticFit {
    pub amplitude: f64,
    pub center: f64,
    pub width: f64,
    pub r2: f64,
}

/// Least-squares fit of a falling logistic in ln x to the points with x > 0.
/// For fixed (mu, w) the amplitude is linear, so it is solved exactly; (mu, w)
/// are found by a grid search refined around the best cell.
pub fn fit_logistic_in_log_x(x: &[f64], y: &[f64]) -> LogisticFit {
    let pts: Vec<(f64, f64)> = x.iter().zip(y).filter(|(x, y)| **x > 0.0 && y.is_finite()).map(|(x, y)| (x.ln(), *y)).collect();
    let nan = LogisticFit { amplitude: f64::NAN, center: f64::NAN, width: f64::NAN, r2: f64::NAN };
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
    LogisticFit { amplitude: best.1, center: best.2, width: best.3, r2: 1.0 - best.0 / total }
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
