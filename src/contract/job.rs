//! The job the service drives through review, approval and materialization.
//!
//! The shapes match the contract field for field. The lifecycle lives here as data
//! ([`JobStatus::can_become`]) so that the library, the CLI and the service agree on it.

use crate::contract::recipe::FeatureRecipe;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Map;
use uuid::Uuid;

/// The result of running a compiled recipe on a sample; deliberately small.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ValidationSummary {
    /// How many rows the full CTAS would produce.
    pub estimated_row_count: u64,
    /// Label value (as a string) → count in the sample; summary keys for regression.
    pub label_distribution: Map<String, serde_json::Value>,
    /// Column name → null fraction in the sample, only above the threshold.
    pub high_null_columns: Map<String, serde_json::Value>,
    /// Short findings, each starting with a stable code.
    pub warnings: Vec<String>,
}

/// Where a job is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = crate::types::string_enum_schema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// The crew's recipe is being compiled and validated.
    Running,
    /// A validated proposal waits for a reviewer.
    PendingApproval,
    /// A step failed; `error` says why; it may be retried.
    Failed,
    /// A reviewer approved the SQL on the data it was validated on.
    Approved,
    /// The full table is being written.
    Materializing,
    /// The table is written.
    Complete,
}

impl JobStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Running,
        JobStatus::PendingApproval,
        JobStatus::Failed,
        JobStatus::Approved,
        JobStatus::Materializing,
        JobStatus::Complete,
    ];

    /// The spelling clients see, e.g. `"pending_approval"`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Running => "running",
            JobStatus::PendingApproval => "pending_approval",
            JobStatus::Failed => "failed",
            JobStatus::Approved => "approved",
            JobStatus::Materializing => "materializing",
            JobStatus::Complete => "complete",
        }
    }

    /// Whether the contract's lifecycle allows moving from `self` to `next`.
    ///
    /// `running → pending_approval → approved → materializing → complete`; any step but
    /// `complete` may end in `failed`; a failed job may go back to `running` (retry).
    pub fn can_become(self, next: JobStatus) -> bool {
        use JobStatus::*;
        matches!(
            (self, next),
            (Running, PendingApproval)
                | (PendingApproval, Approved)
                | (Approved, Materializing)
                | (Materializing, Complete)
                | (Failed, Running)
                | (Running | PendingApproval | Approved | Materializing, Failed)
        )
    }
}

/// A job as the contract defines it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = always_written)]
pub struct Job {
    /// The job's identity.
    #[schemars(with = "String", extend("format" = "uuid"))]
    pub job_id: Uuid,
    /// Where it is in its lifecycle.
    pub status: JobStatus,
    /// The table the job materializes.
    pub target_table_name: String,
    /// The warehouse folder it lands in.
    pub domain: String,
    /// Who created it (the token's `sub`).
    pub owner: String,
    /// When it was created (UTC, whole seconds).
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub updated_at: DateTime<Utc>,
    /// The crew's proposal.
    pub recipe: Option<FeatureRecipe>,
    /// The CTAS the recipe compiled to.
    pub sql: Option<String>,
    /// What validation found on the sample.
    pub validation: Option<ValidationSummary>,
    /// Why the job failed.
    pub error: Option<String>,
    /// featurecraft's extension of the contract: what the built-in crew designs when the job
    /// has no usable recipe (absent from the JSON when not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub design: Option<crate::contract::design::DesignRequest>,
    /// featurecraft's extension: where a `complete` job's table was written and how many
    /// rows it has (absent until then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub materialized: Option<MaterializedTable>,
}

/// The contract's nullable fields are always written (as `null` when empty): required in
/// the schema, though the reader also takes a job without them.
fn always_written(schema: &mut schemars::Schema) {
    if let Some(required) = schema
        .ensure_object()
        .entry("required")
        .or_insert_with(|| serde_json::Value::Array(Vec::new()))
        .as_array_mut()
    {
        for field in ["recipe", "sql", "validation", "error"] {
            if !required.iter().any(|r| r == field) {
                required.push(field.into());
            }
        }
    }
}

/// The table a materialization wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MaterializedTable {
    /// The table's folder (or object-store URL), as the service sees it: for Parquet on an
    /// object store, the run the table's `_LATEST` pointer names.
    pub location: String,
    /// Its rows.
    pub rows: u64,
    /// Its format (`parquet` for a job recorded before formats were recorded).
    #[serde(default)]
    pub format: TableFormat,
    /// The Delta table's version this materialization committed (absent for Parquet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// How a training table is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TableFormat {
    /// A folder of Parquet files, published whole (the default).
    #[default]
    Parquet,
    /// A Delta Lake table: each materialization one commit that overwrites it.
    Delta,
}

impl std::str::FromStr for TableFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<TableFormat, String> {
        match text {
            "parquet" => Ok(TableFormat::Parquet),
            "delta" => Ok(TableFormat::Delta),
            other => Err(format!(
                "unknown table format `{other}`: use `parquet` or `delta`"
            )),
        }
    }
}

impl std::fmt::Display for TableFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TableFormat::Parquet => "parquet",
            TableFormat::Delta => "delta",
        })
    }
}

/// A lifecycle move the contract does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionError {
    /// The status the job is in.
    pub from: JobStatus,
    /// The status it was asked to take.
    pub to: JobStatus,
}

impl std::fmt::Display for TransitionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a {} job cannot become {}",
            self.from.as_str(),
            self.to.as_str()
        )
    }
}

impl std::error::Error for TransitionError {}

impl Job {
    /// A new job in `running`, stamped now.
    pub fn new(
        target_table_name: String,
        domain: String,
        owner: String,
        recipe: Option<FeatureRecipe>,
    ) -> Job {
        let now = now_seconds();
        Job {
            job_id: Uuid::new_v4(),
            status: JobStatus::Running,
            target_table_name,
            domain,
            owner,
            created_at: now,
            updated_at: now,
            recipe,
            sql: None,
            validation: None,
            error: None,
            design: None,
            materialized: None,
        }
    }

    /// Moves the job to `next` if the lifecycle allows it, stamping `updated_at`.
    pub fn transition(&mut self, next: JobStatus) -> Result<(), TransitionError> {
        if !self.status.can_become(next) {
            return Err(TransitionError {
                from: self.status,
                to: next,
            });
        }
        self.status = next;
        self.touch();
        Ok(())
    }

    /// Stamps `updated_at`, never moving it backwards.
    pub fn touch(&mut self) {
        self.updated_at = now_seconds().max(self.updated_at);
    }
}

/// The current time at whole seconds, as the contract's timestamps are written.
fn now_seconds() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_allows_only_contract_moves() {
        use JobStatus::*;
        assert!(Running.can_become(PendingApproval));
        assert!(Failed.can_become(Running));
        assert!(!Complete.can_become(Failed));
        assert!(!PendingApproval.can_become(Complete));
        assert!(!Failed.can_become(PendingApproval));
    }

    #[test]
    fn transition_refuses_and_keeps_state() {
        let mut job = Job::new("t".into(), "d".into(), "o".into(), None);
        let err = job.transition(JobStatus::Complete).unwrap_err();
        assert_eq!(job.status, JobStatus::Running);
        assert_eq!(err.to_string(), "a running job cannot become complete");
    }
}
