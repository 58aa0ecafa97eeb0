//! The HTTP service: the contract's job API over the library's stages.
//!
//! Routes live under `/api/automl/feature-engineering` (plus `GET /healthz`):
//! `POST /jobs`, `GET /jobs`, `GET /jobs/{id}`, `POST /jobs/{id}/retry`,
//! `POST /jobs/{id}/approve`, `POST /jobs/{id}/materialize`, and the stateless
//! `POST /compile` and `POST /validate` for API backends.
//!
//! Long work (compile + validate, materialization) runs off the request path: the
//! response comes as soon as the job is stored as `running` (or `materializing`), and
//! `?wait=true` waits for the outcome instead, as the contract's retry example shows.
//! Every response carries `x-correlation-id` (the caller's, or a new one), and every log
//! line of the request carries it too. Errors are JSON: `{"detail": "…"}`, axum's own
//! (unknown route, wrong method, body too large, bad query string) included.
//!
//! Every request is bounded. Planning and running queries happen on an engine runtime
//! of their own, so the HTTP runtime keeps answering (`/healthz` among others) whatever
//! the engine does; at most [`Limits::max_jobs`] pieces of engine work run at once, and
//! more are refused with `503` and `Retry-After`. Work stops at the job time limit, and a
//! stateless request's work stops when its client goes away. Headers must arrive within
//! [`Limits::header_timeout`] (idle keep-alive connections are closed after it), bodies
//! within [`Limits::body_timeout`]; `GET /jobs` is paginated.

pub mod api;
pub mod auth;
mod jobs;
pub mod listen;
mod mcp;
mod middleware;
pub mod openapi;
mod stateless;
pub mod store;

use jobs::{approve_job, create_job, get_job, list_jobs, materialize_job, retry_job};
use middleware::{caller, correlation, json_errors, read_body_in_time};
use stateless::{compile_stateless, validate_stateless};

use crate::catalog::Catalog;
use crate::compile::compile_recipe;
use crate::compile::dialect::Dialect;
use crate::contract::job::{Job, JobStatus};
use crate::contract::recipe::recipe_from_value;
use crate::jobs::retry::{JobError, retry, retry_with_crew};
use crate::jobs::review::{CatalogIdentity, CatalogStamp, review_hash};
use crate::run::RunOptions;
use crate::run::materialize::stage;
use auth::Caller;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use store::Store;
use tracing::Instrument;
use uuid::Uuid;

/// Where the job API lives (one definition, shared with the OpenAPI document).
pub use openapi::PREFIX;

/// Request bodies larger than this are refused (413).
const BODY_LIMIT: usize = 2 * 1024 * 1024;
/// `GET /jobs` answers this many jobs a page unless `?limit=` asks otherwise.
pub const DEFAULT_PAGE: usize = 50;
/// The largest `?limit=` of `GET /jobs`.
pub const MAX_PAGE: usize = 500;

/// What the service needs to run.
#[derive(Clone)]
pub struct ServiceConfig {
    /// The catalog directory jobs read.
    pub catalog: PathBuf,
    /// Where materialized tables are written.
    pub warehouse: PathBuf,
    /// How they are written.
    pub table_format: crate::contract::job::TableFormat,
    /// How bearer tokens are verified.
    pub jwt: auth::Verifier,
    /// How jobs are compiled and validated.
    pub run: RunOptions,
    /// The longest a validation or materialization may run before the job fails.
    pub job_timeout: Duration,
    /// What one request may cost.
    pub limits: Limits,
    /// The external crew a retry runs instead of the built-in one.
    pub crew: Option<crate::jobs::crew::Crew>,
}

/// The bounds on what requests may cost.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Pieces of engine work (a job's run, a materialization, a stateless compile or
    /// validation) at once; more are refused with `503`. Each run may hold up to its
    /// `--memory-limit`.
    pub max_jobs: usize,
    /// Worker threads of the engine runtime.
    pub engine_threads: usize,
    /// A request's headers must arrive within this; an idle keep-alive connection is
    /// closed after it.
    pub header_timeout: Duration,
    /// A request's body must arrive within this (`408` otherwise).
    pub body_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Limits {
            max_jobs: cores,
            engine_threads: cores,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
        }
    }
}

struct AppState {
    config: ServiceConfig,
    store: Store,
    engine: Engine,
    tasks: tokio::sync::Mutex<tokio::task::JoinSet<()>>,
    /// The catalog as last loaded, with the stamp of its files then.
    catalog: tokio::sync::Mutex<Option<(CatalogStamp, Arc<Catalog>)>>,
    /// `true` once what stopped materializations left in the warehouse is tidied: a
    /// materialization waits for it, so that the tidying never takes its fresh run for a
    /// leftover.
    tidied: tokio::sync::watch::Receiver<bool>,
}

impl AppState {
    /// The catalog, loaded once and again only when its files changed (a file added,
    /// removed, or written: its inode, size, modification or change time moved).
    async fn catalog(&self) -> Result<Arc<Catalog>, String> {
        let stamp = CatalogStamp::of_location(&self.config.catalog)
            .await
            .map_err(|e| format!("cannot read the catalog {e}"))?;
        let mut cached = self.catalog.lock().await;
        if let Some((seen, catalog)) = cached.as_ref()
            && *seen == stamp
        {
            return Ok(catalog.clone());
        }
        let catalog = Arc::new(
            Catalog::load(&self.config.catalog)
                .await
                .map_err(|e| e.to_string())?,
        );
        *cached = Some((stamp, catalog.clone()));
        Ok(catalog)
    }
}

/// The runtime that plans and runs queries, apart from the one that answers HTTP, and the
/// permits that bound how much work it takes at once.
struct Engine {
    runtime: Option<tokio::runtime::Runtime>,
    permits: Arc<tokio::sync::Semaphore>,
    max_jobs: usize,
}

impl Engine {
    fn new(limits: &Limits) -> Result<Engine, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(limits.engine_threads.max(1))
            .thread_name("featurecraft-engine")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the engine runtime: {e}"))?;
        Ok(Engine {
            runtime: Some(runtime),
            permits: Arc::new(tokio::sync::Semaphore::new(limits.max_jobs.max(1))),
            max_jobs: limits.max_jobs.max(1),
        })
    }

    fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.runtime.as_ref().map(|r| r.handle())
    }

    /// A permit for one piece of engine work, or `503` when all are taken.
    fn permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        self.permits.clone().try_acquire_owned().map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the service is busy: {} jobs are running, its limit; retry in a few seconds",
                    self.max_jobs
                ),
            )
            .retry_after(5)
        })
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which an async context (where the service is dropped)
        // does not allow; its tasks were drained or are abandoned on purpose here.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

type Shared = Arc<AppState>;

/// An HTTP error with a JSON body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    detail: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            detail: detail.into(),
            retry_after: None,
        }
    }

    fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }
}

/// A request body read into `T`, the type the OpenAPI document shows for it, so the
/// document cannot drift from what the server reads: a field `T`'s schema requires that is
/// absent or null is `FIELD: required`; any other mismatch names its path
/// (`design.max_depth: invalid type …`); unknown fields are ignored, as FastAPI does.
fn read_request<T: serde::de::DeserializeOwned + schemars::JsonSchema>(
    body: &Bytes,
) -> Result<T, ApiError> {
    let unprocessable = |detail: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, detail);
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| unprocessable(format!("body: not valid JSON: {e}")))?;
    let Value::Object(fields) = &value else {
        return Err(unprocessable("body: expected a JSON object".into()));
    };
    let schema = schemars::schema_for!(T);
    let required = schema.get("required").and_then(Value::as_array);
    for name in required.into_iter().flatten().filter_map(Value::as_str) {
        if fields.get(name).is_none_or(Value::is_null) {
            return Err(unprocessable(format!("{name}: required")));
        }
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." { "body" } else { path.as_str() };
        unprocessable(format!("{at}: {}", e.inner()))
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = api::ErrorBody {
            detail: self.detail,
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(seconds));
        }
        response
    }
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> ApiError {
        tracing::error!(error = %e, "job store failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

/// Logs what [`crate::run::warehouse::clean_leftovers`] did.
fn log_leftovers(done: Vec<crate::run::warehouse::Leftover>) {
    use crate::run::warehouse::Leftover;
    for leftover in done {
        match leftover {
            Leftover::Removed(path) => {
                tracing::warn!(path = %path.display(), "removed what a stopped materialization left behind")
            }
            Leftover::Restored(path) => {
                tracing::warn!(path = %path.display(), "restored a table a stopped materialization had moved aside")
            }
        }
    }
}

/// Builds the service: opens and locks the store, fails jobs a dead process left running,
/// tidies what a crashed materialization left in the warehouse (restoring a table moved
/// aside), and returns
/// the router and a handle to wait for background jobs on shutdown.
pub fn service(config: ServiceConfig, db: &Path) -> Result<(Router, ServiceHandle), String> {
    // Opening the store takes its lock for the process's life: a second service on the
    // same file stops here, before it could fail the first one's running jobs.
    let store = Store::open(db).map_err(|e| e.to_string())?;
    // On an object store the tidying takes requests: it runs beside the first requests,
    // and a materialization waits for it to end (`AppState::tidied`).
    use crate::catalog::storage::Location;
    use crate::run::warehouse::{clean_local_leftovers, clean_object_leftovers};
    let (tidying, tidied) = tokio::sync::watch::channel(false);
    match Location::parse(&config.warehouse) {
        Ok(Location::Object(warehouse)) => {
            tokio::spawn(async move {
                log_leftovers(clean_object_leftovers(&warehouse).await);
                let _ = tidying.send(true);
            });
        }
        Ok(Location::Local(warehouse)) => {
            log_leftovers(clean_local_leftovers(&warehouse));
            let _ = tidying.send(true);
        }
        Err(_) => {
            let _ = tidying.send(true);
        }
    }
    let orphans = store
        .fail_orphans("the service stopped while this job was running; retry it")
        .map_err(|e| e.to_string())?;
    if orphans > 0 {
        tracing::warn!(
            orphans,
            "jobs left running by a stopped service were marked failed"
        );
    }
    let engine = Engine::new(&config.limits)?;
    let body_timeout = config.limits.body_timeout;
    let state = Arc::new(AppState {
        config,
        store,
        engine,
        tasks: tokio::sync::Mutex::new(tokio::task::JoinSet::new()),
        catalog: tokio::sync::Mutex::new(None),
        tidied,
    });
    let api = Router::new()
        .route("/jobs", post(create_job).get(list_jobs))
        .route("/jobs/{job_id}", get(get_job))
        .route("/jobs/{job_id}/retry", post(retry_job))
        .route("/jobs/{job_id}/approve", post(approve_job))
        .route("/jobs/{job_id}/materialize", post(materialize_job))
        .route("/compile", post(compile_stateless))
        .route("/validate", post(validate_stateless));
    let router = Router::new()
        .route(
            "/healthz",
            get(|| async {
                Json(api::Health {
                    status: "ok".into(),
                })
            }),
        )
        .route("/openapi.json", get(|| async { Json(openapi::document()) }))
        .nest(PREFIX, api)
        .merge(
            Router::new()
                .route_service("/mcp", mcp::service(state.clone()))
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    mcp::require_caller,
                )),
        )
        .fallback(|request: Request| async move {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no route {} {}", request.method(), request.uri().path()),
            )
        })
        .method_not_allowed_fallback(|request: Request| async move {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "{} is not allowed on {}",
                    request.method(),
                    request.uri().path()
                ),
            )
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(move |request, next| {
            read_body_in_time(request, next, body_timeout)
        }))
        .layer(axum::middleware::from_fn(json_errors))
        .layer(axum::middleware::from_fn(correlation))
        .with_state(state.clone());
    Ok((router, ServiceHandle { state }))
}

/// Lets the caller wait for background jobs when the service stops.
pub struct ServiceHandle {
    state: Shared,
}

impl ServiceHandle {
    /// Waits for every background job to finish (they fail cleanly on their time limit).
    pub async fn drain(&self) {
        let mut tasks = self.state.tasks.lock().await;
        while tasks.join_next().await.is_some() {}
    }
}
