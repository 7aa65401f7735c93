//! The figure lint (src/lint.rs): each rule refuses a small hand-built
//! figure with the defect planted and accepts the same figure without it;
//! the colour science against published values; the gallery's tables as
//! written; and `cargo xtask lint` on a figures folder.

mod common;

use learning_dynamics::figure::{
    palette, Band, ClaimClass, ClaimResult, ControlResult, FigureBody, FigureData, Panel, Provenance, Series, Source,
    Style,
};
use learning_dynamics::lint::{self, Drawing, Problem, Rule, Vision};
use learning_dynamics::spec::{PublicationSpec, PublicationWidth, RenderSpec};
use learning_dynamics::{gallery, pipeline, publication, render};

// ---------------------------------------------------------------------------
// Hand-built figures

fn figure(panels: Vec<Panel>, series: Vec<Series>) -> FigureData {
    FigureData {
        id: "test-figure".into(),
        title: "A test figure".into(),
        caption: "Curves.".into(),
        provenance: Provenance {
            key: "ab".repeat(32),
            code_fingerprint: "cd".repeat(32),
            commit: "0123456".into(),
            dirty: false,
            config: serde_json::json!({}),
            seeds: vec![1],
            toolchain: "rustc".into(),
            files: Default::default(),
        },
        body: FigureBody { panels, series, ..Default::default() },
        claims: Vec::new(),
    }
}

fn screen() -> RenderSpec {
    serde_json::from_value(serde_json::json!({"width": 1200, "height": 520})).unwrap()
}

fn page() -> PublicationSpec {
    PublicationSpec { width: PublicationWidth::Page }
}

fn problems(fig: &FigureData) -> Vec<Problem> {
    lint::figure(fig, &screen(), &page()).unwrap()
}

/// The problems of one rule, as (series, what).
fn of(rule: Rule, fig: &FigureData) -> Vec<(Option<String>, String)> {
    problems(fig).into_iter().filter(|p| p.rule == rule).map(|p| (p.series, p.what)).collect()
}

fn xs() -> Vec<f64> {
    (0..60).map(|i| i as f64 / 6.0).collect()
}

fn falling() -> Vec<f64> {
    xs().iter().map(|x| 1.0 / (1.0 + x)).collect()
}

fn rising() -> Vec<f64> {
    xs().iter().map(|x| x / (1.0 + x)).collect()
}

fn measured(name: &str, color: &str, y: Vec<f64>) -> Series {
    Series::line(name, 0, Source::Measured, color, xs(), y)
}

fn panel() -> Panel {
    Panel::new("curves", "x", "y")
}

/// Two measured curves that cross once, in blue and vermillion: nothing to refuse.
fn clean() -> FigureData {
    figure(
        vec![panel()],
        vec![measured("falling", palette::BLUE, falling()), measured("rising", palette::VERMILLION, rising())],
    )
}

#[test]
fn the_clean_figure_has_no_problem() {
    assert_eq!(problems(&clean()), Vec::<Problem>::new());
}

// ---------------------------------------------------------------------------
// 1. Hidden series

/// Data units of y per pixel of the publication PNG, in panel 0 of `fig`.
fn y_per_png_pixel(fig: &FigureData) -> f64 {
    let layout = publication::layout(fig, &page()).unwrap();
    layout.panels[0].units_per_pixel().1 / layout.png_pixels_per_unit
}

#[test]
fn a_series_drawn_under_a_later_one_is_refused_and_one_beside_it_accepted() {
    // "rising" replaced by a copy of "falling" drawn over it.
    let copy = |offset_px: f64| {
        let per_px = y_per_png_pixel(&clean());
        let y = falling().iter().map(|y| y + offset_px * per_px).collect();
        figure(
            vec![panel()],
            vec![measured("falling", palette::BLUE, falling()), measured("rising", palette::VERMILLION, y)],
        )
    };
    for offset in [0.0, 1.0] {
        let found = of(Rule::Hidden, &copy(offset));
        assert_eq!(found.len(), 1, "{offset} px apart: {found:?}");
        let (series, what) = &found[0];
        assert_eq!(series.as_deref(), Some("falling"), "the series drawn first is the hidden one");
        assert!(what.contains("\"rising\"") && what.contains("100%"), "{what}");
    }
    // Four pixels apart, a reader sees both.
    assert_eq!(of(Rule::Hidden, &copy(4.0)), vec![]);
    assert_eq!(of(Rule::Hidden, &clean()), vec![]);
}

#[test]
fn a_dashed_theory_over_its_measurement_shows_it_unless_in_the_same_colour() {
    let theory = Series::theory("falling (theory)", 0, xs(), falling());
    // Black dashes over blue: the blue shows in every gap.
    let black = figure(vec![panel()], vec![measured("falling", palette::BLUE, falling()), theory.clone()]);
    assert_eq!(of(Rule::Hidden, &black), vec![]);
    // Blue dashes over blue read as one solid line: the measurement is hidden.
    let blue = Series { color: palette::BLUE.into(), ..theory.clone() };
    let same = figure(vec![panel()], vec![measured("falling", palette::BLUE, falling()), blue.clone()]);
    let found = of(Rule::Hidden, &same);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0.as_deref(), Some("falling"));
    // Declared identical, with distinct marks (solid and dashed): accepted.
    let declared =
        figure(vec![panel()], vec![measured("falling", palette::BLUE, falling()), blue.identical_to("falling")]);
    assert_eq!(of(Rule::Hidden, &declared), vec![]);
}

#[test]
fn a_declared_identity_needs_distinct_marks_and_an_existing_partner() {
    // Two solid lines declared identical are still one over the other.
    let same_mark = figure(
        vec![panel()],
        vec![
            measured("falling", palette::BLUE, falling()),
            measured("rising", palette::VERMILLION, falling()).identical_to("falling"),
        ],
    );
    assert_eq!(of(Rule::Hidden, &same_mark).len(), 1);
    // A declaration naming no series of the panel is refused.
    let missing = figure(
        vec![panel()],
        vec![
            measured("falling", palette::BLUE, falling()),
            measured("rising", palette::VERMILLION, rising()).identical_to("gone"),
        ],
    );
    let found = of(Rule::Hidden, &missing);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].1.contains("\"gone\""), "{}", found[0].1);
}

// ---------------------------------------------------------------------------
// 2. Clipping

#[test]
fn data_outside_a_fixed_range_is_refused() {
    let fixed = || panel().y_range(0.0, 1.0);
    let inside = figure(
        vec![fixed()],
        vec![measured("falling", palette::BLUE, falling()), measured("rising", palette::VERMILLION, rising())],
    );
    assert_eq!(of(Rule::Clipped, &inside), vec![]);
    // One value above the top of the axis.
    let mut high = rising();
    high[30] = 1.3;
    let outside = figure(
        vec![fixed()],
        vec![measured("falling", palette::BLUE, falling()), measured("rising", palette::VERMILLION, high)],
    );
    let found = of(Rule::Clipped, &outside);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0.as_deref(), Some("rising"));
    assert!(found[0].1.contains("1 of its y values") && found[0].1.contains("1.3"), "{}", found[0].1);
    // A band is drawn too: its edge past the axis is cut off.
    let band = Band { what: "min-max".into(), lo: falling(), hi: falling().iter().map(|y| y + 0.2).collect() };
    let banded = figure(vec![fixed()], vec![measured("falling", palette::BLUE, falling()).with_band(band)]);
    assert_eq!(of(Rule::Clipped, &banded).len(), 1);
    // A fixed x range too.
    let narrow = figure(vec![panel().x_range(0.0, 5.0)], vec![measured("falling", palette::BLUE, falling())]);
    assert_eq!(of(Rule::Clipped, &narrow).len(), 1);
    // A region's fill reaching past the axes is cut by the frame on purpose.
    let region = Series::line("region", 0, Source::Theory, palette::GREEN, vec![0.0, 20.0, 20.0], vec![0.0, 0.0, 5.0])
        .styled(Style::Area);
    let fill = figure(vec![fixed()], vec![region, measured("falling", palette::BLUE, falling())]);
    assert_eq!(of(Rule::Clipped, &fill), vec![]);
}

// ---------------------------------------------------------------------------
// 3. Promises with nothing drawn

#[test]
fn a_legend_entry_whose_series_draws_nothing_is_refused() {
    let empty = Series::line("no points", 0, Source::Measured, palette::VERMILLION, vec![], vec![]);
    let fig = figure(vec![panel()], vec![measured("falling", palette::BLUE, falling()), empty]);
    let found = of(Rule::Promise, &fig);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0.as_deref(), Some("no points"));
    // On a log axis, values <= 0 cannot be shown: nothing is drawn either.
    let negative: Vec<f64> = falling().iter().map(|y| -y).collect();
    let log = figure(
        vec![panel().log_y()],
        vec![measured("falling", palette::BLUE, falling()), measured("negative", palette::VERMILLION, negative)],
    );
    assert_eq!(of(Rule::Promise, &log).len(), 1);
    assert_eq!(of(Rule::Promise, &clean()), vec![]);
}

#[test]
fn a_band_promised_but_not_drawn_is_refused() {
    let with = |band: Band| figure(vec![panel()], vec![measured("falling", palette::BLUE, falling()).with_band(band)]);
    let band = |lo: Vec<f64>, hi: Vec<f64>| Band { what: "min-max over 8 seeds".into(), lo, hi };
    let wide = band(falling().iter().map(|y| y - 0.05).collect(), falling().iter().map(|y| y + 0.05).collect());
    assert_eq!(of(Rule::Promise, &with(wide)), vec![]);
    // Eight seeds that all agree: the legend says "(band: ...)", and no band shows.
    let flat = of(Rule::Promise, &with(band(falling(), falling())));
    assert_eq!(flat.len(), 1, "{flat:?}");
    assert!(flat[0].1.contains("min-max over 8 seeds") && flat[0].1.contains("no width"), "{}", flat[0].1);
    assert_eq!(of(Rule::Promise, &with(band(vec![], vec![]))).len(), 1);
    // A legend label that speaks of a band, with none.
    let label =
        figure(vec![panel()], vec![measured("falling", palette::BLUE, falling()).legend_label("mean (band: seeds)")]);
    assert_eq!(of(Rule::Promise, &label).len(), 1);
}

#[test]
fn a_caption_about_a_band_needs_one() {
    let mut fig = clean();
    fig.caption = "The shaded bands span the seeds.".into();
    let found: Vec<Problem> = problems(&fig).into_iter().filter(|p| p.rule == Rule::Promise).collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].panel.clone(), found[0].series.clone()), (None, None), "the whole figure");
    fig.body.series[0].band =
        Some(Band { what: "min-max".into(), lo: falling().iter().map(|y| y - 0.05).collect(), hi: falling() });
    assert_eq!(of(Rule::Promise, &fig), vec![]);
    // "bandwidth" is another word.
    let mut other = clean();
    other.caption = "At a bandwidth of 3.".into();
    assert_eq!(of(Rule::Promise, &other), vec![]);
}

// ---------------------------------------------------------------------------
// 4. Colour

fn two_colours(a: &str, b: &str) -> FigureData {
    figure(vec![panel()], vec![measured("falling", a, falling()), measured("rising", b, rising())])
}

#[test]
fn ciede2000_matches_sharma_wu_and_dalal() {
    // Pairs 1, 7, 13, 17 and 25 of their test data (2005), to four decimals.
    let pairs = [
        ([50.0, 2.6772, -79.7751], [50.0, 0.0, -82.7485], 2.0425),
        ([50.0, 0.0, 0.0], [50.0, -1.0, 2.0], 2.3669),
        ([50.0, 2.49, -0.001], [50.0, -2.49, 0.0009], 7.1792),
        ([50.0, 2.5, 0.0], [73.0, 25.0, -18.0], 27.1492),
        ([60.2574, -34.0099, 36.2677], [60.4626, -34.1751, 39.4387], 1.2644),
    ];
    for (a, b, expected) in pairs {
        let d = lint::ciede2000(a, b);
        assert!((d - expected).abs() < 1e-4, "{a:?} {b:?}: {d}, expected {expected}");
        assert!((lint::ciede2000(b, a) - expected).abs() < 1e-4, "symmetric");
    }
    // sRGB white is L = 100, a = b = 0.
    let white = lint::lab("#FFFFFF").unwrap();
    assert!((white[0] - 100.0).abs() < 1e-3 && white[1].abs() < 1e-3 && white[2].abs() < 1e-3, "{white:?}");
}

#[test]
fn colours_too_close_are_refused_also_under_deuteranopia_and_protanopia() {
    // Two blues a reader cannot tell apart.
    let found = of(Rule::Colour, &two_colours("#0072B2", "#0077BB"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].1.contains("normal vision"), "{}", found[0].1);
    // Red and green: far apart for most readers, one colour with deuteranopia.
    assert!(lint::distance_in(Vision::Normal, "#D62728", "#2CA02C").unwrap() > 50.0);
    let found = of(Rule::Colour, &two_colours("#D62728", "#2CA02C"));
    assert!(found.len() == 1 && found[0].1.contains("deuteranopia"), "{found:?}");
    // Orange and green: one colour with protanopia.
    let found = of(Rule::Colour, &two_colours("#FF7F0E", "#2CA02C"));
    assert!(found.len() == 1 && found[0].1.contains("protanopia"), "{found:?}");
    // Accepted: two blues in different marks (a line and its points), or under one label.
    let marks = figure(
        vec![panel()],
        vec![measured("falling", "#0072B2", falling()), Series::points("rising", 0, "#0077BB", xs(), rising())],
    );
    assert_eq!(of(Rule::Colour, &marks), vec![]);
    let one_label = figure(
        vec![panel()],
        vec![
            measured("falling", "#0072B2", falling()).legend_label("seed 1"),
            measured("rising", "#0077BB", rising()).legend_label("seed 1"),
        ],
    );
    assert_eq!(of(Rule::Colour, &one_label), vec![]);
}

#[test]
fn the_okabe_ito_colours_pass_together_and_yellow_is_too_faint() {
    let colours = [
        palette::BLUE,
        palette::VERMILLION,
        palette::GREEN,
        palette::ORANGE,
        palette::SKY_BLUE,
        palette::PURPLE,
        palette::BLACK,
    ];
    let series = colours
        .iter()
        .enumerate()
        .map(|(k, c)| measured(&format!("curve {k}"), c, falling().iter().map(|y| y + k as f64).collect()))
        .collect();
    assert_eq!(of(Rule::Colour, &figure(vec![panel()], series)), vec![]);
    let found = of(Rule::Colour, &two_colours(palette::BLUE, palette::YELLOW));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].0.as_deref() == Some("rising") && found[0].1.contains("contrast of 1.32"), "{found:?}");
    // The thresholds as documented: sky blue, the faintest accepted.
    let contrast = |c: &str| lint::contrast_on_white(c).unwrap();
    assert!(contrast(palette::SKY_BLUE) >= lint::MIN_CONTRAST && contrast(palette::ORANGE) >= lint::MIN_CONTRAST);
    assert!(contrast(palette::YELLOW) < lint::MIN_CONTRAST);
    // Fills and grey background lines are not read by their colour.
    let fill = Series::line("region", 0, Source::Theory, palette::YELLOW, vec![0.0, 5.0, 5.0], vec![0.0, 0.0, 1.0])
        .styled(Style::Area);
    let grey =
        Series::line("streamline", 0, Source::Theory, palette::GREY, xs(), rising().iter().map(|y| y + 0.01).collect());
    let background = figure(vec![panel()], vec![fill, grey, measured("falling", palette::PURPLE, falling())]);
    assert_eq!(of(Rule::Colour, &background), vec![]);
}

// ---------------------------------------------------------------------------
// 5. Equal aspect

/// A unit circle and a line ten times as wide: points in the plane.
fn plane(equal: bool) -> FigureData {
    let t: Vec<f64> = (0..=40).map(|i| i as f64 * std::f64::consts::TAU / 40.0).collect();
    let p = Panel::new("the plane", "x1", "x2");
    let p = if equal { p.equal_aspect() } else { p };
    let circle = Series::points(
        "circle",
        0,
        palette::BLUE,
        t.iter().map(|t| t.cos()).collect(),
        t.iter().map(|t| t.sin()).collect(),
    );
    let axis = Series::line("axis", 0, Source::Measured, palette::VERMILLION, vec![-10.0, 10.0], vec![0.0, 0.0]);
    figure(vec![p], vec![circle, axis])
}

fn drawing(fig: &FigureData) -> Drawing {
    Drawing {
        screen: render::drawn_panels(fig, &screen()).unwrap(),
        publication: publication::layout(fig, &page()).unwrap(),
    }
}

#[test]
fn both_renderers_draw_an_equal_aspect_panel_with_one_scale() {
    let fig = plane(true);
    let drawn = drawing(&fig);
    for panel in [&drawn.screen[0], &drawn.publication.panels[0]] {
        let (across, up) = panel.units_per_pixel();
        assert!((across / up - 1.0).abs() < 0.01, "{across} {up}");
        // The shorter range (y, -1 to 1) was widened; x still spans the data.
        assert!(panel.y_range.1 - panel.y_range.0 > 2.2 && panel.x_range.0 <= -10.0, "{panel:?}");
    }
    assert_eq!(lint::check(&fig, &drawn), vec![]);
    // Without the flag the same data is stretched to fill the axes.
    let free = drawing(&plane(false));
    let (across, up) = free.publication.panels[0].units_per_pixel();
    assert!((across / up - 1.0).abs() > 0.5, "{across} {up}");
}

#[test]
fn an_equal_aspect_panel_drawn_with_two_scales_is_refused() {
    let fig = plane(true);
    // As a renderer that ignored the flag would draw it: y stretched half as much again.
    let mut drawn = drawing(&fig);
    let (lo, hi) = drawn.publication.panels[0].y_range;
    drawn.publication.panels[0].y_range = (lo * 1.5, hi * 1.5);
    let found: Vec<Problem> = lint::check(&fig, &drawn).into_iter().filter(|p| p.rule == Rule::Aspect).collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].what.contains("publication variant") && found[0].panel == Some((0, "the plane".into())));
    // The same drawing is fine for a panel that does not ask for one scale.
    let free = plane(false);
    assert_eq!(lint::check(&free, &drawn).into_iter().filter(|p| p.rule == Rule::Aspect).count(), 0);
}

// ---------------------------------------------------------------------------
// 6. Text

#[test]
fn a_title_wrapping_to_a_lone_number_is_refused() {
    let with_title = |title: &str| {
        let mut fig = clean();
        fig.body.panels[0].title = title.to_string();
        fig
    };
    // The title's size and room as the layout sets them; words added until
    // "lr 0.01" breaks before its number.
    let layout = publication::layout(&clean(), &page()).unwrap();
    let room = layout.texts.iter().find(|t| t.what == "panel title").unwrap();
    let mut words = String::from("cross-entropy loss, learning rate");
    let widow = loop {
        let title = format!("{words} 0.01");
        let lines = publication::wrap(&title, room.pt, room.room);
        if lines.last().map(String::as_str) == Some("0.01") {
            break title;
        }
        assert!(words.len() < 400, "no wrap left 0.01 alone");
        words.push_str(" w");
    };
    let found = of(Rule::Text, &with_title(&widow));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].1.contains("lone \"0.01\"") && found[0].1.contains("panel title"), "{}", found[0].1);
    // The same title without its last words fits one line.
    assert_eq!(of(Rule::Text, &with_title("cross-entropy loss, learning rate 0.01")), vec![]);
}

#[test]
fn a_label_wider_than_its_room_is_refused() {
    let mut fig = clean();
    fig.body.panels[0].x_label = format!("x_{}", "a".repeat(400));
    let found = of(Rule::Text, &fig);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].1.contains("x label") && found[0].1.contains("runs over"), "{}", found[0].1);
    // A legend entry too, named by its series.
    let mut legend = clean();
    legend.body.series[0].legend_label = "b".repeat(400);
    let found: Vec<Problem> = problems(&legend).into_iter().filter(|p| p.rule == Rule::Text).collect();
    assert!(found.len() == 1 && found[0].series.as_deref() == Some("falling"), "{found:?}");
}

// ---------------------------------------------------------------------------
// 7. The gallery's tables

fn claim(name: &str, expected: &str) -> ClaimResult {
    ClaimResult {
        name: name.into(),
        passed: true,
        expected_to_pass: true,
        measured: Some(0.5),
        expected: expected.into(),
        detail: String::new(),
        reason: Some("|w| is still | growing".into()),
        class: ClaimClass::Evidence,
        control: ControlResult {
            counterfactual: "\"|w|\" x 0".into(),
            passed: false,
            measured: None,
            detail: String::new(),
        },
    }
}

#[test]
fn the_written_gallery_escapes_pipes_so_every_row_has_the_headers_cells() {
    let paper = common::small_paper();
    let tmp = tempfile::tempdir().unwrap();
    let mut fig = clean();
    fig.id = paper.figures[0].id().to_string();
    let mut plain = claim("plain", ">= 0.1");
    (plain.reason, plain.control.counterfactual) = (None, "x 0".into());
    fig.claims = vec![claim("|w| grows like |w_hat| ln t", "|x| < 1"), plain];
    std::fs::write(tmp.path().join(format!("{}.json", fig.id)), serde_json::to_string(&fig).unwrap()).unwrap();
    gallery::write(tmp.path(), &paper).unwrap();
    let md = std::fs::read_to_string(tmp.path().join("README.md")).unwrap();
    assert!(md.contains("\\|w\\| grows like \\|w_hat\\| ln t"), "{md}");
    assert_eq!(lint::gallery(&md), vec![]);
    // The same gallery as written before pipes were escaped: each row with a
    // pipe in a cell is refused, under its figure.
    let unescaped = md.replace("\\|", "|");
    let found = lint::gallery(&unescaped);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].figure == fig.id && found[0].rule == Rule::Gallery, "{found:?}");
    assert!(found[0].what.contains("header 5"), "{}", found[0].what);
}

// ---------------------------------------------------------------------------
// The command

#[test]
fn cargo_xtask_lint_prints_each_problem_and_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let paper = common::small_paper();
    let id = paper.figures[0].id().to_string();
    let run = |fig: &FigureData| {
        let fig = FigureData { id: id.clone(), ..fig.clone() };
        std::fs::write(tmp.path().join(format!("{id}.json")), serde_json::to_string(&fig).unwrap()).unwrap();
        std::process::Command::new(common::binary())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("--spec")
            .arg(common::small_spec_path())
            .arg("lint")
            .arg("--out")
            .arg(tmp.path())
            .output()
            .unwrap()
    };
    let out = run(&two_colours(palette::BLUE, palette::YELLOW));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let line = stdout.lines().find(|l| l.starts_with(&id)).expect("a line for the figure");
    assert!(line.contains("| panel 0 \"curves\" | series \"rising\" | colour |"), "{line}");
    let out = run(&clean());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn a_run_reports_each_figures_lint_problems() {
    let paper = common::small_paper();
    let tmp = tempfile::tempdir().unwrap();
    let fig = &paper.figures[0];
    let options = pipeline::Options { only: vec![fig.id().to_string()], ..common::options(tmp.path(), 2) };
    let (run, _) = common::run_with_events(&paper, &options);
    let (data, _) = &run.figures[0];
    // The problems of the figure as built, in its report: what `figures` prints.
    assert_eq!(run.reports[0].lint, lint::figure(data, &fig.render, &fig.publication).unwrap());
}

#[test]
fn a_figure_with_lint_problems_is_refused() {
    // The small gan-ring figure (a few hundred steps) draws its two losses'
    // curves on one another: reported with the refusal off, refused with it on.
    let paper = common::small_kinds_paper();
    let tmp = tempfile::tempdir().unwrap();
    let options = pipeline::Options { only: vec!["gan-ring".into()], ..common::options(tmp.path(), 2) };
    let (run, _) = common::run_with_events(&paper, &options);
    assert!(!run.reports[0].lint.is_empty(), "the small gan-ring figure has lint problems to refuse");
    let refusing = pipeline::Options { refuse_lint: true, ..options };
    let err = pipeline::run(&paper, &refusing, &|_| {}).err().expect("refused");
    let shown = format!("{err:#}");
    assert!(shown.contains("figure \"gan-ring\" fails the figure lint") && shown.contains("hidden series"), "{shown}");
}
