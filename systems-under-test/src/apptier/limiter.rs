//! The lb's per-client rate limiters: a token bucket, a fixed window and a
//! sliding window (a log of the window's admissions). Plain data driven with
//! the simulated time, so unit tests can drive them; the `rate-limit`
//! checker does not reuse them but holds their admissions to each limiter's
//! stated contract (checks.rs).

use std::collections::{BTreeMap, VecDeque};

use faultline_harness::Nanos;

use super::knobs::{AppTier, Limiter};

/// A token bucket counts in billionths of a token, so that refills at a
/// whole number of tokens per second add up exactly (ten refills of a tenth
/// of a token in floating point make 0.999..., not one).
const TOKEN: u128 = 1_000_000_000;

/// One client's limiter state.
#[derive(Clone, Debug, PartialEq)]
enum State {
    /// Tokens in billionths.
    Bucket {
        tokens: u128,
        at: Nanos,
    },
    Fixed {
        window: u64,
        count: u32,
    },
    Sliding {
        admitted: VecDeque<Nanos>,
    },
}

/// Every client's limiter, as the lb keeps them in its memory (a restart of
/// the lb starts them afresh, as an in-process limiter does).
#[derive(Clone, Debug)]
pub struct Limiters {
    kind: Limiter,
    /// Tokens per second (token bucket): billionths of a token per nanosecond.
    rate: f64,
    /// The bucket's size, in billionths of a token.
    burst: u128,
    window: Nanos,
    /// Requests per window (window limiters).
    per_window: u32,
    clients: BTreeMap<u32, State>,
}

impl Limiters {
    pub fn new(config: &AppTier) -> Limiters {
        let per_window = match config.limiter {
            Limiter::FixedWindow | Limiter::SlidingWindow => config.window_limit(),
            Limiter::None | Limiter::TokenBucket => 0,
        };
        Limiters {
            kind: config.limiter,
            rate: config.limit,
            burst: u128::from(config.burst) * TOKEN,
            window: config.window.as_nanos(),
            per_window,
            clients: BTreeMap::new(),
        }
    }

    /// May `client`'s request at `now` through? Times never go backwards.
    pub fn admit(&mut self, client: u32, now: Nanos) -> bool {
        let fresh = match self.kind {
            Limiter::None => return true,
            Limiter::TokenBucket => State::Bucket { tokens: self.burst, at: now },
            Limiter::FixedWindow => State::Fixed { window: now / self.window, count: 0 },
            Limiter::SlidingWindow => State::Sliding { admitted: VecDeque::new() },
        };
        let (rate, burst, window, per_window) = (self.rate, self.burst, self.window, self.per_window);
        match self.clients.entry(client).or_insert(fresh) {
            State::Bucket { tokens, at } => {
                assert!(now >= *at, "the limiter's clock went backwards");
                let refill = libm::round(rate * (now - *at) as f64).clamp(0.0, 1e30) as u128;
                *tokens = (*tokens + refill).min(burst);
                *at = now;
                let admitted = *tokens >= TOKEN;
                if admitted {
                    *tokens -= TOKEN;
                }
                admitted
            }
            State::Fixed { window: current, count } => {
                if now / window != *current {
                    *current = now / window;
                    *count = 0;
                }
                let admitted = *count < per_window;
                *count += u32::from(admitted);
                admitted
            }
            State::Sliding { admitted } => {
                while admitted.front().is_some_and(|at| *at + window <= now) {
                    admitted.pop_front();
                }
                let room = admitted.len() < per_window as usize;
                if room {
                    admitted.push_back(now);
                }
                assert!(admitted.len() <= per_window as usize, "a sliding window never holds more than its limit");
                room
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Nanos = 1_000_000;

    fn admitted(limiters: &mut Limiters, times: impl IntoIterator<Item = Nanos>) -> Vec<Nanos> {
        times.into_iter().filter(|at| limiters.admit(7, *at)).collect()
    }

    #[test]
    fn a_token_bucket_admits_its_burst_then_its_rate() {
        let config = AppTier::from_knobs("limiter = \"token-bucket\"\nlimit = \"10/s\"\nburst = 3");
        let mut limiters = Limiters::new(&config);
        // Ten requests at once: the burst of three.
        assert_eq!(admitted(&mut limiters, [0; 10]).len(), 3);
        // One every 10ms for a second: ten more tokens come in.
        assert_eq!(admitted(&mut limiters, (1..=100).map(|i| i * 10 * MS)).len(), 10);
        // Other clients have their own buckets.
        assert!(limiters.admit(8, 1_000 * MS));
    }

    #[test]
    fn a_fixed_window_admits_twice_its_limit_across_an_edge() {
        let config = AppTier::from_knobs("limiter = \"fixed-window\"\nlimit = \"10/s\"\nwindow = \"1s\"");
        let mut limiters = Limiters::new(&config);
        // Twenty requests in the 200ms around the edge at 1s: ten each side.
        let burst = (0..20).map(|i| 900 * MS + i * 10 * MS);
        assert_eq!(admitted(&mut limiters, burst).len(), 20);
    }

    #[test]
    fn a_sliding_window_admits_its_limit_in_any_window() {
        let config = AppTier::from_knobs("limiter = \"sliding-window\"\nlimit = \"10/s\"\nwindow = \"1s\"");
        let mut limiters = Limiters::new(&config);
        let burst = (0..20).map(|i| 900 * MS + i * 10 * MS);
        assert_eq!(admitted(&mut limiters, burst).len(), 10);
        // A full window after the first admission, room again.
        assert!(limiters.admit(7, 1_900 * MS));
        assert!(!limiters.admit(7, 1_905 * MS));
    }

    #[test]
    fn without_a_limiter_everything_is_admitted() {
        let mut limiters = Limiters::new(&AppTier::from_knobs(""));
        assert_eq!(admitted(&mut limiters, [0; 1000]).len(), 1000);
    }
}
