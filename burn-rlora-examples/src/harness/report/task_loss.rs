//! One loss plot per task: the training loss of each method's first run
//! over its iterations (a moving average over the iterations whose batch
//! held the task) and the validation loss after each epoch, read back from
//! the runs' metric logs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::train::metric::store::Split;
use burn::train::metric::NumericEntry;
use burn_rlora::multitask::read_metric_log;
use plotters::prelude::*;

use super::plot_atomically;
use super::plots::{draw_method_legend, integer_labels, integer_tick, method_colour};

/// Iterations averaged in a training curve.
const WINDOW: usize = 10;

/// A task's curves from one run: the training loss by iteration (only the
/// iterations whose batch held the task), the validation loss by epoch.
struct Curves {
    train: Vec<(f64, f64)>,
    valid: Vec<(f64, f64)>,
}

/// An entry's value and the number of examples behind it (a plain value
/// counts once).
fn value_and_count(entry: &NumericEntry) -> (f64, usize) {
    match entry {
        NumericEntry::Value(v) => (*v, 1),
        NumericEntry::Aggregated {
            aggregated_value,
            count,
        } => (*aggregated_value, *count),
    }
}

/// The curves of `task` in the run directory `dir` over its `epochs`
/// epochs (iterations counted across them).
fn curves(dir: &Path, task: &str, epochs: usize) -> Result<Curves> {
    let name = format!("Loss {task}");
    let mut points = Vec::new();
    let mut valid = Vec::new();
    let mut before = 0;
    for epoch in 1..=epochs {
        let entries = read_metric_log(dir, &name, epoch, &Split::Train)?;
        for (i, entry) in entries.iter().enumerate() {
            let (value, count) = value_and_count(entry);
            if count > 0 {
                points.push(((before + i + 1) as f64, value));
            }
        }
        before += entries.len();
        if let Ok(entries) = read_metric_log(dir, &name, epoch, &Split::Valid) {
            let (sum, n) = entries
                .iter()
                .map(value_and_count)
                .fold((0.0, 0), |(s, n), (v, c)| (s + v * c as f64, n + c));
            if n > 0 {
                valid.push((before as f64, sum / n as f64));
            }
        }
    }
    let train = points
        .iter()
        .enumerate()
        .map(|(i, &(x, _))| {
            let w = &points[i.saturating_sub(WINDOW - 1)..=i];
            (x, w.iter().map(|p| p.1).sum::<f64>() / w.len() as f64)
        })
        .collect();
    Ok(Curves { train, valid })
}

/// Writes `<dir>/loss-<task>.svg` for every task of `tasks`, from the runs
/// `(method, run directory)` of `runs` of `epochs` epochs each; returns
/// the files written.
///
/// # Errors
///
/// A metric log that cannot be read, or a plot that cannot be drawn or
/// written.
pub fn write_task_loss_plots(
    dir: &Path,
    runs: &[(String, PathBuf)],
    tasks: &[String],
    epochs: usize,
) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for task in tasks {
        let mut all = Vec::new();
        for (method, run) in runs {
            let c = curves(run, task, epochs)
                .with_context(|| format!("the loss of task {task} in {}", run.display()))?;
            all.push((method.as_str(), c));
        }
        let file_name: String = task
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("loss-{file_name}.svg"));
        let iterations = all
            .iter()
            .flat_map(|(_, c)| c.train.iter().chain(&c.valid).map(|p| p.0 as usize))
            .max()
            .unwrap_or(1);
        plot_atomically(&path, |svg| plot(svg, task, &all, iterations))?;
        files.push(path);
    }
    Ok(files)
}

/// The plot of one task.
fn plot(svg: &mut String, task: &str, runs: &[(&str, Curves)], iterations: usize) -> Result<()> {
    let max_y = runs
        .iter()
        .flat_map(|(_, c)| c.train.iter().chain(&c.valid).map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(0.1, f64::max);
    let root = SVGBackend::with_string(svg, (900 + 180, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let (area, legend) = root.split_horizontally(900);
    let caption = format!(
        "task {task}: training loss (moving average of {WINDOW} iterations), validation loss after each epoch (dots)"
    );
    let mut chart = ChartBuilder::on(&area)
        .caption(caption, ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..iterations.max(2) as f64, 0f64..max_y * 1.05)?;
    chart
        .configure_mesh()
        .x_labels(integer_labels(iterations))
        .x_label_formatter(&integer_tick)
        .x_desc("iteration")
        .y_desc("loss")
        .draw()?;
    let mut methods = Vec::new();
    for (method, c) in runs {
        let colour = method_colour(method);
        chart.draw_series(LineSeries::new(c.train.clone(), colour.stroke_width(2)))?;
        chart.draw_series(c.valid.iter().map(|&p| Circle::new(p, 5, colour.filled())))?;
        methods.push(*method);
    }
    draw_method_legend(&legend, &methods)?;
    root.present()?;
    Ok(())
}
