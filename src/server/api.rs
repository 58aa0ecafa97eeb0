//! The shapes the handlers read and write besides the contract's own (Job, FeatureRecipe,
//! the answers about a recipe): the request bodies and the error body. The
//! handlers build their answers from these types and the OpenAPI document
//! (the `openapi` module) describes them from the same types, so the two cannot drift.

use crate::contract::design::DesignRequest;
use crate::contract::recipe::FeatureRecipe;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The body of `POST /jobs`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
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
    /// Read leniently, as `/compile` reads it: a malformed recipe is a 422 naming its path.
    #[serde(default)]
    #[schemars(with = "Option<FeatureRecipe>")]
    pub recipe: Option<Value>,
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
