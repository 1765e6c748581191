//! `faultline bench --format json`: every figure of the text tables, as one
//! JSON document. Speeds are simulated seconds per wall second
//! (`_sim_s_per_wall_s`); wall times are seconds (`_wall_s`).

use serde::Serialize;

use super::Measured;

/// The whole document.
#[derive(Serialize)]
pub struct Bench {
    /// Seeds per case (`--seeds`).
    pub seeds: u64,
    /// Threads of the parallel column (`--jobs`).
    pub jobs: usize,
    /// Simulated seconds of each case's seed (its fault phase and heal).
    pub simulated_seconds_per_seed: u64,
    pub cases: Vec<Case>,
    /// Ratios between the cases, on 1 thread.
    pub ratios: Vec<Ratio>,
    /// The echo case against the same exchange in bare turmoil.
    pub bare_turmoil: Overhead,
    /// Every shipped baseline against its floor (the same system code in bare turmoil).
    pub baselines: Vec<Baseline>,
    /// Seeds each point of `fits` took.
    pub fit_seeds: u64,
    /// Wall time per run against simulated length and against request rate.
    pub fits: Vec<Fit>,
    /// Peak resident memory of the process in KiB; `null` where the OS does not say.
    pub peak_resident_kib: Option<u64>,
}

/// One side-by-side case.
#[derive(Serialize)]
pub struct Case {
    pub name: &'static str,
    pub hosts: usize,
    pub one_thread_sim_s_per_wall_s: f64,
    /// On `jobs` threads.
    pub parallel_sim_s_per_wall_s: f64,
    /// parallel / one thread.
    pub speedup: f64,
}

/// One ratio of the text's second table.
#[derive(Serialize)]
pub struct Ratio {
    pub comparison: &'static str,
    /// How many times faster or slower, as `direction` says.
    pub ratio: f64,
    /// "faster" or "slower": which way `ratio` reads.
    pub direction: &'static str,
}

/// faultline against a floor.
#[derive(Serialize)]
pub struct Overhead {
    pub faultline_sim_s_per_wall_s: f64,
    pub floor_sim_s_per_wall_s: f64,
    /// floor / faultline: how many times slower the harness is.
    pub overhead: f64,
}

/// One shipped baseline against its floor.
#[derive(Serialize)]
pub struct Baseline {
    pub file: &'static str,
    pub hosts: usize,
    #[serde(flatten)]
    pub speeds: Overhead,
}

/// One cost-against-size series and its least-squares line.
#[derive(Serialize)]
pub struct Fit {
    /// What the size is ("simulated length (echo, 200/s)").
    pub against: &'static str,
    /// The unit of `size` ("simulated s", "req/s").
    pub size_unit: &'static str,
    pub points: Vec<Point>,
    /// Wall seconds per run for each unit of size.
    pub slope_wall_s: f64,
    pub intercept_wall_s: f64,
    pub r_squared: f64,
}

/// One size and the mean wall time of a run of it.
#[derive(Serialize)]
pub struct Point {
    pub size: f64,
    pub wall_s: f64,
}

fn overhead(faultline: f64, floor: f64) -> Overhead {
    Overhead { faultline_sim_s_per_wall_s: faultline, floor_sim_s_per_wall_s: floor, overhead: floor / faultline }
}

/// The document of what `bench` measured.
pub fn document(m: &Measured) -> Bench {
    Bench {
        seeds: m.seeds,
        jobs: m.jobs,
        simulated_seconds_per_seed: 22,
        cases: m
            .cases
            .iter()
            .map(|c| Case {
                name: c.name,
                hosts: c.hosts,
                one_thread_sim_s_per_wall_s: c.one_thread,
                parallel_sim_s_per_wall_s: c.parallel,
                speedup: c.parallel / c.one_thread,
            })
            .collect(),
        ratios: m
            .ratios()
            .into_iter()
            .map(|(comparison, ratio, direction)| Ratio { comparison, ratio, direction })
            .collect(),
        bare_turmoil: overhead(m.floor.harness, m.floor.bare),
        baselines: m
            .baselines
            .iter()
            .map(|b| Baseline { file: b.file, hosts: b.hosts, speeds: overhead(b.harness, b.floor) })
            .collect(),
        fit_seeds: m.fit_seeds,
        fits: m
            .fits
            .iter()
            .map(|s| Fit {
                against: s.what,
                size_unit: s.unit,
                points: s.points.iter().map(|&(size, wall_s)| Point { size, wall_s }).collect(),
                slope_wall_s: s.slope,
                intercept_wall_s: s.intercept,
                r_squared: s.r_squared,
            })
            .collect(),
        peak_resident_kib: m.peak_memory_kib,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{baselines, fits, CaseRow, Floor, Measured};

    /// `bench` runs for half a minute even with one seed in a debug build:
    /// its document is checked here on hand-made measurements.
    #[test]
    fn the_document_carries_every_figure_of_the_tables() {
        let case = |name, hosts, one_thread| CaseRow { name, hosts, one_thread, parallel: one_thread * 2.0 };
        let measured = Measured {
            seeds: 1,
            jobs: 2,
            cases: vec![
                case("echo, 4 hosts, 1ms tick", 4, 100.0),
                case("echo, 4 hosts, 5ms tick", 4, 250.0),
                case("echo, probe every 1ms", 4, 40.0),
                case("echo, no probe", 3, 125.0),
                case("cache, 9 hosts, 300 req/s", 9, 25.0),
                case("breaker, 6 hosts, 200 req/s", 6, 50.0),
            ],
            floor: Floor { harness: 100.0, bare: 110.0 },
            baselines: vec![baselines::Row {
                file: "scenarios/echo/baseline.toml",
                hosts: 4,
                harness: 20.0,
                floor: 21.0,
            }],
            fits: vec![fits::Series {
                what: "simulated length (echo, 200/s)",
                unit: "simulated s",
                per: "simulated second",
                points: vec![(12.0, 0.1), (22.0, 0.2)],
                slope: 0.01,
                intercept: -0.02,
                r_squared: 1.0,
            }],
            fit_seeds: 1,
            peak_memory_kib: Some(19176),
        };
        let json = serde_json::to_value(super::document(&measured)).unwrap();
        assert_eq!(json["cases"].as_array().unwrap().len(), 6);
        assert_eq!(json["cases"][0]["one_thread_sim_s_per_wall_s"], 100.0);
        assert_eq!(json["cases"][0]["speedup"], 2.0);
        assert_eq!(json["ratios"][0]["comparison"], "5ms tick against 1ms tick (echo)");
        assert_eq!(json["ratios"][0]["ratio"], 2.5);
        assert_eq!(json["ratios"][0]["direction"], "faster");
        assert_eq!(json["ratios"][1]["ratio"], 2.5);
        assert_eq!(json["ratios"][3]["ratio"], 4.0);
        assert_eq!(json["bare_turmoil"]["overhead"], 1.1);
        assert_eq!(json["baselines"][0]["file"], "scenarios/echo/baseline.toml");
        assert_eq!(json["baselines"][0]["overhead"], 21.0 / 20.0);
        assert_eq!(json["fits"][0]["points"][1]["wall_s"], 0.2);
        assert_eq!(json["fits"][0]["r_squared"], 1.0);
        assert_eq!(json["peak_resident_kib"], 19176);
    }
}
