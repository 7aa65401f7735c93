//! The shape of a falling curve: the best exponential decay in x, the best
//! logistic step in log x, their residual ratio, and the 10%-90% width of
//! the drop in decades. Shared by the claims (which run them on the figure's
//! series and on their counterfactuals) and by the kinds (which put the same
//! numbers in their scalars, for captions).

use crate::figure::Series;

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
