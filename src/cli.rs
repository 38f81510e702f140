//! Command-line definitions (clap types only). `*Args` are raw user input; the commands
//! turn them into resolved settings.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "samestack",
    version,
    about = "From \"Docker is installed\" to the production stack running locally, with edits live in a second",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The project file
    #[arg(short = 'f', long = "file", global = true, default_value = "samestack.yaml", env = "SAMESTACK_FILE")]
    pub file: PathBuf,
    /// More log output (-v info, -vv debug, -vvv trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

/// The kubeconfig flag, on the commands that use the user's kubeconfig (up, dev, status, down;
/// `ci` writes a private one).
#[derive(Debug, Clone, Default, Args)]
pub struct KubeconfigArgs {
    /// The kubeconfig to merge the cluster's context into (default: first entry of KUBECONFIG, else ~/.kube/config)
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the cluster and registry, build images, apply manifests and wait until ready (idempotent)
    Up(UpArgs),
    /// `up`, then watch: sync changed files into pods, or rebuild and roll one service
    Dev(DevArgs),
    /// Ephemeral cluster: `up`, run a command against it, always tear down
    Ci(CiArgs),
    /// Render the manifests for a profile (the same templates production uses)
    Render(RenderArgs),
    /// Show what differs between two profiles, and whether each difference is declared
    Parity(ParityArgs),
    /// Check the machine: Docker, provider binaries, ports, inotify, cgroups, disk
    Doctor(DoctorArgs),
    /// Cluster, registry and every workload's readiness and endpoints
    Status(StatusArgs),
    /// Remove what samestack created for this project
    Down(DownArgs),
    /// Write samestack.yaml, profiles/dev.yaml and the .secrets/ rule in .gitignore for a project
    Init(InitArgs),
    /// Print the JSON Schema of samestack.yaml, or of a profile file (for editor completion)
    Schema(SchemaArgs),
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Profile to deploy
    #[arg(short, long, default_value = "dev")]
    pub profile: String,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    #[command(flatten)]
    pub kube: KubeconfigArgs,
}

/// The flags of the pipeline `up`, `dev` and `ci` share: builds, preloads, timeouts.
#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// Build argument for every service's image, e.g. BASE_IMAGE=python:3.12-slim (repeatable; wins over samestack.yaml)
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// Copy an image from the local Docker engine into the local registry and run it from there
    /// wherever the manifests use it (offline and air-gapped use; repeatable)
    #[arg(long, value_name = "IMAGE", env = "SAMESTACK_PRELOAD", value_delimiter = ',')]
    pub preload: Vec<String>,
    /// Seconds all image builds and pushes may take together
    #[arg(long, default_value_t = 1200, value_name = "SECONDS")]
    pub build_timeout: u64,
    /// Seconds each apply wave may take to become ready
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub ready_timeout: u64,
    /// Keep the local registry's data in this host directory instead of a Docker volume, so a
    /// CI runner can cache it between jobs (created 0700 when missing; kept by teardown and
    /// `down --purge`)
    #[arg(long, value_name = "DIR", env = "SAMESTACK_REGISTRY_CACHE")]
    pub registry_cache: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct DevArgs {
    #[command(flatten)]
    pub up: UpArgs,
    /// Stream the logs of these services only (comma-separated; default: every service)
    #[arg(long, value_name = "SERVICE,...", value_delimiter = ',', conflicts_with = "no_logs")]
    pub logs: Vec<String>,
    /// Do not stream the pods' logs
    #[arg(long)]
    pub no_logs: bool,
    /// JSON lines on stdout: each forward, reload and one-time notice, a summary at the end;
    /// nothing on stderr but logs
    #[arg(long)]
    pub json: bool,
    /// Image of the ephemeral container that receives synced files where the app's image has
    /// no `sh` or `tar` (over SAMESTACK_SYNC_IMAGE and `dev.sync_image`; default busybox:1.37.0)
    #[arg(long, value_name = "IMAGE")]
    pub sync_image: Option<String>,
}

#[derive(Debug, Args)]
#[command(after_help = "Exit status: CMD's own; 124 when --timeout stopped it; 128+N when samestack got signal N \
(130 SIGINT, 143 SIGTERM); 126/127 when CMD cannot be run; 1 when samestack's own environment failed \
(Docker, a cluster not ready in time); 2 on bad input.")]
pub struct CiArgs {
    /// Profile to deploy
    #[arg(short, long, default_value = "ci")]
    pub profile: String,
    /// Name of the environment (cluster, registry, namespace); default: <project>-ci-<run id>
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Keep the environment afterwards and print how to reach and remove it
    #[arg(long, conflicts_with = "remove")]
    pub keep: bool,
    /// Remove the environment `--name` names (one an earlier `ci --keep` kept), and run nothing
    #[arg(long, requires = "name")]
    pub remove: bool,
    /// Where to write events, pod statuses, logs and manifests when anything failed
    #[arg(long, value_name = "DIR", default_value = "samestack-artifacts")]
    pub artifacts: PathBuf,
    /// Seconds CMD may run; then it gets SIGTERM (SIGKILL 10 s later) and ci exits 124
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Print a summary as JSON on stdout: every step's timing, the outcome, the artifacts path
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// The command to run against the environment, after `--`
    #[arg(last = true, required_unless_present = "remove", value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Profile to render
    #[arg(short, long, default_value = "dev")]
    pub profile: String,
    /// Write one file per resource into this directory instead of printing to stdout
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Show secret values instead of redacting them
    #[arg(long)]
    pub reveal: bool,
    /// Image for a service, SERVICE=REPO:TAG (repeatable). Default for built services:
    /// localhost:<registry port>/<project>/<service>:unbuilt
    #[arg(long, value_name = "SERVICE=IMAGE")]
    pub image: Vec<String>,
    #[command(flatten)]
    pub lint: LintArgs,
}

/// The production-parity lint's flags (`render --profile prod`, the prod side of `parity`).
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct LintArgs {
    /// Make production-parity lint findings errors: print them and exit 1 (render then writes
    /// no manifests)
    #[arg(long)]
    pub strict: bool,
    /// Print the lint findings as one JSON document on stderr instead of text
    #[arg(long = "lint-json")]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which file's schema: samestack.yaml (`project`) or profiles/NAME.yaml (`profile`)
    #[arg(value_enum, default_value = "project", value_name = "FILE")]
    pub of: SchemaFile,
}

/// The files `samestack schema` describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SchemaFile {
    Project,
    Profile,
}

#[derive(Debug, Args)]
pub struct ParityArgs {
    /// First profile
    pub a: String,
    /// Second profile
    pub b: String,
    /// Machine-readable report (the lint findings of a prod side then also come as JSON, on stderr)
    #[arg(long)]
    pub json: bool,
    /// Make the prod side's production-parity lint findings errors: exit 1 when there are any
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Machine-readable report
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Machine-readable report
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub kube: KubeconfigArgs,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Also remove the registry, its image cache, and the images built for the project
    #[arg(long)]
    pub purge: bool,
    #[command(flatten)]
    pub kube: KubeconfigArgs,
}

/// `samestack init` writes samestack.yaml, profiles/dev.yaml (the project's dev profile), the
/// `.secrets/` rule in .gitignore, and with `--database` a generated password in
/// .secrets/db-password.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Accept defaults without asking (for scripts and CI)
    #[arg(short, long)]
    pub yes: bool,
    /// Overwrite an existing samestack.yaml
    #[arg(long)]
    pub force: bool,
    /// Project name (defaults to the directory name)
    #[arg(long)]
    pub name: Option<String>,
    /// Name of the first service
    #[arg(long, default_value = "web")]
    pub service: String,
    /// Port the first service listens on
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Use this prebuilt image (pinned tag) instead of building
    #[arg(long)]
    pub image: Option<String>,
    /// Build context directory of the first service, relative to the project (it must exist
    /// and hold the Dockerfile)
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub build_context: String,
    /// Add a postgres database (password generated into .secrets/db-password)
    #[arg(long)]
    pub database: bool,
    /// Cluster provider
    #[arg(long, value_enum, default_value = "auto")]
    pub provider: crate::config::Provider,
    /// The kubeconfig context to use with `--provider existing` (see `kubectl config get-contexts`)
    #[arg(long, value_name = "NAME")]
    pub kube_context: Option<String>,
}
