//! PNG output: completion-rate bars per class (top) and latency box plots per class ×
//! scheme (bottom; box = p25..p75, line = median, whiskers = min..max of completed
//! requests), drawn with plotters' bitmap backend. Text uses DejaVu Sans from the system
//! font directory when present; without it the figure is drawn without text.

use plotters::prelude::*;
use std::path::Path;
use std::time::Duration;

use super::mix::ClassSpec;
use super::{percentile, Scheme, Summary};

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Registers a system TTF as plotters' "sans-serif"; false when none was found.
fn register_font() -> bool {
    for p in FONT_PATHS {
        if let Ok(bytes) = std::fs::read(p) {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
    }
    false
}

fn msf(d: Option<Duration>) -> f64 {
    d.map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// Draws the figure to `path`.
pub fn draw(path: &Path, mix: &[ClassSpec], summaries: &[Summary]) -> anyhow::Result<()> {
    let text = register_font();
    if !text {
        eprintln!("quiver: warning: no DejaVuSans.ttf found; the PNG has no text labels");
    }
    let mut schemes: Vec<Scheme> = Vec::new();
    for s in summaries {
        if !schemes.contains(&s.scheme) {
            schemes.push(s.scheme);
        }
    }
    let nc = mix.len() as f64;
    let ns = schemes.len().max(1) as f64;
    let width = 0.8 / ns;
    let x_of = |class: usize, scheme: &Scheme| {
        let i = schemes.iter().position(|s| s == scheme).unwrap_or(0) as f64;
        class as f64 + 0.1 + i * width
    };
    let name_of = |x: &f64| {
        let k = x.floor();
        if (x - k - 0.5).abs() < 1e-6 {
            mix.get(k as usize)
                .map_or(String::new(), |c| c.name.clone())
        } else {
            String::new()
        }
    };
    let root = BitMapBackend::new(path, (1400, 1000)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(430);

    let mut c = ChartBuilder::on(&top);
    c.margin(15).x_label_area_size(35).y_label_area_size(60);
    if text {
        c.caption("Completion within deadline (%)", ("sans-serif", 22));
    }
    let mut chart = c.build_cartesian_2d(0.0..nc, 0.0..105.0)?;
    if text {
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(mix.len() * 2 + 1)
            .x_label_formatter(&name_of)
            .y_desc("%")
            .draw()?;
    }
    for (i, scheme) in schemes.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let bars = summaries.iter().filter(|s| s.scheme == *scheme).map(|s| {
            let x = x_of(s.class, scheme);
            Rectangle::new(
                [(x, 0.0), (x + width * 0.9, s.rate() * 100.0)],
                color.filled(),
            )
        });
        let series = chart.draw_series(bars)?;
        if text {
            series.label(scheme.to_string()).legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
            });
        }
    }
    if text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()?;
    }

    let max_ms = summaries
        .iter()
        .filter_map(|s| s.latencies.last())
        .map(|d| d.as_secs_f64() * 1e3)
        .fold(100.0, f64::max)
        * 1.05;
    let mut c = ChartBuilder::on(&bottom);
    c.margin(15).x_label_area_size(35).y_label_area_size(60);
    if text {
        c.caption(
            "Latency of completed requests (ms): box p25-p75, median, min-max",
            ("sans-serif", 22),
        );
    }
    let mut chart = c.build_cartesian_2d(0.0..nc, 0.0..max_ms)?;
    if text {
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(mix.len() * 2 + 1)
            .x_label_formatter(&name_of)
            .y_desc("ms")
            .draw()?;
    }
    for (k, spec) in mix.iter().enumerate() {
        // The class deadline as a dashed-looking thin line across the class's slot.
        let d = spec.deadline.as_secs_f64() * 1e3;
        if d <= max_ms {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(k as f64 + 0.05, d), (k as f64 + 0.95, d)],
                RED.stroke_width(1),
            )))?;
        }
    }
    for (i, scheme) in schemes.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        for s in summaries
            .iter()
            .filter(|s| s.scheme == *scheme && !s.latencies.is_empty())
        {
            let x0 = x_of(s.class, scheme);
            let x1 = x0 + width * 0.9;
            let xm = (x0 + x1) / 2.0;
            let l = &s.latencies;
            let (lo, q1, med, q3, hi) = (
                msf(l.first().copied()),
                msf(percentile(l, 25.0)),
                msf(percentile(l, 50.0)),
                msf(percentile(l, 75.0)),
                msf(l.last().copied()),
            );
            chart.draw_series([
                PathElement::new(vec![(xm, lo), (xm, q1)], BLACK.stroke_width(1)),
                PathElement::new(vec![(xm, q3), (xm, hi)], BLACK.stroke_width(1)),
                PathElement::new(
                    vec![(x0 + width * 0.2, lo), (x1 - width * 0.2, lo)],
                    BLACK.stroke_width(1),
                ),
                PathElement::new(
                    vec![(x0 + width * 0.2, hi), (x1 - width * 0.2, hi)],
                    BLACK.stroke_width(1),
                ),
            ])?;
            chart.draw_series([
                Rectangle::new([(x0, q1), (x1, q3)], color.filled()),
                Rectangle::new([(x0, q1), (x1, q3)], BLACK.stroke_width(1)),
            ])?;
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(x0, med), (x1, med)],
                BLACK.stroke_width(3),
            )))?;
        }
    }
    root.present()?;
    Ok(())
}
