//! The floor faultline stands on: the echo case's exchange in bare turmoil,
//! with no harness around it. The same hosts (a server, two clients, a
//! probe), tick, latencies, Poisson arrivals at the same rate, the same
//! connection pattern (a fresh TCP connection per request), the same
//! deadlines and simulated length, and the same service code (the kit's
//! serve loop and request), but nothing recorded: no history, no trace, no
//! checks, no metrics, no digest. `faultline bench` runs it beside the
//! harness's echo case and reports the ratio.

use std::time::{Duration, UNIX_EPOCH};

use faultline_systems::kit::{request, serve};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The exchange's shape; `faultline bench` builds the harness case from the same values.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub seconds: u64,
    pub tick: Duration,
    pub clients: u32,
    pub rate_per_s: f64,
    pub deadline: Duration,
    pub probe_every: Option<Duration>,
}

const PORT: u16 = 7000;

/// Runs one simulation of `shape` with `seed`; returns how many requests were answered.
pub fn run(shape: Shape, seed: u64) -> u64 {
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .tick_duration(shape.tick)
        .simulation_duration(Duration::from_secs(shape.seconds + 3))
        .tcp_capacity(1024)
        .ephemeral_ports(1024..=65535)
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(10))
        .build();
    sim.host("server", || async {
        // The echo server's loop, as faultline's echo system runs it (without its service time).
        serve::serve(PORT, |payload: u64| async move { Some(payload) }).await?;
        Ok(())
    });
    let answered = std::rc::Rc::new(std::cell::Cell::new(0u64));
    for index in 0..shape.clients {
        let answered = std::rc::Rc::clone(&answered);
        sim.client(format!("client-{index}"), async move {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ u64::from(index));
            let mean = f64::from(shape.clients) / shape.rate_per_s;
            let start = tokio::time::Instant::now();
            let end = Duration::from_secs(shape.seconds);
            let mut calls = tokio::task::JoinSet::new();
            let mut next = Duration::from_secs_f64(faultline_harness::seed::exponential(&mut rng, mean));
            while next < end {
                tokio::time::sleep_until(start + next).await;
                let answered = std::rc::Rc::clone(&answered);
                let deadline = start + next + shape.deadline;
                calls.spawn_local(async move {
                    let call = request::ask::<_, u64>("server", PORT, &42u64);
                    if let Ok(Ok(_)) = tokio::time::timeout_at(deadline, call).await {
                        answered.set(answered.get() + 1);
                    }
                });
                while calls.try_join_next().is_some() {}
                next += Duration::from_secs_f64(faultline_harness::seed::exponential(&mut rng, mean));
            }
            while calls.join_next().await.is_some() {}
            Ok(())
        });
    }
    if let Some(every) = shape.probe_every {
        sim.client("client-probe", async move {
            let start = tokio::time::Instant::now();
            let mut next = Duration::ZERO;
            let mut calls = tokio::task::JoinSet::new();
            while next < Duration::from_secs(shape.seconds) {
                tokio::time::sleep_until(start + next).await;
                let deadline = start + next + shape.deadline;
                calls.spawn_local(async move {
                    let _ = tokio::time::timeout_at(deadline, request::ask::<_, u64>("server", PORT, &0u64)).await;
                });
                while calls.try_join_next().is_some() {}
                next += every;
            }
            while calls.join_next().await.is_some() {}
            Ok(())
        });
    }
    sim.run().expect("the bare echo simulation runs to its end");
    answered.get()
}
