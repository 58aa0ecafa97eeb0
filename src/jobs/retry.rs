//! Running a job's recipe again: `retry` of a failed job, and the run shared with the CLI.
//!
//! A retry compiles and validates the job's recipe against the catalog *as it is now*; it
//! never moves `created_at` or the job's identity, and only a `failed` job may be retried.
//! A job that carries a design request and has no recipe, or one that no longer compiles,
//! is designed anew by the built-in crew ([`crate::design`]); with an external crew
//! ([`retry_with_crew`]), that program proposes the recipe instead, round by round.

use crate::catalog::Catalog;
use crate::compile::compile_recipe;
use crate::contract::job::{Job, JobStatus, TransitionError};
use crate::contract::recipe::FeatureRecipe;
use crate::jobs::crew::{self, Crew};
use crate::run::{RecipeRun, RunOptions, run_recipe};
use std::fmt;
use std::time::{Duration, Instant};

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
    /// A round of the external crew failed: the round, why, and the rounds before it.
    CrewFailed {
        /// The round that failed, from 1.
        round: u32,
        /// Why (it exited non-zero, printed no recipe, outlived its limit, printed too much).
        reason: String,
        /// One line per earlier round.
        earlier: Vec<String>,
    },
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
            JobError::CrewFailed {
                round,
                reason,
                earlier,
            } => {
                write!(f, "the crew failed in round {round}: {reason}")?;
                if !earlier.is_empty() {
                    write!(f, " (before: {})", earlier.join("; "))?;
                }
                Ok(())
            }
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

/// Retries a failed job with an external crew instead of the built-in one: up to the
/// crew's rounds, the crew proposes a recipe from the job, the last findings and the
/// catalog; featurecraft compiles and validates it; a recipe that validates ends the retry
/// (`pending_approval`), one that does not is sent back with its findings. Each round is a
/// line of the recipe's notes (`crew round 2: 1 error, first E021`). A round the crew
/// fails (see [`crew`]) ends the retry as a failed job naming why. The whole retry runs
/// within the run's time limit, each round within the crew's.
pub async fn retry_with_crew(
    job: &Job,
    catalog: &Catalog,
    options: &RunOptions,
    crew: &Crew,
) -> Result<Job, RetryError> {
    if job.status != JobStatus::Failed {
        return Err(RetryError::NotFailed(job.status));
    }
    let mut next = job.clone();
    next.transition(JobStatus::Running)
        .map_err(|e| RetryError::NotFailed(e.from))?;
    record_proposal(&mut next, crew_rounds(job, catalog, options, crew).await)
        .map_err(|e| RetryError::NotFailed(e.from))?;
    Ok(next)
}

/// The crew's rounds: the first recipe that validates, or the last one with its findings.
async fn crew_rounds(
    job: &Job,
    catalog: &Catalog,
    options: &RunOptions,
    crew: &Crew,
) -> Result<(FeatureRecipe, RecipeRun), JobError> {
    let started = Instant::now();
    let limit = options.validate.time_limit;
    let remaining = || limit.map(|l| l.saturating_sub(started.elapsed()));
    // The findings the crew starts from: its last recipe's, against the catalog as it is now.
    let described = crew::catalog_for_crew(catalog).map_err(JobError::Catalog)?;
    let mut diagnostics = job
        .recipe
        .as_ref()
        .map(|r| compile_recipe(r, catalog, &options.compile_options()).diagnostics)
        .unwrap_or_default();
    let mut shown = job.clone();
    let mut lines: Vec<String> = Vec::new();
    let mut last = None;
    for round in 1..=crew.rounds {
        let left = remaining();
        if left == Some(Duration::ZERO) {
            break;
        }
        let round_limit = left.map_or(crew.round_limit, |l| l.min(crew.round_limit));
        let recipe =
            match crew::propose(crew, &shown, &diagnostics, &described, round, round_limit).await {
                Ok(recipe) => recipe,
                Err(reason) => {
                    return Err(JobError::CrewFailed {
                        round,
                        reason,
                        earlier: lines,
                    });
                }
            };
        let mut this_run = options.clone();
        this_run.validate.time_limit = remaining().or(this_run.validate.time_limit);
        let run = run_recipe(&recipe, catalog, &this_run).await;
        lines.push(round_line(round, &run.diagnostics));
        if run.validation.is_some() && run.error_paragraph().is_none() {
            return Ok((with_rounds(recipe, &lines), run));
        }
        diagnostics = run.diagnostics.clone();
        shown.recipe = Some(recipe.clone());
        last = Some((recipe, run));
    }
    match last {
        Some((recipe, run)) => Ok((with_rounds(recipe, &lines), run)),
        None => Err(JobError::TimedOut {
            seconds: limit.map_or(0, |l| l.as_secs()),
        }),
    }
}

/// `crew round 2: 1 error, first E021` (or `no error`).
fn round_line(round: u32, diagnostics: &[crate::diagnostic::Diagnostic]) -> String {
    let errors: Vec<_> = diagnostics.iter().filter(|d| d.is_error()).collect();
    match errors.first() {
        None => format!("crew round {round}: no error"),
        Some(first) => format!(
            "crew round {round}: {} error{}, first {}",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" },
            first.code.as_str()
        ),
    }
}

/// The crew's recipe with one line per round appended to its notes.
fn with_rounds(mut recipe: FeatureRecipe, lines: &[String]) -> FeatureRecipe {
    let rounds = lines.join("\n");
    recipe.notes = if recipe.notes.trim().is_empty() {
        rounds
    } else {
        format!("{}\n{rounds}", recipe.notes.trim_end())
    };
    recipe
}
