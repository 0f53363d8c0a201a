//! Aggregating runs into a table (Markdown, JSON) and plots (SVG, plotters).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use plotters::prelude::*;
use serde::Serialize;

use burn_rlora::multitask::write_atomically;

use crate::compare::RunResult;

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
/// maps, first seed) and `head_similarity_layers.svg` (mean pairwise head
/// cosine similarity per adapted layer and method, averaged over seeds) under
/// `dir`. Each file is replaced atomically: a kill leaves the previous
/// version, never a part.
pub fn write(
    dir: &Path,
    runs: &[RunResult],
    task_names: &[String],
    header: &str,
) -> Result<Vec<PathBuf>> {
    let summaries = summarize(runs);
    let table = markdown(&summaries, task_names);
    let md = dir.join("table.md");
    write_atomically(&md, format!("{header}\n\n{table}").as_bytes())
        .with_context(|| format!("writing {}", md.display()))?;
    let json = dir.join("results.json");
    let value = serde_json::json!({ "tasks": task_names, "summary": summaries, "runs": runs });
    write_atomically(&json, serde_json::to_string_pretty(&value)?.as_bytes())
        .with_context(|| format!("writing {}", json.display()))?;
    let loss = dir.join("loss.svg");
    plot_atomically(&loss, |p| plot_losses(p, runs))?;
    let heat = dir.join("head_similarity.svg");
    plot_atomically(&heat, |p| plot_similarity(p, runs))?;
    let layers = dir.join("head_similarity_layers.svg");
    plot_atomically(&layers, |p| plot_similarity_by_layer(p, runs))?;
    Ok(vec![md, json, loss, heat, layers])
}

/// Draw with `plot` into a temporary file next to `path`, then rename it over `path`.
fn plot_atomically(path: &Path, plot: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.drawing-{}", std::process::id()));
    let drawn = plot(&tmp)
        .and_then(|()| fs::rename(&tmp, path).map_err(Into::into))
        .with_context(|| format!("plotting {}", path.display()));
    if drawn.is_err() {
        fs::remove_file(&tmp).ok();
    }
    drawn
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
    println!("\n{}", markdown(&summarize(runs), task_names));
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

fn plot_losses(path: &Path, runs: &[RunResult]) -> Result<()> {
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
    let max_x = first_seed
        .iter()
        .map(|r| r.train_loss.len())
        .max()
        .unwrap_or(1)
        .max(2) as f64;
    let max_y = first_seed
        .iter()
        .flat_map(|r| r.train_loss.iter().copied())
        .fold(0.1, f64::max);
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "training loss (first seed, moving average of 10 iterations)",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..max_x, 0f64..max_y * 1.05)?;
    chart
        .configure_mesh()
        .x_desc("iteration")
        .y_desc("loss")
        .draw()?;
    for (i, run) in first_seed.iter().enumerate() {
        let color = Palette99::pick(i).stroke_width(2);
        chart
            .draw_series(LineSeries::new(smooth(&run.train_loss, 10), color))?
            .label(run.method.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], Palette99::pick(i)));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    root.present()?;
    Ok(())
}

fn plot_similarity(path: &Path, runs: &[RunResult]) -> Result<()> {
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
    let root = SVGBackend::new(path, (220 * cols as u32, 240 * rows as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_evenly((rows, cols));
    for ((title, sim), area) in panels.iter().zip(areas.iter()) {
        let n = sim.num_heads;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 14))
            .margin(8)
            .build_cartesian_2d(0..n, 0..n)?;
        chart.draw_series(
            (0..n)
                .flat_map(|i| (0..n).map(move |j| (i, j)))
                .map(|(i, j)| {
                    // cos in [-1, 1] → white (0) to red (1) / blue (-1).
                    let v = sim.get(i, j).clamp(-1.0, 1.0);
                    let fade = |c: f64| (255.0 * (1.0 - c.abs())) as u8;
                    let color = if v >= 0.0 {
                        RGBColor(255, fade(v), fade(v))
                    } else {
                        RGBColor(fade(v), fade(v), 255)
                    };
                    // Row i at the top, column j to the right.
                    Rectangle::new([(j, n - 1 - i), (j + 1, n - i)], color.filled())
                }),
        )?;
        chart.draw_series(
            (0..n)
                .flat_map(|i| (0..n).map(move |j| (i, j)))
                .map(|(i, j)| {
                    Text::new(
                        format!("{:.2}", sim.get(i, j)),
                        (j, n - i),
                        ("sans-serif", 11).into_font(),
                    )
                }),
        )?;
    }
    root.present()?;
    Ok(())
}

/// Mean pairwise head cosine similarity per layer (the paper's measure), one
/// line per method with several heads, averaged over seeds.
fn plot_similarity_by_layer(path: &Path, runs: &[RunResult]) -> Result<()> {
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
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = layers.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "mean pairwise head cosine similarity per adapted layer (lower = more diverse heads)",
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(60)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..(n as f64 - 1.0).max(1.0), -0.1f64..1.05)?;
    let names = layers.clone();
    chart
        .configure_mesh()
        .x_labels(n)
        .x_label_formatter(&move |x| {
            names
                .get(x.round().max(0.0) as usize)
                .cloned()
                .unwrap_or_default()
        })
        .x_desc("adapted layer")
        .y_desc("cosine similarity")
        .draw()?;
    for (i, m) in methods.iter().enumerate() {
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
                (!vals.is_empty()).then(|| (k as f64, MeanStd::of(&vals).mean))
            })
            .collect();
        let color = Palette99::pick(i).stroke_width(2);
        chart
            .draw_series(LineSeries::new(points.clone(), color))?
            .label(m.to_string())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], Palette99::pick(i)));
        chart.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 3, Palette99::pick(i).filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    root.present()?;
    Ok(())
}
