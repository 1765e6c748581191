//! Retry policies: exponential backoff with a cap and the usual jitters
//! (none, full, equal, decorrelated, as in AWS's "Exponential Backoff and
//! Jitter"), and a retry budget (a token bucket that lets retries be at
//! most a share of requests).
//!
//! [`Backoff::delay`] draws a delay inside a host; [`Backoff::envelope`] is
//! the pure bound a checker holds every recorded delay to.

use std::time::Duration;

use faultline_harness::units::Dur;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How a retry's delay is spread below its ceiling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Jitter {
    /// Exactly the ceiling: every client that failed together retries together.
    None,
    /// Uniform between zero and the ceiling.
    Full,
    /// Half the ceiling, plus uniform up to the other half.
    Equal,
    /// Uniform between the base and three times the previous delay, capped.
    Decorrelated,
}

/// An exponential backoff: retry n waits up to `base * factor^(n-1)`, at most `cap`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Backoff {
    pub base: Dur,
    pub factor: f64,
    pub cap: Dur,
    pub jitter: Jitter,
}

impl Backoff {
    /// The largest delay before retry number `retry` (1 for the first),
    /// before jitter. Grown in f64 with libm's `pow` (portable) and clamped
    /// before it becomes a Duration, which the growth would overflow.
    pub fn ceiling(&self, retry: u32) -> Duration {
        assert!(retry >= 1, "retries are numbered from 1");
        let exponent = f64::from(retry.min(1000) - 1);
        let grown = self.base.0.as_secs_f64() * libm::pow(self.factor, exponent);
        Duration::from_secs_f64(grown.min(self.cap.0.as_secs_f64()))
    }

    /// The delay before retry `retry`, drawn from `rng`; `previous` is the
    /// last delay (the base before the first retry), for decorrelated jitter.
    pub fn delay(&self, retry: u32, previous: Duration, rng: &mut ChaCha8Rng) -> Duration {
        let ceiling = self.ceiling(retry);
        match self.jitter {
            Jitter::None => ceiling,
            Jitter::Full => ceiling.mul_f64(rng.random_range(0.0..=1.0)),
            Jitter::Equal => ceiling / 2 + (ceiling / 2).mul_f64(rng.random_range(0.0..=1.0)),
            Jitter::Decorrelated => {
                let (low, high) = self.decorrelated_range(previous);
                Duration::from_secs_f64(rng.random_range(low..=high)).min(self.cap.0)
            }
        }
    }

    fn decorrelated_range(&self, previous: Duration) -> (f64, f64) {
        let low = self.base.0.as_secs_f64();
        (low, (previous.as_secs_f64() * 3.0).max(low))
    }

    /// The delays retry `retry` may have, `(least, most)`: what a checker
    /// holds a recorded delay to. `previous` as for [`Backoff::delay`].
    pub fn envelope(&self, retry: u32, previous: Duration) -> (Duration, Duration) {
        let ceiling = self.ceiling(retry);
        match self.jitter {
            Jitter::None => (ceiling, ceiling),
            Jitter::Full => (Duration::ZERO, ceiling),
            Jitter::Equal => (ceiling / 2, ceiling),
            Jitter::Decorrelated => {
                let (low, high) = self.decorrelated_range(previous);
                let cap = self.cap.0;
                (Duration::from_secs_f64(low).min(cap), Duration::from_secs_f64(high).min(cap))
            }
        }
    }

    /// The longest any retry may wait.
    pub fn longest(&self, retry: u32) -> Duration {
        match self.jitter {
            Jitter::Decorrelated => self.cap.0,
            _ => self.ceiling(retry),
        }
    }
}

/// Most tokens a retry budget holds, so a quiet spell cannot bank a storm.
pub const BUDGET_TOKENS_MAX: f64 = 10.0;

/// A retry budget: each request adds `ratio` of a token (up to a cap), each
/// retry spends one; without a token, no retry.
#[derive(Clone, Debug, PartialEq)]
pub struct Budget {
    ratio: f64,
    tokens: f64,
}

impl Budget {
    pub fn new(ratio: f64) -> Budget {
        assert!((0.0..=1.0).contains(&ratio), "a budget's ratio is a share of requests");
        Budget { ratio, tokens: 0.0 }
    }

    /// A request arrived: it earns its share of a retry.
    pub fn on_request(&mut self) {
        self.tokens = (self.tokens + self.ratio).min(BUDGET_TOKENS_MAX);
    }

    /// Spends a token for a retry, if there is one.
    pub fn try_spend(&mut self) -> bool {
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn backoff(jitter: Jitter) -> Backoff {
        Backoff { base: Dur::from_millis(20), factor: 2.0, cap: Dur::from_millis(500), jitter }
    }

    #[test]
    fn ceilings_grow_then_stop_at_the_cap_without_overflow() {
        let b = backoff(Jitter::None);
        assert_eq!(b.ceiling(1), Duration::from_millis(20));
        assert_eq!(b.ceiling(3), Duration::from_millis(80));
        assert_eq!(b.ceiling(10), Duration::from_millis(500));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_millis(500));
    }

    #[test]
    fn every_drawn_delay_lies_in_its_envelope() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for jitter in [Jitter::None, Jitter::Full, Jitter::Equal, Jitter::Decorrelated] {
            let b = backoff(jitter);
            let mut previous = b.base.0;
            for retry in 1..12 {
                let delay = b.delay(retry, previous, &mut rng);
                let (low, high) = b.envelope(retry, previous);
                assert!(low <= delay && delay <= high, "{jitter:?} retry {retry}: {delay:?} not in {low:?}..{high:?}");
                assert!(delay <= b.longest(retry));
                previous = delay;
            }
        }
    }

    #[test]
    fn a_budget_allows_retries_as_a_share_of_requests() {
        let mut budget = Budget::new(0.25);
        let mut retries = 0;
        for _ in 0..100 {
            budget.on_request();
            if budget.try_spend() {
                retries += 1;
            }
        }
        assert_eq!(retries, 25);
    }
}
