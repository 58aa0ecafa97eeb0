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
pub mod listen;
pub mod openapi;
pub mod store;

use crate::catalog::Catalog;
use crate::compile::dialect::Dialect;
use crate::compile::{CompileOptions, compile_recipe};
use crate::contract::job::{Job, JobStatus};
use crate::contract::recipe::recipe_from_value;
use crate::jobs::retry::{JobError, retry};
use crate::jobs::review::{CatalogIdentity, CatalogStamp, review_hash};
use crate::run::materialize::stage;
use crate::run::{RunOptions, run_recipe};
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
    /// How bearer tokens are verified.
    pub jwt: auth::Verifier,
    /// How jobs are compiled and validated.
    pub run: RunOptions,
    /// The longest a validation or materialization may run before the job fails.
    pub job_timeout: Duration,
    /// What one request may cost.
    pub limits: Limits,
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
}

impl AppState {
    /// The catalog, loaded once and again only when its files changed (a file added,
    /// removed, or written: its inode, size, modification or change time moved).
    async fn catalog(&self) -> Result<Arc<Catalog>, String> {
        let root = self.config.catalog.clone();
        let stamp = tokio::task::spawn_blocking(move || CatalogStamp::of(&root))
            .await
            .map_err(|e| format!("cannot read the catalog: {e}"))?
            .map_err(|e| {
                format!(
                    "cannot read the catalog {}: {e}",
                    self.config.catalog.display()
                )
            })?;
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

/// Aborts a spawned task when dropped: the request that waited for it is gone.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
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

/// Builds the service: opens and locks the store, fails jobs a dead process left running,
/// tidies what a crashed materialization left in the warehouse (restoring a table moved
/// aside), and returns
/// the router and a handle to wait for background jobs on shutdown.
pub fn service(config: ServiceConfig, db: &Path) -> Result<(Router, ServiceHandle), String> {
    // Opening the store takes its lock for the process's life: a second service on the
    // same file stops here, before it could fail the first one's running jobs.
    let store = Store::open(db).map_err(|e| e.to_string())?;
    use crate::run::materialize::{Leftover, clean_leftovers};
    for leftover in clean_leftovers(&config.warehouse) {
        match leftover {
            Leftover::Removed(path) => {
                tracing::warn!(path = %path.display(), "removed what a stopped materialization left behind")
            }
            Leftover::Restored(path) => {
                tracing::warn!(path = %path.display(), "restored a table a stopped materialization had moved aside")
            }
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

/// Reads the whole body before the handler runs, within `limit` (`408` otherwise) and
/// [`BODY_LIMIT`] (`413`): a client that sends its body slowly cannot hold a handler.
async fn read_body_in_time(request: Request, next: Next, limit: Duration) -> Response {
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
async fn json_errors(request: Request, next: Next) -> Response {
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
async fn correlation(mut request: Request, next: Next) -> Response {
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

async fn caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
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

fn job_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("job_id: `{text}` is not a UUID"),
        )
    })
}

/// The job, if the caller may see it; 404 otherwise (others' jobs are not revealed).
fn visible_job(state: &AppState, caller: &Caller, id: Uuid) -> Result<store::StoredJob, ApiError> {
    match state.store.get(id)? {
        Some(stored) if caller.admin || stored.job.owner == caller.subject => Ok(stored),
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, format!("no job {id}"))),
    }
}

#[derive(Deserialize)]
struct WaitParam {
    #[serde(default)]
    wait: bool,
}

/// `?wait=true` as elsewhere; `?fix=true` applies the recipe's machine-applicable fixes
/// (recorded in its notes) before the retry.
#[derive(Deserialize)]
struct RetryParams {
    #[serde(default)]
    wait: bool,
    #[serde(default)]
    fix: bool,
}

fn parse_body(body: &Bytes) -> Result<serde_json::Map<String, Value>, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("body: not valid JSON: {e}"),
        )
    })?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "body: expected a JSON object",
        )),
    }
}

fn string_field(
    body: &serde_json::Map<String, Value>,
    field: &str,
) -> Result<Option<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{field}: expected a non-empty string"),
        )),
    }
}

async fn create_job(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(wait): Query<WaitParam>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers).await?;
    let body = parse_body(&body)?;
    let target = string_field(&body, "target_table_name")?.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "target_table_name: required",
        )
    })?;
    let domain = string_field(&body, "domain")?
        .ok_or_else(|| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "domain: required"))?;
    for (field, value) in [("target_table_name", &target), ("domain", &domain)] {
        if let Some(why) = crate::compile::analyze::name_problem(value) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "{field}: `{}` {why}",
                    crate::compile::analyze::shown_name(value)
                ),
            ));
        }
    }
    let owner = string_field(&body, "owner")?.unwrap_or_else(|| caller.subject.clone());
    if owner != caller.subject && !caller.admin {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "owner: must be the caller (the token's `sub`)",
        ));
    }
    let recipe = match body.get("recipe") {
        None | Some(Value::Null) => None,
        Some(value) => {
            let parsed = recipe_from_value(value);
            match parsed.recipe {
                Some(recipe) => Some(recipe),
                None => {
                    let first = parsed.diagnostics.iter().find(|d| d.is_error());
                    let detail = first.map_or("recipe: malformed".to_string(), |d| {
                        format!(
                            "recipe.{}: {}",
                            d.path_text().unwrap_or_default(),
                            d.message
                        )
                    });
                    return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, detail));
                }
            }
        }
    };
    let design = match body.get("design") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            serde_json::from_value::<crate::contract::design::DesignRequest>(value.clone())
                .map_err(|e| {
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("design: {e}"))
                })?,
        ),
    };
    let mut job = Job::new(target, domain, owner, recipe);
    job.design = design;
    let start = || {
        state.store.insert(&job)?;
        tracing::info!(job_id = %job.job_id, "job created");
        Ok(job)
    };
    let reason = timed_out(&state);
    let timed_out = move |job: &Job| {
        let mut failed = job.clone();
        let _ = crate::jobs::retry::record_proposal(&mut failed, Err(reason));
        failed
    };
    run_job(
        &state,
        start,
        run_new_job,
        timed_out,
        wait.wait,
        StatusCode::CREATED,
    )
    .await
}

/// A new job's compile + validation (designing its recipe first when it came with a
/// design request instead), recorded as a retry would record it.
async fn run_new_job(state: Shared, job: Job) -> Outcome {
    let mut done = job.clone();
    let identity = catalog_identity(&state).await;
    let outcome = match &identity {
        Ok(_) => proposal(&state, &job).await,
        Err(e) => Err(JobError::Catalog(e.clone())),
    };
    let _ = crate::jobs::retry::record_proposal(&mut done, outcome);
    Outcome {
        job: done,
        identity: identity.ok(),
    }
}

/// The catalog's content identity, taken before a run reads it: what an approval of the
/// run's outcome binds to (a change during the run then shows at approval).
async fn catalog_identity(state: &AppState) -> Result<CatalogIdentity, String> {
    let root = state.config.catalog.clone();
    tokio::task::spawn_blocking(move || CatalogIdentity::of(&root))
        .await
        .map_err(|e| format!("cannot read the catalog: {e}"))?
        .map_err(|e| {
            format!(
                "cannot read the catalog {}: {e}",
                state.config.catalog.display()
            )
        })
}

/// The job's recipe (or a designed one), compiled and validated against the catalog as it
/// is now; `Err` when there was nothing to run (no catalog, no recipe).
async fn proposal(
    state: &AppState,
    job: &Job,
) -> Result<
    (
        crate::contract::recipe::FeatureRecipe,
        crate::run::RecipeRun,
    ),
    JobError,
> {
    let catalog = state.catalog().await.map_err(JobError::Catalog)?;
    crate::jobs::retry::propose_for_job(job, &catalog, &state.config.run).await
}

/// Why a job stopped at the service's time limit.
fn timed_out(state: &AppState) -> JobError {
    JobError::TimedOut {
        seconds: state.config.job_timeout.as_secs(),
    }
}

/// Stores a run's outcome if the job is still `expected`. A proposal ready for review
/// records what it was computed from: the recipe, the SQL and `identity`, the catalog
/// read by the run.
fn store_outcome(
    state: &AppState,
    job: &Job,
    expected: JobStatus,
    identity: Option<&CatalogIdentity>,
) {
    let review = match (job.status, &job.recipe, &job.sql, identity) {
        (JobStatus::PendingApproval, Some(recipe), Some(sql), Some(identity)) => {
            Some((review_hash(recipe, sql, identity), identity.to_text()))
        }
        _ => None,
    };
    let result = match &review {
        Some((hash, files)) => state
            .store
            .update_with_review(job, expected, Some((hash, files))),
        None => state.store.update(job, expected),
    };
    match result {
        Ok(true) => {
            tracing::info!(job_id = %job.job_id, status = job.status.as_str(), "job updated")
        }
        Ok(false) => {
            tracing::warn!(job_id = %job.job_id, "job moved on before its outcome was stored")
        }
        Err(e) => {
            tracing::error!(job_id = %job.job_id, error = %e, "cannot store the job's outcome")
        }
    }
}

/// What a job's run produced: the job to store, and the catalog identity the run read
/// (what an approval of its proposal binds to).
struct Outcome {
    job: Job,
    identity: Option<CatalogIdentity>,
}

/// The one way a job runs (create, retry, materialize): a permit (`503` when the engine
/// is busy); `start` stores the job in the status its run begins in (`409` when another
/// request moved it first); `work` runs on the engine runtime within the service's job
/// time limit — past it the job fails as `timed_out` says; the outcome is stored if the job
/// is still in that status; then the answer, at once or, with `wait`, once the work is done.
async fn run_job<Fut>(
    state: &Shared,
    start: impl FnOnce() -> Result<Job, ApiError>,
    work: impl FnOnce(Shared, Job) -> Fut + Send + 'static,
    timed_out: impl FnOnce(&Job) -> Job + Send + 'static,
    wait: bool,
    status: StatusCode,
) -> Result<Response, ApiError>
where
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let permit = state.engine.permit()?;
    let job = start()?;
    let began = job.clone();
    let task_state = state.clone();
    let task = spawn(state, permit, async move {
        // Built here, on the engine runtime, and on the heap: a run's future is large.
        let work = Box::pin(work(task_state.clone(), began.clone()));
        let outcome = match tokio::time::timeout(task_state.config.job_timeout, work).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome {
                job: timed_out(&began),
                identity: None,
            },
        };
        store_outcome(
            &task_state,
            &outcome.job,
            began.status,
            outcome.identity.as_ref(),
        );
    })
    .await?;
    respond(state, job, task, wait, status).await
}

/// Spawns a job's work on the engine runtime, in the current span, holding `permit` until
/// it is done; returns a receiver that fires when done. The work ends at the job time
/// limit by its own timeout; it goes on if the client leaves, as the job is stored.
async fn spawn(
    state: &AppState,
    permit: tokio::sync::OwnedSemaphorePermit,
    work: impl Future<Output = ()> + Send + 'static,
) -> Result<tokio::sync::oneshot::Receiver<()>, ApiError> {
    let engine = state
        .engine
        .handle()
        .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the service is stopping"))?;
    let (done, finished) = tokio::sync::oneshot::channel();
    let span = tracing::Span::current();
    let mut tasks = state.tasks.lock().await;
    // Reap finished jobs so the set holds only running ones.
    while tasks.try_join_next().is_some() {}
    tasks.spawn_on(
        async move {
            let _permit = permit;
            work.await;
            let _ = done.send(());
        }
        .instrument(span),
        engine,
    );
    Ok(finished)
}

/// Runs a stateless request's `work` on the engine runtime and waits for it. The work is
/// aborted when it outlives the job time limit (`504`) or when the request is dropped
/// because its client went away.
async fn on_engine<T: Send + 'static>(
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

/// Answers with the job as stored when the work started, or, with `wait`, as it is once
/// the work is done.
async fn respond(
    state: &AppState,
    job: Job,
    task: tokio::sync::oneshot::Receiver<()>,
    wait: bool,
    status: StatusCode,
) -> Result<Response, ApiError> {
    if !wait {
        return Ok((status, Json(job)).into_response());
    }
    let _ = task.await;
    let current = state.store.get(job.job_id)?.map(|s| s.job).unwrap_or(job);
    Ok((status, Json(current)).into_response())
}

async fn get_job(
    State(state): State<Shared>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Job>, ApiError> {
    let caller = caller(&state, &headers).await?;
    Ok(Json(visible_job(&state, &caller, job_id(&id)?)?.job))
}

#[derive(Deserialize)]
struct PageParams {
    limit: Option<usize>,
    cursor: Option<String>,
}

/// The caller's jobs (every job for an admin), newest first, [`DEFAULT_PAGE`] at a time
/// (`?limit=` up to [`MAX_PAGE`]). The body is the contract's array of jobs; when more
/// follow, `x-next-cursor` holds the cursor to pass as `?cursor=` and `link` the next
/// page's path (`rel="next"`).
async fn list_jobs(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(page): Query<PageParams>,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers).await?;
    let limit = page.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("limit: must be between 1 and {MAX_PAGE}"),
        ));
    }
    let after = match &page.cursor {
        None => None,
        Some(token) => Some(store::PageCursor::decode(token).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "cursor: not a cursor this service gave (take it from x-next-cursor)",
            )
        })?),
    };
    let owner = (!caller.admin).then_some(caller.subject.as_str());
    let (jobs, next) = state.store.page(owner, limit, after)?;
    let mut response = Json(jobs).into_response();
    if let Some(next) = next {
        let token = next.encode();
        let link = format!("<{PREFIX}/jobs?limit={limit}&cursor={token}>; rel=\"next\"");
        for (name, value) in [("x-next-cursor", token), ("link", link)] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
    }
    Ok(response)
}

async fn retry_job(
    State(state): State<Shared>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Query(params): Query<RetryParams>,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers).await?;
    let stored = visible_job(&state, &caller, job_id(&id)?)?;
    let failed = stored.job;
    // Of two concurrent retries, only one moves the job out of `failed`.
    let current = failed.clone();
    let start = || claim(&state, &current, JobStatus::Running, "retry");
    let work = move |state: Shared, running: Job| async move {
        let identity = catalog_identity(&state).await;
        let catalog = match &identity {
            Ok(_) => state.catalog().await,
            Err(e) => Err(e.clone()),
        };
        let job = match catalog {
            Ok(catalog) => {
                let failed = if params.fix {
                    let options = state.config.run.compile_options();
                    crate::author::fix::fix_job(&failed, &catalog, &options).0
                } else {
                    failed
                };
                match retry(&failed, &catalog, &state.config.run).await {
                    Ok(job) => job,
                    Err(e) => failed_run(&running, e.to_string()),
                }
            }
            Err(e) => failed_run(&running, e),
        };
        Outcome {
            job,
            identity: identity.ok(),
        }
    };
    let reason = timed_out(&state).to_string();
    let timed_out = move |running: &Job| failed_run(running, reason);
    run_job(&state, start, work, timed_out, params.wait, StatusCode::OK).await
}

/// Moves a job to `next` as one compare-and-set in the store: 409 when the lifecycle does
/// not allow the move from the job's status, or when another request moved it first.
fn claim(state: &AppState, job: &Job, next: JobStatus, action: &str) -> Result<Job, ApiError> {
    let mut moved = job.clone();
    if moved.transition(next).is_err() {
        return Err(conflict_status(job, action, next));
    }
    if !state.store.update(&moved, job.status)? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("cannot {action} the job: another request changed it first"),
        ));
    }
    Ok(moved)
}

/// `running` → `failed` with `reason`: a run that ended before it produced an outcome.
fn failed_run(running: &Job, reason: String) -> Job {
    let mut failed = running.clone();
    failed.error = Some(reason);
    if failed.transition(JobStatus::Failed).is_err() {
        tracing::error!(job_id = %running.job_id, status = running.status.as_str(), "a job that is not running cannot fail its run");
    }
    failed
}

/// 409 for an `action` the job's status does not allow, naming the statuses it needs (the
/// ones from which the lifecycle allows the move).
fn conflict_status(job: &Job, action: &str, next: JobStatus) -> ApiError {
    let needs: Vec<&str> = JobStatus::ALL
        .iter()
        .filter(|s| s.can_become(next))
        .map(|s| s.as_str())
        .collect();
    ApiError::new(
        StatusCode::CONFLICT,
        format!(
            "cannot {action} a job that is {}: it must be {}",
            job.status.as_str(),
            needs.join(" or ")
        ),
    )
}

async fn approve_job(
    State(state): State<Shared>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Job>, ApiError> {
    let caller = caller(&state, &headers).await?;
    let stored = visible_job(&state, &caller, job_id(&id)?)?;
    if !stored.job.status.can_become(JobStatus::Approved) {
        return Err(conflict_status(&stored.job, "approve", JobStatus::Approved));
    }
    still_as_reviewed(&state, &stored, "approval").await?;
    Ok(Json(claim(
        &state,
        &stored.job,
        JobStatus::Approved,
        "approve",
    )?))
}

/// Checks that the job's recipe, SQL and the catalog's contents are those its review
/// recorded; otherwise a 409 naming the catalog files added, removed or changed.
async fn still_as_reviewed(
    state: &AppState,
    stored: &store::StoredJob,
    action: &str,
) -> Result<(), ApiError> {
    let now = catalog_identity(state)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e))?;
    match reviewed_changes(stored, &now) {
        None => Ok(()),
        Some(changes) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "{action} refused: the catalog changed since this job was validated ({changes}), so the reviewed SQL may no longer mean the same; retry the job to validate it anew"
            ),
        )),
    }
}

/// What differs from the job's review, if anything: the catalog files, or the recipe/SQL.
fn reviewed_changes(stored: &store::StoredJob, now: &CatalogIdentity) -> Option<String> {
    let job = &stored.job;
    let current = job
        .recipe
        .as_ref()
        .zip(job.sql.as_ref())
        .map(|(recipe, sql)| review_hash(recipe, sql, now));
    if current.is_some() && current == stored.reviewed_hash {
        return None;
    }
    let reviewed = CatalogIdentity::from_text(stored.reviewed_files.as_deref().unwrap_or(""));
    let changes = now.changes_since(&reviewed);
    Some(if changes.is_empty() {
        "the recipe or SQL differs from the reviewed one".into()
    } else {
        changes.join(", ")
    })
}

async fn materialize_job(
    State(state): State<Shared>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Query(wait): Query<WaitParam>,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers).await?;
    let stored = visible_job(&state, &caller, job_id(&id)?)?;
    if !stored.job.status.can_become(JobStatus::Materializing) {
        return Err(conflict_status(
            &stored.job,
            "materialize",
            JobStatus::Materializing,
        ));
    }
    still_as_reviewed(&state, &stored, "materialization").await?;
    let replaces_any = caller.admin;
    if !replaces_any && let Some(owner) = another_publisher(&state, &stored.job)? {
        return Err(ApiError::new(StatusCode::CONFLICT, owner));
    }
    let current = stored.job.clone();
    let start = || claim(&state, &current, JobStatus::Materializing, "materialize");
    let work = move |state: Shared, running: Job| async move {
        let mut done = running;
        match materialize_recipe(&state, &stored, replaces_any).await {
            Ok(written) => {
                tracing::info!(job_id = %done.job_id, rows = written.rows, "materialized");
                done.materialized = Some(crate::contract::job::MaterializedTable {
                    location: written.path.display().to_string(),
                    rows: written.rows,
                });
                let _ = done.transition(JobStatus::Complete);
            }
            Err(reason) => {
                done.error = Some(reason);
                let _ = done.transition(JobStatus::Failed);
            }
        }
        Outcome {
            job: done,
            identity: None,
        }
    };
    let timed_out = |running: &Job| {
        let mut failed = running.clone();
        failed.error = Some("materialization took longer than the service's time limit".into());
        let _ = failed.transition(JobStatus::Failed);
        failed
    };
    run_job(&state, start, work, timed_out, wait.wait, StatusCode::OK).await
}

/// Why `job` may not publish its table: another owner published it (the newest complete
/// job that wrote `domain.table`), naming them and their job; `None` when it may.
fn another_publisher(state: &AppState, job: &Job) -> Result<Option<String>, ApiError> {
    let publisher = state.store.publisher(&job.domain, &job.target_table_name)?;
    Ok(publisher
        .filter(|(owner, _)| *owner != job.owner)
        .map(|(owner, id)| {
            format!(
                "table `{}.{}` was published by {owner} (job {id}); only its owner or an admin (scope automl:admin) may replace it",
                job.domain, job.target_table_name
            )
        }))
}

/// Runs the approved job's CTAS into the warehouse. The recipe must still compile to the
/// approved SQL, and the catalog must be the approved one when the table is published:
/// a change while the query ran discards the written table. Unless `replaces_any` (an
/// admin's request), a table another owner published meanwhile is not replaced.
async fn materialize_recipe(
    state: &AppState,
    approved: &store::StoredJob,
    replaces_any: bool,
) -> Result<crate::run::materialize::Materialized, String> {
    let job = &approved.job;
    let recipe = job.recipe.as_ref().ok_or("the job has no recipe")?;
    let catalog = state.catalog().await?;
    let compiled = compile_recipe(recipe, &catalog, &state.config.run.compile_options());
    let plan = compiled.plan.ok_or_else(|| {
        let run = crate::run::RecipeRun {
            sql: None,
            validation: None,
            diagnostics: compiled.diagnostics,
            leaks: Vec::new(),
        };
        run.error_paragraph()
            .unwrap_or_else(|| "the recipe no longer compiles".into())
    })?;
    if compiled.sql != job.sql {
        return Err(
            "the recipe no longer compiles to the approved SQL; retry the job to review it anew"
                .into(),
        );
    }
    let staged = stage(
        &plan,
        &catalog,
        &state.config.warehouse,
        &job.domain,
        &job.target_table_name,
        &state.config.run.validate,
    )
    .await
    .map_err(|d| format!("{}: {}", d.code.as_str(), d.message))?;
    let now = catalog_identity(state).await?;
    if let Some(changes) = reviewed_changes(approved, &now) {
        return Err(format!(
            "the catalog changed while the table was written ({changes}); nothing was published"
        ));
    }
    if !replaces_any && let Some(owner) = another_publisher(state, job).map_err(|e| e.detail)? {
        return Err(format!("{owner}; nothing was published"));
    }
    staged
        .publish()
        .map_err(|d| format!("{}: {}", d.code.as_str(), d.message))
}

/// Checks the caller and reads `{"recipe", "dialect"?, "sample_size"?}`.
async fn engine_request(
    state: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(api::EngineRequest, Dialect), ApiError> {
    caller(state, headers).await?;
    let request: api::EngineRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("body: {e}")))?;
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
async fn current_catalog(state: &AppState) -> Result<Arc<Catalog>, ApiError> {
    state.catalog().await.map_err(|e| {
        tracing::error!(error = %e, "the catalog does not load");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the service's catalog cannot be read: {e}"),
        )
    })
}

async fn compile_stateless(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (request, dialect) = engine_request(&state, &headers, &body).await?;
    let task_state = state.clone();
    let options = CompileOptions {
        strict: state.config.run.strict,
        ..CompileOptions::for_dialect(dialect)
    };
    let answer = on_engine(&state, async move {
        let catalog = current_catalog(&task_state).await?;
        let parsed = recipe_from_value(&request.recipe);
        let mut diagnostics = parsed.diagnostics;
        let mut sql = None;
        if let Some(recipe) = parsed.recipe {
            let compiled = compile_recipe(&recipe, &catalog, &options);
            diagnostics.extend(compiled.diagnostics);
            sql = compiled.sql;
        }
        Ok::<_, ApiError>((sql, diagnostics))
    })
    .await??;
    let (sql, diagnostics) = answer;
    // The CLI's `compile --format json` shape: the printed SQL has been read back in the
    // dialect's grammar (compile withholds it otherwise).
    let reparsed = sql.as_ref().map(|_| api::Reparsed { ok: true });
    let failed = diagnostics
        .iter()
        .any(crate::diagnostic::Diagnostic::is_error);
    let body = api::CompileAnswer {
        dialect: dialect.name().into(),
        sql,
        reparsed,
        diagnostics,
    };
    Ok(recipe_answer(failed, body))
}

/// `200` with the answer, or `422` with it when the recipe has errors: the caller's input
/// is what is wrong, and the diagnostics say where.
fn recipe_answer(failed: bool, body: impl serde::Serialize) -> Response {
    let status = if failed {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    (status, Json(body)).into_response()
}

async fn validate_stateless(
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
    let (failed, answer) = on_engine(&state, async move {
        let catalog = current_catalog(&task_state).await?;
        let parsed = recipe_from_value(&request.recipe);
        let Some(recipe) = parsed.recipe else {
            let body = api::ValidateAnswer {
                sql: None,
                validation: None,
                diagnostics: parsed.diagnostics,
            };
            return Ok((true, body));
        };
        let run = run_recipe(&recipe, &catalog, &options).await;
        // A recipe that does not compile is the caller's to fix (422); one that compiled
        // but failed on the data answers 200 with the runtime error among its diagnostics.
        let failed = run.sql.is_none() && run.has_errors();
        let mut diagnostics = parsed.diagnostics;
        diagnostics.extend(run.diagnostics);
        Ok::<_, ApiError>((
            failed,
            api::ValidateAnswer {
                sql: run.sql,
                validation: run.validation,
                diagnostics,
            },
        ))
    })
    .await??;
    Ok(recipe_answer(failed, answer))
}
