//! The Raft type configuration shared by every group on a node.
//!
//! This layer knows nothing of apps or schedules: what a log carries is a type parameter,
//! [`LogTypes`], chosen by the application (`crate::command::SchedulerLog`). Every group of
//! a node runs the same [`TypeConfig`]; what a group does with a command is its
//! [`GroupLogic`](super::logic::GroupLogic).

use std::fmt::{Debug, Display};
use std::marker::PhantomData;
use std::sync::Arc;

use openraft::{AppData, AppDataResponse, EntryPayload, RaftTypeConfig};

pub use crate::ids::{GroupId, GroupKind, NodeId, NodeInfo};

/// What the application puts into a log and gets back from applying it.
pub trait LogTypes:
    Debug + Clone + Copy + Default + Eq + PartialEq + Ord + PartialOrd + Send + Sync + 'static
{
    /// A state change proposed to a group's log.
    type Command: AppData + Clone + Display;
    /// What applying one command answers its proposer. `Default` answers entries without
    /// a command (blank and membership entries).
    type Reply: AppDataResponse + Default;
}

/// openraft's type configuration over the application's [`LogTypes`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct TypeConfig<L: LogTypes>(PhantomData<L>);

type LeaderIdOf = openraft::impls::leader_id_adv::LeaderId<u64, NodeId>;

impl<L: LogTypes> RaftTypeConfig for TypeConfig<L> {
    /// Shared: a log entry is read by apply and by every replication stream while it is
    /// also kept in memory (`recent`), and each read clones it.
    type D = Arc<L::Command>;
    type R = L::Reply;
    type NodeId = NodeId;
    type Node = NodeInfo;
    type Term = u64;
    type LeaderId = LeaderIdOf;
    type Vote = openraft::impls::Vote<LeaderIdOf>;
    type Payload = EntryPayload<Arc<L::Command>, NodeId, NodeInfo>;
    type Entry = openraft::Entry<
        <LeaderIdOf as openraft::vote::RaftLeaderId>::Committed,
        EntryPayload<Arc<L::Command>, NodeId, NodeInfo>,
    >;
    type AsyncRuntime = openraft::impls::TokioRuntime;
    type Responder<T>
        = openraft::impls::ProgressResponder<Self, T>
    where
        T: openraft::OptionalSend + 'static;
    type Batch<T>
        = openraft::impls::InlineBatch<T>
    where
        T: openraft::OptionalSend + 'static;
    type ErrorSource = openraft::impls::BoxedErrorSource;
}

pub type Raft<L> = openraft::Raft<TypeConfig<L>, super::state_machine::GroupStateMachine<L>>;
pub type Entry<L> = openraft::alias::EntryOf<TypeConfig<L>>;
pub type LogId<L> = openraft::alias::LogIdOf<TypeConfig<L>>;
pub type Vote<L> = openraft::alias::VoteOf<TypeConfig<L>>;
pub type StoredMembership<L> = openraft::alias::StoredMembershipOf<TypeConfig<L>>;
pub type SnapshotMeta<L> = openraft::alias::SnapshotMetaOf<TypeConfig<L>>;
