//! The benchmark plot: GB/s against bytes per row, one line per path, each device's bandwidth
//! probe drawn dashed as its ceiling.

use std::path::Path;

use plotters::prelude::*;
use xent::{Error, Result};

use super::bench::{Measure, Row};

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// One line: its label, whether it is a probe, and its points (bytes per row, GB/s), sorted.
struct Line {
    label: String,
    probe: bool,
    points: Vec<(f64, f64)>,
}

fn lines(rows: &[Row]) -> Vec<Line> {
    let mut lines: Vec<Line> = Vec::new();
    for row in rows {
        let label = if row.measure == Measure::Probe {
            format!("probe: {}", row.path)
        } else {
            format!("{} {} {}", row.path, row.measure.name(), row.pass.name())
        };
        let point = (row.bytes as f64 / row.shape.0 as f64, row.gbs());
        match lines.iter_mut().find(|l| l.label == label) {
            Some(line) => line.points.push(point),
            None => lines.push(Line {
                label,
                probe: row.measure == Measure::Probe,
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
        return Err(failed(path, "no rows with a positive rate to draw"));
    }
    let root = SVGBackend::new(path, (1100, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("xent bench: GB/s of input read", ("sans-serif", 22))
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
        let series = if line.probe {
            chart.draw_series(DashedLineSeries::new(points, 8, 5, style))
        } else {
            chart
                .draw_series(LineSeries::new(points.clone(), style))
                .map_err(|e| failed(path, e))?;
            chart.draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color.filled())),
            )
        }
        .map_err(|e| failed(path, e))?;
        series
            .label(line.label.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| failed(path, e))?;
    root.present().map_err(|e| failed(path, e))
}
