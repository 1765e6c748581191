//! Key routing across shards: `hash % n` (the chapter's `ShardManager`) and
//! consistent hashing with virtual nodes. Pure and portable: keys are hashed
//! with FNV-1a (64-bit) and MurmurHash3's 64-bit finalizer (FNV alone barely
//! moves the high bits for keys that differ in their last bytes, which
//! clusters them on a ring), not std's hasher, whose output may change
//! between Rust versions: a seed routes the same keys the same way anywhere.

use serde::{Deserialize, Serialize};

/// FNV-1a, 64-bit.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// MurmurHash3's 64-bit finalizer: every input bit moves every output bit.
pub fn mix64(mut hash: u64) -> u64 {
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// The hash keys and ring points are placed by.
pub fn hash(bytes: &[u8]) -> u64 {
    mix64(fnv1a(bytes))
}

/// How keys map to shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharding {
    /// `hash(key) % n`: adding a shard moves about n/(n+1) of the keys.
    Modulo,
    /// A ring of virtual nodes: adding a shard moves about 1/(n+1) of the keys.
    Consistent,
}

/// Virtual nodes per shard on a consistent-hashing ring.
pub const VIRTUAL_NODES: u32 = 64;

/// A router over `shards` shards.
#[derive(Clone, Debug, PartialEq)]
pub struct Router {
    sharding: Sharding,
    shards: u32,
    /// (point, shard), sorted by point (consistent hashing only).
    ring: Vec<(u64, u32)>,
}

impl Router {
    pub fn new(sharding: Sharding, shards: u32) -> Router {
        assert!(shards >= 1, "a router needs at least one shard");
        let mut ring = Vec::new();
        if sharding == Sharding::Consistent {
            for shard in 0..shards {
                for node in 0..VIRTUAL_NODES {
                    ring.push((hash(format!("shard-{shard}#{node}").as_bytes()), shard));
                }
            }
            ring.sort_unstable();
        }
        Router { sharding, shards, ring }
    }

    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// The shard of `key`.
    pub fn shard(&self, key: u64) -> u32 {
        let hash = hash(&key.to_be_bytes());
        match self.sharding {
            Sharding::Modulo => (hash % u64::from(self.shards)) as u32,
            Sharding::Consistent => {
                let at = self.ring.partition_point(|(point, _)| *point < hash);
                self.ring.get(at).unwrap_or(&self.ring[0]).1
            }
        }
    }

    /// The share of the hash space that `shard` owns: 1/n with modulo; with
    /// consistent hashing, the arcs that end at its points (a key belongs to
    /// the first point at or after its hash). When a shard is added to a
    /// ring, the keys that move are exactly those the new shard's points take
    /// over, so the new shard's share is the expected share of keys moved
    /// (about 1/(n+1), off by the luck of its 64 points).
    pub fn share(&self, shard: u32) -> f64 {
        assert!(shard < self.shards, "shard {shard} of {}", self.shards);
        if self.sharding == Sharding::Modulo {
            return 1.0 / f64::from(self.shards);
        }
        let mut owned: u128 = 0;
        for (at, (point, owner)) in self.ring.iter().enumerate() {
            if *owner != shard {
                continue;
            }
            // The arc from the previous point (exclusive) to this one (inclusive).
            owned += match at.checked_sub(1) {
                Some(previous) => u128::from(point - self.ring[previous].0),
                None => u128::from(*point) + (1u128 << 64) - u128::from(self.ring[self.ring.len() - 1].0),
            };
        }
        owned as f64 / (1u128 << 64) as f64
    }

    /// How many of `keys` change shard between this router and `next`.
    pub fn moved(&self, next: &Router, keys: impl IntoIterator<Item = u64>) -> usize {
        keys.into_iter().filter(|key| self.shard(*key) != next.shard(*key)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_its_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn shares_sum_to_one_and_a_new_shards_share_is_what_moves() {
        let ring = Router::new(Sharding::Consistent, 4);
        let total: f64 = (0..4).map(|shard| ring.share(shard)).sum();
        assert!((total - 1.0).abs() < 1e-9, "{total}");
        let before = Router::new(Sharding::Consistent, 3);
        let moved = before.moved(&ring, 0..100_000u64) as f64 / 100_000.0;
        assert!((moved - ring.share(3)).abs() < 0.01, "moved {moved}, share {}", ring.share(3));
        assert_eq!(Router::new(Sharding::Modulo, 4).share(1), 0.25);
    }

    #[test]
    fn consistent_hashing_moves_far_fewer_keys_than_modulo() {
        let keys = 0..20_000u64;
        let modulo = Router::new(Sharding::Modulo, 4).moved(&Router::new(Sharding::Modulo, 5), keys.clone());
        let ring = Router::new(Sharding::Consistent, 4).moved(&Router::new(Sharding::Consistent, 5), keys);
        let (modulo, ring) = (modulo as f64 / 20_000.0, ring as f64 / 20_000.0);
        assert!((modulo - 0.8).abs() < 0.03, "modulo moved {modulo}");
        assert!((ring - 0.2).abs() < 0.08, "consistent moved {ring}");
    }
}
