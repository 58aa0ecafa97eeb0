//! The design request: featurecraft's extension of the job contract, what the built-in
//! crew designs a recipe for when a job comes without one.

use crate::contract::recipe::LabelSpec;
use serde::{Deserialize, Serialize};

/// What to design a recipe for: featurecraft's extension of the job contract, accepted by
/// `POST /jobs` in place of a recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesignRequest {
    /// The table whose rows (or grain keys) are the training rows; it holds the label.
    pub spine: String,
    /// The grain columns, present in the spine and in every table aggregated.
    pub entity_grain: Vec<String>,
    /// The label, as in a recipe.
    pub label: LabelSpec,
    /// Keep at most this many features, the most informative first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_features: Option<usize>,
}
