//! The names samestack marks what it owns with: labels on Docker objects and Kubernetes
//! resources, and the field manager of its server-side applies. The bottom of the crate: it
//! imports nothing, and every module takes these names from here.

/// The project name, on every Docker object and Kubernetes resource samestack creates.
pub const PROJECT: &str = "dev.samestack.project";
/// The cluster name, on node containers and the cluster network.
pub const CLUSTER: &str = "dev.samestack.cluster";
/// What a container is for (`node`, `registry`).
pub const ROLE: &str = "dev.samestack.role";
/// The team owning a project's resources (`owner:` in samestack.yaml).
pub const OWNER: &str = "dev.samestack.owner";
/// The cost center of a project's resources (`cost_center:`).
pub const COST_CENTER: &str = "dev.samestack.cost-center";
/// The input digest on every image samestack builds.
pub const INPUT_DIGEST: &str = "dev.samestack.input-digest";
/// The standard "managed by" label, set to [`MANAGER`].
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The standard name label: the service an object belongs to.
pub const NAME: &str = "app.kubernetes.io/name";
/// The standard "part of" label: the project.
pub const PART_OF: &str = "app.kubernetes.io/part-of";
/// samestack's field manager for server-side apply, and the value of [`MANAGED_BY`].
pub const MANAGER: &str = "samestack";
