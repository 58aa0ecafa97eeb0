//! Running compiled recipes in DataFusion: validation on a sample ([`validate`](mod@validate)), the full
//! table as Parquet ([`materialize`]), and the compile-then-validate run that jobs, the
//! designer and the command line share ([`run_recipe`]).
//!
//! The session's own functions live here too: the stable key hash of entity sampling
//! (`keyhash`), the compact, pool-tracked `COUNT(DISTINCT …)` (`distinct`) and the
//! optimizer rule running conditional aggregates as filtered ones (`filtered`), and so does
//! the choice of where the queries run ([`engine`]: this process or a Ballista cluster), and
//! a run's time limit with the cancellation of the cluster jobs it stops ([`deadline`]).
//! A local point-in-time run computes its `cutoffs` CTE once for every timed source
//! (`cutoffs_once`), where DataFusion would inline it into each.

pub(crate) mod clustered;
pub(crate) mod cutoffs_once;
pub mod deadline;
pub(crate) mod distinct;
pub mod engine;
pub(crate) mod extremes;
pub(crate) mod filtered;
pub(crate) mod grouped_values;
pub(crate) mod keyed_final;
pub(crate) mod keyhash;
pub(crate) mod latest;
pub mod leakage;
pub(crate) mod lookup_join;
pub mod materialize;
pub(crate) mod median;
pub(crate) mod one_phase;
pub(crate) mod own_execution;
pub(crate) mod own_groups;
pub(crate) mod pool;
pub(crate) mod runs;
pub mod sample;
pub mod secret;
pub(crate) mod timed_checks;
pub mod validate;
pub mod warehouse;

use crate::catalog::Catalog;
use crate::compile::dialect::Dialect;
use crate::compile::{CompileOptions, compile_recipe};
use crate::contract::answer::ValidateAnswer;
use crate::contract::job::ValidationSummary;
use crate::contract::recipe::{FeatureRecipe, recipe_from_value};
use crate::diagnostic::Diagnostic;
use serde_json::Value;
use validate::{ValidateOptions, validate};

/// Options of a recipe run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The dialect of the SQL stored on the job (the CTAS that materialization runs).
    pub dialect: Dialect,
    /// Warnings fail the run, and suspected leakage is an error.
    pub strict: bool,
    /// How the sample is taken and bounded.
    pub validate: ValidateOptions,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            dialect: Dialect::DataFusion,
            strict: false,
            validate: ValidateOptions::default(),
        }
    }
}

impl RunOptions {
    /// The options of the compile this run starts with.
    pub fn compile_options(&self) -> CompileOptions {
        self.compile_options_in(self.dialect)
    }

    /// The compile options of these settings, in `dialect`.
    pub fn compile_options_in(&self, dialect: Dialect) -> CompileOptions {
        CompileOptions {
            strict: self.strict,
            ..CompileOptions::for_dialect(dialect)
        }
    }
}

/// A run's settings as a caller gives them, numbers and text, checked in one place for
/// the command line and the Python package. Each problem names its option
/// (`sample_size`); the front ends say it in their own spelling.
#[derive(Debug, Clone)]
pub struct RunSettings<'a> {
    /// See [`RunOptions::dialect`].
    pub dialect: Dialect,
    /// Entities to sample: at least 1.
    pub sample_size: usize,
    /// Between 0 and 1.
    pub null_threshold: f64,
    /// Above 0, at most 1 ([`leakage::DEFAULT_LEAK_THRESHOLD`] by default).
    pub leak_threshold: f64,
    /// A size such as `2G` ([`sample::parse_size`]).
    pub memory_limit: &'a str,
    /// See [`RunOptions::strict`].
    pub strict: bool,
    /// Where the queries run.
    pub engine: engine::Engine,
    /// Seconds the run may take: above 0, at most [`deadline::MAX_TIME_LIMIT`].
    pub time_limit: Option<f64>,
}

impl RunSettings<'_> {
    /// The run options, or what is wrong with the settings.
    pub fn check(&self) -> Result<RunOptions, String> {
        if self.sample_size == 0 {
            return Err("`sample_size` must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.null_threshold) {
            return Err(format!(
                "`null_threshold` must be between 0 and 1, got {}",
                self.null_threshold
            ));
        }
        if !(self.leak_threshold > 0.0 && self.leak_threshold <= 1.0) {
            return Err(format!(
                "`leak_threshold` must be above 0 and at most 1, got {}",
                self.leak_threshold
            ));
        }
        let memory_limit =
            sample::parse_size(self.memory_limit).map_err(|e| format!("`memory_limit`: {e}"))?;
        let most = deadline::MAX_TIME_LIMIT.as_secs_f64();
        let time_limit = match self.time_limit {
            None => self.engine.default_time_limit(),
            Some(t) if t.is_finite() && t > 0.0 && t <= most => {
                Some(std::time::Duration::from_secs_f64(t))
            }
            Some(t) => {
                return Err(format!(
                    "`time_limit` must be a number of seconds above 0 and at most {most} (30 days), got {t}"
                ));
            }
        };
        Ok(RunOptions {
            dialect: self.dialect,
            strict: self.strict,
            validate: ValidateOptions {
                sample_size: self.sample_size,
                null_threshold: self.null_threshold,
                leak_threshold: self.leak_threshold,
                memory_limit,
                engine: self.engine.clone(),
                time_limit,
                ..ValidateOptions::default()
            },
        })
    }
}

/// What compiling and validating a recipe produced.
#[derive(Debug, Clone)]
pub struct RecipeRun {
    /// The CTAS, when the recipe compiled.
    pub sql: Option<String>,
    /// The summary, when the run got that far.
    pub validation: Option<ValidationSummary>,
    /// Every finding, compile and run.
    pub diagnostics: Vec<Diagnostic>,
    /// The features the leakage screen flagged, with their scores.
    pub leaks: Vec<leakage::Leak>,
    /// The sampled rows, when the validation's one query gave them (see
    /// [`validate::Validation::rows`]).
    pub rows: Option<arrow::array::RecordBatch>,
}

impl RecipeRun {
    /// True when an error was found at compile or run time.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// A one-paragraph reason for a failure: the first errors with their paths.
    pub fn error_paragraph(&self) -> Option<String> {
        let stage = if self.sql.is_none() {
            "the recipe does not compile"
        } else {
            "validation failed"
        };
        Some(format!("{stage}: {}.", errors_text(&self.diagnostics)?))
    }
}

/// The first errors of `diagnostics` with their paths and hints, `; `-separated, and how
/// many more there are; `None` without an error.
pub fn errors_text(diagnostics: &[Diagnostic]) -> Option<String> {
    let errors: Vec<&Diagnostic> = diagnostics.iter().filter(|d| d.is_error()).collect();
    errors.first()?;
    let shown: Vec<String> = errors
        .iter()
        .take(3)
        .map(|d| {
            // The hints the CLI shows under an error ("did you mean `amount`?") too.
            let hints = if d.hints.is_empty() {
                String::new()
            } else {
                format!(" ({})", d.hints.join("; "))
            };
            match &d.path {
                Some(path) => format!("{} at {path}: {}{hints}", d.code.as_str(), d.message),
                None => format!("{}: {}{hints}", d.code.as_str(), d.message),
            }
        })
        .collect();
    let more = if errors.len() > 3 {
        format!("; and {} more error(s)", errors.len() - 3)
    } else {
        String::new()
    };
    Some(format!("{}{more}", shown.join("; ")))
}

/// Compiles a recipe, then validates it on a sample when it compiled.
pub async fn run_recipe(
    recipe: &FeatureRecipe,
    catalog: &Catalog,
    options: &RunOptions,
) -> RecipeRun {
    let compiled = compile_recipe(recipe, catalog, &options.compile_options());
    let (Some(plan), Some(sql)) = (compiled.plan, compiled.sql) else {
        return RecipeRun {
            sql: None,
            validation: None,
            diagnostics: compiled.diagnostics,
            leaks: Vec::new(),
            rows: None,
        };
    };
    let validation = validate(&plan, catalog, &options.validate, &compiled.diagnostics).await;
    RecipeRun {
        sql: Some(sql),
        validation: validation.summary,
        diagnostics: validation.diagnostics,
        leaks: validation.leaks,
        rows: validation.rows,
    }
}

/// Compiles and validates a recipe given as JSON, as the service and the MCP tools receive
/// it: the answer every front end gives (`validate --format json`, `POST /validate`, the
/// `validate_recipe` tool), and whether the recipe is the caller's to fix — it could not be
/// read or compiled. A recipe that compiled but failed on the data is not: its answer
/// carries the runtime error among its diagnostics.
pub async fn validate_value(
    recipe: &Value,
    catalog: &Catalog,
    options: &RunOptions,
) -> (ValidateAnswer, bool) {
    let parsed = recipe_from_value(recipe);
    let Some(recipe) = parsed.recipe else {
        let answer = ValidateAnswer {
            sql: None,
            validation: None,
            diagnostics: parsed.diagnostics,
        };
        return (answer, true);
    };
    let run = run_recipe(&recipe, catalog, options).await;
    let failed = run.sql.is_none() && run.has_errors();
    let mut diagnostics = parsed.diagnostics;
    diagnostics.extend(run.diagnostics);
    let answer = ValidateAnswer {
        sql: run.sql,
        validation: run.validation,
        diagnostics,
    };
    (answer, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RunSettings<'static> {
        RunSettings {
            dialect: Dialect::DataFusion,
            sample_size: 100,
            null_threshold: 0.5,
            leak_threshold: 0.95,
            memory_limit: "512M",
            strict: true,
            engine: engine::Engine::Local,
            time_limit: Some(1.5),
        }
    }

    #[test]
    fn a_cluster_run_without_a_time_limit_gets_the_cluster_default() {
        let mut local = settings();
        local.time_limit = None;
        assert_eq!(local.check().unwrap().validate.time_limit, None);
        let mut cluster = local.clone();
        cluster.engine = engine::Engine::Ballista {
            scheduler: "127.0.0.1:50050".into(),
        };
        assert_eq!(
            cluster.check().unwrap().validate.time_limit,
            Some(engine::CLUSTER_TIME_LIMIT)
        );
        cluster.time_limit = Some(7.0);
        assert_eq!(
            cluster.check().unwrap().validate.time_limit,
            Some(std::time::Duration::from_secs(7))
        );
    }

    #[test]
    fn settings_are_checked_naming_the_option() {
        let options = settings().check().unwrap();
        assert_eq!(options.validate.sample_size, 100);
        assert_eq!(options.validate.memory_limit, 512 << 20);
        assert_eq!(
            options.validate.time_limit,
            Some(std::time::Duration::from_millis(1500))
        );
        assert!(options.strict);
        let wrong = |change: fn(&mut RunSettings<'static>), says: &str| {
            let mut s = settings();
            change(&mut s);
            let error = s.check().unwrap_err();
            assert!(error.contains(says), "{error}");
        };
        wrong(|s| s.sample_size = 0, "`sample_size` must be at least 1");
        wrong(|s| s.null_threshold = 1.5, "`null_threshold`");
        wrong(|s| s.null_threshold = f64::NAN, "`null_threshold`");
        wrong(|s| s.leak_threshold = 0.0, "`leak_threshold`");
        wrong(|s| s.leak_threshold = 1.01, "`leak_threshold`");
        wrong(|s| s.leak_threshold = f64::NAN, "`leak_threshold`");
        wrong(|s| s.memory_limit = "lots", "`memory_limit`");
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e12] {
            let mut s = settings();
            s.time_limit = Some(bad);
            assert!(s.check().unwrap_err().contains("`time_limit`"), "{bad}");
        }
    }
}
