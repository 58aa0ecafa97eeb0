//! The answers featurecraft gives about a recipe, one type per output: `POST /compile` and
//! `featurecraft compile --format json` serialize [`CompileAnswer`], `POST /validate` and
//! `featurecraft validate --format json` [`ValidateAnswer`], and `featurecraft design
//! --dropped` [`DesignReport`]. The OpenAPI document is generated from the same types.

use crate::contract::job::ValidationSummary;
use crate::diagnostic::Diagnostic;
use schemars::JsonSchema;
use serde::Serialize;

/// The read-back check of printed SQL.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Reparsed {
    /// Always true: SQL that does not read back as the analyzed statement is withheld.
    pub ok: bool,
}

/// The answer of a compile.
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

impl CompileAnswer {
    /// The answer for `sql` printed in the dialect named `dialect` (`None` when withheld).
    /// Compiling reads printed SQL back in the dialect's own grammar and withholds it
    /// (`E042`) unless that gives exactly the analyzed statement, so printed SQL has passed
    /// that check: it stands in for execution where no engine runs.
    pub fn new(dialect: &str, sql: Option<String>, diagnostics: Vec<Diagnostic>) -> Self {
        CompileAnswer {
            dialect: dialect.to_string(),
            reparsed: sql.as_ref().map(|_| Reparsed { ok: true }),
            sql,
            diagnostics,
        }
    }
}

/// The answer of a validation.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ValidateAnswer {
    /// The CTAS that was validated, or null when the recipe has errors.
    pub sql: Option<String>,
    /// The summary, or null when the recipe has errors or the run failed.
    pub validation: Option<ValidationSummary>,
    /// Every finding (a run that failed on the data is an `E05x` among them).
    pub diagnostics: Vec<Diagnostic>,
}

/// What the built-in crew considered and dropped.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DesignReport {
    /// Features proposed before any pruning.
    pub considered: usize,
    /// Features dropped, in the order the crew dropped them.
    pub dropped: Vec<DroppedFeature>,
}

/// A feature the crew dropped, and why.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DroppedFeature {
    /// The feature's name.
    pub name: String,
    /// `does not compile: …`, `leakage: AUC 0.987`, `duplicate of …`, `less informative: …`.
    pub reason: String,
}
