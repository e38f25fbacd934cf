//! The meta group: the registry of apps and the bulk jobs run on their schedules.

pub mod app;
pub mod app_events;
pub mod bulk;
pub mod logic;
