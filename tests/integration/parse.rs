//! Bad scenario files get an error that names file:line:column, says what
//! was expected and, for a typo, suggests the nearest valid key or value.

use crate::support::{echo, parse};

/// Parses `source`, expecting an error; returns (position, message, help).
#[track_caller]
fn error_of(source: &str) -> (Option<(usize, usize)>, String, String) {
    match parse(source) {
        Ok(_) => panic!("expected an error for:\n{source}"),
        Err(error) => (error.position, error.message, error.help.unwrap_or_default()),
    }
}

#[track_caller]
fn assert_error(source: &str, position: (usize, usize), message: &str, help: &str) {
    let (at, got_message, got_help) = error_of(source);
    assert_eq!(at, Some(position), "position of: {got_message}");
    assert!(got_message.contains(message), "message {got_message:?} lacks {message:?}");
    assert!(got_help.contains(help), "help {got_help:?} lacks {help:?}");
}

#[test]
fn the_echo_helper_parses() {
    parse(&echo("")).unwrap();
}

#[test]
fn a_misspelt_top_level_key_is_located_and_corrected() {
    let source = "name = \"x\"\nsystem = \"echo\"\nduraton = \"5s\"\n[workload]\nrate = \"1/s\"\n";
    assert_error(source, (3, 1), "unknown key \"duraton\" at the top level", "did you mean \"duration\"?");
}

#[test]
fn a_misspelt_fault_key_names_its_table() {
    let source = echo("\n[[fault]]\nkind = \"crash\"\nhosts = [\"server\"]\nat = \"1s\"\nrestart_afer = \"1s\"\n");
    assert_error(&source, (15, 1), "unknown key \"restart_afer\" in [[fault]]", "did you mean \"restart_after\"?");
}

#[test]
fn a_misspelt_fault_kind_is_corrected() {
    let source = echo("\n[[fault]]\nkind = \"parition\"\nhosts = [\"server\"]\nat = \"1s\"\n");
    assert_error(&source, (12, 8), "unknown value \"parition\"", "did you mean \"partition\"?");
}

#[test]
fn a_bare_number_duration_asks_for_a_unit() {
    let source = "name = \"x\"\nsystem = \"echo\"\nduration = 5\n[workload]\nrate = \"1/s\"\n";
    assert_error(source, (3, 12), "expected a duration string with a unit, such as \"5s\"", "");
}

#[test]
fn an_unreadable_duration_says_what_was_expected() {
    let source = "name = \"x\"\nsystem = \"echo\"\nduration = \"five seconds\"\n[workload]\nrate = \"1/s\"\n";
    assert_error(source, (3, 12), "expected a duration such as \"250ms\" or \"5s\", found \"five seconds\"", "");
}

#[test]
fn an_unknown_system_is_corrected() {
    let source = "name = \"x\"\nsystem = \"ecko\"\nduration = \"5s\"\n[workload]\nrate = \"1/s\"\n";
    assert_error(source, (2, 10), "unknown system \"ecko\"", "did you mean \"echo\"?");
}

#[test]
fn a_misspelt_knob_is_located_by_the_system() {
    let source = echo("\n[knobs]\ncorupt_rate = 0.1\n");
    assert_error(&source, (12, 1), "unknown key \"corupt_rate\" in [knobs]", "did you mean \"corrupt_rate\"?");
}

#[test]
fn a_knob_of_the_wrong_type_is_located() {
    let source = echo("\n[knobs]\ncorrupt_rate = 2.5\n");
    assert_error(&source, (12, 16), "expected a probability between 0 and 1, found 2.5", "");
}

#[test]
fn a_host_pattern_that_matches_nothing_is_corrected() {
    let source = echo("\n[[fault]]\nkind = \"crash\"\nhosts = [\"sever\"]\nat = \"1s\"\n");
    assert_error(&source, (13, 9), "host pattern \"sever\" matches no host", "did you mean \"server\"?");
}

#[test]
fn a_fault_after_the_fault_phase_is_refused() {
    let source = echo("\n[[fault]]\nkind = \"crash\"\nhosts = [\"server\"]\nat = \"3s\"\n");
    assert_error(&source, (14, 6), "fault starts at 3s, but the fault phase ends at duration = 3s", "heal phase");
}

#[test]
fn a_key_of_another_fault_kind_is_refused() {
    let source = echo("\n[[fault]]\nkind = \"crash\"\nhosts = [\"server\"]\nat = \"1s\"\nlatency = \"5ms\"\n");
    assert_error(
        &source,
        (15, 11),
        "key \"latency\" does not apply to a fault of kind \"crash\"",
        "kind = \"latency\"",
    );
}

#[test]
fn between_takes_two_groups() {
    let source = echo("\n[[fault]]\nkind = \"partition\"\nbetween = [[\"server\"]]\nat = \"1s\"\n");
    assert_error(&source, (13, 11), "`between` takes exactly two host groups, found 1", "between = [[");
}

#[test]
fn a_sub_millisecond_tick_is_refused_with_the_reason() {
    let source = echo("").replace("heal = \"2s\"", "heal = \"2s\"\ntick = \"500us\"");
    assert_error(&source, (5, 8), "tick must be a whole number of milliseconds", "timer wheel");
}

#[test]
fn an_expectation_must_name_a_known_invariant() {
    let source = echo("\n[check]\nexpect = \"violation:echo-match\"\n");
    assert_error(&source, (12, 10), "unknown invariant \"echo-match\"", "did you mean \"echo-matches\"?");
}

#[test]
fn reached_events_must_be_ones_the_system_reports() {
    let source = echo("\n[check]\nreached = [\"server.started\"]\n");
    assert_error(&source, (12, 12), "unknown event \"server.started\" in reached", "did you mean \"server.start\"?");
}

#[test]
fn slo_metrics_and_thresholds_are_validated() {
    let source = echo("\n[slo]\navailabilty = \">= 99%\"\n");
    assert_error(&source, (12, 1), "unknown SLO metric \"availabilty\"", "did you mean \"availability\"?");
    let source = echo("\n[slo]\np99_latency = \"200ms\"\n");
    assert_error(&source, (12, 1), "p99_latency: expected a comparison", "");
}

#[test]
fn missing_sections_say_how_to_add_them() {
    let (_, message, help) = error_of("name = \"x\"\nsystem = \"echo\"\nduration = \"5s\"\n");
    assert!(message.contains("missing key \"workload\""), "{message}");
    assert!(help.contains("[workload]"), "{help}");
}

#[test]
fn the_sketch_layout_with_a_system_table_explains_the_fix() {
    let source = "name = \"x\"\nsystem = \"echo\"\n[system]\nttl = \"5s\"\n";
    let (at, _, help) = error_of(source);
    assert_eq!(at.map(|p| p.0), Some(3));
    assert!(help.contains("[knobs]"), "{help}");
}

#[test]
fn invalid_toml_is_located() {
    let (at, message, _) = error_of("name = \"x\nsystem = \"echo\"\n");
    assert_eq!(at.map(|p| p.0), Some(1), "{message}");
}

#[test]
fn too_few_requests_to_judge_liveness_is_its_own_verdict_not_a_silent_pass() {
    // No probe, and about one request after recover_within: liveness cannot judge.
    let source = echo("\n[metrics]\nprobe_interval = \"0s\"\n").replace("rate = \"100/s\"", "rate = \"1/s\"");
    let scratch = std::env::temp_dir().join(format!("faultline-thin-{}.toml", std::process::id()));
    std::fs::write(&scratch, &source).unwrap();
    let output = crate::support::faultline(&["run", scratch.to_str().unwrap(), "--seed", "1"]);
    let _ = std::fs::remove_file(&scratch);
    let out = crate::support::stdout(&output);
    assert_eq!(output.status.code(), Some(3), "{out}");
    assert!(out.contains("verdict: COULD NOT JUDGE"), "{out}");
    assert!(out.contains("liveness could not judge: only"), "{out}");
    // With the probe (echo has one), the probe's samples are evidence enough.
    let with_probe = echo("").replace("rate = \"100/s\"", "rate = \"1/s\"");
    let report = faultline_harness::drive::run_seed(&crate::support::scenario(&with_probe), 1, Default::default());
    assert!(report.passed, "{:?}", report.outcome);
}

#[test]
fn every_shipped_scenario_is_valid() {
    let output = crate::support::faultline(&["check", "scenarios"]);
    assert!(output.status.success(), "{}", crate::support::stderr(&output));
}

#[test]
fn crashes_act_on_system_hosts_only() {
    let source = echo("\n[[fault]]\nkind = \"crash\"\nhosts = [\"client-*\"]\nat = \"1s\"\n");
    assert_error(&source, (13, 9), "matches only workload clients, which cannot crash or restart", "server");
}

#[test]
fn a_zero_restart_delay_points_to_the_restart_kind() {
    let source = echo("\n[[fault]]\nkind = \"crash\"\nhosts = [\"server\"]\nat = \"1s\"\nrestart_after = \"0s\"\n");
    assert_error(&source, (15, 17), "restart_after must be longer than zero", "kind = \"restart\"");
}

#[test]
fn absurd_durations_and_seed_counts_are_refused() {
    let source = echo("").replace("duration = \"3s\"", "duration = \"400 days\"");
    assert_error(&source, (3, 12), "longer than the 30 days", "");
    let source = echo("").replace("heal = \"2s\"", "heal = \"2s\"\nseeds = 100000000000");
    assert_error(&source, (5, 9), "seeds must be between 1 and 10000000", "");
}

// The mistakes a new user made (issue 18), each with its position and help.

#[test]
fn a_fault_without_kind_or_at_is_reported_in_its_own_table() {
    let source = echo("\n[[fault]]\nhosts = [\"server\"]\nat = \"1s\"\n");
    assert_error(&source, (11, 1), "missing key \"kind\" in [[fault]]", "every [[fault]] needs a kind");
    let source = echo("\n[[fault]]\nkind = \"crash\"\nhosts = [\"server\"]\n");
    assert_error(&source, (11, 1), "missing key \"at\" in [[fault]]", "at = \"10s\"");
    // The same in an inline table names it.
    let source = echo("").replace("[workload]", "fault = [{ kind = \"crash\", hosts = [\"server\"] }]\n[workload]");
    let (_, message, _) = error_of(&source);
    assert!(message.contains("missing key \"at\" in the inline table \"fault\""), "{message}");
}

#[test]
fn an_unknown_table_is_named_whole() {
    let source = echo("\n[foo]\nx = 1\n");
    assert_error(&source, (11, 2), "unknown table [foo] at the top level", "valid keys: \"name\"");
    let source = echo("\n[workload.foo]\nx = 1\n");
    assert_error(&source, (11, 11), "unknown table [workload.foo]: [workload] has no key \"foo\"", "\"clients\"");
    let source = echo("\n[chaos.partiton]\nevery = \"1s\"\nfor = \"1s\"\n");
    assert_error(&source, (11, 8), "unknown table [chaos.partiton]", "did you mean \"partition\"?");
}

#[test]
fn a_key_missing_from_the_whole_file_is_at_the_top_level() {
    let (_, message, help) = error_of("[workload]\nrate = \"5/s\"\n");
    assert!(message.contains("missing key \"name\" at the top level"), "{message}");
    assert!(help.contains("name = "), "{help}");
}

#[test]
fn values_of_the_wrong_type_are_said_in_words() {
    let source = echo("").replace("clients = 2", "clients = \"two\"");
    assert_error(&source, (7, 11), "expected a whole number, found the string \"two\"", "clients = 2");
    let source = echo("\n[chaos]\nswarm = \"yes\"\n");
    assert_error(&source, (12, 9), "expected true or false, found the string \"yes\"", "swarm = true");
    let (_, message, _) = error_of(&echo("").replace("clients = 2", "clients = 2.5"));
    assert!(!message.contains("i64"), "{message}");
}

#[test]
fn a_rate_that_is_not_a_finite_number_says_so() {
    let source = echo("").replace("rate = \"100/s\"", "rate = \"NaN/s\"");
    assert_error(&source, (8, 8), "the count is not a number (NaN)", "\"200/s\"");
    let source = echo("").replace("rate = \"100/s\"", "rate = \"inf/s\"");
    assert_error(&source, (8, 8), "the count must be a finite number", "\"200/s\"");
    let source = echo("").replace("rate = \"100/s\"", "rate = \"-5/s\"");
    assert_error(&source, (8, 8), "a rate cannot be negative", "");
}

#[test]
fn a_negative_duration_says_durations_cannot_be_negative() {
    let source = echo("").replace("duration = \"3s\"", "duration = \"-5s\"");
    assert_error(&source, (3, 12), "\"-5s\" is negative: durations cannot be negative", "with a unit");
    let source = echo("").replace("deadline = \"300ms\"", "deadline = \"-1ms..5ms\"");
    let (_, message, _) = error_of(&source);
    assert!(message.contains("negative"), "{message}");
}

#[test]
fn a_partition_between_a_host_and_itself_is_refused() {
    let source = echo("\n[[fault]]\nkind = \"partition\"\nbetween = [[\"server\"], [\"server\"]]\nat = \"1s\"\n");
    assert_error(&source, (13, 11), "a link from a host to itself carries nothing", "two different host groups");
    // Overlapping groups that still cut some link are fine.
    parse(&echo(
        "\n[[fault]]\nkind = \"partition\"\nbetween = [[\"server\", \"client-0\"], [\"server\"]]\nat = \"1s\"\n",
    ))
    .unwrap();
}

#[test]
fn a_network_fault_that_isolates_every_host_is_refused() {
    let source = echo("\n[[fault]]\nkind = \"clog\"\nhosts = [\"*\"]\nat = \"1s\"\n");
    assert_error(&source, (13, 9), "these hosts are every host", "isolate some hosts");
}

#[test]
fn a_chaos_link_generator_over_one_host_is_refused() {
    let source = echo("\n[chaos.partition]\nhosts = [\"server\"]\nevery = \"1s\"\nfor = \"1s\"\n");
    assert_error(&source, (12, 9), "needs at least two hosts to split them in two groups", "leave `hosts` out");
    let source = echo("\n[chaos.latency]\nhosts = [\"client-*\"]\nevery = \"1s\"\nfor = \"1s\"\nlatency = \"5ms\"\n")
        .replace("clients = 2", "clients = 1");
    assert_error(&source, (12, 9), "[chaos.latency] acts on client-0 only", "");
}

#[test]
fn a_tick_longer_than_the_run_is_refused() {
    let source = echo("")
        .replace("duration = \"3s\"", "duration = \"50ms\"")
        .replace("heal = \"2s\"", "heal = \"2s\"\ntick = \"100ms\"");
    assert_error(&source, (5, 8), "tick 100ms is longer than duration = 50ms", "one simulation step");
}

#[test]
fn an_empty_invariant_list_is_a_warning_on_load() {
    let loaded = parse(&echo("\n[check]\ninvariants = []\n")).unwrap();
    let warnings: Vec<String> = loaded.scenario.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("test.toml:12:14: invariants = [] checks no invariant"), "{warnings:?}");
}

#[test]
fn the_network_fault_kinds_take_their_own_keys_only() {
    for ok in [
        "kind = \"blackhole\"\nhosts = [\"server\"]\nat = \"1s\"\nfor = \"1s\"",
        "kind = \"refuse\"\nbetween = [[\"server\"], [\"client-*\"]]\nat = \"1s\"",
        "kind = \"power-off\"\nhosts = [\"server\"]\nat = \"1s\"\nrestart_after = \"1s\"",
    ] {
        parse(&echo(&format!("\n[[fault]]\n{ok}\n"))).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    let (_, message, help) =
        error_of(&echo("\n[[fault]]\nkind = \"power-off\"\nhosts = [\"server\"]\nat = \"1s\"\nfor = \"1s\"\n"));
    assert!(message.contains("\"for\" does not apply to a fault of kind \"power-off\""), "{message}");
    assert!(help.contains("restart_after"), "{help}");
    let (_, message, _) =
        error_of(&echo("\n[[fault]]\nkind = \"blackhole\"\nhosts = [\"server\"]\nat = \"1s\"\noneway = true\n"));
    assert!(message.contains("a one-way blackhole needs `between`"), "{message}");
    let (_, message, help) =
        error_of(&echo("\n[[fault]]\nkind = \"refuse\"\nhosts = [\"server\"]\nat = \"1s\"\noneway = true\n"));
    assert!(message.contains("\"oneway\" does not apply to a fault of kind \"refuse\""), "{message}");
    assert!(help.contains("kind = \"blackhole\""), "{help}");
    parse(&echo(
        "\n[[fault]]\nkind = \"blackhole\"\nbetween = [[\"server\"], [\"client-*\"]]\noneway = true\nat = \"1s\"\n",
    ))
    .unwrap_or_else(|e| panic!("a one-way blackhole: {e}"));
    let (_, message, _) =
        error_of(&echo("\n[[fault]]\nkind = \"power-off\"\nbetween = [[\"server\"], [\"client-0\"]]\nat = \"1s\"\n"));
    assert!(message.contains("a power-off fault acts on hosts, not links"), "{message}");
}

#[test]
fn the_blackhole_and_power_off_generators_are_checked_like_their_siblings() {
    parse(&echo(
        "\n[chaos]\nblackhole = { every = \"1s\", for = \"100ms..1s\" }\n\
         power-off = { hosts = [\"server\"], mtbf = \"2s\", mttr = \"300ms\" }\n",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let source = echo("\n[chaos.blackhole]\nhosts = [\"server\"]\nevery = \"1s\"\nfor = \"1s\"\n");
    assert_error(
        &source,
        (12, 9),
        "[chaos.blackhole] acts on server only, and needs at least two hosts to split them",
        "",
    );
    let source = echo("\n[chaos.blackhole]\nevery = \"1s\"\nfor = \"1s\"\nrate = 0.5\n");
    assert_error(&source, (14, 8), "key \"rate\" does not apply to [chaos.blackhole]", "");
    let source = echo("\n[chaos.blackhole]\nevery = \"0s\"\nfor = \"1s\"\n");
    assert_error(&source, (12, 9), "every must be longer than zero", "");
    let source = echo("\n[chaos.power-off]\nhosts = [\"server\"]\nmtbf = \"1s\"\nmttf = \"1s\"\n");
    let (at, message, help) = error_of(&source);
    assert_eq!(at.map(|(line, _)| line), Some(14), "{message}");
    assert!(message.contains("mttf") && help.contains("mttr"), "{message} / {help}");
    let source = echo("\n[chaos.power-off]\nhosts = [\"client-0\"]\nmtbf = \"1s\"\nmttr = \"1s\"\n");
    let (at, message, _) = error_of(&source);
    assert_eq!(at.map(|(line, _)| line), Some(12), "{message}");
    let source = echo("\n[chaos.blackhol]\nevery = \"1s\"\nfor = \"1s\"\n");
    assert_error(&source, (11, 8), "unknown table [chaos.blackhol]", "did you mean \"blackhole\"?");
}
