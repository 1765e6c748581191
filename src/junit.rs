//! Sweep results as JUnit XML (`--junit FILE`), the report format Jenkins,
//! GitLab, GitHub Actions test reporters and most CI systems read.
//!
//! One `<testsuite>` per scenario file; in it one `<testcase>` per seed
//! (name `seed N`, classname the scenario file) and one more, `verdict`, for
//! the scenario's verdict over its seeds (an expected violation that no seed
//! found fails it, though every seed passed). A failed seed carries a
//! `<failure>` with its reasons and the replay command; a seed that could
//! not be judged is `<skipped>` with why. The output is checked in `cargo
//! test` against the JUnit XSD that Jenkins reads (tests/junit/README.md,
//! and docs/scale.md).

use std::collections::BTreeMap;
use std::fmt::Write;

use faultline_harness::judge::{RunReport, SeedOutcome};
use faultline_harness::sweep::{ScenarioResult, Verdict};

/// Each run's wall time in seconds, by (scenario file, seed).
pub type WallTimes = BTreeMap<(String, u64), f64>;

/// The whole JUnit document for a sweep's results; `times` gives each
/// seed's `time` (0 for a seed it lacks).
pub fn document(results: &[ScenarioResult], times: &WallTimes) -> String {
    let tests: usize = results.iter().map(|r| r.seeds() + 1).sum();
    let failures: usize = results.iter().map(|r| r.failed_seeds().count() + usize::from(!scenario_ok(r))).sum();
    let time: f64 = results.iter().map(|r| suite_time(r, times)).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"faultline\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" time=\"{time:.3}\">"
    );
    for result in results {
        suite(&mut out, result, times);
    }
    out.push_str("</testsuites>\n");
    out
}

/// Did the scenario's verdict pass? (Unjudged is reported as skipped, not failed.)
fn scenario_ok(result: &ScenarioResult) -> bool {
    result.verdict != Verdict::Failed
}

/// The wall time of a seed (JUnit's `time`, in seconds), 0 when unknown.
fn seed_time(result: &ScenarioResult, seed: u64, times: &WallTimes) -> f64 {
    times.get(&(result.file.clone(), seed)).copied().unwrap_or(0.0)
}

/// The wall time of a scenario's seeds, in seconds.
fn suite_time(result: &ScenarioResult, times: &WallTimes) -> f64 {
    result.reports.iter().map(|r| seed_time(result, r.seed, times)).sum()
}

fn suite(out: &mut String, result: &ScenarioResult, times: &WallTimes) {
    let failures = result.failed_seeds().count() + usize::from(!scenario_ok(result));
    let skipped = result.unjudged_seeds().count() + usize::from(result.verdict == Verdict::Unjudged);
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{:.3}\" package=\"{}\">",
        escape(&format!("{} ({})", result.file, result.name)),
        result.seeds() + 1,
        suite_time(result, times),
        escape(&result.file)
    );
    for report in &result.reports {
        case(out, result, report, seed_time(result, report.seed, times));
    }
    let name = format!("verdict over {}", faultline_harness::sweep::seeds_noun(result.seeds()));
    let _ = write!(out, "    <testcase name=\"{}\" classname=\"{}\"", escape(&name), escape(&result.file));
    match result.verdict {
        Verdict::Passed => out.push_str("/>\n"),
        Verdict::Failed => {
            let message = result.reasons.join("; ");
            let _ = writeln!(
                out,
                ">\n      <failure type=\"scenario\" message=\"{}\">{}</failure>\n    </testcase>",
                escape(&message),
                escape(&result.reasons.join("\n"))
            );
        }
        Verdict::Unjudged => {
            let _ = writeln!(out, ">\n      <skipped>some seeds could not be judged</skipped>\n    </testcase>");
        }
    }
    out.push_str("  </testsuite>\n");
}

fn case(out: &mut String, result: &ScenarioResult, report: &RunReport, time: f64) {
    let _ = write!(
        out,
        "    <testcase name=\"seed {}\" classname=\"{}\" time=\"{time:.3}\"",
        report.seed,
        escape(&result.file)
    );
    match &report.outcome {
        SeedOutcome::Failed { reasons } => {
            let classes: Vec<String> = report.classes.iter().map(ToString::to_string).collect();
            let mut body = reasons.join("\n");
            for violation in report.violations.iter().take(5) {
                let _ = write!(body, "\n{violation}");
            }
            let _ = write!(body, "\nreproduce: {}", report.replay_command());
            let _ = writeln!(
                out,
                ">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>",
                escape(&classes.join(",")),
                escape(&reasons.join("; ")),
                escape(&body)
            );
        }
        SeedOutcome::Unjudged { reasons } => {
            let _ = writeln!(
                out,
                ">\n      <skipped>{}</skipped>\n      <system-out>{}</system-out>\n    </testcase>",
                escape(&format!("could not judge: {}", reasons.join("; "))),
                escape(&format!("replay: {}", report.replay_command()))
            );
        }
        SeedOutcome::FoundExpected => {
            let _ = writeln!(
                out,
                ">\n      <system-out>{}</system-out>\n    </testcase>",
                escape(&format!("found the expected {} (replay: {})", report.expect, report.replay_command()))
            );
        }
        SeedOutcome::Passed | SeedOutcome::NotFound => out.push_str("/>\n"),
    }
}

/// Text as XML character data or an attribute value: the five markup
/// characters escaped, and characters XML 1.0 cannot hold at all (control
/// characters other than tab and newline) replaced by U+FFFD.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' => out.push(c),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn markup_and_control_characters_are_escaped() {
        assert_eq!(escape("a<b & \"c\" 'd'>"), "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;");
        assert_eq!(escape("x\u{1}y\tz"), "x\u{FFFD}y\tz");
    }
}
