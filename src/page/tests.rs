//! The report's pictures, parsed back with a real XML parser and held to
//! the run they draw: the crash band on the downstream's lane at the plan's
//! times, the breaker's state lane from its events, the dip of good
//! requests while the downstream is down, the outage and the violations.

use std::sync::Arc;

use faultline_harness::drive::{run_seed, RunOptions};
use faultline_harness::judge::RunReport;
use faultline_harness::registry::{self, Loaded};
use faultline_harness::sweep::judge_scenario;
use roxmltree::{Document, Node};

const FIXTURE: &str = "tests/fixtures/report-breaker-crash.toml";
const SECOND: u64 = 1_000_000_000;

fn load(relative: &str) -> Arc<Loaded> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    Arc::new(registry::load(&path, &faultline_systems::registry()).unwrap_or_else(|e| panic!("{relative}: {e}")))
}

fn run(loaded: &Arc<Loaded>, seed: u64) -> RunReport {
    run_seed(loaded, seed, RunOptions { keep_records: true, ..RunOptions::default() })
}

fn attr<T: std::str::FromStr>(node: Node<'_, '_>, name: &str) -> T {
    let text = node.attribute(name).unwrap_or_else(|| panic!("<{}> has no {name}", node.tag_name().name()));
    text.parse().unwrap_or_else(|_| panic!("{name}={text:?} does not parse"))
}

/// The timeline's horizontal scale, read from the SVG itself.
struct Scale {
    plot_x: f64,
    plot_w: f64,
    end: u64,
}

impl Scale {
    fn of(svg: Node<'_, '_>) -> Scale {
        Scale { plot_x: attr(svg, "data-plot-x"), plot_w: attr(svg, "data-plot-width"), end: attr(svg, "data-end") }
    }

    fn x(&self, at: u64) -> f64 {
        self.plot_x + at.min(self.end) as f64 / self.end as f64 * self.plot_w
    }
}

fn lane<'a, 'i>(doc: &'a Document<'i>, kind: &str, name: &str) -> Node<'a, 'i> {
    doc.descendants()
        .find(|n| n.attribute("data-kind") == Some(kind) && n.attribute("data-lane") == Some(name))
        .unwrap_or_else(|| panic!("no {kind} lane {name:?}"))
}

fn children_of_class<'a, 'i>(node: Node<'a, 'i>, class: &str) -> Vec<Node<'a, 'i>> {
    node.descendants().filter(|n| n.attribute("class") == Some(class)).collect()
}

/// Is the rectangle inside the lane's band of y?
fn within_lane(rect: Node<'_, '_>, lane: Node<'_, '_>) -> bool {
    let (top, height): (f64, f64) = (attr(lane, "data-y"), attr(lane, "data-height"));
    let (y, h): (f64, f64) = (attr(rect, "y"), attr(rect, "height"));
    y >= top - 0.01 && y + h <= top + height + 0.01
}

#[test]
fn the_crash_band_lies_on_the_downstream_lane_at_the_plans_times() {
    let report = run(&load(FIXTURE), 1);
    let svg = super::run::timeline(&report);
    let doc = Document::parse(&svg).expect("the timeline is well-formed XML");
    let scale = Scale::of(doc.root_element());
    let crash = &report.plan.faults[0];
    assert_eq!((crash.start(), crash.end()), (SECOND, 2 * SECOND + SECOND / 2), "the fixture's crash");
    let downstream = lane(&doc, "host", "downstream");
    let bands = children_of_class(downstream, "fault");
    assert_eq!(bands.len(), 1, "one fault touches the downstream");
    let band = bands[0];
    assert_eq!(band.attribute("data-kind"), Some("crash"));
    assert!(within_lane(band, downstream), "the band lies within the downstream's lane");
    let (x, width): (f64, f64) = (attr(band, "x"), attr(band, "width"));
    assert!((x - scale.x(crash.start())).abs() < 0.01, "band starts at {x}, the crash at {}", scale.x(crash.start()));
    assert!((x + width - scale.x(crash.end())).abs() < 0.01, "band ends where the crash ends");
    for other in ["app", "cache"] {
        assert!(children_of_class(lane(&doc, "host", other), "fault").is_empty(), "no fault on {other}");
    }
    // The down bar comes from the trace's crash and restart, not the plan.
    let down = children_of_class(downstream, "down");
    assert_eq!(down.len(), 1);
    let traced = &report.picture.down;
    assert_eq!(traced.len(), 1, "{traced:?}");
    assert_eq!(attr::<u64>(down[0], "data-from"), traced[0].1);
    assert!((attr::<f64>(down[0], "x") - scale.x(traced[0].1)).abs() < 0.01);
}

#[test]
fn the_breaker_lane_opens_during_the_crash_and_is_closed_after_the_heal() {
    let report = run(&load(FIXTURE), 1);
    let svg = super::run::timeline(&report);
    let doc = Document::parse(&svg).expect("the timeline is well-formed XML");
    let scale = Scale::of(doc.root_element());
    let breaker = lane(&doc, "state", "breaker");
    let states: Vec<(String, u64, u64, f64)> = children_of_class(breaker, "state")
        .into_iter()
        .map(|n| {
            (n.attribute("data-state").unwrap().to_string(), attr(n, "data-from"), attr(n, "data-until"), attr(n, "x"))
        })
        .collect();
    let names: Vec<&str> = states.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(names.first(), Some(&"closed"), "{names:?}");
    assert_eq!(names.last(), Some(&"closed"), "{names:?}");
    assert!(names.contains(&"half-open"), "{names:?}");
    // Each span starts where the breaker's own event put it.
    let opens: Vec<u64> = report
        .timeline
        .iter()
        .filter(|line| line.kind == "breaker.open" && line.source == "app")
        .map(|line| line.at)
        .collect();
    let drawn_opens: Vec<u64> = states.iter().filter(|s| s.0 == "open").map(|s| s.1).collect();
    assert_eq!(drawn_opens, opens, "an open span per breaker.open event, at its time");
    let first_open = opens[0];
    assert!(first_open > SECOND && first_open < SECOND + SECOND / 2, "opened soon after the crash: {first_open}");
    for (_, from, until, x) in &states {
        assert!((x - scale.x(*from)).abs() < 0.01);
        assert!(from < until);
    }
    let heal = report.plan.heal_at.as_nanos();
    assert!(states.iter().any(|(name, from, until, _)| name == "closed" && *from < heal && *until > heal));
}

#[test]
fn good_requests_dip_while_the_downstream_is_down_and_the_outage_is_drawn() {
    let report = run(&load(FIXTURE), 1);
    let svg = super::run::timeline(&report);
    let doc = Document::parse(&svg).expect("the timeline is well-formed XML");
    let chart = doc.descendants().find(|n| n.attribute("id") == Some("chart-requests")).expect("the requests chart");
    let bins: Vec<(u64, f64)> =
        children_of_class(chart, "bin").into_iter().map(|n| (attr(n, "data-from"), attr(n, "data-good"))).collect();
    let mean = |from: u64, until: u64| {
        let inside: Vec<f64> = bins.iter().filter(|(at, _)| *at >= from && *at < until).map(|b| b.1).collect();
        assert!(!inside.is_empty(), "bins between {from} and {until}");
        inside.iter().sum::<f64>() / inside.len() as f64
    };
    let before = mean(0, SECOND);
    let during = mean(SECOND + SECOND / 5, 2 * SECOND + SECOND / 2);
    let after = mean(4 * SECOND, 6 * SECOND);
    assert!(before > 0.95 && after > 0.95, "good before {before}, after {after}");
    assert!(during < 0.2, "good requests while the downstream is down: {during}");
    let outage_lane = doc.descendants().find(|n| n.attribute("data-kind") == Some("outage")).expect("outage lane");
    let outages = children_of_class(outage_lane, "state");
    assert_eq!(outages.len(), report.metrics.outages.len());
    assert!(!outages.is_empty(), "the probe sees an outage");
    let (from, until): (u64, u64) = (attr(outages[0], "data-from"), attr(outages[0], "data-until"));
    assert!(from < 2 * SECOND && until > 2 * SECOND, "the outage covers the crash: {from}..{until}");
    let markers: Vec<u64> =
        doc.descendants().filter(|n| n.attribute("class") == Some("violation")).map(|n| attr(n, "data-at")).collect();
    let timed: Vec<u64> = report.violations.iter().filter_map(|v| v.at).collect();
    assert_eq!(markers, timed, "a marker per violation, at its time");
}

#[test]
fn the_page_loads_nothing_from_outside() {
    let report = run(&load(FIXTURE), 1);
    let loaded = load(FIXTURE);
    let html = super::run_page(&report, &loaded.scenario);
    for banned in ["<script", "src=", "<link", "@import", "url(", "https:", "@font-face"] {
        assert!(!html.contains(banned), "the page contains {banned:?}");
    }
    let http: Vec<&str> = html.match_indices("http").map(|(at, _)| &html[at..(at + 30).min(html.len())]).collect();
    assert!(http.iter().all(|text| text.starts_with("http://www.w3.org/2000/svg")), "{http:?}");
    assert!(html.contains("graceful-degradation"), "violations are listed with their invariant");
    assert!(html.contains(&report.replay_command()));
}

#[test]
fn a_sweep_page_draws_each_seeds_availability_and_lists_failing_seeds_with_replays() {
    let loaded = load(FIXTURE);
    let passing = load("tests/golden/breaker-crash.toml");
    let reports: Vec<RunReport> = (1..=3).map(|seed| run_seed(&loaded, seed, RunOptions::default())).collect();
    let mut failing_scenario = loaded.scenario.clone();
    failing_scenario.check.expect = faultline_harness::scenario::Expect::Pass;
    let failing_reports: Vec<RunReport> = (1..=2)
        .map(|seed| run_seed(&loaded.with_scenario(failing_scenario.clone()).into(), seed, RunOptions::default()))
        .collect();
    let results = vec![
        judge_scenario(&loaded.scenario, reports),
        judge_scenario(&failing_scenario, failing_reports),
        judge_scenario(&passing.scenario, vec![run_seed(&passing, 1, RunOptions::default())]),
    ];
    let html = super::sweep_page(&results);
    let svgs: Vec<&str> =
        html.match_indices("<svg").map(|(at, _)| &html[at..at + html[at..].find("</svg>").unwrap() + 6]).collect();
    assert_eq!(svgs.len(), 6, "two histograms a scenario");
    let first = Document::parse(svgs[0]).expect("a histogram is well-formed XML");
    assert_eq!(first.root_element().attribute("data-figure"), Some("availability"));
    let counted: usize =
        children_of_class(first.root_element(), "bar").into_iter().map(|n| attr::<usize>(n, "data-count")).sum();
    assert_eq!(counted, 3, "every seed is in the histogram");
    for svg in &svgs {
        Document::parse(svg).expect("every histogram is well-formed XML");
    }
    // The scenario that expects a pass fails on both seeds: each is listed with its replay.
    for seed in 1..=2 {
        let replay = faultline_harness::judge::replay_command(&failing_scenario.file, seed);
        assert!(html.contains(&super::escape(&replay)), "no replay for seed {seed}");
    }
    assert!(html.contains("no failing seed"), "the passing scenario says so");
}
