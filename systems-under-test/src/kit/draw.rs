//! Random draws that mean the same on every machine: uniform durations over
//! a range, exponentials (libm's `log`) and Zipf-distributed keys (a table of
//! libm's `pow`, searched by bisection). The platform's `ln`/`powf` may round
//! differently elsewhere, and a draw that drives a simulation must not.

use std::time::Duration;

use faultline_harness::units::DurRange;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A duration uniform over `range` (inclusive).
pub fn duration(rng: &mut ChaCha8Rng, range: DurRange) -> Duration {
    Duration::from_nanos(rng.random_range(range.min.as_nanos()..=range.max.as_nanos()))
}

/// An exponential duration of mean `mean`.
pub fn exponential(rng: &mut ChaCha8Rng, mean: Duration) -> Duration {
    let seconds = faultline_harness::seed::exponential(rng, mean.as_secs_f64());
    Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
}

/// Zipf-distributed ranks 0..n with exponent `s` (0 is uniform): rank k has
/// weight 1/(k+1)^s.
#[derive(Clone, Debug, PartialEq)]
pub struct Zipf {
    /// Cumulative weights, normalised to end at 1.
    cumulative: Vec<f64>,
}

impl Zipf {
    pub fn new(n: u32, s: f64) -> Zipf {
        assert!(n >= 1 && s >= 0.0 && s.is_finite(), "a Zipf needs n >= 1 and a finite s >= 0");
        let mut total = 0.0;
        let mut cumulative: Vec<f64> = (0..n)
            .map(|k| {
                total += 1.0 / libm::pow(f64::from(k) + 1.0, s);
                total
            })
            .collect();
        for value in &mut cumulative {
            *value /= total;
        }
        Zipf { cumulative }
    }

    /// A rank in 0..n.
    pub fn sample(&self, rng: &mut ChaCha8Rng) -> u32 {
        let u: f64 = rng.random();
        let rank = self.cumulative.partition_point(|c| *c <= u);
        u32::try_from(rank.min(self.cumulative.len() - 1)).expect("n fits u32")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn zipf_favours_low_ranks_and_zero_is_uniform() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let skewed = Zipf::new(50, 1.0);
        let mut counts = [0u32; 50];
        for _ in 0..20_000 {
            counts[skewed.sample(&mut rng) as usize] += 1;
        }
        assert!(counts[0] > 4 * counts[9], "{counts:?}");
        let uniform = Zipf::new(4, 0.0);
        let mut counts = [0u32; 4];
        for _ in 0..20_000 {
            counts[uniform.sample(&mut rng) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (4_500..5_500).contains(c)), "{counts:?}");
    }
}
