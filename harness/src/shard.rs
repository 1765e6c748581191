//! Cutting a sweep's (scenario, seed) pairs into shards of about equal cost,
//! so N machines each run one slice (`sweep --shard K/N`).
//!
//! A pair's expected cost is its scenario's simulated length (`duration +
//! heal`, in milliseconds) times its host count (every simulated host:
//! the system's, the clients and the probe): what a simulation step costs
//! grows with the hosts it polls, and the steps with the simulated time. The pairs are dealt greedily, dearest first, each to the shard with
//! the least cost so far (ties to the lowest shard; equal pairs in sweep
//! order): the longest-processing-time rule, within 4/3 of the best split.
//! The deal is a pure function of the pairs and their costs, so every shard,
//! given the same files and seeds, computes the same deal and takes its own
//! slice: the slices are disjoint and together cover every pair.
//!
//! This module runs nothing.

use std::sync::Arc;

use crate::registry::Loaded;
use crate::results::Shard;

/// The expected cost of one seed of a scenario: simulated milliseconds
/// times hosts (at least 1 each).
pub fn cost(loaded: &Loaded) -> u64 {
    let millis = u64::try_from(loaded.scenario.end().0.as_millis()).unwrap_or(u64::MAX).max(1);
    let hosts = loaded.scenario.hosts.len().max(1) as u64;
    millis.saturating_mul(hosts)
}

/// Which shard of `count` each of the items with these costs goes to.
pub fn deal(costs: &[u64], count: usize) -> Vec<usize> {
    assert!(count >= 1, "at least one shard");
    let mut order: Vec<usize> = (0..costs.len()).collect();
    // Dearest first; a stable sort keeps equal costs in sweep order.
    order.sort_by(|a, b| costs[*b].cmp(&costs[*a]));
    let mut loads = vec![0u128; count];
    let mut shard_of = vec![0usize; costs.len()];
    for item in order {
        let lightest = (0..count).min_by_key(|&s| (loads[s], s)).expect("at least one shard");
        loads[lightest] += u128::from(costs[item]);
        shard_of[item] = lightest;
    }
    shard_of
}

/// The pairs of `work` (scenario index, seed) that `shard` runs, in sweep
/// order.
pub fn slice(scenarios: &[Arc<Loaded>], work: &[(usize, u64)], shard: Shard) -> Vec<(usize, u64)> {
    let costs: Vec<u64> = scenarios.iter().map(|loaded| cost(loaded)).collect();
    let pair_costs: Vec<u64> = work.iter().map(|&(scenario, _)| costs[scenario]).collect();
    let dealt = deal(&pair_costs, shard.count);
    work.iter().zip(dealt).filter(|(_, s)| *s == shard.index).map(|(pair, _)| *pair).collect()
}

#[cfg(test)]
mod tests {
    use super::deal;

    #[test]
    fn every_item_goes_to_exactly_one_shard_and_loads_are_close() {
        let costs: Vec<u64> = (0..40).map(|i| 1000 + (i * 7919) % 5000).collect();
        let dealt = deal(&costs, 4);
        assert_eq!(dealt.len(), costs.len());
        let mut loads = [0u64; 4];
        for (item, shard) in dealt.iter().enumerate() {
            loads[*shard] += costs[item];
        }
        let (low, high) = (*loads.iter().min().unwrap(), *loads.iter().max().unwrap());
        let dearest = *costs.iter().max().unwrap();
        assert!(high - low <= dearest, "loads {loads:?} differ by more than one item");
        assert_eq!(deal(&costs, 4), dealt, "the deal is a pure function");
    }

    #[test]
    fn one_shard_takes_everything_and_more_shards_than_items_leave_some_empty() {
        assert_eq!(deal(&[5, 3, 9], 1), vec![0, 0, 0]);
        let dealt = deal(&[5, 3], 4);
        assert_eq!(dealt, vec![0, 1]);
    }

    #[test]
    fn one_dear_scenario_is_spread_and_cheap_ones_fill_the_gaps() {
        // Four seeds of a scenario costing 10 and eight costing 5: each shard
        // of 4 gets one dear seed and two cheap ones.
        let mut costs = vec![10u64; 4];
        costs.extend([5u64; 8]);
        let dealt = deal(&costs, 4);
        for shard in 0..4 {
            let load: u64 = dealt.iter().zip(&costs).filter(|(s, _)| **s == shard).map(|(_, c)| c).sum();
            assert_eq!(load, 20, "shard {shard}");
        }
    }
}
