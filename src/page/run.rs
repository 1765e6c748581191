//! The page of one run: a header, the timeline (SVG), then the figures,
//! outages, violations, the plan and the settings as tables.
//!
//! The timeline has one horizontal scale, simulated time from 0 to the end
//! of the workload, shared by every row:
//! - an axis, with the heal phase marked;
//! - one lane per host: each fault that touches the host is a shaded band
//!   (its kind's colour) over the lane, and the spells the host was down are
//!   a dark bar inside it;
//! - the system's own state lanes (`System::lanes`): named states as
//!   coloured spans, numbers as a step line;
//! - the requests, by when they were meant to start, in bins: the share of
//!   each outcome stacked (good answers at the bottom), the good-request
//!   ratio as a line, and the outages of the time view shaded behind;
//! - the p95 (and p50) latency of the good requests in each bin;
//! - violations as red numbered markers through every row, at their time.
//!
//! Elements carry `data-*` attributes with their times in nanoseconds and
//! their names, so tests (and people's scripts) can find them.

use std::fmt::Write as _;

use faultline_harness::fault::{Action, PlannedFault};
use faultline_harness::judge::{Picture, RunReport};
use faultline_harness::metrics::OpSample;
use faultline_harness::{LaneKind, Nanos, OutcomeClass, Scenario, Tone};

use super::{escape, page, percent, time, time_ms};

/// The SVG's width, in pixels.
pub const WIDTH: f64 = 1200.0;
/// Where the plot area starts: the label column is to its left.
pub const PLOT_X: f64 = 190.0;
/// The plot area's width.
pub const PLOT_W: f64 = 985.0;

const AXIS_H: f64 = 26.0;
const LANE_H: f64 = 26.0;
const LEVEL_H: f64 = 40.0;
const GAP: f64 = 5.0;
const SECTION_H: f64 = 20.0;
const CHART_H: f64 = 120.0;
/// At most this many request bins across the plot.
const BINS_MAX: u64 = 160;

/// Colour of a fault's band, by kind.
pub fn fault_colour(kind: &str) -> &'static str {
    match kind {
        "crash" => "#d62728",
        "partition" => "#8e5cc2",
        "latency" => "#e8a33d",
        "loss" => "#e377c2",
        "clog" => "#8c6d31",
        _ => "#7f7f7f",
    }
}

/// Colour of a state, by tone (neutral states cycle through a palette by
/// their order of appearance in the lane).
pub fn tone_colour(tone: Tone, neutral_index: usize) -> &'static str {
    const NEUTRAL: [&str; 6] = ["#4c78a8", "#72b7b2", "#b279a2", "#9d755d", "#bab0ac", "#5d6d7e"];
    match tone {
        Tone::Good => "#54a24b",
        Tone::Warn => "#eeca3b",
        Tone::Bad => "#e45756",
        Tone::Neutral => NEUTRAL[neutral_index % NEUTRAL.len()],
    }
}

/// Colours of request outcomes in the stacked bars.
pub const OK_COLOUR: &str = "#3f9b3f";
/// A fallback answer.
pub const DEGRADED_COLOUR: &str = "#6fa8dc";
/// Served, but a checker found it wrong.
pub const INCORRECT_COLOUR: &str = "#8e44ad";
/// An error.
pub const FAILED_COLOUR: &str = "#f08c2e";
/// No answer by the deadline.
pub const TIMEOUT_COLOUR: &str = "#c0392b";
/// The colour of the host's "down" bar.
pub const DOWN_COLOUR: &str = "#3b3f46";

/// The horizontal scale: simulated time to x.
#[derive(Clone, Copy)]
pub struct Scale {
    /// The time at the right edge (the end of the workload).
    pub end: Nanos,
}

impl Scale {
    /// The x of time `at` (clipped to the plot).
    pub fn x(self, at: Nanos) -> f64 {
        PLOT_X + (at.min(self.end) as f64 / self.end.max(1) as f64) * PLOT_W
    }
}

/// The page of one run. `report` must have been judged with its records
/// kept (the samples and the picture); the scenario gives its settings.
pub fn run_page(report: &RunReport, scenario: &Scenario) -> String {
    let mut body = String::new();
    let (class, label) = verdict(report);
    let _ = write!(
        body,
        "<header><h1>{} <span class=\"verdict {class}\">{label}</span></h1>\
         <div class=\"sub\">{} · seed {} · system {} · {} · digest {}</div></header>\n<main>\n",
        escape(&report.name),
        escape(&report.scenario),
        report.seed,
        escape(&scenario.system_name),
        escape(&scenario_length(scenario)),
        escape(&report.digest),
    );
    body.push_str(&legend(report));
    body.push_str(&timeline(report));
    body.push_str(&figures(report));
    body.push_str(&violations(report));
    body.push_str(&plan(report));
    body.push_str(&settings(report, scenario));
    body.push_str("</main>\n");
    page(&format!("{} seed {}: faultline report", report.name, report.seed), &body)
}

fn verdict(report: &RunReport) -> (&'static str, String) {
    use faultline_harness::SeedOutcome;
    match &report.outcome {
        SeedOutcome::Passed => ("pass", "passed".into()),
        SeedOutcome::FoundExpected => ("pass", "found the expected violation".into()),
        SeedOutcome::NotFound => ("unjudged", "expected violation not found in this seed".into()),
        SeedOutcome::Unjudged { .. } => ("unjudged", "could not judge".into()),
        SeedOutcome::Failed { .. } => {
            let classes: Vec<&str> = report.classes.iter().map(|c| c.name()).collect();
            ("fail", format!("failed ({})", classes.join(", ")))
        }
    }
}

fn scenario_length(scenario: &Scenario) -> String {
    format!("{} of faults, then {} of heal", scenario.duration, scenario.heal)
}

/// The legend line above the timeline: a fixed height, so the timeline
/// starts at [`SVG_TOP`].
fn legend(report: &RunReport) -> String {
    let mut kinds: Vec<&str> = report.plan.faults.iter().map(|f| f.action.kind()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let mut html = String::from(
        "<div class=\"legend\" style=\"height:40px;box-sizing:border-box;padding-top:12px;overflow:hidden\">",
    );
    for kind in kinds {
        let _ = write!(html, "<span><i class=\"sw\" style=\"background:{}\"></i>{kind}</span>", fault_colour(kind));
    }
    for (colour, name) in [
        (DOWN_COLOUR, "host down"),
        (OK_COLOUR, "ok"),
        (DEGRADED_COLOUR, "degraded"),
        (INCORRECT_COLOUR, "incorrect"),
        (FAILED_COLOUR, "failed"),
        (TIMEOUT_COLOUR, "timeout"),
    ] {
        let _ = write!(html, "<span><i class=\"sw\" style=\"background:{colour}\"></i>{name}</span>");
    }
    html.push_str("<span><i class=\"sw\" style=\"background:rgba(207,34,46,0.18)\"></i>outage</span>");
    html.push_str("<span style=\"color:#cf222e\">▼ violation</span></div>\n");
    html
}

/// The SVG being drawn, row by row from the top.
struct Drawing {
    svg: String,
    y: f64,
    scale: Scale,
}

/// The run's timeline as an SVG element.
pub fn timeline(report: &RunReport) -> String {
    let picture = &report.picture;
    let end = picture.end.max(report.plan.heal_at.as_nanos()).max(1);
    let mut drawing = Drawing { svg: String::new(), y: AXIS_H, scale: Scale { end } };
    drawing.section("hosts");
    for host in &picture.hosts {
        drawing.host_lane(host, &report.plan.faults, picture);
    }
    if !picture.lanes.is_empty() || picture.lanes_error.is_some() {
        drawing.section("system");
        for lane in &picture.lanes {
            drawing.state_lane(lane);
        }
        if let Some(error) = &picture.lanes_error {
            drawing.note(error);
        }
    }
    let bins = Bins::of(&report.samples, end);
    drawing.section("time view: outages");
    drawing.outage_lane(report);
    drawing.section("requests: share of each outcome, by intended start (line: good requests)");
    drawing.outcome_chart(&bins);
    drawing.section("latency of good requests: p95 (line) and p50 (dots)");
    drawing.latency_chart(&bins);
    let height = drawing.y + 8.0;
    let marks = marks(drawing.scale, picture, report, height);
    let axis = axis(drawing.scale, height);
    format!(
        "<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {WIDTH} {height:.0}\" data-end=\"{end}\" data-plot-x=\"{PLOT_X}\" data-plot-width=\"{PLOT_W}\" \
         font-size=\"12\">\n<rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{height:.0}\" fill=\"#ffffff\"/>\n\
         {axis}{}{marks}</svg>\n",
        drawing.svg
    )
}

impl Drawing {
    fn section(&mut self, title: &str) {
        self.y += 4.0;
        let _ = writeln!(
            self.svg,
            "<text x=\"{PLOT_X}\" y=\"{:.1}\" fill=\"#57606a\" font-size=\"11\" font-weight=\"600\">{}</text>",
            self.y + 11.0,
            escape(title)
        );
        self.y += SECTION_H - 4.0;
    }

    fn note(&mut self, text: &str) {
        let _ = writeln!(
            self.svg,
            "<text x=\"{PLOT_X}\" y=\"{:.1}\" fill=\"#cf222e\">{}</text>",
            self.y + 14.0,
            escape(text)
        );
        self.y += LANE_H + GAP;
    }

    /// The lane's label and background; returns the lane's top.
    fn lane_start(&mut self, kind: &str, name: &str, height: f64) -> f64 {
        let top = self.y;
        let _ = writeln!(
            self.svg,
            "<g class=\"lane\" data-kind=\"{kind}\" data-lane=\"{}\" data-y=\"{top:.1}\" data-height=\"{height}\">\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#1f2328\">{}</text>\n\
             <rect class=\"lane-bg\" x=\"{PLOT_X}\" y=\"{top:.1}\" width=\"{PLOT_W}\" height=\"{height}\" \
             fill=\"#f3f4f6\"/>",
            escape(name),
            PLOT_X - 8.0,
            top + height / 2.0 + 4.0,
            escape(&clip_label(name, 26))
        );
        top
    }

    fn lane_end(&mut self, height: f64) {
        self.svg.push_str("</g>\n");
        self.y += height + GAP;
    }

    fn host_lane(&mut self, host: &str, faults: &[PlannedFault], picture: &Picture) {
        let top = self.lane_start("host", host, LANE_H);
        for fault in faults.iter().filter(|f| f.touches(host)) {
            self.fault_band(fault, top);
        }
        for (_, from, until) in picture.down.iter().filter(|(h, _, _)| h == host) {
            let (x0, x1) = (self.scale.x(*from), self.scale.x(*until));
            let _ = writeln!(
                self.svg,
                "<rect class=\"down\" data-from=\"{from}\" data-until=\"{until}\" x=\"{x0:.2}\" y=\"{:.1}\" \
                 width=\"{:.2}\" height=\"8\" fill=\"{DOWN_COLOUR}\"><title>{host} down {} .. {} ({})</title></rect>",
                top + LANE_H - 11.0,
                (x1 - x0).max(1.0),
                time(*from),
                time(*until),
                time(until - from)
            );
        }
        for (_, at) in picture.restarts.iter().filter(|(h, _)| h == host) {
            let x = self.scale.x(*at);
            let _ = writeln!(
                self.svg,
                "<path class=\"restart\" data-at=\"{at}\" d=\"M{x:.2},{top:.1} v{LANE_H}\" stroke=\"{DOWN_COLOUR}\" \
                 stroke-width=\"2\"><title>{host} restarted at {}</title></path>",
                time(*at)
            );
        }
        self.lane_end(LANE_H);
    }

    fn fault_band(&mut self, fault: &PlannedFault, top: f64) {
        let kind = fault.action.kind();
        let colour = fault_colour(kind);
        let (from, until) = (fault.start(), fault.end());
        let (x0, x1) = (self.scale.x(from), self.scale.x(until));
        let title = format!("#{} {} {} .. {} ({})", fault.id, fault.action, time(from), time(until), fault.origin);
        if matches!(fault.action, Action::Restart { .. }) || until == from {
            let _ = writeln!(
                self.svg,
                "<path class=\"fault\" data-fault=\"{}\" data-kind=\"{kind}\" data-from=\"{from}\" \
                 data-until=\"{until}\" d=\"M{x0:.2},{top:.1} l-5,-0.01 l5,8 l5,-8 z\" fill=\"{colour}\">\
                 <title>{}</title></path>",
                fault.id,
                escape(&title)
            );
            return;
        }
        let width = (x1 - x0).max(1.5);
        let _ = writeln!(
            self.svg,
            "<rect class=\"fault\" data-fault=\"{}\" data-kind=\"{kind}\" data-from=\"{from}\" data-until=\"{until}\" \
             x=\"{x0:.2}\" y=\"{top:.1}\" width=\"{width:.2}\" height=\"{LANE_H}\" fill=\"{colour}\" \
             fill-opacity=\"0.45\" stroke=\"{colour}\"><title>{}</title></rect>",
            fault.id,
            escape(&title)
        );
        if width > 8.0 * kind.len() as f64 {
            let _ = writeln!(
                self.svg,
                "<text x=\"{:.2}\" y=\"{:.1}\" fill=\"#1f2328\" font-size=\"11\">{kind}</text>",
                x0 + 4.0,
                top + 11.0
            );
        }
    }
}

/// `text`, cut to `max` characters with an ellipsis.
fn clip_label(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(max - 1).collect();
        cut.push('…');
        cut
    }
}

impl Drawing {
    fn state_lane(&mut self, lane: &faultline_harness::Lane) {
        match &lane.kind {
            LaneKind::States(changes) => {
                let top = self.lane_start("state", &lane.name, LANE_H);
                let mut neutral: Vec<&str> = Vec::new();
                for (index, change) in changes.iter().enumerate() {
                    let until = changes.get(index + 1).map_or(self.scale.end, |next| next.at);
                    if change.at >= self.scale.end {
                        break;
                    }
                    let position = neutral.iter().position(|s| *s == change.state).unwrap_or_else(|| {
                        neutral.push(&change.state);
                        neutral.len() - 1
                    });
                    let colour = tone_colour(change.tone, position);
                    self.state_span(top, change.at, until, &change.state, colour);
                }
                self.lane_end(LANE_H);
            }
            LaneKind::Level(points) => self.level_lane(&lane.name, points),
        }
    }

    fn state_span(&mut self, top: f64, from: Nanos, until: Nanos, state: &str, colour: &str) {
        let (x0, x1) = (self.scale.x(from), self.scale.x(until));
        let width = (x1 - x0).max(0.5);
        let _ = writeln!(
            self.svg,
            "<rect class=\"state\" data-state=\"{}\" data-from=\"{from}\" data-until=\"{until}\" x=\"{x0:.2}\" \
             y=\"{:.1}\" width=\"{width:.2}\" height=\"{:.1}\" fill=\"{colour}\"><title>{} {} .. {} ({})</title></rect>",
            escape(state),
            top + 3.0,
            LANE_H - 6.0,
            escape(state),
            time(from),
            time(until),
            time(until.saturating_sub(from))
        );
        if width > 7.0 * state.chars().count() as f64 + 6.0 {
            let _ = writeln!(
                self.svg,
                "<text x=\"{:.2}\" y=\"{:.1}\" fill=\"#ffffff\" font-size=\"11\" font-weight=\"600\">{}</text>",
                x0 + 4.0,
                top + LANE_H / 2.0 + 4.0,
                escape(state)
            );
        }
    }

    fn level_lane(&mut self, name: &str, points: &[(Nanos, f64)]) {
        let top = self.lane_start("level", name, LEVEL_H);
        let max = points.iter().map(|(_, v)| *v).fold(0.0f64, f64::max);
        let y_of = |value: f64| top + LEVEL_H - 3.0 - (value / max.max(1e-9)) * (LEVEL_H - 8.0);
        let base = top + LEVEL_H - 3.0;
        let mut path = format!("M{PLOT_X:.2},{base:.1}");
        for (at, value) in points.iter().filter(|(at, _)| *at <= self.scale.end) {
            let _ = write!(path, " H{:.2} V{:.1}", self.scale.x(*at), if max > 0.0 { y_of(*value) } else { base });
        }
        let _ = write!(path, " H{:.2}", PLOT_X + PLOT_W);
        let _ = writeln!(
            self.svg,
            "<path class=\"level\" d=\"{path} V{base:.1} Z\" fill=\"#4c78a8\" fill-opacity=\"0.25\" stroke=\"none\"/>\n\
             <path class=\"level-line\" d=\"{path}\" fill=\"none\" stroke=\"#4c78a8\" stroke-width=\"1.5\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#57606a\" font-size=\"10\">max {}</text>",
            PLOT_X - 8.0,
            top + LEVEL_H / 2.0 + 16.0,
            number(max)
        );
        self.lane_end(LEVEL_H);
    }
}

fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

/// Requests in bins of equal width by intended start: outcome counts and
/// good requests' latencies.
pub struct Bins {
    /// Each bin's width.
    pub width: Nanos,
    /// The bins, from time 0.
    pub bins: Vec<Bin>,
}

/// The requests meant to start within one bin.
#[derive(Clone, Default)]
pub struct Bin {
    /// Fresh answers, right.
    pub ok: u32,
    /// Fallback answers, right.
    pub degraded: u32,
    /// Answers a checker found wrong.
    pub incorrect: u32,
    /// Errors.
    pub failed: u32,
    /// No answer by the deadline.
    pub timeout: u32,
    /// Latencies of the good requests, sorted.
    pub latencies: Vec<Nanos>,
}

impl Bin {
    /// How many requests.
    pub fn count(&self) -> u32 {
        self.ok + self.degraded + self.incorrect + self.failed + self.timeout
    }

    /// Good requests (served, correct) / requests; `None` with no request.
    pub fn good(&self) -> Option<f64> {
        (self.count() > 0).then(|| f64::from(self.ok + self.degraded) / f64::from(self.count()))
    }

    /// The `q` quantile (nearest rank) of good requests' latency.
    pub fn quantile(&self, q: f64) -> Option<Nanos> {
        let n = self.latencies.len();
        (n > 0).then(|| self.latencies[((q * n as f64).ceil() as usize).clamp(1, n) - 1])
    }
}

impl Bins {
    /// The samples in at most [`BINS_MAX`] bins over `0..end`, of a round width.
    pub fn of(samples: &[OpSample], end: Nanos) -> Bins {
        const MS: Nanos = 1_000_000;
        let widths = [10, 20, 50, 100, 200, 250, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000, 300_000, 600_000];
        let width =
            widths.iter().map(|w| w * MS).find(|w| end.div_ceil(*w) <= BINS_MAX).unwrap_or(end.div_ceil(BINS_MAX));
        let mut bins = vec![Bin::default(); usize::try_from(end.div_ceil(width)).unwrap_or(0).max(1)];
        for sample in samples {
            let Some(bin) = bins.get_mut(usize::try_from(sample.intended / width).unwrap_or(usize::MAX)) else {
                continue;
            };
            match sample.class {
                OutcomeClass::Ok | OutcomeClass::Degraded if sample.incorrect => bin.incorrect += 1,
                OutcomeClass::Ok => bin.ok += 1,
                OutcomeClass::Degraded => bin.degraded += 1,
                OutcomeClass::Failed => bin.failed += 1,
                OutcomeClass::Timeout => bin.timeout += 1,
            }
            if sample.good() {
                bin.latencies.push(sample.completed.saturating_sub(sample.intended));
            }
        }
        for bin in &mut bins {
            bin.latencies.sort_unstable();
        }
        Bins { width, bins }
    }
}

impl Drawing {
    fn chart_frame(&mut self, id: &str, labels: [&str; 3]) -> f64 {
        let top = self.y;
        let _ = writeln!(
            self.svg,
            "<g id=\"{id}\" class=\"chart\" data-y=\"{top:.1}\" data-height=\"{CHART_H}\">\n\
             <rect class=\"chart-bg\" x=\"{PLOT_X}\" y=\"{top:.1}\" width=\"{PLOT_W}\" height=\"{CHART_H}\" \
             fill=\"#fbfbfc\" stroke=\"#d0d7de\"/>"
        );
        for (index, label) in labels.iter().enumerate() {
            let y = top + CHART_H * (1.0 - index as f64 / 2.0);
            let _ = writeln!(
                self.svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#57606a\" font-size=\"10\">{label}</text>\n\
                 <path d=\"M{PLOT_X},{y:.1} h{PLOT_W}\" stroke=\"#eaeef2\"/>",
                PLOT_X - 6.0,
                y + 3.0
            );
        }
        top
    }

    /// The outages of the time view, as red spans labelled with their length.
    fn outage_lane(&mut self, report: &RunReport) {
        let label = if report.metrics.outages.is_empty() {
            "outages".to_string()
        } else {
            format!("outages (MTTR {})", time_ms(report.metrics.mttr_ms))
        };
        let top = self.lane_start("outage", &label, LANE_H);
        for outage in &report.metrics.outages {
            let (from, until) = ((outage.start_ms * 1e6) as Nanos, (outage.end_ms * 1e6) as Nanos);
            let label = format!("outage {}", time(until - from));
            self.state_span(top, from, until, &label, "#cf222e");
        }
        if report.metrics.outages.is_empty() {
            let _ = writeln!(
                self.svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#57606a\" font-size=\"11\">no outage ({})</text>",
                PLOT_X + 6.0,
                top + LANE_H / 2.0 + 4.0,
                escape(&report.metrics.time_source)
            );
        }
        self.lane_end(LANE_H);
    }

    fn outcome_chart(&mut self, bins: &Bins) {
        let top = self.chart_frame("chart-requests", ["0%", "50%", "100%"]);
        let mut line = String::new();
        let mut previous = None;
        for (index, bin) in bins.bins.iter().enumerate() {
            let from = index as Nanos * bins.width;
            let Some(good) = bin.good() else { continue };
            let (x0, x1) = (self.scale.x(from), self.scale.x(from + bins.width));
            let n = f64::from(bin.count());
            let _ = write!(
                self.svg,
                "<g class=\"bin\" data-from=\"{from}\" data-until=\"{}\" data-requests=\"{}\" data-good=\"{good:.4}\">",
                from + bins.width,
                bin.count()
            );
            let mut y = top + CHART_H;
            for (count, colour) in [
                (bin.ok, OK_COLOUR),
                (bin.degraded, DEGRADED_COLOUR),
                (bin.incorrect, INCORRECT_COLOUR),
                (bin.failed, FAILED_COLOUR),
                (bin.timeout, TIMEOUT_COLOUR),
            ] {
                if count == 0 {
                    continue;
                }
                let h = f64::from(count) / n * CHART_H;
                y -= h;
                let _ = write!(
                    self.svg,
                    "<rect x=\"{x0:.2}\" y=\"{y:.2}\" width=\"{:.2}\" height=\"{h:.2}\" fill=\"{colour}\"/>",
                    (x1 - x0 - 0.4).max(0.5)
                );
            }
            let _ = writeln!(
                self.svg,
                "<title>{} .. {}: {} requests, {} good</title></g>",
                time(from),
                time(from + bins.width),
                bin.count(),
                percent(good)
            );
            let gy = top + CHART_H * (1.0 - good);
            let join = if previous == Some(index.wrapping_sub(1)) { "L" } else { "M" };
            let _ = write!(line, "{join}{x0:.2},{gy:.2} L{x1:.2},{gy:.2} ");
            previous = Some(index);
        }
        if !line.is_empty() {
            let _ = writeln!(
                self.svg,
                "<path class=\"good-line\" d=\"{line}\" fill=\"none\" stroke=\"#1f2328\" stroke-width=\"1.5\"/>"
            );
        }
        self.svg.push_str("</g>\n");
        self.y += CHART_H + GAP + 14.0;
    }

    fn latency_chart(&mut self, bins: &Bins) {
        let top_ms = bins.bins.iter().filter_map(|b| b.quantile(0.95)).max().map_or(1.0, |n| n as f64 / 1e6);
        let top_ms = nice_ceiling(top_ms);
        let labels = ["0".to_string(), time_ms(top_ms / 2.0), time_ms(top_ms)];
        let top = self.chart_frame("chart-latency", [&labels[0], &labels[1], &labels[2]]);
        let y_of = |nanos: Nanos| top + CHART_H - (nanos as f64 / 1e6 / top_ms).min(1.0) * CHART_H;
        let mut line = String::new();
        let mut previous = None;
        for (index, bin) in bins.bins.iter().enumerate() {
            let from = index as Nanos * bins.width;
            let (Some(p95), Some(p50)) = (bin.quantile(0.95), bin.quantile(0.5)) else { continue };
            let (x0, x1) = (self.scale.x(from), self.scale.x(from + bins.width));
            let join = if previous == Some(index.wrapping_sub(1)) { "L" } else { "M" };
            let _ = write!(line, "{join}{x0:.2},{:.2} L{x1:.2},{:.2} ", y_of(p95), y_of(p95));
            previous = Some(index);
            let _ = writeln!(
                self.svg,
                "<circle class=\"p50\" cx=\"{:.2}\" cy=\"{:.2}\" r=\"1.6\" fill=\"#8c959f\"/>\
                 <rect class=\"p95\" data-from=\"{from}\" data-p95=\"{p95}\" x=\"{x0:.2}\" y=\"{top:.1}\" \
                 width=\"{:.2}\" height=\"{CHART_H}\" fill-opacity=\"0\"><title>{} .. {}: p95 {}, p50 {}</title></rect>",
                (x0 + x1) / 2.0,
                y_of(p50),
                (x1 - x0).max(0.5),
                time(from),
                time(from + bins.width),
                time(p95),
                time(p50)
            );
        }
        if !line.is_empty() {
            let _ = writeln!(
                self.svg,
                "<path class=\"p95-line\" d=\"{line}\" fill=\"none\" stroke=\"#4c78a8\" stroke-width=\"1.8\"/>"
            );
        }
        self.svg.push_str("</g>\n");
        self.y += CHART_H + GAP + 14.0;
    }
}

/// The smallest of 1, 2, 2.5 or 5 times a power of ten at least `value`.
fn nice_ceiling(value: f64) -> f64 {
    let value = value.max(1e-3);
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * power).find(|v| *v >= value * 0.999).unwrap_or(10.0 * power)
}

/// The time axis along the top, with grid lines through every row, and the heal phase.
fn axis(scale: Scale, height: f64) -> String {
    const MS: Nanos = 1_000_000;
    let steps = [100, 200, 250, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000];
    let step = steps.iter().map(|s| s * MS).find(|s| scale.end / s <= 12).unwrap_or(scale.end.div_ceil(12).max(1));
    let mut svg = String::from("<g id=\"axis\">\n");
    let mut at = 0;
    while at <= scale.end {
        let x = scale.x(at);
        let _ = writeln!(
            svg,
            "<path d=\"M{x:.2},{AXIS_H} V{:.1}\" stroke=\"#eaeef2\"/><text x=\"{x:.2}\" y=\"16\" text-anchor=\"middle\" \
             fill=\"#57606a\" font-size=\"11\">{}</text>",
            height - 8.0,
            time(at)
        );
        at += step;
    }
    svg.push_str("</g>\n");
    svg
}

/// The heal line and violation markers, drawn over every row.
fn marks(scale: Scale, picture: &Picture, report: &RunReport, height: f64) -> String {
    let mut svg = String::new();
    let heal = scale.x(picture.heal_at);
    let _ = writeln!(
        svg,
        "<g id=\"heal\" data-at=\"{}\"><path d=\"M{heal:.2},{:.1} V{:.1}\" stroke=\"#1a7f37\" stroke-width=\"1.2\" \
         stroke-dasharray=\"5,4\"/><text x=\"{:.2}\" y=\"{:.1}\" fill=\"#1a7f37\" font-size=\"11\">heal</text></g>",
        picture.heal_at,
        AXIS_H - 6.0,
        height - 8.0,
        heal + 4.0,
        AXIS_H - 2.0
    );
    let mut last_label = f64::NEG_INFINITY;
    for (index, violation) in report.violations.iter().enumerate() {
        let Some(at) = violation.at else { continue };
        let x = scale.x(at);
        // Close markers share one label: the first of them.
        let label = if x - last_label > 30.0 {
            last_label = x;
            format!("V{}", index + 1)
        } else {
            String::new()
        };
        let _ = writeln!(
            svg,
            "<g class=\"violation\" data-at=\"{at}\" data-invariant=\"{}\"><path d=\"M{x:.2},{AXIS_H} V{:.1}\" \
             stroke=\"#cf222e\" stroke-opacity=\"0.55\" stroke-dasharray=\"2,3\"/><path d=\"M{:.2},{:.1} h10 l-5,8 z\" \
             fill=\"#cf222e\"/><text x=\"{:.2}\" y=\"{:.1}\" fill=\"#cf222e\" font-size=\"10\">{label}</text>\
             <title>V{} {} at {}: {}</title></g>",
            escape(&violation.invariant),
            height - 8.0,
            x - 5.0,
            AXIS_H - 8.0,
            x + 6.0,
            AXIS_H - 1.0,
            index + 1,
            escape(&violation.invariant),
            time(at),
            escape(&violation.message)
        );
    }
    svg
}

fn figures(report: &RunReport) -> String {
    let m = &report.metrics;
    let mut html = String::from("<h2>Figures</h2>\n<table>\n");
    let mut row = |name: &str, value: String| {
        let _ = writeln!(html, "<tr><th>{name}</th><td>{}</td></tr>", escape(&value));
    };
    row(
        "requests",
        format!(
            "{} ({} ok, {} degraded, {} failed, {} timed out, {} incorrect)",
            m.requests, m.ok, m.degraded, m.failed, m.timeout, m.incorrect
        ),
    );
    row("availability (good requests)", percent(m.availability));
    row("time availability", format!("{} (from the {})", percent(m.time_availability), m.time_source));
    row(
        "latency p50 / p95 / p99",
        format!("{} / {} / {}", time_ms(m.latency.p50_ms), time_ms(m.latency.p95_ms), time_ms(m.latency.p99_ms)),
    );
    row("outages", m.outages.len().to_string());
    row("MTTR", if m.outages.is_empty() { "no outage".into() } else { time_ms(m.mttr_ms) });
    row("MTBF", m.mtbf_ms.map_or("no outage".into(), time_ms));
    row("MTTD", m.mttd_ms.map_or("never detected".into(), time_ms));
    row("time to recover", m.time_to_recover_ms.map_or("not measured".into(), time_ms));
    for (name, value) in &report.system_figures {
        row(name, number(*value));
    }
    html.push_str("</table>\n");
    if !m.outages.is_empty() {
        html.push_str("<h2>Outages</h2>\n<table><tr><th>#</th><th>from</th><th>until</th><th>length</th></tr>\n");
        for (index, outage) in m.outages.iter().enumerate() {
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                index + 1,
                time_ms(outage.start_ms),
                time_ms(outage.end_ms),
                time_ms(outage.end_ms - outage.start_ms)
            );
        }
        let _ = writeln!(html, "</table>\n<p class=\"note\">MTTR (mean outage length): {}</p>", time_ms(m.mttr_ms));
    }
    html
}

fn violations(report: &RunReport) -> String {
    let mut html = String::from("<h2>Violations</h2>\n");
    if report.violation_counts.is_empty() {
        html.push_str("<p class=\"note\">none</p>\n");
    } else {
        html.push_str("<table><tr><th>#</th><th>at</th><th>invariant</th><th>what</th></tr>\n");
        for (index, violation) in report.violations.iter().enumerate() {
            let _ = writeln!(
                html,
                "<tr class=\"violation\"><td>V{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
                index + 1,
                violation.at.map_or("-".into(), time),
                escape(&violation.invariant),
                escape(&violation.message)
            );
        }
        html.push_str("</table>\n");
        let shown = report.violations.len();
        let total: usize = report.violation_counts.values().sum();
        if total > shown {
            let _ = writeln!(html, "<p class=\"note\">{shown} of {total} violations shown</p>");
        }
    }
    if let faultline_harness::SeedOutcome::Failed { reasons } | faultline_harness::SeedOutcome::Unjudged { reasons } =
        &report.outcome
    {
        html.push_str("<ul>\n");
        for reason in reasons {
            let _ = writeln!(html, "<li>{}</li>", escape(reason));
        }
        html.push_str("</ul>\n");
    }
    let _ = writeln!(html, "<p>replay: <code>{}</code></p>", escape(&report.replay_command()));
    html
}

fn plan(report: &RunReport) -> String {
    let mut html = String::from("<h2>Faults</h2>\n");
    if report.plan.faults.is_empty() {
        html.push_str("<p class=\"note\">none</p>\n");
        return html;
    }
    html.push_str("<table><tr><th>#</th><th>from</th><th>until</th><th>what</th><th>from where</th></tr>\n");
    for fault in &report.plan.faults {
        let _ = writeln!(
            html,
            "<tr><td><i class=\"sw\" style=\"background:{}\"></i>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            fault_colour(fault.action.kind()),
            fault.id,
            time(fault.start()),
            fault.until.map_or("-".into(), |_| time(fault.end())),
            escape(&fault.action.to_string()),
            escape(&fault.origin)
        );
    }
    html.push_str("</table>\n");
    html
}

fn settings(report: &RunReport, scenario: &Scenario) -> String {
    let mut html = String::from("<h2>Settings</h2>\n<table>\n");
    for (key, value) in scenario.knob_lines() {
        let _ = writeln!(html, "<tr><th>{}</th><td>{}</td></tr>", escape(&key), escape(&value));
    }
    let v = &report.versions;
    let _ = writeln!(
        html,
        "<tr><th>versions</th><td>faultline {}, turmoil {}, {}</td></tr>\n</table>",
        escape(&v.faultline),
        escape(&v.turmoil),
        escape(&v.rustc)
    );
    html
}
