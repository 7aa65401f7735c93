//! The figure's data: everything needed to replot it, check its claims and
//! cite it. This is the schema of `figures/<id>.json` (documented in README).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What an experiment produces, before claims and provenance are attached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct FigureBody {
    pub panels: Vec<Panel>,
    pub series: Vec<Series>,
    /// Named measured numbers that claims can test; NaN (null in JSON)
    /// where the measurement is undefined, e.g. a time never reached.
    #[serde(with = "nan_as_null")]
    pub scalars: BTreeMap<String, f64>,
    /// Named per-seed values (one per seed, or per pair of seeds) of a
    /// quantity that varies by seed, for claims that decide on an interval.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub samples: BTreeMap<String, Vec<f64>>,
    /// Trainings that produced NaN or infinity.
    pub divergences: Vec<Divergence>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FigureData {
    pub id: String,
    pub title: String,
    pub caption: String,
    pub provenance: Provenance,
    /// What the kind measured and computed, as its own fields in the JSON.
    #[serde(flatten)]
    pub body: FigureBody,
    pub claims: Vec<ClaimResult>,
}

/// One set of axes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_log: bool,
    pub y_log: bool,
    /// Fixed axis ranges; None = fitted to the data.
    pub x_range: Option<(f64, f64)>,
    pub y_range: Option<(f64, f64)>,
    /// Points in the plane (both axes in one unit): drawn with as many units
    /// per pixel across as up, the shorter range widened, so distances and
    /// angles read true (`render::draw_panel`; `lint` checks the drawing).
    /// Off by default and left out of the JSON when off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub equal_aspect: bool,
}

/// The x label of every panel drawn against gradient-flow time.
pub const TIME_LABEL: &str = "time t = lr x step";

impl Panel {
    /// Linear axes fitted to the data.
    pub fn new(title: impl Into<String>, x_label: impl Into<String>, y_label: impl Into<String>) -> Panel {
        Panel {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            x_log: false,
            y_log: false,
            x_range: None,
            y_range: None,
            equal_aspect: false,
        }
    }

    /// Against gradient-flow time on a log axis: how most of the paper's curves are drawn.
    pub fn over_log_time(title: impl Into<String>, y_label: impl Into<String>) -> Panel {
        Panel::new(title, TIME_LABEL, y_label).log_x()
    }

    pub fn log_x(mut self) -> Panel {
        self.x_log = true;
        self
    }

    pub fn log_y(mut self) -> Panel {
        self.y_log = true;
        self
    }

    pub fn x_range(mut self, lo: f64, hi: f64) -> Panel {
        self.x_range = Some((lo, hi));
        self
    }

    pub fn y_range(mut self, lo: f64, hi: f64) -> Panel {
        self.y_range = Some((lo, hi));
        self
    }

    /// One unit as long across as up (points in the plane).
    pub fn equal_aspect(mut self) -> Panel {
        self.equal_aspect = true;
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// From training runs.
    Measured,
    /// From the paper's theory (closed forms, ODEs).
    Theory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Style {
    /// A polyline through (x, y).
    Line,
    /// Markers at (x, y).
    Points,
    /// A filled polygon with vertices (x, y).
    Area,
    /// Arrows: consecutive (tail, head) pairs of points.
    Arrows,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub name: String,
    /// Index into `panels`.
    pub panel: usize,
    pub source: Source,
    pub style: Style,
    /// "#rrggbb".
    pub color: String,
    /// Shown in the legend. Entries drawn alike with the same `legend_label` are shown once.
    pub legend: bool,
    /// What the series means to a reader: its text in the legend. Unlike `name`
    /// (unique, what claims refer to), series that mean one thing share it, e.g.
    /// "K = 2" for a class count's error and margin in two panels, or "theory"
    /// for every black dashed line. Every series drawn alike (`Series::look`)
    /// must carry the same one (`FigureBody::legend_problem`).
    #[serde(default)]
    pub legend_label: String,
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    pub band: Option<Band>,
    /// Text drawn next to each point (Points style only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// The name of a series of the same panel that this one equals by
    /// declaration (a closed form exact by construction, say), drawn with
    /// another mark so that both show where they coincide: the lint's rule
    /// on series hidden under a later one lets such a pair lie on each other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identical_to: Option<String>,
}

/// A spread around a line, e.g. min-max over seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Band {
    /// What the band spans, e.g. "min-max over 16 seeds".
    pub what: String,
    pub lo: Vec<f64>,
    pub hi: Vec<f64>,
}

/// Builders for the shapes series take, so that a kind spells out only what differs from them.
impl Series {
    /// A line in the legend, without band or labels: the shape most series take.
    pub fn line(
        name: impl Into<String>,
        panel: usize,
        source: Source,
        color: &str,
        x: Vec<f64>,
        y: Vec<f64>,
    ) -> Series {
        let name = name.into();
        Series {
            legend_label: name.clone(),
            name,
            panel,
            source,
            style: Style::Line,
            color: color.into(),
            legend: true,
            x,
            y,
            band: None,
            labels: None,
            identical_to: None,
        }
    }

    /// A theory line in black: in the measurement's own colour a matching theory curve would vanish under it.
    pub fn theory(name: impl Into<String>, panel: usize, x: Vec<f64>, y: Vec<f64>) -> Series {
        Series::line(name, panel, Source::Theory, palette::BLACK, x, y)
    }

    /// Measured markers (every point series of the paper is a measurement).
    pub fn points(name: impl Into<String>, panel: usize, color: &str, x: Vec<f64>, y: Vec<f64>) -> Series {
        Series::line(name, panel, Source::Measured, color, x, y).styled(Style::Points)
    }

    /// The mean of per-seed curves (each along `x`) in a min-max band: how a measurement over seeds is drawn.
    pub fn mean_over_seeds(
        name: impl Into<String>,
        panel: usize,
        color: &str,
        x: Vec<f64>,
        per_seed: &[Vec<f64>],
    ) -> Series {
        let (mean, lo, hi) = crate::stats::mean_min_max(per_seed);
        let line = Series::line(name, panel, Source::Measured, color, x, mean);
        // Seeds that all give the same curve (a deterministic run) have no
        // spread to draw: a band of no width would promise one in the legend.
        if lo == hi {
            return line;
        }
        line.with_band(Band { what: format!("min-max over {} seeds", per_seed.len()), lo, hi })
    }

    /// Drawn as `style` (an area, arrows) instead of a line.
    pub fn styled(mut self, style: Style) -> Series {
        self.style = style;
        self
    }

    /// Shown in the legend or not: one entry can stand for several series drawn alike.
    pub fn in_legend(mut self, legend: bool) -> Series {
        self.legend = legend;
        self
    }

    /// With `label` in the legend instead of its name: what it shares with the
    /// other series drawn alike (the builders start from the unique name).
    pub fn legend_label(mut self, label: impl Into<String>) -> Series {
        self.legend_label = label.into();
        self
    }

    /// How a reader tells the series apart from others: its colour and the kind
    /// of mark it is drawn with (a measured line is solid, a theory line dashed;
    /// points with text are drawn larger). Bands and widths are not part of it.
    pub fn look(&self) -> (String, &'static str) {
        let mark = match (self.style, self.source) {
            (Style::Line, Source::Measured) => "solid line",
            (Style::Line, Source::Theory) => "dashed line",
            (Style::Points, _) if self.labels.is_some() => "labelled points",
            (Style::Points, _) => "points",
            (Style::Area, _) => "area",
            (Style::Arrows, _) => "arrows",
        };
        (self.color.to_ascii_lowercase(), mark)
    }

    /// With a band around the line.
    pub fn with_band(mut self, band: Band) -> Series {
        self.band = Some(band);
        self
    }

    /// The band dropped unless `keep`: one seed spans no band, and some panels show the mean alone.
    pub fn keep_band_if(mut self, keep: bool) -> Series {
        if !keep {
            self.band = None;
        }
        self
    }

    /// Declared equal to the series `name` of its panel, which it is drawn
    /// over or under with another mark (see `identical_to`).
    pub fn identical_to(mut self, name: impl Into<String>) -> Series {
        self.identical_to = Some(name.into());
        self
    }

    /// With a text next to each point (Points style).
    pub fn with_labels(mut self, labels: Vec<String>) -> Series {
        self.labels = Some(labels);
        self
    }

    /// Without its first `n` points: the steps at t = 0, which a log-time axis cannot show.
    pub fn skipping(mut self, n: usize) -> Series {
        self.x.drain(..n);
        self.y.drain(..n);
        if let Some(b) = &mut self.band {
            b.lo.drain(..n);
            b.hi.drain(..n);
        }
        if let Some(labels) = &mut self.labels {
            labels.drain(..n);
        }
        self
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    pub job: String,
    pub member: usize,
    pub seed: u64,
    /// First logged step at which a margin was NaN or infinite.
    pub step: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimClass {
    /// A statement of the paper about networks that the measurement could
    /// contradict; its control puts counterfactual data in place of the
    /// measurement (another arm's series, the naive rule, a substitute curve).
    #[default]
    Evidence,
    /// Gradient descent against an exact theory of the same system: it tests
    /// the engine and the derivation, not the paper.
    Consistency,
    /// A measured statement that contradicts a claim, declared not to hold,
    /// with a computed or measured reason.
    Finding,
}

impl ClaimClass {
    pub const ALL: [ClaimClass; 3] = [ClaimClass::Evidence, ClaimClass::Consistency, ClaimClass::Finding];

    /// Its name in paper.toml, the JSON and the summaries.
    pub fn name(self) -> &'static str {
        match self {
            ClaimClass::Evidence => "evidence",
            ClaimClass::Consistency => "consistency",
            ClaimClass::Finding => "finding",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimResult {
    pub name: String,
    /// Whether the measurement satisfies the claim.
    pub passed: bool,
    /// What paper.toml declares: true for a claim we expect to hold.
    pub expected_to_pass: bool,
    /// The number the claim tests (the worst one, where it tests several);
    /// None where it is not a finite number (`detail` says why).
    pub measured: Option<f64>,
    /// What it was tested against, in words: ">= 0.95".
    pub expected: String,
    /// Per-item values, e.g. each series' R^2.
    pub detail: String,
    /// Why the claim is known not to hold, where paper.toml says so.
    pub reason: Option<String>,
    /// Evidence for the paper, or a consistency check (true by construction).
    pub class: ClaimClass,
    /// The same check on the declared counterfactual of the data.
    pub control: ControlResult,
}

/// A claim's negative control: its check run on a counterfactual of the
/// figure's data, which must give the opposite outcome to the declared one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlResult {
    /// The counterfactual, in words.
    pub counterfactual: String,
    /// Whether the check passed on the counterfactual.
    pub passed: bool,
    pub measured: Option<f64>,
    pub detail: String,
}

/// Claims counted by class, as the summaries print them:
/// "evidence 14/16, consistency 49/49, findings 5" (passed of all; a finding
/// counts as found while it fails as declared).
pub fn class_counts<'a>(claims: impl IntoIterator<Item = &'a ClaimResult>) -> String {
    let mut counts = [(0usize, 0usize); 3];
    for c in claims {
        let i = ClaimClass::ALL.iter().position(|&k| k == c.class).unwrap_or(0);
        counts[i].1 += 1;
        counts[i].0 += usize::from(!c.surprising());
    }
    let [(ep, en), (cp, cn), (fp, fn_)] = counts;
    let findings = if fp == fn_ { format!("findings {fn_}") } else { format!("findings {fp}/{fn_} as declared") };
    format!("evidence {ep}/{en}, consistency {cp}/{cn}, {findings}")
}

impl ClaimResult {
    /// A claim whose outcome differs from what paper.toml declares.
    pub fn surprising(&self) -> bool {
        self.passed != self.expected_to_pass
    }

    /// A control that did not flip the measured outcome: the check cannot
    /// tell the counterfactual from the measurement, so its verdict means nothing.
    pub fn control_failed(&self) -> bool {
        self.control.passed == self.passed
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// SHA-256 over the keys of the figure's jobs (config, seeds, code).
    pub key: String,
    pub code_fingerprint: String,
    /// The commit checked out when the figure was made (HEAD). With
    /// uncommitted changes (the usual case: figures are made before they are
    /// committed) the code that made it is this commit plus changes, which
    /// `files` pins down; the commit that holds exactly that code and this
    /// data is the one that commits this file (what `cite` names).
    /// (Named so in the JSON; read under its old name `commit` too.)
    #[serde(rename = "base_commit", alias = "commit")]
    pub commit: String,
    /// Whether tracked files differed from the base commit when the figure
    /// was made (`uncommitted_changes` in the JSON, formerly `dirty`).
    #[serde(rename = "uncommitted_changes", alias = "dirty")]
    pub dirty: bool,
    pub config: serde_json::Value,
    pub seeds: Vec<u64>,
    pub toolchain: String,
    /// Every hashed source file (path -> SHA-256), so that `status` can name
    /// the files that changed since the figure was made.
    #[serde(default)]
    pub files: std::collections::BTreeMap<String, String>,
}

/// Rounds to `digits` significant digits, so that JSON files and snapshots
/// do not churn on the last bits of a float.
pub fn round_sig(v: f64, digits: i32) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(digits - 1 - v.abs().log10().floor() as i32);
    let r = (v * scale).round() / scale;
    // Re-parse through the shortest decimal representation to drop noise
    // such as 0.30000000000000004.
    format!("{r:.*e}", (digits - 1).max(0) as usize).parse().unwrap_or(r)
}

impl FigureBody {
    /// Every plotted number must be finite (a plotted NaN is garbage), and
    /// a scalar may be NaN (undefined) but never infinite.
    pub fn non_finite(&self) -> Option<String> {
        for s in &self.series {
            let band = s.band.iter().flat_map(|b| b.lo.iter().chain(&b.hi));
            if s.x.iter().chain(&s.y).chain(band).any(|v| !v.is_finite()) {
                return Some(format!("series {:?}", s.name));
            }
        }
        if let Some((k, _)) = self.samples.iter().find(|(_, v)| v.iter().any(|x| !x.is_finite())) {
            return Some(format!("samples {k:?}"));
        }
        self.scalars.iter().find(|(_, v)| v.is_infinite()).map(|(k, _)| format!("scalar {k:?}"))
    }

    /// Removes every point (x, y and band) where a value is not finite, and
    /// makes infinite scalars NaN (undefined): what is left of a figure whose
    /// trainings diverged.
    pub fn drop_non_finite_points(&mut self) {
        for v in self.scalars.values_mut() {
            if v.is_infinite() {
                *v = f64::NAN;
            }
        }
        // A diverged seed has no value: the interval is over the rest (its n says so).
        for v in self.samples.values_mut() {
            v.retain(|x| x.is_finite());
        }
        for s in &mut self.series {
            let keep: Vec<bool> = (0..s.x.len())
                .map(|i| {
                    s.x[i].is_finite()
                        && s.y[i].is_finite()
                        && s.band.as_ref().is_none_or(|b| b.lo[i].is_finite() && b.hi[i].is_finite())
                })
                .collect();
            let filter = |v: &mut Vec<f64>| {
                let mut k = keep.iter();
                v.retain(|_| *k.next().unwrap_or(&true));
            };
            filter(&mut s.x);
            filter(&mut s.y);
            if let Some(b) = &mut s.band {
                filter(&mut b.lo);
                filter(&mut b.hi);
            }
            if let Some(labels) = &mut s.labels {
                let mut k = keep.iter();
                labels.retain(|_| *k.next().unwrap_or(&true));
            }
        }
    }

    /// A series name used twice (names identify series in claims and `--check`).
    pub fn duplicate_series(&self) -> Option<&str> {
        let mut seen = std::collections::BTreeSet::new();
        self.series.iter().map(|s| s.name.as_str()).find(|name| !seen.insert(*name))
    }

    /// The legend: one entry per (look, label), in the order of the series,
    /// each with the first series drawn so and a band that any of them has.
    pub fn legend_entries(&self) -> Vec<LegendEntry<'_>> {
        // Data written before legend labels existed has none: its name stands in.
        let text = |s: &Series| if s.legend_label.is_empty() { s.name.clone() } else { s.legend_label.clone() };
        let mut entries: Vec<LegendEntry> = Vec::new();
        for s in self.series.iter().filter(|s| s.legend) {
            let label = text(s);
            if entries.iter().any(|e| e.series.look() == s.look() && e.label == label) {
                continue;
            }
            // A band drawn around any series drawn alike is explained here too.
            let band =
                self.series.iter().filter(|e| e.look() == s.look() && text(e) == label).find_map(|e| e.band.as_ref());
            entries.push(LegendEntry { series: s, label, band });
        }
        entries
    }

    /// Where the legend would mislead, in words: one look (`Series::look`:
    /// colour and mark) used for series with different legend labels, a drawn
    /// series whose look and label no legend entry shows, or an entry without
    /// text. A reader tells series apart only by colour and mark, so one look
    /// must mean one thing across the whole figure, and the legend must say what.
    pub fn legend_problem(&self) -> Option<String> {
        // A series without points draws nothing (a grid class that no point fell in).
        let drawn: Vec<&Series> = self.series.iter().filter(|s| !s.x.is_empty()).collect();
        let mut meaning: BTreeMap<(String, &str), &Series> = BTreeMap::new();
        for &s in &drawn {
            let first = *meaning.entry(s.look()).or_insert(s);
            if first.legend_label != s.legend_label {
                let (color, mark) = s.look();
                return Some(format!(
                    "series {:?} and {:?} are both drawn as {mark} in {color} but labelled {:?} and {:?}: \
                     one colour and mark must mean one thing (give them other colours or marks, or one legend label)",
                    first.name, s.name, first.legend_label, s.legend_label
                ));
            }
        }
        for &s in &drawn {
            let shown = |e: &&Series| e.legend && e.look() == s.look() && e.legend_label == s.legend_label;
            if !drawn.iter().any(shown) {
                let (color, mark) = s.look();
                return Some(format!(
                    "series {:?} ({mark} in {color}, {:?}) has no legend entry: \
                     show it or a series drawn alike with the same label (`in_legend(true)`)",
                    s.name, s.legend_label
                ));
            }
            if s.legend && s.legend_label.trim().is_empty() {
                return Some(format!("series {:?} is in the legend with no label", s.name));
            }
        }
        None
    }

    /// Rounds every number to `digits` significant digits.
    pub fn round(&mut self, digits: i32) {
        let r = |v: &mut Vec<f64>| v.iter_mut().for_each(|x| *x = round_sig(*x, digits));
        for s in &mut self.series {
            r(&mut s.x);
            r(&mut s.y);
            if let Some(b) = &mut s.band {
                r(&mut b.lo);
                r(&mut b.hi);
            }
        }
        for v in self.scalars.values_mut() {
            *v = round_sig(*v, digits);
        }
        for v in self.samples.values_mut() {
            r(v);
        }
    }

    pub fn series(&self, name: &str) -> Option<&Series> {
        self.series.iter().find(|s| s.name == name)
    }
}

/// The Okabe-Ito colour-blind-safe palette.
pub mod palette {
    pub const ORANGE: &str = "#E69F00";
    pub const SKY_BLUE: &str = "#56B4E9";
    pub const GREEN: &str = "#009E73";
    pub const YELLOW: &str = "#F0E442";
    pub const BLUE: &str = "#0072B2";
    pub const VERMILLION: &str = "#D55E00";
    pub const PURPLE: &str = "#CC79A7";
    pub const BLACK: &str = "#000000";
    pub const GREY: &str = "#999999";

    /// One colour per network depth, the same in every figure.
    pub fn depth(depth: u64) -> &'static str {
        match depth {
            1 => BLUE,
            2 => ORANGE,
            3 => GREEN,
            // Not vermillion: beside depth 2's orange, two oranges.
            4 => PURPLE,
            5 => VERMILLION,
            6 => SKY_BLUE,
            _ => BLACK,
        }
    }
}

/// Scalars as JSON numbers, with NaN (an undefined measurement) as null.
mod nan_as_null {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(map: &BTreeMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
        let out: BTreeMap<&String, Option<f64>> = map.iter().map(|(k, v)| (k, (!v.is_nan()).then_some(*v))).collect();
        out.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
        let map = BTreeMap::<String, Option<f64>>::deserialize(d)?;
        Ok(map.into_iter().map(|(k, v)| (k, v.unwrap_or(f64::NAN))).collect())
    }
}

/// One line of a legend: the swatch is drawn like `series`, the text is `label`.
pub struct LegendEntry<'a> {
    pub series: &'a Series,
    pub label: String,
    pub band: Option<&'a Band>,
}

/// Marks around a subscript in display text (Unicode private use, so they
/// cannot clash with a label's own characters); the SVG writers turn them
/// into a lowered, smaller run (`render::subscripts`).
pub const SUB_START: char = '\u{E000}';
pub const SUB_END: char = '\u{E001}';

/// Whole phrases of ASCII maths and what a reader should see instead.
const MATHS: &[(&str, &str)] = &[
    ("|grad_x D|", "‖∇ₓD‖"),
    ("|mean grad_x D|", "‖mean ∇ₓD‖"),
    ("grad_x D", "∇ₓD"),
    ("|w_hat|", "‖ŵ‖"),
    ("w_hat", "ŵ"),
    ("|w|", "‖w‖"),
    ("|x|", "‖x‖"),
    ("u.x", "u·x"),
    (" in R^", " ∈ ℝ^"),
    ("lr x step", "lr × step"),
];

/// Words that stand for Greek letters (whole words only: "sigmoid" stays).
const GREEK: &[(&str, &str)] = &[("lambda", "λ"), ("sigma", "σ")];

/// A label as a reader should see it: the data keeps its labels in plain
/// ASCII (they are names that claims and scripts use), and the drawing shows
/// them in mathematical notation: ‖w‖, ∇ₓD, λ, σ, s², ℝ², and a letter's
/// subscript (w_B, m_A+B, K_ij) lowered and smaller.
pub fn typeset(text: &str) -> String {
    let mut s = text.to_string();
    for (ascii, maths) in MATHS {
        s = s.replace(ascii, maths);
    }
    let chars: Vec<char> = s.chars().collect();
    let word_char = |i: usize| chars.get(i).is_some_and(|c| c.is_alphanumeric());
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let word_start = i == 0 || !word_char(i - 1);
        if word_start && c.is_alphabetic() {
            if let Some((word, greek)) = GREEK.iter().find(|(w, _)| {
                let n = w.chars().count();
                chars[i..].iter().take(n).copied().eq(w.chars()) && !word_char(i + n)
            }) {
                out.push_str(greek);
                i += word.chars().count();
                continue;
            }
        }
        // A superscript: ^2, ^-1.
        if c == '^' && (chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) || chars.get(i + 1) == Some(&'-')) {
            let mut j = i + 1;
            while j < chars.len() && (chars[j].is_ascii_digit() || (j == i + 1 && chars[j] == '-')) {
                out.push(superscript(chars[j]));
                j += 1;
            }
            i = j;
            continue;
        }
        // A subscript: a one-letter symbol's `_` and the word after it
        // (with `+B` as in m_A+B).
        if c == '_' && i > 0 && chars[i - 1].is_alphabetic() && (i < 2 || !word_char(i - 2)) && word_char(i + 1) {
            let mut j = i + 1;
            while word_char(j) {
                j += 1;
            }
            if chars.get(j) == Some(&'+')
                && chars.get(j + 1).is_some_and(|c| c.is_ascii_uppercase())
                && !word_char(j + 2)
            {
                j += 2;
            }
            out.push(SUB_START);
            out.extend(&chars[i + 1..j]);
            out.push(SUB_END);
            i = j;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

fn superscript(c: char) -> char {
    match c {
        '-' => '⁻',
        '0' => '⁰',
        '1' => '¹',
        '2' => '²',
        '3' => '³',
        d => ['⁴', '⁵', '⁶', '⁷', '⁸', '⁹'][d.to_digit(10).map_or(0, |v| v.saturating_sub(4)) as usize],
    }
}

impl FigureData {
    /// The figure with every text it draws typeset (`typeset`): titles,
    /// caption, axis labels, legend texts and point labels.
    pub fn typeset(&self) -> FigureData {
        let mut fig = self.clone();
        fig.title = typeset(&fig.title);
        fig.caption = typeset(&fig.caption);
        for p in &mut fig.body.panels {
            p.title = typeset(&p.title);
            p.x_label = typeset(&p.x_label);
            p.y_label = typeset(&p.y_label);
        }
        for s in &mut fig.body.series {
            let label = if s.legend_label.is_empty() { &s.name } else { &s.legend_label };
            s.legend_label = typeset(label);
            if let Some(b) = &mut s.band {
                b.what = typeset(&b.what);
            }
            for l in s.labels.iter_mut().flatten() {
                *l = typeset(l);
            }
        }
        fig
    }
}

#[cfg(test)]
mod typeset_tests {
    use super::*;

    #[test]
    fn ascii_maths_becomes_notation() {
        let sub = |s: &str| format!("{SUB_START}{s}{SUB_END}");
        assert_eq!(typeset("w_B / w_A"), format!("w{} / w{}", sub("B"), sub("A")));
        assert_eq!(typeset("(m_A+B - m_A) / m_A"), format!("(m{} - m{}) / m{}", sub("A+B"), sub("A"), sub("A")));
        assert_eq!(typeset("|grad_x D| at the fakes"), "‖∇ₓD‖ at the fakes");
        assert_eq!(typeset("power 1 / s^2, N s^-1"), "power 1 / s², N s⁻¹");
        assert_eq!(typeset("|x| = 1, x in R^2, lr 0.01"), "‖x‖ = 1, x ∈ ℝ², lr 0.01");
        assert_eq!(typeset("lambda = 0.1, sigmoid, sigma"), "λ = 0.1, sigmoid, σ");
        // Names that are not one-letter symbols, and plain text, stay.
        assert_eq!(typeset("shortcut_fractions, lambdas, 4^x"), "shortcut_fractions, lambdas, 4^x");
    }
}
