//! Every kind of mistake in a figure specification is rejected before
//! anything runs, with the file, line and column, and what was expected.

mod common;

use std::path::Path;

use learning_dynamics::spec;

/// Applies `edit` (a replacement of `from` by `to` in the small spec), parses
/// the result and checks the first error's line and message.
fn check(from: &str, to: &str, line: usize, expect: &str) {
    let base = common::small_spec_text();
    assert!(base.contains(from), "the small spec has no {from:?}");
    let text = base.replacen(from, to, 1);
    let errors = match spec::parse(Path::new("paper.toml"), &text) {
        Ok(_) => panic!("accepted a spec with {to:?}"),
        Err(e) => e,
    };
    let first = &errors.0[0];
    let shown = errors.to_string();
    assert!(shown.contains(expect), "message for {to:?} does not mention {expect:?}:\n{shown}");
    assert_eq!(first.line, line, "wrong line for {to:?}:\n{shown}");
    assert!(shown.starts_with(&format!("paper.toml:{line}:")), "no file:line prefix:\n{shown}");
    assert!(shown.contains("nothing was run or written"));
}

fn line_of(needle: &str) -> usize {
    let text = common::small_spec_text();
    let at = text.find(needle).unwrap();
    text[..at].matches('\n').count() + 1
}

#[test]
fn the_small_spec_is_valid() {
    let paper = common::small_paper();
    assert_eq!(paper.figures.len(), 2);
}

#[test]
fn syntax_error() {
    check("input_dim = 2", "input_dim = = 2", line_of("input_dim = 2"), "extra `=`, expected nothing");
}

#[test]
fn unknown_key() {
    check("input_dim = 2", "input_dim = 2\ninput_dims = 3", line_of("input_dim = 2") + 1, "unknown field `input_dims`");
}

#[test]
fn wrong_type() {
    check(
        "input_norm = 1.0",
        "input_norm = \"one\"",
        line_of("input_norm = 1.0"),
        "invalid value \"one\": expected a finite number > 0",
    );
    check("loss = \"cross_entropy\"", "loss = 1", line_of("loss = \"cross_entropy\""), "wanted string or table");
}

#[test]
fn missing_value() {
    check("input_norm = 1.0\n", "", line_of("[figure.experiment.phase_diagram]"), "missing field `input_norm`");
}

#[test]
fn negative_rate() {
    check(
        "learning_rate = 0.01",
        "learning_rate = -0.01",
        line_of("learning_rate = 0.01"),
        "expected a finite number > 0",
    );
}

#[test]
fn zero_seeds() {
    check("seed_count = 2", "seed_count = 0", line_of("seed_count = 2"), "expected a whole number >= 1");
}

#[test]
fn a_negative_or_fractional_count_says_what_a_count_is() {
    // Not serde's "invalid value: integer `-3`, expected u64".
    for bad in ["-3", "2.5", "\"two\""] {
        let to = format!("seed_count = {bad}");
        check(
            "seed_count = 2",
            &to,
            line_of("seed_count = 2"),
            &format!("invalid value {bad}: expected a whole number >= 1"),
        );
        let shown = spec::parse(Path::new("paper.toml"), &common::small_spec_text().replacen("seed_count = 2", &to, 1))
            .unwrap_err()
            .to_string();
        assert!(!shown.contains("u64"), "{shown}");
    }
}

#[test]
fn a_misspelt_key_or_kind_gets_the_nearest_name() {
    check("input_dim = 2", "input_dimm = 2", line_of("input_dim = 2"), "did you mean `input_dim`?");
    check(
        "learning_rate = 0.01",
        "learnin_rate = 0.01",
        line_of("learning_rate = 0.01"),
        "did you mean `learning_rate`?",
    );
    check(
        "[figure.experiment.phase_diagram]",
        "[figure.experiment.phase_diagrams]",
        line_of("[figure.experiment.phase_diagram]"),
        "did you mean `phase_diagram`?",
    );
    // Nothing near: no guess.
    let text = common::small_spec_text().replacen("input_dim = 2", "input_dim = 2\nzzz = 1", 1);
    let shown = spec::parse(Path::new("paper.toml"), &text).unwrap_err().to_string();
    assert!(shown.contains("unknown field `zzz`") && !shown.contains("did you mean"), "{shown}");
}

#[test]
fn nearest_names() {
    use learning_dynamics::suggest::nearest;
    let keys = ["learning_rate", "seed_count", "steps", "log_points", "points"];
    assert_eq!(nearest("learnin_rate", keys), Some("learning_rate"));
    assert_eq!(nearest("seeds", keys), Some("seed_count"));
    assert_eq!(nearest("log_point", keys), Some("log_points"));
    assert_eq!(nearest("STEPS", keys), Some("steps"));
    assert_eq!(nearest("width", keys), None);
    assert_eq!(nearest("lr", keys), None);
}

/// Four mistakes of different kinds in one file (a bad rate, a negative
/// count, a misspelt key and a rule between two fields), each in one of two
/// figures, are all reported in one round, in file order, each at its line.
#[test]
fn four_planted_mistakes_are_reported_in_one_round() {
    let width = "name = \"depth 2, aligned\"\ndepth = 2\nwidth = 8";
    let text = common::small_spec_text()
        .replacen("learning_rate = 0.01", "learning_rate = -0.01", 1)
        .replacen("log_points = 40", "log_point = 40", 1)
        .replacen("seed_count = 3", "seed_count = -3", 1)
        .replacen(width, "name = \"depth 2, aligned\"\ndepth = 2\nwidth = 9", 1);
    let errors = spec::parse(Path::new("paper.toml"), &text).unwrap_err();
    let shown = errors.to_string();
    let found: Vec<(usize, bool)> = [
        ("learning_rate = 0.01", "invalid value -0.01: expected a finite number > 0"),
        ("log_points = 40", "unknown field `log_point`"),
        ("seed_count = 3", "invalid value -3: expected a whole number >= 1"),
        (width, "aligned init needs width = points = 8, got 9"),
    ]
    .iter()
    .map(|(at, message)| {
        let line = line_of(at) + if at.starts_with("name") { 2 } else { 0 };
        (line, errors.0.iter().any(|e| e.line == line && e.message.contains(message)))
    })
    .collect();
    assert!(found.iter().all(|(_, ok)| *ok), "{found:?}\n{shown}");
    assert_eq!(errors.0.len(), 4, "{shown}");
    assert!(shown.contains("did you mean `log_points`?"), "{shown}");
}

/// The other figure's claims and rules are still checked when one figure
/// has a bad value; rules that involve a bad value are not guessed at.
#[test]
fn a_bad_value_hides_no_problem_of_other_figures_and_invents_none() {
    let text = common::small_spec_text()
        .replacen("points = 8", "points = 0", 1)
        .replacen("than = \"linear\"", "than = \"lineal\"", 1)
        .replacen("z_min = -2.0", "z_min = 1.0", 1);
    let errors = spec::parse(Path::new("paper.toml"), &text).unwrap_err();
    let shown = errors.to_string();
    assert!(shown.contains("invalid value 0: expected a whole number >= 1"), "{shown}");
    assert!(shown.contains("expected z_min < 0 < z_max"), "{shown}");
    // The aligned models' width = points rule would only see the stand-in for points.
    assert!(!shown.contains("width = points"), "{shown}");
    // The claim naming a series is in the figure with the bad value, and the
    // series names do not depend on points: it is reported.
    assert!(shown.contains("\"lineal\""), "{shown}");
}

#[test]
fn duplicate_id() {
    check(
        "id = \"sigmoid-error\"",
        "id = \"phase-diagram\"",
        line_of("id = \"sigmoid-error\""),
        "duplicate figure id \"phase-diagram\" (first defined on line 4)",
    );
}

#[test]
fn bad_id() {
    check("id = \"sigmoid-error\"", "id = \"Sigmoid Error\"", line_of("id = \"sigmoid-error\""), "invalid figure id");
}

#[test]
fn unknown_experiment_kind() {
    check(
        "[figure.experiment.phase_diagram]",
        "[figure.experiment.phase_diagrams]",
        line_of("[figure.experiment.phase_diagram]"),
        "unknown variant `phase_diagrams`",
    );
}

#[test]
fn unknown_experiment_kind_with_sub_tables() {
    // The models' `[[figure.experiment.sigmoid.model]]` still name the right
    // kind, so `experiment` holds two: the message says so and lists the kinds.
    check(
        "[figure.experiment.sigmoid]",
        "[figure.experiment.sigmoidal]",
        line_of("[figure.experiment.sigmoid]"),
        "`experiment` must name exactly one kind, found several kinds (is one misspelt?): expected one of `phase_diagram`, `sigmoid`, `chain`",
    );
}

#[test]
fn two_checks_in_one_claim() {
    let from = "check.sharper = { series = \"depth 2, aligned\", than = \"linear\" }";
    check(
        from,
        &format!("{from}\ncheck.at_most = {{ scalar = \"x\", max = 1.0 }}"),
        line_of(from),
        "`check` must name exactly one kind, found several kinds (is one misspelt?): expected one of `at_least`, `at_most`, `between`, `logistic_beats_exponential`, `drop_width`, `sharper`",
    );
}

#[test]
fn claim_names_a_missing_series() {
    check(
        "than = \"linear\"",
        "than = \"lineal\"",
        line_of("than = \"linear\""),
        "names series \"lineal\", which figure \"sigmoid-error\" does not produce",
    );
}

#[test]
fn claim_names_a_missing_scalar() {
    check(
        "scalar = \"grid agreement\"",
        "scalar = \"grid agreemnt\"",
        line_of("scalar = \"grid agreement\""),
        "names scalar \"grid agreemnt\"",
    );
}

#[test]
fn drop_width_needs_a_series() {
    let from = "check.drop_width = { series = [";
    let text = common::small_spec_text();
    let start = text.find(from).unwrap();
    let end = start + text[start..].find(']').unwrap();
    check(&text[start..=end], "check.drop_width = { series = []", line_of(from), "expected at least one series");
}

#[test]
fn claim_marked_not_holding_needs_a_reason() {
    let from = "check.at_least = { scalar = \"grid agreement\", min = 1.0 }";
    let class = "class = \"consistency\"";
    let text = common::small_spec_text();
    let at = text.find(from).unwrap();
    // The class line of the claim whose check is `from`: the last one before it.
    let class_at = text[..at].rfind(class).unwrap();
    let line = text[..class_at].matches('\n').count() + 1;
    check(
        &text[class_at..at + from.len()],
        &text[class_at..at + from.len()].replacen(class, "class = \"finding\"", 1),
        line,
        "expected a `reason`",
    );
}

#[test]
fn cross_value_problems_point_at_the_field_to_change() {
    check("z_min = -2.0", "z_min = 1.0", line_of("z_min = -2.0"), "expected z_min < 0 < z_max");
    // A rule a kind states without naming a field still points at the figure.
    check("input_dim = 2", "input_dim = 1", line_of("input_dim = 2"), "input_dim: must be at least 2");
}

#[test]
fn aligned_init_needs_a_square_width() {
    let from = "name = \"depth 2, aligned\"\ndepth = 2\nwidth = 8";
    check(
        from,
        "name = \"depth 2, aligned\"\ndepth = 2\nwidth = 9",
        line_of(from) + 2,
        "model[1].width: aligned init needs width = points = 8, got 9",
    );
}

#[test]
fn all_problems_are_reported_at_once() {
    let text = common::small_spec_text()
        .replace("z_min = -2.0", "z_min = 1.0")
        .replace("than = \"linear\"", "than = \"lineal\"");
    let errors = spec::parse(Path::new("paper.toml"), &text).unwrap_err();
    let shown = errors.to_string();
    assert!(shown.contains("expected z_min < 0 < z_max") && shown.contains("\"lineal\""), "{shown}");
}

#[test]
fn the_caret_points_at_the_column() {
    let text = common::small_spec_text().replace("learning_rate = 0.01", "learning_rate = -0.01");
    let e = &spec::parse(Path::new("paper.toml"), &text).unwrap_err().0[0];
    assert_eq!(e.column, "learning_rate = ".len() + 1);
    assert_eq!(e.source_line, "learning_rate = -0.01");
}

#[test]
fn an_order_of_one_scalar_cannot_fail_so_it_is_rejected() {
    let from = "check.at_most = { scalar = \"linear: largest gap to theory (points)\", max = 2.0 }";
    check(
        from,
        "check.increasing = { scalars = [\"linear: largest gap to theory (points)\"] }",
        line_of(from),
        "expected at least two scalars to order",
    );
}

#[test]
fn a_tolerance_must_be_finite_and_not_negative() {
    let from = "check.at_most = { scalar = \"linear: largest gap to theory (points)\", max = 2.0 }";
    for tolerance in ["-0.1", "inf", "nan"] {
        let to = format!("check.near = {{ scalar = \"linear: largest gap to theory (points)\", value = 1.0, tolerance = {tolerance} }}");
        check(from, &to, line_of(from), "expected a finite value and a finite tolerance >= 0");
    }
}

/// A problem with one element of a list points at that element; a kind that
/// trains through another's table (spectral decoupling's `starvation`)
/// points into it.
#[test]
fn a_problem_with_a_list_element_points_at_the_element() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/small_kinds.toml");
    let base = std::fs::read_to_string(path).unwrap();
    for (from, to, expect) in [
        ("frequencies = [0.1, 0.5]", "frequencies = [0.1, 0.55]", "frequencies[1]: 0.55 is not a positive multiple"),
        ("frequencies = [0.2]", "frequencies = [0.25]", "starvation: frequencies[0]: 0.25 is not a positive multiple"),
        ("trajectory_norm = 1.0", "trajectory_norm = 3.0", "trajectory_norm: 3 is not one of the norms"),
    ] {
        let text = base.replacen(from, to, 1);
        let errors = spec::parse(Path::new("kinds.toml"), &text).unwrap_err();
        let e = &errors.0[0];
        let (line_start, value) = (text.find(to).unwrap(), to.rsplit([' ', '[']).next().unwrap().trim_end_matches(']'));
        let line = text[..line_start].matches('\n').count() + 1;
        assert!(e.message.contains(expect) && e.line == line, "{expect}:\n{errors}");
        if to.starts_with("frequencies") {
            assert_eq!(e.column, to.find(value).unwrap() + 1, "at the element:\n{errors}");
        }
    }
}

#[test]
fn a_publication_width_is_column_or_page() {
    check(
        "[figure.render]",
        "[figure.publication]\nwidth = \"half\"\n\n[figure.render]",
        line_of("[figure.render]") + 1,
        "expected `column` or `page`",
    );
}

/// More runs than a figure has colours for is refused when the spec is
/// loaded, not after training when the legend rule would refuse the figure.
#[test]
fn more_runs_than_colours_is_refused_at_load() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/small_kinds.toml");
    let base = std::fs::read_to_string(path).unwrap();
    for (from, to, expect) in [
        ("class_counts = [2, 5]", "class_counts = [2, 3, 4, 5]", "class_counts: expected at most 3 counts"),
        ("frequencies = [0.1, 0.5]", "frequencies = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]", "expected at most 6"),
    ] {
        assert!(base.contains(from), "{from}");
        let errors = spec::parse(Path::new("kinds.toml"), &base.replacen(from, to, 1)).unwrap_err();
        assert!(errors.0.iter().any(|e| e.message.contains(expect)), "{expect}:\n{errors}");
    }
    assert!(spec::parse(Path::new("kinds.toml"), &base).is_ok(), "the unchanged spec loads");
}
