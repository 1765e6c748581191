//! The store's configuration: defaults, host names, knobs that cannot work
//! together (errors naming both), and what each configuration promises.

use super::*;

fn configure(knobs: &str) -> Result<Store, InputError> {
    let source = format!("name = \"t\"\nsystem = \"store\"\n[knobs]\n{knobs}");
    <Store as System>::configure(&Knobs::new("t.toml", &source))
}

fn error(knobs: &str) -> String {
    match configure(knobs) {
        Ok(_) => panic!("{knobs:?} was accepted"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn defaults_are_the_chapters_design() {
    let store = configure("").unwrap();
    assert_eq!(
        (store.mode, store.read_policy, store.replicas, store.shards),
        (Mode::Async, ReadPolicy::RoundRobin, 2, 1)
    );
    assert_eq!(
        (store.failover, store.election, store.fencing, store.rejoin),
        (false, Election::MostUpToDate, true, Rejoin::Rewind)
    );
    assert_eq!(store.hosts(), vec!["primary", "replica-1", "replica-2", "router"]);
    assert!(store.pool().is_empty());
    let json = serde_json::to_value(&store).unwrap();
    assert_eq!(json["replication_timeout"], "1s");
    assert_eq!(configure("replication_timeout = \"off\"").unwrap().replication_timeout, Timeout::Off);
}

#[test]
fn shards_failover_routers_and_reshards_name_their_hosts() {
    let store = configure("shards = 2\nreplicas = 1\nreshard_at = \"3s\"\nfailover = true").unwrap();
    assert_eq!(
        store.hosts(),
        vec![
            "s1-primary",
            "s1-replica-1",
            "s2-primary",
            "s2-replica-1",
            "s3-primary",
            "s3-replica-1",
            "router",
            "supervisor"
        ]
    );
    assert_eq!(store.pool(), vec!["s3-primary", "s3-replica-1"], "the reshard's group is the pool");
    assert_eq!(store.down_at_start(), store.pool());
    assert_eq!(store.group_of("s2-replica-1"), Some(2));
    assert_eq!(store.group_of("router"), None);
    let routed = configure("routers = 3").unwrap();
    assert_eq!(routed.router_hosts(), vec!["router-1", "router-2", "router-3"]);
    assert_eq!(routed.router_for(4), "router-2");
}

#[test]
fn knobs_that_cannot_work_together_are_errors_naming_both() {
    let cases = [
        ("mode = \"sync-majority\"\nreplicas = 0", "mode cannot be used with replicas = 0"),
        ("read_policy = \"session\"\nreplicas = 0", "read_policy cannot be used with replicas = 0"),
        ("replicas = 0", "replicas = 0 cannot be used with read_policy"),
        ("failover = true\nreplicas = 0\nread_policy = \"primary\"", "failover cannot be used with replicas = 0"),
        ("mode = \"sync-majority\"\nfsync = \"never\"", "mode = sync-majority cannot be used with fsync = never"),
        ("semi_sync_timeout = \"1s\"", "semi_sync_timeout cannot be used with this mode"),
        ("fsync_interval = \"10ms\"", "fsync_interval cannot be used with this fsync"),
        ("max_lag = \"1s\"\nread_policy = \"primary\"", "max_lag cannot be used with read_policy = primary"),
        ("session_wait = \"1s\"", "session_wait cannot be used with this read_policy"),
        ("election = \"any\"", "election cannot be used with failover = false"),
        ("fencing = false", "fencing cannot be used with failover = false"),
        ("reshard_at = \"2s\"\nrouters = 2", "reshard_at cannot be used with routers > 1"),
        ("failover = true\nfailover_after = \"50ms\"", "failover_after must be longer than health_interval"),
    ];
    for (knobs, expected) in cases {
        let message = error(knobs);
        assert!(message.contains(expected), "{knobs:?}: {message}");
        assert!(message.starts_with("t.toml:"), "positioned: {message}");
    }
    assert!(error("replication_timeout = \"0s\"").contains("longer than zero"));
    assert!(error("shards = 5").contains("shards must be between 1 and 4"));
    assert!(error("mode = \"semi-sync\"").contains("unknown value \"semi-sync\""));
}

#[test]
fn promises_follow_the_mode_read_policy_and_failover_design() {
    let promised = |knobs: &str| configure(knobs).unwrap().promises();
    // The chapter's design without failover: nothing is lost, but round-robin
    // reads promise no session guarantee.
    let chapter = promised("");
    assert!(chapter.contains(&NO_LOST_WRITES) && !chapter.contains(&READ_YOUR_WRITES), "{chapter:?}");
    assert!(!chapter.contains(&LINEARIZABLE));
    // Async replication with failover loses acknowledged writes.
    let async_failover = promised("failover = true\nread_policy = \"session\"");
    assert!(!async_failover.contains(&NO_LOST_WRITES) && !async_failover.contains(&READ_YOUR_WRITES));
    // The lossless designs.
    for mode in ["semi-sync-after-sync", "sync-majority"] {
        let safe = promised(&format!("mode = \"{mode}\"\nfailover = true\nread_policy = \"session\""));
        assert!(safe.contains(&NO_LOST_WRITES) && safe.contains(&MONOTONIC_READS), "{mode}: {safe:?}");
        assert!(!safe.contains(&LINEARIZABLE), "a deposed primary may serve stale reads");
    }
    let after_commit = promised("mode = \"semi-sync-after-commit\"\nfailover = true");
    assert!(!after_commit.contains(&NO_LOST_WRITES));
    assert!(!promised("mode = \"sync-majority\"\nfailover = true\nelection = \"any\"").contains(&NO_LOST_WRITES));
    assert!(!promised("failover = true\nfencing = false").contains(&SINGLE_WRITER));
    assert!(!promised("fsync = \"batch\"").contains(&NO_LOST_WRITES));
    assert!(promised("read_policy = \"primary\"").contains(&LINEARIZABLE));
    assert!(!promised("rejoin = \"position\"").contains(&LOG_PREFIX));
    assert!(!promised("replication_timeout = \"off\"").contains(&CONVERGENCE));
    let names: Vec<&str> = Store::invariants().iter().map(|i| i.name).collect();
    assert!(chapter.iter().all(|p| names.contains(p)), "every promise is an invariant");
}

#[test]
fn sessions_audit_every_key_in_turn_and_keep_the_newest_position() {
    use rand::SeedableRng;
    let store = configure("keys = 3\naudit_every = 2\nread_policy = \"session\"").unwrap();
    let mut session = store.client(1);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let audited: Vec<u32> = (0..12)
        .map(|_| store.next_op(&mut session, &mut rng))
        .filter_map(|op| match op {
            StoreOp::Audit { key } => Some(key),
            _ => None,
        })
        .collect();
    assert_eq!(audited, vec![1, 2, 0, 1, 2, 0], "every key in turn, from the client's own offset");
    let older = Position { group: 1, term: 1, index: 9, id: 9 };
    let newer = Position { group: 1, term: 2, index: 3, id: 3 };
    let written = |at| Outcome::Ok(StoreRes::Written { at });
    let op = StoreOp::Write { key: 0, value: 1 };
    store.observe(&mut session, &op, &written(newer));
    store.observe(&mut session, &op, &written(older));
    assert_eq!(session.tokens.get(&1), Some(&newer), "a newer term wins over a longer log");
    let StoreOp::Read { session: token, .. } =
        (0..10).map(|_| store.next_op(&mut session, &mut rng)).find(|op| matches!(op, StoreOp::Read { .. })).unwrap()
    else {
        unreachable!()
    };
    assert_eq!(token, vec![newer]);
}
