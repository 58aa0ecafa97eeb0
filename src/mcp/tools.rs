//! The six catalog and recipe tools: their arguments and answers as serde/schemars types
//! (the input and output schemas are generated from them), and what each runs. The recipe
//! tools answer with the same types as the CLI's `--format json` and the service.

use crate::author::fix::fix;
use crate::catalog::{Catalog, Table, TableSource};
use crate::compile::dialect::Dialect;
use crate::compile::{CompileOptions, compile_value};
use crate::contract::answer::{CompileAnswer, DesignReport, ValidateAnswer};
use crate::contract::design::DesignRequest;
use crate::contract::recipe::FeatureRecipe;
use crate::design::{DesignOptions, design};
use crate::diagnostic::{Code, Diagnostic, did_you_mean, suggestions};
use crate::run::{RunOptions, validate_value};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What every tool reads: the catalog, loaded once, and the run settings.
#[derive(Debug, Clone)]
pub struct ToolContext {
    /// The catalog the server was started on.
    pub catalog: std::sync::Arc<Catalog>,
    /// Sample size, null and leak thresholds, memory and time limits.
    pub run: RunOptions,
}

/// No arguments.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArguments {}

/// The tables and views of the catalog.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TableList {
    /// Every table and view, by name.
    pub tables: Vec<TableEntry>,
}

/// One table or view of the catalog.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TableEntry {
    /// The name recipes use.
    pub name: String,
    /// `table` (Parquet files) or `view` (an SQL file).
    pub kind: String,
    /// How many columns it has.
    pub columns: usize,
    /// How many rows, for a table of Parquet files (from their footers); absent for a view.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
}

/// Arguments of `describe_table`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DescribeTable {
    /// The table or view, as recipes name it (case is ignored).
    pub table: String,
}

/// A table's columns and their types, as `featurecraft describe-catalog` writes them.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TableDescription {
    /// The table's name.
    pub table: String,
    /// `table` or `view`.
    pub kind: String,
    /// Column → type (`int64`, `string`, `timestamp[us]`, …), in the table's order.
    pub columns: serde_json::Map<String, Value>,
}

/// Arguments of `compile_recipe`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompileRecipe {
    /// The recipe (read leniently: an unknown field is a `W001` warning).
    #[schemars(with = "FeatureRecipe")]
    pub recipe: Value,
    /// `generic` (the default), `datafusion`, `duckdb`, `postgres`, `snowflake`,
    /// `bigquery` or `databricks`.
    #[serde(default)]
    pub dialect: Option<String>,
}

/// Arguments of `validate_recipe`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateRecipe {
    /// The recipe (read leniently: an unknown field is a `W001` warning).
    #[schemars(with = "FeatureRecipe")]
    pub recipe: Value,
    /// How many entities to sample (the server's setting when absent).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub sample_size: Option<usize>,
}

/// The designed recipe and what the crew dropped.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DesignAnswer {
    /// The recipe the crew kept; its `notes` say what was generated, left out and why.
    pub recipe: FeatureRecipe,
    /// What the crew considered and dropped.
    pub report: DesignReport,
    /// The last validation of `recipe`, and its findings.
    pub validation: ValidateAnswer,
}

/// Arguments of `fix_recipe`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FixRecipe {
    /// The recipe to fix.
    #[schemars(with = "FeatureRecipe")]
    pub recipe: Value,
}

/// A recipe after its machine-applicable fixes, as `featurecraft fix` writes it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct FixAnswer {
    /// The recipe with every fix applied.
    #[schemars(with = "FeatureRecipe")]
    pub recipe: Value,
    /// Each change: where, from what, to what, and the finding it answers.
    pub changes: Vec<FixChange>,
    /// The findings still there, each with why it was not fixed.
    pub left: Vec<LeftFinding>,
}

/// One change `fix_recipe` made.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct FixChange {
    /// The code of the finding it answers.
    pub code: String,
    /// Where in the recipe (`features[3].expression`).
    pub path: String,
    /// What was there.
    pub from: String,
    /// What is there now.
    pub to: String,
}

/// A finding `fix_recipe` could not fix.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LeftFinding {
    /// The finding.
    pub diagnostic: Diagnostic,
    /// Why it was left.
    pub why: String,
}

/// What a tool gives back: its answer, and whether it is an error result (`isError`).
pub struct ToolAnswer {
    /// The answer's JSON (the tool's output schema).
    pub value: Value,
    /// A recipe with errors, an unknown table: the model's input is what is wrong.
    pub is_error: bool,
}

impl ToolAnswer {
    fn of(answer: &impl Serialize, is_error: bool) -> Result<ToolAnswer, String> {
        serde_json::to_value(answer)
            .map(|value| ToolAnswer { value, is_error })
            .map_err(|e| format!("the answer could not be written as JSON: {e}"))
    }
}

fn kind(table: &Table) -> &'static str {
    match table.source {
        TableSource::View { .. } => "view",
        _ => "table",
    }
}

/// `list_tables`.
pub fn list_tables(context: &ToolContext) -> Result<ToolAnswer, String> {
    let tables = context
        .catalog
        .tables()
        .map(|t| TableEntry {
            name: t.name.clone(),
            kind: kind(t).into(),
            columns: t.columns.len(),
            rows: match t.source {
                TableSource::Parquet { row_count, .. } => Some(row_count),
                _ => None,
            },
        })
        .collect();
    ToolAnswer::of(&TableList { tables }, false)
}

/// `describe_table`: an unknown table is an error result with the diagnostic (`E020`) and
/// its did-you-mean.
pub fn describe_table(context: &ToolContext, args: DescribeTable) -> Result<ToolAnswer, String> {
    let catalog = &context.catalog;
    let Some(table) = catalog.table(args.table.trim()) else {
        let names = catalog.tables().map(|t| t.name.as_str());
        let d = Diagnostic::new(
            Code::E020,
            format!("no table or view `{}` in the catalog", args.table),
        )
        .hints(did_you_mean(&suggestions(&args.table, names)));
        let outcome = DescribeOutcome::NotFound(Findings {
            diagnostics: vec![d],
        });
        return ToolAnswer::of(&outcome, true);
    };
    let mut columns = serde_json::Map::new();
    for column in &table.columns {
        let name = crate::types::type_name(&column.data_type)
            .unwrap_or_else(|| column.data_type.to_string());
        columns.insert(column.name.clone(), Value::String(name));
    }
    let described = TableDescription {
        table: table.name.clone(),
        kind: kind(table).into(),
        columns,
    };
    ToolAnswer::of(&DescribeOutcome::Found(described), false)
}

/// `describe_table`'s answer: the table, or why there is none.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum DescribeOutcome {
    /// The table's columns.
    Found(TableDescription),
    /// `E020`, with a did-you-mean.
    NotFound(Findings),
}

/// `design_recipe`'s answer: the design, or why the request could not be designed.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum DesignOutcome {
    /// The designed recipe.
    Designed(Box<DesignAnswer>),
    /// What is wrong with the request.
    Refused(Findings),
}

/// Findings alone, for a tool that could not answer.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Findings {
    /// What is wrong, each with its code, message, path and hints.
    pub diagnostics: Vec<Diagnostic>,
}

/// A tool that runs queries needs a catalog with data, not a JSON description.
fn needs_data(context: &ToolContext, tool: &str) -> Result<(), String> {
    match context.catalog.root() {
        Some(_) => Ok(()),
        None => Err(format!(
            "`{tool}` runs the query on the data, and this server's catalog is a JSON description (schemas only): start it on a catalog directory (Parquet files and SQL views)"
        )),
    }
}

/// `compile_recipe`: the CLI's `compile --format json`.
pub fn compile_recipe(context: &ToolContext, args: CompileRecipe) -> Result<ToolAnswer, String> {
    let dialect = match &args.dialect {
        Some(name) => name
            .parse::<Dialect>()
            .map_err(|e| format!("dialect: {e}"))?,
        None => Dialect::Generic,
    };
    let options = context.run.compile_options_in(dialect);
    let answer: CompileAnswer =
        compile_value(&args.recipe, &context.catalog, &options).answer(&options);
    let failed = answer.sql.is_none();
    ToolAnswer::of(&answer, failed)
}

/// `validate_recipe`: the CLI's `validate --format json`.
pub async fn validate_recipe(
    context: &ToolContext,
    args: ValidateRecipe,
) -> Result<ToolAnswer, String> {
    needs_data(context, "validate_recipe")?;
    let mut options = context.run.clone();
    if let Some(n) = args.sample_size {
        if n == 0 {
            return Err("sample_size: must be at least 1".into());
        }
        options.validate.sample_size = n;
    }
    let (answer, _) = validate_value(&args.recipe, &context.catalog, &options).await;
    let failed = crate::diagnostic::fail(&answer.diagnostics, options.strict);
    ToolAnswer::of(&answer, failed)
}

/// `design_recipe`: the built-in crew's recipe for the request.
pub async fn design_recipe(
    context: &ToolContext,
    request: DesignRequest,
) -> Result<ToolAnswer, String> {
    needs_data(context, "design_recipe")?;
    let options = DesignOptions {
        run: context.run.clone(),
        ..DesignOptions::default()
    };
    match design(&request, &context.catalog, &options).await {
        Ok(designed) => {
            let report = designed.report();
            let run = designed.run;
            let failed = run.has_errors();
            let answer = DesignAnswer {
                recipe: designed.recipe,
                report,
                validation: ValidateAnswer {
                    sql: run.sql,
                    validation: run.validation,
                    diagnostics: run.diagnostics,
                },
            };
            ToolAnswer::of(&DesignOutcome::Designed(Box::new(answer)), failed)
        }
        Err(diagnostics) => ToolAnswer::of(&DesignOutcome::Refused(Findings { diagnostics }), true),
    }
}

/// `fix_recipe`: the recipe with its machine-applicable fixes, as `featurecraft fix`.
pub fn fix_recipe(context: &ToolContext, args: FixRecipe) -> Result<ToolAnswer, String> {
    let text = serde_json::to_string(&args.recipe).map_err(|e| format!("recipe: {e}"))?;
    let options = CompileOptions::for_dialect(Dialect::Generic);
    let fixed = fix(&text, &context.catalog, &options).map_err(|e| format!("recipe: {e}"))?;
    let failed = !fixed.compiles();
    let answer = FixAnswer {
        recipe: fixed.recipe,
        changes: fixed
            .fixes
            .into_iter()
            .map(|f| FixChange {
                code: f.code.as_str().to_string(),
                path: f.path,
                from: f.from,
                to: f.to,
            })
            .collect(),
        left: fixed
            .left
            .into_iter()
            .map(|(diagnostic, why)| LeftFinding { diagnostic, why })
            .collect(),
    };
    ToolAnswer::of(&answer, failed)
}
