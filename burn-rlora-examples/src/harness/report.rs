//! Aggregating runs into a table (Markdown, JSON) and plots (SVG, plotters).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Serialize;

use burn_rlora::write_atomically;

use crate::harness::compare::result::RunResult;
use crate::harness::stats::PairedDifference;

/// Mean and sample standard deviation.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct MeanStd {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for one value).
    pub std: f64,
}

impl MeanStd {
    /// Of a non-empty slice.
    pub fn of(values: &[f64]) -> Self {
        let n = values.len().max(1) as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = if values.len() > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Self {
            mean,
            std: var.sqrt(),
        }
    }

    fn show(&self) -> String {
        format!("{:.1} ± {:.1}", self.mean, self.std)
    }
}

/// One method's figures over its seeds.
#[derive(Debug, Clone, Serialize)]
pub struct MethodSummary {
    /// The method.
    pub method: String,
    /// Rank used.
    pub rank: usize,
    /// Per task, the test accuracy over seeds.
    pub task_accuracy: Vec<MeanStd>,
    /// The mean task accuracy over seeds.
    pub mean_accuracy: MeanStd,
    /// Trainable parameters (adapters and heads).
    pub trainable: usize,
    /// Adapter parameters alone.
    pub adapter_params: usize,
    /// Mean pairwise head cosine similarity, averaged over layers and seeds.
    pub head_similarity: Option<f64>,
    /// Mean wall time per run, seconds.
    pub wall_seconds: f64,
    /// Mean wall time of the Learner (training and validation) per run, seconds.
    pub train_seconds: f64,
    /// The largest peak resident memory of a run (process `VmHWM`, reset
    /// before each run), MiB; `None` where it could not be read.
    pub peak_rss_mib: Option<f64>,
    /// Seeds run.
    pub seeds: Vec<u64>,
    /// Mean accuracy minus LoRA's, paired by seed (`None` without LoRA runs).
    pub vs_lora: Option<PairedDifference>,
    /// Mean accuracy minus HydraLoRA's, paired by seed (`None` without HydraLoRA runs).
    pub vs_hydralora: Option<PairedDifference>,
}

/// The baselines every method is compared with, by name.
pub const BASELINES: [&str; 2] = ["lora", "hydralora"];

/// `(seed, mean accuracy)` of every run of `method`.
fn accuracies(runs: &[RunResult], method: &str) -> Vec<(u64, f64)> {
    runs.iter()
        .filter(|r| r.method == method)
        .map(|r| (r.seed, r.mean_accuracy))
        .collect()
}

/// Summaries per method, in the order the methods first appear.
pub fn summarize(runs: &[RunResult]) -> Vec<MethodSummary> {
    let mut methods: Vec<&str> = Vec::new();
    for r in runs {
        if !methods.contains(&r.method.as_str()) {
            methods.push(&r.method);
        }
    }
    methods
        .into_iter()
        .map(|m| {
            let rs: Vec<&RunResult> = runs.iter().filter(|r| r.method == m).collect();
            let tasks = rs[0].task_accuracy.len();
            let sims: Vec<f64> = rs
                .iter()
                .flat_map(|r| r.head_similarity.iter().filter_map(|(_, s)| *s))
                .collect();
            MethodSummary {
                method: m.to_string(),
                rank: rs[0].rank,
                task_accuracy: (0..tasks)
                    .map(|t| {
                        MeanStd::of(&rs.iter().map(|r| r.task_accuracy[t]).collect::<Vec<_>>())
                    })
                    .collect(),
                mean_accuracy: MeanStd::of(&rs.iter().map(|r| r.mean_accuracy).collect::<Vec<_>>()),
                trainable: rs[0].trainable,
                adapter_params: rs[0].adapter_params,
                head_similarity: (!sims.is_empty())
                    .then(|| sims.iter().sum::<f64>() / sims.len() as f64),
                wall_seconds: rs.iter().map(|r| r.wall_seconds).sum::<f64>() / rs.len() as f64,
                train_seconds: rs.iter().map(|r| r.train_seconds).sum::<f64>() / rs.len() as f64,
                peak_rss_mib: rs.iter().filter_map(|r| r.peak_rss_mib).reduce(f64::max),
                seeds: rs.iter().map(|r| r.seed).collect(),
                vs_lora: PairedDifference::of(
                    &accuracies(runs, m),
                    &accuracies(runs, BASELINES[0]),
                ),
                vs_hydralora: PairedDifference::of(
                    &accuracies(runs, m),
                    &accuracies(runs, BASELINES[1]),
                ),
            }
        })
        .collect()
}

/// The comparison as a Markdown table.
pub fn markdown(summaries: &[MethodSummary], task_names: &[String]) -> String {
    let mut s = String::from("| method | rank |");
    for t in task_names {
        s.push_str(&format!(" {t} |"));
    }
    s.push_str(
        " average | adapter params | trainable | head cos sim | s / run | peak RSS MiB |\n|---|---|",
    );
    s.push_str(&"---|".repeat(task_names.len() + 6));
    s.push('\n');
    for m in summaries {
        s.push_str(&format!("| {} | {} |", m.method, m.rank));
        for a in &m.task_accuracy {
            s.push_str(&format!(" {} |", a.show()));
        }
        let sim = m
            .head_similarity
            .map_or("–".to_string(), |v| format!("{v:.3}"));
        let rss = m
            .peak_rss_mib
            .map_or("–".to_string(), |v| format!("{v:.0}"));
        s.push_str(&format!(
            " **{}** | {} | {} | {} | {:.1} | {} |\n",
            m.mean_accuracy.show(),
            m.adapter_params,
            m.trainable,
            sim,
            m.wall_seconds,
            rss
        ));
    }
    s
}

/// The paired differences as a Markdown table: each method's mean accuracy
/// minus LoRA's and HydraLoRA's, with the 95% interval (paired t) and the
/// number of pairs; an interval that excludes zero is marked with `*`.
pub fn paired_markdown(summaries: &[MethodSummary]) -> String {
    let mut s = String::from(
        "Difference in average accuracy (points), paired by seed: mean [95% CI, paired t]; \
         `*` marks an interval that excludes 0.\n\n\
         | method | vs LoRA | vs HydraLoRA | pairs |\n|---|---|---|---|\n",
    );
    let show = |d: &Option<PairedDifference>, baseline: &str, method: &str| match d {
        _ if method == baseline => "–".to_string(),
        Some(d) => format!("{}{}", d.show(), if d.excludes_zero() { " *" } else { "" }),
        None => "n/a".to_string(),
    };
    for m in summaries {
        let pairs = m.vs_lora.or(m.vs_hydralora).map_or(0, |d| d.pairs);
        s.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            m.method,
            show(&m.vs_lora, BASELINES[0], &m.method),
            show(&m.vs_hydralora, BASELINES[1], &m.method),
            pairs
        ));
    }
    s
}

/// Create `dir` and check that files can be written there.
pub fn prepare_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir)
        .with_context(|| format!("cannot create output directory {}", dir.display()))?;
    let probe = dir.join(".write-test");
    fs::write(&probe, b"ok")
        .with_context(|| format!("cannot write in output directory {}", dir.display()))?;
    fs::remove_file(&probe).ok();
    Ok(())
}

/// Write `table.md`, `results.json`, `loss.svg`, `head_similarity.svg` (heat
/// maps, first seed, with their colour scale), `head_similarity_layers.svg`
/// (mean pairwise head cosine similarity per adapted layer and method,
/// averaged over seeds) and, when the runs traced it,
/// `head_similarity_trace.svg` (that similarity over training) under `dir`. Each file is replaced atomically: a kill leaves the previous
/// version, never a part.
pub fn write(
    dir: &Path,
    runs: &[RunResult],
    task_names: &[String],
    header: &str,
) -> Result<Vec<PathBuf>> {
    let summaries = summarize(runs);
    let table = format!(
        "{}\n{}",
        markdown(&summaries, task_names),
        paired_markdown(&summaries)
    );
    let md = dir.join("table.md");
    write_atomically(&md, format!("{header}\n\n{table}").as_bytes())?;
    let json = dir.join("results.json");
    let value = serde_json::json!({ "tasks": task_names, "summary": summaries, "runs": runs });
    write_atomically(&json, serde_json::to_string_pretty(&value)?.as_bytes())?;
    let loss = dir.join("loss.svg");
    plot_atomically(&loss, |p| plot_losses(p, runs))?;
    let heat = dir.join("head_similarity.svg");
    plot_atomically(&heat, |p| plot_similarity(p, runs))?;
    let layers = dir.join("head_similarity_layers.svg");
    plot_atomically(&layers, |p| plot_similarity_by_layer(p, runs))?;
    let mut files = vec![md, json, loss, heat, layers];
    if runs.iter().any(|r| !r.similarity_trace.is_empty()) {
        let trace = dir.join("head_similarity_trace.svg");
        plot_atomically(&trace, |p| plot_similarity_trace(p, runs))?;
        files.push(trace);
    }
    Ok(files)
}

/// Draw with `plot` into an SVG in memory, then write it to `path` as one
/// unit (a failure or a kill leaves the previous plot or none, never a part).
fn plot_atomically(path: &Path, plot: impl FnOnce(&mut String) -> Result<()>) -> Result<()> {
    let mut svg = String::new();
    plot(&mut svg).with_context(|| format!("plotting {}", path.display()))?;
    write_atomically(path, svg.as_bytes())?;
    Ok(())
}

/// [`write()`] the report, then print the table and the files written, with
/// the total wall time since `start`.
///
/// # Errors
///
/// As [`write()`].
pub fn write_and_print(
    dir: &Path,
    runs: &[RunResult],
    task_names: &[String],
    header: &str,
    start: std::time::Instant,
) -> Result<()> {
    let files = write(dir, runs, task_names, header)?;
    let summaries = summarize(runs);
    println!(
        "\n{}\n{}",
        markdown(&summaries, task_names),
        paired_markdown(&summaries)
    );
    println!(
        "total wall time {:.1} s; wrote {}",
        start.elapsed().as_secs_f64(),
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

fn smooth(values: &[f64], window: usize) -> Vec<(f64, f64)> {
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

fn plot_losses(svg: &mut String, runs: &[RunResult]) -> Result<()> {
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
fn draw_method_legend<DB: DrawingBackend>(
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
fn integer_labels(units: usize) -> usize {
    units.clamp(1, 10)
}

/// A tick label of a count: the whole number, without a decimal point.
fn integer_tick(x: &f64) -> String {
    format!("{}", x.round() as i64)
}

fn plot_similarity(svg: &mut String, runs: &[RunResult]) -> Result<()> {
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
fn similarity_colour(v: f64) -> RGBColor {
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
fn cell_text_colour(v: f64) -> RGBColor {
    if v.abs() > 0.55 {
        WHITE
    } else {
        BLACK
    }
}

/// The heat maps' colour scale: a bar from -1 to +1 with its ticks.
fn draw_colour_scale<DB: DrawingBackend>(
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
fn plot_similarity_by_layer(svg: &mut String, runs: &[RunResult]) -> Result<()> {
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
fn mean_of(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// For one method and one layer (`None`: the mean over layers), the mean over
/// seeds of the traced head similarity at each recorded step.
fn trace_curve(runs: &[RunResult], method: &str, layer: Option<&str>) -> Vec<(f64, f64)> {
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
fn plot_similarity_trace(svg: &mut String, runs: &[RunResult]) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::trace::TracePoint;

    fn run(method: &str, seed: u64, acc: f64, trace: &[(usize, [Option<f64>; 2])]) -> RunResult {
        RunResult {
            method: method.into(),
            seed,
            rank: 4,
            task_accuracy: vec![acc],
            mean_accuracy: acc,
            trainable: 1,
            adapter_params: 1,
            head_similarity: vec![],
            similarity_matrices: vec![],
            train_loss: vec![1.0, 0.5],
            valid_loss: vec![0.7],
            wall_seconds: 1.0,
            train_seconds: 1.0,
            peak_rss_mib: None,
            similarity_trace: trace
                .iter()
                .map(|(step, v)| TracePoint {
                    step: *step,
                    layers: vec![("a".into(), v[0]), ("b".into(), v[1])],
                })
                .collect(),
        }
    }

    #[test]
    fn summaries_carry_paired_differences_against_both_baselines() {
        let runs = vec![
            run("lora", 0, 70.0, &[]),
            run("lora", 1, 72.0, &[]),
            run("hydralora", 0, 71.0, &[]),
            run("hydralora", 1, 71.0, &[]),
            run("rlora", 1, 75.0, &[]),
            run("rlora", 0, 72.0, &[]),
        ];
        let s = summarize(&runs);
        let rlora = s.iter().find(|m| m.method == "rlora").unwrap();
        let vs_lora = rlora.vs_lora.unwrap();
        // Pairs (72 - 70, 75 - 72): mean 2.5, sd 0.707, t(0.975, 1) = 12.706.
        assert_eq!(vs_lora.pairs, 2);
        assert!((vs_lora.mean - 2.5).abs() < 1e-12);
        let (lo, hi) = vs_lora.ci95.unwrap();
        assert!((hi - lo - 2.0 * 12.706 * 0.5).abs() < 1e-2, "{lo} {hi}");
        assert!((rlora.vs_hydralora.unwrap().mean - 2.5).abs() < 1e-12);
        let table = paired_markdown(&s);
        // LoRA - HydraLoRA: -1 and +1, mean 0, sd sqrt(2): 0 ± 12.706.
        assert!(
            table.contains("| lora | – | +0.00 [-12.71, +12.71] | 2 |"),
            "{table}"
        );
        assert!(table.contains("| rlora | +2.50"), "{table}");
    }

    /// HydraLoRA, seed 0: zero heads at step 0, layer means 0.2 and 0.4 at step 10.
    fn traced_hydralora() -> RunResult {
        run(
            "hydralora",
            0,
            70.0,
            &[(0, [None, None]), (10, [Some(0.2), Some(0.4)])],
        )
    }

    #[test]
    fn trace_curves_average_seeds_and_skip_undefined_layers() {
        let runs = vec![
            traced_hydralora(),
            run(
                "hydralora",
                1,
                70.0,
                &[(0, [None, None]), (10, [Some(0.6), None])],
            ),
        ];
        // Step 0 has no defined similarity; at step 10 the per-run layer means
        // are 0.3 and 0.6.
        let all = trace_curve(&runs, "hydralora", None);
        assert_eq!(all.len(), 1);
        assert!((all[0].0 - 10.0).abs() < 1e-12 && (all[0].1 - 0.45).abs() < 1e-12);
        let b = trace_curve(&runs, "hydralora", Some("b"));
        assert!((b[0].1 - 0.4).abs() < 1e-12);
        assert!(trace_curve(&runs, "lora", None).is_empty());
    }

    #[test]
    fn similarity_colours_are_white_at_zero_and_saturate_at_one() {
        assert_eq!(similarity_colour(0.0), RGBColor(255, 255, 255));
        assert_eq!(similarity_colour(1.0), RGBColor(255, 0, 0));
        assert_eq!(similarity_colour(-1.0), RGBColor(0, 0, 255));
        assert_eq!(similarity_colour(7.0), similarity_colour(1.0));
    }

    #[test]
    fn the_report_writes_every_file() {
        let dir = std::env::temp_dir().join(format!("rlora-report-{}", std::process::id()));
        let runs = vec![
            traced_hydralora(),
            run(
                "rlora",
                0,
                71.0,
                &[(0, [Some(0.0), Some(0.1)]), (10, [Some(0.1), Some(0.1)])],
            ),
        ];
        prepare_dir(&dir).unwrap();
        let files = write(&dir, &runs, &["t".into()], "# header").unwrap();
        for f in &files {
            assert!(f.metadata().unwrap().len() > 0, "{}", f.display());
        }
        let trace = std::fs::read_to_string(dir.join("head_similarity_trace.svg")).unwrap();
        // A panel for the mean and one per layer, captioned by name.
        assert!(trace.contains("\nmean over layers\n") && trace.contains("\nb\n</text>"));
        let heat = std::fs::read_to_string(dir.join("head_similarity.svg")).unwrap();
        assert!(heat.contains("head cosine similarity"), "no colour scale");
        std::fs::remove_dir_all(&dir).ok();
    }

    /// `(method, swatch colour)` for each legend entry of an SVG: a method's
    /// name in a `<text>` element, and the fill of the `<rect>` just before it.
    fn legend_colours(svg: &str) -> Vec<(String, String)> {
        let methods = ["lora", "hydralora", "rlora"];
        let mut last_fill = None;
        let mut found = Vec::new();
        for element in svg.split('<').skip(1) {
            if element.starts_with("rect") {
                last_fill = element
                    .split("fill=\"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .map(str::to_string);
            } else if element.starts_with("text") {
                let content = element.split('>').nth(1).unwrap_or("").trim();
                if methods.contains(&content) {
                    found.push((content.to_string(), last_fill.clone().unwrap()));
                }
            }
        }
        found
    }

    /// The numeric contents of the `<text>` elements centred under a tick
    /// (`text-anchor="middle"`): the x-axis labels, and nothing of the y axis.
    fn x_tick_labels(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter(|e| e.contains("text-anchor=\"middle\""))
            .filter_map(|e| e.split('>').nth(1))
            .map(|t| t.split('<').next().unwrap_or("").trim().to_string())
            .filter(|t| t.parse::<f64>().is_ok())
            .collect()
    }

    #[test]
    fn every_plot_gives_a_method_one_colour_and_counts_whole_numbers() {
        let dir = std::env::temp_dir().join(format!("rlora-colours-{}", std::process::id()));
        let sim = |v: f64| burn_rlora::HeadSimilarity {
            matrix: vec![1.0, v, v, 1.0],
            num_heads: 2,
            mean_pairwise: Some(v),
        };
        let mut runs = vec![run("lora", 0, 70.0, &[])];
        for (method, v) in [("hydralora", 0.9), ("rlora", 0.2)] {
            let mut r = run(
                method,
                0,
                71.0,
                &[(0, [Some(v), Some(v)]), (30, [Some(v), Some(v)])],
            );
            r.train_loss = (0..25).map(|i| 1.0 / (1.0 + i as f64)).collect();
            r.head_similarity = vec![("l1".into(), Some(v)), ("l2".into(), Some(v))];
            r.similarity_matrices = vec![("l1".into(), sim(v))];
            runs.push(r);
        }
        prepare_dir(&dir).unwrap();
        write(&dir, &runs, &["t".into()], "# header").unwrap();
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        let (loss, layers, trace) = (
            read("loss.svg"),
            read("head_similarity_layers.svg"),
            read("head_similarity_trace.svg"),
        );

        // The loss plot shows all three methods; the other two have no LoRA
        // line, and that must not shift the colours of the others.
        let in_loss = legend_colours(&loss);
        assert_eq!(in_loss.len(), 3, "{in_loss:?}");
        for plot in [&layers, &trace] {
            let entries = legend_colours(plot);
            assert_eq!(entries.len(), 2, "{entries:?}");
            for (method, colour) in entries {
                let (_, in_loss_colour) = in_loss.iter().find(|(m, _)| *m == method).unwrap();
                assert_eq!(&colour, in_loss_colour, "{method} changes colour");
                // The data itself is drawn in the legend's colour.
                assert!(plot.matches(colour.as_str()).count() > 1, "{method}");
            }
        }
        let colours: std::collections::BTreeSet<_> = in_loss.iter().map(|(_, c)| c).collect();
        assert_eq!(colours.len(), 3, "two methods share a colour: {in_loss:?}");

        // Iterations and steps are counts: no tick label with a decimal point.
        for (name, plot) in [("loss", &loss), ("trace", &trace)] {
            let ticks = x_tick_labels(plot);
            assert!(ticks.len() >= 2, "{name}: {ticks:?}");
            assert!(ticks.iter().all(|t| !t.contains('.')), "{name}: {ticks:?}");
        }
        // The per-layer plot labels the layers by name, and draws points, not lines.
        assert!(layers.contains("\nl1\n") && layers.contains("\nl2\n"));
        for line in layers.split("<polyline").skip(1) {
            let stroke = line.split("stroke=\"").nth(1).unwrap_or("");
            assert!(
                !colours.iter().any(|c| stroke.starts_with(c.as_str())),
                "layers joined by a method's line"
            );
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn method_colours_depend_on_the_name_alone() {
        assert_eq!(method_colour("rlora"), RGBColor(0x00, 0x9E, 0x73));
        assert_eq!(
            method_colour("some-new-method"),
            method_colour("some-new-method")
        );
        let named = [
            "lora",
            "hydralora",
            "hydralora-mt",
            "hydralora-init",
            "rlora",
            "rlora-norouter",
            "base",
        ];
        let distinct: std::collections::BTreeSet<_> = named
            .iter()
            .map(|m| format!("{:?}", method_colour(m)))
            .collect();
        assert_eq!(distinct.len(), named.len());
        assert_eq!(integer_tick(&3500.0), "3500");
        assert_eq!(integer_labels(2), 2);
        assert_eq!(integer_labels(5000), 10);
    }
}
