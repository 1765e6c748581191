//! `cache`: cache-aside with a TTL, as the reliability chapter recommends,
//! and the variants that fix its known flaws (docs/cache.md).
//!
//! Hosts: `db` (authoritative; every write makes a new version; a bounded
//! queue served at `db_capacity`), `cache` (GET, SET with TTL, DEL, leases
//! and version fences; memory only) and `app-1..N` (the pattern itself).
//! Clients send reads and writes to a random app.
//!
//! The pattern: a read GETs the cache; on a miss it reads the db and SETs the
//! value with a TTL. A write writes the db, then DELs the key. Its known
//! flaws: the stale-set race (a reader misses and reads the old row, a writer
//! updates the row and deletes the key, then the reader sets the old value)
//! and lost invalidations (the DEL never reaches the cache). `invalidation =
//! "lease"` (memcache's leases: a miss hands out a token, a DEL voids it, a
//! SET with a void token is refused) and `"versioned"` (the cache keeps the
//! highest version it has seen, even past a DEL, and refuses older SETs) fix
//! the race; neither fixes a lost invalidation, which only the TTL bounds.
//!
//! Events carry their key and version as typed fields ([`CacheEvent`]); the
//! checkers read those and the harness's crash and restart entries.

mod app;
mod cache_server;
mod checks;
mod db;
mod knobs;
mod protocol;

use std::sync::Arc;

use faultline_harness::system::{EventDoc, HostResult, KnobDoc, LocalFuture};
use faultline_harness::{
    CheckContext, ClientContext, HostContext, InputError, Invariant, Knobs, Lane, Outcome, System, SystemDoc,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

pub use cache_server::LEASE_TTL;
pub use checks::{
    check_bounded_staleness, check_origin_protection, check_reads_see_completed_writes, check_reads_see_written_values,
    hit_ratio, stampede, Stampede,
};
pub use knobs::{Cache, CacheConnections, Invalidation};
pub use protocol::{Access, CacheEvent, CacheOp, Refusal, PROBE_KEY};

static DOC: SystemDoc = SystemDoc {
    name: "cache",
    about: "cache-aside with a TTL in front of a database: the textbook pattern, leases, version fences, coalescing",
    hosts: "db, cache, app-1..app-N",
    knobs: &[
        KnobDoc {
            name: "invalidation",
            unit: "string",
            default: "delete",
            about: "delete (the textbook pattern) | lease | versioned",
        },
        KnobDoc { name: "ttl", unit: "duration", default: "5s", about: "how long a cached value lives" },
        KnobDoc {
            name: "ttl_jitter",
            unit: "duration",
            default: "0s",
            about: "a random extra TTL, uniform up to this, per SET",
        },
        KnobDoc {
            name: "sliding_ttl",
            unit: "bool",
            default: "false",
            about: "each hit renews the entry's TTL (expire after access): a flaw, as a value read often never expires",
        },
        KnobDoc {
            name: "coalescing",
            unit: "bool",
            default: "false",
            about: "one database load per key in flight per app; other misses wait for it",
        },
        KnobDoc {
            name: "cache_connections",
            unit: "string",
            default: "fresh (pooled when connections is)",
            about: "fresh (one per request) | pooled | pooled-reuse-timed-out (a planted flaw: a timed-out connection is reused)",
        },
        KnobDoc {
            name: "connections",
            unit: "string",
            default: "per-request",
            about: "clients to apps and apps to the database (and to the cache, unless cache_connections is set): per-request | pooled",
        },
        KnobDoc {
            name: "cache_timeout",
            unit: "duration",
            default: "50ms",
            about: "an app gives up on the cache after this and uses the database",
        },
        KnobDoc {
            name: "db_timeout",
            unit: "duration",
            default: "500ms",
            about: "an app gives up on the database after this",
        },
        KnobDoc {
            name: "db_capacity",
            unit: "rate",
            default: "2000/s",
            about: "requests per second the database serves; beyond it they queue",
        },
        KnobDoc {
            name: "db_queue",
            unit: "count",
            default: "200",
            about: "requests the database queues at most; beyond it they fail at once",
        },
        KnobDoc {
            name: "db_latency",
            unit: "duration",
            default: "0s",
            about: "time each query takes before it queues for the server (queries overlap): an expensive origin",
        },
        KnobDoc { name: "apps", unit: "count", default: "2", about: "app servers" },
        KnobDoc {
            name: "keys",
            unit: "count",
            default: "50",
            about: "size of the key space (the probe reads a key of its own)",
        },
        KnobDoc {
            name: "read_ratio",
            unit: "probability",
            default: "0.9",
            about: "share of operations that are reads",
        },
        KnobDoc {
            name: "zipf",
            unit: "number",
            default: "0",
            about: "key skew: Zipf exponent, 0 to 10 (0 is uniform; 1 makes a few keys hot)",
        },
    ],
    events: &[
        EventDoc { name: "cache.miss", about: "an app missed the cache (key)", detects: false },
        EventDoc {
            name: "cache.unavailable",
            about: "an app could not reach the cache in time and read the database (key, error)",
            detects: true,
        },
        EventDoc { name: "cache.set", about: "the cache stored a value (key, version)", detects: false },
        EventDoc {
            name: "cache.set.refused",
            about: "the cache refused a SET: a void lease or an older version (key, version, reason)",
            detects: false,
        },
        EventDoc {
            name: "cache.delete",
            about: "the cache deleted a key (key; with version fences, the fence)",
            detects: false,
        },
        EventDoc {
            name: "cache.delete.lost",
            about: "an app's invalidation did not reach the cache (key, version written, error)",
            detects: false,
        },
        EventDoc { name: "db.read", about: "the database served a read (key, version)", detects: false },
        EventDoc { name: "db.write", about: "the database committed a write (key, version)", detects: false },
        EventDoc {
            name: "db.overload",
            about: "the database's queue was full and it refused a request (key)",
            detects: false,
        },
        EventDoc {
            name: "app.load.start",
            about: "an app started a database load after a miss (key, load number)",
            detects: false,
        },
        EventDoc { name: "app.load.end", about: "an app's database load ended (key, load number)", detects: false },
    ],
};

const READS_SEE_WRITTEN_VALUES: &str = "reads-see-written-values";
const BOUNDED_STALENESS: &str = "bounded-staleness";
const READS_SEE_COMPLETED_WRITES: &str = "reads-see-completed-writes";
const ORIGIN_PROTECTION: &str = "origin-protection";

impl System for Cache {
    type Op = CacheOp;
    type Res = u64;
    type Event = CacheEvent;
    type Client = ();

    fn doc() -> &'static SystemDoc {
        &DOC
    }

    fn invariants() -> Vec<Invariant<Self>> {
        vec![
            Invariant {
                name: READS_SEE_WRITTEN_VALUES,
                about: "every read returns a version a write had produced before the read completed, or the initial version 0",
                check: |_, context| Ok(check_reads_see_written_values(context)),
            },
            Invariant {
                name: BOUNDED_STALENESS,
                about: "every read returns a version that was current at some time no earlier than its invocation minus ttl + ttl_jitter",
                check: |cache, context| Ok(check_bounded_staleness(context, cache.ttl_max_nanos())),
            },
            Invariant {
                name: READS_SEE_COMPLETED_WRITES,
                about: "a read invoked after any client's write to the same key completed returns that version or a newer one",
                check: |_, context| Ok(check_reads_see_completed_writes(context.history)),
            },
            Invariant {
                name: ORIGIN_PROTECTION,
                about: "at most one database load per key is in flight per app (what coalescing promises)",
                check: |_, context| Ok(check_origin_protection(context)),
            },
        ]
    }

    fn configure(knobs: &Knobs<'_>) -> Result<Cache, InputError> {
        knobs::configure(knobs)
    }

    fn hosts(&self) -> Vec<String> {
        let mut hosts = vec![protocol::DB.to_string(), protocol::CACHE.to_string()];
        hosts.extend((1..=self.apps).map(protocol::app_host));
        hosts
    }

    fn host(self: &Arc<Self>, context: HostContext<CacheEvent>) -> LocalFuture<HostResult> {
        let cache = Arc::clone(self);
        match context.name.as_str() {
            protocol::DB => Box::pin(db::serve(cache, context)),
            protocol::CACHE => Box::pin(cache_server::serve(cache, context)),
            name if name.starts_with("app-") => Box::pin(app::serve(cache, context)),
            name => {
                let error = format!("the cache system has no host {name:?}");
                Box::pin(async move { Err(error.into()) })
            }
        }
    }

    fn client(&self, _index: u32) {}

    fn next_op(&self, _client: &mut (), rng: &mut ChaCha8Rng) -> CacheOp {
        let access = if rng.random_bool(self.read_ratio) { Access::Read } else { Access::Write };
        let key = match &self.key_draw {
            Some(zipf) => zipf.sample(rng),
            None => rng.random_range(0..self.keys),
        };
        assert!(key < self.keys, "a workload key lies in the key space");
        CacheOp { access, key, app: rng.random_range(1..=self.apps) }
    }

    fn op_kind(&self, op: &CacheOp) -> &'static str {
        match op.access {
            Access::Read => "read",
            Access::Write => "write",
        }
    }

    fn probe_op(&self) -> Option<CacheOp> {
        Some(CacheOp { access: Access::Read, key: PROBE_KEY, app: 1 })
    }

    fn call(self: &Arc<Self>, client: ClientContext<CacheEvent>, op: CacheOp) -> LocalFuture<Outcome<u64>> {
        Box::pin(app::call(crate::kit::pool::client_caller(&client.local, self.connections), op))
    }

    /// What the configured pattern promises: origin protection only with
    /// coalescing (without it every miss loads, by design); the others always.
    fn promises(&self) -> Vec<&'static str> {
        let mut promised = vec![READS_SEE_WRITTEN_VALUES, BOUNDED_STALENESS, READS_SEE_COMPLETED_WRITES];
        if self.coalescing {
            promised.push(ORIGIN_PROTECTION);
        }
        promised
    }

    fn figures(&self, context: &CheckContext<'_, Self>) -> Vec<(&'static str, f64)> {
        let mut figures = Vec::new();
        if let Some(ratio) = hit_ratio(context) {
            figures.push(("hit_ratio", ratio));
        }
        if let Some(stampede) = stampede(context) {
            figures.push(("db_peak_per_s", stampede.peak_per_s));
            figures.push(("db_steady_per_s", stampede.steady_db_per_s));
            figures.push(("misses_steady_per_s", stampede.steady_misses_per_s));
            figures.push(("stampede_factor", stampede.factor()));
        }
        figures
    }

    fn lanes(&self, context: &CheckContext<'_, Self>) -> Vec<Lane> {
        checks::lanes(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configure(knobs: &str) -> Result<Cache, InputError> {
        let source = format!("name = \"t\"\nsystem = \"cache\"\n[knobs]\n{knobs}");
        <Cache as System>::configure(&Knobs::new("t.toml", &source))
    }

    #[test]
    fn the_old_name_read_your_writes_is_an_error_naming_the_new_one() {
        let names: Vec<&str> = Cache::invariants().iter().map(|i| i.name).collect();
        assert!(names.contains(&READS_SEE_COMPLETED_WRITES));
        assert!(!names.contains(&"read-your-writes"), "renamed: it is not the per-session guarantee");
        let source = "name = \"t\"\nsystem = \"cache\"\nduration = \"5s\"\n[workload]\nclients = 1\nrate = \"10/s\"\n\
                      [check]\ninvariants = [\"read-your-writes\"]\n";
        let Err(error) = faultline_harness::registry::parse("t.toml", source, &crate::registry()) else {
            panic!("a file naming read-your-writes loaded")
        };
        assert!(error.to_string().contains("unknown invariant \"read-your-writes\""), "{error}");
        let help = error.help.unwrap_or_default();
        assert!(help.contains("\"reads-see-completed-writes\""), "{help}");
    }

    #[test]
    fn origin_protection_is_promised_only_with_coalescing() {
        let plain = configure("").unwrap();
        assert_eq!(plain.promises(), vec![READS_SEE_WRITTEN_VALUES, BOUNDED_STALENESS, READS_SEE_COMPLETED_WRITES]);
        let coalescing = configure("coalescing = true\ninvalidation = \"lease\"").unwrap();
        assert!(coalescing.promises().contains(&ORIGIN_PROTECTION));
        let names: Vec<&str> = Cache::invariants().iter().map(|i| i.name).collect();
        assert!(coalescing.promises().iter().all(|p| names.contains(p)), "every promise is an invariant");
        // A scenario that names no invariants checks the promises and liveness.
        let checked = |knobs: &str| {
            let source = format!(
                "name = \"t\"\nsystem = \"cache\"\nduration = \"5s\"\n[workload]\nclients = 1\nrate = \"10/s\"\n[knobs]\n{knobs}"
            );
            match faultline_harness::registry::parse("t.toml", &source, &crate::registry()) {
                Ok(loaded) => loaded.scenario.check.invariants,
                Err(error) => panic!("{error}"),
            }
        };
        let textbook = checked("");
        assert_eq!(textbook, [READS_SEE_WRITTEN_VALUES, BOUNDED_STALENESS, READS_SEE_COMPLETED_WRITES, "liveness"]);
        assert!(checked("coalescing = true").contains(&ORIGIN_PROTECTION.to_string()));
    }

    #[test]
    fn knobs_have_their_defaults_and_are_validated() {
        let cache = configure("").unwrap();
        assert_eq!((cache.invalidation, cache.apps, cache.keys, cache.db_queue), (Invalidation::Delete, 2, 50, 200));
        assert_eq!((cache.db_capacity, cache.read_ratio, cache.zipf), (2000.0, 0.9, 0.0));
        assert!(cache.key_draw.is_none());
        assert_eq!((cache.sliding_ttl, cache.cache_connections), (false, CacheConnections::Fresh));
        let pooled = configure("sliding_ttl = true\ncache_connections = \"pooled-reuse-timed-out\"").unwrap();
        assert_eq!((pooled.sliding_ttl, pooled.cache_connections), (true, CacheConnections::PooledReuseTimedOut));
        assert!(configure("cache_connections = \"shared\"").is_err());
        assert_eq!(cache.hosts(), vec!["db", "cache", "app-1", "app-2"]);
        let error = configure("zipf = 11.0").unwrap_err().to_string();
        assert!(error.contains("zipf must be between 0 and 10"), "{error}");
        assert!(configure("db_capacity = \"0/s\"").unwrap_err().to_string().contains("db_capacity must be above zero"));
        assert!(configure("ttl = \"0s\"").unwrap_err().to_string().contains("ttl must be longer than zero"));
    }

    #[test]
    fn skewed_keys_stay_in_the_key_space() {
        use rand::SeedableRng;
        let cache = configure("keys = 7\nzipf = 1.2\napps = 3").unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..1000 {
            let op = cache.next_op(&mut (), &mut rng);
            assert!(op.key < 7 && (1..=3).contains(&op.app), "{op:?}");
        }
    }
}
