//! The shapes the handlers read and write besides the contract's own (Job, FeatureRecipe):
//! the request bodies, the stateless engine routes' answers and the error body. The
//! handlers build their answers from these types and the OpenAPI document
//! (the `openapi` module) describes them from the same types, so the two cannot drift.

use crate::contract::design::DesignRequest;
use crate::contract::job::ValidationSummary;
use crate::contract::recipe::FeatureRecipe;
use crate::diagnostic::Diagnostic;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The body of `POST /jobs`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct CreateJob {
    /// The table the job materializes (a portable name of at most 128 characters).
    pub target_table_name: String,
    /// The warehouse folder it lands in (a portable name).
    pub domain: String,
    /// Who owns the job; the caller (the token's `sub`) when absent. Only an admin may
    /// name someone else.
    #[serde(default)]
    pub owner: Option<String>,
    /// The crew's proposal; a job without one fails unless it has a `design` request.
    #[serde(default)]
    pub recipe: Option<FeatureRecipe>,
    /// featurecraft's extension: what the built-in crew designs when there is no usable recipe.
    #[serde(default)]
    pub design: Option<DesignRequest>,
}

/// The body of `POST /compile` and `POST /validate`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct EngineRequest {
    /// The recipe to compile (read leniently: an unknown field is a `W001` warning).
    #[schemars(with = "FeatureRecipe")]
    pub recipe: Value,
    /// `generic` (the default), `datafusion`, `duckdb`, `postgres`, `snowflake`,
    /// `bigquery` or `databricks`.
    #[serde(default)]
    pub dialect: Option<String>,
    /// For `/validate`: how many entities to sample (the service's setting when absent).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub sample_size: Option<usize>,
}

/// The read-back check of printed SQL.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Reparsed {
    /// Always true: SQL that does not read back as the analyzed statement is withheld.
    pub ok: bool,
}

/// The answer of `POST /compile`, as `featurecraft compile --format json` prints it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CompileAnswer {
    /// The dialect of `sql`.
    pub dialect: String,
    /// The CTAS, or null when the recipe has errors.
    pub sql: Option<String>,
    /// Present with the SQL: it was read back in the dialect's grammar as exactly the
    /// analyzed statement.
    pub reparsed: Option<Reparsed>,
    /// Every finding, errors and warnings.
    pub diagnostics: Vec<Diagnostic>,
}

/// The answer of `POST /validate`, as `featurecraft validate --format json` prints it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ValidateAnswer {
    /// The CTAS that was validated, or null when the recipe has errors.
    pub sql: Option<String>,
    /// The summary, or null when the recipe has errors or the run failed.
    pub validation: Option<ValidationSummary>,
    /// Every finding (a run that failed on the data is an `E05x` among them).
    pub diagnostics: Vec<Diagnostic>,
}

/// Every error's body (FastAPI's shape).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ErrorBody {
    /// What is wrong, naming the field or the state.
    pub detail: String,
}

/// The answer of `GET /healthz`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}
