//! The package's results (compile, validation) and arguments (the recipe and the catalog,
//! in each form Python code has them).

use super::findings::{Findings, diagnostic_objects, json_text, to_python};
use crate::catalog::Catalog;
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use std::path::PathBuf;
use std::sync::Arc;

/// A compiled recipe: the SQL when it compiled cleanly, and every finding.
#[pyclass(frozen, name = "Compiled", module = "featurecraft")]
pub struct PyCompiled {
    /// The CTAS, `None` when the recipe failed (an error, or a warning when strict).
    #[pyo3(get)]
    sql: Option<String>,
    /// The dialect the SQL is written in.
    #[pyo3(get)]
    dialect: String,
    /// True when the SQL is there: no error (and, when strict, no warning).
    #[pyo3(get)]
    ok: bool,
    findings: Findings,
}

impl PyCompiled {
    /// The result of one compile.
    pub fn new(sql: Option<String>, dialect: String, ok: bool, findings: Findings) -> Self {
        PyCompiled {
            sql,
            dialect,
            ok,
            findings,
        }
    }
}

#[pymethods]
impl PyCompiled {
    /// Every finding, errors and warnings, as `Diagnostic` objects.
    #[getter]
    fn diagnostics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        diagnostic_objects(py, &self.findings)
    }

    /// The caret report the command line prints for the findings.
    #[getter]
    fn report(&self) -> &str {
        &self.findings.report
    }

    /// Raises `RecipeError` unless the recipe compiled (`ok`); returns the SQL otherwise.
    fn check(&self, py: Python<'_>) -> PyResult<String> {
        match (&self.sql, self.ok) {
            (Some(sql), true) => Ok(sql.clone()),
            _ => Err(super::findings::findings_error(py, &self.findings)),
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "Compiled(dialect={:?}, ok={}, diagnostics={})",
            self.dialect,
            if self.ok { "True" } else { "False" },
            self.findings.diagnostics.len()
        )
    }
}

/// A validation on a sample: the contract's summary, the findings and, when asked, the
/// sampled rows.
#[pyclass(frozen, name = "Validation", module = "featurecraft")]
pub struct PyValidation {
    summary: serde_json::Value,
    /// The SQL that was validated, in the dialect asked for.
    #[pyo3(get)]
    sql: Option<String>,
    /// The sampled rows (grain, features, label) as a `pyarrow.Table` in grain order, or `None`.
    #[pyo3(get)]
    sample: Option<Py<PyAny>>,
    findings: Findings,
}

impl PyValidation {
    /// The result of one validation.
    pub fn new(
        summary: serde_json::Value,
        sql: Option<String>,
        sample: Option<Py<PyAny>>,
        findings: Findings,
    ) -> Self {
        PyValidation {
            summary,
            sql,
            sample,
            findings,
        }
    }
}

#[pymethods]
impl PyValidation {
    /// The ValidationSummary, exactly the contract's JSON shape, as a dict.
    #[getter]
    fn summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.summary)
    }

    /// Every finding (warnings: the validation passed), as `Diagnostic` objects.
    #[getter]
    fn diagnostics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        diagnostic_objects(py, &self.findings)
    }

    fn __repr__(&self) -> String {
        format!(
            "Validation(estimated_row_count={}, diagnostics={})",
            self.summary
                .get("estimated_row_count")
                .map_or_else(|| "None".to_string(), |v| v.to_string()),
            self.findings.diagnostics.len()
        )
    }
}

/// A catalog loaded once and reused across calls (a directory of Parquet files and SQL
/// views, a JSON catalog file, or the JSON catalog form as a dict).
#[pyclass(frozen, name = "Catalog", module = "featurecraft")]
pub struct PyCatalog {
    pub(super) catalog: Arc<Catalog>,
    described: String,
}

#[pymethods]
impl PyCatalog {
    #[new]
    fn new(py: Python<'_>, source: &Bound<'_, PyAny>) -> PyResult<Self> {
        let described = source.str()?.to_string();
        let catalog = load_catalog(py, source)?;
        Ok(PyCatalog { catalog, described })
    }

    /// The names of the catalog's tables and views.
    fn tables(&self) -> Vec<String> {
        self.catalog.tables().map(|t| t.name.clone()).collect()
    }

    /// True when the catalog has data to run queries on (a directory), not only schemas.
    #[getter]
    fn has_data(&self) -> bool {
        self.catalog.root().is_some()
    }

    fn __repr__(&self) -> String {
        format!("Catalog({:?})", self.described)
    }
}

/// A path given as `str` or `os.PathLike`.
fn path_of(object: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    let py = object.py();
    py.import("os")?
        .call_method1("fspath", (object,))?
        .extract::<PathBuf>()
}

/// The catalog an argument names: a `Catalog` is reused, a dict is the JSON catalog form,
/// a path is loaded (a directory or a JSON file).
pub fn catalog_of(py: Python<'_>, object: &Bound<'_, PyAny>) -> PyResult<Arc<Catalog>> {
    if let Ok(loaded) = object.cast::<PyCatalog>() {
        return Ok(loaded.get().catalog.clone());
    }
    load_catalog(py, object)
}

fn load_catalog(py: Python<'_>, object: &Bound<'_, PyAny>) -> PyResult<Arc<Catalog>> {
    let catalog_error = |e: String| super::errors::CatalogError::new_err(e);
    if object.is_instance_of::<PyDict>() {
        let text = json_text(object)?;
        return Catalog::from_json(&text)
            .map(Arc::new)
            .map_err(|e| catalog_error(format!("catalog dict: {e}")));
    }
    let path = path_of(object).map_err(|_| {
        PyTypeError::new_err(format!(
            "catalog must be a directory path, a JSON catalog file's path, a dict in the JSON catalog form or a featurecraft.Catalog, not {}",
            type_name(object)
        ))
    })?;
    let runtime = super::runtime::runtime()?;
    py.detach(|| runtime.block_on(Catalog::load(&path)))
        .map(Arc::new)
        .map_err(|e| catalog_error(e.to_string()))
}

/// The recipe's JSON text and the name its findings are reported under: a dict (`<recipe>`),
/// a JSON string (one starting with `{`), or a path to a recipe file.
pub fn recipe_of(object: &Bound<'_, PyAny>) -> PyResult<(String, String)> {
    if object.is_instance_of::<PyDict>() {
        return Ok((json_text(object)?, "<recipe>".into()));
    }
    if let Ok(text) = object.cast::<PyString>() {
        let text: String = text.extract()?;
        if text.trim_start().starts_with('{') {
            return Ok((text, "<recipe>".into()));
        }
    }
    let path = path_of(object).map_err(|_| {
        PyTypeError::new_err(format!(
            "recipe must be a dict, a JSON string or a path to a recipe file, not {}",
            type_name(object)
        ))
    })?;
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((text, path.display().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(PyFileNotFoundError::new_err(
            format!("cannot read recipe {}: {e}", path.display()),
        )),
        Err(e) => Err(PyOSError::new_err(format!(
            "cannot read recipe {}: {e}",
            path.display()
        ))),
    }
}

/// The Python type name of an argument, for error messages.
pub fn type_name(object: &Bound<'_, PyAny>) -> String {
    object
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "this value".into())
}
