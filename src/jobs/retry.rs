//! Running a job's recipe again: `retry` of a failed job, and the run shared with the CLI.
//!
//! A retry compiles and validates the job's recipe against the catalog *as it is now*; it
//! never moves `created_at` or the job's identity, and only a `failed` job may be retried.
//! A job that carries a design request and has no recipe, or one that no longer compiles,
//! is designed anew by the built-in crew ([`crate::design`]).

use crate::catalog::Catalog;
use crate::compile::compile_recipe;
use crate::contract::job::{Job, JobStatus, TransitionError};
use crate::contract::recipe::FeatureRecipe;
use crate::run::{RecipeRun, RunOptions, run_recipe};
use std::fmt;

/// Why a job cannot be retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryError {
    /// Only a `failed` job can be retried (the HTTP layer answers 409).
    NotFailed(JobStatus),
}

impl fmt::Display for RetryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryError::NotFailed(status) => {
                write!(
                    f,
                    "only a failed job can be retried; this one is {}",
                    status.as_str()
                )
            }
        }
    }
}

impl std::error::Error for RetryError {}

/// Why a job's run produced no proposal to review.
#[derive(Debug, Clone, PartialEq)]
pub enum JobError {
    /// The job has no recipe, and no design request to make one.
    NoRecipe,
    /// The built-in crew could not propose a recipe; its errors.
    DesignFailed(Vec<crate::diagnostic::Diagnostic>),
    /// The catalog could not be read.
    Catalog(String),
    /// The run took longer than the time limit and was stopped.
    TimedOut {
        /// The limit, in seconds.
        seconds: u64,
    },
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::NoRecipe => f.write_str(
                "the job has no recipe to run: the crew did not produce one. Create the job again with a recipe or a design request.",
            ),
            JobError::DesignFailed(diagnostics) => write!(
                f,
                "the designer could not propose a recipe: {}",
                crate::run::errors_text(diagnostics).unwrap_or_default()
            ),
            JobError::Catalog(reason) => f.write_str(reason),
            JobError::TimedOut { seconds } => write!(
                f,
                "validation took longer than {seconds} s and was stopped"
            ),
        }
    }
}

impl std::error::Error for JobError {}

/// The recipe a job runs and what compiling and validating it gave: the job's own recipe,
/// or, for a job with a design request whose recipe is missing or no longer compiles, a
/// recipe designed anew against the catalog as it is now. `Err` says why there is none.
pub async fn propose_for_job(
    job: &Job,
    catalog: &Catalog,
    options: &RunOptions,
) -> Result<(FeatureRecipe, RecipeRun), JobError> {
    let usable = job.recipe.as_ref().filter(|recipe| {
        job.design.is_none()
            || !compile_recipe(recipe, catalog, &options.compile_options()).has_errors()
    });
    if let Some(recipe) = usable {
        return Ok((recipe.clone(), run_recipe(recipe, catalog, options).await));
    }
    let Some(request) = &job.design else {
        return Err(JobError::NoRecipe);
    };
    let design_options = crate::design::DesignOptions {
        run: options.clone(),
        target_table: job.target_table_name.clone(),
        ..Default::default()
    };
    match crate::design::design(request, catalog, &design_options).await {
        Ok(design) => Ok((design.recipe, design.run)),
        Err(diagnostics) => Err(JobError::DesignFailed(diagnostics)),
    }
}

/// Records on a `running` job what a run of the crew produced ([`propose_for_job`]), as a
/// new job and a retry both do. A proposal that validated gives `pending_approval` with
/// `sql` and `validation`; anything else gives `failed` with `error` set, keeping whatever
/// was produced (the `sql` if the recipe compiled, so a reviewer can see what failed).
pub fn record_proposal(
    job: &mut Job,
    proposal: Result<(FeatureRecipe, RecipeRun), JobError>,
) -> Result<(), TransitionError> {
    let (recipe, run) = match proposal {
        Ok(proposal) => proposal,
        Err(reason) => {
            job.sql = None;
            job.validation = None;
            job.error = Some(reason.to_string());
            return job.transition(JobStatus::Failed);
        }
    };
    job.recipe = Some(recipe);
    job.sql = run.sql.clone();
    job.validation = run.validation.clone();
    match run.error_paragraph() {
        None if run.validation.is_some() => {
            job.error = None;
            job.transition(JobStatus::PendingApproval)
        }
        reason => {
            job.error = Some(reason.unwrap_or_else(|| "validation produced no summary".into()));
            job.transition(JobStatus::Failed)
        }
    }
}

/// Retries a failed job: compile and validation run again on its recipe against the catalog
/// as it is now. Success gives `pending_approval` with `sql` and `validation`; failure gives
/// `failed` with `error` set and whatever was produced (the `sql` if it compiled).
pub async fn retry(job: &Job, catalog: &Catalog, options: &RunOptions) -> Result<Job, RetryError> {
    if job.status != JobStatus::Failed {
        return Err(RetryError::NotFailed(job.status));
    }
    let mut next = job.clone();
    next.transition(JobStatus::Running)
        .map_err(|e| RetryError::NotFailed(e.from))?;
    record_proposal(&mut next, propose_for_job(job, catalog, options).await)
        .map_err(|e| RetryError::NotFailed(e.from))?;
    Ok(next)
}
