//! The SVG plots: spawn latency against parent size, one line per method;
//! below it, start cost against live tracked children, one line per library.

use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// One method's medians: (x, latency in µs).
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Writes one chart per non-empty series list: `by_size` has x = parent size
/// in MiB, `by_live` x = live tracked children.
pub fn spawn_latency(path: &Path, by_size: &[Series], by_live: &[Series]) -> Result<(), String> {
    let charts: Vec<(&[Series], &str, &str)> = [
        (
            by_size,
            "spawn + wait of /bin/true: median latency vs parent size",
            "parent size (MiB of touched memory, log)",
        ),
        (by_live, "start of a tiny static child: median cost vs live tracked children", "live tracked children (log)"),
    ]
    .into_iter()
    .filter(|(s, ..)| s.iter().any(|s| !s.points.is_empty()))
    .collect();
    if charts.is_empty() {
        return Err("no points to plot".into());
    }
    let root = SVGBackend::new(path, (900, 560 * charts.len() as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    for (area, (series, caption, x_desc)) in root.split_evenly((charts.len(), 1)).iter().zip(charts) {
        chart(area, series, caption, x_desc)?;
    }
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

fn chart(area: &DrawingArea<SVGBackend, Shift>, series: &[Series], caption: &str, x_desc: &str) -> Result<(), String> {
    let (mut x_min, mut x_max, mut y_min, mut y_max) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in series.iter().flat_map(|s| s.points.iter()) {
        x_min = x_min.min(x);
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    let x_range = (x_min / 1.5)..(x_max * 1.5);
    let y_range = (y_min / 2.0)..(y_max * 2.0);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range.log_scale(), y_range.log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc(x_desc)
        .y_desc("median latency (µs, log)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(|e| e.to_string())?;
    let colors = [
        RED,
        BLUE,
        GREEN,
        MAGENTA,
        CYAN,
        BLACK,
        RGBColor(230, 140, 0),
        RGBColor(120, 60, 160),
        RGBColor(120, 120, 120),
    ];
    for (i, s) in series.iter().enumerate() {
        let color = colors[i % colors.len()];
        let mut points = s.points.clone();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, color.filled()))).map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}
