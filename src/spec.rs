//! `paper.toml`: the typed figure specifications, parsed and validated before
//! anything runs.
//!
//! Validation happens in two layers. Value-level rules (a positive rate, a
//! non-zero count) live in small newtypes whose `Deserialize` rejects bad
//! values, so the TOML parser reports them at the offending value's line and
//! column. Cross-value rules (duplicate ids, a claim naming a series the
//! experiment does not produce) run after parsing, on `Spanned` values, so they
//! point at a line too.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::figure::ClaimClass;
use crate::kinds::ExperimentSpec;
use crate::values::{Outputs, Pixels};

/// The whole file: one `[[figure]]` table per figure.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paper {
    #[serde(rename = "figure")]
    pub figures: Vec<FigureSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FigureSpec {
    pub id: Spanned<FigureId>,
    pub title: String,
    /// May hold placeholders filled from the config and the run (see `caption.rs`).
    pub caption: Spanned<String>,
    /// Exactly one experiment kind, as a sub-table: `[figure.experiment.<kind>]`.
    pub experiment: ExperimentSpec,
    pub render: RenderSpec,
    /// The publication variant's size (`[figure.publication]`, optional).
    #[serde(default)]
    pub publication: PublicationSpec,
    /// Networks per shard of each job: the unit of caching and of
    /// parallelism, across cores and cluster tasks (optional; by default
    /// about two seconds of modelled work, see `pipeline::shard_size`). The
    /// figure is the same bits for every shard size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_size: Option<crate::values::Count>,
    #[serde(rename = "claim", default)]
    pub claims: Vec<ClaimSpec>,
}

impl FigureSpec {
    pub fn id(&self) -> &str {
        &self.id.get_ref().0
    }
}

/// A figure id: used as a file name, so restricted to `[a-z0-9-]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FigureId(pub String);

impl<'de> Deserialize<'de> for FigureId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !s.starts_with('-');
        if ok {
            Ok(FigureId(s))
        } else {
            Err(serde::de::Error::custom(format!(
                "invalid figure id {s:?}: expected 1-64 characters of a-z, 0-9 and '-', not starting with '-' (it names the output files)"
            )))
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RenderSpec {
    /// Width of the SVG, in pixels.
    pub width: Pixels,
    /// Height of the title and panels, in pixels; the caption and claims
    /// below add their own.
    pub height: Pixels,
}

/// The publication variant of a figure (figures/paper/<id>.pdf and .png).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PublicationSpec {
    /// `"column"` (about 3.3 in) or `"page"` (the full text width, about 6.8 in).
    #[serde(default)]
    pub width: PublicationWidth,
}

/// How wide a publication figure is set. The full page is the default: every
/// figure fits it; one that also reads at one column's width says so.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PublicationWidth {
    Column,
    #[default]
    Page,
}

/// One claim of the paper, checked against the figure's data.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimSpec {
    pub name: String,
    pub check: Spanned<Check>,
    /// The negative control: a declared counterfactual of the figure's data
    /// under which the check must give the opposite outcome (fail for a claim
    /// expected to hold, pass for a finding). Required: a claim that no
    /// counterfactual can flip tests nothing. An evidence claim's control must
    /// put counterfactual data in place of the measurement (`swap`,
    /// `exponential`), never move its own number.
    pub control: Option<Spanned<Control>>,
    /// Required: `evidence` (a statement of the paper about networks that the
    /// measurement could contradict), `consistency` (gradient descent against
    /// an exact theory of the same system) or `finding` (a measured statement
    /// that contradicts a claim: it is expected to fail, with a `reason`).
    pub class: Spanned<ClaimClass>,
    /// Why a finding does not hold: computed or measured, not a hypothesis
    /// (required for a finding, refused for the other classes).
    #[serde(default)]
    pub reason: Option<String>,
}

impl ClaimSpec {
    /// Whether the claim is expected to hold: every class but a finding.
    pub fn holds(&self) -> bool {
        *self.class.get_ref() != ClaimClass::Finding
    }
}

/// The computations a claim can ask for. Names refer to the figure's series
/// and scalars, which each experiment lists before it runs.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Check {
    /// A scalar of the figure is at least `min`.
    AtLeast { scalar: String, min: f64 },
    /// A scalar of the figure is at most `max`.
    AtMost { scalar: String, max: f64 },
    /// A scalar lies strictly between `min` and `max`.
    Between { scalar: String, min: f64, max: f64 },
    /// A logistic step in log t explains each falling series at least
    /// `min_ratio` times better (residual sum of squares) than the best
    /// exponential decay in t: a plateau, then a drop, rather than a plain decay.
    LogisticBeatsExponential { series: Vec<String>, min_ratio: f64 },
    /// The 10%-90% drop of each series spans at most `max_decades` decades
    /// of x (an exponential decay in x spans 1.34).
    DropWidth { series: Vec<String>, max_decades: f64 },
    /// The 10%-90% drop of `series` spans fewer decades of x than that of `than`.
    Sharper { series: String, than: String },
    /// A scalar is within `tolerance` of `value`.
    Near { scalar: String, value: f64, tolerance: f64 },
    /// A scalar is within `relative_tolerance` (a fraction) of another, its
    /// reference (typically the theory's value of the same measurement).
    Matches { scalar: String, reference: String, relative_tolerance: f64 },
    /// The scalars, in the order given, strictly increase.
    Increasing { scalars: Vec<String> },
    /// The scalars, in the order given, strictly decrease.
    Decreasing { scalars: Vec<String> },
    /// The `level` (e.g. 0.95) confidence interval of the mean of per-seed
    /// `samples` (Student's t) lies wholly above `min` and/or below `max`:
    /// for a quantity that varies by seed, a preset effect size decided on an
    /// interval rather than on a raw difference or a t statistic.
    Interval { samples: String, min: Option<f64>, max: Option<f64>, level: f64 },
}

impl Check {
    pub fn series_names(&self) -> Vec<&str> {
        match self {
            Check::LogisticBeatsExponential { series, .. } | Check::DropWidth { series, .. } => {
                series.iter().map(String::as_str).collect()
            }
            Check::Sharper { series, than } => vec![series, than],
            _ => vec![],
        }
    }
    pub fn scalar_names(&self) -> Vec<&str> {
        match self {
            Check::AtLeast { scalar, .. }
            | Check::AtMost { scalar, .. }
            | Check::Between { scalar, .. }
            | Check::Near { scalar, .. } => vec![scalar],
            Check::Matches { scalar, reference, .. } => vec![scalar, reference],
            Check::Increasing { scalars } | Check::Decreasing { scalars } => {
                scalars.iter().map(String::as_str).collect()
            }
            _ => vec![],
        }
    }
    pub fn sample_names(&self) -> Vec<&str> {
        match self {
            Check::Interval { samples, .. } => vec![samples],
            _ => vec![],
        }
    }
    /// Checks on an ordered list (or pair), which a reversal turns around.
    pub fn is_ordering(&self) -> bool {
        matches!(self, Check::Increasing { .. } | Check::Decreasing { .. } | Check::Sharper { .. })
    }
}

/// A counterfactual of a figure's data, for a claim's negative control.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Control {
    /// The order of the claim's scalars (or its two series) reversed.
    Reverse,
    /// Two scalars, two series or two sets of per-seed samples trade their
    /// values: the measurement of another arm (another init, loss, rule or
    /// labelling) in place of the claim's.
    Swap { a: String, b: String },
    /// A scalar moved by `by` (e.g. a gap to theory 10 points wider).
    Offset { scalar: String, by: f64 },
    /// A scalar multiplied by `by` (e.g. a ratio or slope 20% larger).
    Scale { scalar: String, by: f64 },
    /// Each series replaced by a plain exponential decay in x with the same
    /// endpoints and the same half-way time: a drop with no plateau.
    Exponential { series: Vec<String> },
}

impl Control {
    /// Counterfactual data in place of the measurement (what an evidence
    /// claim's control must be), as opposed to a move of the claim's own number.
    pub fn is_data(&self) -> bool {
        matches!(self, Control::Swap { .. } | Control::Exponential { .. })
    }
    /// Its name in paper.toml.
    pub fn kind(&self) -> &'static str {
        match self {
            Control::Reverse => "reverse",
            Control::Swap { .. } => "swap",
            Control::Offset { .. } => "offset",
            Control::Scale { .. } => "scale",
            Control::Exponential { .. } => "exponential",
        }
    }
    pub fn series_names(&self) -> Vec<&str> {
        match self {
            Control::Exponential { series } => series.iter().map(String::as_str).collect(),
            _ => vec![],
        }
    }
    pub fn scalar_names(&self) -> Vec<&str> {
        match self {
            Control::Offset { scalar, .. } | Control::Scale { scalar, .. } => vec![scalar],
            _ => vec![],
        }
    }
}

/// A problem in paper.toml, located at a line and column.
#[derive(Debug)]
pub struct SpecError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// The offending line of the file, for display.
    pub source_line: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}\n{:>5} | {}\n      | {}^",
            self.path.display(),
            self.line,
            self.column,
            self.message,
            self.line,
            self.source_line,
            " ".repeat(self.column.saturating_sub(1))
        )
    }
}

impl std::error::Error for SpecError {}

/// Several problems at once, so a user fixes them all in one go.
#[derive(Debug)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        write!(f, "\n{} problem(s) in the figure specification; nothing was run or written", self.0.len())
    }
}

impl std::error::Error for SpecErrors {}

pub(crate) fn locate(path: &Path, text: &str, span: Range<usize>, message: String) -> SpecError {
    let start = span.start.min(text.len());
    let before = &text[..start];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..start].chars().count() + 1;
    let source_line = text[line_start..].lines().next().unwrap_or("").to_string();
    SpecError { path: path.to_path_buf(), line, column, message, source_line }
}

/// Reads and validates a figure specification file. (`preflight::load`
/// also checks it against the data files and the machine.)
pub fn load(path: &Path) -> anyhow::Result<Paper> {
    let bytes = std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("cannot read the figure specification {}: {e}", path.display()))?;
    Ok(parse_bytes(path, &bytes)?)
}

/// Like [`parse`], for the raw bytes of a file: text that is not UTF-8 is
/// reported at the line and column of its first bad byte.
pub fn parse_bytes(path: &Path, bytes: &[u8]) -> Result<Paper, SpecErrors> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(path, text),
        Err(e) => {
            let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).expect("valid up to here");
            let message = format!("byte 0x{:02x} is not UTF-8: expected a UTF-8 text file", bytes[e.valid_up_to()]);
            Err(SpecErrors(vec![locate(path, valid, valid.len()..valid.len(), message)]))
        }
    }
}

/// Parses and validates `text` (read from `path`, used in messages).
pub fn parse(path: &Path, original: &str) -> Result<Paper, SpecErrors> {
    let Parsed { paper, errors: mut found, text, edits } = deserialize(path, original);
    let Some(paper) = paper else {
        return Err(SpecErrors(found));
    };
    // From here on `text` is the file with its misspelt keys read as their
    // nearest names (each on its own line, so lines are the file's), and
    // every problem is moved back onto the original text at the end.
    let text = text.as_str();
    // The line each figure starts on, so that a figure with a bad value is
    // not checked further (its stand-in values would raise false problems).
    let line_of = |at: usize| text[..at].matches('\n').count() + 1;
    let starts: Vec<usize> = paper.figures.iter().map(|f| line_of(f.id.span().start)).collect();
    let spoilt: Vec<usize> = found.iter().map(|e| starts.iter().rposition(|&s| s <= e.line).unwrap_or(0)).collect();
    // The document with spans, to point a problem between fields at the field to change.
    let doc = toml::de::DeTable::parse(text).ok();
    let mut errors = Vec::new();
    if paper.figures.is_empty() {
        errors.push(locate(path, text, 0..0, "no figures: expected at least one [[figure]] table".into()));
    }
    // With bad values: the file read again with other stand-ins for them.
    let other = if spoilt.is_empty() { None } else { reparse_with_other_stand_ins(text) };
    for i in 0..paper.figures.len() {
        let problems = figure_problems(path, text, doc.as_ref().map(|d| d.get_ref()), &paper, i);
        if !spoilt.contains(&i) {
            errors.extend(problems.into_iter().map(|(span, m)| locate(path, text, span, m)));
            continue;
        }
        // A figure with a bad value holds a stand-in for it: report only the
        // problems that the other set of stand-ins raises too, which do not
        // depend on the bad values.
        let Some(other) = &other else { continue };
        let again = figure_problems(path, text, doc.as_ref().map(|d| d.get_ref()), other, i);
        for (span, m) in problems.into_iter().filter(|p| again.contains(p)) {
            errors.push(locate(path, text, span, m));
        }
    }
    for e in errors {
        let at = original_offset(&edits, offset_of(text, e.line, e.column));
        found.push(locate(path, original, at..at, e.message));
    }
    if found.is_empty() {
        Ok(paper)
    } else {
        found.sort_by_key(|e| (e.line, e.column));
        Err(SpecErrors(found))
    }
}

/// The problems of figure `i` of `paper` that parsing could not find: a
/// duplicate id, rules between values, captions, claims and controls.
fn figure_problems(
    path: &Path,
    text: &str,
    doc: Option<&toml::de::DeTable>,
    paper: &Paper,
    i: usize,
) -> Vec<(Range<usize>, String)> {
    let fig = &paper.figures[i];
    let mut problems = Vec::new();
    let mut error = |span: Range<usize>, message: String| problems.push((span, message));
    if let Some(first) = paper.figures[..i].iter().find(|f| f.id() == fig.id()) {
        let first_line = locate(path, text, first.id.span(), String::new()).line;
        error(fig.id.span(), format!("duplicate figure id {:?} (first defined on line {first_line})", fig.id()));
    }
    for problem in fig.experiment.kind().problems() {
        // At the field the problem names first (`model[0].width: ...`), else at the figure.
        let at = doc.and_then(|d| field_span(d, i, fig.experiment.name(), &problem));
        error(at.unwrap_or(fig.id.span()), format!("figure {:?}: {problem}", fig.id()));
    }
    let outputs = fig.experiment.kind().outputs();
    let config = crate::caption::experiment_config(&fig.experiment);
    let caption_span = fig.caption.span();
    let raw_caption = &text[caption_span.clone()];
    // Where to look for the next placeholder in the raw text: past the
    // previous one, so that a repeated one is found at its own place.
    let mut cursor = 0;
    for (range, placeholder) in crate::caption::placeholders(fig.caption.get_ref()) {
        // The placeholder's text up to anything an escape or a line
        // continuation could have changed in the raw TOML.
        let needle = &fig.caption.get_ref()[range];
        let verbatim = &needle[..needle.find(['\\', '\n', '"']).unwrap_or(needle.len())];
        let found = raw_caption.get(cursor..).and_then(|rest| rest.find(verbatim)).map(|i| cursor + i);
        if let Some(at) = found {
            cursor = at + verbatim.len();
        }
        let problem = match placeholder {
            Err(problem) => Some(problem),
            Ok(p) => crate::caption::problem(&p, &config, &outputs.scalars),
        };
        if let Some(problem) = problem {
            // At the placeholder itself where the raw text holds it, else at the caption.
            let at = found.map_or(caption_span.start, |i| caption_span.start + i);
            error(at..at, format!("figure {:?}: caption: {problem}", fig.id()));
        }
    }
    for claim in &fig.claims {
        let check = claim.check.get_ref();
        let named = [
            ("series", check.series_names(), &outputs.series),
            ("scalar", check.scalar_names(), &outputs.scalars),
            ("samples", check.sample_names(), &outputs.samples),
        ];
        for (what, names, known) in named {
            for name in names.into_iter().filter(|n| !known.iter().any(|k| k == n)) {
                error(
                    claim.check.span(),
                    format!(
                        "claim {:?} names {what} {name:?}, which figure {:?} does not produce; expected one of: {}",
                        claim.name,
                        fig.id(),
                        quoted(known)
                    ),
                );
            }
        }
        if matches!(check, Check::LogisticBeatsExponential { series, .. } | Check::DropWidth { series, .. } if series.is_empty())
        {
            error(claim.check.span(), format!("claim {:?}: expected at least one series", claim.name));
        }
        if let Check::Between { min, max, .. } = check {
            if min.partial_cmp(max) != Some(std::cmp::Ordering::Less) {
                error(claim.check.span(), format!("claim {:?}: expected min < max, got {min} and {max}", claim.name));
            }
        }
        if let Check::Matches { relative_tolerance, .. } = check {
            if !(relative_tolerance.is_finite() && *relative_tolerance >= 0.0) {
                error(claim.check.span(), format!("claim {:?}: expected a finite relative_tolerance >= 0", claim.name));
            }
        }
        match &claim.control {
            None => error(
                claim.check.span(),
                format!(
                    "claim {:?} has no negative control: expected `control.<kind>` (one of {}), a counterfactual \
                     of the data under which the check must {}",
                    claim.name,
                    kinds::<Control>().unwrap_or_default(),
                    if claim.holds() { "fail" } else { "pass" }
                ),
            ),
            Some(control) => {
                for problem in control_problems(check, control.get_ref(), &outputs) {
                    error(control.span(), format!("claim {:?}: control: {problem}", claim.name));
                }
                if *claim.class.get_ref() == ClaimClass::Evidence && !control.get_ref().is_data() {
                    error(
                        control.span(),
                        format!(
                            "claim {:?} is evidence, so its control must put counterfactual data in place of the \
                             measurement (`swap` with another arm's series, scalar or samples: another init, loss, \
                             rule or labelling; or `exponential` substitute curves); `{}` only moves the claim's own \
                             number. Name such data, or declare `class = \"consistency\"` if the claim compares \
                             with an exact theory of the same system",
                            claim.name,
                            control.get_ref().kind()
                        ),
                    );
                }
            }
        }
        if let Check::Interval { min, max, level, .. } = check {
            if min.is_none() && max.is_none() {
                error(
                    claim.check.span(),
                    format!("claim {:?}: an interval check needs `min`, `max` or both", claim.name),
                );
            }
            if min.iter().chain(max).any(|v| !v.is_finite()) {
                error(claim.check.span(), format!("claim {:?}: expected finite `min` and `max`", claim.name));
            }
            if !(*level > 0.0 && *level < 1.0) {
                error(
                    claim.check.span(),
                    format!("claim {:?}: expected a `level` strictly between 0 and 1, got {level}", claim.name),
                );
            }
        }
        if matches!(check, Check::Increasing { scalars } | Check::Decreasing { scalars } if scalars.len() < 2) {
            error(claim.check.span(), format!("claim {:?}: expected at least two scalars to order", claim.name));
        }
        if let Check::Near { tolerance, value, .. } = check {
            if !(tolerance.is_finite() && *tolerance >= 0.0 && value.is_finite()) {
                error(
                    claim.check.span(),
                    format!("claim {:?}: expected a finite value and a finite tolerance >= 0", claim.name),
                );
            }
        }
        let empty_reason = claim.reason.as_deref().is_none_or(|r| r.trim().is_empty());
        if !claim.holds() && empty_reason {
            error(
                claim.class.span(),
                format!(
                    "claim {:?} is a finding: expected a `reason`, computed or measured, saying why the claim does \
                     not hold",
                    claim.name
                ),
            );
        }
        if claim.holds() && !empty_reason {
            error(
                claim.class.span(),
                format!(
                    "claim {:?} has a `reason` but is expected to hold: only a `class = \"finding\"` gives one",
                    claim.name
                ),
            );
        }
    }
    problems
}

/// What `deserialize` read: the paper where the file (with misspelt keys
/// read as their nearest names) parsed, the problems located in the original
/// text, that text as read, and the edits that made it.
struct Parsed {
    paper: Option<Paper>,
    errors: Vec<SpecError>,
    text: String,
    edits: Vec<(usize, usize, usize)>,
}

/// An offset of the edited text in the original: `edits` are (start, old
/// length, new length) in the order they were made.
fn original_offset(edits: &[(usize, usize, usize)], mut at: usize) -> usize {
    for &(start, old, new) in edits.iter().rev() {
        if at >= start + new {
            at = at - new + old;
        } else if at > start {
            at = start;
        }
    }
    at
}

/// Rounds of reading past a misspelt key (see `deserialize`).
const ROUNDS: usize = 32;

/// Deserializes the whole file, reporting as many problems as one round
/// can find: every value that breaks its type's rule (see
/// `values::collecting`), and past each unknown key that is a near miss of a
/// known one, read as that one, the problems after it. The paper, if there
/// was no problem besides bad values (whose stand-ins are in it).
fn deserialize(path: &Path, text: &str) -> Parsed {
    // The text as read so far: each misspelt key replaced by its nearest
    // name; `edits` (start, old length, new length) map offsets back.
    let mut edited = text.to_string();
    let mut edits: Vec<(usize, usize, usize)> = Vec::new();
    let original = original_offset;
    let mut found: Vec<(usize, String)> = Vec::new();
    let mut add = |at: usize, message: String| {
        if !found.iter().any(|(a, m)| *a == at && *m == message) {
            found.push((at, message));
        }
    };
    let mut paper = None;
    for _ in 0..ROUNDS {
        let (result, bad_values) = crate::values::collecting(|| toml::from_str::<Paper>(&edited));
        for (span, message) in bad_values {
            add(original(&edits, span.start), message);
        }
        match result {
            Ok(p) => {
                paper = Some(p);
                break;
            }
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                let raw = e.message().trim();
                let mut message = explain_kind_count(&edited, &span, raw);
                let near = crate::suggest::serde_unknown(raw)
                    .and_then(|(unknown, known)| Some((unknown, crate::suggest::nearest(unknown, known)?)));
                if let Some((_, name)) = near {
                    message += &format!("; did you mean `{name}`?");
                }
                add(original(&edits, span.start), message);
                // Read an unknown key as its near name and go on; stop at
                // anything else (the rest of the file may not parse sensibly).
                match near {
                    Some((unknown, name))
                        if raw.starts_with("unknown field") && edited.get(span.clone()) == Some(unknown) =>
                    {
                        edited.replace_range(span.clone(), name);
                        edits.push((span.start, span.len(), name.len()));
                    }
                    _ => break,
                }
            }
        }
    }
    found.sort_by_key(|(at, _)| *at);
    let errors = found.into_iter().map(|(at, message)| locate(path, text, at..at, message)).collect();
    Parsed { paper, errors, text: edited, edits }
}

/// The file (as read, misspelt keys replaced) with the other set of
/// stand-ins for its bad values (see `values::collecting`).
fn reparse_with_other_stand_ins(text: &str) -> Option<Paper> {
    crate::values::collecting_other(|| toml::from_str::<Paper>(text)).0.ok()
}

/// The byte offset of a 1-based line and column (in characters) of `text`.
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let line_start: usize = text.split_inclusive('\n').take(line - 1).map(str::len).sum();
    let in_line: usize = text[line_start..].chars().take(column - 1).map(char::len_utf8).sum();
    line_start + in_line
}

/// Where, in figure `figure`'s `[figure.experiment.<kind>]` table, the field
/// that a problem names is: a problem in words starts with the path of the
/// field to change, `model[0].width: ...` or `starvation: frequencies: ...`
/// (a kind that trains through another prefixes the other's table). The key
/// of the deepest field found; None when the problem names none.
pub(crate) fn field_span(doc: &toml::de::DeTable, figure: usize, kind: &str, problem: &str) -> Option<Range<usize>> {
    let figures = match doc.iter().find(|(k, _)| k.get_ref() == "figure")?.1.get_ref() {
        toml::de::DeValue::Array(a) => a,
        _ => return None,
    };
    let experiment = table_entry(figures.get(figure)?.get_ref(), "experiment")?.1;
    let mut node = table_entry(experiment.get_ref(), kind)?.1.get_ref();
    let mut found = None;
    let mut rest = problem;
    while let Some((head, tail)) = rest.split_once(": ") {
        if head.is_empty() || !head.chars().all(|c| c.is_ascii_alphanumeric() || "_.[]".contains(c)) {
            break;
        }
        let Some((span, value)) = walk(node, head) else { break };
        found = Some(span);
        node = value;
        rest = tail;
    }
    found
}

fn table_entry<'a, 'i>(
    value: &'a toml::de::DeValue<'i>,
    key: &str,
) -> Option<(Range<usize>, &'a Spanned<toml::de::DeValue<'i>>)> {
    match value {
        toml::de::DeValue::Table(t) => t.iter().find(|(k, _)| k.get_ref() == key).map(|(k, v)| (k.span(), v)),
        _ => None,
    }
}

/// Follows a path such as `model[0].width` from `node`: the span of the last
/// key (or item) and its value.
fn walk<'a, 'i>(mut node: &'a toml::de::DeValue<'i>, path: &str) -> Option<(Range<usize>, &'a toml::de::DeValue<'i>)> {
    let mut span = None;
    for part in path.split('.') {
        let (key, indices) = part.split_once('[').map_or((part, ""), |(k, i)| (k, i));
        let (key_span, value) = table_entry(node, key)?;
        span = Some(key_span);
        node = value.get_ref();
        for index in indices.split('[').filter(|s| !s.is_empty()) {
            let i: usize = index.trim_end_matches(']').parse().ok()?;
            let item = match node {
                toml::de::DeValue::Array(a) => a.get(i)?,
                _ => return None,
            };
            // An item of an array of tables spans its header; a field of it, its key.
            span = Some(item.span());
            node = item.get_ref();
        }
    }
    Some((span?, node))
}

/// Why a control cannot be a counterfactual of this check: it must change
/// something the check reads, or it could never flip its outcome.
fn control_problems(check: &Check, control: &Control, outputs: &Outputs) -> Vec<String> {
    let (series, scalars, samples) = (check.series_names(), check.scalar_names(), check.sample_names());
    let reads = |name: &str| series.contains(&name) || scalars.contains(&name) || samples.contains(&name);
    let mut problems = Vec::new();
    match control {
        Control::Reverse if !check.is_ordering() => problems
            .push("`reverse` turns around an ordering (increasing, decreasing, sharper); this check has none".into()),
        Control::Swap { a, b } => {
            for name in [a, b] {
                if ![&outputs.series, &outputs.scalars, &outputs.samples].iter().any(|known| known.contains(name)) {
                    problems.push(format!(
                        "swap names {name:?}, which is neither a series, a scalar nor samples of the figure"
                    ));
                }
            }
            if a == b {
                problems.push("swap needs two different names".into());
            } else if !reads(a) && !reads(b) {
                problems.push(format!("swap changes neither {a:?} nor {b:?} for this check, which reads neither"));
            }
        }
        Control::Offset { by, .. } | Control::Scale { by, .. } if !by.is_finite() => {
            problems.push(format!("expected a finite `by`, got {by}"))
        }
        _ => {}
    }
    for name in control.series_names().into_iter().chain(control.scalar_names()) {
        if !reads(name) {
            problems.push(format!("it changes {name:?}, which this check does not read"));
        }
    }
    problems
}

/// serde's message for a kind table (`experiment`, `check`, `init`) with
/// several kinds or none, "wanted exactly 1 element, ...", names neither the
/// table nor the kinds. The usual cause is a misspelt kind whose sub-tables
/// (`[[figure.experiment.sigmoid.model]]`) still name the right one.
fn explain_kind_count(text: &str, span: &Range<usize>, message: &str) -> String {
    if !message.starts_with("wanted exactly 1 element") {
        return message.to_string();
    }
    let key = text
        .get(span.clone())
        .and_then(|s| s.split(['.', ' ', '=', ']']).next())
        .unwrap_or("")
        .trim_matches(['"', '\'', '[']);
    let expected = match key {
        "experiment" => kinds::<ExperimentSpec>(),
        "check" => kinds::<Check>(),
        "control" => kinds::<Control>(),
        _ => None,
    };
    let found = if message.contains("more than 1") { "several kinds (is one misspelt?)" } else { "none" };
    let name = if key.is_empty() { "this table".to_string() } else { format!("`{key}`") };
    match expected {
        Some(kinds) => format!("{name} must name exactly one kind, found {found}: expected {kinds}"),
        None => format!("{name} must name exactly one kind, found {found}"),
    }
}

/// "one of `a`, `b`": the kinds an externally tagged enum accepts, as serde
/// lists them for an unknown one.
fn kinds<T: serde::de::DeserializeOwned>() -> Option<String> {
    use serde::de::IntoDeserializer;
    let probe: serde::de::value::StrDeserializer<serde::de::value::Error> = "\u{0}".into_deserializer();
    let message = T::deserialize(probe).err()?.to_string();
    message.split_once("expected ").map(|(_, kinds)| kinds.to_string())
}

fn quoted(names: &[String]) -> String {
    names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
}
