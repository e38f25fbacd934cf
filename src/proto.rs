//! Generated gRPC code (from `proto/`), kept at the edge: the core never sees these types.

#![allow(clippy::all, missing_docs)]

pub mod raft {
    tonic::include_proto!("goscheduler.raft");
}

pub mod admin {
    tonic::include_proto!("goscheduler.admin");
}

/// The descriptors of every service, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));
