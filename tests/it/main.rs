//! The one integration-test binary. Modules by area; docker- and cluster-tier tests carry
//! `docker` / `cluster` in their names so a filter selects a tier.

mod cli;
mod cluster_kube;
mod doctor;
mod support;
