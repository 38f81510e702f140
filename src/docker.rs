//! The one Docker Engine API client (bollard) and helpers every Docker-facing module shares.
