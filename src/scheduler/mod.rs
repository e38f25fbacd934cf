//! Work a shard's leader does as time passes (the firing engine will live here too).

pub mod bulk;
pub mod refill;
pub mod retention;
