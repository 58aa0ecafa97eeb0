//! The Python package's native module (feature `python`, built by maturin from
//! `python/pyproject.toml`): compile, validate, design, retry and materialize in-process
//! for a Python backend, over the same library calls as the command line. Every call that
//! reads data releases the GIL while it runs, and a Rust panic comes out as
//! `featurecraft.InternalError`, never as a crash.

mod errors;
mod findings;
mod runtime;
mod values;

use crate::catalog::Catalog;
use crate::compile::dialect::Dialect;
use crate::compile::{CompileOptions, Compiled, compile as compile_text};
use crate::contract::design::DesignRequest;
use crate::contract::job::Job;
use crate::contract::recipe::parse_recipe;
use crate::run::engine::Engine;
use crate::run::leakage::DEFAULT_LEAK_THRESHOLD;
use crate::run::sample::ValidateOptions;
use crate::run::{RunOptions, run_recipe};
use errors::{CatalogError, InternalError};
use findings::{Findings, PyDiagnostic, findings_error, json_text, python_spelling, to_python};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use runtime::run_detached;
use std::path::PathBuf;
use std::sync::Arc;
use values::{PyCatalog, PyCompiled, PyValidation, catalog_of, recipe_of};

/// The run options of the keyword arguments, or `ValueError` naming the bad one (one
/// argument per keyword, as the functions below take them).
#[expect(clippy::too_many_arguments, reason = "one argument per Python keyword")]
fn run_options(
    dialect: Dialect,
    sample_size: usize,
    null_threshold: f64,
    leak_threshold: f64,
    memory_limit: &str,
    strict: bool,
    engine: &str,
    timeout: Option<f64>,
) -> PyResult<RunOptions> {
    let engine = engine
        .parse::<Engine>()
        .map_err(|e| PyValueError::new_err(format!("engine: {e}")))?;
    crate::run::RunSettings {
        dialect,
        sample_size,
        null_threshold,
        leak_threshold,
        memory_limit,
        strict,
        engine,
        time_limit: timeout,
    }
    .check()
    .map_err(|e| PyValueError::new_err(python_spelling(&e)))
}

fn dialect_of(name: &str) -> PyResult<Dialect> {
    name.parse::<Dialect>().map_err(PyValueError::new_err)
}

/// The catalog, refused with `CatalogError` when it has no data for a query to run on.
fn with_data(catalog: Arc<Catalog>, call: &str) -> PyResult<Arc<Catalog>> {
    if catalog.root().is_some() {
        return Ok(catalog);
    }
    Err(CatalogError::new_err(format!(
        "this catalog describes schemas and holds no data, and {call} runs the query on the data: give the catalog directory (Parquet files and SQL views) instead"
    )))
}

/// Compiles a recipe into the CTAS of a dialect.
#[pyfunction]
#[pyo3(signature = (recipe, catalog, dialect = "generic", strict = false))]
fn compile(
    py: Python<'_>,
    recipe: &Bound<'_, PyAny>,
    catalog: &Bound<'_, PyAny>,
    dialect: &str,
    strict: bool,
) -> PyResult<PyCompiled> {
    let (text, name) = recipe_of(recipe)?;
    let catalog = catalog_of(py, catalog)?;
    let dialect = dialect_of(dialect)?;
    let options = CompileOptions {
        strict,
        ..CompileOptions::for_dialect(dialect)
    };
    let compiled = run_detached(py, async { compile_text(&text, &catalog, &options) })?;
    let findings = Findings::of(&compiled, &name);
    let ok = compiled.sql.is_some() && !findings.fails(strict);
    let sql = if ok { compiled.sql } else { None };
    Ok(PyCompiled::new(sql, dialect.name().into(), ok, findings))
}

/// Compiles a recipe and validates it on a sample of entities with DataFusion.
#[pyfunction]
// The defaults are literals for Python's introspection; the Python suite checks they
// are the library's (`_DEFAULTS`, from run::sample and run::leakage) and the stubs'.
#[pyo3(signature = (recipe, catalog, sample_size = 10_000, null_threshold = 0.5, memory_limit = "2G", return_sample = false, dialect = "datafusion", strict = false, engine = "local", timeout = None, leak_threshold = 0.95))]
#[expect(clippy::too_many_arguments, reason = "one argument per Python keyword")]
fn validate(
    py: Python<'_>,
    recipe: &Bound<'_, PyAny>,
    catalog: &Bound<'_, PyAny>,
    sample_size: usize,
    null_threshold: f64,
    memory_limit: &str,
    return_sample: bool,
    dialect: &str,
    strict: bool,
    engine: &str,
    timeout: Option<f64>,
    leak_threshold: f64,
) -> PyResult<PyValidation> {
    let (text, name) = recipe_of(recipe)?;
    let catalog = with_data(catalog_of(py, catalog)?, "validate")?;
    let options = run_options(
        dialect_of(dialect)?,
        sample_size,
        null_threshold,
        leak_threshold,
        memory_limit,
        strict,
        engine,
        timeout,
    )?;
    let outcome = run_detached(py, async {
        let parsed = parse_recipe(&text);
        let Some(recipe) = parsed.recipe else {
            return (parsed.diagnostics, None, None, None, None);
        };
        let mut run = run_recipe(&recipe, &catalog, &options).await;
        let mut diagnostics = parsed.diagnostics;
        diagnostics.append(&mut run.diagnostics);
        let failed = crate::diagnostic::fail(&diagnostics, options.strict);
        // The sampled rows come from the same query the command line's `--sample-out`
        // writes: the validation's own when one query gave them all, otherwise the recipe
        // compiled for DataFusion, sampled again with the same options.
        let sample = match (return_sample && !failed, run.rows.take()) {
            (false, _) => None,
            (true, Some(rows)) => Some(ipc_stream(&rows)),
            (true, None) => Some(sampled_rows(&recipe, &catalog, &options.validate).await),
        };
        (diagnostics, Some(recipe), run.sql, run.validation, sample)
    })?;
    let (diagnostics, recipe, sql, summary, sample) = outcome;
    let compiled = Compiled {
        recipe,
        plan: None,
        sql: None,
        diagnostics,
    };
    let findings = Findings::of(&compiled, &name);
    let summary = match summary {
        Some(summary) if !findings.fails(strict) => summary,
        _ => return Err(findings_error(py, &findings)),
    };
    let sample = match sample {
        None => None,
        Some(Ok(bytes)) => Some(arrow_table(py, &bytes)?),
        Some(Err(d)) => {
            return Err(findings_error(py, &Findings::unsourced(vec![d])));
        }
    };
    let summary =
        serde_json::to_value(&summary).map_err(|e| InternalError::new_err(e.to_string()))?;
    Ok(PyValidation::new(summary, sql, sample, findings))
}

/// The validation sample's rows as an Arrow IPC stream (the form pyarrow reads back).
async fn sampled_rows(
    recipe: &crate::contract::recipe::FeatureRecipe,
    catalog: &Catalog,
    options: &ValidateOptions,
) -> Result<Vec<u8>, crate::diagnostic::Diagnostic> {
    let compiled = crate::compile::compile_recipe(
        recipe,
        catalog,
        &CompileOptions::for_dialect(Dialect::DataFusion),
    );
    let Some(plan) = compiled.plan else {
        return Err(crate::diagnostic::Diagnostic::new(
            crate::diagnostic::Code::E042,
            "the recipe compiled for validation but not for its sample",
        ));
    };
    let sample = crate::run::sample::sample(&plan, catalog, options).await?;
    ipc_stream(&sample.rows)
}

/// `rows` as an Arrow IPC stream.
fn ipc_stream(rows: &arrow::array::RecordBatch) -> Result<Vec<u8>, crate::diagnostic::Diagnostic> {
    let mut bytes = Vec::new();
    let written = arrow::ipc::writer::StreamWriter::try_new(&mut bytes, &rows.schema()).and_then(
        |mut writer| {
            writer.write(rows)?;
            writer.finish()
        },
    );
    match written {
        Ok(()) => Ok(bytes),
        Err(e) => Err(crate::diagnostic::Diagnostic::new(
            crate::diagnostic::Code::E050,
            format!("cannot hand over the sampled rows: {e}"),
        )),
    }
}

/// An Arrow IPC stream as a `pyarrow.Table`.
fn arrow_table(py: Python<'_>, bytes: &[u8]) -> PyResult<Py<PyAny>> {
    let pyarrow = py.import("pyarrow").map_err(|e| {
        pyo3::exceptions::PyImportError::new_err(format!(
            "return_sample=True hands the rows over as a pyarrow.Table: install pyarrow ({e})"
        ))
    })?;
    let buffer = pyarrow.call_method1("py_buffer", (PyBytes::new(py, bytes),))?;
    let reader = pyarrow
        .getattr("ipc")?
        .call_method1("open_stream", (buffer,))?;
    Ok(reader.call_method0("read_all")?.unbind())
}

/// Compiles a recipe for DataFusion and writes the full table to
/// `warehouse/domain/table/` atomically; returns the table's folder. The catalog and the
/// warehouse may be object-store URLs given as `str` (`"s3://bucket/prefix"`: a
/// `pathlib.Path` would fold its `//`); there the table is a run prefix named by a pointer.
#[pyfunction]
#[pyo3(signature = (recipe, catalog, warehouse, domain = None, memory_limit = "2G", engine = "local", timeout = None, table_format = "parquet"))]
#[expect(clippy::too_many_arguments, reason = "one argument per Python keyword")]
fn materialize(
    py: Python<'_>,
    recipe: &Bound<'_, PyAny>,
    catalog: &Bound<'_, PyAny>,
    warehouse: PathBuf,
    domain: Option<String>,
    memory_limit: &str,
    engine: &str,
    timeout: Option<f64>,
    table_format: &str,
) -> PyResult<String> {
    let format: crate::contract::job::TableFormat =
        table_format.parse().map_err(PyValueError::new_err)?;
    let (text, name) = recipe_of(recipe)?;
    let catalog = with_data(catalog_of(py, catalog)?, "materialize")?;
    let options = run_options(
        Dialect::DataFusion,
        1,
        crate::run::sample::DEFAULT_NULL_THRESHOLD,
        DEFAULT_LEAK_THRESHOLD,
        memory_limit,
        false,
        engine,
        timeout,
    )?;
    let compiled = run_detached(py, async {
        compile_text(
            &text,
            &catalog,
            &CompileOptions::for_dialect(Dialect::DataFusion),
        )
    })?;
    let findings = Findings::of(&compiled, &name);
    let plan = match compiled.plan {
        Some(plan) if !findings.fails(false) => plan,
        _ => return Err(findings_error(py, &findings)),
    };
    let table = plan.target_table.last().cloned().unwrap_or_default();
    // `retail.churn` lands in WAREHOUSE/retail/churn/, as on the command line.
    let domain = domain.unwrap_or_else(|| match plan.target_table.as_slice() {
        [.., domain, _] => domain.clone(),
        _ => "default".to_string(),
    });
    let done = run_detached(py, async {
        crate::run::materialize::materialize(
            &plan,
            &catalog,
            &warehouse,
            format,
            &domain,
            &table,
            &options.validate,
        )
        .await
    })?;
    match done {
        Ok(done) => Ok(done.path.display().to_string()),
        Err(d) => Err(findings_error(py, &Findings::unsourced(vec![d]))),
    }
}

/// Lets the built-in crew design, check and prune a recipe; returns the FeatureRecipe.
#[pyfunction]
#[pyo3(signature = (
    catalog, spine, grain, label_column, *, label_type = "binary", label_name = "label",
    derivation = None, positive_class = None, max_features = None, target_table = "designed_features",
    cutoff_column = None, time_columns = None, windows = None, include_cutoff = false,
    schedule = None, label = None, relationships = None, max_depth = 2, primitives = None,
    sample_size = 10_000, null_threshold = 0.5, memory_limit = "2G", engine = "local",
    timeout = None, leak_threshold = 0.95
))]
#[expect(clippy::too_many_arguments, reason = "one argument per Python keyword")]
fn design<'py>(
    py: Python<'py>,
    catalog: &Bound<'py, PyAny>,
    spine: String,
    grain: Vec<String>,
    label_column: Option<String>,
    label_type: &str,
    label_name: &str,
    derivation: Option<String>,
    positive_class: Option<Bound<'py, PyAny>>,
    max_features: Option<usize>,
    target_table: &str,
    cutoff_column: Option<String>,
    time_columns: Option<Bound<'py, PyAny>>,
    windows: Option<Vec<String>>,
    include_cutoff: bool,
    schedule: Option<Bound<'py, PyAny>>,
    label: Option<Bound<'py, PyAny>>,
    relationships: Option<Bound<'py, PyAny>>,
    max_depth: u8,
    primitives: Option<Vec<String>>,
    sample_size: usize,
    null_threshold: f64,
    memory_limit: &str,
    engine: &str,
    timeout: Option<f64>,
    leak_threshold: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let catalog = with_data(catalog_of(py, catalog)?, "design")?;
    let run = run_options(
        Dialect::DataFusion,
        sample_size,
        null_threshold,
        leak_threshold,
        memory_limit,
        false,
        engine,
        timeout,
    )?;
    // The request is the service's design object: built as JSON, it is read by the same
    // parser, so every rule (and message) of the service holds here.
    let mut request = serde_json::json!({
        "spine": spine,
        "entity_grain": grain,
        "label": label_json(
            (label_name, label_type),
            label_column,
            label,
            derivation,
            positive_class,
        )?,
        "max_depth": max_depth,
    });
    if let Some(n) = max_features {
        request["max_features"] = n.into();
    }
    if let Some(windows) = windows {
        request["windows"] = windows.into();
    }
    if let Some(primitives) = primitives {
        request["primitives"] = primitives.into();
    }
    if let Some(relationships) = relationships {
        request["relationships"] = relationships_json(&relationships)?;
    }
    if let Some(point_in_time) =
        point_in_time_json(cutoff_column, time_columns, include_cutoff, schedule)?
    {
        request["point_in_time"] = point_in_time;
    }
    let request: DesignRequest = serde_json::from_value(request)
        .map_err(|e| PyValueError::new_err(format!("design request: {e}")))?;
    let options = crate::design::DesignOptions {
        run,
        target_table: target_table.to_string(),
        ..Default::default()
    };
    let designed = run_detached(py, async {
        crate::design::design(&request, &catalog, &options).await
    })?;
    let designed = match designed {
        Ok(d) => d,
        Err(diagnostics) => return Err(findings_error(py, &Findings::unsourced(diagnostics))),
    };
    if designed.run.has_errors() {
        let compiled = Compiled {
            recipe: Some(designed.recipe.clone()),
            plan: None,
            sql: None,
            diagnostics: designed.run.diagnostics.clone(),
        };
        return Err(findings_error(
            py,
            &Findings::of(&compiled, "<designed recipe>"),
        ));
    }
    let recipe = serde_json::to_value(&designed.recipe)
        .map_err(|e| InternalError::new_err(e.to_string()))?;
    to_python(py, &recipe)
}

/// The design request's label as JSON: its name and type, its column, a future label's
/// fields (as a recipe spells them), a derivation and the positive class.
fn label_json(
    (name, label_type): (&str, &str),
    column: Option<String>,
    future: Option<Bound<'_, PyAny>>,
    derivation: Option<String>,
    positive_class: Option<Bound<'_, PyAny>>,
) -> PyResult<serde_json::Value> {
    let mut label = serde_json::json!({"name": name, "type": label_type});
    if let Some(column) = column {
        label["column"] = column.into();
    }
    if let Some(fields) = future {
        match json_value(&fields)? {
            serde_json::Value::Object(fields) => {
                for (name, value) in fields {
                    label[name] = value;
                }
            }
            _ => {
                return Err(PyValueError::new_err(
                    "label must be a mapping of label fields (source_table, expression, window, gap, empty_value)",
                ));
            }
        }
    }
    if let Some(derivation) = derivation {
        label["derivation"] = derivation.into();
    }
    if let Some(value) = positive_class {
        label["positive_class_value"] = json_value(&value)?;
    }
    Ok(label)
}

/// The design request's `point_in_time` as JSON, when there is a cutoff column; the other
/// point-in-time keywords need it.
fn point_in_time_json(
    cutoff_column: Option<String>,
    time_columns: Option<Bound<'_, PyAny>>,
    include_cutoff: bool,
    schedule: Option<Bound<'_, PyAny>>,
) -> PyResult<Option<serde_json::Value>> {
    let Some(cutoff) = cutoff_column else {
        if time_columns.is_some() || include_cutoff || schedule.is_some() {
            return Err(PyValueError::new_err(
                "time_columns, include_cutoff and schedule need cutoff_column",
            ));
        }
        return Ok(None);
    };
    let mut point_in_time = serde_json::json!({"cutoff_column": cutoff});
    if let Some(columns) = time_columns {
        point_in_time["time_columns"] = json_value(&columns)?;
    }
    if include_cutoff {
        point_in_time["include_cutoff"] = true.into();
    }
    if let Some(schedule) = schedule {
        point_in_time["schedule"] = json_value(&schedule)?;
    }
    Ok(Some(point_in_time))
}

/// `{"child.col": "parent.key"}` or `[{"child": …, "parent": …}]` as the request's list.
fn relationships_json(object: &Bound<'_, PyAny>) -> PyResult<serde_json::Value> {
    let value = json_value(object)?;
    match value {
        serde_json::Value::Object(pairs) => Ok(pairs
            .into_iter()
            .map(|(child, parent)| serde_json::json!({"child": child, "parent": parent}))
            .collect()),
        list => Ok(list),
    }
}

fn json_value(object: &Bound<'_, PyAny>) -> PyResult<serde_json::Value> {
    serde_json::from_str(&json_text(object)?).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// Retries a failed job (the contract's Job as a dict): returns the new Job. With `fix`,
/// the recipe's machine-applicable fixes are applied first and recorded in its notes; with
/// `crew_command` (`"PROGRAM ARGS…"`, run without a shell), that external crew proposes
/// the recipe, up to `crew_rounds` times, each round within `crew_timeout` seconds.
#[pyfunction]
#[pyo3(signature = (job, catalog, sample_size = 10_000, memory_limit = "2G", fix = false, engine = "local", timeout = None, leak_threshold = 0.95, crew_command = None, crew_rounds = 3, crew_timeout = 300.0))]
#[expect(clippy::too_many_arguments, reason = "one argument per Python keyword")]
fn retry<'py>(
    py: Python<'py>,
    job: &Bound<'py, PyAny>,
    catalog: &Bound<'py, PyAny>,
    sample_size: usize,
    memory_limit: &str,
    fix: bool,
    engine: &str,
    timeout: Option<f64>,
    leak_threshold: f64,
    crew_command: Option<&str>,
    crew_rounds: u32,
    crew_timeout: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let crew = match crew_command {
        None => None,
        Some(command) => {
            if !(crew_timeout.is_finite() && crew_timeout > 0.0 && crew_timeout <= 30.0 * 86_400.0)
            {
                return Err(PyValueError::new_err(format!(
                    "crew_timeout must be a number of seconds above 0 and at most 30 days, not {crew_timeout}"
                )));
            }
            let limit = std::time::Duration::from_secs_f64(crew_timeout);
            let crew = crate::jobs::crew::Crew::parse(command, crew_rounds, limit)
                .map_err(|e| PyValueError::new_err(format!("crew_command: {e}")))?;
            Some(crew)
        }
    };
    let job: Job = serde_json::from_str(&json_text(job)?)
        .map_err(|e| PyValueError::new_err(format!("not a job: {e}")))?;
    let catalog = with_data(catalog_of(py, catalog)?, "retry")?;
    let options = run_options(
        Dialect::DataFusion,
        sample_size,
        crate::run::sample::DEFAULT_NULL_THRESHOLD,
        leak_threshold,
        memory_limit,
        false,
        engine,
        timeout,
    )?;
    let next = run_detached(py, async {
        let job = if fix {
            crate::author::fix::fix_job(&job, &catalog, &options.compile_options()).0
        } else {
            job
        };
        match &crew {
            Some(crew) => crate::jobs::retry::retry_with_crew(&job, &catalog, &options, crew).await,
            None => crate::jobs::retry::retry(&job, &catalog, &options).await,
        }
    })?
    .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let next = serde_json::to_value(&next).map_err(|e| InternalError::new_err(e.to_string()))?;
    to_python(py, &next)
}

/// The JSON Schema of a recipe (`"recipe"`), a job (`"job"`) or a design request
/// (`"design_request"`), generated from the types the parser uses.
#[pyfunction]
#[pyo3(signature = (kind = "recipe"))]
fn json_schema<'py>(py: Python<'py>, kind: &str) -> PyResult<Bound<'py, PyAny>> {
    use crate::contract::schema;
    let schema = match kind {
        "recipe" => schema::recipe_schema(),
        "job" => schema::job_schema(),
        "design_request" => schema::design_request_schema(),
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown schema `{other}`; choose recipe, job or design_request"
            )));
        }
    };
    to_python(py, &schema)
}

/// The native module; `featurecraft/__init__.py` re-exports it.
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(compile, m)?)?;
    m.add_function(wrap_pyfunction!(validate, m)?)?;
    m.add_function(wrap_pyfunction!(materialize, m)?)?;
    m.add_function(wrap_pyfunction!(design, m)?)?;
    m.add_function(wrap_pyfunction!(retry, m)?)?;
    m.add_function(wrap_pyfunction!(json_schema, m)?)?;
    m.add_class::<PyCatalog>()?;
    m.add_class::<PyCompiled>()?;
    m.add_class::<PyValidation>()?;
    m.add_class::<PyDiagnostic>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // The library's defaults, which the keyword defaults above repeat as literals (for
    // Python's introspection): the Python suite checks the two agree.
    let defaults = pyo3::types::PyDict::new(m.py());
    defaults.set_item("sample_size", crate::run::sample::DEFAULT_SAMPLE_SIZE)?;
    defaults.set_item("null_threshold", crate::run::sample::DEFAULT_NULL_THRESHOLD)?;
    defaults.set_item("memory_limit", crate::run::sample::DEFAULT_MEMORY_LIMIT)?;
    defaults.set_item("leak_threshold", DEFAULT_LEAK_THRESHOLD)?;
    defaults.set_item("crew_rounds", crate::jobs::crew::DEFAULT_CREW_ROUNDS)?;
    defaults.set_item(
        "crew_timeout",
        crate::jobs::crew::DEFAULT_CREW_ROUND_LIMIT.as_secs_f64(),
    )?;
    m.add("_DEFAULTS", defaults)?;
    m.add(
        "DIALECTS",
        Dialect::ALL.iter().map(|d| d.name()).collect::<Vec<_>>(),
    )?;
    errors::register(m)
}
