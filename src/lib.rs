//! # featurecraft
//!
//! Turns a feature recipe (an entity grain, a label and features, each a SQL expression
//! over a source table) into one checked `CREATE TABLE … AS SELECT`.
//!
//! ## Pipeline
//!
//! | stage | function | input | output |
//! | --- | --- | --- | --- |
//! | parse | [`recipe::parse_recipe`] | recipe JSON | [`FeatureRecipe`] + diagnostics |
//! | analyze | [`analyze::analyze`] | recipe, [`Catalog`] | [`analyze::Plan`] + diagnostics |
//! | render | [`render::render`] | plan, [`Dialect`] | CTAS (AST, and text printed by [`print`] and [`escape`]) |
//! | compile | [`compile`] | recipe JSON, catalog, options | all of the above |
//! | validate | [`validate::validate`] | plan, catalog, options | [`ValidationSummary`] + diagnostics |
//! | retry | [`retry::retry`] | failed [`Job`], catalog | the new job |
//! | materialize | [`materialize::materialize`] | plan, catalog, warehouse | a Parquet table |
//!
//! The `featurecraft` binary (feature `cli`) and the HTTP service in `server` (feature
//! `server`, with its SQLite job store) are thin layers over these functions.
//!
//! Every stage returns its findings as [`Diagnostic`] values (code, severity, message,
//! recipe path, span, hints); none of them logs or panics on user input.
//!
//! ## Diagnostic codes
//!
//! | code | meaning |
//! | --- | --- |
//! | E001 | malformed recipe JSON, a missing field or a field of the wrong type |
//! | E002 | `entity_grain` is empty |
//! | E003 | an output name (or the target table) is not a portable identifier `[A-Za-z_][A-Za-z0-9_]*` of at most 128 characters |
//! | E004 | duplicate output name (grain, features and label compared ignoring case) |
//! | E005 | more features than [`analyze::MAX_FEATURES`] (or [`CompileOptions::max_features`]) |
//! | E010 | a fragment does not parse, or is too large ([`fragment::MAX_FRAGMENT_CHARS`], [`fragment::MAX_EXPRESSION_DEPTH`]) |
//! | E011 | a fragment is not a single expression (trailing input, a second statement) |
//! | E012 | a forbidden construct: subquery, window function, nested aggregate, lambda, placeholder, or anything outside the fragment grammar |
//! | E020 | unknown table |
//! | E021 | unknown column, or a column qualified with another table |
//! | E022 | the label's table cannot be determined (none or several tables qualify) |
//! | E023 | a source lacks a grain column |
//! | E030 | an aggregate mixed with a non-grouped column (in one expression, or in one source's CTE) |
//! | E031 | the label derivation reads a column outside the label's table |
//! | E040 | a construct the chosen dialect cannot express (e.g. `FILTER (WHERE …)` on BigQuery) |
//! | E041 | a literal or name the dialect cannot hold or quote safely ([`escape`]) |
//! | E042 | the printed SQL does not read back as the analyzed statement ([`print`]): a bug |
//! | W001 | unknown recipe field (a typo such as `expresion`) |
//! | W010 | possible label leakage: a feature reads a column the label is computed from (an error with `--strict`) |
//! | W011 | declared `data_type` disagrees with the expression's type family, or is not a known type |
//! | W012 | a fragment reads the clock or random numbers: the table differs on every run |

pub mod analyze;
pub mod catalog;
pub mod design;
pub mod diagnostic;
pub mod dialect;
pub mod distinct;
pub mod escape;
pub mod fragment;
pub mod generate;
pub mod infer;
pub mod job;
pub mod keyhash;
pub mod materialize;
pub mod print;
pub mod recipe;
pub mod render;
pub mod retry;
#[cfg(feature = "server")]
pub mod server;
pub mod types;
pub mod validate;

pub use analyze::{AnalyzeOptions, Plan, analyze};
pub use catalog::Catalog;
pub use diagnostic::{Code, Diagnostic, Severity};
pub use dialect::Dialect;
pub use job::{Job, JobStatus, ValidationSummary};
pub use recipe::{FeatureRecipe, FeatureSpec, LabelSpec, LabelType, parse_recipe};
pub use render::render;

/// Options of [`compile`].
#[derive(Debug, Clone)]
pub struct CompileOptions {
    pub dialect: Dialect,
    /// Suspected leakage is an error rather than a warning.
    pub strict: bool,
    /// More features than this are refused (`E005`); [`analyze::MAX_FEATURES`] by default.
    pub max_features: usize,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions::for_dialect(Dialect::default())
    }
}

impl CompileOptions {
    /// Compiling for `dialect`, leakage a warning: what every run of the engine uses.
    pub fn for_dialect(dialect: Dialect) -> Self {
        CompileOptions {
            dialect,
            strict: false,
            max_features: analyze::MAX_FEATURES,
        }
    }
}

/// Everything compiling a recipe produced.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub recipe: Option<FeatureRecipe>,
    pub plan: Option<Plan>,
    /// The pretty CTAS, when the recipe has no error.
    pub sql: Option<String>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Compiled {
    /// True when an error was found (the CTAS is then absent).
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The recipe text a diagnostic's path points at, for caret rendering.
    pub fn fragment_at(&self, path: &str) -> Option<&str> {
        let recipe = self.recipe.as_ref()?;
        match path {
            "label.derivation" => recipe.label.derivation.as_deref(),
            "label.column" => recipe.label.column.as_deref(),
            _ => {
                let rest = path.strip_prefix("features[")?;
                let (index, field) = rest.split_once("].")?;
                let feature = recipe.features.get(index.parse::<usize>().ok()?)?;
                match field {
                    "expression" => Some(feature.expression.as_str()),
                    "source_table" => Some(feature.source_table.as_str()),
                    _ => None,
                }
            }
        }
    }
}

/// Parses, analyzes and renders a recipe: the whole compile stage.
pub fn compile(recipe_json: &str, catalog: &Catalog, options: &CompileOptions) -> Compiled {
    let parsed = parse_recipe(recipe_json);
    let mut diagnostics = parsed.diagnostics;
    let Some(recipe) = parsed.recipe else {
        return Compiled {
            recipe: None,
            plan: None,
            sql: None,
            diagnostics,
        };
    };
    let (plan, sql, found) = analyze_and_render(&recipe, catalog, options);
    diagnostics.extend(found);
    Compiled {
        recipe: Some(recipe),
        plan,
        sql,
        diagnostics,
    }
}

/// Analyzes and renders an already parsed recipe.
pub fn compile_recipe(
    recipe: &FeatureRecipe,
    catalog: &Catalog,
    options: &CompileOptions,
) -> Compiled {
    let (plan, sql, diagnostics) = analyze_and_render(recipe, catalog, options);
    Compiled {
        recipe: Some(recipe.clone()),
        plan,
        sql,
        diagnostics,
    }
}

/// The plan and CTAS of a recipe (both absent on an error) and every finding.
fn analyze_and_render(
    recipe: &FeatureRecipe,
    catalog: &Catalog,
    options: &CompileOptions,
) -> (Option<Plan>, Option<String>, Vec<Diagnostic>) {
    let analysis = analyze(
        recipe,
        catalog,
        &AnalyzeOptions {
            strict: options.strict,
            max_features: options.max_features,
        },
    );
    let mut diagnostics = analysis.diagnostics;
    let mut sql = None;
    if let Some(plan) = &analysis.plan {
        match render(plan, options.dialect) {
            Ok(rendered) => sql = Some(rendered.sql),
            Err(errors) => diagnostics.extend(errors),
        }
    }
    let plan = if sql.is_some() { analysis.plan } else { None };
    (plan, sql, diagnostics)
}
