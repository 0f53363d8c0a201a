//! Aggregating runs into a table (Markdown, JSON) and plots (SVG, plotters).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use burn_rlora::write_atomically;

use crate::harness::compare::result::RunResult;
use crate::harness::stats::PairedDifference;

mod plots;
mod task_loss;

pub use plots::method_colour;
use plots::{plot_losses, plot_similarity, plot_similarity_by_layer, plot_similarity_trace};
pub use task_loss::write_task_loss_plots;

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
    /// Mean training tokens per second over the runs that count them
    /// ([`RunResult::train_tokens_per_second`]); `None` where none does.
    pub train_tokens_per_second: Option<f64>,
    /// Runs that resumed from a checkpoint: their wall time and peak memory
    /// are those of the invocation that finished them.
    pub resumed_runs: usize,
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
                train_tokens_per_second: {
                    let rates: Vec<f64> = rs
                        .iter()
                        .filter_map(|r| r.train_tokens_per_second)
                        .collect();
                    (!rates.is_empty()).then(|| MeanStd::of(&rates).mean)
                },
                resumed_runs: rs
                    .iter()
                    .filter(|r| r.resumed_after_epoch.is_some())
                    .count(),
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

/// The mark of the figures of resumed runs in [`markdown`].
const RESUMED_MARK: &str = "†";

/// The comparison as a Markdown table. A `tokens/s` column is there when a
/// run counts its training tokens; the wall time and peak memory of a
/// method with resumed runs are marked, and a note under the table says why.
pub fn markdown(summaries: &[MethodSummary], task_names: &[String]) -> String {
    let tokens = summaries
        .iter()
        .any(|m| m.train_tokens_per_second.is_some());
    let mut s = String::from("| method | rank |");
    for t in task_names {
        s.push_str(&format!(" {t} |"));
    }
    s.push_str(" average | adapter params | trainable | head cos sim | s / run |");
    if tokens {
        s.push_str(" tokens/s |");
    }
    s.push_str(" peak RSS MiB |\n|---|---|");
    s.push_str(&"---|".repeat(task_names.len() + 6 + usize::from(tokens)));
    s.push('\n');
    for m in summaries {
        s.push_str(&format!("| {} | {} |", m.method, m.rank));
        for a in &m.task_accuracy {
            s.push_str(&format!(" {} |", a.show()));
        }
        let mark = if m.resumed_runs > 0 { RESUMED_MARK } else { "" };
        let dash = |v: Option<String>| v.unwrap_or_else(|| "–".to_string());
        let sim = dash(m.head_similarity.map(|v| format!("{v:.3}")));
        let rss = dash(m.peak_rss_mib.map(|v| format!("{v:.0}{mark}")));
        s.push_str(&format!(
            " **{}** | {} | {} | {} | {:.1}{mark} |",
            m.mean_accuracy.show(),
            m.adapter_params,
            m.trainable,
            sim,
            m.wall_seconds,
        ));
        if tokens {
            let rate = dash(m.train_tokens_per_second.map(|v| format!("{v:.0}")));
            s.push_str(&format!(" {rate} |"));
        }
        s.push_str(&format!(" {rss} |\n"));
    }
    let resumed: usize = summaries.iter().map(|m| m.resumed_runs).sum();
    if resumed > 0 {
        s.push_str(&format!(
            "\n{RESUMED_MARK} {resumed} of the runs resumed from a checkpoint (`--resume`): \
             their wall time and peak memory are those of the invocation that finished them, \
             which trained only the epochs after that checkpoint{}.\n",
            if tokens {
                ", and their tokens/s is of those epochs"
            } else {
                ""
            }
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
    if let Ok(meta) = fs::metadata(dir) {
        if !meta.is_dir() {
            anyhow::bail!(
                "the output directory {} exists and is not a directory",
                dir.display()
            );
        }
    }
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

#[cfg(test)]
mod tests {
    use plotters::style::RGBColor;

    use super::plots::{integer_labels, integer_tick, similarity_colour, trace_curve};
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
            resumed_after_epoch: None,
            train_tokens_per_second: None,
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

    /// The cells of the table row of `method` in `table`.
    fn row<'a>(table: &'a str, method: &str) -> Vec<&'a str> {
        let line = table
            .lines()
            .find(|l| l.starts_with(&format!("| {method} |")))
            .unwrap();
        line.trim_matches('|').split('|').map(str::trim).collect()
    }

    #[test]
    fn the_table_shows_tokens_per_second_and_marks_resumed_runs() {
        let mut runs = vec![
            run("lora", 0, 70.0, &[]),
            run("lora", 1, 72.0, &[]),
            run("rlora", 0, 75.0, &[]),
        ];
        runs[0].train_tokens_per_second = Some(100.0);
        runs[1].train_tokens_per_second = Some(300.0);
        runs[1].resumed_after_epoch = Some(2);
        runs[1].wall_seconds = 4.0;
        let names = ["t".to_string()];
        let table = markdown(&summarize(&runs), &names);
        let header: Vec<&str> = table.lines().next().unwrap().split('|').collect();
        let rule: Vec<&str> = table.lines().nth(1).unwrap().split('|').collect();
        assert_eq!(header.len(), rule.len(), "{table}");
        assert!(header.contains(&" tokens/s "), "{table}");
        let lora = row(&table, "lora");
        // Mean wall time (1 + 4) / 2, marked; mean rate (100 + 300) / 2.
        assert_eq!(lora[lora.len() - 3..], ["2.5†", "200", "–"]);
        let rlora = row(&table, "rlora");
        assert_eq!(rlora[rlora.len() - 3..], ["1.0", "–", "–"]);
        assert!(
            table.contains("† 1 of the runs resumed from a checkpoint"),
            "{table}"
        );

        let plain = markdown(&summarize(&[run("lora", 0, 70.0, &[])]), &names);
        assert!(
            !plain.contains("tokens/s") && !plain.contains('†'),
            "{plain}"
        );
        let header = plain.lines().next().unwrap().split('|').count();
        assert_eq!(header, plain.lines().nth(1).unwrap().split('|').count());
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
