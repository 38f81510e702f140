//! The local OCI registry container: create or reuse, health-check, wire into clusters.
