//! The autoscaler: every `scale_interval` it asks the lb how many requests
//! it admitted, turns that into a request rate, and applies the Kubernetes
//! HPA rule: `desired = ceil(current x load / target)`, with load the rate
//! per instance and target `target_rps`, unchanged within a 10% tolerance,
//! clamped to `instances_min..=instances_max`. With `stabilization`, a
//! scale-down goes only as low as the highest recommendation of the last
//! `stabilization_window` (the HPA's scale-down stabilization); a scale-up
//! happens at once.
//!
//! It starts and stops instances through the harness's pool
//! (`HostContext::pool`). It tells the lb its members after every change
//! and every interval (so a restarted lb learns them again); a scale-in
//! takes the instance out of the lb's members first and stops it
//! `drain_time` later, so requests in flight on it can finish.

use std::cell::RefCell;
use std::collections::{BTreeSet, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use faultline_harness::history::nanos;
use faultline_harness::system::{HostResult, Pool};
use faultline_harness::{EventSink, HostContext, Nanos};
use tokio::time::Instant;

use super::knobs::AppTier;
use super::protocol::{
    app_host, AppReply, AppRequest, HealthCheck, LbReply, LbRequest, TierEvent, APP_PORT, LB, LB_PORT,
};
use crate::kit::request::ask_within;

/// The HPA's default tolerance: no change while load / target is within 10% of 1.
pub const TOLERANCE: f64 = 0.1;

/// How long the autoscaler waits for the lb or an instance.
const CONTROL_TIMEOUT: Duration = Duration::from_millis(200);

fn now() -> Nanos {
    turmoil::sim_elapsed().map_or(0, nanos)
}

/// The HPA rule with its clamp and scale-down stabilization: plain data, driven
/// with the simulated time.
#[derive(Clone, Debug)]
pub struct Recommender {
    min: u32,
    max: u32,
    target_rps: f64,
    stabilization: Option<Nanos>,
    /// Recent (time, clamped recommendation), newest last.
    recent: VecDeque<(Nanos, u32)>,
}

impl Recommender {
    pub fn new(config: &AppTier) -> Recommender {
        Recommender {
            min: config.instances_min,
            max: config.instances_max,
            target_rps: config.target_rps,
            stabilization: config.stabilization.then(|| config.stabilization_window.as_nanos()),
            recent: VecDeque::new(),
        }
    }

    /// The HPA rule for `rps` over `current` instances, clamped.
    pub fn recommend(&self, current: u32, rps: f64) -> u32 {
        assert!(current >= 1, "the autoscaler always runs an instance");
        let ratio = rps / f64::from(current) / self.target_rps;
        let raw = if (ratio - 1.0).abs() <= TOLERANCE {
            current
        } else {
            libm::ceil(f64::from(current) * ratio - 1e-9).clamp(0.0, f64::from(u32::MAX)) as u32
        };
        raw.clamp(self.min, self.max)
    }

    /// The instance count to have at `now`, given this interval's recommendation.
    pub fn desired(&mut self, now: Nanos, current: u32, recommended: u32) -> u32 {
        self.recent.push_back((now, recommended));
        let Some(window) = self.stabilization else {
            self.recent.clear();
            return recommended;
        };
        while self.recent.front().is_some_and(|(at, _)| *at + window < now) {
            self.recent.pop_front();
        }
        if recommended >= current {
            return recommended;
        }
        let highest = self.recent.iter().map(|(_, r)| *r).max().unwrap_or(recommended);
        let desired = highest.min(current);
        assert!(desired >= recommended, "stabilization only holds a scale-down back");
        desired
    }
}

struct Scaler {
    config: Arc<AppTier>,
    events: EventSink<TierEvent>,
    pool: Pool,
    /// The instances running as members.
    current: RefCell<BTreeSet<u32>>,
}

pub async fn serve(config: Arc<AppTier>, context: HostContext<TierEvent>) -> HostResult {
    let current =
        if context.incarnation == 0 { (1..=config.instances).collect() } else { discover(config.pool_size()).await };
    let scaler = Rc::new(Scaler { config, events: context.events, pool: context.pool, current: RefCell::new(current) });
    let mut recommender = Recommender::new(&scaler.config);
    // A first reading at start, so that the first interval already measures.
    let mut last = stats().await;
    let start = Instant::now();
    let mut round: u32 = 0;
    loop {
        scaler.tell_lb().await;
        round = round.saturating_add(1);
        tokio::time::sleep_until(start + scaler.config.scale_interval.0 * round).await;
        let sampled = stats().await;
        if let (Some((then, before)), Some((at, admitted))) = (last, sampled) {
            // A restarted lb counts from zero again: skip that interval.
            if admitted >= before && at > then {
                let rps = (admitted - before) as f64 / Duration::from_nanos(at - then).as_secs_f64();
                scaler.sample(&mut recommender, at, rps);
            }
        }
        last = sampled;
    }
}

/// The lb's count of admitted requests, and when it was read.
async fn stats() -> Option<(Nanos, u64)> {
    match ask_within::<_, LbReply>(CONTROL_TIMEOUT, LB, LB_PORT, &LbRequest::Stats).await {
        Ok(LbReply::Stats { admitted }) => Some((now(), admitted)),
        _ => None,
    }
}

/// After a restart: the instances of the pool that answer a liveness check.
async fn discover(pool_size: u32) -> BTreeSet<u32> {
    let mut running = BTreeSet::new();
    for instance in 1..=pool_size {
        let request = AppRequest::Health(HealthCheck::Liveness);
        if let Ok(AppReply::Alive) = ask_within(CONTROL_TIMEOUT, &app_host(instance), APP_PORT, &request).await {
            running.insert(instance);
        }
    }
    running
}

impl Scaler {
    fn sample(self: &Rc<Self>, recommender: &mut Recommender, at: Nanos, rps: f64) {
        let current = u32::try_from(self.current.borrow().len()).expect("a pool fits u32").max(1);
        let recommended = recommender.recommend(current, rps);
        let desired = recommender.desired(at, current, recommended);
        self.events.emit(TierEvent::Sample { rps, current, recommended, desired });
        if desired > current {
            self.scale_out(desired);
        } else if desired < current {
            self.scale_in(desired);
        }
    }

    /// Starts the lowest-numbered instances that are not running.
    fn scale_out(&self, desired: u32) {
        let mut current = self.current.borrow_mut();
        let from = current.len() as u32;
        for instance in 1..=self.config.pool_size() {
            if current.len() as u32 >= desired {
                break;
            }
            if current.insert(instance) {
                // The pool holds every instance, so a start is never refused.
                let _ = self.pool.start(&app_host(instance));
            }
        }
        self.events.emit(TierEvent::Scale { from, to: current.len() as u32 });
    }

    /// Takes the highest-numbered instances out of the lb's members and
    /// stops each `drain_time` later, unless a scale-out took it back.
    fn scale_in(self: &Rc<Self>, desired: u32) {
        let mut current = self.current.borrow_mut();
        let from = current.len() as u32;
        while current.len() as u32 > desired {
            let instance = *current.iter().next_back().expect("above the desired count");
            current.remove(&instance);
            let scaler = Rc::clone(self);
            tokio::task::spawn_local(async move {
                scaler.tell_lb().await;
                tokio::time::sleep(scaler.config.drain_time.0).await;
                if !scaler.current.borrow().contains(&instance) {
                    let _ = scaler.pool.stop(&app_host(instance));
                }
            });
        }
        self.events.emit(TierEvent::Scale { from, to: current.len() as u32 });
    }

    async fn tell_lb(&self) {
        let members = self.current.borrow().iter().copied().collect();
        let _ = ask_within::<_, LbReply>(CONTROL_TIMEOUT, LB, LB_PORT, &LbRequest::Members { members }).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Nanos = 1_000_000_000;

    fn recommender(knobs: &str) -> Recommender {
        let base = "autoscale = true\ninstances = 2\ninstances_min = 1\ninstances_max = 6\ntarget_rps = \"100/s\"\n";
        Recommender::new(&AppTier::from_knobs(&format!("{base}{knobs}")))
    }

    #[test]
    fn the_hpa_rule_scales_by_load_over_target_within_a_tolerance_and_the_clamp() {
        let r = recommender("");
        assert_eq!(r.recommend(2, 400.0), 4);
        assert_eq!(r.recommend(2, 210.0), 2, "within 10% of the target: no change");
        assert_eq!(r.recommend(2, 230.0), 3);
        assert_eq!(r.recommend(4, 100.0), 1);
        assert_eq!(r.recommend(2, 5000.0), 6, "clamped to the maximum");
        assert_eq!(r.recommend(3, 0.0), 1, "clamped to the minimum");
    }

    #[test]
    fn stabilization_holds_a_scale_down_for_its_window_and_never_an_up() {
        let mut stable = recommender("stabilization_window = \"10s\"");
        assert_eq!(stable.desired(0, 2, 5), 5);
        assert_eq!(stable.desired(S, 5, 2), 5, "the 5 of a second ago is in the window");
        assert_eq!(stable.desired(10 * S, 5, 2), 5, "the window includes its edge");
        assert_eq!(stable.desired(11 * S, 5, 2), 2, "the 5 left the window");
        assert_eq!(stable.desired(12 * S, 2, 6), 6, "a scale-up is never held back");
        let mut flapping = recommender("stabilization = false");
        assert_eq!(flapping.desired(0, 2, 5), 5);
        assert_eq!(flapping.desired(S, 5, 2), 2);
    }
}
