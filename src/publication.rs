//! The publication variant of a figure: its panels, axes, ticks and legend
//! only (no title, caption, claims or footer), sized in inches for one column
//! or the full page width of a paper, written as a vector PDF (with its font
//! subset and embedded) and a 300 dpi PNG under `figures/paper/`. The
//! provenance (figure id, key, code fingerprint) goes into each file's
//! metadata instead of onto the page.
//!
//! The panels are drawn by render.rs's `draw_panel` on a plotters SVG canvas
//! of `UNITS_PER_PT` units per point (plotters draws on integer coordinates:
//! a finer canvas keeps thin lines and small text where they belong), with
//! the publication's sizes; usvg parses that SVG once with a font database
//! holding only the font shipped in `data/fonts/`, so neither file depends on
//! the fonts of the machine; svg2pdf and resvg turn it into the PDF and the
//! pixels. Same data, same bytes: nothing reads a clock, the PDF has no dates.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use svg2pdf::usvg;

use crate::figure::{FigureData, LegendEntry, Series, Source, Style};
use crate::render::{arrowhead, draw_err, draw_panel, rgb, DrawnPanel, Look, FONT};
use crate::spec::{PublicationSpec, PublicationWidth};

/// DejaVu Sans (licence: data/fonts/LICENSE), in the binary: the output
/// cannot pick up another font from the machine it runs on.
const FONT_FILE: &[u8] = include_bytes!("../data/fonts/DejaVuSans.ttf");
const FONT_FAMILY: &str = "DejaVu Sans";

/// Canvas units per point (1/72 in): 0.2 pt steps.
pub const UNITS_PER_PT: f64 = 5.0;
/// Pixels per inch of the PNG.
pub const DPI: f64 = 300.0;

// Text sizes at the final size, in points (a paper's body text is 9-10 pt).
const TICK_PT: f64 = 7.2;
const AXIS_PT: f64 = 8.0;
/// The axis label's size when it does not fit its axis at `AXIS_PT`.
const AXIS_SMALL_PT: f64 = 7.0;
const PANEL_TITLE_PT: f64 = 8.0;
const LEGEND_PT: f64 = 7.0;
const POINT_LABEL_PT: f64 = 8.0;

/// The files of one figure's publication variant.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    pub pdf: Vec<u8>,
    pub png: Vec<u8>,
    /// Width and height of the page, in inches.
    pub inches: (f64, f64),
}

/// The width of a column or of the page, in inches.
pub fn width_inches(width: PublicationWidth) -> f64 {
    match width {
        PublicationWidth::Column => 3.3,
        PublicationWidth::Page => 6.8,
    }
}

/// Draws a figure's publication variant from its JSON text (a figure file as
/// written): the files are made from exactly what is committed, so
/// `--check` can redraw them from the committed JSON and get the same bytes.
pub fn from_json(json: &str, spec: &PublicationSpec) -> Result<Export> {
    let fig: FigureData = serde_json::from_str(json).context("figure data does not parse")?;
    export(&fig, spec)
}

/// Draws a figure's publication variant: same data, same bytes.
pub fn export(fig: &FigureData, spec: &PublicationSpec) -> Result<Export> {
    let svg = svg(fig, spec)?;
    let mut options = usvg::Options { font_family: FONT_FAMILY.to_string(), ..usvg::Options::default() };
    options.fontdb = font_database();
    let tree = usvg::Tree::from_str(&svg, &options).context("the publication SVG does not parse")?;
    let size = tree.size();
    let inches = (size.width() as f64 / UNITS_PER_PT / 72.0, size.height() as f64 / UNITS_PER_PT / 72.0);
    Ok(Export { pdf: pdf(&tree, fig)?, png: png(&tree, fig)?, inches })
}

/// A font database holding the shipped font only, standing for every
/// generic family.
fn font_database() -> Arc<usvg::fontdb::Database> {
    static DB: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        db.load_font_data(FONT_FILE.to_vec());
        db.set_sans_serif_family(FONT_FAMILY);
        db.set_serif_family(FONT_FAMILY);
        db.set_monospace_family(FONT_FAMILY);
        Arc::new(db)
    })
    .clone()
}

fn units(pt: f64) -> f64 {
    pt * UNITS_PER_PT
}

/// Plotters' font size for text of `pt` points (it writes size / 1.24).
fn font_size(pt: f64) -> f64 {
    units(pt) * 1.24
}

/// Width of `text` set in the shipped font at `pt` points, in points
/// (advance widths, without kerning: a hair wide, which only adds margin).
pub fn text_width(text: &str, pt: f64) -> f64 {
    static FACE: OnceLock<ttf_parser::Face<'static>> = OnceLock::new();
    let face = FACE.get_or_init(|| ttf_parser::Face::parse(FONT_FILE, 0).expect("the shipped font parses"));
    let per_unit = pt / face.units_per_em() as f64;
    // A subscript's marks take no room (its letters are counted at full size).
    text.chars()
        .filter(|&c| c != crate::figure::SUB_START && c != crate::figure::SUB_END)
        .map(|c| {
            let glyph = face.glyph_index(c).unwrap_or(ttf_parser::GlyphId(0));
            face.glyph_hor_advance(glyph).unwrap_or(0) as f64 * per_unit
        })
        .sum()
}

/// Greedy word wrap at `width` points of text at `pt` points.
pub fn wrap(text: &str, pt: f64, width: f64) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let candidate = if line.is_empty() { word.to_string() } else { format!("{line} {word}") };
        if !line.is_empty() && text_width(&candidate, pt) > width {
            lines.push(std::mem::replace(&mut line, word.to_string()));
        } else {
            line = candidate;
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

// Layout, in points.
const MARGIN_PT: f64 = 3.0;
const MARGIN_RIGHT_PT: f64 = 9.0;
/// Room for the y tick labels ("0.001" at 7.2 pt is 22 pt wide).
const Y_TICKS_PT: f64 = 25.0;
/// Room for the tick marks and the x tick labels.
const X_TICKS_PT: f64 = 2.0 + 3.0 + TICK_PT * 1.2;
const LINE_SPACING: f64 = 1.2;
const LEGEND_SWATCH_PT: f64 = 14.0;
const LEGEND_LINE_PT: f64 = LEGEND_PT * LINE_SPACING;

/// The sizes of a publication panel, in canvas units.
fn look(x_label_area_pt: f64, y_label_area_pt: f64, ticks: (usize, usize)) -> Look {
    let u = |pt: f64| units(pt).round() as u32;
    Look {
        title: None,
        axis_labels: false,
        tick_font: font_size(TICK_PT),
        axis_font: font_size(AXIS_PT),
        margin: u(MARGIN_PT),
        margin_right: u(MARGIN_RIGHT_PT),
        x_label_area: u(x_label_area_pt),
        y_label_area: u(y_label_area_pt),
        ticks,
        axis: Some((u(0.6), u(2.0) as i32)),
        line: u(1.0),
        thin_line: u(0.6),
        dash: (u(3.0), u(2.0)),
        point: u(1.3),
        labelled_point: u(2.0),
        point_label_font: font_size(POINT_LABEL_PT),
        point_label_bold: false,
        point_label_offset: (u(2.5) as i32, -(u(9.0) as i32)),
        arrowhead: (units(4.0), units(1.8)),
    }
}

/// Panels per row: one in a column; across the page three, and four as two
/// rows of two (four in a row, or two in a column, leave each too narrow for
/// its labels).
fn columns(width: PublicationWidth, panels: usize) -> usize {
    match (width, panels) {
        (PublicationWidth::Column, _) => 1,
        (PublicationWidth::Page, 4) => 2,
        (PublicationWidth::Page, n) => n.clamp(1, 3),
    }
}

/// One panel's text, wrapped to its room, and the size of its axis labels.
struct PanelText {
    title: Vec<String>,
    x_label: Vec<String>,
    x_pt: f64,
    y_label: Vec<String>,
    y_pt: f64,
}

/// A text of the publication variant, with the size it is set at and the
/// room it was wrapped to (`wrap(text, pt, room)` gives its lines).
#[derive(Debug, Clone, PartialEq)]
pub struct PlacedText {
    /// "panel title", "x label", "y label" or "legend entry".
    pub what: &'static str,
    /// The panel it belongs to (a legend entry: its series' panel).
    pub panel: usize,
    /// The series a legend entry shows.
    pub series: Option<String>,
    pub text: String,
    pub pt: f64,
    /// Width it may take, in points.
    pub room: f64,
}

/// How the publication variant is laid out: each panel as drawn (in canvas
/// units) and each text with its room. What a reader sees, for `lint`.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub panels: Vec<DrawnPanel>,
    pub texts: Vec<PlacedText>,
    /// Pixels of the PNG (at `DPI`) per canvas unit.
    pub png_pixels_per_unit: f64,
}

/// The publication variant as SVG, in canvas units (`UNITS_PER_PT` per point).
pub fn svg(fig: &FigureData, spec: &PublicationSpec) -> Result<String> {
    Ok(draw(fig, spec)?.0)
}

/// The publication variant's layout, from drawing it (see [`Layout`]).
pub fn layout(fig: &FigureData, spec: &PublicationSpec) -> Result<Layout> {
    Ok(draw(fig, spec)?.1)
}

fn draw(fig: &FigureData, spec: &PublicationSpec) -> Result<(String, Layout)> {
    let fig = &fig.typeset();
    let width_pt = width_inches(spec.width) * 72.0;
    let panels = &fig.body.panels;
    let cols = columns(spec.width, panels.len());
    let rows = panels.len().div_ceil(cols).max(1);
    let cell_pt = width_pt / cols as f64;
    // Axes a little wider than tall, within what a page can give a row.
    let chart_pt = (cell_pt * 0.62).clamp(120.0, 160.0);

    // Titles wrapped to their cell, lettered when there are several; axis
    // labels wrapped to their axis, at 8 pt, or 7 pt where 8 needs more than two lines.
    // Titles wrapped to their cell, lettered when there are several; axis
    // labels wrapped to their axis, at 8 pt, or 7 pt where 8 needs more than
    // two lines. The x labels first: the row's tallest sets its axes' height.
    let fit = |text: &str, room: f64| match wrap(text, AXIS_PT, room) {
        lines if lines.len() <= 2 => (lines, AXIS_PT),
        _ => (wrap(text, AXIS_SMALL_PT, room), AXIS_SMALL_PT),
    };
    let x_room = cell_pt - MARGIN_PT - MARGIN_RIGHT_PT - Y_TICKS_PT - 2.0 * AXIS_PT * LINE_SPACING;
    let x_labels: Vec<(Vec<String>, f64)> = panels.iter().map(|p| fit(&p.x_label, x_room)).collect();
    let row_x_area_pt: Vec<f64> = (0..rows)
        .map(|r| {
            let lines = x_labels.iter().skip(r * cols).take(cols);
            X_TICKS_PT + lines.map(|(l, pt)| l.len() as f64 * pt * LINE_SPACING).fold(0.0, f64::max) + 1.0
        })
        .collect();
    let texts: Vec<PanelText> = panels
        .iter()
        .zip(x_labels)
        .enumerate()
        .map(|(i, (p, (x_label, x_pt)))| {
            let title =
                if panels.len() > 1 { format!("({}) {}", (b'a' + i as u8) as char, p.title) } else { p.title.clone() };
            let (y_label, y_pt) = fit(&p.y_label, chart_pt - 2.0 * MARGIN_PT - row_x_area_pt[i / cols]);
            PanelText { title: wrap(&title, PANEL_TITLE_PT, cell_pt - 6.0), x_label, x_pt, y_label, y_pt }
        })
        .collect();
    let title_line_pt = PANEL_TITLE_PT * LINE_SPACING;
    let row_title_pt: Vec<f64> = (0..rows)
        .map(|r| {
            let lines = texts.iter().skip(r * cols).take(cols).map(|t| t.title.len()).max().unwrap_or(0);
            lines as f64 * title_line_pt + 2.0
        })
        .collect();

    // The legend below the panels, in as many columns as its widest entry allows.
    let entries = fig.body.legend_entries();
    let label_room = width_pt - LEGEND_SWATCH_PT - 4.0;
    // As in the SVG's legend: a band drawn around the entry's series is explained in its text.
    let text = |e: &LegendEntry| match e.band {
        Some(b) => format!("{} (band: {})", e.label, b.what),
        None => e.label.clone(),
    };
    let labels: Vec<Vec<String>> = entries.iter().map(|e| wrap(&text(e), LEGEND_PT, label_room)).collect();
    let widest = labels.iter().flatten().map(|l| text_width(l, LEGEND_PT)).fold(0.0, f64::max);
    let entry_pt = LEGEND_SWATCH_PT + 4.0 + widest + 10.0;
    let legend_cols = ((width_pt / entry_pt).floor() as usize).clamp(1, entries.len().max(1));
    let legend_rows = entries.len().div_ceil(legend_cols);
    // Column-major: series listed together (a measurement and its theory) stay together.
    let mut legend_columns: Vec<Vec<usize>> = vec![Vec::new(); legend_cols];
    for i in 0..entries.len() {
        legend_columns[i / legend_rows.max(1)].push(i);
    }
    let legend_height_pt = legend_columns
        .iter()
        .map(|col| col.iter().map(|&i| labels[i].len() as f64 * LEGEND_LINE_PT + 1.5).sum::<f64>())
        .fold(0.0, f64::max);

    let panels_pt: f64 = row_title_pt.iter().map(|t| t + chart_pt).sum();
    let legend_top_pt = panels_pt + 5.0;
    let height_pt = legend_top_pt + legend_height_pt + 3.0;
    let (w, h) = (units(width_pt).round() as u32, units(height_pt).round() as u32);
    let at = |x_pt: f64, y_pt: f64| (units(x_pt).round() as i32, units(y_pt).round() as i32);

    // Each text with the size and room it was wrapped to, as above.
    let mut placed = Vec::new();
    for (i, (p, t)) in panels.iter().zip(&texts).enumerate() {
        let place = |what, text: String, pt, room| PlacedText { what, panel: i, series: None, text, pt, room };
        let title =
            if panels.len() > 1 { format!("({}) {}", (b'a' + i as u8) as char, p.title) } else { p.title.clone() };
        placed.push(place("panel title", title, PANEL_TITLE_PT, cell_pt - 6.0));
        placed.push(place("x label", p.x_label.clone(), t.x_pt, x_room));
        placed.push(place("y label", p.y_label.clone(), t.y_pt, chart_pt - 2.0 * MARGIN_PT - row_x_area_pt[i / cols]));
    }
    for e in &entries {
        placed.push(PlacedText {
            what: "legend entry",
            panel: e.series.panel,
            series: Some(e.series.name.clone()),
            text: text(e),
            pt: LEGEND_PT,
            room: label_room,
        });
    }
    let mut layout = Layout { panels: Vec::new(), texts: placed, png_pixels_per_unit: DPI / 72.0 / UNITS_PER_PT };

    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut arrowheads = Vec::new();
        let mut top_pt = 0.0;
        for r in 0..rows {
            let chart_top_pt = top_pt + row_title_pt[r];
            for c in 0..cols {
                let i = r * cols + c;
                let (Some(panel), Some(text)) = (panels.get(i), texts.get(i)) else { break };
                let left_pt = c as f64 * cell_pt;
                let y_area_pt = 2.0 + text.y_label.len() as f64 * text.y_pt * LINE_SPACING + Y_TICKS_PT;
                let x_area_pt = row_x_area_pt[r];
                // The plotting area, as plotters lays it out inside the cell.
                let (plot_left, plot_right) = (left_pt + MARGIN_PT + y_area_pt, left_pt + cell_pt - MARGIN_RIGHT_PT);
                let (plot_top, plot_bottom) =
                    (chart_top_pt + MARGIN_PT, chart_top_pt + chart_pt - MARGIN_PT - x_area_pt);
                let centred =
                    |pt: f64| (FONT, font_size(pt)).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Top));
                // Centred on the cell it was wrapped to, so it never runs into the next.
                for (k, line) in text.title.iter().enumerate() {
                    let y_pt = top_pt + 1.0 + k as f64 * title_line_pt;
                    root.draw(&Text::new(line.clone(), at(left_pt + cell_pt / 2.0, y_pt), centred(PANEL_TITLE_PT)))
                        .map_err(draw_err)?;
                }
                for (k, line) in text.x_label.iter().enumerate() {
                    let y_pt = plot_bottom + X_TICKS_PT + k as f64 * text.x_pt * LINE_SPACING;
                    root.draw(&Text::new(line.clone(), at((plot_left + plot_right) / 2.0, y_pt), centred(text.x_pt)))
                        .map_err(draw_err)?;
                }
                for (k, line) in text.y_label.iter().enumerate() {
                    // Read bottom to top; the first line outermost.
                    let x_pt = left_pt + MARGIN_PT + 1.0 + k as f64 * text.y_pt * LINE_SPACING;
                    let style = centred(text.y_pt).transform(FontTransform::Rotate270);
                    root.draw(&Text::new(line.clone(), at(x_pt, (plot_top + plot_bottom) / 2.0), style))
                        .map_err(draw_err)?;
                }
                let area = root
                    .clone()
                    .shrink(at(left_pt, chart_top_pt), (units(cell_pt).round() as u32, units(chart_pt).round() as u32));
                let series: Vec<&Series> = fig.body.series.iter().filter(|s| s.panel == i).collect();
                // Tick labels about 26 pt apart across, 20 pt up.
                let ticks = (
                    ((plot_right - plot_left) / 26.0).clamp(3.0, 7.0) as usize,
                    ((plot_bottom - plot_top) / 20.0).clamp(4.0, 7.0) as usize,
                );
                layout.panels.push(draw_panel(
                    &area,
                    panel,
                    &series,
                    &mut arrowheads,
                    &look(x_area_pt, y_area_pt, ticks),
                )?);
            }
            top_pt = chart_top_pt + chart_pt;
        }
        for head in arrowheads {
            root.draw(&Polygon::new(head, rgb("#777777").filled())).map_err(draw_err)?;
        }
        draw_legend(&root, &entries, &labels, &legend_columns, legend_top_pt, width_pt / legend_cols as f64)?;
        root.present().map_err(draw_err)?;
    }
    Ok((crate::render::subscripts(&out), layout))
}

fn draw_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    entries: &[LegendEntry],
    labels: &[Vec<String>],
    columns: &[Vec<usize>],
    top_pt: f64,
    column_pt: f64,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let at = |x_pt: f64, y_pt: f64| (units(x_pt).round() as i32, units(y_pt).round() as i32);
    let line_width = units(1.0).round() as u32;
    for (c, column) in columns.iter().enumerate() {
        let mut y_pt = top_pt;
        for &i in column {
            let s = entries[i].series;
            let color = rgb(&s.color);
            let (x0, x1) = (c as f64 * column_pt + 1.0, c as f64 * column_pt + 1.0 + LEGEND_SWATCH_PT);
            let mid = y_pt + LEGEND_LINE_PT / 2.0;
            let swatch = [at(x0, mid - 2.5), at(x1, mid + 2.5)];
            match s.style {
                Style::Area => root.draw(&Rectangle::new(swatch, color.mix(0.25).filled())),
                Style::Points => root.draw(&Circle::new(at((x0 + x1) / 2.0, mid), units(1.6) as u32, color.filled())),
                // Arrows are drawn as grey heads in the panels (their colour marks nothing).
                Style::Arrows => {
                    let head = arrowhead(at(x0, mid), at(x1, mid), (units(4.0), units(1.8)));
                    root.draw(&Polygon::new(head, rgb("#777777").filled()))
                }
                Style::Line if s.source == Source::Theory => root.draw(&plotters::element::DashedPathElement::new(
                    vec![at(x0, mid), at(x1, mid)],
                    units(3.0) as u32,
                    units(2.0) as u32,
                    color.stroke_width(line_width),
                )),
                _ => {
                    if entries[i].band.is_some() {
                        root.draw(&Rectangle::new(swatch, color.mix(0.18).filled())).map_err(draw_err)?;
                    }
                    root.draw(&PathElement::new(vec![at(x0, mid), at(x1, mid)], color.stroke_width(line_width)))
                }
            }
            .map_err(draw_err)?;
            for (k, line) in labels[i].iter().enumerate() {
                let style =
                    (FONT, font_size(LEGEND_PT)).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
                let y = mid + k as f64 * LEGEND_LINE_PT;
                root.draw(&Text::new(line.clone(), at(x1 + 4.0, y), style)).map_err(draw_err)?;
            }
            y_pt += labels[i].len() as f64 * LEGEND_LINE_PT + 1.5;
        }
    }
    Ok(())
}

/// The provenance written into each file's metadata.
fn provenance_text(fig: &FigureData) -> (String, String) {
    let subject = format!(
        "Figure {} of a reproduction of arXiv:1809.06848 (Tachet des Combes et al., On the Learning Dynamics of Deep \
         Neural Networks); regenerate with: cargo xtask figures --only {}",
        fig.id, fig.id
    );
    let keywords =
        format!("figure={}; key={}; code_fingerprint={}", fig.id, fig.provenance.key, fig.provenance.code_fingerprint);
    (subject, keywords)
}

/// A one-page PDF: the figure as a vector form with its font subset and
/// embedded (svg2pdf), on a page of the figure's size, with the provenance
/// in the document information. No dates, no random file id.
fn pdf(tree: &usvg::Tree, fig: &FigureData) -> Result<Vec<u8>> {
    use pdf_writer::{Finish, Name, Pdf, Rect, Ref, TextStr};
    let (chunk, form) = svg2pdf::to_chunk(tree, svg2pdf::ConversionOptions::default())
        .map_err(|e| anyhow!("converting to PDF failed: {e}"))?;
    let mut next = Ref::new(1);
    let catalog = next.bump();
    let pages = next.bump();
    let page = next.bump();
    let content = next.bump();
    let info = next.bump();
    let mut renumbered = HashMap::new();
    let chunk = chunk.renumber(|old| *renumbered.entry(old).or_insert_with(|| next.bump()));
    let form = renumbered[&form];

    let (w, h) = (tree.size().width() / UNITS_PER_PT as f32, tree.size().height() / UNITS_PER_PT as f32);
    let mut doc = Pdf::new();
    doc.catalog(catalog).pages(pages);
    doc.pages(pages).kids([page]).count(1);
    let mut p = doc.page(page);
    p.media_box(Rect::new(0.0, 0.0, w, h));
    p.parent(pages);
    p.contents(content);
    p.resources().x_objects().pair(Name(b"F"), form);
    p.finish();
    // The form is one point square: scale it to the page.
    let mut c = pdf_writer::Content::new();
    c.transform([w, 0.0, 0.0, h, 0.0, 0.0]).x_object(Name(b"F"));
    doc.stream(content, &c.finish());
    doc.extend(&chunk);
    let (subject, keywords) = provenance_text(fig);
    doc.document_info(info)
        .title(TextStr(&fig.title))
        .subject(TextStr(&subject))
        .keywords(TextStr(&keywords))
        .creator(TextStr("learning-dynamics publication export"));
    let mut bytes = doc.finish();
    sort_reference_entries(&mut bytes);
    Ok(bytes)
}

/// svg2pdf writes a form's resource dictionaries (`/gs0 12 0 R` ...) from a
/// HashMap, in an order that changes from run to run. Sorting each run of
/// such lines (outside streams) fixes the bytes without changing the
/// document: a dictionary has no order, and a permutation of lines within
/// one object keeps every byte offset of the cross-reference table.
fn sort_reference_entries(pdf: &mut [u8]) {
    let is_entry = |line: &[u8]| {
        let text = String::from_utf8_lossy(line);
        let mut words = text.trim_start_matches(' ').split(' ');
        let name = words.next().is_some_and(|w| w.starts_with('/') && w.len() > 1);
        let number = words.next().is_some_and(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()));
        name && number && words.next() == Some("0") && words.next() == Some("R") && words.next().is_none()
    };
    let mut start = 0;
    let mut run: Vec<(usize, usize)> = Vec::new(); // (start, end) of consecutive entry lines
    let mut in_stream = false;
    while start < pdf.len() {
        let end = pdf[start..].iter().position(|&b| b == b'\n').map_or(pdf.len(), |i| start + i);
        let line = pdf[start..end].to_vec();
        let entry = !in_stream && is_entry(&line);
        if !entry && run.len() > 1 {
            let mut lines: Vec<Vec<u8>> = run.iter().map(|&(a, b)| pdf[a..b].to_vec()).collect();
            lines.sort();
            let from = run[0].0;
            let joined = lines.join(&b'\n');
            pdf[from..from + joined.len()].copy_from_slice(&joined);
        }
        if entry {
            run.push((start, end));
        } else {
            run.clear();
        }
        if line == b"stream" {
            in_stream = true;
        } else if line == b"endstream" {
            in_stream = false;
        }
        start = end + 1;
    }
}

/// The figure at `DPI`, opaque RGB, with its resolution and the provenance
/// in the PNG's own chunks.
fn png(tree: &usvg::Tree, fig: &FigureData) -> Result<Vec<u8>> {
    let scale = (DPI / 72.0 / UNITS_PER_PT) as f32;
    let (w, h) = ((tree.size().width() * scale).ceil() as u32, (tree.size().height() * scale).ceil() as u32);
    let mut pixmap = resvg::tiny_skia::Pixmap::new(w, h).ok_or_else(|| anyhow!("empty figure ({w} x {h} pixels)"))?;
    pixmap.fill(resvg::tiny_skia::Color::WHITE);
    resvg::render(tree, resvg::tiny_skia::Transform::from_scale(scale, scale), &mut pixmap.as_mut());
    // Opaque white under everything: premultiplied RGBA is plain RGB here.
    let rgb: Vec<u8> = pixmap.data().chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        // A plot is mostly flat colour: the smallest file of png's settings,
        // at ~40 ms a figure.
        encoder.set_compression(png::Compression::Best);
        encoder.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
        let per_metre = (DPI / 0.0254).round() as u32;
        encoder.set_pixel_dims(Some(png::PixelDimensions { xppu: per_metre, yppu: per_metre, unit: png::Unit::Meter }));
        let (subject, keywords) = provenance_text(fig);
        encoder.add_itxt_chunk("Title".into(), fig.title.clone())?;
        encoder.add_itxt_chunk("Description".into(), subject)?;
        encoder.add_itxt_chunk("Comment".into(), keywords)?;
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&rgb)?;
        writer.finish()?;
    }
    Ok(out)
}
