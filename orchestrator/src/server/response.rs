//! The response envelope every route uses: `{"success", "data"?, "message"?}`.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;

/// The JSON envelope of every API response.
#[derive(Debug, Serialize)]
pub struct ApiResponse<T: Serialize> {
    /// Whether the request did what it asked.
    pub success: bool,
    /// The payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
    /// A human-readable message (always set on errors).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl<T: Serialize> ApiResponse<T> {
    /// A success with data.
    pub fn ok(data: T) -> Self {
        Self { success: true, data: Some(data), message: None }
    }
}

impl ApiResponse<()> {
    /// A failure with a message.
    pub fn error(message: impl Into<String>) -> Self {
        Self { success: false, data: None, message: Some(message.into()) }
    }
}

/// The answer to unknown routes.
pub async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "The requested resource was not found").into_response()
}

/// `(status, envelope)` as a response.
pub fn json<T: Serialize>(status: StatusCode, body: ApiResponse<T>) -> Response {
    (status, Json(body)).into_response()
}
