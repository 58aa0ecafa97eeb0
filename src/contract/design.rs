//! The design request: featurecraft's extension of the job contract, what the built-in
//! crew designs a recipe for when a job comes without one.

use crate::contract::recipe::{LabelSpec, PointInTime, Relationship};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What to design a recipe for: featurecraft's extension of the job contract, accepted by
/// `POST /jobs` in place of a recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DesignRequest {
    /// The table whose rows (or grain keys) are the training rows; it holds the label.
    /// With `point_in_time.schedule` the rows are generated and the schedule's source
    /// stands for the spine (read like any timed table).
    pub spine: String,
    /// The grain columns, present in the spine and in every table aggregated.
    pub entity_grain: Vec<String>,
    /// The label, as in a recipe.
    pub label: LabelSpec,
    /// Keep at most this many features, the most informative first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_features: Option<usize>,
    /// Design a point-in-time recipe: the cutoff column (one of `entity_grain`) and the
    /// time column of each table the crew may read (`null` for a static table), as in a
    /// recipe. Tables it does not list are left out, since they would not be bounded by
    /// the cutoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_in_time: Option<PointInTime>,
    /// In a point-in-time design, the windows each aggregate of a timed table is also
    /// computed over (`"7d"`, `"30 days"`), besides all the history before the cutoff.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<String>,
    /// Relationships the crew follows besides (or instead of) those it discovers: a
    /// declared one replaces what discovery found for its child column.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relationships: Vec<Relationship>,
    /// How deep the crew stacks aggregates: 1 (each table's aggregates per entity) or 2
    /// (also aggregates over a table's rows of their child rows' aggregates, such as the
    /// average spend per session). 2 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<u8>,
    /// The aggregate primitives proposed, by Featuretools' names: `count`, `sum`, `mean`,
    /// `max`, `min`, `std`, `num_unique`. Every one when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primitives: Vec<String>,
}
