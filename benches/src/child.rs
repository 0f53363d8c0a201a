//! What the side-by-side benchmarks with a PyTorch child process share: the
//! child's command line and the allocator settings both sides run with, the
//! child speaking one JSON object per line, peak-memory runs in fresh
//! processes, the machine's description that goes with every figure, and
//! the binaries' `main`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// glibc's allocator keeps freed memory on both sides (as
/// [`keep_freed_memory`](crate::keep_freed_memory) does in-process).
pub const MALLOC_ENV: [(&str, &str); 3] = [
    ("MALLOC_MMAP_THRESHOLD_", "33554432"),
    ("MALLOC_TRIM_THRESHOLD_", "2147483647"),
    ("MALLOC_TOP_PAD_", "67108864"),
];

/// The command that starts a PyTorch rendering: `python script --inputs
/// dump --cache cache --data-dir data_dir --threads threads`, with the
/// allocator settings of [`MALLOC_ENV`] and its stderr shown.
pub fn torch_command(
    python: &str,
    script: &Path,
    dump: &Path,
    cache: &Path,
    data_dir: &Path,
    gguf: &str,
    threads: usize,
) -> Command {
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .arg("--inputs")
        .arg(dump)
        .arg("--cache")
        .arg(cache)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--gguf", gguf])
        .args(["--threads", &threads.to_string()])
        .envs(MALLOC_ENV)
        .stderr(Stdio::inherit());
    cmd
}

/// The default folder where the PyTorch side keeps the model `gguf`
/// (a path under the data directory) dequantized between runs: one per
/// model file.
pub fn torch_cache_for(gguf: &str) -> std::path::PathBuf {
    let stem = Path::new(gguf)
        .file_stem()
        .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
    std::env::temp_dir().join(format!("burn-rlora-torch-{stem}"))
}

/// The `main` of a bench binary: parse `A` (printing clap's message and
/// exiting 2 on bad options, 0 for `--help`), run, and print an error with
/// its causes and exit 1.
pub fn bench_main<A: clap::Parser>(run: impl FnOnce(A) -> Result<()>) {
    let args = match A::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() { 2 } else { 0 });
        }
    };
    if let Err(e) = run(args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// A child process that answers each command line on its stdin with one
/// JSON object on its stdout (`{"error": ...}` for a failure), after a first
/// object saying it is ready.
pub struct JsonChild {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl JsonChild {
    /// Start `cmd` with piped stdin and stdout; returns the child and its
    /// first line (what it loaded, its versions).
    ///
    /// # Errors
    ///
    /// The command cannot start, or its first line is not a JSON object
    /// without `error`.
    pub fn spawn(mut cmd: Command) -> Result<(Self, Value)> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the PyTorch side (--python, --torch-script)")?;
        let stdin = child.stdin.take().context("the child's stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("the child's stdout")?);
        let mut c = Self {
            child,
            stdin,
            stdout,
        };
        let ready = c.read()?;
        Ok((c, ready))
    }

    fn read(&mut self) -> Result<Value> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("the PyTorch side ended (see its messages above)");
        }
        let v: Value =
            serde_json::from_str(&line).with_context(|| format!("from PyTorch: {line}"))?;
        if let Some(e) = v.get("error") {
            bail!("PyTorch: {e}");
        }
        Ok(v)
    }

    /// Send one command line; its answer.
    ///
    /// # Errors
    ///
    /// The child ended, answered something that is not JSON, or an error.
    pub fn request(&mut self, line: &str) -> Result<Value> {
        writeln!(self.stdin, "{line}")?;
        self.stdin.flush()?;
        self.read()
    }

    /// Send `quit` and wait for the child to end.
    ///
    /// # Errors
    ///
    /// Writing to the child or waiting for it failed.
    pub fn quit(mut self) -> Result<()> {
        writeln!(self.stdin, "quit")?;
        self.stdin.flush()?;
        self.child.wait()?;
        Ok(())
    }
}

/// Run `cmd` to its end and read `peak_rss_mib` from the last line it
/// printed (a JSON object).
///
/// # Errors
///
/// The run failed or its last line holds no such object.
pub fn peak_line(mut cmd: Command) -> Result<Option<f64>> {
    let out = cmd.stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        bail!("a peak-memory run failed ({})", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    let v: Value =
        serde_json::from_str(line).with_context(|| format!("peak run printed {line:?}"))?;
    Ok(v["peak_rss_mib"].as_f64())
}

/// The load average over 1, 5 and 15 minutes, as `/proc/loadavg` says it.
pub fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The CPU model and which of AVX2 and AVX-512F it has (flex's GEMM picks
/// its kernels by these at run time).
pub fn cpu() -> String {
    cpu_from(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default())
}

fn cpu_from(info: &str) -> String {
    let model = info
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("?", str::trim)
        .to_string();
    let flags = info
        .lines()
        .find(|l| l.starts_with("flags"))
        .unwrap_or_default();
    let has: Vec<&str> = ["avx2", "avx512f"]
        .into_iter()
        .filter(|f| flags.split_whitespace().any(|w| w == *f))
        .collect();
    format!("{model}; {}", has.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_line_names_the_model_and_only_the_extensions_present() {
        let info =
            "processor\t: 0\nmodel name\t: Some CPU @ 2.0GHz\nflags\t\t: fpu avx avx2 avx512bw\n";
        assert_eq!(cpu_from(info), "Some CPU @ 2.0GHz; avx2");
        let both = "model name: X\nflags: avx512f avx2\n";
        assert_eq!(cpu_from(both), "X; avx2, avx512f");
        assert_eq!(cpu_from(""), "?; ");
    }

    #[test]
    fn a_child_answers_line_by_line_and_its_errors_are_errors() {
        // A shell child: ready, then echoes each command as JSON, an error
        // for "bad".
        let script = r#"echo '{"ready":1}'; while read l; do
            case "$l" in quit) exit 0;; bad) echo '{"error":"no"}';;
            *) echo "{\"got\":\"$l\"}";; esac; done"#;
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        let (mut c, ready) = JsonChild::spawn(cmd).unwrap();
        assert_eq!(ready["ready"], 1);
        assert_eq!(c.request("step x").unwrap()["got"], "step x");
        let err = c.request("bad").unwrap_err().to_string();
        assert!(err.contains("no"), "{err}");
        c.quit().unwrap();
    }
}
