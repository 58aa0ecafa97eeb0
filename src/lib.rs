//! # featurecraft
//!
//! Turns a feature recipe (an entity grain, a label and features, each a SQL expression
//! over a source table) into one checked `CREATE TABLE … AS SELECT`.
//!
//! ## Pipeline
//!
//! | stage | function | input | output |
//! | --- | --- | --- | --- |
//! | parse | [`contract::recipe::parse_recipe`] | recipe JSON | [`FeatureRecipe`] + diagnostics |
//! | analyze | [`compile::analyze::analyze`] | recipe, [`Catalog`] | [`Plan`] + diagnostics |
//! | render | [`compile::render::render`] | plan, [`Dialect`] | CTAS (AST, and text printed by [`compile::print`] and [`compile::escape`]) |
//! | compile | [`compile()`] | recipe JSON, catalog, options | all of the above |
//! | validate | [`run::validate::validate`] | plan, catalog, options | [`ValidationSummary`] + diagnostics |
//! | materialize | [`run::materialize::materialize`] | plan, catalog, warehouse | a Parquet table |
//! | design | [`design::design`] | design request, catalog | a validated recipe |
//! | retry | [`jobs::retry::retry`] | failed [`Job`], catalog | the new job |
//! | test | [`author::test_recipe`] | recipe file, catalog | snapshot and unit-test results |
//! | fix | [`author::fix::fix`] | recipe JSON, catalog | the recipe with its clear fixes applied |
//! | diff | [`author::diff::diff`] | two recipes, catalog | feature, SQL and value changes |
//!
//! The modules follow the stages, each importing only the ones before it (ARCHITECTURE.md):
//! [`diagnostic`], [`sql`] and [`types`] under everything, then [`contract`], [`catalog`],
//! [`compile`](mod@compile), [`run`], [`design`], [`jobs`], [`author`], with the `cluster`
//! feature `cluster` (a Ballista cluster's processes with featurecraft's functions) and,
//! with the `server` feature, `server` (whose OpenAPI document is `server::openapi`).
//!
//! The `featurecraft` binary (feature `cli`), the HTTP service in `server` (feature
//! `server`, with its SQLite job store) and the Python package's native module (feature
//! `python`, built by maturin from `python/`) are thin layers over these functions.
//!
//! Every stage returns its findings as [`Diagnostic`] values (code, severity, message,
//! recipe path, span, hints); none of them logs or panics on user input.
//!
//! ## Diagnostic codes
//!
//! One table in [`diagnostic`] (`Code`, with each code's slug and meaning); the README's
//! tables and this one are checked against it.
//!
//! | code | meaning |
//! | --- | --- |
//! | E001 | malformed recipe JSON, a missing field or a field of the wrong type |
//! | E002 | `entity_grain` is empty |
//! | E003 | an output name (or the target table) is not a portable identifier of at most 128 characters |
//! | E004 | duplicate output name (grain, features and label, ignoring case) |
//! | E005 | more features than the limit (10 000 by default, `CompileOptions::max_features`): refused before any fragment is parsed |
//! | E010 | a fragment does not parse, or is too large: longer than 100 000 characters, nested beyond the parser's 64 levels, or more than 256 expressions deep (a chain `a + b + c …` nests one level per operator) |
//! | E011 | a fragment is not a single expression (trailing input, a second statement) |
//! | E012 | forbidden construct: subquery, window function, nested aggregate, lambda, placeholder, or anything outside the fragment grammar (the README's Fragments section) |
//! | E020 | unknown table |
//! | E021 | unknown column, or a column qualified with a table the fragment does not read |
//! | E022 | the label's table cannot be determined (none or several qualify) |
//! | E023 | a source lacks a grain column (in a point-in-time recipe: a column of the entity key) |
//! | E024 | `point_in_time.cutoff_column` is not one of `entity_grain`, is the grain's only column, or is not a date or timestamp in the spine |
//! | E025 | a time column of `point_in_time.time_columns` is missing from its table or is not a date or timestamp (an unknown table there is `E020`) |
//! | E026 | a feature's `window` does not parse, is not positive, counts months or years (not fixed lengths), or is set outside a point-in-time recipe or on a source with no time column |
//! | E027 | a relationship in `relationships` is not `table.column` on both sides, links columns of different types or a table to itself, or a feature's source reaches the entity key through it by more than one path, or only with row-level features (an entity has many of its rows) |
//! | E028 | a derived column in `derived_columns` has a bad name or one its table already has, aggregates its own table, is not an aggregate, its child table is linked to its table by no relationship or by several, or, in a point-in-time recipe, its table is not read with its own time column |
//! | E029 | a table the query reads has the name of one of the compiled query's CTEs (`spine`, `cutoffs`, `src_…`), which the engine would read instead (the spine's own table may have such a name) |
//! | E030 | an aggregate mixed with a non-grouped column (in one expression or one source) |
//! | E031 | the label derivation reads a column outside the label's table |
//! | E032 | a label from a window after the cutoff (`label.source_table`, `expression`, `window`, `gap`) outside a point-in-time recipe, with a missing or untimed source, one that does not reach the entity key, an expression that is not an aggregate, a window or gap that does not parse, counts months or years, or a negative gap |
//! | E033 | `point_in_time.schedule` names an unknown, untimed source or one without the entity key, has an `every` that is not a positive fixed length, a `start` or `until` that is neither a timestamp nor `first_event`/`last_event`, `max_per_entity` 0, or comes with a label read from a spine table instead of a window after the cutoff |
//! | E040 | a construct the dialect cannot express faithfully (e.g. `FILTER (WHERE …)` in BigQuery or Snowflake, `ILIKE` in BigQuery, `TRY_CAST` in PostgreSQL, a float cast to text outside DataFusion and DuckDB, `DATE_TRUNC` in BigQuery) |
//! | E041 | a literal or name the dialect cannot hold or quote safely (a NUL character anywhere; a backtick in a BigQuery name; an output name over PostgreSQL's 63 bytes) |
//! | E042 | the printed CTAS does not read back as the analyzed statement; the SQL is withheld (a featurecraft bug: please report the recipe) |
//! | W001 | unknown recipe field (a typo such as `expresion`) |
//! | W010 | possible label leakage (an error in strict mode) |
//! | W011 | declared `data_type` disagrees with the expression's type family, or is unknown |
//! | W012 | in a point-in-time recipe, a feature reads a source with no time column that is not declared static (`null` in `time_columns`): it is not bounded by the cutoff and may leak (an error in strict mode) |
//! | W013 | a fragment reads the clock or random numbers (`CURRENT_DATE`, `NOW()`, `RANDOM()`, …): the table differs on every run, and validation sees other values than materialization |
//! | W014 | `point_in_time.time_columns` names a table no feature reads |
//! | E050 | the query failed while running (a cast that fails on the data, an invalid DataFusion setting) |
//! | E051 | the run exceeded its memory limit |
//! | E052 | a data file is missing or unreadable |
//! | E053 | the output cannot be written (the warehouse folder, a full disk) |
//! | E054 | the run did not finish within its time limit and was stopped; its cluster jobs were cancelled (run it again with a higher limit, or once the cluster has its executors back) |

pub mod author;
pub mod catalog;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod compile;
pub mod contract;
pub mod design;
pub mod diagnostic;
pub mod jobs;
#[cfg(feature = "mcp")]
pub mod mcp;
#[cfg(feature = "python")]
mod python;
pub mod run;
#[cfg(feature = "server")]
pub mod server;
pub mod sql;
// The retail data generator of the fixtures, the tests and the benchmarks: not part of the
// pipeline a library user calls, so it stays out of the documentation.
#[doc(hidden)]
pub mod testkit;
pub mod types;

pub use catalog::Catalog;
pub use compile::analyze::{AnalyzeOptions, Plan, analyze};
pub use compile::dialect::Dialect;
pub use compile::render::render;
pub use compile::{CompileOptions, Compiled, compile, compile_recipe};
pub use contract::job::{Job, JobStatus, ValidationSummary};
pub use contract::recipe::{FeatureRecipe, FeatureSpec, LabelSpec, LabelType, parse_recipe};
pub use diagnostic::{Code, Diagnostic, FeatureField, LabelField, RecipePath, Severity};
