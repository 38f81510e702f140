//! Kubernetes in-process: server-side apply in waves, prune, readiness and diagnosis.
