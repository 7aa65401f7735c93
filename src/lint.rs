//! A referee's checks on what a reader sees: a built figure (its data, drawn
//! at its screen and publication sizes) in, a list of problems out, each
//! naming the figure, the panel and the series it concerns and what is wrong
//! in plain words. Plain functions; nothing here trains, writes or prints.
//!
//! The rules (thresholds are the constants below, each with its reason):
//!
//! 1. [`Rule::Hidden`]: a series whose marks mostly lie on a series drawn
//!    after it, at the size a reader sees (the publication PNG).
//! 2. [`Rule::Clipped`]: data outside a panel's fixed axis range.
//! 3. [`Rule::Promise`]: a legend entry, band text or caption that promises
//!    something nothing draws.
//! 4. [`Rule::Colour`]: colours a reader cannot tell apart (also with
//!    deuteranopia or protanopia), or too faint on white.
//! 5. [`Rule::Aspect`]: an `equal_aspect` panel drawn with unequal scales
//!    (a check of the renderers).
//! 6. [`Rule::Text`]: publication text that overflows its room or wraps to a
//!    lone short token.
//! 7. [`Rule::Gallery`]: a table row of the gallery (figures/README.md) with
//!    another number of cells than its header.
//!
//! Whether problems refuse a run is `pipeline::Options::refuse_lint` (always
//! on from the command line).

use std::fmt;

use anyhow::Result;
use serde::Serialize;

use crate::figure::{FigureData, Panel, Series, Source, Style};
use crate::publication::{self, Layout};
use crate::render::{self, DrawnPanel};
use crate::spec::{PublicationSpec, RenderSpec};

/// A series is hidden where its marks lie within this many pixels of the
/// PNG (300 dpi: 0.36 pt) of a later series' centre line or marker centre:
/// a line there is 1 pt (4.2 px) wide, so the later one covers it.
pub const HIDDEN_PX: f64 = 1.5;
/// ... over at least this share of its marks (a reader sees too little of
/// the rest to find it).
pub const HIDDEN_SHARE: f64 = 0.8;
/// Two colours of one kind of mark with different meanings must differ by
/// at least this CIEDE2000 distance, for normal vision and simulated
/// deuteranopia and protanopia. About 2 is a just noticeable difference
/// between patches side by side; thin lines apart need several times more.
/// 10 accepts every pair of the Okabe-Ito palette's colours (the closest:
/// orange and yellow under deuteranopia, 11.6; blue and purple under
/// protanopia, 12.2) and refuses its purple against grey (6.2, deuteranopia).
pub const MIN_COLOUR_DISTANCE: f64 = 10.0;
/// A drawn colour's contrast ratio on white (WCAG 2's, from relative
/// luminance) must be at least this. Okabe-Ito yellow (#F0E442, 1.32) is
/// refused; orange (2.25) and sky blue (2.31, the borderline case: accepted)
/// pass, as do vermillion 3.87, green 3.42, purple 3.06 and blue 5.19.
/// WCAG's 3 for graphics would refuse orange and sky blue, which read well
/// as 1 pt lines on white.
pub const MIN_CONTRAST: f64 = 2.0;
/// An `equal_aspect` panel's units per pixel across and up may differ by
/// this share (plotters places marks on whole pixels).
pub const ASPECT_TOLERANCE: f64 = 0.03;
/// A wrapped text's last line is a widow when it is one token narrower than
/// this share of its room (a lone "0.01" under a full line).
pub const SHORT_LAST_LINE: f64 = 0.25;

/// Which rule a problem breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    Hidden,
    Clipped,
    Promise,
    Colour,
    Aspect,
    Text,
    Gallery,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rule::Hidden => "hidden series",
            Rule::Clipped => "clipped data",
            Rule::Promise => "promised but not drawn",
            Rule::Colour => "colour",
            Rule::Aspect => "equal aspect",
            Rule::Text => "text",
            Rule::Gallery => "gallery table",
        })
    }
}

/// One thing a reader would trip over.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub figure: String,
    /// The panel's index and title; None for the whole figure (its caption,
    /// the gallery).
    pub panel: Option<(usize, String)>,
    /// The series it concerns (the first one, where it is a pair).
    pub series: Option<String>,
    pub rule: Rule,
    /// What is wrong, in plain words.
    pub what: String,
}

impl fmt::Display for Problem {
    /// One line: figure | panel | series | rule | what.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let panel = self.panel.as_ref().map_or("-".to_string(), |(i, title)| format!("panel {i} {title:?}"));
        let series = self.series.as_ref().map_or("-".to_string(), |s| format!("series {s:?}"));
        write!(f, "{} | {panel} | {series} | {} | {}", self.figure, self.rule, self.what)
    }
}

/// How a figure is drawn: the screen SVG's panels and the publication layout.
#[derive(Debug, Clone, PartialEq)]
pub struct Drawing {
    pub screen: Vec<DrawnPanel>,
    pub publication: Layout,
}

/// Draws the figure at its sizes (SVG text only, no PNG) and checks it.
pub fn figure(fig: &FigureData, screen: &RenderSpec, paper: &PublicationSpec) -> Result<Vec<Problem>> {
    let drawing = Drawing { screen: render::drawn_panels(fig, screen)?, publication: publication::layout(fig, paper)? };
    Ok(check(fig, &drawing))
}

/// Every rule but the gallery's, on a figure as drawn.
pub fn check(fig: &FigureData, drawing: &Drawing) -> Vec<Problem> {
    let mut out = Vec::new();
    hidden(fig, &drawing.publication, &mut out);
    clipped(fig, &drawing.publication, &mut out);
    promises(fig, &mut out);
    colours(fig, &mut out);
    aspect(fig, drawing, &mut out);
    text(fig, &drawing.publication, &mut out);
    out
}

fn problem(fig: &FigureData, panel: Option<usize>, series: Option<&str>, rule: Rule, what: String) -> Problem {
    Problem {
        figure: fig.id.clone(),
        panel: panel.map(|i| (i, fig.body.panels.get(i).map_or(String::new(), |p| p.title.clone()))),
        series: series.map(str::to_string),
        rule,
        what,
    }
}

/// The legend's text for a series (its name where data has no label).
fn label(s: &Series) -> &str {
    if s.legend_label.is_empty() {
        &s.name
    } else {
        &s.legend_label
    }
}

/// Whether the series draws at least one point its panel's axes can show.
fn draws_something(panel: &Panel, s: &Series) -> bool {
    s.x.iter()
        .zip(&s.y)
        .any(|(&x, &y)| render::axis_value(x, panel.x_log).is_some() && render::axis_value(y, panel.y_log).is_some())
}

fn panel_series(fig: &FigureData, i: usize) -> Vec<&Series> {
    fig.body.series.iter().filter(|s| s.panel == i).collect()
}

// ---- 1. Hidden series ------------------------------------------------------

/// Where a series puts ink, in PNG pixels: samples along its lines (at most
/// `step` apart, the parts inside the plotting area) or its markers' centres.
fn marks(panel: &Panel, drawn: &DrawnPanel, s: &Series, px: f64, step: f64) -> Vec<(f64, f64)> {
    let to_px = |p: (f64, f64)| (p.0 * px, p.1 * px);
    let rect = (
        (drawn.x_pixels.0.min(drawn.x_pixels.1) * px, drawn.y_pixels.0.min(drawn.y_pixels.1) * px),
        (drawn.x_pixels.0.max(drawn.x_pixels.1) * px, drawn.y_pixels.0.max(drawn.y_pixels.1) * px),
    );
    let at: Vec<Option<(f64, f64)>> = s.x.iter().zip(&s.y).map(|(&x, &y)| drawn.at(panel, x, y).map(to_px)).collect();
    let inside = |&(x, y): &(f64, f64)| rect.0 .0 <= x && x <= rect.1 .0 && rect.0 .1 <= y && y <= rect.1 .1;
    match s.style {
        Style::Points => at.into_iter().flatten().filter(inside).collect(),
        Style::Line => {
            let mut out = Vec::new();
            // A missing point breaks the line, as the renderer's `runs` does.
            for pair in at.windows(2) {
                if let [Some(p), Some(q)] = pair {
                    if let Some((p, q)) = clip(*p, *q, rect) {
                        let n = ((q.0 - p.0).hypot(q.1 - p.1) / step).ceil().max(1.0) as usize;
                        out.extend((0..=n).map(|k| {
                            let t = k as f64 / n as f64;
                            (p.0 + (q.0 - p.0) * t, p.1 + (q.1 - p.1) * t)
                        }));
                    }
                }
            }
            if out.is_empty() {
                // A single point draws no line, but its run does not vanish from the data.
                out.extend(at.into_iter().flatten().filter(inside));
            }
            out
        }
        Style::Area | Style::Arrows => Vec::new(),
    }
}

/// The part of segment p-q inside `rect` (Liang-Barsky), if any: a line
/// running far off the axes is sampled only where it is drawn.
fn clip(p: (f64, f64), q: (f64, f64), rect: ((f64, f64), (f64, f64))) -> Option<((f64, f64), (f64, f64))> {
    let (dx, dy) = (q.0 - p.0, q.1 - p.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (d, dist) in [(-dx, p.0 - rect.0 .0), (dx, rect.1 .0 - p.0), (-dy, p.1 - rect.0 .1), (dy, rect.1 .1 - p.1)] {
        if d == 0.0 {
            if dist < 0.0 {
                return None;
            }
        } else {
            let t = dist / d;
            if d < 0.0 {
                t0 = t0.max(t);
            } else {
                t1 = t1.min(t);
            }
        }
    }
    (t0 <= t1).then_some(((p.0 + dx * t0, p.1 + dy * t0), (p.0 + dx * t1, p.1 + dy * t1)))
}

/// Cells of half a pixel within `HIDDEN_PX` of a series' marks: whether a
/// point lies near them is one lookup.
struct Near {
    origin: (f64, f64),
    width: usize,
    height: usize,
    cells: Vec<bool>,
}

const CELLS_PER_PX: f64 = 2.0;

impl Near {
    fn new(marks: &[(f64, f64)]) -> Near {
        let (mut lo, mut hi) = ((f64::INFINITY, f64::INFINITY), (f64::NEG_INFINITY, f64::NEG_INFINITY));
        for &(x, y) in marks {
            lo = (lo.0.min(x), lo.1.min(y));
            hi = (hi.0.max(x), hi.1.max(y));
        }
        let origin = (lo.0 - HIDDEN_PX - 1.0, lo.1 - HIDDEN_PX - 1.0);
        let size = |a: f64, b: f64| {
            if a.is_finite() {
                ((b - a + 2.0 * HIDDEN_PX + 2.0) * CELLS_PER_PX) as usize + 1
            } else {
                0
            }
        };
        let (width, height) = (size(lo.0, hi.0), size(lo.1, hi.1));
        let mut near = Near { origin, width, height, cells: vec![false; width * height] };
        let r = (HIDDEN_PX * CELLS_PER_PX).ceil() as i64;
        for &(x, y) in marks {
            let (cx, cy) = near.cell((x, y));
            for j in -r..=r {
                for i in -r..=r {
                    let centre = (
                        near.origin.0 + (cx + i) as f64 / CELLS_PER_PX,
                        near.origin.1 + (cy + j) as f64 / CELLS_PER_PX,
                    );
                    if (centre.0 - x).hypot(centre.1 - y) <= HIDDEN_PX {
                        near.set(cx + i, cy + j);
                    }
                }
            }
        }
        near
    }

    fn cell(&self, (x, y): (f64, f64)) -> (i64, i64) {
        (((x - self.origin.0) * CELLS_PER_PX).round() as i64, ((y - self.origin.1) * CELLS_PER_PX).round() as i64)
    }

    fn index(&self, cx: i64, cy: i64) -> Option<usize> {
        let inside = (0..self.width as i64).contains(&cx) && (0..self.height as i64).contains(&cy);
        inside.then(|| cy as usize * self.width + cx as usize)
    }

    fn set(&mut self, cx: i64, cy: i64) {
        if let Some(i) = self.index(cx, cy) {
            self.cells[i] = true;
        }
    }

    fn contains(&self, p: (f64, f64)) -> bool {
        let (cx, cy) = self.cell(p);
        self.index(cx, cy).is_some_and(|i| self.cells[i])
    }
}

/// Series the rule leaves out: area fills (translucent, drawn first),
/// arrows (small grey heads: a direction, not a quantity) and grey
/// background theory lines (streamlines: context, drawn thin).
fn not_a_mark(s: &Series) -> bool {
    matches!(s.style, Style::Area | Style::Arrows) || render::is_background(s)
}

/// Whether `later`, drawn over `earlier` along it, leaves it unseen. Not
/// where both mean one thing (one look and label: the legend cannot tell
/// them apart anyway), nor a pair declared identical (`identical_to`) and
/// drawn with distinct marks, nor a dashed theory line over a series of a
/// visibly other colour (the gaps show it: how a theory is drawn over its
/// measurement); the same colour through the gaps reads as one line.
fn may_cover(earlier: &Series, later: &Series) -> bool {
    if earlier.look() == later.look() && label(earlier) == label(later) {
        return false;
    }
    let declared =
        earlier.identical_to.as_deref() == Some(&later.name) || later.identical_to.as_deref() == Some(&earlier.name);
    if declared && earlier.look().1 != later.look().1 {
        return false;
    }
    let dashed = later.style == Style::Line && later.source == Source::Theory;
    !(dashed && colour_distance(&earlier.color, &later.color).is_some_and(|d| d >= MIN_COLOUR_DISTANCE))
}

fn hidden(fig: &FigureData, layout: &Layout, out: &mut Vec<Problem>) {
    let px = layout.png_pixels_per_unit;
    for (i, panel) in fig.body.panels.iter().enumerate() {
        let Some(drawn) = layout.panels.get(i) else { continue };
        let series = panel_series(fig, i);
        for s in &series {
            if let Some(other) = &s.identical_to {
                if !series.iter().any(|o| &o.name == other && o.name != s.name) {
                    let what = format!("declared identical to {other:?}, which is no other series of this panel");
                    out.push(problem(fig, Some(i), Some(&s.name), Rule::Hidden, what));
                }
            }
        }
        let order = render::draw_order(&series);
        // Samples 1 px apart on the series that may be hidden; half a pixel
        // on those that may cover, so that their near cells join up.
        let samples: Vec<Vec<(f64, f64)>> = order.iter().map(|s| marks(panel, drawn, s, px, 1.0)).collect();
        // For each series, the later one that covers most of it, and how much.
        let mut worst: Vec<Option<(f64, usize)>> = vec![None; order.len()];
        for (b, later) in order.iter().enumerate().skip(1) {
            if not_a_mark(later) {
                continue;
            }
            let near = Near::new(&marks(panel, drawn, later, px, 0.5));
            for (a, earlier) in order[..b].iter().enumerate() {
                if not_a_mark(earlier) || samples[a].is_empty() || !may_cover(earlier, later) {
                    continue;
                }
                let covered = samples[a].iter().filter(|&&p| near.contains(p)).count();
                let share = covered as f64 / samples[a].len() as f64;
                if share >= HIDDEN_SHARE && worst[a].is_none_or(|(w, _)| share > w) {
                    worst[a] = Some((share, b));
                }
            }
        }
        for (a, found) in worst.iter().enumerate() {
            if let Some((share, b)) = found {
                let what = format!(
                    "{:.0}% of it lies within {HIDDEN_PX} px (at 300 dpi) of {:?} ({}, {}), drawn after it: \
                     a reader cannot see it (move, restyle or declare the pair identical with distinct marks)",
                    share * 100.0,
                    order[*b].name,
                    order[*b].look().1,
                    order[*b].color
                );
                out.push(problem(fig, Some(i), Some(&order[a].name), Rule::Hidden, what));
            }
        }
    }
}

// ---- 2. Clipping -----------------------------------------------------------

fn clipped(fig: &FigureData, layout: &Layout, out: &mut Vec<Problem>) {
    for (i, panel) in fig.body.panels.iter().enumerate() {
        let Some(drawn) = layout.panels.get(i) else { continue };
        for s in panel_series(fig, i) {
            // A region's fill is cut by the frame on purpose (a half-plane
            // is a polygon reaching past the axes).
            if s.style == Style::Area {
                continue;
            }
            let band = s.band.iter().flat_map(|b| b.lo.iter().chain(&b.hi));
            let axes = [
                ("x", panel.x_range, drawn.x_range, panel.x_log, s.x.iter().collect::<Vec<_>>()),
                ("y", panel.y_range, drawn.y_range, panel.y_log, s.y.iter().chain(band).collect()),
            ];
            for (axis, fixed, (lo, hi), log, values) in axes {
                let Some((from, to)) = fixed else { continue };
                let slack = 1e-9 * (hi - lo).abs().max(1e-300);
                let outside: Vec<f64> = values
                    .into_iter()
                    .filter(|&&v| {
                        render::axis_value(v, log).is_some_and(|a| a < lo.min(hi) - slack || a > hi.max(lo) + slack)
                    })
                    .copied()
                    .collect();
                if !outside.is_empty() {
                    let (min, max) =
                        outside.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
                    let what = format!(
                        "{} of its {axis} values lie outside the panel's fixed {axis} range [{from}, {to}] \
                         (from {min} to {max}): they are cut off at the frame",
                        outside.len()
                    );
                    out.push(problem(fig, Some(i), Some(&s.name), Rule::Clipped, what));
                }
            }
        }
    }
}

// ---- 3. Promises with nothing drawn ----------------------------------------

/// Whether `text` has the word "band" or "bands" (not "bandwidth").
fn says_band(text: &str) -> bool {
    text.to_lowercase().split(|c: char| !c.is_alphanumeric()).any(|w| w == "band" || w == "bands")
}

/// Whether a band draws anything: one value per point of its line, and
/// somewhere a width (a band of one seed is a line under the line).
fn band_drawn(s: &Series) -> bool {
    s.band.as_ref().is_some_and(|b| {
        b.lo.len() == s.x.len() && b.hi.len() == s.x.len() && b.lo.iter().zip(&b.hi).any(|(lo, hi)| hi > lo)
    })
}

fn promises(fig: &FigureData, out: &mut Vec<Problem>) {
    let body = &fig.body;
    for entry in body.legend_entries() {
        let s = entry.series;
        let alike: Vec<&Series> =
            body.series.iter().filter(|o| o.look() == s.look() && label(o) == entry.label).collect();
        let draws = alike.iter().any(|o| body.panels.get(o.panel).is_some_and(|p| draws_something(p, o)));
        if !draws {
            let what = format!(
                "its legend entry {:?} shows a {} in {}, but no series drawn so has a point the axes can show",
                entry.label,
                s.look().1,
                s.color
            );
            out.push(problem(fig, Some(s.panel), Some(&s.name), Rule::Promise, what));
        }
        if says_band(&entry.label) && !alike.iter().any(|o| band_drawn(o)) {
            let what = format!("its legend text {:?} speaks of a band, but none is drawn", entry.label);
            out.push(problem(fig, Some(s.panel), Some(&s.name), Rule::Promise, what));
        }
    }
    for s in &body.series {
        if let Some(b) = &s.band {
            if !band_drawn(s) {
                let why = if b.lo.len() != s.x.len() || b.hi.len() != s.x.len() {
                    format!("has {} and {} values for {} points", b.lo.len(), b.hi.len(), s.x.len())
                } else {
                    "has no width anywhere".to_string()
                };
                let what = format!("the legend promises a band ({:?}) but its band {why}: nothing is drawn", b.what);
                out.push(problem(fig, Some(s.panel), Some(&s.name), Rule::Promise, what));
            }
        }
    }
    if says_band(&fig.caption) && !body.series.iter().any(band_drawn) {
        let what = "the caption speaks of a band, but no series of the figure draws one".to_string();
        out.push(problem(fig, None, None, Rule::Promise, what));
    }
}

// ---- 4. Colour -------------------------------------------------------------

/// sRGB "#rrggbb" to linear RGB in [0, 1].
fn linear_rgb(hex: &str) -> Option<[f64; 3]> {
    let hex = hex.strip_prefix('#')?;
    if hex.len() != 6 {
        return None;
    }
    let v = u32::from_str_radix(hex, 16).ok()?;
    let channel = |c: u32| {
        let c = c as f64 / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    Some([channel((v >> 16) & 255), channel((v >> 8) & 255), channel(v & 255)])
}

/// CIELAB (D65 white) of linear RGB.
fn lab_of_linear([r, g, b]: [f64; 3]) -> [f64; 3] {
    let x = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / 0.95047;
    let y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b;
    let z = (0.0193339 * r + 0.1191920 * g + 0.9503041 * b) / 1.08883;
    let f =
        |t: f64| if t > (6.0f64 / 29.0).powi(3) { t.cbrt() } else { t / (3.0 * (6.0f64 / 29.0).powi(2)) + 4.0 / 29.0 };
    let (fx, fy, fz) = (f(x), f(y), f(z));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// CIELAB of an sRGB "#rrggbb" colour.
pub fn lab(hex: &str) -> Option<[f64; 3]> {
    linear_rgb(hex).map(lab_of_linear)
}

/// Colour vision, and how a colour appears in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vision {
    Normal,
    Deuteranopia,
    Protanopia,
}

impl Vision {
    pub const ALL: [Vision; 3] = [Vision::Normal, Vision::Deuteranopia, Vision::Protanopia];

    fn name(self) -> &'static str {
        match self {
            Vision::Normal => "normal vision",
            Vision::Deuteranopia => "deuteranopia",
            Vision::Protanopia => "protanopia",
        }
    }

    /// Machado, Oliveira and Fernandes (2009), severity 1, on linear RGB.
    fn simulate(self, rgb: [f64; 3]) -> [f64; 3] {
        let m = match self {
            Vision::Normal => return rgb,
            Vision::Deuteranopia => {
                [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]]
            }
            Vision::Protanopia => {
                [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]]
            }
        };
        m.map(|row| (row[0] * rgb[0] + row[1] * rgb[1] + row[2] * rgb[2]).clamp(0.0, 1.0))
    }
}

/// The CIEDE2000 colour difference of two CIELAB colours (Sharma, Wu and
/// Dalal 2005, with kL = kC = kH = 1).
pub fn ciede2000(lab1: [f64; 3], lab2: [f64; 3]) -> f64 {
    let [l1, a1, b1] = lab1;
    let [l2, a2, b2] = lab2;
    let c_mean = (a1.hypot(b1) + a2.hypot(b2)) / 2.0;
    let pow7 = |c: f64| c.powi(7);
    let g = 0.5 * (1.0 - (pow7(c_mean) / (pow7(c_mean) + pow7(25.0))).sqrt());
    let (a1, a2) = ((1.0 + g) * a1, (1.0 + g) * a2);
    let (c1, c2) = (a1.hypot(b1), a2.hypot(b2));
    let hue = |b: f64, a: f64| if a == 0.0 && b == 0.0 { 0.0 } else { b.atan2(a).to_degrees().rem_euclid(360.0) };
    let (h1, h2) = (hue(b1, a1), hue(b2, a2));
    let dl = l2 - l1;
    let dc = c2 - c1;
    let dh = if c1 * c2 == 0.0 {
        0.0
    } else if (h2 - h1).abs() <= 180.0 {
        h2 - h1
    } else if h2 - h1 > 180.0 {
        h2 - h1 - 360.0
    } else {
        h2 - h1 + 360.0
    };
    let dh_big = 2.0 * (c1 * c2).sqrt() * (dh.to_radians() / 2.0).sin();
    let l_mean = (l1 + l2) / 2.0;
    let c_mean = (c1 + c2) / 2.0;
    let h_mean = if c1 * c2 == 0.0 {
        h1 + h2
    } else if (h1 - h2).abs() <= 180.0 {
        (h1 + h2) / 2.0
    } else if h1 + h2 < 360.0 {
        (h1 + h2 + 360.0) / 2.0
    } else {
        (h1 + h2 - 360.0) / 2.0
    };
    let cos = |deg: f64| deg.to_radians().cos();
    let t = 1.0 - 0.17 * cos(h_mean - 30.0) + 0.24 * cos(2.0 * h_mean) + 0.32 * cos(3.0 * h_mean + 6.0)
        - 0.20 * cos(4.0 * h_mean - 63.0);
    let d_theta = 30.0 * (-((h_mean - 275.0) / 25.0).powi(2)).exp();
    let rc = 2.0 * (pow7(c_mean) / (pow7(c_mean) + pow7(25.0))).sqrt();
    let sl = 1.0 + 0.015 * (l_mean - 50.0).powi(2) / (20.0 + (l_mean - 50.0).powi(2)).sqrt();
    let sc = 1.0 + 0.045 * c_mean;
    let sh = 1.0 + 0.015 * c_mean * t;
    let rt = -(2.0 * d_theta).to_radians().sin() * rc;
    ((dl / sl).powi(2) + (dc / sc).powi(2) + (dh_big / sh).powi(2) + rt * (dc / sc) * (dh_big / sh)).sqrt()
}

/// CIEDE2000 distance of two "#rrggbb" colours as seen with `vision`.
pub fn distance_in(vision: Vision, a: &str, b: &str) -> Option<f64> {
    let seen = |hex: &str| linear_rgb(hex).map(|c| lab_of_linear(vision.simulate(c)));
    Some(ciede2000(seen(a)?, seen(b)?))
}

/// The smallest CIEDE2000 distance of two colours over the visions checked.
fn colour_distance(a: &str, b: &str) -> Option<f64> {
    Vision::ALL.iter().map(|&v| distance_in(v, a, b)).try_fold(f64::INFINITY, |m, d| d.map(|d| m.min(d)))
}

/// WCAG 2's contrast ratio of a "#rrggbb" colour on white (1 to 21).
pub fn contrast_on_white(hex: &str) -> Option<f64> {
    let [r, g, b] = linear_rgb(hex)?;
    let luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    Some(1.05 / (luminance + 0.05))
}

fn colours(fig: &FigureData, out: &mut Vec<Problem>) {
    for (i, panel) in fig.body.panels.iter().enumerate() {
        // Lines and points that draw something, in their own colour; not
        // fills, arrows (grey heads whatever their colour) or grey background.
        let drawn: Vec<&Series> =
            panel_series(fig, i).into_iter().filter(|s| !not_a_mark(s) && draws_something(panel, s)).collect();
        for s in &drawn {
            match contrast_on_white(&s.color) {
                None => {
                    let what = format!("its colour {:?} is not \"#rrggbb\"", s.color);
                    out.push(problem(fig, Some(i), Some(&s.name), Rule::Colour, what));
                }
                Some(ratio) if ratio < MIN_CONTRAST => {
                    let what = format!(
                        "its colour {} has a contrast of {ratio:.2} on white (at least {MIN_CONTRAST} needed): \
                         too faint to read",
                        s.color
                    );
                    out.push(problem(fig, Some(i), Some(&s.name), Rule::Colour, what));
                }
                Some(_) => {}
            }
        }
        // Pairs a reader tells apart by colour alone: one kind of mark, two
        // meanings. Each pair of (colour, label) once per panel.
        let mut seen = std::collections::BTreeSet::new();
        for (k, a) in drawn.iter().enumerate() {
            for b in &drawn[k + 1..] {
                if a.look().1 != b.look().1 || label(a) == label(b) {
                    continue;
                }
                let key = (a.color.to_ascii_lowercase(), label(a), b.color.to_ascii_lowercase(), label(b));
                if !seen.insert(key) {
                    continue;
                }
                let close: Vec<String> = Vision::ALL
                    .iter()
                    .filter_map(|&v| distance_in(v, &a.color, &b.color).map(|d| (d, v)))
                    .filter(|(d, _)| *d < MIN_COLOUR_DISTANCE)
                    .map(|(d, v)| format!("{d:.1} under {}", v.name()))
                    .collect();
                if !close.is_empty() {
                    let what = format!(
                        "its colour {} and the colour {} of {:?}{}, both {}, differ by only {} \
                         (CIEDE2000; at least {MIN_COLOUR_DISTANCE} needed)",
                        a.color,
                        b.color,
                        b.name,
                        if label(b) == b.name { String::new() } else { format!(" (legend {:?})", label(b)) },
                        a.look().1,
                        close.join(", ")
                    );
                    out.push(problem(fig, Some(i), Some(&a.name), Rule::Colour, what));
                }
            }
        }
    }
}

// ---- 5. Equal aspect -------------------------------------------------------

fn aspect(fig: &FigureData, drawing: &Drawing, out: &mut Vec<Problem>) {
    for (i, panel) in fig.body.panels.iter().enumerate() {
        if !panel.equal_aspect {
            continue;
        }
        for (variant, drawn) in
            [("screen SVG", drawing.screen.get(i)), ("publication variant", drawing.publication.panels.get(i))]
        {
            let Some(drawn) = drawn else { continue };
            let (across, up) = drawn.units_per_pixel();
            let ratio = across / up;
            if !ratio.is_finite() || (ratio - 1.0).abs() > ASPECT_TOLERANCE {
                let what = format!(
                    "marked equal_aspect, but the {variant} draws {across:.4} units per pixel across and \
                     {up:.4} up ({:.1}% apart, at most {:.0}%): distances and angles read false",
                    (ratio - 1.0).abs() * 100.0,
                    ASPECT_TOLERANCE * 100.0
                );
                out.push(problem(fig, Some(i), None, Rule::Aspect, what));
            }
        }
    }
}

// ---- 6. Text ---------------------------------------------------------------

fn text(fig: &FigureData, layout: &Layout, out: &mut Vec<Problem>) {
    for t in &layout.texts {
        let lines = publication::wrap(&t.text, t.pt, t.room);
        let mut found = |what: String| out.push(problem(fig, Some(t.panel), t.series.as_deref(), Rule::Text, what));
        for line in &lines {
            let width = publication::text_width(line, t.pt);
            if width > t.room + 1e-6 {
                found(format!(
                    "the {} {:?}: {line:?} is {width:.1} pt wide at {} pt, its room {:.1} pt: it runs over",
                    t.what, t.text, t.pt, t.room
                ));
            }
        }
        if let [.., last] = lines.as_slice() {
            let width = publication::text_width(last, t.pt);
            if lines.len() > 1 && !last.contains(char::is_whitespace) && width < SHORT_LAST_LINE * t.room {
                found(format!(
                    "the {} {:?} wraps to {} lines, the last a lone {last:?} ({width:.1} pt of {:.1}): reword or shorten it",
                    t.what,
                    t.text,
                    lines.len(),
                    t.room
                ));
            }
        }
    }
}

// ---- 7. Gallery tables -----------------------------------------------------

/// The cells of a markdown table row: its unescaped `|` less one (a row
/// starts and ends with one).
fn cells(row: &str) -> usize {
    let mut pipes = 0usize;
    let mut chars = row.trim().chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '|' => pipes += 1,
            _ => {}
        }
    }
    pipes.saturating_sub(1)
}

fn is_separator(row: &str) -> bool {
    let row = row.trim();
    row.starts_with('|') && row.contains('-') && row.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '))
}

/// Every table row of a gallery (figures/README.md as written) whose number
/// of cells differs from its header's: an unescaped `|` in a cell splits it
/// and shifts the rest of the row. The figure is the one whose image
/// (`![id](...)`) came last.
pub fn gallery(markdown: &str) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut figure = "figures/README.md".to_string();
    let lines: Vec<&str> = markdown.lines().collect();
    let mut header: Option<usize> = None;
    for (n, line) in lines.iter().enumerate() {
        if let Some(rest) = line.strip_prefix("![") {
            figure = rest.split(']').next().unwrap_or_default().to_string();
        }
        if !line.trim_start().starts_with('|') {
            header = None;
            continue;
        }
        match header {
            None if lines.get(n + 1).is_some_and(|next| is_separator(next)) => header = Some(cells(line)),
            None => {}
            Some(expected) => {
                let found = cells(line);
                if found != expected && !is_separator(line) {
                    let shown: String = line.chars().take(100).collect();
                    out.push(Problem {
                        figure: figure.clone(),
                        panel: None,
                        series: None,
                        rule: Rule::Gallery,
                        what: format!(
                            "line {} of the gallery has {found} table cells, its header {expected} \
                             (an unescaped `|` in a cell?): {shown}{}",
                            n + 1,
                            if line.chars().count() > 100 { "..." } else { "" }
                        ),
                    });
                }
            }
        }
    }
    out
}
