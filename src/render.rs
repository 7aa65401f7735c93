//! Rendering: figure data in, SVG text out. Reads only `FigureData`, so
//! restyling a figure never retrains anything.
//!
//! Log axes are drawn as linear axes over log10 of the data, with decade
//! labels; theory is dashed, measurement solid, bands translucent. The legend
//! sits in its own column to the right, so it never hides data.

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::figure::{ClaimClass, FigureData, Panel, Series, Source, Style};
use crate::spec::RenderSpec;

pub(crate) const FONT: &str = "sans-serif";
const LEGEND_WIDTH: u32 = 270;
const LINE_HEIGHT: u32 = 17;

/// The sizes a panel is drawn with, in the canvas's units: the screen SVG's
/// (pixels, [`SCREEN`]) or the publication variant's (see publication.rs).
/// Font sizes are plotters' (it writes `font-size` as size / 1.24).
pub(crate) struct Look {
    /// The panel's title above its axes, if the chart draws it (the
    /// publication variant draws its own, wrapped).
    pub title: Option<f64>,
    /// Whether the chart draws the axis labels (the publication variant
    /// draws its own, wrapped).
    pub axis_labels: bool,
    pub tick_font: f64,
    pub axis_font: f64,
    pub margin: u32,
    pub margin_right: u32,
    pub x_label_area: u32,
    pub y_label_area: u32,
    /// Tick labels on the x and y axes (at most).
    pub ticks: (usize, usize),
    /// Width of the axes and tick marks, and the tick marks' length; `None`
    /// keeps plotters' defaults.
    pub axis: Option<(u32, i32)>,
    pub line: u32,
    /// Grey theory lines (streamlines): background.
    pub thin_line: u32,
    /// Dash and gap of theory lines.
    pub dash: (u32, u32),
    pub point: u32,
    pub labelled_point: u32,
    pub point_label_font: f64,
    pub point_label_bold: bool,
    pub point_label_offset: (i32, i32),
    /// Length and half width of arrowheads.
    pub arrowhead: (f64, f64),
}

pub(crate) const SCREEN: Look = Look {
    title: Some(14.0),
    axis_labels: true,
    tick_font: 12.0,
    axis_font: 13.0,
    margin: 8,
    margin_right: 24,
    x_label_area: 44,
    y_label_area: 64,
    ticks: (8, 8),
    axis: None,
    line: 2,
    thin_line: 1,
    dash: (7, 5),
    point: 3,
    labelled_point: 5,
    point_label_font: 16.0,
    point_label_bold: true,
    point_label_offset: (7, -20),
    arrowhead: (9.0, 4.0),
};

/// How a panel was drawn: its plotting area, in the canvas's units, and the
/// axis ranges plotters mapped onto it (log10 of the data on a log axis).
/// Read back from the chart that drew it, so a check of it (`lint`) checks
/// the drawing, not a second account of the layout.
#[derive(Debug, Clone, PartialEq)]
pub struct DrawnPanel {
    /// The first and last pixel column of the plotting area (plotters maps
    /// an axis onto its rectangle's first to last pixel, `end - 1`).
    pub x_pixels: (f64, f64),
    /// The pixel rows of the bottom and the top of the y axis.
    pub y_pixels: (f64, f64),
    pub x_range: (f64, f64),
    pub y_range: (f64, f64),
}

impl DrawnPanel {
    /// Where a data point is drawn, in the canvas's units; None for a value
    /// the axis cannot show (not finite, or <= 0 on a log axis).
    pub fn at(&self, panel: &Panel, x: f64, y: f64) -> Option<(f64, f64)> {
        let map = |v: f64, (lo, hi): (f64, f64), (a, b): (f64, f64)| a + (v - lo) / (hi - lo) * (b - a);
        let x = map(axis_value(x, panel.x_log)?, self.x_range, self.x_pixels);
        let y = map(axis_value(y, panel.y_log)?, self.y_range, self.y_pixels);
        Some((x, y))
    }

    /// Axis units (decades on a log axis) per canvas unit, across and up.
    pub fn units_per_pixel(&self) -> (f64, f64) {
        let per = |(lo, hi): (f64, f64), (a, b): (f64, f64)| (hi - lo).abs() / (b - a).abs().max(1e-9);
        (per(self.x_range, self.x_pixels), per(self.y_range, self.y_pixels))
    }

    /// Whether a drawn point (in canvas units) lies inside the plotting area.
    pub fn contains(&self, (x, y): (f64, f64)) -> bool {
        let within = |v: f64, (a, b): (f64, f64)| a.min(b) <= v && v <= a.max(b);
        within(x, self.x_pixels) && within(y, self.y_pixels)
    }
}

/// Renders a figure as SVG: same data, same bytes.
pub fn svg(fig: &FigureData, spec: &RenderSpec) -> Result<String> {
    Ok(draw(fig, spec)?.0)
}

/// How each panel of the SVG is drawn (see [`DrawnPanel`]), in the order of the panels.
pub fn drawn_panels(fig: &FigureData, spec: &RenderSpec) -> Result<Vec<DrawnPanel>> {
    Ok(draw(fig, spec)?.1)
}

fn draw(fig: &FigureData, spec: &RenderSpec) -> Result<(String, Vec<DrawnPanel>)> {
    let fig = &fig.typeset();
    // `height` is the title's and the panels'; the caption and the claims
    // below take what they need, so a longer text never squeezes the panels.
    let (width, plots_height) = (spec.width.get(), spec.height.get());
    let text_width_chars = (width as usize).saturating_sub(40) / 7;
    let mut footer = Vec::new();
    for line in wrap(&fig.caption, text_width_chars) {
        footer.push((line, RGBColor(40, 40, 40)));
    }
    // Evidence for the paper first, then the consistency checks (against an
    // exact theory of the same system), then the findings, each under its own heading.
    for (class, heading) in [
        (ClaimClass::Evidence, "EVIDENCE"),
        (ClaimClass::Consistency, "CONSISTENCY CHECKS (against an exact theory of the same system)"),
        (ClaimClass::Finding, "FINDINGS (the measurement contradicts the claim)"),
    ] {
        let claims: Vec<_> = fig.claims.iter().filter(|c| c.class == class).collect();
        if !claims.is_empty() {
            footer.push((heading.to_string(), RGBColor(40, 40, 40)));
        }
        for c in claims {
            let (tag, color) = match (c.passed, c.expected_to_pass, c.control_failed()) {
                (_, _, true) => ("CONTROL DID NOT FLIP", rgb("#D55E00")),
                (true, true, _) => ("PASS", rgb("#009E73")),
                (false, true, _) => ("FAIL", rgb("#D55E00")),
                (false, false, _) => ("DOES NOT HOLD", rgb("#B8860B")),
                (true, false, _) => ("HOLDS, BUT MARKED NOT HOLDING", rgb("#D55E00")),
            };
            let control = format!(
                "control: {} -> {}",
                c.control.counterfactual,
                if c.control.passed { "passes" } else { "fails" }
            );
            let mut text = format!("{tag}  {}: {} (expected {}; {control})", c.name, c.detail, c.expected);
            if let Some(reason) = &c.reason {
                text.push_str(&format!(" [why: {reason}]"));
            }
            for (i, line) in wrap(&text, text_width_chars).into_iter().enumerate() {
                footer.push((if i == 0 { line } else { format!("      {line}") }, color));
            }
        }
    }
    for d in fig.body.divergences.iter().take(3) {
        footer.push((
            format!("DIVERGED  job {:?}, seed {}, at step {} (NaN or infinity)", d.job, d.seed, d.step),
            rgb("#D55E00"),
        ));
    }
    let footer_height = 14 + LINE_HEIGHT * footer.len() as u32 + 18;
    let height = plots_height + footer_height;
    let mut out = String::new();
    let mut drawn = Vec::new();
    {
        let root = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let (top, rest) = root.split_vertically(36);
        top.draw(&Text::new(fig.title.clone(), (16, 10), (FONT, 19).into_font().style(FontStyle::Bold).color(&BLACK)))
            .map_err(draw_err)?;
        let plot_height = plots_height.saturating_sub(36);
        let (plots, bottom) = rest.split_vertically(plot_height);
        let (panels_area, legend_area) = plots.split_horizontally(width.saturating_sub(LEGEND_WIDTH));
        let areas = panels_area.split_evenly((1, fig.body.panels.len().max(1)));
        let mut arrowheads = Vec::new();
        for (i, (panel, area)) in fig.body.panels.iter().zip(&areas).enumerate() {
            let series: Vec<&Series> = fig.body.series.iter().filter(|s| s.panel == i).collect();
            drawn.push(draw_panel(area, panel, &series, &mut arrowheads, &SCREEN)?);
        }
        for head in arrowheads {
            root.draw(&Polygon::new(head, rgb("#777777").filled())).map_err(draw_err)?;
        }
        draw_legend(&legend_area, fig)?;
        for (i, (line, color)) in footer.iter().enumerate() {
            bottom
                .draw(&Text::new(
                    line.clone(),
                    (16, 10 + (i as u32 * LINE_HEIGHT) as i32),
                    (FONT, 13).into_font().color(color),
                ))
                .map_err(draw_err)?;
        }
        let stamp = format!("{}  key {}", fig.id, &fig.provenance.key[..12.min(fig.provenance.key.len())]);
        let stamp_width = 7 * stamp.len() as i32;
        bottom
            .draw(&Text::new(
                stamp,
                (width as i32 - stamp_width - 8, footer_height as i32 - 16),
                (FONT, 11).into_font().color(&RGBColor(130, 130, 130)),
            ))
            .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    Ok((embed_metadata(&subscripts(&out), fig), drawn))
}

/// Turns the subscript marks of typeset labels (`figure::typeset`) in the
/// SVG's text into lowered runs at 70% of the text's size: a nested `tspan`
/// shifted down by `dy`, then one shifted back up for what follows (every
/// SVG reader, usvg included, understands `dy` on a `tspan`).
pub(crate) fn subscripts(svg: &str) -> String {
    use crate::figure::{SUB_END, SUB_START};
    if !svg.contains(SUB_START) {
        return svg.to_string();
    }
    let mut out = String::with_capacity(svg.len() + 256);
    let mut rest = svg;
    while let Some(open) = rest.find("<text") {
        let Some(tag_end) = rest[open..].find('>').map(|e| open + e + 1) else { break };
        let Some(close) = rest[tag_end..].find("</text>").map(|e| tag_end + e) else { break };
        out.push_str(&rest[..tag_end]);
        let content = &rest[tag_end..close];
        if content.contains(SUB_START) {
            // plotters writes the size as font-size="N" on the element.
            let size = rest[open..tag_end]
                .split("font-size=\"")
                .nth(1)
                .and_then(|v| v.split('"').next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(12.0);
            let (small, shift) = (0.7 * size, 0.25 * size);
            let mut open_runs = 0;
            for c in content.chars() {
                match c {
                    SUB_START => out.push_str(&format!("<tspan dy=\"{shift:.2}\" font-size=\"{small:.2}\">")),
                    SUB_END => {
                        out.push_str(&format!("</tspan><tspan dy=\"{:.2}\">", -shift));
                        open_runs += 1;
                    }
                    c => out.push(c),
                }
            }
            out.push_str(&"</tspan>".repeat(open_runs));
        } else {
            out.push_str(content);
        }
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

pub(crate) fn draw_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

pub(crate) fn rgb(hex: &str) -> RGBColor {
    let v = u32::from_str_radix(hex.trim_start_matches('#'), 16).unwrap_or(0);
    RGBColor((v >> 16) as u8, (v >> 8) as u8, v as u8)
}

/// Maps a data value to the plotted coordinate: log10 on log axes.
pub(crate) fn axis_value(v: f64, log: bool) -> Option<f64> {
    match (log, v.is_finite()) {
        (_, false) => None,
        (true, _) if v <= 0.0 => None,
        (true, _) => Some(v.log10()),
        (false, _) => Some(v),
    }
}

fn range(panel_range: Option<(f64, f64)>, values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    if let Some((lo, hi)) = panel_range {
        let (lo, hi) = (axis_value(lo, log).unwrap_or(lo), axis_value(hi, log).unwrap_or(hi));
        return (lo, hi);
    }
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-9);
    (lo - pad, hi + pad)
}

/// Tick labels: decades as plain numbers on log axes, short decimals elsewhere.
fn tick_label(v: f64, log: bool) -> String {
    if log {
        if (v - v.round()).abs() < 1e-6 {
            let p = v.round() as i32;
            return if (-3..=4).contains(&p) { trim(10f64.powi(p)) } else { format!("1e{p}") };
        }
        // Between decades the ticks fall on 10^0.2, 10^0.5, ...: two
        // significant digits read better than three (0.4, not 0.398); far
        // from 1 with an exponent, as the decades are (3e-5, not 0).
        let value = crate::figure::round_sig(10f64.powf(v), 2);
        return if (1e-3..1e5).contains(&value) { trim(value) } else { format!("{value:e}") };
    }
    trim(v)
}

fn trim(v: f64) -> String {
    let s = format!("{:.3}", crate::figure::round_sig(v, 3));
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

fn points(s: &Series, xlog: bool, ylog: bool, ys: &[f64]) -> Vec<Option<(f64, f64)>> {
    s.x.iter().zip(ys).map(|(&x, &y)| Some((axis_value(x, xlog)?, axis_value(y, ylog)?))).collect()
}

/// Splits a polyline at missing points (NaN separators, values off a log axis).
fn runs(pts: &[Option<(f64, f64)>]) -> Vec<Vec<(f64, f64)>> {
    let mut out = vec![Vec::new()];
    for p in pts {
        match p {
            Some(p) => out.last_mut().unwrap().push(*p),
            None if !out.last().unwrap().is_empty() => out.push(Vec::new()),
            None => {}
        }
    }
    out.retain(|r| !r.is_empty());
    out
}

/// A chart on `area` with the panel's title (if the look draws it), margins
/// and label areas: one definition for drawing a panel and for measuring it.
fn chart_builder<'a, 'b, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    panel: &Panel,
    look: &Look,
) -> ChartBuilder<'a, 'b, DB> {
    let mut builder = ChartBuilder::on(area);
    if let Some(size) = look.title {
        builder.caption(&panel.title, (FONT, size));
    }
    builder
        .margin(look.margin)
        .margin_right(look.margin_right)
        .x_label_area_size(look.x_label_area)
        .y_label_area_size(look.y_label_area);
    builder
}

/// The plotting area's width and height in pixels, as plotters maps an axis
/// onto it (first to last pixel). Measured by building the same chart on a
/// scratch canvas of the area's size: the title's height is the font's,
/// which only plotters knows, and building on `area` itself would draw it twice.
fn plotting_size<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, panel: &Panel, look: &Look) -> Result<(f64, f64)> {
    let mut scratch = String::new();
    let probe = SVGBackend::with_string(&mut scratch, area.dim_in_pixel()).into_drawing_area();
    let chart = chart_builder(&probe, panel, look).build_cartesian_2d(0.0..1.0, 0.0..1.0).map_err(draw_err)?;
    let (w, h) = chart.plotting_area().dim_in_pixel();
    Ok((w.saturating_sub(1) as f64, h.saturating_sub(1) as f64))
}

/// The ranges widened so that one unit spans as many pixels across as up
/// on a plotting area of `size` pixels: the range with fewer units per
/// pixel grows about its centre (a fixed range too: the other axis's data
/// must still fit).
pub(crate) fn equal_scale(xr: (f64, f64), yr: (f64, f64), (w, h): (f64, f64)) -> ((f64, f64), (f64, f64)) {
    let per = ((xr.1 - xr.0) / w.max(1.0)).max((yr.1 - yr.0) / h.max(1.0));
    let widen = |(lo, hi): (f64, f64), pixels: f64| {
        let (centre, half) = ((lo + hi) / 2.0, per * pixels.max(1.0) / 2.0);
        (centre - half, centre + half)
    };
    (widen(xr, w), widen(yr, h))
}

/// Grey theory lines (streamlines) are background: drawn thin, and not a
/// quantity a reader must tell apart from the others by colour.
pub(crate) fn is_background(s: &Series) -> bool {
    s.style == Style::Line && s.source == Source::Theory && s.color == crate::figure::palette::GREY
}

/// The order a panel's series are drawn in: areas first, then bands (with
/// their lines), then measured lines, theory lines, arrows and points on
/// top; in the figure's order within each (a stable sort).
pub(crate) fn draw_order<'a>(series: &[&'a Series]) -> Vec<&'a Series> {
    let order = |s: &&Series| match s.style {
        Style::Area => 0,
        _ if s.band.is_some() => 1,
        Style::Line if s.source == Source::Measured => 2,
        Style::Line => 3,
        Style::Arrows => 4,
        Style::Points => 5,
    };
    let mut sorted = series.to_vec();
    sorted.sort_by_key(order);
    sorted
}

pub(crate) fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    series: &[&Series],
    arrowheads: &mut Vec<Vec<(i32, i32)>>,
    look: &Look,
) -> Result<DrawnPanel>
where
    DB::ErrorType: 'static,
{
    let (xl, yl) = (panel.x_log, panel.y_log);
    let all_x = series.iter().flat_map(|s| s.x.iter().filter_map(|&x| axis_value(x, xl)));
    let all_y = series.iter().flat_map(|s| {
        let band = s.band.iter().flat_map(|b| b.lo.iter().chain(&b.hi));
        s.y.iter().chain(band).filter_map(|&y| axis_value(y, yl))
    });
    let mut xr = range(panel.x_range, all_x, xl);
    let mut yr = range(panel.y_range, all_y, yl);
    if panel.equal_aspect {
        (xr, yr) = equal_scale(xr, yr, plotting_size(area, panel, look)?);
    }
    let mut chart = chart_builder(area, panel, look).build_cartesian_2d(xr.0..xr.1, yr.0..yr.1).map_err(draw_err)?;
    let (x_pixels, y_pixels) = chart.plotting_area().get_pixel_range();
    let drawn = DrawnPanel {
        x_pixels: (x_pixels.start as f64, (x_pixels.end - 1) as f64),
        y_pixels: ((y_pixels.end - 1) as f64, y_pixels.start as f64),
        x_range: (chart.x_range().start, chart.x_range().end),
        y_range: (chart.y_range().start, chart.y_range().end),
    };
    let x_fmt = |v: &f64| tick_label(*v, xl);
    let y_fmt = |v: &f64| tick_label(*v, yl);
    let mut mesh = chart.configure_mesh();
    if look.axis_labels {
        mesh.x_desc(&panel.x_label).y_desc(&panel.y_label);
    }
    // A log axis of a few decades gets a label every half decade (1, 3.2, 10):
    // at one per decade it would show only two or three numbers.
    let count = |n: usize, log: bool, (lo, hi): (f64, f64)| {
        let half_decades = (2.0 * (hi - lo).abs()).floor() as usize + 1;
        if log && (hi - lo).abs() <= 4.5 {
            n.max(half_decades)
        } else {
            n
        }
    };
    mesh.x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .x_labels(count(look.ticks.0, xl, xr))
        .y_labels(count(look.ticks.1, yl, yr))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(215, 215, 215))
        .label_style((FONT, look.tick_font))
        .axis_desc_style((FONT, look.axis_font));
    if let Some((width, tick)) = look.axis {
        mesh.axis_style(BLACK.stroke_width(width)).set_all_tick_mark_size(tick);
    }
    mesh.draw().map_err(draw_err)?;
    for s in draw_order(series) {
        let color = rgb(&s.color);
        let pts = points(s, xl, yl, &s.y);
        match s.style {
            Style::Area => {
                let poly: Vec<(f64, f64)> = pts.iter().flatten().copied().collect();
                chart.draw_series(std::iter::once(Polygon::new(poly, color.mix(0.13).filled()))).map_err(draw_err)?;
            }
            Style::Line => {
                if let Some(band) = &s.band {
                    let lo = points(s, xl, yl, &band.lo);
                    let hi = points(s, xl, yl, &band.hi);
                    let mut poly: Vec<(f64, f64)> = hi.iter().flatten().copied().collect();
                    poly.extend(lo.iter().flatten().rev().copied());
                    chart
                        .draw_series(std::iter::once(Polygon::new(poly, color.mix(0.18).filled())))
                        .map_err(draw_err)?;
                }
                // Grey theory lines are background (streamlines): thin.
                let width = if is_background(s) { look.thin_line } else { look.line };
                for run in runs(&pts) {
                    match s.source {
                        Source::Measured => {
                            chart.draw_series(LineSeries::new(run, color.stroke_width(width))).map_err(draw_err)?;
                        }
                        Source::Theory => {
                            chart
                                .draw_series(DashedLineSeries::new(
                                    run,
                                    look.dash.0,
                                    look.dash.1,
                                    color.stroke_width(width),
                                ))
                                .map_err(draw_err)?;
                        }
                    }
                }
            }
            Style::Points => {
                let radius = if s.labels.is_some() { look.labelled_point } else { look.point };
                chart
                    .draw_series(pts.iter().flatten().map(|&p| Circle::new(p, radius, color.filled())))
                    .map_err(draw_err)?;
                for (p, label) in pts.iter().zip(s.labels.iter().flatten()) {
                    if let Some(p) = p {
                        let mut font = (FONT, look.point_label_font).into_font();
                        if look.point_label_bold {
                            font = font.style(FontStyle::Bold);
                        }
                        let font = font.color(&color);
                        let element = EmptyElement::at(*p) + Text::new(label.clone(), look.point_label_offset, font);
                        chart.draw_series(std::iter::once(element)).map_err(draw_err)?;
                    }
                }
            }
            Style::Arrows => {
                for pair in pts.chunks(2) {
                    if let [Some(tail), Some(head)] = pair {
                        arrowheads.push(arrowhead(
                            chart.backend_coord(tail),
                            chart.backend_coord(head),
                            look.arrowhead,
                        ));
                    }
                }
            }
        }
    }
    Ok(drawn)
}

/// A small filled triangle pointing from `tail` to `head`, in pixels.
pub(crate) fn arrowhead(tail: (i32, i32), head: (i32, i32), (size, half): (f64, f64)) -> Vec<(i32, i32)> {
    let (dx, dy) = ((head.0 - tail.0) as f64, (head.1 - tail.1) as f64);
    let len = dx.hypot(dy).max(1e-9);
    let (ux, uy) = (dx / len, dy / len);
    let base = (head.0 as f64 - ux * size, head.1 as f64 - uy * size);
    vec![
        head,
        ((base.0 - uy * half).round() as i32, (base.1 + ux * half).round() as i32),
        ((base.0 + uy * half).round() as i32, (base.1 - ux * half).round() as i32),
    ]
}

fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, fig: &FigureData) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let mut y = 40;
    let style = (FONT, 12).into_font().color(&BLACK);
    // Series drawn alike with one label are one thing: one entry.
    for entry in fig.body.legend_entries() {
        let (s, label, band) = (entry.series, entry.label, entry.band);
        let c = rgb(&s.color);
        let (x0, x1) = (6, 34);
        match s.style {
            Style::Area => area.draw(&Rectangle::new([(x0, y - 6), (x1, y + 6)], c.mix(0.25).filled())),
            Style::Points => {
                area.draw(&Circle::new(((x0 + x1) / 2, y), if s.labels.is_some() { 5 } else { 4 }, c.filled()))
            }
            Style::Arrows => {
                let head = arrowhead(((x0 + x1) / 2 - 8, y), ((x0 + x1) / 2 + 4, y), SCREEN.arrowhead);
                area.draw(&Polygon::new(head, rgb("#777777").filled()))
            }
            Style::Line if s.source == Source::Theory => {
                area.draw(&plotters::element::DashedPathElement::new(vec![(x0, y), (x1, y)], 6, 4, c.stroke_width(2)))
            }
            Style::Line => {
                if band.is_some() {
                    area.draw(&Rectangle::new([(x0, y - 6), (x1, y + 6)], c.mix(0.18).filled())).map_err(draw_err)?;
                }
                area.draw(&PathElement::new(vec![(x0, y), (x1, y)], c.stroke_width(2)))
            }
        }
        .map_err(draw_err)?;
        let mut label = label;
        if let Some(b) = band {
            label.push_str(&format!(" (band: {})", b.what));
        }
        let lines = wrap(&label, 30);
        for (i, line) in lines.iter().enumerate() {
            area.draw(&Text::new(line.clone(), (x1 + 8, y - 7 + i as i32 * 15), style.clone())).map_err(draw_err)?;
        }
        y += 22 + 15 * (lines.len() as i32 - 1);
    }
    Ok(())
}

/// Greedy word wrap at `width` characters.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            if !line.is_empty() && line.len() + 1 + word.len() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        if !line.is_empty() {
            lines.push(line);
        }
    }
    lines
}

/// Puts the figure's id, key and code fingerprint in the SVG's <metadata>.
fn embed_metadata(svg: &str, fig: &FigureData) -> String {
    let meta = serde_json::json!({
        "id": fig.id,
        "key": fig.provenance.key,
        "code_fingerprint": fig.provenance.code_fingerprint,
        "regenerate": format!("cargo xtask figures --only {}", fig.id),
    });
    let escaped = meta.to_string().replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let Some(start) = svg.find("<svg") else { return svg.to_string() };
    let Some(end) = svg[start..].find('>') else { return svg.to_string() };
    let at = start + end + 1;
    format!("{}\n<metadata>{escaped}</metadata>{}", &svg[..at], &svg[at..])
}

#[cfg(test)]
mod tests {
    use super::tick_label;

    #[test]
    fn log_ticks_between_decades_keep_their_value_far_from_one() {
        let at = |x: f64| tick_label(x.log10(), true);
        assert_eq!(at(0.4), "0.4");
        assert_eq!(at(3e-5), "3e-5");
        assert_eq!(at(2.5e-5), "2.5e-5");
        assert_eq!(at(3e6), "3e6");
        assert_eq!(at(1e-5), "1e-5");
        assert_eq!(at(100.0), "100");
        assert_eq!(tick_label(0.25, false), "0.25");
    }
}
