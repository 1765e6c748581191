//! `faultline report`: one self-contained HTML page of a run (a timeline in
//! SVG: hosts as lanes with faults as shaded bands, the system's state
//! lanes, request outcomes and p95 latency over time, outages, violations)
//! or of a sweep (availability and MTTR across seeds, failing seeds with
//! their replay commands).
//!
//! The page loads nothing: no scripts, no fonts, no images, no network; the
//! styles are inline and the pictures are SVG in the page. Everything drawn
//! comes from a judged [`RunReport`] (with its records kept) or from
//! [`ScenarioResult`]s, so the same data gives the same page, byte for byte.
//! docs/report.md says how to read it.

#[cfg(test)]
mod lanes_tests;
mod run;
mod sweep;
#[cfg(test)]
mod tests;

use std::fmt::Write as _;

pub use run::run_page;
pub use sweep::sweep_page;

/// Escapes text for HTML and SVG (text and attribute values).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The page around a body: a title, the inline styles, nothing loaded.
fn page(title: &str, body: &str) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        escape(title)
    );
    html
}

/// The page's styles. The header has a fixed height, so the run timeline
/// starts at a known place on the page (the browser test reads pixels there).
const STYLE: &str = "
body { margin: 0; font-family: system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif;
  color: #1f2328; background: #ffffff; font-size: 14px; }
header { height: 72px; box-sizing: border-box; padding: 10px 16px; background: #f6f8fa;
  border-bottom: 1px solid #d0d7de; overflow: hidden; }
header h1 { font-size: 18px; margin: 0 0 4px 0; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
header .sub { color: #57606a; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
main { padding: 0 16px 24px 16px; }
svg { display: block; }
svg text { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif; }
h2 { font-size: 16px; margin: 22px 0 8px 0; }
table { border-collapse: collapse; margin: 4px 0; }
th, td { text-align: left; padding: 3px 12px 3px 0; vertical-align: top; border-bottom: 1px solid #eaeef2; }
th { color: #57606a; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font-family: ui-monospace, 'DejaVu Sans Mono', monospace; font-size: 13px; }
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; }
.verdict { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 600; color: #fff; }
.pass { background: #1a7f37; } .fail { background: #cf222e; } .unjudged { background: #9a6700; }
.legend span { display: inline-block; margin-right: 14px; }
.sw { display: inline-block; width: 12px; height: 12px; vertical-align: -1px; margin-right: 4px;
  border: 1px solid rgba(0,0,0,0.25); }
.note { color: #57606a; }
.violation { color: #cf222e; }
";

/// "1.234s", "250ms", "3m12s": a time for people, from nanoseconds.
fn time(nanos: u64) -> String {
    let ms = nanos as f64 / 1e6;
    if nanos == 0 {
        "0s".into()
    } else if ms < 1.0 {
        format!("{:.0}µs", ms * 1000.0)
    } else if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else if ms < 60_000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else {
        format!("{}m{:02.0}s", (ms / 60_000.0).floor(), (ms % 60_000.0) / 1000.0)
    }
}

/// A time in milliseconds, for people.
fn time_ms(ms: f64) -> String {
    time((ms.max(0.0) * 1e6) as u64)
}

/// "97.12%".
fn percent(share: f64) -> String {
    format!("{:.2}%", share * 100.0)
}
