//! Sweeps past one process: shards merged equal one sweep, a killed sweep
//! resumes with nothing lost or run twice, a changed file is not resumed,
//! random seeds until a failure, JUnit output against the vendored Jenkins
//! XSD, and deploy/local-shards.sh (the Kubernetes Job's command per index).
//! Small inputs: three scenario files, three seeds, a few seconds in a debug build.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{faultline, repo_file, root, stderr, stdout};

/// Three echo files, one of them with a known flaw (so the merge has
/// known-flaw lines to print); three seeds each.
const FILES: &[&str] =
    &["scenarios/echo/baseline.toml", "scenarios/echo/crash-restart.toml", "scenarios/echo/corrupting-server.toml"];

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-scale-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    dir
}

fn sweep(extra: &[&str]) -> Output {
    let mut args = vec!["sweep"];
    args.extend(FILES);
    args.extend(["--seeds", "3", "--jobs", "2"]);
    args.extend(extra);
    faultline(&args)
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("an exit code")
}

/// The text without its closing line (which names the wall time and threads).
fn without_last_line(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[..lines.len().saturating_sub(1)].join("\n")
}

/// (scenario, seed) -> digest of every line of a results file, and the line count.
fn digests(path: &Path) -> (BTreeMap<(String, u64), String>, usize) {
    let text = std::fs::read_to_string(path).expect("a results file");
    let mut map = BTreeMap::new();
    let mut count = 0;
    for line in text.lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let key = (value["scenario"].as_str().unwrap().to_string(), value["seed"].as_u64().unwrap());
        map.insert(key, value["report"]["digest"].as_str().unwrap().to_string());
        count += 1;
    }
    (map, count)
}

#[test]
fn four_shards_merged_equal_one_sweep_digest_for_digest() {
    let dir = scratch("shards");
    let whole = dir.join("whole.jsonl");
    let junit = dir.join("whole.xml");
    let page = dir.join("whole.html");
    let single = sweep(&[
        "--format",
        "json",
        "--out",
        whole.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
        "--report",
        page.to_str().unwrap(),
    ]);
    let single_text = sweep(&[]);
    assert_eq!(code(&single), code(&single_text));
    let mut shards = Vec::new();
    for k in 0..4 {
        let out = dir.join(format!("s{k}.jsonl"));
        let shard = format!("{k}/4");
        let ran = sweep(&["--shard", &shard, "--out", out.to_str().unwrap()]);
        assert_eq!(code(&ran), 0, "a shard exits 0 once its results are written:\n{}", stderr(&ran));
        shards.push(out);
    }
    let files: Vec<&str> = shards.iter().map(|p| p.to_str().unwrap()).collect();
    let merged_junit = dir.join("merged.xml");
    let merged_page = dir.join("merged.html");
    let mut args = vec![
        "merge",
        "--format",
        "json",
        "--junit",
        merged_junit.to_str().unwrap(),
        "--report",
        merged_page.to_str().unwrap(),
    ];
    args.extend(&files);
    let merged = faultline(&args);
    assert_eq!(code(&merged), code(&single), "merge exits as the sweep did:\n{}", stderr(&merged));
    // The whole JSON result, every report and digest in it, byte for byte.
    assert_eq!(stdout(&merged), stdout(&single), "the merged JSON differs from the single sweep's");
    let mut args = vec!["merge"];
    args.extend(&files);
    let merged_text = faultline(&args);
    assert_eq!(without_last_line(&stdout(&merged_text)), without_last_line(&stdout(&single_text)));
    assert!(stdout(&merged_text).contains("expected violations found"), "{}", stdout(&merged_text));
    // Digest for digest, and each pair in exactly one shard.
    let (whole_digests, _) = digests(&whole);
    let mut union = BTreeMap::new();
    for shard in &shards {
        let (part, count) = digests(shard);
        assert_eq!(part.len(), count, "a pair twice in one shard");
        for (key, digest) in part {
            assert!(union.insert(key.clone(), digest).is_none(), "{key:?} in two shards");
        }
    }
    assert_eq!(union, whole_digests);
    assert_eq!(union.len(), FILES.len() * 3);
    for xml in [&junit, &merged_junit] {
        junit_valid(&std::fs::read_to_string(xml).expect("the junit file"), FILES.len() * 4);
    }
    // The sweep's page from the shards' files (`report`, `merge --report`)
    // is the single sweep's page, byte for byte; no run is repeated.
    let reported_page = dir.join("reported.html");
    let mut args = vec!["report", "--out", reported_page.to_str().unwrap()];
    args.extend(&files);
    let reported = faultline(&args);
    assert_eq!(code(&reported), code(&single), "report exits as the sweep did:\n{}", stderr(&reported));
    let whole_page = std::fs::read_to_string(&page).expect("the sweep's page");
    for other in [&merged_page, &reported_page] {
        assert_eq!(std::fs::read_to_string(other).expect("a page"), whole_page, "{} differs", other.display());
    }
    for file in FILES {
        let name = Path::new(file).file_stem().unwrap().to_str().unwrap();
        assert!(whole_page.contains(name), "the page names {name}");
    }
    // A merge that lacks a shard refuses, naming how many runs are missing.
    let partial = faultline(&["merge", files[0], files[1], files[2]]);
    assert_eq!(code(&partial), 2, "{}", stderr(&partial));
    assert!(stderr(&partial).contains("missing"), "{}", stderr(&partial));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_killed_sweep_resumes_with_nothing_lost_or_run_twice() {
    let dir = scratch("resume");
    let whole = dir.join("whole.jsonl");
    assert_eq!(code(&sweep(&["--out", whole.to_str().unwrap()])), 0);
    let (whole_digests, _) = digests(&whole);
    // Killed while writing its fifth line: four whole lines and half of one.
    let text = std::fs::read_to_string(&whole).unwrap();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let torn = dir.join("torn.jsonl");
    let head: String = lines[..4].concat();
    std::fs::write(&torn, format!("{head}{}", &lines[4][..lines[4].len() / 2])).unwrap();
    let resumed = sweep(&["--out", torn.to_str().unwrap(), "--resume"]);
    assert_eq!(code(&resumed), 0, "{}", stderr(&resumed));
    assert!(stderr(&resumed).contains("dropped the torn last line"), "{}", stderr(&resumed));
    assert!(stderr(&resumed).contains("4 of 9 runs already in"), "{}", stderr(&resumed));
    let (after, count) = digests(&torn);
    assert_eq!(count, 9, "every pair once: nothing lost, nothing run twice");
    assert_eq!(after, whole_digests);
    assert!(std::fs::read_to_string(&torn).unwrap().starts_with(&head), "the finished lines were kept as they were");
    // Resumed again, it runs nothing.
    let again = sweep(&["--out", torn.to_str().unwrap(), "--resume"]);
    assert!(stderr(&again).contains("9 of 9 runs already in"), "{}", stderr(&again));
    assert_eq!(digests(&torn).1, 9);
    // A sweep really killed (SIGKILL) after its first line, then resumed.
    let killed = dir.join("killed.jsonl");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["sweep"])
        .args(FILES)
        .args(["--seeds", "3", "--jobs", "1", "--out", killed.to_str().unwrap()])
        .current_dir(root())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the faultline binary starts");
    // Until its first line is written, for at most two minutes (6000 x 20ms).
    for _ in 0..6000 {
        if std::fs::read_to_string(&killed).map_or(0, |t| t.lines().count()) >= 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("the sweep is killed");
    let _ = child.wait();
    let before = digests(&killed).1;
    assert!(before < 9, "the sweep was killed before it finished ({before} lines)");
    assert_eq!(code(&sweep(&["--out", killed.to_str().unwrap(), "--resume"])), 0);
    let (after, count) = digests(&killed);
    assert_eq!(count, 9);
    assert_eq!(after, whole_digests);
    // Without --resume an existing file is refused, never overwritten.
    let refused = sweep(&["--out", killed.to_str().unwrap()]);
    assert_eq!(code(&refused), 2);
    assert!(stderr(&refused).contains("--resume"), "{}", stderr(&refused));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_changed_scenario_file_is_never_resumed_as_if_unchanged() {
    let dir = scratch("changed");
    let scenario = dir.join("baseline.toml");
    std::fs::copy(repo_file("scenarios/echo/baseline.toml"), &scenario).unwrap();
    let out = dir.join("out.jsonl");
    let args = |resume: bool| {
        let mut args = vec!["sweep", scenario.to_str().unwrap(), "--seeds", "1", "--out", out.to_str().unwrap()];
        if resume {
            args.push("--resume");
        }
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let first = faultline(&args(false).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    let mut text = std::fs::read_to_string(&scenario).unwrap();
    text.push_str("\n# edited\n");
    std::fs::write(&scenario, text).unwrap();
    let resumed = faultline(&args(true).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code(&resumed), 2, "{}", stderr(&resumed));
    assert!(stderr(&resumed).contains("changed since"), "{}", stderr(&resumed));
    // Nor merged.
    let merged = faultline(&["merge", out.to_str().unwrap()]);
    assert_eq!(code(&merged), 2);
    assert!(stderr(&merged).contains("changed since its results were written"), "{}", stderr(&merged));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn until_failure_prints_its_seed_source_and_stops_at_a_failing_seed() {
    let passing =
        faultline(&["sweep", "scenarios/echo/baseline.toml", "--until-failure", "--time", "2s", "--seed-source", "42"]);
    assert_eq!(code(&passing), 0, "{}", stderr(&passing));
    let text = stdout(&passing);
    assert!(text.contains("seeds/s") && text.contains("seed source 42") && text.contains("no seed failed"), "{text}");
    // The corrupting echo server with `expect = "pass"`: the first seed fails.
    let dir = scratch("hunt");
    let source = std::fs::read_to_string(repo_file("scenarios/echo/corrupting-server.toml")).unwrap();
    let failing = dir.join("corrupting.toml");
    let edited: String = source
        .lines()
        .filter(|l| !l.trim_start().starts_with("expect") && !l.trim_start().starts_with("reached"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&failing, edited).unwrap();
    let hunted = faultline(&["sweep", failing.to_str().unwrap(), "--until-failure", "--time", "60s", "--jobs", "1"]);
    assert_eq!(code(&hunted), 1, "{}\n{}", stdout(&hunted), stderr(&hunted));
    let text = stdout(&hunted);
    assert!(text.contains("FAILED:") && text.contains("reproduce:") && text.contains("--seed-source"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_local_script_runs_the_job_command_for_every_index_and_merges() {
    let dir = scratch("local");
    let output = std::process::Command::new("bash")
        .arg(repo_file("deploy/local-shards.sh"))
        .args(["3", dir.to_str().unwrap(), "scenarios/echo/baseline.toml", "scenarios/echo/crash-restart.toml"])
        .args(["--seeds", "2"])
        .env("FAULTLINE", env!("CARGO_BIN_EXE_faultline"))
        .current_dir(root())
        .output()
        .expect("bash runs the script");
    assert_eq!(code(&output), 0, "{}\n{}", stdout(&output), stderr(&output));
    assert!(stdout(&output).contains("2 of 2 scenarios passed; 4 runs merged from 3 files"), "{}", stdout(&output));
    // The script runs the command the Kubernetes Job and the CI example run.
    let script = std::fs::read_to_string(repo_file("deploy/local-shards.sh")).unwrap();
    let job = std::fs::read_to_string(repo_file("deploy/kubernetes/sweep-job.yaml")).unwrap();
    let matrix = std::fs::read_to_string(repo_file("deploy/github-actions/sweep-matrix.yml")).unwrap();
    for needle in ["--shard", "--out", "--resume"] {
        assert!(script.contains(needle) && job.contains(needle) && matrix.contains(needle), "{needle}");
    }
    assert!(job.contains("completionMode: Indexed") && job.contains("JOB_COMPLETION_INDEX"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The Jenkins JUnit XSD, as the published crate `junit-report` carries it
/// (a dev-dependency for this alone; tests/junit/README.md), found through
/// `cargo metadata`.
fn jenkins_xsd() -> String {
    let output = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--offline"])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let package = metadata["packages"]
        .as_array()
        .and_then(|packages| packages.iter().find(|p| p["name"] == "junit-report"))
        .expect("junit-report is a dev-dependency");
    let manifest = std::path::PathBuf::from(package["manifest_path"].as_str().expect("a manifest path"));
    let xsd = manifest.parent().expect("the package's folder").join("tests/JUnit.xsd");
    std::fs::read_to_string(&xsd).unwrap_or_else(|e| panic!("{}: {e}", xsd.display()))
}

/// Holds a JUnit document to the Jenkins XSD (tests/junit/README.md says
/// what this structural check covers): every element declared and allowed
/// by its parent, every attribute declared, required ones present, times
/// decimal. `cases` is how many test cases the document must hold.
fn junit_valid(xml: &str, cases: usize) {
    let xsd_text = jenkins_xsd();
    let xsd = roxmltree::Document::parse(&xsd_text).expect("the XSD parses");
    let schema = Schema::read(&xsd);
    let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("the JUnit output is not XML: {e}\n{xml}"));
    let root_element = doc.root_element();
    assert_eq!(root_element.tag_name().name(), "testsuites");
    schema.check(root_element);
    let found = doc.descendants().filter(|n| n.has_tag_name("testcase")).count();
    assert_eq!(found, cases, "test cases in\n{xml}");
    let failures = doc.descendants().filter(|n| n.has_tag_name("failure")).collect::<Vec<_>>();
    for failure in failures {
        assert!(failure.text().unwrap_or("").contains("reproduce: "), "a failure without its replay command");
    }
}

/// What the XSD declares: per element, its attributes (name -> (type,
/// required)) and the elements it may contain.
struct Schema {
    elements: BTreeMap<String, Declared>,
}

#[derive(Default)]
struct Declared {
    attributes: BTreeMap<String, (String, bool)>,
    children: BTreeSet<String>,
}

impl Schema {
    fn read(xsd: &roxmltree::Document) -> Schema {
        let top = xsd.root_element();
        let mut types: BTreeMap<String, roxmltree::Node> = BTreeMap::new();
        for node in top.children().filter(|n| n.has_tag_name("complexType")) {
            types.insert(node.attribute("name").unwrap().to_string(), node);
        }
        let mut elements = BTreeMap::new();
        for node in top.children().filter(|n| n.has_tag_name("element")) {
            let name = node.attribute("name").unwrap().to_string();
            let body = match node.attribute("type") {
                Some(named) => types.get(named).copied(),
                None => node.children().find(|n| n.has_tag_name("complexType")),
            };
            let mut declared = Declared::default();
            if let Some(body) = body {
                for d in body.descendants() {
                    if d.has_tag_name("attribute") {
                        let kind = d.attribute("type").unwrap_or("xs:string").to_string();
                        let required = d.attribute("use") == Some("required");
                        declared.attributes.insert(d.attribute("name").unwrap().to_string(), (kind, required));
                    } else if d.has_tag_name("element") {
                        let child = d.attribute("ref").or(d.attribute("name")).unwrap();
                        declared.children.insert(child.to_string());
                    }
                }
            }
            elements.insert(name, declared);
        }
        assert!(elements.len() >= 10, "the XSD declares the JUnit elements");
        Schema { elements }
    }

    fn check(&self, node: roxmltree::Node) {
        let name = node.tag_name().name();
        let declared = self.elements.get(name).unwrap_or_else(|| panic!("<{name}> is not declared in the XSD"));
        for attribute in node.attributes() {
            let (kind, _) = declared.attributes.get(attribute.name()).unwrap_or_else(|| {
                panic!("<{name}> has attribute {:?}, which the XSD does not declare", attribute.name())
            });
            // The schema types times as strings (junit-10 as SUREFIRE_TIME);
            // Jenkins parses them as decimal seconds.
            if kind == "SUREFIRE_TIME" || attribute.name() == "time" {
                let value = attribute.value();
                let decimal = value.split_once('.').map_or(value, |(whole, _)| whole);
                assert!(
                    decimal.chars().all(|c| c.is_ascii_digit()) && value.parse::<f64>().is_ok(),
                    "<{name} {}={value:?}> is not a decimal number of seconds",
                    attribute.name()
                );
            }
        }
        for (attribute, (_, required)) in &declared.attributes {
            assert!(!required || node.attribute(attribute.as_str()).is_some(), "<{name}> lacks required {attribute:?}");
        }
        for child in node.children().filter(roxmltree::Node::is_element) {
            let child_name = child.tag_name().name();
            assert!(declared.children.contains(child_name), "<{child_name}> may not be inside <{name}>");
            self.check(child);
        }
    }
}

#[test]
fn the_structural_check_refuses_what_the_xsd_does_not_allow() {
    let xsd_text = jenkins_xsd();
    let xsd = roxmltree::Document::parse(&xsd_text).unwrap();
    let schema = Schema::read(&xsd);
    let ok = "<testsuites><testsuite name=\"a\" tests=\"1\" failures=\"0\" errors=\"0\"><testcase name=\"x\"/></testsuite></testsuites>";
    schema.check(roxmltree::Document::parse(ok).unwrap().root_element());
    for bad in [
        // A test case outside a suite, a suite without its required counts,
        // an attribute the schema lacks, a time that is not a number.
        "<testsuites><testcase name=\"x\"/></testsuites>",
        "<testsuites><testsuite name=\"a\"/></testsuites>",
        "<testsuites><testsuite name=\"a\" tests=\"1\" failures=\"0\" errors=\"0\"><testcase name=\"x\" seed=\"1\"/></testsuite></testsuites>",
        "<testsuites time=\"1s\"/>",
    ] {
        let doc = roxmltree::Document::parse(bad).unwrap();
        let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| schema.check(doc.root_element())));
        assert!(refused.is_err(), "the check let through {bad}");
    }
}
