//! The report's SVG plots (plotters): loss curves, head similarity per
//! method and per layer, and its trace over training.

use anyhow::Result;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::MeanStd;
use crate::harness::compare::result::RunResult;

pub(super) fn smooth(values: &[f64], window: usize) -> Vec<(f64, f64)> {
    values
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let lo = i.saturating_sub(window - 1);
            let w = &values[lo..=i];
            (i as f64, w.iter().sum::<f64>() / w.len() as f64)
        })
        .collect()
}

pub(super) fn plot_losses(svg: &mut String, runs: &[RunResult]) -> Result<()> {
    let first_seed: Vec<&RunResult> = {
        let mut seen = Vec::new();
        runs.iter()
            .filter(|r| {
                if seen.contains(&r.method) {
                    false
                } else {
                    seen.push(r.method.clone());
                    true
                }
            })
            .collect()
    };
    let iterations = first_seed
        .iter()
        .map(|r| r.train_loss.len())
        .max()
        .unwrap_or(1)
        .max(2);
    let max_y = first_seed
        .iter()
        .flat_map(|r| r.train_loss.iter().copied())
        .fold(0.1, f64::max);
    let root = SVGBackend::with_string(svg, (900 + LEGEND_WIDTH, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let (plot, legend) = root.split_horizontally(900);
    let mut chart = ChartBuilder::on(&plot)
        .caption(
            "training loss (first seed, moving average of 10 iterations)",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..iterations as f64, 0f64..max_y * 1.05)?;
    chart
        .configure_mesh()
        .x_labels(integer_labels(iterations))
        .x_label_formatter(&integer_tick)
        .x_desc("iteration")
        .y_desc("loss")
        .draw()?;
    let mut methods = Vec::new();
    for run in &first_seed {
        let color = method_colour(&run.method).stroke_width(2);
        chart.draw_series(LineSeries::new(smooth(&run.train_loss, 10), color))?;
        methods.push(run.method.as_str());
    }
    draw_method_legend(&legend, &methods)?;
    root.present()?;
    Ok(())
}

/// Width in pixels of the strip beside a plot that holds its legend, so the
/// legend never covers data.
const LEGEND_WIDTH: u32 = 180;

/// The colour of a method in every plot of every report: fixed by the
/// method's name, so a method keeps its colour whichever other methods a plot
/// shows. The six methods of the comparisons (and `base`, a model without an
/// adapter) have colours of their own from the Okabe-Ito palette, which stays
/// distinct for readers with a colour-vision deficiency; any other name gets
/// one of five further colours, chosen by a hash of the name alone.
///
/// ```
/// use burn_rlora_examples::harness::report::method_colour;
///
/// assert_eq!(method_colour("rlora"), method_colour("rlora"));
/// assert_ne!(method_colour("rlora"), method_colour("hydralora"));
/// ```
pub fn method_colour(method: &str) -> RGBColor {
    match method {
        "lora" => RGBColor(0x00, 0x72, 0xB2),
        "hydralora" => RGBColor(0xD5, 0x5E, 0x00),
        "hydralora-mt" => RGBColor(0xE6, 0x9F, 0x00),
        "hydralora-init" => RGBColor(0xCC, 0x79, 0xA7),
        "rlora" => RGBColor(0x00, 0x9E, 0x73),
        "rlora-norouter" => RGBColor(0x56, 0xB4, 0xE9),
        "base" => RGBColor(0x00, 0x00, 0x00),
        other => {
            const MORE: [RGBColor; 5] = [
                RGBColor(0x99, 0x99, 0x99),
                RGBColor(0x8C, 0x56, 0x4B),
                RGBColor(0x6A, 0x3D, 0x9A),
                RGBColor(0xB1, 0x95, 0x00),
                RGBColor(0x17, 0x7E, 0x89),
            ];
            // FNV-1a: stable across runs and platforms, unlike std's hasher.
            let hash = other.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            MORE[(hash % MORE.len() as u64) as usize]
        }
    }
}

/// Draws a legend of `methods` (a swatch in the method's colour, then its
/// name) into `area`, the strip beside a plot.
pub(super) fn draw_method_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    methods: &[&str],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    for (i, method) in methods.iter().enumerate() {
        let y = 40 + 24 * i as i32;
        area.draw(&Rectangle::new(
            [(8, y + 2), (32, y + 10)],
            method_colour(method).filled(),
        ))?;
        area.draw(&Text::new(
            method.to_string(),
            (40, y),
            ("sans-serif", 14).into_font(),
        ))?;
    }
    Ok(())
}

/// At most ten tick labels, and never more than the axis has whole units, so
/// that every tick of a count falls on a whole number.
pub(super) fn integer_labels(units: usize) -> usize {
    units.clamp(1, 10)
}

/// A tick label of a count: the whole number, without a decimal point.
pub(super) fn integer_tick(x: &f64) -> String {
    format!("{}", x.round() as i64)
}

pub(super) fn plot_similarity(svg: &mut String, runs: &[RunResult]) -> Result<()> {
    // One heat map per (method, layer) with more than one head, first seed.
    let mut panels = Vec::new();
    let mut seen = Vec::new();
    for r in runs {
        if seen.contains(&r.method) {
            continue;
        }
        seen.push(r.method.clone());
        for (layer, sim) in &r.similarity_matrices {
            if sim.num_heads > 1 {
                panels.push((format!("{} {layer}", r.method), sim.clone()));
            }
        }
    }
    let cols = 4usize;
    let rows = panels.len().div_ceil(cols).max(1);
    let root = SVGBackend::with_string(svg, (220 * cols as u32, 240 * rows as u32 + 90))
        .into_drawing_area();
    root.fill(&WHITE)?;
    let (maps, scale) = root.split_vertically(240 * rows as u32);
    draw_colour_scale(&scale)?;
    let areas = maps.split_evenly((rows, cols));
    for ((title, sim), area) in panels.iter().zip(areas.iter()) {
        let n = sim.num_heads;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 14))
            .margin(8)
            .build_cartesian_2d(0f64..n as f64, 0f64..n as f64)?;
        let cells = || (0..n).flat_map(|i| (0..n).map(move |j| (i, j)));
        chart.draw_series(cells().map(|(i, j)| {
            // Row i at the top, column j to the right.
            let (x, y) = (j as f64, (n - 1 - i) as f64);
            let color = similarity_colour(sim.get(i, j));
            Rectangle::new([(x, y), (x + 1.0, y + 1.0)], color.filled())
        }))?;
        chart.draw_series(cells().map(|(i, j)| {
            let v = sim.get(i, j);
            let font = ("sans-serif", 11)
                .into_font()
                .color(&cell_text_colour(v))
                .pos(Pos::new(HPos::Center, VPos::Center));
            let centre = (j as f64 + 0.5, (n - 1 - i) as f64 + 0.5);
            Text::new(format!("{v:.2}"), centre, font)
        }))?;
    }
    root.present()?;
    Ok(())
}

/// The heat maps' colour of a cosine similarity: white at 0, deepening to
/// red at +1 and to blue at -1 (values outside [-1, 1] are clamped).
pub(super) fn similarity_colour(v: f64) -> RGBColor {
    let v = v.clamp(-1.0, 1.0);
    let fade = (255.0 * (1.0 - v.abs())).round() as u8;
    if v >= 0.0 {
        RGBColor(255, fade, fade)
    } else {
        RGBColor(fade, fade, 255)
    }
}

/// The colour of a heat-map cell's label: white on the deep colours (|v| above
/// 0.55, where [`similarity_colour`] is darker than mid-grey), black elsewhere.
pub(super) fn cell_text_colour(v: f64) -> RGBColor {
    if v.abs() > 0.55 {
        WHITE
    } else {
        BLACK
    }
}

/// The heat maps' colour scale: a bar from -1 to +1 with its ticks.
pub(super) fn draw_colour_scale<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(area)
        .margin_left(60)
        .margin_right(60)
        .margin_bottom(4)
        .x_label_area_size(40)
        .build_cartesian_2d(-1f64..1f64, 0f64..1f64)?;
    chart
        .configure_mesh()
        .disable_y_axis()
        .disable_mesh()
        .x_labels(9)
        .x_label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 13))
        .x_label_formatter(&|x| format!("{x:.2}"))
        .x_desc("head cosine similarity")
        .draw()?;
    let steps = 200;
    chart.draw_series((0..steps).map(|k| {
        let lo = -1.0 + 2.0 * k as f64 / steps as f64;
        let hi = lo + 2.0 / steps as f64;
        Rectangle::new(
            [(lo, 0.0), (hi, 1.0)],
            similarity_colour((lo + hi) / 2.0).filled(),
        )
    }))?;
    Ok(())
}

/// Mean pairwise head cosine similarity per layer (the paper's measure), one
/// line per method with several heads, averaged over seeds.
pub(super) fn plot_similarity_by_layer(svg: &mut String, runs: &[RunResult]) -> Result<()> {
    let mut methods: Vec<&str> = Vec::new();
    for r in runs {
        if !methods.contains(&r.method.as_str())
            && r.head_similarity.iter().any(|(_, s)| s.is_some())
        {
            methods.push(&r.method);
        }
    }
    let layers: Vec<String> = runs
        .iter()
        .find(|r| r.head_similarity.iter().any(|(_, s)| s.is_some()))
        .map(|r| r.head_similarity.iter().map(|(n, _)| n.clone()).collect())
        .unwrap_or_default();
    let root = SVGBackend::with_string(svg, (900 + LEGEND_WIDTH, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let (plot, legend) = root.split_horizontally(900);
    let n = layers.len().max(1);
    // Layers are categories: one tick at each, labelled by name, and the
    // values drawn as points, side by side per method, never joined.
    let x_range = -0.5f64..n as f64 - 0.5;
    let mut chart = ChartBuilder::on(&plot)
        .caption(
            "mean pairwise head cosine similarity per adapted layer (lower = more diverse heads)",
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(60)
        .y_label_area_size(50)
        .build_cartesian_2d(x_range, -0.1f64..1.05)?;
    let names = layers.clone();
    chart
        .configure_mesh()
        .x_labels(n)
        .x_label_formatter(&move |x| {
            // A label at each whole position (a layer), none between layers.
            let k = x.round();
            if (x - k).abs() > 1e-6 || k < 0.0 {
                return String::new();
            }
            names.get(k as usize).cloned().unwrap_or_default()
        })
        .x_desc("adapted layer")
        .y_desc("cosine similarity")
        .draw()?;
    let spread = 0.6 / methods.len().max(1) as f64;
    for (i, m) in methods.iter().enumerate() {
        let offset = (i as f64 - (methods.len() as f64 - 1.0) / 2.0) * spread;
        let points: Vec<(f64, f64)> = layers
            .iter()
            .enumerate()
            .filter_map(|(k, layer)| {
                let vals: Vec<f64> = runs
                    .iter()
                    .filter(|r| r.method == *m)
                    .filter_map(|r| {
                        r.head_similarity
                            .iter()
                            .find(|(n, _)| n == layer)
                            .and_then(|(_, s)| *s)
                    })
                    .collect();
                (!vals.is_empty()).then(|| (k as f64 + offset, MeanStd::of(&vals).mean))
            })
            .collect();
        let colour = method_colour(m);
        chart.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 5, colour.filled())),
        )?;
    }
    draw_method_legend(&legend, &methods)?;
    root.present()?;
    Ok(())
}

/// The mean of `values`, `None` when empty.
pub(super) fn mean_of(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// For one method and one layer (`None`: the mean over layers), the mean over
/// seeds of the traced head similarity at each recorded step.
pub(super) fn trace_curve(
    runs: &[RunResult],
    method: &str,
    layer: Option<&str>,
) -> Vec<(f64, f64)> {
    let mut steps: Vec<usize> = runs
        .iter()
        .filter(|r| r.method == method)
        .flat_map(|r| r.similarity_trace.iter().map(|p| p.step))
        .collect();
    steps.sort_unstable();
    steps.dedup();
    steps
        .into_iter()
        .filter_map(|step| {
            let per_run: Vec<f64> = runs
                .iter()
                .filter(|r| r.method == method)
                .filter_map(|r| r.similarity_trace.iter().find(|p| p.step == step))
                .filter_map(|p| {
                    let vals: Vec<f64> = p
                        .layers
                        .iter()
                        .filter(|(name, _)| layer.is_none_or(|l| l == name))
                        .filter_map(|(_, v)| *v)
                        .collect();
                    mean_of(&vals)
                })
                .collect();
            mean_of(&per_run).map(|v| (step as f64, v))
        })
        .collect()
}

/// Head similarity over training: one panel for the mean over layers and one
/// per adapted layer, a line per traced method (mean over seeds).
pub(super) fn plot_similarity_trace(svg: &mut String, runs: &[RunResult]) -> Result<()> {
    let mut methods: Vec<&str> = Vec::new();
    for r in runs {
        let traced = r
            .similarity_trace
            .iter()
            .any(|p| p.layers.iter().any(|(_, v)| v.is_some()));
        if !methods.contains(&r.method.as_str()) && traced {
            methods.push(&r.method);
        }
    }
    let mut layers: Vec<Option<String>> = vec![None];
    if let Some(p) = runs.iter().flat_map(|r| r.similarity_trace.first()).next() {
        layers.extend(p.layers.iter().map(|(n, _)| Some(n.clone())));
    }
    let max_step = runs
        .iter()
        .flat_map(|r| r.similarity_trace.iter().map(|p| p.step))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    // As many columns as panels, up to four, so the panels fill the figure.
    let cols = layers.len().clamp(1, 4);
    let rows = layers.len().div_ceil(cols);
    let width = 300 * cols as u32;
    let root = SVGBackend::with_string(svg, (width + LEGEND_WIDTH, 250 * rows as u32 + 40))
        .into_drawing_area();
    root.fill(&WHITE)?;
    let (figure, legend) = root.split_horizontally(width);
    let (title, body) = figure.split_vertically(40);
    title.titled(
        "mean pairwise head cosine similarity over training (mean over seeds; lower = more diverse)",
        ("sans-serif", 16),
    )?;
    let steps = max_step as usize;
    for (layer, area) in layers.iter().zip(body.split_evenly((rows, cols)).iter()) {
        let caption = layer.as_deref().unwrap_or("mean over layers");
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 13))
            .margin(6)
            .x_label_area_size(38)
            .y_label_area_size(36)
            .build_cartesian_2d(0f64..max_step, -0.1f64..1.05)?;
        chart
            .configure_mesh()
            .x_labels(integer_labels(steps).min(4))
            .x_label_formatter(&integer_tick)
            .y_labels(6)
            .x_desc("step")
            .draw()?;
        for m in &methods {
            let points = trace_curve(runs, m, layer.as_deref());
            chart.draw_series(LineSeries::new(points, method_colour(m).stroke_width(2)))?;
        }
    }
    draw_method_legend(&legend, &methods)?;
    root.present()?;
    Ok(())
}
