//! JSON Schemas of the contract's shapes, generated from the very types the parser and the
//! service use (so the schema cannot drift from what is accepted): editors validate and
//! complete recipe files with them, and the Python package hands them out.
//!
//! The recipe reader is more lenient than its schema in one way, on purpose: a field the
//! schema does not know is a `W001` warning there, not an error.

use crate::contract::design::DesignRequest;
use crate::contract::job::Job;
use crate::contract::recipe::FeatureRecipe;
use schemars::JsonSchema;

/// The schema of a FeatureRecipe (with featurecraft's extensions), JSON Schema 2020-12.
pub fn recipe_schema() -> serde_json::Value {
    schema_of::<FeatureRecipe>("FeatureRecipe")
}

/// The schema of a Job, as the service returns it.
pub fn job_schema() -> serde_json::Value {
    schema_of::<Job>("Job")
}

/// The schema of the service's and the command line's design request.
pub fn design_request_schema() -> serde_json::Value {
    schema_of::<DesignRequest>("DesignRequest")
}

fn schema_of<T: JsonSchema>(title: &str) -> serde_json::Value {
    let mut schema = schemars::schema_for!(T).to_value();
    if let Some(object) = schema.as_object_mut() {
        object.insert("title".into(), title.into());
    }
    schema
}
