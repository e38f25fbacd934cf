//! The meta group: the registry of apps (and, later, cluster-wide settings).

pub mod app;
pub mod apply;
