//! The one integration-test binary. Modules by area; docker- and cluster-tier tests carry
//! `docker` / `cluster` in their names so a filter selects a tier.

mod ci;
mod cli;
mod cluster_kind;
mod cluster_kube;
mod cluster_native;
mod config;
mod dev;
mod docker_app;
mod docker_build;
mod docker_fixture;
mod docker_images;
mod docker_nodes;
mod docker_registry;
mod doctor;
mod errors;
mod faults;
mod init;
mod lint;
mod lock;
mod parity;
mod render;
mod signals;
mod support;
mod up;
