//! Compiling a recipe: each fragment parsed alone ([`fragment`]), typed (`infer`) and
//! resolved against the catalog into a [`Plan`] ([`analyze`](mod@analyze); the cutoff and
//! windows of point-in-time recipes: [`point_in_time`]; join paths through declared
//! [`relationships`]), then rendered
//! as a sqlparser AST for a dialect ([`dialect`], [`render`](mod@render)) and printed by featurecraft's
//! own escaper, checked by reading it back ([`escape`], [`print`](mod@print)).

pub(crate) mod adapt;
pub mod analyze;
pub(crate) mod ast;
pub mod cte;
pub mod dialect;
pub mod escape;
pub mod fragment;
pub(crate) mod functions;
pub(crate) mod infer;
pub mod point_in_time;
pub mod print;
pub mod relationships;
pub mod render;
pub(crate) mod spine;
pub(crate) mod timed;

use crate::catalog::Catalog;
use crate::contract::answer::CompileAnswer;
use crate::contract::recipe::{FeatureRecipe, ParsedRecipe, parse_recipe, recipe_from_value};
use crate::diagnostic::{Diagnostic, FeatureField, LabelField, RecipePath};
use analyze::{AnalyzeOptions, Plan, analyze};
use dialect::Dialect;
use render::render;
use serde_json::Value;

/// Options of [`compile`].
#[derive(Debug, Clone)]
pub struct CompileOptions {
    /// The dialect of the printed CTAS.
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
    /// The recipe as parsed, when its JSON was readable.
    pub recipe: Option<FeatureRecipe>,
    /// The checked plan, when the recipe has no error.
    pub plan: Option<Plan>,
    /// The pretty CTAS, when the recipe has no error.
    pub sql: Option<String>,
    /// Every finding of every stage, errors and warnings.
    pub diagnostics: Vec<Diagnostic>,
}

impl Compiled {
    /// The answer every front end gives (`compile --format json`, `POST /compile`, the
    /// `compile_recipe` tool) for the options it was compiled with: the SQL in their
    /// dialect, withheld when the findings fail ([`crate::diagnostic::fail`]: any error, or
    /// any finding when strict).
    pub fn answer(self, options: &CompileOptions) -> CompileAnswer {
        let failed = crate::diagnostic::fail(&self.diagnostics, options.strict);
        let sql = self.sql.filter(|_| !failed);
        CompileAnswer::new(options.dialect.name(), sql, self.diagnostics)
    }

    /// True when an error was found (the CTAS is then absent).
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The recipe text a diagnostic's path points at, for caret rendering.
    pub fn fragment_at(&self, path: &RecipePath) -> Option<&str> {
        let recipe = self.recipe.as_ref()?;
        match path {
            RecipePath::Label(LabelField::Derivation) => recipe.label.derivation.as_deref(),
            RecipePath::Label(LabelField::Column) => recipe.label.column.as_deref(),
            RecipePath::Feature(index, Some(field)) => {
                let feature = recipe.features.get(*index)?;
                match field {
                    FeatureField::Expression => Some(feature.expression.as_str()),
                    FeatureField::SourceTable => Some(feature.source_table.as_str()),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

impl Compiled {
    /// The findings as the command line prints them without colour: each with its caret
    /// under the fragment, then `NAME: N error(s), M warning(s)` (empty without findings).
    pub fn report(&self, name: &str) -> String {
        let mut out = String::new();
        for d in &self.diagnostics {
            let fragment = d.path.as_deref().and_then(|p| self.fragment_at(p));
            out.push_str(&d.render(fragment));
        }
        let errors = self.diagnostics.iter().filter(|d| d.is_error()).count();
        let warnings = self.diagnostics.len() - errors;
        if errors + warnings > 0 {
            out.push_str(&format!(
                "{name}: {errors} error(s), {warnings} warning(s)\n"
            ));
        }
        out
    }
}

/// Parses, analyzes and renders a recipe: the whole compile stage.
pub fn compile(recipe_json: &str, catalog: &Catalog, options: &CompileOptions) -> Compiled {
    compile_parsed(parse_recipe(recipe_json), catalog, options)
}

/// [`compile`] for a recipe already read as JSON, as the service and the MCP tools
/// receive it.
pub fn compile_value(recipe: &Value, catalog: &Catalog, options: &CompileOptions) -> Compiled {
    compile_parsed(recipe_from_value(recipe), catalog, options)
}

fn compile_parsed(parsed: ParsedRecipe, catalog: &Catalog, options: &CompileOptions) -> Compiled {
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
