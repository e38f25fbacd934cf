//! Bulk actions on an app's schedules (delete or reconcile everything matching a time
//! range and status). A job is recorded in the meta group, so its progress can be read
//! through any node and a new meta leader resumes it from the last recorded cursor.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::schedule::page::Cursor;
use crate::schedule::Status;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BulkAction {
    /// Delete the matching schedules.
    Delete,
    /// Fire the matching finished runs again (new attempts, same run ids).
    Reconcile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum JobState {
    Running,
    Done,
}

/// A bulk job and how far it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkJob {
    pub job_id: Uuid,
    pub app_id: String,
    pub action: BulkAction,
    /// Time range (epoch seconds, inclusive) and status the schedules must match.
    pub start_time: i64,
    pub end_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    pub state: JobState,
    /// Schedules acted on so far.
    pub processed: u64,
    /// The last schedule acted on, in (time, id) order: the job resumes after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<Cursor>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}
