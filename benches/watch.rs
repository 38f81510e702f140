//! The dev watcher on large generated trees (no Docker, no cluster): the time from start to
//! watching a 100,000-file tree, and the CPU and RSS of a process watching a 10,000-file tree
//! while nothing changes for 60 s. Run through `scripts/bench-dev` (or
//! `cargo bench --bench watch -- [--files N] [--idle-files N] [--idle-seconds S]`).

use std::path::Path;
use std::time::{Duration, Instant};

use samestack::sync::watch::{Watcher, rules_for};

/// A project with one service whose context holds `files` files, 100 per directory.
fn generate(root: &Path, files: usize) {
    std::fs::create_dir_all(root.join("app")).unwrap();
    std::fs::write(root.join("app/Dockerfile"), "FROM scratch\n").unwrap();
    let yaml = "name: bench\nservices:\n  app:\n    build: { context: app }\n    ports: [{ port: 80 }]\n    sync: [{ from: ., to: /app }]\n";
    std::fs::write(root.join("samestack.yaml"), yaml).unwrap();
    for i in 0..files {
        let dir = root.join(format!("app/src/d{:03}/e{:02}", i / 1000, (i / 100) % 10));
        if i % 100 == 0 {
            std::fs::create_dir_all(&dir).unwrap();
        }
        std::fs::write(dir.join(format!("f{i}.txt")), "x").unwrap();
    }
}

/// CPU seconds (user + system) of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: f64 =
        status.lines().find(|l| l.starts_with("VmRSS:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024.0
}

async fn start(root: &Path) -> (Watcher, Duration) {
    let project = samestack::config::load(&root.join("samestack.yaml")).unwrap();
    let started = Instant::now();
    let watcher = Watcher::start(rules_for(&project).unwrap()).await.unwrap();
    (watcher, started.elapsed())
}

#[tokio::main]
async fn main() {
    let mut files = 100_000;
    let mut idle_files = 10_000;
    let mut idle_seconds = 60;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().and_then(|v| v.parse().ok()).expect("a number after the flag");
        match arg.as_str() {
            "--files" => files = value(),
            "--idle-files" => idle_files = value(),
            "--idle-seconds" => idle_seconds = value() as u64,
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }

    let big = tempfile::tempdir().unwrap();
    generate(big.path(), files);
    let (watcher, took) = start(big.path()).await;
    println!(
        "start to watching, {files} files in {} directories: {:.2}s (goal: 5 s: {})",
        watcher.watched(),
        took.as_secs_f64(),
        if took <= Duration::from_secs(5) { "met" } else { "NOT met" }
    );
    drop(watcher);
    drop(big);

    let small = tempfile::tempdir().unwrap();
    generate(small.path(), idle_files);
    let (mut watcher, _) = start(small.path()).await;
    let rss_before = rss_mib();
    let cpu_before = cpu_seconds();
    let idle = Duration::from_secs(idle_seconds);
    let events = tokio::time::timeout(idle, async {
        let mut n = 0;
        while watcher.next().await.is_some() {
            n += 1;
        }
        n
    })
    .await
    .unwrap_or(0);
    let cpu = (cpu_seconds() - cpu_before) / idle.as_secs_f64() * 100.0;
    let rss = rss_mib().max(rss_before);
    println!(
        "idle {idle_seconds}s watching {idle_files} files: CPU {cpu:.2}% (goal < 1 %: {}), RSS {rss:.1} MiB (goal <= 40 MB: {}), {events} events",
        if cpu < 1.0 { "met" } else { "NOT met" },
        if rss * 1.048_576 <= 40.0 { "met" } else { "NOT met" }
    );
}
