//! `faultline calibrate --format json`: every theory check with its
//! formula, the theoretical value, the measured mean with its 95%
//! confidence interval, and its verdict.

use faultline_harness::stats::Summary;
use faultline_systems::theory::{Check, Scale};
use serde::Serialize;

/// The whole document.
#[derive(Serialize)]
pub struct Calibrate {
    /// "short" or "long" (`--long`).
    pub scale: &'static str,
    /// Seeds per check at this scale.
    pub seeds: u64,
    /// Worker threads.
    pub jobs: usize,
    /// "passed" when every check passed (exit 0), else "failed" (exit 1).
    pub verdict: &'static str,
    pub checks: Vec<CheckJson>,
}

/// One check.
#[derive(Serialize)]
pub struct CheckJson {
    pub name: String,
    pub formula: &'static str,
    pub parameters: String,
    /// The unit of `expected` and `measured`: "fraction" (0 to 1; the text
    /// table shows it as a percentage), "seconds" or "number".
    pub unit: &'static str,
    /// The theoretical value.
    pub expected: f64,
    /// The figure across seeds: n, mean, sd, ci_low, ci_high, min, max.
    pub measured: Summary,
    /// Seeds run.
    pub seeds: u64,
    /// Simulated seconds of each seed's fault phase.
    pub simulated_seconds: u64,
    /// "pass" when `expected` lies inside the measured 95% interval, else "fail".
    pub verdict: &'static str,
}

fn unit(table_unit: &str) -> &'static str {
    match table_unit {
        "%" => "fraction",
        "s" => "seconds",
        _ => "number",
    }
}

/// The document of `checks`, run at `scale` on `jobs` threads.
pub fn document(checks: &[Check], scale: Scale, jobs: usize) -> Calibrate {
    Calibrate {
        scale: scale.name,
        seeds: scale.seeds,
        jobs,
        verdict: if checks.iter().all(|c| c.passed) { "passed" } else { "failed" },
        checks: checks
            .iter()
            .map(|c| CheckJson {
                name: c.name.clone(),
                formula: c.formula,
                parameters: c.parameters.clone(),
                unit: unit(c.unit),
                expected: c.expected,
                measured: c.measured.clone(),
                seeds: c.seeds,
                simulated_seconds: c.seconds,
                verdict: if c.passed { "pass" } else { "fail" },
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use faultline_harness::stats::summarize;
    use faultline_systems::theory::{Check, SHORT};

    /// `calibrate` runs for minutes in a debug build, too long for a test of
    /// its output: the document is built here from hand-made checks.
    #[test]
    fn the_document_carries_every_figure_typed() {
        let check = |name: &str, unit: &'static str, expected: f64, values: &[f64], passed: bool| Check {
            name: name.into(),
            formula: "W = 1 / (mu - lambda)",
            parameters: "lambda 5/s, mu 10/s".into(),
            expected,
            measured: summarize(values).expect("values"),
            unit,
            seeds: values.len() as u64,
            seconds: 30,
            passed,
        };
        let checks = [
            check("M/M/1 mean time in system", "s", 0.2, &[0.19, 0.21, 0.2], true),
            check("availability", "%", 0.9, &[0.5, 0.52, 0.51], false),
        ];
        let json = serde_json::to_value(super::document(&checks, SHORT, 2)).unwrap();
        assert_eq!(json["scale"], "short");
        assert_eq!(json["seeds"], 10);
        assert_eq!(json["jobs"], 2);
        assert_eq!(json["verdict"], "failed");
        let first = &json["checks"][0];
        assert_eq!(first["unit"], "seconds");
        assert_eq!(first["expected"], 0.2);
        assert_eq!(first["measured"]["n"], 3);
        assert!((first["measured"]["mean"].as_f64().unwrap() - 0.2).abs() < 1e-12);
        assert!(first["measured"]["ci_low"].as_f64().unwrap() < 0.2);
        assert_eq!(first["simulated_seconds"], 30);
        assert_eq!(first["verdict"], "pass");
        assert_eq!(json["checks"][1]["unit"], "fraction");
        assert_eq!(json["checks"][1]["verdict"], "fail");
        let all_pass = serde_json::to_value(super::document(&checks[..1], SHORT, 1)).unwrap();
        assert_eq!(all_pass["verdict"], "passed");
    }
}
