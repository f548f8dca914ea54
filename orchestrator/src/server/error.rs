//! One error type for every route: 4xx answers carry a message for the caller; 5xx answers
//! carry a generic message, and the real error travels to the logging middleware as a
//! response extension ([`InternalError`]), so it is logged once, with the request's trace id.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};

use super::response::{json, ApiResponse};
use crate::{core::client::DatabaseError, worker::EngineError};

/// The error detail of a 5xx answer, for the logging middleware only.
#[derive(Debug, Clone)]
pub struct InternalError(pub String);

/// Why a request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed: a bad id, parameter or value (400).
    #[error("{0}")]
    BadRequest(String),
    /// Admin route without a valid bearer token (401).
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// What the request names does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// Too many requests, or the priority queue is full (429).
    #[error("{0}")]
    TooManyRequests(String),
    /// Something failed inside (500); the detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result of a route handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A 400 naming the parameter and the rejected value (cut to 64 characters).
    pub fn invalid(param: &str, value: &str, why: impl std::fmt::Display) -> Self {
        let shown: String = value.chars().take(64).collect();
        Self::BadRequest(format!("invalid {param} {shown:?}: {why}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            Self::Internal(_) => "Internal server error; the server log has the details under this request's x-trace-id".to_owned(),
            other => other.to_string(),
        };
        let mut response = json(status, ApiResponse::error(message));
        match self {
            Self::Internal(detail) => {
                response.extensions_mut().insert(InternalError(detail));
            }
            Self::Unauthorized => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::TooManyRequests(_) => {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

impl From<DatabaseError> for ApiError {
    fn from(e: DatabaseError) -> Self {
        match e {
            DatabaseError::UpdateFailed { .. } => {
                Self::Conflict(format!("{e}; another worker changed it, read it again and retry"))
            }
            DatabaseError::NotFound { .. } => Self::NotFound(e.to_string()),
            DatabaseError::ItemAlreadyExists { .. } | DatabaseError::Conflict(_) => {
                Self::Conflict(e.to_string())
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::JobNotFound(_) => Self::NotFound(e.to_string()),
            // The reference answers 400 for an operation the job's status does not allow.
            EngineError::InvalidStatus { .. } => Self::BadRequest(e.to_string()),
            EngineError::NoHandler(_)
            | EngineError::MalformedMessage(_)
            | EngineError::Handler { .. } => Self::BadRequest(e.to_string()),
            EngineError::AlreadyExists { .. } => Self::Conflict(e.to_string()),
            EngineError::Database(db) => db.into(),
            EngineError::Panicked { .. } | EngineError::Queue(_) => Self::Internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::types::jobs::JobStatus;

    #[test]
    fn engine_errors_map_to_the_reference_statuses() {
        let id = Uuid::nil();
        let cases = [
            (ApiError::from(EngineError::JobNotFound(id)), StatusCode::NOT_FOUND),
            (
                EngineError::InvalidStatus {
                    id,
                    status: JobStatus::Created,
                    action: "retry",
                    expected: "Failed",
                }
                .into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                EngineError::Database(DatabaseError::UpdateFailed { id, version: 1 }).into(),
                StatusCode::CONFLICT,
            ),
            (
                EngineError::Database(DatabaseError::other("disk gone")).into(),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (err, status) in cases {
            assert_eq!(err.status(), status, "{err}");
        }
    }

    #[test]
    fn internal_errors_hide_the_detail_from_the_caller() {
        let response = ApiError::Internal("password=hunter2".into()).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let detail = response.extensions().get::<InternalError>().map(|e| e.0.clone());
        assert_eq!(detail.as_deref(), Some("password=hunter2"));
    }
}
