//! Every random choice of a run comes from its one `u64` seed, through
//! independent ChaCha streams split by purpose.
//!
//! A stream is the seed's ChaCha8 key with a stream number that names the
//! purpose, so streams never overlap and adding a draw to one never shifts
//! another. That is what lets the shrinker drop a fault from a plan while
//! every client keeps sending the same requests at the same times.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What a stream of randomness is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// turmoil's own RNG (message latencies, link failures) and, through it,
    /// every host's tokio runtime.
    Network,
    /// Which chaos generators a swarm run switches on.
    Swarm,
    /// The swarm's coins for the generator kinds added after the first six
    /// (`blackhole`, `power-off`, ...): a stream of their own, so that the
    /// [`Stream::Swarm`] draws of every older scenario stay as they were.
    SwarmLater,
    /// The faults of one chaos generator (by its index in `[chaos]`).
    Chaos(u32),
    /// One workload client's arrivals and operations.
    Client(u32),
    /// One host's own randomness, per incarnation (start, then each restart).
    Host {
        /// The host's position in the system's host list (`System::hosts`).
        host: u32,
        /// 0 at the first start, then +1 on each restart.
        incarnation: u32,
    },
}

impl Stream {
    fn number(self) -> u64 {
        match self {
            Stream::Network => 1,
            Stream::Swarm => 2,
            Stream::SwarmLater => 4,
            Stream::Chaos(index) => (1 << 32) | u64::from(index),
            Stream::Client(index) => (2 << 32) | u64::from(index),
            Stream::Host { host, incarnation } => {
                assert!(host < (1 << 16), "host index out of range");
                (3 << 32) | (u64::from(host) << 16) | u64::from(incarnation & 0xffff)
            }
        }
    }
}

/// The stream `stream` of run `seed`.
pub fn rng(seed: u64, stream: Stream) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream.number());
    rng
}

/// An exponential draw of mean `mean` (any unit), by inversion with libm's
/// `log`: the platform's own `ln` may round differently on another machine,
/// and a draw that drives a simulation must mean the same everywhere.
pub fn exponential(rng: &mut ChaCha8Rng, mean: f64) -> f64 {
    use rand::Rng;
    assert!(mean > 0.0 && mean.is_finite(), "an exponential needs a positive, finite mean");
    // random::<f64>() is in [0, 1): 1 - u is in (0, 1], so the log is finite.
    let u: f64 = rng.random();
    -libm::log(1.0 - u) * mean
}

/// The seed turmoil's builder gets (`Builder::rng_seed`).
pub fn turmoil_seed(seed: u64) -> u64 {
    use rand::RngCore;
    rng(seed, Stream::Network).next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let draw = |seed, stream| rng(seed, stream).next_u64();
        assert_eq!(draw(7, Stream::Client(0)), draw(7, Stream::Client(0)));
        assert_ne!(draw(7, Stream::Client(0)), draw(7, Stream::Client(1)));
        assert_ne!(draw(7, Stream::Client(0)), draw(8, Stream::Client(0)));
        assert_ne!(draw(7, Stream::Chaos(0)), draw(7, Stream::Client(0)));
        assert_ne!(
            draw(7, Stream::Host { host: 1, incarnation: 0 }),
            draw(7, Stream::Host { host: 1, incarnation: 1 })
        );
        assert_eq!(turmoil_seed(3), turmoil_seed(3));
        let mut rng = rng(7, Stream::Client(0));
        let mean = (0..20_000).map(|_| exponential(&mut rng, 2.0)).sum::<f64>() / 20_000.0;
        assert!((mean - 2.0).abs() < 0.06, "mean {mean}");
        assert_ne!(turmoil_seed(3), turmoil_seed(4));
    }
}
