//! Summaries of a figure across seeds: mean, a 95% confidence interval for
//! the mean (Student's t, as the seeds are independent replications), min
//! and max. Pure arithmetic.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// One figure across seeds, in the figure's own unit.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// How many values (seeds) it summarises; at least 1.
    pub n: usize,
    /// Their mean.
    pub mean: f64,
    /// Sample standard deviation (0 with one value).
    pub sd: f64,
    /// 95% confidence interval for the mean; the mean itself with one value.
    pub ci_low: f64,
    /// The interval's upper end.
    pub ci_high: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
}

impl Summary {
    /// Is `value` inside the 95% confidence interval?
    pub fn covers(&self, value: f64) -> bool {
        self.ci_low <= value && value <= self.ci_high
    }

    /// Half the interval's width.
    pub fn half_width(&self) -> f64 {
        (self.ci_high - self.ci_low) / 2.0
    }
}

/// The 97.5th percentile of Student's t with `df` degrees of freedom.
pub fn t_975(df: usize) -> f64 {
    assert!(df >= 1, "t needs at least one degree of freedom");
    StudentsT::new(0.0, 1.0, df as f64).expect("valid t parameters").inverse_cdf(0.975)
}

/// Summarizes `values`; `None` when there are none.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if n == 1 {
        return Some(Summary { n, mean, sd: 0.0, ci_low: mean, ci_high: mean, min, max });
    }
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let sd = variance.sqrt();
    let half = t_975(n - 1) * sd / (n as f64).sqrt();
    Some(Summary { n, mean, sd, ci_low: mean - half, ci_high: mean + half, min, max })
}

impl Summary {
    /// The same with its interval clamped to `[low, high]`: a figure that
    /// cannot leave that range (a share, a count) gets no interval outside it.
    pub fn clamped(mut self, low: f64, high: f64) -> Summary {
        self.ci_low = self.ci_low.clamp(low, high);
        self.ci_high = self.ci_high.clamp(low, high);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_figures_get_bounded_intervals() {
        let s = summarize(&[0.99, 1.0, 0.90]).unwrap().clamped(0.0, 1.0);
        assert!(s.ci_high <= 1.0 && s.ci_low >= 0.0, "{s:?}");
        let rates = summarize(&[0.0, 0.0, 0.3]).unwrap().clamped(0.0, f64::INFINITY);
        assert_eq!(rates.ci_low, 0.0);
    }

    #[test]
    fn t_quantiles_match_tables() {
        assert!((t_975(1) - 12.706).abs() < 1e-3);
        assert!((t_975(9) - 2.262).abs() < 1e-3);
        assert!((t_975(1000) - 1.962).abs() < 1e-3);
    }

    #[test]
    fn a_summary_of_known_values() {
        let s = summarize(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!((s.n, s.mean, s.min, s.max), (5, 3.0, 1.0, 5.0));
        assert!((s.sd - 1.5811).abs() < 1e-4);
        // 2.776 * 1.5811 / sqrt(5) = 1.963
        assert!((s.half_width() - 1.963).abs() < 1e-3);
        assert!(s.covers(3.0) && !s.covers(5.0));
        assert_eq!(summarize(&[]), None);
        let one = summarize(&[7.0]).unwrap();
        assert_eq!((one.ci_low, one.ci_high), (7.0, 7.0));
    }
}
