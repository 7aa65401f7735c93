//! Small statistics over logged curves, shared by the figure kinds: the
//! mean and band over seeds, crossing times, log-log slopes.

/// Mean, min and max over seeds of per-seed curves of equal length, over the
/// finite values only: a diverged seed (recorded in the figure's
/// `divergences`) drops out of the mean and band from where it diverged.
/// NaN where no seed is finite.
pub fn mean_min_max(curves: &[Vec<f64>]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let len = curves.first().map_or(0, Vec::len);
    let mut mean = vec![f64::NAN; len];
    let mut lo = vec![f64::NAN; len];
    let mut hi = vec![f64::NAN; len];
    for i in 0..len {
        let finite: Vec<f64> = curves.iter().map(|c| c[i]).filter(|v| v.is_finite()).collect();
        if !finite.is_empty() {
            mean[i] = finite.iter().sum::<f64>() / finite.len() as f64;
            lo[i] = finite.iter().copied().fold(f64::INFINITY, f64::min);
            hi[i] = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        }
    }
    (mean, lo, hi)
}

/// How many logged times lead the schedule at t = 0, which has no place on a
/// log-time axis: series drawn against log t start after them.
pub fn leading_zero_times(times: &[f64]) -> usize {
    times.iter().take_while(|&&t| t <= 0.0).count()
}

/// The largest of the values, or NaN if any is NaN (f64::max would skip it,
/// and a gap that cannot be measured must fail its claim).
pub fn max_or_nan(values: impl IntoIterator<Item = f64>) -> f64 {
    values.into_iter().fold(0.0, |a: f64, b| if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) })
}

/// The largest of the gaps, NaN when there is none (nothing was compared,
/// so a claim on it must fail) or one is NaN.
pub fn largest_gap(gaps: &[f64]) -> f64 {
    if gaps.is_empty() {
        f64::NAN
    } else {
        max_or_nan(gaps.iter().copied())
    }
}

/// The first time a logged series reaches `target`, linearly interpolated
/// between the two logged points around the crossing; None if it never does.
pub fn crossing_time(times: &[f64], values: &[f64], target: f64) -> Option<f64> {
    let first = values.iter().position(|&v| v >= target)?;
    if first == 0 {
        return Some(times[0]);
    }
    let (t0, t1, v0, v1) = (times[first - 1], times[first], values[first - 1], values[first]);
    Some(t0 + (t1 - t0) * (target - v0) / (v1 - v0))
}

/// Least-squares slope of ln y against ln x.
pub fn loglog_slope(x: &[f64], y: &[f64]) -> f64 {
    let lx: Vec<f64> = x.iter().map(|v| v.ln()).collect();
    let ly: Vec<f64> = y.iter().map(|v| v.ln()).collect();
    slope(&lx, &ly)
}

/// Each seed's value paired with the next seed's (the last with the first):
/// a null arm for a paired difference, two runs of one arm that no treatment
/// separates.
pub fn next_seed(values: &[f64]) -> Vec<f64> {
    values.iter().cycle().skip(1).take(values.len()).copied().collect()
}

/// The least-squares slope of y on x.
pub fn slope(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let var: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
    cov / var
}

/// A two-sided confidence interval for the mean of independent values
/// (per seed, or per pair of seeds): Student's t with n - 1 degrees of
/// freedom, at `level` (e.g. 0.95).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanInterval {
    pub n: usize,
    pub mean: f64,
    pub lo: f64,
    pub hi: f64,
}

/// The interval of the mean of `values`; NaN bounds where it is undefined
/// (fewer than two values, or a non-finite one), so a claim on it fails.
pub fn mean_interval(values: &[f64], level: f64) -> MeanInterval {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    let undefined = MeanInterval { n, mean: if n == 0 { f64::NAN } else { mean }, lo: f64::NAN, hi: f64::NAN };
    if n < 2 || values.iter().any(|v| !v.is_finite()) || !(level > 0.0 && level < 1.0) {
        return undefined;
    }
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let Ok(t) = StudentsT::new(0.0, 1.0, (n - 1) as f64) else { return undefined };
    let half = t.inverse_cdf(0.5 + level / 2.0) * (variance / n as f64).sqrt();
    MeanInterval { n, mean, lo: mean - half, hi: mean + half }
}
