//! The response envelope of the original API, and the one place errors become HTTP.
//!
//! Success: HTTP 200 with `{"status":{statusCode,statusMessage:"Success",statusType:"Success",
//! totalCount},"data":...}` (statusCode 201 for creations, as the wiki shows).
//! Failure: `{"status":{statusCode,statusMessage,statusType:"Fail"}}` with the HTTP status
//! of the code (4001–4003 and 5001 are 400s).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::command::{RejectReason, Rejection};
use crate::router::{CallError, GroupError};

/// The `status` block of every reply.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusBlock {
    /// An HTTP code or one of the API's own (4001–4003, 5001).
    pub status_code: u16,
    pub status_message: String,
    /// `Success` or `Fail`.
    pub status_type: String,
    /// Items in this reply (successes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_count: Option<usize>,
}

impl StatusBlock {
    pub fn success(code: u16, count: usize) -> Self {
        StatusBlock {
            status_code: code,
            status_message: "Success".into(),
            status_type: "Success".into(),
            total_count: Some(count),
        }
    }
}

/// A successful reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    pub status: StatusBlock,
    pub data: T,
}

/// A failed reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct Failure {
    pub status: StatusBlock,
}

/// A successful reply whose statusMessage says what happened (as GoScheduler's newer
/// endpoints do, e.g. "Schedule paused successfully").
pub fn ok_saying<T: Serialize>(message: &str, data: T) -> Response {
    let mut status = StatusBlock::success(200, 1);
    status.status_message = message.to_string();
    (StatusCode::OK, Json(Envelope { status, data })).into_response()
}

/// A successful reply: `code` is the body's statusCode (200 or 201), `count` its totalCount.
pub fn ok<T: Serialize>(code: u16, count: usize, data: T) -> Response {
    let body = Envelope {
        status: StatusBlock::success(code, count),
        data,
    };
    (StatusCode::OK, Json(body)).into_response()
}

/// A failed request, rendered in the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The body's statusCode: an HTTP code or one of the API's own (4001, 4002, 4003, 5001).
    pub code: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(code: u16, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(404, message)
    }

    /// A body that is not JSON of the expected shape.
    pub fn unparsable(e: impl std::fmt::Display) -> Self {
        ApiError::new(5001, format!("invalid request body: {e}"))
    }

    pub fn http_status(&self) -> StatusCode {
        match self.code {
            4001..=4003 | 5001 => StatusCode::BAD_REQUEST,
            c => StatusCode::from_u16(c).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.http_status();
        let body = Failure {
            status: StatusBlock {
                status_code: self.code,
                status_message: self.message,
                status_type: "Fail".into(),
                total_count: None,
            },
        };
        (status, Json(body)).into_response()
    }
}

/// A command apply refused, with the API code of its reason.
impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        let code = match r.reason {
            RejectReason::UnregisteredApp => 4001,
            RejectReason::AlreadyDeactivated => 4002,
            RejectReason::AlreadyActivated => 4003,
            RejectReason::Conflict => 400,
            RejectReason::NotFound => 404,
            RejectReason::KeyReused => 422,
            RejectReason::KeySpent => 409,
            RejectReason::TooMany => 429,
            RejectReason::WrongState => 422,
        };
        ApiError::new(code, r.message)
    }
}

/// A body the framework refused to read (too large, broken stream) keeps its status.
impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(r: axum::extract::rejection::BytesRejection) -> Self {
        ApiError::new(
            r.status().as_u16(),
            format!("invalid request body: {}", r.body_text()),
        )
    }
}

/// A query string that does not parse into the endpoint's parameters.
impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::bad_request(format!("invalid query parameters: {}", r.body_text()))
    }
}

impl From<GroupError> for ApiError {
    fn from(e: GroupError) -> Self {
        match e {
            GroupError::NotLeader { .. } | GroupError::Unavailable(_) => {
                ApiError::new(503, format!("cluster unavailable, retry later: {e}"))
            }
            GroupError::Indeterminate(m) => ApiError::new(503, m),
            GroupError::Refused(m) => ApiError::new(409, m),
            GroupError::Internal(m) => ApiError::new(500, format!("internal error: {m}")),
        }
    }
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Group(e) => e.into(),
            CallError::Rejected(r) => r.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_codes_map_to_http_statuses() {
        assert_eq!(
            ApiError::new(4001, "x").http_status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            ApiError::unparsable("x").http_status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            ApiError::not_found("x").http_status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            ApiError::new(503, "x").http_status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            ApiError::new(9999, "x").http_status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
