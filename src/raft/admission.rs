//! Which incarnation of each node this node talks to.
//!
//! Every message a node sends names its sender and the incarnation of the sender's data
//! dir, and every reply names the answering node's incarnation. A node whose data was lost
//! and that takes part anyway (its own guard bypassed or broken) has a new incarnation:
//! its peers refuse its votes, appends, snapshots and forwards — sent or answered — until
//! the cluster forgets it (`remove-node`) and it joins as a new node. Which incarnation the
//! cluster admitted is the domain's to say (the meta group's node registry); it is handed
//! in through [`Admissions::admit_only`].

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use uuid::Uuid;

use super::types::NodeId;

#[derive(Default)]
pub struct Admissions {
    /// This node's incarnation as sent ("" until its data dir's identity is known).
    mine: RwLock<String>,
    /// The incarnation admitted for each node the cluster has recorded, as sent.
    admitted: RwLock<HashMap<NodeId, String>>,
    /// Incarnations of nodes the cluster removed, as sent: refused for good.
    removed: RwLock<HashMap<NodeId, HashSet<String>>>,
}

impl Admissions {
    /// Sets this node's incarnation (sent with every message from now on).
    pub fn set_mine(&self, incarnation: Uuid) {
        *self.mine.write().expect("admissions lock") = incarnation.to_string();
    }

    /// This node's incarnation as sent on the wire ("" while unknown).
    pub fn mine(&self) -> String {
        self.mine.read().expect("admissions lock").clone()
    }

    /// Replaces the admitted incarnations with the cluster's current record.
    pub fn admit_only(&self, recorded: impl IntoIterator<Item = (NodeId, Uuid)>) {
        *self.admitted.write().expect("admissions lock") = recorded
            .into_iter()
            .map(|(node, incarnation)| (node, incarnation.to_string()))
            .collect();
    }

    /// Replaces the refused incarnations with the cluster's record of removed nodes.
    pub fn refuse(&self, removed: impl IntoIterator<Item = (NodeId, Uuid)>) {
        let mut refused: HashMap<NodeId, HashSet<String>> = HashMap::new();
        for (node, incarnation) in removed {
            refused
                .entry(node)
                .or_default()
                .insert(incarnation.to_string());
        }
        *self.removed.write().expect("admissions lock") = refused;
    }

    /// Whether node `node`, speaking as `incarnation`, may take part. A node the cluster
    /// has not recorded (new, or forgotten) and a message without an incarnation (a peer
    /// of an older version, or a node still reading its identity) are accepted.
    pub fn check(&self, node: NodeId, incarnation: &str) -> Result<(), String> {
        if incarnation.is_empty() {
            return Ok(());
        }
        let removed = self.removed.read().expect("admissions lock");
        if removed.get(&node).is_some_and(|r| r.contains(incarnation)) {
            return Err(format!(
                "node {node} (incarnation {incarnation}) was removed from the cluster: it may \
                 join again only with an empty data dir"
            ));
        }
        let admitted = self.admitted.read().expect("admissions lock");
        match admitted.get(&node) {
            Some(known) if known != incarnation => Err(format!(
                "node {node} speaks as incarnation {incarnation}, but the cluster admitted \
                 {known}: its data dir was replaced; remove it (`goschedctl remove-node`) and \
                 add it back"
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_admitted_incarnation_of_a_recorded_node_passes() {
        let a = Admissions::default();
        let (old, new) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert_eq!(a.mine(), "");
        a.set_mine(old);
        assert_eq!(a.mine(), old.to_string());
        // Nothing recorded yet: a new node is welcome.
        assert!(a.check(2, &new.to_string()).is_ok());
        a.admit_only([(2, old)]);
        assert!(a.check(2, &old.to_string()).is_ok());
        let refused = a.check(2, &new.to_string()).unwrap_err();
        assert!(refused.contains("remove-node"), "{refused}");
        assert!(a.check(2, "").is_ok(), "older peers send no incarnation");
        assert!(
            a.check(3, &new.to_string()).is_ok(),
            "node 3 is not recorded"
        );
        // Removed: its old incarnation is refused for good, a new one may join.
        a.admit_only([]);
        a.refuse([(2, old)]);
        assert!(a.check(2, &new.to_string()).is_ok());
        let removed = a.check(2, &old.to_string()).unwrap_err();
        assert!(removed.contains("was removed"), "{removed}");
    }
}
