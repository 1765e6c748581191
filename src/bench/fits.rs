//! Does a run's cost grow linearly with its simulated length and with its
//! request rate? Four sizes of each on the echo case, one thread, a
//! least-squares line through (size, wall seconds) and its R².

use std::sync::Arc;
use std::time::Instant;

use faultline_harness::drive::{run_seed, RunOptions};
use faultline_harness::{registry, InputError, Registry};

/// One measured series: sizes, wall seconds per run, the fit.
pub struct Series {
    pub what: &'static str,
    pub unit: &'static str,
    /// The unit of one step of size, for the slope ("simulated second").
    pub per: &'static str,
    pub points: Vec<(f64, f64)>,
    pub slope: f64,
    pub intercept: f64,
    pub r_squared: f64,
}

/// The least-squares line through `points` and its coefficient of determination.
pub fn fit(points: &[(f64, f64)]) -> (f64, f64, f64) {
    assert!(points.len() >= 2, "a line needs two points");
    let n = points.len() as f64;
    let (mean_x, mean_y) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let sxy: f64 = points.iter().map(|(x, y)| (x - mean_x) * (y - mean_y)).sum();
    let sxx: f64 = points.iter().map(|(x, _)| (x - mean_x) * (x - mean_x)).sum();
    let slope = sxy / sxx;
    let intercept = mean_y - slope * mean_x;
    let total: f64 = points.iter().map(|(_, y)| (y - mean_y) * (y - mean_y)).sum();
    let residual: f64 = points.iter().map(|(x, y)| (y - intercept - slope * x).powi(2)).sum();
    (slope, intercept, 1.0 - residual / total)
}

fn echo(seconds: u64, rate: u64) -> String {
    format!(
        "name = \"fit\"\nsystem = \"echo\"\nduration = \"{seconds}s\"\nheal = \"2s\"\n\
         [workload]\nclients = 2\nrate = \"{rate}/s\"\ndeadline = \"500ms\"\n"
    )
}

/// Mean wall seconds of one run of `source` over `seeds` seeds.
fn wall(systems: &Registry, source: &str, seeds: u64) -> Result<f64, InputError> {
    let loaded = Arc::new(registry::parse("bench: fit", source, systems)?);
    let started = Instant::now();
    for seed in 1..=seeds {
        let report = run_seed(&loaded, seed, RunOptions::default());
        if let Some(why) = report.aborted {
            return Err(InputError::new("bench: fit", format!("seed {seed} did not finish: {why}")));
        }
    }
    Ok(started.elapsed().as_secs_f64() / seeds as f64)
}

fn series(what: &'static str, (unit, per): (&'static str, &'static str), points: Vec<(f64, f64)>) -> Series {
    let (slope, intercept, r_squared) = fit(&points);
    Series { what, unit, per, points, slope, intercept, r_squared }
}

/// Echo at 200/s over 10, 20, 40 and 80 s; then 20 s at 100, 200, 400 and 800/s.
pub fn measure(systems: &Registry, seeds: u64) -> Result<Vec<Series>, InputError> {
    let mut length = Vec::new();
    for seconds in [10, 20, 40, 80] {
        length.push(((seconds + 2) as f64, wall(systems, &echo(seconds, 200), seeds)?));
    }
    let mut rate = Vec::new();
    for per_second in [100, 200, 400, 800] {
        rate.push((per_second as f64, wall(systems, &echo(20, per_second), seeds)?));
    }
    Ok(vec![
        series("simulated length (echo, 200/s)", ("simulated s", "simulated second"), length),
        series("request rate (echo, 22 s)", ("req/s", "req/s"), rate),
    ])
}

pub fn print(all: &[Series], seeds: u64) {
    println!("\nCost against size: wall seconds per run (1 thread, mean of {seeds} seeds), least-squares line:\n");
    println!("| cost against | sizes | wall s per run | fit | R² |");
    println!("|---|---|---|---|---|");
    for s in all {
        let sizes: Vec<String> = s.points.iter().map(|(x, _)| format!("{x:.0}")).collect();
        let walls: Vec<String> = s.points.iter().map(|(_, y)| format!("{y:.3}")).collect();
        println!(
            "| {} | {} {} | {} | {:.5} s per {} + {:.3} s | {:.4} |",
            s.what,
            sizes.join(", "),
            s.unit,
            walls.join(", "),
            s.slope,
            s.per,
            s.intercept,
            s.r_squared
        );
    }
}

#[cfg(test)]
mod tests {
    use super::fit;

    #[test]
    fn a_line_fits_exactly_and_noise_lowers_r_squared() {
        let (slope, intercept, r2) = fit(&[(1.0, 3.0), (2.0, 5.0), (4.0, 9.0), (8.0, 17.0)]);
        assert!((slope - 2.0).abs() < 1e-12 && (intercept - 1.0).abs() < 1e-12 && (r2 - 1.0).abs() < 1e-12);
        let (_, _, noisy) = fit(&[(1.0, 3.0), (2.0, 6.0), (4.0, 8.0), (8.0, 17.5)]);
        assert!(noisy < 1.0 && noisy > 0.9, "{noisy}");
    }
}
