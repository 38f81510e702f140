//! samestack: one command from "Docker is installed" to the production stack running locally.
//!
//! The binary (`src/main.rs`) only parses arguments and maps errors to exit codes; each
//! command in [`commands`] orchestrates the domain modules, which do the work; `up`, `dev` and
//! `ci` share the [`pipeline`].

pub mod build;
pub mod cancel;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod docker;
pub mod doctor;
pub mod error;
pub mod ingress;
pub mod kube;
pub mod pipeline;
pub mod preflight;
pub mod profile;
pub mod registry;
pub mod render;
pub mod settings;
pub mod sync;
pub mod tls;
pub mod ui;
