//! The page of a sweep: a table of the scenarios, then for each scenario
//! the distribution of availability and of MTTR across its seeds (a
//! histogram, each bar split by how the seeds went, with the mean and its
//! 95% interval marked) and its failing seeds with their replay commands.
//!
//! A function of the scenarios' results alone ([`ScenarioResult`], as
//! `sweep::judge_scenario` builds them), so a sweep run here and one merged
//! from result files draw the same page.

use std::fmt::Write as _;

use faultline_harness::judge::RunReport;
use faultline_harness::stats::Summary;
use faultline_harness::sweep::{ScenarioResult, Verdict};
use faultline_harness::SeedOutcome;

use super::{escape, page, percent, time_ms};

const HIST_W: f64 = 470.0;
const HIST_H: f64 = 90.0;
const HIST_BINS: usize = 20;
/// Failing seeds listed per scenario (all of them count).
const FAILING_SHOWN_MAX: usize = 200;

/// How a seed went, for the histograms' colours.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Passed,
    Found,
    Other,
    Failed,
}

impl Status {
    fn of(report: &RunReport) -> Status {
        match report.outcome {
            SeedOutcome::Passed => Status::Passed,
            SeedOutcome::FoundExpected => Status::Found,
            SeedOutcome::NotFound | SeedOutcome::Unjudged { .. } => Status::Other,
            SeedOutcome::Failed { .. } => Status::Failed,
        }
    }

    fn colour(self) -> &'static str {
        match self {
            Status::Passed => "#54a24b",
            Status::Found => "#eeca3b",
            Status::Other => "#9d9da0",
            Status::Failed => "#e45756",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Found => "found the expected flaw",
            Status::Other => "not found or unjudged",
            Status::Failed => "failed",
        }
    }
}

/// The page of a sweep over `results`.
pub fn sweep_page(results: &[ScenarioResult]) -> String {
    let seeds: usize = results.iter().map(ScenarioResult::seeds).sum();
    let failed: usize = results.iter().map(|r| r.failed_seeds().count()).sum();
    let passed = results.iter().filter(|r| r.verdict == Verdict::Passed).count();
    let mut body = String::new();
    let _ = write!(
        body,
        "<header><h1>faultline sweep: {} of {} passed</h1><div class=\"sub\">{} · {} failed</div></header>\n<main>\n",
        passed,
        noun(results.len(), "scenario", "scenarios"),
        noun(seeds, "seed", "seeds"),
        noun(failed, "seed", "seeds"),
    );
    body.push_str("<div class=\"legend\" style=\"padding-top:12px\">");
    for status in [Status::Passed, Status::Found, Status::Other, Status::Failed] {
        let _ =
            write!(body, "<span><i class=\"sw\" style=\"background:{}\"></i>{}</span>", status.colour(), status.name());
    }
    body.push_str("</div>\n");
    body.push_str(&overview(results));
    for (index, result) in results.iter().enumerate() {
        body.push_str(&scenario_section(index, result));
    }
    body.push_str("</main>\n");
    page("faultline sweep report", &body)
}

fn noun(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

fn verdict_badge(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Passed => "<span class=\"verdict pass\">passed</span>",
        Verdict::Failed => "<span class=\"verdict fail\">failed</span>",
        Verdict::Unjudged => "<span class=\"verdict unjudged\">unjudged</span>",
    }
}

fn summary_text(summary: Option<&Summary>, show: impl Fn(f64) -> String) -> String {
    match summary {
        Some(s) if s.n > 1 => format!("{} [{} .. {}]", show(s.mean), show(s.ci_low), show(s.ci_high)),
        Some(s) => show(s.mean),
        None => "-".into(),
    }
}

fn overview(results: &[ScenarioResult]) -> String {
    let mut html = String::from(
        "<h2>Scenarios</h2>\n<table id=\"scenarios\"><tr><th>scenario</th><th>seeds</th><th>failed</th>\
         <th>availability (mean [95% CI])</th><th>MTTR</th><th>verdict</th></tr>\n",
    );
    for (index, result) in results.iter().enumerate() {
        let _ = writeln!(
            html,
            "<tr><td><a href=\"#s{index}\">{}</a><br><span class=\"note\">{}</span></td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            escape(&result.name),
            escape(&result.file),
            result.seeds(),
            result.failed_seeds().count(),
            summary_text(result.figures.get("availability"), percent),
            summary_text(result.figures.get("mttr_ms"), time_ms),
            verdict_badge(result.verdict)
        );
    }
    html.push_str("</table>\n");
    html
}

fn scenario_section(index: usize, result: &ScenarioResult) -> String {
    let mut html = String::new();
    let _ = writeln!(
        html,
        "<h2 id=\"s{index}\">{} {}</h2>\n<p class=\"note\">{} · expect {} · {}</p>",
        escape(&result.name),
        verdict_badge(result.verdict),
        escape(&result.file),
        escape(&result.expect),
        noun(result.seeds(), "seed", "seeds")
    );
    for reason in &result.reasons {
        let _ = writeln!(html, "<p class=\"violation\">{}</p>", escape(reason));
    }
    let finished: Vec<&RunReport> = result.reports.iter().filter(|r| r.aborted.is_none()).collect();
    let availability: Vec<(f64, Status)> = finished.iter().map(|r| (r.metrics.availability, Status::of(r))).collect();
    let mttr: Vec<(f64, Status)> =
        finished.iter().filter(|r| !r.metrics.outages.is_empty()).map(|r| (r.metrics.mttr_ms, Status::of(r))).collect();
    html.push_str("<div style=\"display:flex;gap:24px;flex-wrap:wrap\">\n");
    html.push_str(&histogram(
        "availability",
        &format!("availability across seeds: {}", summary_text(result.figures.get("availability"), percent)),
        &availability,
        result.figures.get("availability"),
        &percent,
    ));
    let mttr_title = if mttr.is_empty() {
        "MTTR across seeds: no seed had an outage".to_string()
    } else {
        format!(
            "MTTR across the {} with an outage: {}",
            noun(mttr.len(), "seed", "seeds"),
            summary_text(result.figures.get("mttr_ms"), time_ms)
        )
    };
    html.push_str(&histogram("mttr", &mttr_title, &mttr, result.figures.get("mttr_ms"), &time_ms));
    html.push_str("</div>\n");
    html.push_str(&failing(result));
    html
}

/// A histogram of `values` (one a seed), each bar stacked by status, with
/// the mean and its interval marked.
fn histogram(
    id: &str,
    title: &str,
    values: &[(f64, Status)],
    summary: Option<&Summary>,
    show: &dyn Fn(f64) -> String,
) -> String {
    let mut svg = String::new();
    let (top, left, bottom) = (22.0, 10.0, 18.0);
    let height = top + HIST_H + bottom;
    let _ = writeln!(
        svg,
        "<svg class=\"histogram\" data-figure=\"{id}\" data-seeds=\"{}\" xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{:.0}\" height=\"{height:.0}\" font-size=\"11\">\n<text x=\"{left}\" y=\"14\" fill=\"#1f2328\">{}</text>",
        values.len(),
        HIST_W + 2.0 * left,
        escape(title)
    );
    if values.is_empty() {
        svg.push_str("</svg>\n");
        return svg;
    }
    let low = values.iter().map(|(v, _)| *v).fold(f64::INFINITY, f64::min);
    let high = values.iter().map(|(v, _)| *v).fold(f64::NEG_INFINITY, f64::max);
    // Every seed alike: one bar, and both ends of the axis show the value.
    let span = if high > low { high - low } else { low.abs().max(1.0) * 1e-9 };
    let (low, high) = (low, low + span);
    let bin_of = |v: f64| (((v - low) / span * HIST_BINS as f64) as usize).min(HIST_BINS - 1);
    let mut counts = vec![[0usize; 4]; HIST_BINS];
    for (value, status) in values {
        counts[bin_of(*value)][*status as usize] += 1;
    }
    let tallest = counts.iter().map(|c| c.iter().sum::<usize>()).max().unwrap_or(1).max(1);
    let bar_w = HIST_W / HIST_BINS as f64;
    let x_of = |v: f64| left + (v - low) / span * HIST_W;
    for (index, bin) in counts.iter().enumerate() {
        let mut y = top + HIST_H;
        let x = left + index as f64 * bar_w;
        let total: usize = bin.iter().sum();
        for status in [Status::Passed, Status::Found, Status::Other, Status::Failed] {
            let count = bin[status as usize];
            if count == 0 {
                continue;
            }
            let h = count as f64 / tallest as f64 * HIST_H;
            y -= h;
            let _ = writeln!(
                svg,
                "<rect class=\"bar\" data-status=\"{}\" data-count=\"{count}\" x=\"{x:.2}\" y=\"{y:.2}\" width=\"{:.2}\" \
                 height=\"{h:.2}\" fill=\"{}\"><title>{} .. {}: {total} seeds, {count} {}</title></rect>",
                status.name(),
                bar_w - 1.0,
                status.colour(),
                show(low + index as f64 * span / HIST_BINS as f64),
                show(low + (index + 1) as f64 * span / HIST_BINS as f64),
                status.name()
            );
        }
    }
    if let Some(summary) = summary {
        let (x0, x1, xm) = (x_of(summary.ci_low.max(low)), x_of(summary.ci_high.min(high)), x_of(summary.mean));
        let _ = writeln!(
            svg,
            "<rect class=\"ci\" x=\"{x0:.2}\" y=\"{top}\" width=\"{:.2}\" height=\"{HIST_H}\" fill=\"#1f2328\" \
             fill-opacity=\"0.08\"/><path class=\"mean\" d=\"M{xm:.2},{top} v{HIST_H}\" stroke=\"#1f2328\" \
             stroke-dasharray=\"3,2\"><title>mean {}</title></path>",
            (x1 - x0).max(1.0),
            show(summary.mean)
        );
    }
    let _ = writeln!(
        svg,
        "<path d=\"M{left},{:.1} h{HIST_W}\" stroke=\"#8c959f\"/>\
         <text x=\"{left}\" y=\"{:.1}\" fill=\"#57606a\">{}</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#57606a\">{}</text></svg>",
        top + HIST_H,
        height - 4.0,
        show(low),
        left + HIST_W,
        height - 4.0,
        show(high)
    );
    svg
}

fn failing(result: &ScenarioResult) -> String {
    let failed: Vec<&RunReport> = result.failed_seeds().collect();
    let mut html = String::new();
    if failed.is_empty() {
        html.push_str("<p class=\"note\">no failing seed</p>\n");
        return html;
    }
    let _ = writeln!(html, "<table class=\"failing\"><tr><th>seed</th><th>class</th><th>why</th><th>replay</th></tr>");
    for report in failed.iter().take(FAILING_SHOWN_MAX) {
        let classes: Vec<&str> = report.classes.iter().map(|c| c.name()).collect();
        let reasons = match &report.outcome {
            SeedOutcome::Failed { reasons } => reasons.iter().take(3).cloned().collect::<Vec<_>>().join("; "),
            _ => String::new(),
        };
        let _ = writeln!(
            html,
            "<tr data-seed=\"{}\"><td class=\"num\">{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            report.seed,
            report.seed,
            escape(&classes.join(", ")),
            escape(&reasons),
            escape(&report.replay_command())
        );
    }
    html.push_str("</table>\n");
    if failed.len() > FAILING_SHOWN_MAX {
        let _ = writeln!(html, "<p class=\"note\">{FAILING_SHOWN_MAX} of {} failing seeds shown</p>", failed.len());
    }
    html
}
