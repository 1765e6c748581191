//! `faultline report` in a real browser: the page of the breaker crash run,
//! opened in headless Chromium and screenshotted, shows the crash band on
//! the downstream's lane, the breaker's open/half-open/closed lane and the
//! dip of good requests, each at the place the run's trace puts it.
//!
//! Needs Chromium: set FAULTLINE_BROWSER=1 (or to the browser's path;
//! `.ci/run` installs Debian's `chromium` and sets it). Without it the test
//! says it skipped and passes, so `cargo test` on a machine without a
//! browser stays green.

use std::path::{Path, PathBuf};
use std::process::Command;

use roxmltree::{Document, Node};

use crate::support::{faultline, repo_file};

/// Where the timeline's SVG starts on the page: the page's left padding,
/// and the fixed heights of the header (72px) and the legend (40px) in
/// src/page/mod.rs and src/page/run.rs.
const SVG_LEFT: f64 = 16.0;
const SVG_TOP: f64 = 112.0;
const SECOND: u64 = 1_000_000_000;

fn browser() -> Option<String> {
    match std::env::var("FAULTLINE_BROWSER") {
        Ok(value) if value == "1" => Some("chromium".into()),
        Ok(value) if !value.is_empty() && value != "0" => Some(value),
        _ => None,
    }
}

fn screenshot(browser: &str, page: &Path, out: &Path, profile: &Path) {
    let status = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", out.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap_or_else(|e| panic!("cannot start {browser}: {e} (FAULTLINE_BROWSER names the browser)"));
    assert!(status.status.success(), "{browser} failed: {}", String::from_utf8_lossy(&status.stderr));
}

struct Shot {
    width: usize,
    height: usize,
    rgb: Vec<[u8; 3]>,
}

impl Shot {
    fn read(path: &Path) -> Shot {
        let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).expect("the screenshot")));
        let mut reader = decoder.read_info().expect("a PNG");
        let mut buffer = vec![0; reader.output_buffer_size().expect("a PNG's size")];
        let info = reader.next_frame(&mut buffer).expect("a PNG frame");
        let channels = info.color_type.samples();
        assert!(info.bit_depth == png::BitDepth::Eight && channels >= 3, "8-bit RGB(A) expected");
        let rgb = buffer[..info.buffer_size()].chunks(channels).map(|p| [p[0], p[1], p[2]]).collect();
        Shot { width: info.width as usize, height: info.height as usize, rgb }
    }

    /// The pixel at the SVG's coordinates.
    fn at(&self, x: f64, y: f64) -> [u8; 3] {
        let (px, py) = ((SVG_LEFT + x).round() as usize, (SVG_TOP + y).round() as usize);
        assert!(px < self.width && py < self.height, "({px}, {py}) is off the screenshot");
        self.rgb[py * self.width + px]
    }
}

/// Is `pixel` within `tolerance` of the colour `#rrggbb`?
fn near(pixel: [u8; 3], hex: &str, tolerance: i32) -> bool {
    let want: Vec<i32> = (0..3).map(|i| i32::from_str_radix(&hex[1 + 2 * i..3 + 2 * i], 16).unwrap()).collect();
    (0..3).all(|i| (i32::from(pixel[i]) - want[i]).abs() <= tolerance)
}

fn attr<T: std::str::FromStr>(node: Node<'_, '_>, name: &str) -> T {
    node.attribute(name).and_then(|t| t.parse().ok()).unwrap_or_else(|| panic!("no {name}"))
}

fn lane<'a, 'i>(doc: &'a Document<'i>, kind: &str, name: &str) -> Node<'a, 'i> {
    doc.descendants()
        .find(|n| n.attribute("data-kind") == Some(kind) && n.attribute("data-lane") == Some(name))
        .unwrap_or_else(|| panic!("no {kind} lane {name}"))
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-browser-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    dir
}

#[test]
fn chromium_shows_the_crash_band_the_breaker_lane_and_the_dip() {
    let Some(browser) = browser() else {
        // Written past the test harness's capture, so a plain `cargo test` shows it.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "report::chromium_shows_the_crash_band_the_breaker_lane_and_the_dip skipped: it needs Chromium; \
             set FAULTLINE_BROWSER=1 (or to its path) to run it"
        );
        return;
    };
    let dir = scratch();
    let page = dir.join("report.html");
    let fixture = repo_file("tests/fixtures/report-breaker-crash.toml");
    let out =
        faultline(&["report", "--run", fixture.to_str().unwrap(), "--seed", "1", "--out", page.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(&page).expect("the page");
    let start = html.find("<svg id=\"timeline\"").expect("the timeline");
    let svg = &html[start..start + html[start..].find("</svg>").unwrap() + 6];
    let doc = Document::parse(svg).expect("the timeline parses");
    let shot_path = dir.join("report.png");
    screenshot(&browser, &page, &shot_path, &dir.join("profile"));
    let shot = Shot::read(&shot_path);
    let mut colours: Vec<[u8; 3]> = shot.rgb.iter().step_by(97).copied().collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(colours.len() > 20, "the screenshot is blank or nearly: {} colours", colours.len());

    // The SVG starts where the test expects: a host lane's grey background.
    let app = lane(&doc, "host", "app");
    let (app_y, lane_h): (f64, f64) = (attr(app, "data-y"), attr(app, "data-height"));
    assert!(near(shot.at(200.0, app_y + lane_h / 2.0), "#f3f4f6", 3), "no lane at the timeline's place");

    // The crash band: red over the downstream's lane (upper half: the down bar is below), grey beside it.
    let downstream = lane(&doc, "host", "downstream");
    let band = downstream.descendants().find(|n| n.attribute("class") == Some("fault")).expect("the crash band");
    let (band_x, band_w): (f64, f64) = (attr(band, "x"), attr(band, "width"));
    let band_y = attr::<f64>(downstream, "data-y") + 6.0;
    let inside = shot.at(band_x + band_w * 0.75, band_y);
    assert!(inside[0] > 200 && inside[1] < 190 && inside[2] < 190, "the crash band is not red: {inside:?}");
    assert!(near(shot.at(band_x - 20.0, band_y), "#f3f4f6", 3), "the lane before the crash is not plain");

    // The breaker's lane: red where it is open, green where it is closed again.
    let breaker = lane(&doc, "state", "breaker");
    let states: Vec<Node> = breaker.descendants().filter(|n| n.attribute("class") == Some("state")).collect();
    let middle = |node: Node| (attr::<f64>(node, "x") + attr::<f64>(node, "width") / 2.0, attr::<f64>(node, "y") + 3.0);
    let open = states.iter().find(|n| n.attribute("data-state") == Some("open")).expect("an open span");
    let (x, y) = middle(*open);
    assert!(near(shot.at(x, y), "#e45756", 8), "open is not red at {x}: {:?}", shot.at(x, y));
    let closed = states.last().expect("a last state");
    assert_eq!(closed.attribute("data-state"), Some("closed"));
    let (x, y) = middle(*closed);
    assert!(near(shot.at(x, y), "#54a24b", 8), "closed is not green at {x}: {:?}", shot.at(x, y));

    // The dip: the requests chart is green before the crash and orange (failed) in its middle.
    let chart = doc.descendants().find(|n| n.attribute("id") == Some("chart-requests")).expect("the chart");
    let (top, height): (f64, f64) = (attr(chart, "data-y"), attr(chart, "data-height"));
    let svg_root = doc.root_element();
    let (plot_x, plot_w, end): (f64, f64, u64) =
        (attr(svg_root, "data-plot-x"), attr(svg_root, "data-plot-width"), attr(svg_root, "data-end"));
    let x_of = |at: u64| plot_x + at as f64 / end as f64 * plot_w;
    let low = top + height * 0.9;
    let before = shot.at(x_of(SECOND / 2) + 2.0, low);
    let during = shot.at(x_of(2 * SECOND) + 2.0, top + height * 0.5);
    assert!(near(before, "#3f9b3f", 10), "good requests before the crash are not green: {before:?}");
    assert!(near(during, "#f08c2e", 10), "failed requests during the crash are not orange: {during:?}");
    std::fs::remove_dir_all(&dir).ok();
}
