//! PNG figures of logged runs, drawn with plotters.
//!
//! One API, [`draw_panels`], draws a grid of [`PlotPanel`]s under a title and one shared legend.
//! Every line is clipped to its panel, legends sit outside the data, marked steps (loss spikes)
//! are dashed vertical lines in the line's colour. [`metric_panels`] (rows of `metrics.csv`),
//! [`xy_panels`] (plain points) and [`histogram_plots`] make its panels.

use std::error::Error;
use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::ExperimentError;
use crate::metrics::MetricsRow;

/// DejaVu Sans (Bitstream Vera licence, `assets/DejaVuSans-LICENSE.txt`), bundled so that the
/// figures do not depend on the machine's fonts.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bundled file is a valid TrueType font; a failure here is a build defect.
        if plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_err() {
            panic!("the bundled DejaVu Sans font could not be registered");
        }
    });
}

/// Pixel size of one panel of the grid.
const PANEL_W: u32 = 560;
const PANEL_H: u32 = 380;
/// Height of the figure's title strip and of one row of the legend strip.
const TITLE_H: u32 = 44;
const LEGEND_ROW_H: u32 = 30;
/// A legend entry: a swatch, a gap, the label, a wider gap to the next entry.
const SWATCH_W: u32 = 28;
const SWATCH_GAP: u32 = 8;
const ENTRY_GAP: u32 = 28;
/// A panel's frame: outer margin (wider on the right, for the last x tick label), the caption's
/// font size, and the room for the tick labels below and left of the data.
const MARGIN: u32 = 8;
const MARGIN_RIGHT: u32 = 20;
const CAPTION_SIZE: u32 = 17;
const X_LABELS_H: u32 = 44;
const Y_LABELS_W: u32 = 64;
/// Stroke width of data lines and markers; dash and gap lengths in pixels.
const LINE_WIDTH: u32 = 2;
const LINE_DASH: (f64, f64) = (7.0, 5.0);
const MARKER_DASH: (f64, f64) = (6.0, 4.0);
const MARKER_DOT: (f64, f64) = (2.0, 5.0);

const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(127, 127, 127),
];

fn palette(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

// ---------------------------------------------------------------------------------------------
// The one API.

/// One line of a [`LinePanel`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Line {
    /// Legend label; lines with the same label share a colour and one legend entry.
    pub label: String,
    /// `(x, y)` points in order. A non-finite point (or, on a log axis, a non-positive y) is
    /// not drawn and breaks the line there.
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed instead of solid.
    pub dashed: bool,
    /// x positions marked by dashed vertical lines in the line's colour (e.g. spike steps).
    pub markers: Vec<f64>,
    /// x positions marked by dotted vertical lines in the line's colour (NFI events).
    pub dotted_markers: Vec<f64>,
}

/// A panel of lines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinePanel {
    /// Panel title.
    pub title: String,
    /// The x axis's label.
    pub x_label: String,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// The lines, drawn in order.
    pub lines: Vec<Line>,
    /// A fixed y range instead of the data's; lines leaving it are cut at its edge.
    pub y_range: Option<(f64, f64)>,
}

/// A panel of bars: a histogram.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BarPanel {
    /// Panel title.
    pub title: String,
    /// The x axis's label.
    pub x_label: String,
    /// The y axis's label.
    pub y_label: String,
    /// The x axis's range.
    pub x_range: (f64, f64),
    /// `(left edge, right edge, height)` of each bar.
    pub bars: Vec<(f64, f64, f64)>,
}

/// One panel of a figure.
#[derive(Debug, Clone, PartialEq)]
pub enum PlotPanel {
    /// Lines over a linear or logarithmic y axis.
    Lines(LinePanel),
    /// A histogram.
    Bars(BarPanel),
}

/// Draws `panels` in a grid of `columns` under `title` into the PNG `path`, with one legend
/// strip (every distinct line label) between the title and the panels.
pub fn draw_panels(
    path: &Path,
    title: &str,
    columns: usize,
    panels: &[PlotPanel],
) -> Result<(), ExperimentError> {
    register_font();
    let err = |e: &dyn std::fmt::Display| ExperimentError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let layout = Layout::new(panels, columns);
    let root = BitMapBackend::new(path, layout.size()).into_drawing_area();
    render(&root, &layout, title, panels).map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Layout: title strip, legend strip, grid of panels.

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
/// Every panel's chart is linear; a log axis is drawn as log10 of the values.
type Chart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;
type Drawn = Result<(), Box<dyn Error>>;

/// Where everything of a figure goes, computed before drawing so that the canvas has its size.
struct Layout {
    columns: usize,
    rows: usize,
    /// Distinct line labels in order of first appearance; a label's index is its colour.
    labels: Vec<String>,
    /// The legend's rows, as indices into `labels`.
    legend_rows: Vec<Vec<usize>>,
}

impl Layout {
    fn new(panels: &[PlotPanel], columns: usize) -> Self {
        let columns = columns.clamp(1, panels.len().max(1));
        let labels = legend_labels(panels);
        let legend_rows = legend_rows(&labels, PANEL_W * columns as u32);
        Self {
            columns,
            rows: panels.len().div_ceil(columns).max(1),
            labels,
            legend_rows,
        }
    }

    fn legend_height(&self) -> u32 {
        LEGEND_ROW_H * self.legend_rows.len() as u32
    }

    fn size(&self) -> (u32, u32) {
        let height = TITLE_H + self.legend_height() + PANEL_H * self.rows as u32;
        (PANEL_W * self.columns as u32, height)
    }

    fn color(&self, label: &str) -> RGBColor {
        palette(self.labels.iter().position(|l| l == label).unwrap_or(0))
    }
}

fn legend_labels(panels: &[PlotPanel]) -> Vec<String> {
    let mut labels: Vec<String> = Vec::new();
    let lines = panels.iter().flat_map(|p| match p {
        PlotPanel::Lines(p) => p.lines.as_slice(),
        PlotPanel::Bars(_) => &[],
    });
    for line in lines {
        if !labels.contains(&line.label) {
            labels.push(line.label.clone());
        }
    }
    labels
}

/// A legend entry's width, the label's estimated: DejaVu Sans at 16 px is under 10 px a
/// character, and the canvas's size must be known before any text is drawn.
fn entry_width(label: &str) -> u32 {
    SWATCH_W + SWATCH_GAP + 10 * label.chars().count() as u32 + ENTRY_GAP
}

/// Packs legend entries greedily into rows no wider than `width`.
fn legend_rows(labels: &[String], width: u32) -> Vec<Vec<usize>> {
    let mut rows: Vec<Vec<usize>> = Vec::new();
    let mut used = u32::MAX;
    for (i, label) in labels.iter().enumerate() {
        let w = entry_width(label);
        if used.saturating_add(w) > width {
            rows.push(Vec::new());
            used = 0;
        }
        used += w;
        if let Some(row) = rows.last_mut() {
            row.push(i);
        }
    }
    rows
}

fn render(root: &Area<'_>, layout: &Layout, title: &str, panels: &[PlotPanel]) -> Drawn {
    root.fill(&WHITE)?;
    let (head, grid) = root.split_vertically(TITLE_H + layout.legend_height());
    let (title_area, legend_area) = head.split_vertically(TITLE_H);
    let center = Pos::new(HPos::Center, VPos::Center);
    let (w, _) = title_area.dim_in_pixel();
    title_area.draw(&Text::new(
        title.to_string(),
        (w as i32 / 2, TITLE_H as i32 / 2),
        (FAMILY, 24).into_font().color(&BLACK).pos(center),
    ))?;
    draw_legend(&legend_area, layout)?;
    let cells = grid.split_evenly((layout.rows, layout.columns));
    for (i, (panel, cell)) in panels.iter().zip(&cells).enumerate() {
        match panel {
            PlotPanel::Lines(p) => draw_line_panel(cell, p, layout)?,
            PlotPanel::Bars(p) => draw_bar_panel(cell, p, palette(i))?,
        }
    }
    Ok(())
}

/// The shared legend: a short thick line in each label's colour, then the label.
fn draw_legend(area: &Area<'_>, layout: &Layout) -> Drawn {
    let (w, _) = area.dim_in_pixel();
    let left = Pos::new(HPos::Left, VPos::Center);
    for (r, row) in layout.legend_rows.iter().enumerate() {
        let total: u32 = row.iter().map(|&i| entry_width(&layout.labels[i])).sum();
        let mut x = (w.saturating_sub(total) / 2) as i32;
        let y = (LEGEND_ROW_H * r as u32 + LEGEND_ROW_H / 2) as i32;
        for &i in row {
            let label = &layout.labels[i];
            let color = palette(i);
            let swatch = vec![(x, y), (x + SWATCH_W as i32, y)];
            area.draw(&PathElement::new(swatch, color.stroke_width(4)))?;
            let font = (FAMILY, 16).into_font().color(&BLACK).pos(left);
            let text_x = x + (SWATCH_W + SWATCH_GAP) as i32;
            area.draw(&Text::new(label.clone(), (text_x, y), font))?;
            x += entry_width(label) as i32;
        }
    }
    Ok(())
}

/// The one copy of the panel frame: caption, margins and the room for tick labels.
fn chart_builder<'a, 'b>(
    area: &'a Area<'b>,
    title: &str,
) -> ChartBuilder<'a, 'static, BitMapBackend<'b>> {
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(title, (FAMILY, CAPTION_SIZE))
        .margin(MARGIN)
        .margin_right(MARGIN_RIGHT)
        .x_label_area_size(X_LABELS_H)
        .y_label_area_size(Y_LABELS_W);
    builder
}

/// The one copy of the grid and axes: sparse light grid lines, readable tick labels.
fn draw_mesh(
    chart: &mut Chart<'_, '_>,
    (x_label, y_label): (&str, &str),
    x_span: f64,
    y_format: &dyn Fn(&f64) -> String,
) -> Drawn {
    let x_format = move |v: &f64| tick_label(*v, x_span);
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(x_label)
        .x_labels(7)
        .y_labels(7)
        .x_label_formatter(&x_format)
        .y_label_formatter(y_format)
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 14))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(TRANSPARENT);
    if !y_label.is_empty() {
        mesh.y_desc(y_label);
    }
    mesh.draw()?;
    Ok(())
}

/// A tick label with as many decimals as ticks about `span / 6` apart need, in exponent form
/// for very large or small magnitudes.
fn tick_label(v: f64, span: f64) -> String {
    let span = span.abs();
    if v.abs() <= span * 1e-9 {
        return "0".into();
    }
    let magnitude = v.abs().max(span);
    if !(1e-3..1e5).contains(&magnitude) {
        return format!("{v:.1e}");
    }
    let decimals = (-(span / 6.0).log10().floor()).clamp(0.0, 4.0) as usize;
    format!("{v:.decimals$}")
}

/// The label of a log axis's tick at `10^exponent`: over three decades or more, or far from 1,
/// in exponent form (`1e-7`); otherwise plainly, decades exactly and other ticks with two
/// significant digits.
fn log_tick_label(exponent: f64, span: f64) -> String {
    let value = 10f64.powf(exponent);
    let decade = (exponent - exponent.round()).abs() < 1e-9;
    if span >= 3.0 || !(-3.0..5.0).contains(&exponent) {
        return if decade {
            format!("1e{}", exponent.round())
        } else {
            format!("{value:.1e}")
        };
    }
    let decimals = if decade {
        (-exponent.round()).max(0.0) as usize
    } else {
        (1.0 - value.log10().floor()).max(0.0) as usize
    };
    // Ticks about `span / 6` decades apart differ by `value ln 10 span / 6`: enough decimals
    // that neighbours on a narrow axis do not print alike.
    let step = value * std::f64::consts::LN_10 * span / 6.0;
    let needed = (-step.log10().floor()).clamp(0.0, 6.0) as usize;
    let decimals = if decade {
        decimals
    } else {
        decimals.max(needed)
    };
    format!("{value:.decimals$}")
}

// ---------------------------------------------------------------------------------------------
// Line panels.

fn draw_line_panel(area: &Area<'_>, panel: &LinePanel, layout: &Layout) -> Drawn {
    let x = x_bounds(&panel.lines, panel.log_y);
    let y = y_bounds(&panel.lines, panel.log_y, panel.y_range);
    // plotters' own log axis labels only whole decades; log10 space on a linear axis gets
    // ticks at any span, labelled by `log_tick_label`.
    let axis = |v: f64| if panel.log_y { v.log10() } else { v };
    let (lo, hi) = (axis(y.0), axis(y.1));
    let mut chart = chart_builder(area, &panel.title).build_cartesian_2d(x.0..x.1, lo..hi)?;
    let labels = (panel.x_label.as_str(), "");
    let linear = |v: &f64| tick_label(*v, hi - lo);
    let log = |v: &f64| log_tick_label(*v, hi - lo);
    let y_format: &dyn Fn(&f64) -> String = if panel.log_y { &log } else { &linear };
    draw_mesh(&mut chart, labels, x.1 - x.0, y_format)?;
    draw_lines(&chart, panel, (x, y), layout)
}

type Range2 = ((f64, f64), (f64, f64));

fn draw_lines(chart: &Chart<'_, '_>, panel: &LinePanel, (x, y): Range2, layout: &Layout) -> Drawn {
    let axis = |(px, py): (f64, f64)| (px, if panel.log_y { py.log10() } else { py });
    // Markers first, so that the data lines stay on top of them.
    for line in &panel.lines {
        let style = layout.color(&line.label).stroke_width(LINE_WIDTH);
        let marks = (line.markers.iter().map(|&m| (m, MARKER_DASH)))
            .chain(line.dotted_markers.iter().map(|&m| (m, MARKER_DOT)));
        for (m, dash) in marks.filter(|(m, _)| (x.0..=x.1).contains(m)) {
            let ends = [axis((m, y.0)), axis((m, y.1))];
            stroke(chart, &ends, style, Some(dash))?;
        }
    }
    for line in &panel.lines {
        let style = layout.color(&line.label).stroke_width(LINE_WIDTH);
        let dash = line.dashed.then_some(LINE_DASH);
        for run in clip_line(&line.points, x, y, panel.log_y) {
            let run: Vec<(f64, f64)> = run.into_iter().map(axis).collect();
            stroke(chart, &run, style, dash)?;
        }
    }
    Ok(())
}

/// Draws a polyline of in-range (axis-space) points segment by segment in pixel space. plotters joins a
/// thick polyline with mitres that shoot far out of the panel at sharp reversals; separate
/// straight pieces have no joins.
fn stroke(
    chart: &Chart<'_, '_>,
    points: &[(f64, f64)],
    style: ShapeStyle,
    dash: Option<(f64, f64)>,
) -> Drawn {
    let area = chart.plotting_area();
    let (bx, by) = area.get_base_pixel();
    let pixels: Vec<(f64, f64)> = points
        .iter()
        .map(|p| chart.backend_coord(p))
        .map(|(px, py)| (f64::from(px - bx), f64::from(py - by)))
        .collect();
    let canvas = area.strip_coord_spec();
    let round = |p: (f64, f64)| (p.0.round() as i32, p.1.round() as i32);
    if let [p] = pixels.as_slice() {
        // A lone point between gaps still shows, as a dot.
        return Ok(canvas.draw(&Circle::new(round(*p), LINE_WIDTH, style.filled()))?);
    }
    let pieces = match dash {
        Some((on, off)) => dashes(&pixels, on, off),
        None => pixels.windows(2).map(|w| (w[0], w[1])).collect(),
    };
    for (a, b) in pieces {
        let (a, b) = (round(a), round(b));
        if a != b {
            canvas.draw(&PathElement::new(vec![a, b], style))?;
        }
    }
    Ok(())
}

/// Cuts a polyline into dashes `on` pixels long separated by gaps `off` pixels long; the
/// pattern runs on across the vertices.
fn dashes(points: &[(f64, f64)], on: f64, off: f64) -> Vec<((f64, f64), (f64, f64))> {
    let (on, off) = (on.max(0.5), off.max(0.5));
    let mut out = Vec::new();
    let (mut drawing, mut left) = (true, on);
    for w in points.windows(2) {
        let (mut a, b) = (w[0], w[1]);
        let mut length = (b.0 - a.0).hypot(b.1 - a.1);
        while length > 1e-9 {
            let step = left.min(length);
            let t = step / length;
            let c = (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
            if drawing {
                out.push((a, c));
            }
            (a, length, left) = (c, length - step, left - step);
            if left <= 1e-9 {
                drawing = !drawing;
                left = if drawing { on } else { off };
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Ranges and clipping: pure, so that they are tested without drawing.

/// A point a panel can show: finite, and positive on a log axis.
fn usable((x, y): (f64, f64), log_y: bool) -> bool {
    x.is_finite() && y.is_finite() && (!log_y || y > 0.0)
}

fn extent(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

fn usable_points(lines: &[Line], log_y: bool) -> impl Iterator<Item = (f64, f64)> + '_ {
    let points = lines.iter().flat_map(|l| l.points.iter().copied());
    points.filter(move |&p| usable(p, log_y))
}

/// The x range: the usable points' steps, from the first logged one (a window starts late).
fn x_bounds(lines: &[Line], log_y: bool) -> (f64, f64) {
    match extent(usable_points(lines, log_y).map(|p| p.0)) {
        Some((lo, hi)) if hi > lo => (lo, hi),
        Some((lo, _)) => (lo - 1.0, lo),
        None => (0.0, 1.0),
    }
}

/// The y range drawn: `fixed` when it is valid, otherwise the usable points' extent; a single
/// value is widened, and either is padded by 5 % (in log space on a log axis).
fn y_bounds(lines: &[Line], log_y: bool, fixed: Option<(f64, f64)>) -> (f64, f64) {
    let valid = |&(lo, hi): &(f64, f64)| {
        lo.is_finite() && hi.is_finite() && lo < hi && (!log_y || lo > 0.0)
    };
    let (lo, hi) = match fixed.filter(valid) {
        Some(range) => range,
        None => match extent(usable_points(lines, log_y).map(|p| p.1)) {
            Some((lo, hi)) if hi > lo => (lo, hi),
            Some((v, _)) if log_y => (v / 2.0, v * 2.0),
            Some((v, _)) => (v - 0.5 * v.abs().max(1.0), v + 0.5 * v.abs().max(1.0)),
            None if log_y => (1e-3, 1.0),
            None => (0.0, 1.0),
        },
    };
    // Capped where the range arithmetic would overflow: a linear span within 2e300, a log
    // range within e^-690..e^690 and never empty.
    if log_y {
        let (a, b) = (lo.ln(), hi.ln());
        let pad = 0.05 * (b - a);
        let top = (b + pad).clamp(-690.0, 690.0);
        let bottom = (a - pad).max(top - 690.0).min(top - 1e-9);
        (bottom.exp(), top.exp())
    } else {
        let pad = 0.05 * hi - 0.05 * lo;
        let cap = |v: f64| v.clamp(-1e300, 1e300);
        (cap(lo - pad), cap(hi + pad))
    }
}

/// Liang–Barsky: the part of the segment `a`–`b` inside the box, if any, its ends clamped to
/// the box so that rounding cannot put them outside.
fn clip_segment(
    a: (f64, f64),
    b: (f64, f64),
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
) -> Option<((f64, f64), (f64, f64))> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, a.0 - x0),
        (dx, x1 - a.0),
        (-dy, a.1 - y0),
        (dy, y1 - a.1),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else if p < 0.0 {
            t0 = t0.max(q / p);
        } else {
            t1 = t1.min(q / p);
        }
    }
    if t0 > t1 {
        return None;
    }
    // The ends themselves when uncut, so that a run's points compare equal along the line.
    let at = |t: f64| {
        if t == 0.0 {
            a
        } else if t == 1.0 {
            b
        } else {
            (a.0 + t * dx, a.1 + t * dy)
        }
    };
    let clamp = |p: (f64, f64)| (p.0.clamp(x0, x1), p.1.clamp(y0, y1));
    Some((clamp(at(t0)), clamp(at(t1))))
}

/// Splits `points` into runs that lie inside `x` by `y`: unusable points break the line, and a
/// segment crossing the box's edge is cut there. On a log axis the cut is made in log space,
/// where the drawn segment is straight.
fn clip_line(
    points: &[(f64, f64)],
    x: (f64, f64),
    y: (f64, f64),
    log_y: bool,
) -> Vec<Vec<(f64, f64)>> {
    let to_axis = |(px, py): (f64, f64)| if log_y { (px, py.ln()) } else { (px, py) };
    let y_axis = if log_y { (y.0.ln(), y.1.ln()) } else { y };
    let (mut runs, mut run) = (Vec::new(), Vec::new());
    let mut previous: Option<(f64, f64)> = None;
    for &p in points {
        let current = usable(p, log_y).then(|| to_axis(p));
        match (previous, current) {
            (Some(a), Some(b)) => match clip_segment(a, b, x, y_axis) {
                Some((from, to)) => {
                    if run.last() != Some(&from) {
                        flush(&mut runs, &mut run);
                        run.push(from);
                    }
                    run.push(to);
                    if to != b {
                        flush(&mut runs, &mut run);
                    }
                }
                None => flush(&mut runs, &mut run),
            },
            (None, Some(b)) if clip_segment(b, b, x, y_axis).is_some() => run.push(b),
            _ => flush(&mut runs, &mut run),
        }
        previous = current;
    }
    flush(&mut runs, &mut run);
    let from_axis = |(px, py): (f64, f64)| (px, if log_y { py.exp().clamp(y.0, y.1) } else { py });
    runs.into_iter()
        .map(|r| r.into_iter().map(from_axis).collect())
        .collect()
}

fn flush(runs: &mut Vec<Vec<(f64, f64)>>, run: &mut Vec<(f64, f64)>) {
    if !run.is_empty() {
        runs.push(std::mem::take(run));
    }
}

// ---------------------------------------------------------------------------------------------
// Bar panels.

fn draw_bar_panel(area: &Area<'_>, panel: &BarPanel, color: RGBColor) -> Drawn {
    let (x0, x1) = match panel.x_range {
        (lo, hi) if lo.is_finite() && hi.is_finite() && lo < hi => (lo, hi),
        _ => (-1.0, 1.0),
    };
    let tallest = extent(panel.bars.iter().map(|b| b.2).filter(|h| h.is_finite()));
    let top = tallest.map_or(1.0, |(_, hi)| if hi > 0.0 { hi * 1.05 } else { 1.0 });
    let mut chart = chart_builder(area, &panel.title).build_cartesian_2d(x0..x1, 0.0..top)?;
    let labels = (panel.x_label.as_str(), panel.y_label.as_str());
    draw_mesh(&mut chart, labels, x1 - x0, &|v| tick_label(*v, top))?;
    // Bars are clamped to the axes like lines are clipped.
    let bars = panel
        .bars
        .iter()
        .filter(|b| b.0.is_finite() && b.1.is_finite() && b.2.is_finite());
    chart.draw_series(bars.map(|&(l, r, h)| {
        let (l, r, h) = (l.clamp(x0, x1), r.clamp(x0, x1), h.clamp(0.0, top));
        Rectangle::new([(l, 0.0), (r, h)], color.filled())
    }))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The panels of `MetricsRow` runs, plain xy panels and
// histograms, each converted into `PlotPanel`s for `draw_panels`.

/// One line of a figure: an arm's rows and its spike steps. Input of [`metric_panels`].
#[derive(Debug, Clone, Copy)]
pub struct Series<'a> {
    /// Legend label.
    pub label: &'a str,
    /// Logged rows.
    pub rows: &'a [MetricsRow],
    /// Steps where loss spikes start (dashed on the panels that mark spikes).
    pub spikes: &'a [u64],
    /// Steps where NFI events start (dotted on the same panels).
    pub nfi_events: &'a [u64],
}

/// A quantity drawn in one panel of [`metric_panels`];
/// [`Panel::line_panel`] converts it.
#[derive(Debug, Clone, Copy)]
pub struct Panel {
    /// Panel title.
    pub title: &'static str,
    /// The value of a row: `None` skips the row, a non-finite value (or, on a log axis, a
    /// non-positive one) breaks the line.
    pub value: fn(&MetricsRow) -> Option<f64>,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// Mark the series' spikes on this panel.
    pub mark_spikes: bool,
    /// A fixed y range instead of the data's.
    pub y_range: Option<(f64, f64)>,
    /// A second quantity drawn dashed in the same colour (the train accuracy beside the test
    /// accuracy).
    pub dashed: Option<fn(&MetricsRow) -> Option<f64>>,
}

impl Panel {
    /// A panel with a linear y axis.
    pub fn linear(title: &'static str, value: fn(&MetricsRow) -> Option<f64>) -> Self {
        Self {
            title,
            value,
            log_y: false,
            mark_spikes: false,
            y_range: None,
            dashed: None,
        }
    }

    /// A panel with a logarithmic y axis.
    pub fn log(title: &'static str, value: fn(&MetricsRow) -> Option<f64>) -> Self {
        Self {
            log_y: true,
            ..Self::linear(title, value)
        }
    }

    /// The same panel with the series' spikes marked.
    pub fn with_spikes(self) -> Self {
        Self {
            mark_spikes: true,
            ..self
        }
    }

    /// The training loss on a log axis, spikes marked.
    pub fn loss() -> Self {
        Self::log("training loss (spikes marked)", |r| Some(r.loss)).with_spikes()
    }

    /// The softmax-collapsed fraction.
    pub fn collapsed_fraction() -> Self {
        Self::linear("softmax-collapsed fraction", |r| Some(r.collapsed_fraction))
    }

    /// The mean residual mass `epsilon = sum_{k != y} p_k` on a log axis (Fig. 2(b)).
    pub fn residual_mass() -> Self {
        Self::log("residual mass epsilon (mean)", |r| {
            Some(r.mean_residual_mass)
        })
        .with_spikes()
    }

    /// Test accuracy (solid) and train accuracy (dashed) on `[0, 1]`, spikes marked.
    pub fn accuracy() -> Self {
        Self {
            y_range: Some((0.0, 1.0)),
            dashed: Some(|r| Some(r.train_acc)),
            ..Self::linear("accuracy (train dashed, test solid)", |r| Some(r.test_acc))
                .with_spikes()
        }
    }

    /// `||mu_G||` on a log axis.
    pub fn mu_g_norm() -> Self {
        Self::log("||mu_G|| (feature mean)", |r| Some(r.mu_g_norm))
    }

    /// The classifier's norm `||W||` on a log axis, spikes marked (Fig. 3(b)).
    pub fn last_layer_norm() -> Self {
        Self::log("last-layer norm ||W||", |r| Some(r.last_layer_norm)).with_spikes()
    }

    /// This panel of `series` as a generic [`LinePanel`] over the step.
    pub fn line_panel(&self, series: &[Series<'_>]) -> LinePanel {
        let points = |s: &Series<'_>, value: fn(&MetricsRow) -> Option<f64>| -> Vec<(f64, f64)> {
            let rows = s.rows.iter();
            rows.filter_map(|r| value(r).map(|v| (r.step as f64, v)))
                .collect()
        };
        let mut lines = Vec::new();
        for s in series {
            let marks = |steps: &[u64]| -> Vec<f64> {
                let steps = if self.mark_spikes { steps } else { &[] };
                steps.iter().map(|&step| step as f64).collect()
            };
            lines.push(Line {
                label: s.label.to_string(),
                points: points(s, self.value),
                dashed: false,
                markers: marks(s.spikes),
                dotted_markers: marks(s.nfi_events),
            });
            if let Some(value) = self.dashed {
                let points = points(s, value);
                lines.push(Line {
                    label: s.label.to_string(),
                    points,
                    dashed: true,
                    ..Line::default()
                });
            }
        }
        LinePanel {
            title: self.title.to_string(),
            x_label: "step".to_string(),
            log_y: self.log_y,
            lines,
            y_range: self.y_range,
        }
    }
}

/// The panels of Fig. 1 and Fig. 2(c): loss with spikes, collapsed fraction, `||mu_G||`,
/// `cos(W_G, mu_G)`, mean correct-class logit, test accuracy. For [`metric_panels`].
pub fn mechanism_panels() -> Vec<Panel> {
    vec![
        Panel::loss(),
        Panel::collapsed_fraction(),
        Panel::mu_g_norm(),
        Panel::linear("cos(W_G, mu_G)", |r| Some(r.cos_wg_mug)),
        Panel::linear("mean correct-class logit", |r| Some(r.mean_correct_logit)),
        Panel::accuracy(),
    ]
}

/// The panels of Fig. 3(b): loss with spikes, the last-layer norm `||W||` (stepwise under a
/// LayerNorm head, the paper says), `||mu_G||` and the collapsed fraction. For
/// [`metric_panels`].
pub fn last_layer_norm_panels() -> Vec<Panel> {
    vec![
        Panel::loss(),
        Panel::last_layer_norm(),
        Panel::mu_g_norm(),
        Panel::collapsed_fraction(),
    ]
}

/// The panels of the image experiments: loss with spikes, the residual mass `epsilon` of
/// Fig. 2(b), collapsed fraction, `||mu_G||`, the classifier norm of Fig. 3(b), accuracy. For
/// [`metric_panels`].
pub fn image_panels() -> Vec<Panel> {
    vec![
        Panel::loss(),
        Panel::residual_mass(),
        Panel::collapsed_fraction(),
        Panel::mu_g_norm(),
        Panel::last_layer_norm(),
        Panel::accuracy(),
    ]
}

/// `panels` of `series` (one line per series) as panels for [`draw_panels`].
pub fn metric_panels(panels: &[Panel], series: &[Series<'_>]) -> Vec<PlotPanel> {
    panels
        .iter()
        .map(|p| PlotPanel::Lines(p.line_panel(series)))
        .collect()
}

/// One line of an [`XyPanel`]: a legend label and its `(x, y)` points.
#[derive(Debug, Clone)]
pub struct XySeries<'a> {
    /// Legend label.
    pub label: &'a str,
    /// The points; a non-finite one (or, on a log axis, a non-positive y) breaks the line.
    pub points: Vec<(f64, f64)>,
}

/// A panel of plain `(x, y)` lines; [`XyPanel::line_panel`] converts it.
#[derive(Debug, Clone)]
pub struct XyPanel<'a> {
    /// Panel title.
    pub title: &'a str,
    /// The x axis's label.
    pub x_label: &'a str,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// One line per series.
    pub series: Vec<XySeries<'a>>,
}

impl XyPanel<'_> {
    /// This panel as a generic [`LinePanel`].
    pub fn line_panel(&self) -> LinePanel {
        let lines = self.series.iter().map(|s| Line {
            label: s.label.to_string(),
            points: s.points.clone(),
            ..Line::default()
        });
        LinePanel {
            title: self.title.to_string(),
            x_label: self.x_label.to_string(),
            log_y: self.log_y,
            lines: lines.collect(),
            y_range: None,
        }
    }
}

/// Panels of plain `(x, y)` lines as panels for [`draw_panels`].
pub fn xy_panels(panels: &[XyPanel<'_>]) -> Vec<PlotPanel> {
    panels
        .iter()
        .map(|p| PlotPanel::Lines(p.line_panel()))
        .collect()
}

/// One histogram panel: a title and the values counted.
#[derive(Debug, Clone, Copy)]
pub struct HistogramPanel<'a> {
    /// Panel title.
    pub title: &'a str,
    /// The values (non-finite ones are skipped).
    pub values: &'a [f64],
}

/// Histograms of `panels` as [`BarPanel`]s: `bins` equal bins over one shared symmetric range
/// `[-m, m]`, `m` the largest finite magnitude in any panel, so that the panels compare
/// directly.
pub fn histogram_panels(panels: &[HistogramPanel<'_>], bins: usize) -> Vec<BarPanel> {
    let bins = bins.max(1);
    let finite = || {
        panels
            .iter()
            .flat_map(|p| p.values.iter())
            .filter(|v| v.is_finite())
    };
    let m = finite().fold(0.0f64, |m, v| m.max(v.abs()));
    let m = if m > 0.0 { m } else { 1.0 };
    let width = 2.0 * m / bins as f64;
    let bar_panel = |p: &HistogramPanel<'_>| {
        let mut counts = vec![0u64; bins];
        for v in p.values.iter().filter(|v| v.is_finite()) {
            counts[(((v + m) / width).floor() as usize).min(bins - 1)] += 1;
        }
        let edge = |b: usize| -m + b as f64 * width;
        BarPanel {
            title: p.title.to_string(),
            x_label: "update".to_string(),
            y_label: "entries".to_string(),
            x_range: (-m, m),
            bars: (0..bins)
                .map(|b| (edge(b), edge(b + 1), counts[b] as f64))
                .collect(),
        }
    };
    panels.iter().map(bar_panel).collect()
}

/// Histograms of signed values side by side (Fig. 2(a)), see [`histogram_panels`], as panels
/// for [`draw_panels`].
pub fn histogram_plots(panels: &[HistogramPanel<'_>], bins: usize) -> Vec<PlotPanel> {
    histogram_panels(panels, bins)
        .into_iter()
        .map(PlotPanel::Bars)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(points: &[(f64, f64)]) -> Line {
        Line {
            label: "a".into(),
            points: points.to_vec(),
            ..Line::default()
        }
    }

    fn inside(p: (f64, f64), x: (f64, f64), y: (f64, f64)) -> bool {
        (x.0..=x.1).contains(&p.0) && (y.0..=y.1).contains(&p.1)
    }

    fn close(a: (f64, f64), b: (f64, f64)) -> bool {
        (a.0 - b.0).abs() < 1e-9 && (a.1 - b.1).abs() < 1e-9
    }

    #[test]
    fn every_clipped_point_lies_in_range() {
        // A wild zigzag far outside the box, with NaN and infinities in it.
        let points: Vec<(f64, f64)> = (0..500)
            .map(|i| {
                let v = match i % 7 {
                    0 => f64::NAN,
                    3 => f64::INFINITY,
                    5 => -1e30,
                    _ => 50.0 * (i as f64 * 0.37).sin(),
                };
                (i as f64, v)
            })
            .collect();
        for log_y in [false, true] {
            let (x, y) = ((10.0, 400.0), if log_y { (0.1, 10.0) } else { (-1.0, 1.0) });
            let runs = clip_line(&points, x, y, log_y);
            assert!(runs.len() > 10, "the line is broken into many runs");
            for p in runs.iter().flatten() {
                assert!(
                    inside(*p, x, y),
                    "{p:?} outside {x:?} x {y:?} (log {log_y})"
                );
            }
        }
    }

    #[test]
    fn a_segment_crossing_the_edge_is_cut_at_the_edge() {
        let (x, y) = ((0.0, 10.0), (-1.0, 2.0));
        let runs = clip_line(&[(0.0, 0.0), (2.0, 4.0)], x, y, false);
        assert_eq!(runs, vec![vec![(0.0, 0.0), (1.0, 2.0)]]);
        // Out through the top and back in: two runs, each cut at y = 1.
        let runs = clip_line(
            &[(0.0, 0.0), (1.0, 10.0), (2.0, 0.0)],
            x,
            (-1.0, 1.0),
            false,
        );
        assert_eq!(runs.len(), 2);
        assert!(close(runs[0][1], (0.1, 1.0)) && close(runs[1][0], (1.9, 1.0)));
        assert_eq!(runs[1][1], (2.0, 0.0));
    }

    #[test]
    fn non_finite_points_break_the_line() {
        let points = [(0.0, 0.0), (1.0, f64::NAN), (2.0, 0.5), (3.0, 0.25)];
        let runs = clip_line(&points, (0.0, 3.0), (-1.0, 1.0), false);
        assert_eq!(runs, vec![vec![(0.0, 0.0)], vec![(2.0, 0.5), (3.0, 0.25)]]);
    }

    #[test]
    fn a_log_axis_drops_non_positive_values_and_cuts_in_log_space() {
        let points = [(0.0, 1.0), (1.0, -1.0), (2.0, 1.0), (3.0, 100.0)];
        let runs = clip_line(&points, (0.0, 3.0), (0.5, 10.0), true);
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0], vec![(0.0, 1.0)]);
        // Halfway from 1 to 100 in log space is where the line reaches 10.
        assert!(close(runs[1][0], (2.0, 1.0)) && close(runs[1][1], (2.5, 10.0)));
    }

    #[test]
    fn y_bounds_hold_every_finite_value_and_ignore_the_rest() {
        let wild = line(&[
            (0.0, 1.0),
            (1.0, 5.0),
            (2.0, f64::NAN),
            (3.0, f64::INFINITY),
        ]);
        let (lo, hi) = y_bounds(std::slice::from_ref(&wild), false, None);
        assert!(lo < 1.0 && hi > 5.0 && hi - lo < 4.0 * 1.2, "({lo}, {hi})");
        let log = line(&[(0.0, 0.0), (1.0, -3.0), (2.0, 1e-3), (3.0, 10.0)]);
        let (lo, hi) = y_bounds(&[log], true, None);
        assert!(
            lo > 0.0 && lo < 1e-3 && hi > 10.0 && hi < 20.0,
            "({lo}, {hi})"
        );
        let (lo, hi) = y_bounds(std::slice::from_ref(&wild), false, Some((0.0, 1.0)));
        assert!(close((lo, hi), (-0.05, 1.05)));
        // An invalid fixed range falls back to the data.
        assert!(y_bounds(&[wild], false, Some((1.0, 0.0))).1 > 5.0);
        assert_eq!(x_bounds(&[], false), (0.0, 1.0));
    }

    #[test]
    fn dashes_alternate_across_vertices() {
        let pieces = dashes(&[(0.0, 0.0), (30.0, 0.0)], 5.0, 5.0);
        let starts: Vec<f64> = pieces.iter().map(|(a, _)| a.0).collect();
        assert_eq!(starts, vec![0.0, 10.0, 20.0]);
        assert!(pieces.iter().all(|(a, b)| (b.0 - a.0 - 5.0).abs() < 1e-9));
        // A dash that turns a corner continues on the next segment.
        let pieces = dashes(&[(0.0, 0.0), (3.0, 0.0), (3.0, 10.0)], 5.0, 5.0);
        assert!(close(pieces[1].0, (3.0, 0.0)) && close(pieces[1].1, (3.0, 2.0)));
        assert!(close(pieces[2].0, (3.0, 7.0)));
    }

    #[test]
    fn tick_labels_have_the_decimals_their_spacing_needs() {
        assert_eq!(tick_label(0.1, 0.7), "0.1");
        assert_eq!(tick_label(2000.0, 12000.0), "2000");
        assert_eq!(tick_label(-800.0, 820.0), "-800");
        assert_eq!(tick_label(1e-12, 1.0), "0");
        assert_eq!(tick_label(5e-4, 2e-3), "0.0005");
        assert_eq!(tick_label(5e-5, 2e-4), "5.0e-5");
        assert_eq!(tick_label(2e6, 1e7), "2.0e6");
        assert_eq!(log_tick_label(-4.0, 8.0), "1e-4");
        assert_eq!(log_tick_label(0.0, 8.0), "1e0");
        assert_eq!(log_tick_label(-2.0, 1.5), "0.01");
        assert_eq!(log_tick_label(1.2, 1.5), "16");
        assert_eq!(log_tick_label(0.8, 1.5), "6.3");
        // A narrow log axis (1.6 to 1.95) labels neighbouring ticks apart.
        let span = (1.95f64 / 1.6).log10();
        assert_eq!(log_tick_label(1.7f64.log10(), span), "1.70");
        assert_ne!(
            log_tick_label(1.7f64.log10(), span),
            log_tick_label(1.75f64.log10(), span)
        );
    }

    #[test]
    fn the_legend_wraps_into_rows_that_fit() {
        let labels: Vec<String> = (0..12).map(|i| format!("arm number {i}")).collect();
        let rows = legend_rows(&labels, 560);
        assert!(rows.len() > 1);
        for row in &rows {
            let width: u32 = row.iter().map(|&i| entry_width(&labels[i])).sum();
            assert!(width <= 560, "{row:?}");
        }
        assert_eq!(rows.concat(), (0..12).collect::<Vec<_>>());
        assert!(legend_rows(&[], 560).is_empty());
    }

    /// Renders into memory, so that the pixels can be inspected.
    fn render_rgb(columns: usize, panels: &[PlotPanel]) -> (Vec<u8>, (u32, u32)) {
        register_font();
        let layout = Layout::new(panels, columns);
        let size = layout.size();
        let mut buffer = vec![0u8; (size.0 * size.1 * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buffer, size).into_drawing_area();
            render(&root, &layout, "test", panels).unwrap();
            root.present().unwrap();
        }
        (buffer, size)
    }

    /// Pixels of exactly `color` in the rows `ys`, and their bounding box (x0, y0, x1, y1).
    fn find(rgb: &[u8], width: u32, color: RGBColor, ys: std::ops::Range<u32>) -> Found {
        let mut found = Found {
            count: 0,
            bbox: (u32::MAX, u32::MAX, 0, 0),
        };
        for y in ys {
            for x in 0..width {
                let at = ((y * width + x) * 3) as usize;
                if rgb[at..at + 3] == [color.0, color.1, color.2] {
                    let b = found.bbox;
                    found.count += 1;
                    found.bbox = (b.0.min(x), b.1.min(y), b.2.max(x), b.3.max(y));
                }
            }
        }
        found
    }

    struct Found {
        count: usize,
        bbox: (u32, u32, u32, u32),
    }

    fn wild_panel(markers: Vec<f64>) -> PlotPanel {
        // Reversals between the range's very edges several times a pixel (where plotters' mitred
        // joins of a thick line shoot out of the panel), jumps far beyond the fixed [0, 1], a NaN
        // gap, then flat where the markers go: everything drawn must stay inside the data area.
        let zigzag = (0..600).map(|k| (k as f64 * 0.1, [0.0, 0.02, 1.0, 0.97][k % 4]));
        let y = |i: usize| match i {
            160 | 162 => 1e6,
            161 | 163 => -3.0,
            200 => f64::NAN,
            _ => 0.5,
        };
        let rest = (60..400).map(|i| (i as f64, y(i)));
        PlotPanel::Lines(LinePanel {
            title: "wild".into(),
            x_label: "step".into(),
            lines: vec![Line {
                label: "a".into(),
                points: zigzag.chain(rest).collect(),
                markers,
                ..Line::default()
            }],
            y_range: Some((0.0, 1.0)),
            ..LinePanel::default()
        })
    }

    #[test]
    fn lines_stay_inside_their_panel_and_markers_show() {
        let empty = PlotPanel::Lines(LinePanel::default());
        let (rgb, (w, h)) = render_rgb(1, &[wild_panel(vec![]), empty.clone()]);
        assert_eq!((w, h), (PANEL_W, TITLE_H + LEGEND_ROW_H + 2 * PANEL_H));
        let color = palette(0);
        let top = TITLE_H + LEGEND_ROW_H;
        // Nothing above the panel but the legend's swatch, nothing in the panel below.
        assert_eq!(find(&rgb, w, color, 0..TITLE_H).count, 0);
        assert_eq!(find(&rgb, w, color, top + PANEL_H..h).count, 0);
        // In the panel, only inside the data area: right of the y tick labels, below the
        // caption, above the x tick labels, left of the right margin (a line's half width of
        // slack).
        let line = find(&rgb, w, color, top..top + PANEL_H);
        assert!(
            line.count > 1000,
            "the line is drawn ({} pixels)",
            line.count
        );
        let (x0, y0, x1, y1) = line.bbox;
        assert!(
            x0 + 1 >= MARGIN + Y_LABELS_W && x1 <= PANEL_W - MARGIN_RIGHT + 1,
            "{x0}..{x1}"
        );
        assert!(y0 >= top + MARGIN + CAPTION_SIZE, "top {y0}");
        assert!(y1 <= top + PANEL_H - MARGIN - X_LABELS_H + 1, "bottom {y1}");
        let (marked, _) = render_rgb(1, &[wild_panel(vec![300.0, 350.0]), empty]);
        let with_markers = find(&marked, w, color, top..top + PANEL_H).count;
        assert!(
            with_markers > line.count + 200,
            "{with_markers} vs {}",
            line.count
        );
    }

    fn row(step: u64) -> MetricsRow {
        let s = step as f64;
        MetricsRow {
            step,
            loss: (-s / 20.0).exp(),
            train_acc: (s / 100.0).min(1.0),
            test_loss: 1.0,
            test_acc: 0.5,
            collapsed_fraction: (s / 200.0).min(0.6),
            zero_loss_fraction: 0.0,
            mean_residual_mass: 1e-3,
            min_margin: 1.0,
            mean_logit: 0.0,
            max_logit: 1.0,
            mean_correct_logit: s / 10.0,
            w_g_norm: 1.0,
            mu_g_norm: 1.0 + s,
            cos_wg_mug: -0.5,
            last_layer_norm: 1.0,
            eff_lr_median: None,
            eff_lr_max: None,
            eff_lr_ceiling_fraction: None,
            update_mean: None,
            update_ratio: None,
            grad_norm: None,
            classifier_grad_norm: None,
            sharpness: step.is_multiple_of(50).then_some(s),
            preconditioned_sharpness: None,
            wall_seconds: s,
        }
    }

    /// Synthetic rows with values far outside the normal range, NaN, a zero loss and spikes.
    fn wild_rows(offset: f64) -> Vec<MetricsRow> {
        let mut rows: Vec<MetricsRow> = (1..=200).map(row).collect();
        rows[60].collapsed_fraction = 1e9;
        rows[61].collapsed_fraction = f64::NAN;
        rows[90].mean_correct_logit = -1e6;
        rows[120].loss = 0.0;
        rows[121].loss = f64::NAN;
        rows[150].train_acc = 5.0;
        for r in &mut rows {
            r.cos_wg_mug += offset;
        }
        rows
    }

    #[test]
    fn metrics_panels_convert_to_line_panels() {
        let rows = wild_rows(0.0);
        let series = [Series {
            label: "f32",
            rows: &rows,
            spikes: &[61],
            nfi_events: &[40],
        }];
        // Rows without the quantity are skipped, not turned into gaps.
        let sharpness = Panel::log("sharpness", |r| r.sharpness).line_panel(&series);
        assert_eq!(sharpness.lines[0].points.len(), 4);
        assert!(sharpness.log_y && sharpness.lines[0].markers.is_empty());
        let accuracy = Panel::accuracy().line_panel(&series);
        let dashed: Vec<bool> = accuracy.lines.iter().map(|l| l.dashed).collect();
        assert_eq!(dashed, vec![false, true]);
        assert_eq!(accuracy.lines[0].markers, vec![61.0]);
        assert_eq!(accuracy.lines[0].dotted_markers, vec![40.0]);
        assert_eq!(accuracy.y_range, Some((0.0, 1.0)));
        // A NaN stays in the points, where it breaks the drawn line.
        let fraction = Panel::collapsed_fraction().line_panel(&series);
        assert!(fraction.lines[0].points[61].1.is_nan());
    }

    fn png_size(path: &Path) -> (u32, u32) {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        (be(16), be(20))
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("slingshot-plot-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_metrics_figure_of_wild_rows_is_drawn() {
        let (a, b) = (wild_rows(0.0), wild_rows(0.2));
        let series = [
            Series {
                label: "f32",
                rows: &a,
                spikes: &[61, 151],
                nfi_events: &[45],
            },
            Series {
                label: "f64",
                rows: &b,
                spikes: &[],
                nfi_events: &[],
            },
        ];
        let path = temp_dir("metrics").join("figure.png");
        let _ = std::fs::remove_file(&path);
        draw_panels(
            &path,
            "wild rows",
            3,
            &metric_panels(&mechanism_panels(), &series),
        )
        .unwrap();
        assert_eq!(
            png_size(&path),
            (3 * PANEL_W, TITLE_H + LEGEND_ROW_H + 2 * PANEL_H)
        );
    }

    #[test]
    fn xy_and_histogram_figures_are_drawn() {
        let dir = temp_dir("xy");
        let points = vec![(0.0, 1.0), (1.0, f64::NAN), (2.0, 1e300), (3.0, -2.0)];
        let series = vec![XySeries { label: "x", points }];
        let panel = XyPanel {
            title: "xy",
            x_label: "step",
            log_y: true,
            series,
        };
        draw_panels(&dir.join("xy.png"), "xy", 2, &xy_panels(&[panel])).unwrap();
        assert_eq!(
            png_size(&dir.join("xy.png")),
            (PANEL_W, TITLE_H + LEGEND_ROW_H + PANEL_H)
        );
        let values = [-1.0, 0.5, f64::NAN, 2.0, 2.0];
        let panels = [
            HistogramPanel {
                title: "one",
                values: &values,
            },
            HistogramPanel {
                title: "two",
                values: &values[..2],
            },
        ];
        draw_panels(
            &dir.join("hist.png"),
            "histograms",
            panels.len(),
            &histogram_plots(&panels, 8),
        )
        .unwrap();
        assert_eq!(
            png_size(&dir.join("hist.png")),
            (2 * PANEL_W, TITLE_H + PANEL_H)
        );
        let bars = histogram_panels(&panels, 8);
        assert_eq!(bars[0].x_range, (-2.0, 2.0));
        assert_eq!(bars[0].bars.iter().map(|b| b.2).sum::<f64>(), 4.0);
        assert_eq!(bars[1].bars[0].0, -2.0);
    }
}
