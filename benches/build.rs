//! Build + push of the example app: samestack (Docker API) vs `docker build` + `docker push`
//! (CLI, classic builder) on the same engine. Run through `scripts/bench-build`.
//!
//! Each cold measurement starts from the same state for both tools: a fresh, empty registry
//! container (so every layer is uploaded), fresh repository names, and no image or intermediate
//! build cache left from earlier measurements (each measurement's images are removed after it).
//! The base image stays, as it would on a developer's machine. The order of the two tools
//! alternates between rounds. "Unchanged" reruns the same build right after a cold one.
//!
//! Options: `--rounds N` (3), `--parallelism N` (samestack's bound, 2), `--base IMAGE`
//! (samestack-test/python:latest), `--registry-image IMAGE` (samestack-test/registry:latest).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use samestack::build::{self, BuildAction, BuildOptions, BuildSpec};
use samestack::docker::{self, Client};
use samestack::registry::{self, Registry, RegistrySpec};

const SERVICES: [&str; 2] = ["api", "worker"];

struct Args {
    rounds: usize,
    parallelism: usize,
    base: String,
    registry_image: String,
}

fn parse_args() -> Args {
    let mut args = Args {
        rounds: 3,
        parallelism: 2,
        base: "samestack-test/python:latest".into(),
        registry_image: "samestack-test/registry:latest".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--rounds" => args.rounds = it.next().and_then(|v| v.parse().ok()).expect("--rounds N"),
            "--parallelism" => args.parallelism = it.next().and_then(|v| v.parse().ok()).expect("--parallelism N"),
            "--base" => args.base = it.next().expect("--base IMAGE"),
            "--registry-image" => args.registry_image = it.next().expect("--registry-image IMAGE"),
            _ => {} // cargo passes --bench; ignore what we do not know
        }
    }
    args
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/guestbook")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn docker_cli(args: &[&str]) {
    let out = Command::new("docker").args(args).env("DOCKER_BUILDKIT", "0").output().expect("docker CLI");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn remove_images(references: &[String]) {
    for r in references {
        let _ = Command::new("docker").args(["image", "rm", "-f", r]).output();
    }
}

async fn fresh_registry(client: &Client, image: &str, label: &str) -> Registry {
    let spec = RegistrySpec {
        name: format!("samestack-bench-{label}-{}", std::process::id()),
        host_port: free_port(),
        image: Some(image.to_string()),
        project: "samestack-bench".into(),
        cache: None,
    };
    registry::remove(client, &spec.name, true).await.unwrap();
    registry::ensure(client, &spec).await.expect("bench registry starts")
}

fn specs(registry: &Registry, prefix: &str, base: &str) -> Vec<BuildSpec> {
    SERVICES
        .iter()
        .map(|s| BuildSpec {
            service: s.to_string(),
            context: examples().join(s),
            dockerfile: None,
            build_args: BTreeMap::from([("BASE_IMAGE".to_string(), base.to_string())]),
            repository: format!("{}/{prefix}-{s}", registry.host_address()),
        })
        .collect()
}

struct Round {
    ss_cold: Duration,
    ss_unchanged: Duration,
    cli_cold: Duration,
    cli_unchanged: Duration,
}

async fn samestack_run(client: &Client, args: &Args, round: usize) -> (Duration, Duration) {
    let registry = fresh_registry(client, &args.registry_image, &format!("ss{round}")).await;
    let specs = specs(&registry, &format!("bench{round}-ss"), &args.base);
    let options =
        BuildOptions { registry_port: Some(registry.host_port), parallelism: args.parallelism, ..Default::default() };
    let t = Instant::now();
    let cold = build::build_all(client, &specs, &options).await.expect("samestack cold build");
    let cold_time = t.elapsed();
    assert!(cold.iter().all(|o| o.action == BuildAction::Built));
    for o in &cold {
        println!(
            "  samestack {}: scan {} build {} push {}",
            o.service,
            secs(o.scan_time),
            secs(o.build_time),
            secs(o.push_time)
        );
    }
    let t = Instant::now();
    let again = build::build_all(client, &specs, &options).await.expect("samestack unchanged build");
    let unchanged_time = t.elapsed();
    assert!(again.iter().all(|o| o.action == BuildAction::Skipped));
    remove_images(&cold.iter().map(|o| o.reference.clone()).collect::<Vec<_>>());
    registry::remove(client, &registry.name, true).await.unwrap();
    (cold_time, unchanged_time)
}

async fn cli_run(client: &Client, args: &Args, round: usize) -> (Duration, Duration) {
    let registry = fresh_registry(client, &args.registry_image, &format!("cli{round}")).await;
    let refs: Vec<String> =
        SERVICES.iter().map(|s| format!("{}/bench{round}-cli-{s}:v1", registry.host_address())).collect();
    let base_arg = format!("BASE_IMAGE={}", args.base);
    let run = || {
        for (service, reference) in SERVICES.iter().zip(&refs) {
            let context = examples().join(service);
            docker_cli(&["build", "-q", "--build-arg", &base_arg, "-t", reference, context.to_str().unwrap()]);
            docker_cli(&["push", "-q", reference]);
        }
    };
    let t = Instant::now();
    tokio::task::block_in_place(run);
    let cold_time = t.elapsed();
    let t = Instant::now();
    tokio::task::block_in_place(run);
    let unchanged_time = t.elapsed();
    remove_images(&refs);
    registry::remove(client, &registry.name, true).await.unwrap();
    (cold_time, unchanged_time)
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = parse_args();
    let client = docker::connect().await.expect("Docker engine");
    println!(
        "bench-build: example app (api + worker), base {}, {} round(s), samestack parallelism {}, CLI sequential with DOCKER_BUILDKIT=0",
        args.base, args.rounds, args.parallelism
    );
    let mut rounds = Vec::new();
    for round in 0..args.rounds {
        let (ss, cli) = if round % 2 == 0 {
            let ss = samestack_run(&client, &args, round).await;
            (ss, cli_run(&client, &args, round).await)
        } else {
            let cli = cli_run(&client, &args, round).await;
            (samestack_run(&client, &args, round).await, cli)
        };
        println!(
            "round {}: samestack cold {} unchanged {} | CLI cold {} unchanged {}",
            round + 1,
            secs(ss.0),
            secs(ss.1),
            secs(cli.0),
            secs(cli.1)
        );
        rounds.push(Round { ss_cold: ss.0, ss_unchanged: ss.1, cli_cold: cli.0, cli_unchanged: cli.1 });
    }
    let ss_cold = median(rounds.iter().map(|r| r.ss_cold).collect());
    let ss_unchanged = median(rounds.iter().map(|r| r.ss_unchanged).collect());
    let cli_cold = median(rounds.iter().map(|r| r.cli_cold).collect());
    let cli_unchanged = median(rounds.iter().map(|r| r.cli_unchanged).collect());
    let cold_ratio = ss_cold.as_secs_f64() / cli_cold.as_secs_f64();
    let unchanged_ratio = ss_unchanged.as_secs_f64() / ss_cold.as_secs_f64();
    println!(
        "median: samestack cold {} unchanged {} | CLI cold {} unchanged {}",
        secs(ss_cold),
        secs(ss_unchanged),
        secs(cli_cold),
        secs(cli_unchanged)
    );
    println!(
        "cold: samestack / CLI = {cold_ratio:.2}x (goal <= 1.10x) {}",
        if cold_ratio <= 1.10 { "OK" } else { "MISSED" }
    );
    println!(
        "unchanged: samestack unchanged / samestack cold = {:.1}% (goal <= 5%) {}",
        unchanged_ratio * 100.0,
        if unchanged_ratio <= 0.05 { "OK" } else { "MISSED" }
    );
    println!(
        "for reference: CLI unchanged (cached build + push of existing layers) / CLI cold = {:.1}%",
        cli_unchanged.as_secs_f64() / cli_cold.as_secs_f64() * 100.0
    );
}
