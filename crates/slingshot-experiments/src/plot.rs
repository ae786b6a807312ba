//! PNG figures of logged runs, drawn with plotters: one panel per quantity, one line per arm,
//! loss spikes marked.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use crate::error::ExperimentError;
use crate::metrics::MetricsRow;

/// DejaVu Sans (Bitstream Vera licence, `assets/DejaVuSans-LICENSE.txt`), bundled so that the
/// figures do not depend on the machine's fonts.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bundled file is a valid TrueType font; a failure here is a build defect.
        if plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_err() {
            panic!("the bundled DejaVu Sans font could not be registered");
        }
    });
}

/// One line of a figure: an arm's rows and its spike steps.
#[derive(Debug, Clone, Copy)]
pub struct Series<'a> {
    /// Legend label.
    pub label: &'a str,
    /// Logged rows.
    pub rows: &'a [MetricsRow],
    /// Steps where loss spikes start (marked on the loss panel).
    pub spikes: &'a [u64],
}

/// A quantity drawn in one panel.
#[derive(Debug, Clone, Copy)]
pub struct Panel {
    /// Panel title.
    pub title: &'static str,
    /// The value of a row (non-finite and, on a log axis, non-positive values are skipped).
    pub value: fn(&MetricsRow) -> Option<f64>,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// Mark the series' spikes on this panel.
    pub mark_spikes: bool,
    /// A fixed y range instead of the data's.
    pub y_range: Option<(f64, f64)>,
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
            ..Self::linear("accuracy (train dashed, test solid)", |r| Some(r.test_acc))
                .with_spikes()
        }
    }

    /// `||mu_G||` on a log axis.
    pub fn mu_g_norm() -> Self {
        Self::log("||mu_G|| (feature mean)", |r| Some(r.mu_g_norm))
    }
}

/// The panels of Fig. 1 and Fig. 2(c): loss with spikes, collapsed fraction, `||mu_G||`,
/// `cos(W_G, mu_G)`, mean correct-class logit, test accuracy.
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

/// The panels of the image experiments: loss with spikes, the residual mass `epsilon` of
/// Fig. 2(b), collapsed fraction, `||mu_G||`, the classifier norm of Fig. 3(b), accuracy.
pub fn image_panels() -> Vec<Panel> {
    vec![
        Panel::loss(),
        Panel::residual_mass(),
        Panel::collapsed_fraction(),
        Panel::mu_g_norm(),
        Panel::log("last-layer norm ||W||", |r| Some(r.last_layer_norm)).with_spikes(),
        Panel::accuracy(),
    ]
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];

/// Draws `panels` in a grid of `columns`, one line per series, into the PNG `path`.
pub fn draw(
    path: &Path,
    title: &str,
    series: &[Series<'_>],
    panels: &[Panel],
    columns: usize,
) -> Result<(), ExperimentError> {
    register_font();
    let err = |e: &dyn std::fmt::Display| ExperimentError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let rows_of_panels = panels.len().div_ceil(columns.max(1));
    let (width, height) = (520 * columns as u32, 360 * rows_of_panels as u32 + 40);
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root
        .titled(title, ("sans-serif", 24))
        .map_err(|e| err(&e))?;
    let areas = root.split_evenly((rows_of_panels, columns.max(1)));
    for (panel, area) in panels.iter().zip(areas.iter()) {
        draw_panel(area, panel, series).map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn draw_panel(
    area: &Area<'_>,
    panel: &Panel,
    series: &[Series<'_>],
) -> Result<(), Box<dyn std::error::Error>> {
    let usable = |v: f64| v.is_finite() && (!panel.log_y || v > 0.0);
    let points: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|s| {
            s.rows
                .iter()
                .filter_map(|r| (panel.value)(r).map(|v| (r.step as f64, v)))
                .filter(|&(_, v)| usable(v))
                .collect()
        })
        .collect();
    let all = points.iter().flatten();
    let x_max = all.clone().map(|p| p.0).fold(1.0, f64::max);
    // From the first logged step: 0 for whole runs, the window's start for a window.
    let x_min = all
        .clone()
        .map(|p| p.0)
        .fold(x_max, f64::min)
        .min(x_max - 1.0);
    let (mut y_min, mut y_max) = all
        .clone()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
    if !y_min.is_finite() {
        (y_min, y_max) = if panel.log_y { (1e-8, 1.0) } else { (0.0, 1.0) };
    }
    if y_max <= y_min {
        y_max = if panel.log_y {
            y_min * 10.0
        } else {
            y_min + 1.0
        };
    }
    if let Some(range) = panel.y_range {
        (y_min, y_max) = range;
    }
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(panel.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(64);
    if panel.log_y {
        let mut chart =
            builder.build_cartesian_2d(x_min..x_max, (y_min * 0.8..y_max * 1.25).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("step")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .draw()?;
        draw_lines(
            &mut chart,
            panel,
            series,
            &points,
            (y_min * 0.8, y_max * 1.25),
        )?;
    } else {
        let pad = 0.05 * (y_max - y_min);
        let mut chart = builder.build_cartesian_2d(x_min..x_max, y_min - pad..y_max + pad)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .draw()?;
        draw_lines(
            &mut chart,
            panel,
            series,
            &points,
            (y_min - pad, y_max + pad),
        )?;
    }
    Ok(())
}

fn draw_lines<'a, X, Y>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>,
    panel: &Panel,
    series: &[Series<'_>],
    points: &[Vec<(f64, f64)>],
    (y_lo, y_hi): (f64, f64),
) -> Result<(), Box<dyn std::error::Error>>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (i, (s, pts)) in series.iter().zip(points).enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
            .label(s.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        if panel.mark_spikes {
            for &step in s.spikes {
                chart.draw_series(LineSeries::new(
                    [(step as f64, y_lo), (step as f64, y_hi)],
                    color.mix(0.35),
                ))?;
            }
        }
        // The accuracy panel also shows the training accuracy, dashed.
        if panel.title.starts_with("accuracy") {
            let train: Vec<(f64, f64)> = s
                .rows
                .iter()
                .map(|r| (r.step as f64, r.train_acc))
                .collect();
            chart.draw_series(DashedLineSeries::new(train, 6, 4, color.into()))?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

/// One panel of [`draw_histograms`]: a title and the values counted.
#[derive(Debug, Clone, Copy)]
pub struct HistogramPanel<'a> {
    /// Panel title.
    pub title: &'a str,
    /// The values (non-finite ones are skipped).
    pub values: &'a [f64],
}

/// Histograms of signed values side by side (Fig. 2(a)), `bins` equal bins over one shared
/// symmetric range `[-m, m]`, `m` the largest finite magnitude in any panel, so that the
/// panels compare directly.
pub fn draw_histograms(
    path: &Path,
    title: &str,
    panels: &[HistogramPanel<'_>],
    bins: usize,
) -> Result<(), ExperimentError> {
    register_font();
    let err = |e: &dyn std::fmt::Display| ExperimentError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let bins = bins.max(1);
    let m = panels
        .iter()
        .flat_map(|p| p.values.iter())
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    let m = if m > 0.0 { m } else { 1.0 };
    let width = 2.0 * m / bins as f64;
    let root =
        BitMapBackend::new(path, (520 * panels.len().max(1) as u32, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root
        .titled(title, ("sans-serif", 22))
        .map_err(|e| err(&e))?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (i, (panel, area)) in panels.iter().zip(areas.iter()).enumerate() {
        let mut counts = vec![0u64; bins];
        for v in panel.values.iter().filter(|v| v.is_finite()) {
            let b = (((v + m) / width).floor() as usize).min(bins - 1);
            counts[b] += 1;
        }
        let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
        let color = COLORS[i % COLORS.len()];
        let mut chart = ChartBuilder::on(area)
            .caption(panel.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(56)
            .build_cartesian_2d(-m..m, 0.0..top * 1.05)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("update")
            .y_desc("entries")
            .x_labels(5)
            // The middle tick is 0 up to rounding of the range arithmetic.
            .x_label_formatter(&|v| {
                if v.abs() < 1e-9 * m {
                    "0".into()
                } else {
                    format!("{v:.1e}")
                }
            })
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(|e| err(&e))?;
        chart
            .draw_series(counts.iter().enumerate().map(|(b, &c)| {
                let x0 = -m + b as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width, c as f64)], color.filled())
            }))
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// One line of [`draw_xy`]: a legend label and its `(x, y)` points.
#[derive(Debug, Clone)]
pub struct XySeries<'a> {
    /// Legend label.
    pub label: &'a str,
    /// The points; non-finite ones (and, on a log axis, non-positive ones) are skipped.
    pub points: Vec<(f64, f64)>,
}

/// One panel of [`draw_xy`].
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

/// Draws panels of plain `(x, y)` lines in a grid of `columns` into the PNG `path`: the
/// generic sibling of [`draw`], for runs whose rows are not [`MetricsRow`]s.
pub fn draw_xy(
    path: &Path,
    title: &str,
    panels: &[XyPanel<'_>],
    columns: usize,
) -> Result<(), ExperimentError> {
    register_font();
    let err = |e: &dyn std::fmt::Display| ExperimentError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let columns = columns.max(1);
    let rows_of_panels = panels.len().div_ceil(columns).max(1);
    let (width, height) = (520 * columns as u32, 360 * rows_of_panels as u32 + 40);
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root
        .titled(title, ("sans-serif", 24))
        .map_err(|e| err(&e))?;
    let areas = root.split_evenly((rows_of_panels, columns));
    for (panel, area) in panels.iter().zip(areas.iter()) {
        draw_xy_panel(area, panel).map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

fn draw_xy_panel(area: &Area<'_>, panel: &XyPanel<'_>) -> Result<(), Box<dyn std::error::Error>> {
    let usable = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!panel.log_y || y > 0.0);
    let lines: Vec<Vec<(f64, f64)>> = panel
        .series
        .iter()
        .map(|s| s.points.iter().copied().filter(usable).collect())
        .collect();
    let all = || lines.iter().flatten();
    let bounds = |f: fn(&(f64, f64)) -> f64| {
        all()
            .map(f)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            })
    };
    let (mut x_lo, mut x_hi) = bounds(|p| p.0);
    let (mut y_lo, mut y_hi) = bounds(|p| p.1);
    if !x_lo.is_finite() {
        (x_lo, x_hi) = (0.0, 1.0);
        (y_lo, y_hi) = if panel.log_y { (1e-8, 1.0) } else { (0.0, 1.0) };
    }
    if x_hi <= x_lo {
        x_hi = x_lo + 1.0;
    }
    if y_hi <= y_lo {
        y_hi = if panel.log_y { y_lo * 10.0 } else { y_lo + 1.0 };
    }
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(panel.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(64);
    if panel.log_y {
        let mut chart =
            builder.build_cartesian_2d(x_lo..x_hi, (y_lo * 0.8..y_hi * 1.25).log_scale())?;
        chart
            .configure_mesh()
            .x_desc(panel.x_label)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .draw()?;
        xy_lines(&mut chart, panel, &lines)?;
    } else {
        let pad = 0.05 * (y_hi - y_lo);
        let mut chart = builder.build_cartesian_2d(x_lo..x_hi, y_lo - pad..y_hi + pad)?;
        chart
            .configure_mesh()
            .x_desc(panel.x_label)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .draw()?;
        xy_lines(&mut chart, panel, &lines)?;
    }
    Ok(())
}

fn xy_lines<'a, X, Y>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>,
    panel: &XyPanel<'_>,
    lines: &[Vec<(f64, f64)>],
) -> Result<(), Box<dyn std::error::Error>>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (i, (s, pts)) in panel.series.iter().zip(lines).enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
            .label(s.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    Ok(())
}
