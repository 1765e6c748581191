//! The store's, the queue's and the app tier's state lanes on the report's
//! page, end to end: a shipped scenario of each is run and drawn as
//! `faultline report --run` draws it, the timeline is parsed back with a
//! real XML parser, and each lane's changes are held to the times the
//! run's own trace puts them at.

use std::sync::Arc;

use faultline_harness::drive::{run_seed, RunOptions};
use faultline_harness::judge::RunReport;
use faultline_harness::registry::{self, Loaded};
use roxmltree::{Document, Node};

const SECOND: u64 = 1_000_000_000;

fn load(relative: &str) -> Arc<Loaded> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    Arc::new(registry::load(&path, &faultline_systems::registry()).unwrap_or_else(|e| panic!("{relative}: {e}")))
}

/// The run of `scenario` at `seed`, and its page's timeline as `report --run` writes it.
fn drawn(scenario: &str, seed: u64) -> (RunReport, String) {
    let loaded = load(scenario);
    let report = run_seed(&loaded, seed, RunOptions { keep_records: true, ..RunOptions::default() });
    let html = super::run_page(&report, &loaded.scenario);
    let start = html.find("<svg id=\"timeline\"").expect("the page has its timeline");
    let svg = html[start..start + html[start..].find("</svg>").expect("the timeline ends") + 6].to_string();
    assert!(report.picture.lanes_error.is_none(), "{:?}", report.picture.lanes_error);
    (report, svg)
}

fn attr<T: std::str::FromStr>(node: Node<'_, '_>, name: &str) -> T {
    let text = node.attribute(name).unwrap_or_else(|| panic!("<{}> has no {name}", node.tag_name().name()));
    text.parse().unwrap_or_else(|_| panic!("{name}={text:?} does not parse"))
}

fn lane<'a, 'i>(doc: &'a Document<'i>, kind: &str, name: &str) -> Node<'a, 'i> {
    doc.descendants()
        .find(|n| n.attribute("data-kind") == Some(kind) && n.attribute("data-lane") == Some(name))
        .unwrap_or_else(|| panic!("no {kind} lane {name:?}"))
}

/// A states lane's spans: (state, from, until).
fn spans(lane: Node<'_, '_>) -> Vec<(String, u64, u64)> {
    lane.descendants()
        .filter(|n| n.attribute("class") == Some("state"))
        .map(|n| (n.attribute("data-state").unwrap().to_string(), attr(n, "data-from"), attr(n, "data-until")))
        .collect()
}

/// The times (in ns) of the trace's `kind` events from `source`.
fn times(report: &RunReport, kind: &str, source: &str) -> Vec<u64> {
    report.timeline.iter().filter(|line| line.kind == kind && line.source == source).map(|line| line.at).collect()
}

/// A level lane's drawn step line: its steps as (x, y) and its baseline's y.
fn steps(lane: Node<'_, '_>) -> (Vec<(f64, f64)>, f64) {
    let path = lane.descendants().find(|n| n.attribute("class") == Some("level-line")).expect("a step line");
    let d = path.attribute("d").unwrap();
    let mut words = d.split(' ');
    let start = words.next().unwrap().trim_start_matches('M');
    let base: f64 = start.split(',').nth(1).unwrap().parse().unwrap();
    let mut steps = Vec::new();
    let mut x = 0.0;
    for word in words {
        if let Some(h) = word.strip_prefix('H') {
            x = h.parse().unwrap();
        } else if let Some(v) = word.strip_prefix('V') {
            steps.push((x, v.parse().unwrap()));
        }
    }
    (steps, base)
}

/// The x of time `at` on the timeline, from the SVG's own scale.
fn x_of(doc: &Document<'_>, at: u64) -> f64 {
    let svg = doc.root_element();
    let (plot_x, plot_w, end): (f64, f64, u64) =
        (attr(svg, "data-plot-x"), attr(svg, "data-plot-width"), attr(svg, "data-end"));
    plot_x + at.min(end) as f64 / end as f64 * plot_w
}

/// The "max N" a level lane prints.
fn level_max(lane: Node<'_, '_>) -> String {
    lane.descendants()
        .filter_map(|n| n.text())
        .find_map(|t| t.strip_prefix("max ").map(String::from))
        .expect("a level lane prints its max")
}

#[test]
fn the_store_primary_lane_follows_the_crash_and_the_failover() {
    let (report, svg) = drawn("scenarios/store/crash-failover-on.toml", 1);
    let doc = Document::parse(&svg).expect("the timeline is well-formed XML");
    let primary = spans(lane(&doc, "state", "primary"));
    let names: Vec<&str> = primary.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(names.first(), Some(&"primary, term 1"), "{names:?}");
    // "no primary" from the crash of the primary, as the trace has it...
    let crash = report.picture.down.iter().find(|(host, ..)| host == "primary").expect("the primary crashed").1;
    assert!((4 * SECOND..4 * SECOND + SECOND / 10).contains(&crash));
    let none = primary.iter().find(|s| s.0 == "no primary").expect("a spell without a primary");
    assert_eq!(none.1, crash, "{primary:?}");
    // ...until the promoted replica's own role.primary event in term 2.
    let promoted = report
        .timeline
        .iter()
        .find(|line| line.kind == "role.primary" && line.at > crash)
        .expect("a replica was promoted");
    assert!(promoted.detail.contains("term=2"), "{}", promoted.detail);
    assert_eq!(none.2, promoted.at, "{primary:?}");
    let after = primary.iter().find(|s| s.1 == promoted.at).expect("a span from the promotion");
    assert_eq!(after.0, format!("{}, term 2", promoted.source));
    assert!(primary.last().unwrap().0.ends_with("term 2"), "{primary:?}");
    // The lag lane is drawn too.
    lane(&doc, "level", "replica lag");
}

#[test]
fn the_queue_lanes_rise_at_the_first_accept_and_count_the_dead_letters() {
    let (report, svg) = drawn("scenarios/queue/retries-dead-letters.toml", 1);
    let doc = Document::parse(&svg).expect("the timeline is well-formed XML");
    let accepted = times(&report, "job.accepted", "broker");
    let (depth, base) = steps(lane(&doc, "level", "queue depth"));
    let first_rise = depth.iter().find(|(_, y)| *y < base).expect("the depth rises");
    assert!((first_rise.0 - x_of(&doc, accepted[0])).abs() < 0.01, "{first_rise:?} vs {}", accepted[0]);
    let dead = times(&report, "job.dead", "broker");
    assert!(!dead.is_empty(), "the scenario dead-letters jobs");
    let dead_lane = lane(&doc, "level", "dead-lettered");
    let (dead_steps, base) = steps(dead_lane);
    let first_dead = dead_steps.iter().find(|(_, y)| *y < base).expect("dead letters are drawn");
    assert!((first_dead.0 - x_of(&doc, dead[0])).abs() < 0.01, "{first_dead:?} vs {}", dead[0]);
    assert_eq!(level_max(dead_lane), dead.len().to_string(), "every job.dead is counted once");
    lane(&doc, "level", "jobs active");
}

#[test]
fn the_app_tier_rotation_lane_drops_at_the_first_ejection_and_is_whole_again() {
    let (report, svg) = drawn("scenarios/app-tier/instance-crash.toml", 1);
    let doc = Document::parse(&svg).expect("the timeline is well-formed XML");
    let rotation = spans(lane(&doc, "state", "in rotation"));
    assert_eq!(rotation.first().map(|s| (s.0.as_str(), s.1)), Some(("3/3", 0)), "{rotation:?}");
    let ejects = times(&report, "lb.eject", "lb");
    assert!(!ejects.is_empty(), "the crash ejects app-1");
    assert!(ejects[0] > 3 * SECOND, "after the crash at 3s: {}", ejects[0]);
    let second = &rotation[1];
    assert_eq!((second.0.as_str(), second.1), ("2/3", ejects[0]), "{rotation:?}");
    assert_eq!(rotation[0].2, ejects[0]);
    let restores = times(&report, "lb.restore", "lb");
    let whole = rotation.last().unwrap();
    assert_eq!(whole.0, "3/3", "{rotation:?}");
    assert_eq!(Some(&whole.1), restores.last(), "whole again at the last lb.restore");
}
