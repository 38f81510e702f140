//! Cluster providers behind one trait: native docker, kind, k3d, existing, auto.
