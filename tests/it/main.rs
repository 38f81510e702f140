//! The one integration-test binary. Modules by area; docker- and cluster-tier tests carry
//! `docker` / `cluster` in their names so a filter selects a tier.

mod cli;
mod support;
mod docker_app;
mod docker_build;
mod docker_fixture;
mod docker_images;
mod docker_registry;
