//! The stateless routes, `compile` and `validate`: a recipe in, an answer out, the work on
//! the engine runtime within the job time limit.

use super::*;
use crate::compile::compile_value;
use crate::run::deadline::AbortOnDrop;
use crate::run::validate_value;

/// Runs a stateless request's `work` on the engine runtime and waits for it. The work is
/// aborted when it outlives the job time limit (`504`) or when the request is dropped
/// because its client went away.
pub(super) async fn on_engine<T: Send + 'static>(
    state: &AppState,
    work: impl Future<Output = T> + Send + 'static,
) -> Result<T, ApiError> {
    let permit = state.engine.permit()?;
    let engine = state
        .engine
        .handle()
        .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the service is stopping"))?;
    let span = tracing::Span::current();
    let mut task = AbortOnDrop(
        engine.spawn(
            async move {
                let _permit = permit;
                work.await
            }
            .instrument(span),
        ),
    );
    match tokio::time::timeout(state.config.job_timeout, &mut task.0).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the work stopped unexpectedly: {e}"),
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the work took longer than {} s, the service's time limit, and was stopped",
                state.config.job_timeout.as_secs()
            ),
        )),
    }
}

/// Checks the caller and reads `{"recipe", "dialect"?, "sample_size"?}`.
pub(super) async fn engine_request(
    state: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(api::EngineRequest, Dialect), ApiError> {
    caller(state, headers).await?;
    let request: api::EngineRequest = read_request(body)?;
    let dialect = match &request.dialect {
        Some(d) => d.parse().map_err(|e: String| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("dialect: {e}"))
        })?,
        None => Dialect::Generic,
    };
    if request.sample_size == Some(0) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "sample_size: must be at least 1",
        ));
    }
    Ok((request, dialect))
}

/// The catalog as it is now. A catalog that does not load is the operator's to fix, not
/// the caller's: `503` with the reason.
pub(super) async fn current_catalog(state: &AppState) -> Result<Arc<Catalog>, ApiError> {
    state.catalog().await.map_err(|e| {
        tracing::error!(error = %e, "the catalog does not load");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the service's catalog cannot be read: {e}"),
        )
    })
}

pub(super) async fn compile_stateless(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (request, dialect) = engine_request(&state, &headers, &body).await?;
    let task_state = state.clone();
    let options = state.config.run.compile_options_in(dialect);
    let body = on_engine(&state, async move {
        let catalog = current_catalog(&task_state).await?;
        let compiled = compile_value(&request.recipe, &catalog, &options);
        Ok::<_, ApiError>(compiled.answer(&options))
    })
    .await??;
    let failed = body.sql.is_none();
    Ok(recipe_answer(failed, body))
}

/// `200` with the answer, or `422` with it when the recipe has errors: the caller's input
/// is what is wrong, and the diagnostics say where.
pub(super) fn recipe_answer(failed: bool, body: impl serde::Serialize) -> Response {
    let status = if failed {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    (status, Json(body)).into_response()
}

pub(super) async fn validate_stateless(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (request, dialect) = engine_request(&state, &headers, &body).await?;
    let task_state = state.clone();
    let mut options = state.config.run.clone();
    options.dialect = dialect;
    if let Some(n) = request.sample_size {
        options.validate.sample_size = n;
    }
    let (answer, failed) = on_engine(&state, async move {
        let catalog = current_catalog(&task_state).await?;
        Ok::<_, ApiError>(validate_value(&request.recipe, &catalog, &options).await)
    })
    .await??;
    Ok(recipe_answer(failed, answer))
}
