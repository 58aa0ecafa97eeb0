//! What every request passes through: its body read within a time limit, a JSON body for
//! every error, a correlation id on its log lines and answer, and its caller (the Bearer
//! token).

use super::*;

/// Reads the whole body before the handler runs, within `limit` (`408` otherwise) and
/// [`BODY_LIMIT`] (`413`): a client that sends its body slowly cannot hold a handler.
pub(super) async fn read_body_in_time(request: Request, next: Next, limit: Duration) -> Response {
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(limit, axum::body::to_bytes(body, BODY_LIMIT)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
        Ok(Err(_)) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body: larger than {BODY_LIMIT} bytes, the limit"),
        )
        .into_response(),
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("body: not received within {} s", limit.as_secs()),
        )
        .into_response(),
    }
}

/// Gives every error response a JSON body, `{"detail": …}`: axum's own rejections (a bad
/// query string, a body of the wrong content type) are plain text.
pub(super) async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let detail = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let mut error = ApiError::new(status, detail).into_response();
    for (name, value) in &parts.headers {
        if name != "content-type" && name != "content-length" {
            error.headers_mut().insert(name, value.clone());
        }
    }
    error
}

/// Echoes or creates `x-correlation-id` and runs the request inside a span carrying it.
pub(super) async fn correlation(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(|| Uuid::new_v4().to_string());
    if let Ok(value) = HeaderValue::from_str(&id) {
        request.headers_mut().insert("x-correlation-id", value);
    }
    let span = tracing::info_span!("request", correlation_id = %id, method = %request.method(), path = %request.uri().path());
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| tracing::info!(status = response.status().as_u16(), "answered"));
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-correlation-id", value);
    }
    response
}

pub(super) async fn caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let value = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing `Authorization: Bearer <token>`",
            )
        })?;
    // The scheme is case-insensitive (RFC 7235): `bearer` and `BEARER` are `Bearer`.
    let token = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim_start())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "the Authorization header must be `Bearer <token>`",
            )
        })?;
    state
        .config
        .jwt
        .verify(token.trim())
        .await
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, e))
}
