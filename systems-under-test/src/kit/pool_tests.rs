//! The pool in small turmoil simulations: reuse, a crashed server's
//! connection, a timed-out connection, and the connect leak to a down host.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use rand_chacha::ChaCha8Rng;

use super::*;
use crate::kit::request::CallError;
use crate::kit::serve::serve;

const PORT: u16 = 7000;

fn sim<'a>() -> turmoil::Sim<'a> {
    turmoil::Builder::new()
        .rng_seed(7)
        .epoch(UNIX_EPOCH)
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(1))
        .simulation_duration(Duration::from_secs(60))
        .build()
}

/// An echo server; a request of 0 is answered after a second.
fn server(sim: &mut turmoil::Sim<'_>) {
    sim.host("server", || async {
        serve(PORT, |request: u64| async move {
            if request == 0 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Some(request)
        })
        .await?;
        Ok(())
    });
}

fn pool() -> Rc<Pool> {
    Rc::new(Pool::new(ChaCha8Rng::seed_from_u64(1)))
}

#[test]
fn sequential_requests_reuse_one_connection() {
    let mut sim = sim();
    server(&mut sim);
    sim.client("client", async {
        let pool = pool();
        for request in 1..=10u64 {
            let answer: u64 = pool.ask("server", PORT, &request).await?;
            assert_eq!(answer, request);
        }
        let stats = pool.stats();
        assert_eq!((stats.connects, stats.reused, stats.discarded), (1, 9, 0), "{stats:?}");
        assert_eq!(pool.idle("server", PORT), 1);
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn a_crashed_servers_connection_is_dropped_and_the_next_request_reconnects() {
    let mut sim = sim();
    server(&mut sim);
    let done = Rc::new(Cell::new(false));
    let finished = Rc::clone(&done);
    sim.client("client", async move {
        let pool = pool();
        let _: u64 = pool.ask("server", PORT, &1u64).await?;
        assert_eq!(pool.idle("server", PORT), 1);
        // The server crashes at 1s and is back at 1.5s (below).
        tokio::time::sleep(Duration::from_secs(2)).await;
        let answer: u64 = pool.ask("server", PORT, &2u64).await?;
        assert_eq!(answer, 2, "the request went over a new connection, not the dead one");
        let stats = pool.stats();
        assert_eq!((stats.connects, stats.reused, stats.discarded), (2, 0, 1), "{stats:?}");
        finished.set(true);
        Ok(())
    });
    let mut crashed = false;
    while !sim.step().unwrap() {
        let now = sim.elapsed();
        if !crashed && now >= Duration::from_secs(1) {
            sim.crash("server");
            crashed = true;
        } else if crashed && now >= Duration::from_millis(1500) && !sim.is_host_running("server") {
            sim.bounce("server");
        }
    }
    assert!(done.get());
}

#[test]
fn a_timed_out_connection_is_not_reused() {
    let mut sim = sim();
    server(&mut sim);
    sim.client("client", async {
        let pool = pool();
        let late: Result<u64, CallError> = pool.ask_within(Duration::from_millis(100), "server", PORT, &0u64).await;
        assert_eq!(late, Err(CallError::Timeout(Duration::from_millis(100))));
        assert_eq!(pool.idle("server", PORT), 0, "the timed-out connection is gone");
        // Its late answer (0) arrives at 1s; the next request must not read it.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let answer: u64 = pool.ask("server", PORT, &5u64).await?;
        assert_eq!(answer, 5);
        let stats = pool.stats();
        assert_eq!((stats.connects, stats.discarded), (2, 1), "{stats:?}");
        Ok(())
    });
    sim.run().unwrap();
}

/// 200 requests, one every 10 ms, to a server behind a partition (connects
/// refused at once): returns the client's leaked sockets (turmoil's count of
/// its TCP streams) and whether a request after the repair was answered.
fn refused_run(connections: Connections) -> (usize, bool) {
    let mut sim = sim();
    server(&mut sim);
    let result = Rc::new(Cell::new((0usize, false)));
    let out = Rc::clone(&result);
    sim.client("client", async move {
        let caller = Caller::new(connections, &mut ChaCha8Rng::seed_from_u64(1));
        turmoil::partition("client", "server");
        for request in 1..=200u64 {
            let answer: Result<u64, CallError> =
                caller.ask_within(Duration::from_millis(50), "server", PORT, &request).await;
            assert!(answer.is_err(), "the server is cut off");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let leaked = turmoil::established_tcp_stream_count();
        turmoil::repair("client", "server");
        // The backoff is at most 1s: a request after it reconnects.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let answer: Result<u64, CallError> = caller.ask_within(Duration::from_millis(50), "server", PORT, &7u64).await;
        out.set((leaked, answer == Ok(7)));
        Ok(())
    });
    sim.run().unwrap();
    result.get()
}

#[test]
fn the_connect_leak_to_a_down_host_is_bounded() {
    let (per_request, recovered) = refused_run(Connections::PerRequest);
    assert_eq!(per_request, 200, "turmoil 0.7.2 keeps every refused connect's socket");
    assert!(recovered);
    let (pooled, recovered) = refused_run(Connections::Pooled);
    // 10 ms doubling to 1 s over about 2.5 s: about a dozen connects.
    assert!(pooled <= 15, "pooled with backoff leaked {pooled} sockets");
    assert!(recovered, "the pool reconnects once the backoff is over");
}

#[test]
fn every_system_whose_hosts_call_others_takes_the_knob() {
    let parse = |system: &str, knobs: &str| {
        let source = format!(
            "name = \"t\"\nsystem = \"{system}\"\nduration = \"5s\"\n[workload]\nclients = 1\nrate = \"10/s\"\n[knobs]\n{knobs}\n"
        );
        faultline_harness::registry::parse("t.toml", &source, &crate::registry()).map(|_| ())
    };
    for system in ["echo", "cache", "breaker", "store", "queue", "app-tier"] {
        for value in ["per-request", "pooled", "pooled-unchecked"] {
            let knob = format!("connections = \"{value}\"");
            assert!(parse(system, &knob).is_ok(), "{system}: {knob}: {:?}", parse(system, &knob));
        }
        assert!(parse(system, "connections = \"shared\"").is_err(), "{system}");
    }
    let conflict = parse("breaker", "connections = \"pooled\"\ncall_timeout_covers = \"connect\"").unwrap_err();
    let message = conflict.to_string();
    assert!(message.contains("connections") && message.contains("call_timeout_covers"), "{message}");
}
