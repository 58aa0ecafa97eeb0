//! The job routes: create, get, list, retry, approve and materialize, and `run_job`, the
//! one way a job's work runs (permit, start, spawn, time limit, stored outcome).

use super::*;

pub(super) fn job_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("job_id: `{text}` is not a UUID"),
        )
    })
}

/// The job, if the caller may see it; 404 otherwise (others' jobs are not revealed).
pub(super) fn visible_job(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
) -> Result<store::StoredJob, ApiError> {
    match state.store.get(id)? {
        Some(stored) if caller.admin || stored.job.owner == caller.subject => Ok(stored),
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, format!("no job {id}"))),
    }
}

#[derive(Deserialize)]
pub(super) struct WaitParam {
    #[serde(default)]
    pub(super) wait: bool,
}

/// `?wait=true` as elsewhere; `?fix=true` applies the recipe's machine-applicable fixes
/// (recorded in its notes) before the retry.
#[derive(Deserialize)]
pub(super) struct RetryParams {
    #[serde(default)]
    pub(super) wait: bool,
    #[serde(default)]
    pub(super) fix: bool,
}

pub(super) async fn create_job(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(wait): Query<WaitParam>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers).await?;
    let request: api::CreateJob = read_request(&body)?;
    for (field, value) in [
        ("target_table_name", &request.target_table_name),
        ("domain", &request.domain),
    ] {
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
    let owner = match request.owner {
        Some(owner) if owner.trim().is_empty() => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "owner: expected a non-empty string",
            ));
        }
        Some(owner) => owner,
        None => caller.subject.clone(),
    };
    if owner != caller.subject && !caller.admin {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "owner: must be the caller (the token's `sub`)",
        ));
    }
    let recipe = match &request.recipe {
        None => None,
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
    let design = request.design;
    let mut job = Job::new(request.target_table_name, request.domain, owner, recipe);
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
pub(super) async fn run_new_job(state: Shared, job: Job) -> Outcome {
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
pub(super) async fn catalog_identity(state: &AppState) -> Result<CatalogIdentity, String> {
    CatalogIdentity::of_location(&state.config.catalog)
        .await
        .map_err(|e| format!("cannot read the catalog {e}"))
}

/// The job's recipe (or a designed one), compiled and validated against the catalog as it
/// is now; `Err` when there was nothing to run (no catalog, no recipe).
pub(super) async fn proposal(
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
pub(super) fn timed_out(state: &AppState) -> JobError {
    JobError::TimedOut {
        seconds: state.config.job_timeout.as_secs(),
    }
}

/// Stores a run's outcome if the job is still `expected`. A proposal ready for review
/// records what it was computed from: the recipe, the SQL and `identity`, the catalog
/// read by the run.
pub(super) fn store_outcome(
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
pub(super) struct Outcome {
    pub(super) job: Job,
    pub(super) identity: Option<CatalogIdentity>,
}

/// The one way a job runs (create, retry, materialize): a permit (`503` when the engine
/// is busy); `start` stores the job in the status its run begins in (`409` when another
/// request moved it first); `work` runs on the engine runtime within the service's job
/// time limit — past it the job fails as `timed_out` says; the outcome is stored if the job
/// is still in that status; then the answer, at once or, with `wait`, once the work is done.
pub(super) async fn run_job<Fut>(
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
pub(super) async fn spawn(
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

/// Answers with the job as stored when the work started, or, with `wait`, as it is once
/// the work is done.
pub(super) async fn respond(
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

pub(super) async fn get_job(
    State(state): State<Shared>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Job>, ApiError> {
    let caller = caller(&state, &headers).await?;
    Ok(Json(visible_job(&state, &caller, job_id(&id)?)?.job))
}

#[derive(Deserialize)]
pub(super) struct PageParams {
    pub(super) limit: Option<usize>,
    pub(super) cursor: Option<String>,
}

/// The caller's jobs (every job for an admin), newest first, [`DEFAULT_PAGE`] at a time
/// (`?limit=` up to [`MAX_PAGE`]). The body is the contract's array of jobs; when more
/// follow, `x-next-cursor` holds the cursor to pass as `?cursor=` and `link` the next
/// page's path (`rel="next"`).
pub(super) async fn list_jobs(
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

pub(super) async fn retry_job(
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
                let retried = match &state.config.crew {
                    Some(crew) => retry_with_crew(&failed, &catalog, &state.config.run, crew).await,
                    None => retry(&failed, &catalog, &state.config.run).await,
                };
                match retried {
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
pub(super) fn claim(
    state: &AppState,
    job: &Job,
    next: JobStatus,
    action: &str,
) -> Result<Job, ApiError> {
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
pub(super) fn failed_run(running: &Job, reason: String) -> Job {
    let mut failed = running.clone();
    failed.error = Some(reason);
    if failed.transition(JobStatus::Failed).is_err() {
        tracing::error!(job_id = %running.job_id, status = running.status.as_str(), "a job that is not running cannot fail its run");
    }
    failed
}

/// 409 for an `action` the job's status does not allow, naming the statuses it needs (the
/// ones from which the lifecycle allows the move).
pub(super) fn conflict_status(job: &Job, action: &str, next: JobStatus) -> ApiError {
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

pub(super) async fn approve_job(
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
pub(super) async fn still_as_reviewed(
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
pub(super) fn reviewed_changes(stored: &store::StoredJob, now: &CatalogIdentity) -> Option<String> {
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

pub(super) async fn materialize_job(
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
                    format: written.format,
                    version: written.version,
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
pub(super) fn another_publisher(state: &AppState, job: &Job) -> Result<Option<String>, ApiError> {
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
pub(super) async fn materialize_recipe(
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
            rows: None,
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
    // The warehouse's tidying at the service's start must not take this run for a leftover.
    let _ = state.tidied.clone().wait_for(|done| *done).await;
    let staged = stage(
        &plan,
        &catalog,
        &state.config.warehouse,
        state.config.table_format,
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
        .await
        .map_err(|d| format!("{}: {}", d.code.as_str(), d.message))
}
