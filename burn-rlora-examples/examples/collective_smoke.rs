//! Smoke test of burn-collective's global (cross-process) all-reduce: two
//! processes on 127.0.0.1, ndarray, several consecutive all-reduces of a
//! gradient-sized tensor, bounded in time (feature `collective-smoke`).
//!
//! ```text
//! cargo run -p burn-rlora-examples --features collective-smoke --example collective_smoke
//! ```
//!
//! The launcher runs burn-collective's orchestrator in this process and
//! starts two node processes (this binary with `--node 0` / `--node 1`).
//! Each node registers one peer, then all-reduces (sum) a tensor of
//! `--values` floats `--rounds` times and prints a line per completed round.
//! The launcher reports how many rounds each node completed before
//! `--timeout` seconds, kills what is left, and exits 1 unless every round
//! completed on both nodes.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use burn::backend::NdArray;
use burn::tensor::{Tensor, TensorData};
use burn_collective::{
    all_reduce, finish_collective, register, start_global_orchestrator, CollectiveConfig, PeerId,
    ReduceOperation,
};

const NODES: usize = 2;

struct Options {
    node: Option<usize>,
    port: u16,
    rounds: usize,
    values: usize,
    timeout: u64,
}

fn parse() -> Result<Options, String> {
    let mut opts = Options {
        node: None,
        port: 47311,
        rounds: 5,
        values: 100_000,
        timeout: 60,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: std::num::ParseIntError| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--node" => opts.node = Some(value.parse().map_err(bad)?),
            "--port" => opts.port = value.parse().map_err(bad)?,
            "--rounds" => opts.rounds = value.parse().map_err(bad)?,
            "--values" => opts.values = value.parse().map_err(bad)?,
            "--timeout" => opts.timeout = value.parse().map_err(bad)?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(opts)
}

fn main() {
    let opts = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let result = match opts.node {
        Some(node) => run_node(&opts, node),
        None => launch(&opts),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// One node: register, all-reduce `rounds` times, finish.
fn run_node(opts: &Options, node: usize) -> Result<(), String> {
    type B = NdArray;
    let global = format!("ws://127.0.0.1:{}", opts.port);
    let data_port = opts.port + 1 + node as u16;
    let local = format!("ws://127.0.0.1:{data_port}");
    let config = CollectiveConfig::default()
        .with_num_devices(1)
        .with_num_nodes(NODES as u32)
        .with_global_address(global.parse()?)
        .with_node_address(local.parse()?)
        .with_data_service_port(data_port);
    let device = Default::default();
    let peer = PeerId(0);
    register::<B>(peer, device, config).map_err(|e| format!("register: {e:?}"))?;
    println!("registered");
    for round in 1..=opts.rounds {
        let value = (node + 1) as f32 * round as f32;
        let x = Tensor::<B, 1>::from_data(
            TensorData::new(vec![value; opts.values], [opts.values]),
            &device,
        );
        let start = Instant::now();
        let sum = all_reduce::<B>(peer, x.into_primitive().tensor(), ReduceOperation::Sum)
            .map_err(|e| format!("all-reduce {round}: {e:?}"))?;
        let sum: Vec<f32> =
            Tensor::<B, 1>::from_primitive(burn::tensor::TensorPrimitive::Float(sum))
                .into_data()
                .to_vec()
                .map_err(|e| format!("{e:?}"))?;
        let expected = (1..=NODES).map(|n| n as f32 * round as f32).sum::<f32>();
        if sum.iter().any(|&v| v != expected) {
            return Err(format!(
                "all-reduce {round}: wrong sum, expected {expected}"
            ));
        }
        println!("round {round} ok in {:.3} s", start.elapsed().as_secs_f64());
    }
    finish_collective::<B>(peer).map_err(|e| format!("finish: {e:?}"))?;
    println!("finished");
    Ok(())
}

/// The orchestrator in this process, two node processes, a deadline.
fn launch(opts: &Options) -> Result<(), String> {
    start_orchestrator(opts.port);
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::channel::<(usize, String)>();
    let mut children: Vec<Child> = Vec::new();
    for node in 0..NODES {
        children.push(spawn_node(&exe, node, opts, tx.clone())?);
    }
    drop(tx);
    let progress = watch(opts, &rx);
    let statuses = reap(&mut children);
    println!(
        "completed rounds per node: {:?} of {}; {}",
        progress.rounds,
        opts.rounds,
        statuses.join("; ")
    );
    progress.verdict(opts)
}

/// Run burn-collective's global orchestrator on `port` in a thread of its
/// own, and give it half a second to start listening.
fn start_orchestrator(port: u16) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
        runtime.block_on(start_global_orchestrator(port));
    });
    std::thread::sleep(Duration::from_millis(500));
}

/// Start node `node` (this binary, `exe`, with `--node`), and a thread that
/// sends each line it prints to `tx`, tagged with the node.
fn spawn_node(
    exe: &Path,
    node: usize,
    opts: &Options,
    tx: mpsc::Sender<(usize, String)>,
) -> Result<Child, String> {
    let mut child = Command::new(exe)
        .args(["--node", &node.to_string()])
        .args(["--port", &opts.port.to_string()])
        .args(["--rounds", &opts.rounds.to_string()])
        .args(["--values", &opts.values.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting node {node}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send((node, line)).is_err() {
                break;
            }
        }
    });
    Ok(child)
}

/// What the nodes reported before the deadline.
struct Progress {
    /// Completed rounds per node.
    rounds: [usize; NODES],
    /// Whether each node printed "finished".
    finished: [bool; NODES],
}

impl Progress {
    /// `Ok` when every node completed every round and finished, else the
    /// all-reduce that got stuck.
    fn verdict(&self, opts: &Options) -> Result<(), String> {
        if self.rounds.iter().all(|&r| r == opts.rounds) && self.finished.iter().all(|&f| f) {
            println!(
                "burn-collective: {} consecutive global all-reduces completed",
                opts.rounds
            );
            Ok(())
        } else {
            let stuck = self.rounds.iter().min().copied().unwrap_or(0) + 1;
            Err(format!(
                "burn-collective: global all-reduce {stuck} did not complete within {} s",
                opts.timeout
            ))
        }
    }
}

/// Echo the nodes' lines from `rx` and count their rounds until every node
/// has finished, every node's output has closed, or `--timeout` seconds
/// have passed.
fn watch(opts: &Options, rx: &mpsc::Receiver<(usize, String)>) -> Progress {
    let deadline = Instant::now() + Duration::from_secs(opts.timeout);
    let mut progress = Progress {
        rounds: [0; NODES],
        finished: [false; NODES],
    };
    while Instant::now() < deadline && !progress.finished.iter().all(|&f| f) {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok((node, line)) => {
                println!("node {node}: {line}");
                if line.starts_with("round ") {
                    progress.rounds[node] += 1;
                }
                if line == "finished" {
                    progress.finished[node] = true;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    progress
}

/// Give the nodes a few seconds to exit, kill those still running, and say
/// how each one ended.
fn reap(children: &mut [Child]) -> Vec<String> {
    // A node that printed "finished" gets a few seconds to exit.
    let grace = Instant::now() + Duration::from_secs(5);
    while Instant::now() < grace
        && children
            .iter_mut()
            .any(|c| matches!(c.try_wait(), Ok(None)))
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut statuses = Vec::new();
    for (node, child) in children.iter_mut().enumerate() {
        match child.try_wait() {
            Ok(Some(status)) => statuses.push(format!("node {node} exited with {status}")),
            _ => {
                child.kill().ok();
                child.wait().ok();
                statuses.push(format!("node {node} still running, killed"));
            }
        }
    }
    statuses
}
