//! The benchmark plot: forward GB/s against bytes per row, one line per path (the kernel time on
//! GPUs, the call on CPUs), each device's bandwidth probe drawn dashed as its ceiling. A loss on
//! logits only: linear heads' rows (GFLOP/s, in the table and the files) are not drawn.

use std::path::Path;

use plotters::prelude::*;
use xent::{Error, Result};

use super::report::{Measure, Pass, Row, Shape};

const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// One line: its label, whether it is a probe, and its points (bytes per row, GB/s), sorted.
struct Line {
    label: String,
    probe: bool,
    points: Vec<(f64, f64)>,
}

/// A path's short name: the adapter, CPU path or library without brackets and details.
fn short(path: &str) -> &str {
    let path = path.trim_start_matches('[').trim_end_matches(']');
    path.split(" (").next().unwrap_or(path)
}

/// The forward pass of every path (the kernel time on GPUs, the call on CPUs), and each probe,
/// on logits.
fn lines(rows: &[Row]) -> Vec<Line> {
    let mut lines: Vec<Line> = Vec::new();
    for row in rows {
        let Shape::Logits(batch, _) = row.shape else {
            continue;
        };
        let probe = row.measure == Measure::Probe;
        let label = match row.measure {
            Measure::Probe => format!("{} probe", short(&row.device)),
            Measure::Kernel | Measure::Call if row.pass == Pass::Fwd => {
                format!("{} {}", short(&row.path), row.measure.name())
            }
            _ => continue,
        };
        let point = (row.work.amount() as f64 / batch as f64, row.rate());
        match lines.iter_mut().find(|l| l.label == label) {
            Some(line) => line.points.push(point),
            None => lines.push(Line {
                label,
                probe,
                points: vec![point],
            }),
        }
    }
    for line in &mut lines {
        line.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    lines
}

fn failed(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io {
        path: path.display().to_string(),
        reason: format!("drawing the plot failed: {e}"),
    }
}

/// Writes the plot of `rows` to `path` as SVG.
pub fn draw(path: &Path, rows: &[Row]) -> Result<()> {
    let lines = lines(rows);
    let points = || lines.iter().flat_map(|l| l.points.iter().copied());
    let (x_min, x_max) = points().fold((f64::MAX, f64::MIN), |(lo, hi), (x, _)| {
        (lo.min(x), hi.max(x))
    });
    let (y_min, y_max) = points().fold((f64::MAX, f64::MIN), |(lo, hi), (_, y)| {
        (lo.min(y), hi.max(y))
    });
    if lines.is_empty() || !(x_min > 0.0 && y_min > 0.0) {
        return Err(failed(
            path,
            "no rows on logits with a positive rate to draw (linear heads are not drawn)",
        ));
    }
    let root = SVGBackend::new(path, (1100, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(path, e))?;
    let (top, legend) = root.split_vertically(640);
    let mut chart = ChartBuilder::on(&top)
        .caption(
            "xent bench: forward GB/s of input read (dashed: each device's probe)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (x_min / 2.0..x_max * 2.0).log_scale(),
            (y_min / 2.0..y_max * 2.0).log_scale(),
        )
        .map_err(|e| failed(path, e))?;
    chart
        .configure_mesh()
        .x_desc("bytes per row")
        .y_desc("GB/s")
        .draw()
        .map_err(|e| failed(path, e))?;
    for (i, line) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let style = color.stroke_width(2);
        let points = line.points.clone();
        if line.probe {
            chart
                .draw_series(DashedLineSeries::new(points, 8, 5, style))
                .map_err(|e| failed(path, e))?;
        } else {
            chart
                .draw_series(LineSeries::new(points.clone(), style))
                .map_err(|e| failed(path, e))?;
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 3, color.filled())),
                )
                .map_err(|e| failed(path, e))?;
        }
    }
    // The legend, below the chart in three columns, so that it hides no line.
    for (i, line) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let (x, y) = (80 + (i % 3) as i32 * 340, 20 + (i / 3) as i32 * 24);
        legend
            .draw(&PathElement::new(
                [(x, y), (x + 30, y)],
                color.stroke_width(3),
            ))
            .map_err(|e| failed(path, e))?;
        legend
            .draw(&Text::new(
                line.label.clone(),
                (x + 40, y - 7),
                ("sans-serif", 14),
            ))
            .map_err(|e| failed(path, e))?;
    }
    root.present().map_err(|e| failed(path, e))
}
