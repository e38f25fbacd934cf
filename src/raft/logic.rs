//! What a group does with its committed commands: the seam between Raft and the domain.
//!
//! The state machine adapter ([`GroupStateMachine`](super::state_machine::GroupStateMachine))
//! owns durability (one atomic batch per apply call, snapshots); a [`GroupLogic`] owns
//! meaning. The meta group and the shards each implement it, and the node chooses which
//! logic runs which group when it opens them.

use std::io;

use super::types::LogTypes;
use crate::store::txn::SmTxn;

pub trait GroupLogic<L: LogTypes>: Send + Sync + 'static {
    /// Applies one committed command to the batch `txn`: a pure function of the committed
    /// state and the command (no clock, no randomness), so every replica computes the
    /// same bytes. A refusal is an answer, not an error; an error stops the group.
    fn apply(&self, txn: &mut SmTxn, cmd: &L::Command) -> io::Result<L::Reply>;

    /// Called once per apply call after its batch `written` is in the state machine (for
    /// example to wake a worker about what it wrote). Must not block.
    fn after_commit(&self, _written: &SmTxn) {}
}
