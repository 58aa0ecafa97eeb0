"""The package against the command line on the bundled fixtures: same SQL, same findings,
same summaries, same rows; errors as typed exceptions; the GIL released while queries run."""

import json
import math
import pathlib
import shutil
import sys
import threading
import time

import pyarrow.parquet as pq
import pytest

import featurecraft as fc
from conftest import BAD, CATALOG, FIXTURES, GOOD, ROOT, cli, cli_json, dialect_for

DIALECTS = ["generic", "datafusion", "duckdb", "postgres", "snowflake", "bigquery", "databricks"]


def test_dialects_are_the_cli_dialects():
    assert fc.DIALECTS == DIALECTS


@pytest.mark.parametrize("dialect", DIALECTS)
def test_sql_equals_the_cli_for_every_good_recipe(dialect, catalog):
    for recipe in GOOD:
        ours = fc.compile(str(recipe), catalog, dialect=dialect)
        theirs = cli_json("compile", str(recipe), "--catalog", str(CATALOG), "--dialect", dialect)
        assert ours.sql == theirs["sql"], f"{recipe.name} in {dialect}"
        assert ours.ok == (theirs["sql"] is not None)
        assert [d.to_dict() for d in ours.diagnostics] == theirs["diagnostics"], recipe.name


def test_a_recipe_is_a_dict_a_json_string_or_a_path(catalog):
    path = FIXTURES / "recipes" / "good" / "churn_basic.json"
    text = path.read_text()
    expected = fc.compile(path, catalog).sql
    assert expected is not None
    assert fc.compile(str(path), catalog).sql == expected
    assert fc.compile(text, catalog).sql == expected
    assert fc.compile(json.loads(text), catalog).sql == expected


def test_a_catalog_is_a_directory_a_json_file_a_dict_or_a_catalog(catalog):
    recipe = FIXTURES / "recipes" / "good" / "churn_basic.json"
    expected = fc.compile(recipe, catalog).sql
    json_file = FIXTURES / "retail_catalog.json"
    assert fc.compile(recipe, str(CATALOG)).sql == expected
    assert fc.compile(recipe, json_file).sql == expected
    assert fc.compile(recipe, json.loads(json_file.read_text())).sql == expected
    assert fc.Catalog(json_file).has_data is False
    assert catalog.has_data is True
    assert "customers" in catalog.tables()


@pytest.mark.parametrize("recipe", BAD, ids=lambda p: p.stem)
def test_bad_recipes_report_the_cli_codes_and_paths(recipe, catalog):
    dialect = dialect_for(recipe)
    code = recipe.stem.split("_")[0]
    strict = code.startswith("W")
    args = ["compile", str(recipe), "--catalog", str(CATALOG), "--dialect", dialect]
    if strict:
        args.append("--strict")
    theirs = cli_json(*args)
    ours = fc.compile(str(recipe), catalog, dialect=dialect, strict=strict)
    assert not ours.ok and ours.sql is None and theirs["sql"] is None
    assert [d.to_dict() for d in ours.diagnostics] == theirs["diagnostics"]
    assert code in [d.code for d in ours.diagnostics]
    with pytest.raises(fc.RecipeError) as raised:
        ours.check()
    assert [(d.code, d.path) for d in raised.value.diagnostics] == [
        (d["code"], d["path"]) for d in theirs["diagnostics"]
    ]
    if not strict:
        # The exception's text is the report the command line prints on stderr.
        assert str(raised.value) == cli(*args).stderr
    if dialect == "generic":
        with pytest.raises(fc.RecipeError) as validated:
            fc.validate(str(recipe), catalog, sample_size=200, strict=strict)
        assert code in [d.code for d in validated.value.diagnostics]


def test_a_diagnostic_has_code_severity_message_path_span_and_hints(catalog):
    compiled = fc.compile(FIXTURES / "recipes" / "bad" / "E021_unknown_column.json", catalog)
    (first, *_) = compiled.diagnostics
    assert first.code == "E021"
    assert first.severity == "error"
    assert first.path.startswith("features[")
    assert first.span["start"]["line"] >= 1 and first.span["start"]["column"] >= 1
    assert any("did you mean" in h for h in first.hints), first.hints
    assert "E021" in compiled.report and "^" in compiled.report


@pytest.mark.parametrize("recipe", GOOD, ids=lambda p: p.stem)
def test_validation_summary_equals_the_cli(recipe, catalog):
    theirs = cli_json("validate", str(recipe), "--catalog", str(CATALOG), "--sample-size", "300")
    ours = fc.validate(str(recipe), catalog, sample_size=300)
    assert ours.summary == theirs["validation"]
    assert ours.sql == theirs["sql"]
    assert [d.to_dict() for d in ours.diagnostics] == theirs["diagnostics"]
    assert ours.sample is None


@pytest.mark.parametrize("name", ["churn_basic", "pit_churn", "stacked_order_items"])
def test_the_sample_equals_the_cli_sample_out(name, catalog, tmp_path):
    recipe = FIXTURES / "recipes" / "good" / f"{name}.json"
    out = tmp_path / "sample.parquet"
    done = cli("validate", str(recipe), "--catalog", str(CATALOG), "--sample-size", "250", "--sample-out", str(out))
    assert done.returncode == 0, done.stderr
    ours = fc.validate(recipe, catalog, sample_size=250, return_sample=True).sample
    theirs = pq.read_table(out)
    assert ours.num_rows > 0
    # The same rows; a sample has no order of its own.
    keys = [(column, "ascending") for column in json.loads(recipe.read_text())["entity_grain"]]
    assert ours.schema == theirs.schema
    # Floats within a relative 1e-9: parallel aggregation may sum in another order.
    assert same_rows(ours.sort_by(keys), theirs.sort_by(keys))


def same_rows(a, b) -> bool:
    """Equal tables, floats compared within a relative 1e-9."""
    if a.num_rows != b.num_rows:
        return False
    for x, y in zip(a.to_pylist(), b.to_pylist()):
        for column in x:
            u, v = x[column], y[column]
            if isinstance(u, float) and isinstance(v, float):
                assert math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-12), (column, u, v, x)
            else:
                assert u == v, (column, u, v, x)
    return True


def test_materialize_writes_the_cli_table(catalog, tmp_path):
    recipe = FIXTURES / "recipes" / "good" / "churn_basic.json"
    ours = pathlib.Path(fc.materialize(recipe, catalog, tmp_path / "ours"))
    done = cli("materialize", str(recipe), "--catalog", str(CATALOG), "--warehouse", str(tmp_path / "cli"))
    assert done.returncode == 0, done.stderr
    theirs = pathlib.Path(json.loads(done.stdout)["path"])
    assert ours.name == theirs.name == "churn_training"
    assert ours.parent.name == "retail"
    keys = [("customer_id", "ascending")]
    a = pq.read_table(ours).sort_by(keys)
    b = pq.read_table(theirs).sort_by(keys)
    assert a.num_rows == 1000
    assert same_rows(a, b)
    # Nothing but the table is left in the warehouse.
    assert sorted(p.name for p in (tmp_path / "ours" / "retail").iterdir()) == ["churn_training"]


def test_design_equals_the_cli(catalog):
    args = ["--spine", "customers", "--grain", "customer_id", "--label-column", "churned_at"]
    derivation = "CASE WHEN churned_at IS NOT NULL THEN 1 ELSE 0 END"
    done = cli("design", "--catalog", str(CATALOG), *args, "--derivation", derivation,
               "--max-features", "20", "--sample-size", "300", "--format", "json")
    assert done.returncode == 0, done.stderr
    ours = fc.design(catalog, "customers", ["customer_id"], "churned_at", derivation=derivation,
                     max_features=20, sample_size=300)
    assert ours == json.loads(done.stdout)
    assert 0 < len(ours["features"]) <= 20
    assert fc.compile(ours, catalog).ok


def test_design_with_a_schedule_and_a_label_from_the_future_equals_the_cli(catalog, tmp_path):
    label = {"source_table": "events", "expression": "CASE WHEN COUNT(*) = 0 THEN 1 ELSE 0 END",
             "window": "30 days"}
    schedule = {"source_table": "events", "start": "2024-07-01", "every": "30 days",
                "until": "last_event", "max_per_entity": 3}
    time_columns = {"events": "event_ts", "orders": "order_date"}
    request = {"spine": "events", "entity_grain": ["customer_id", "cutoff_time"],
               "label": {"name": "churned_30d", "type": "binary", **label},
               "point_in_time": {"cutoff_column": "cutoff_time", "time_columns": time_columns,
                                 "schedule": schedule},
               "windows": ["30d"], "max_depth": 1, "max_features": 8}
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    done = cli("design", "--catalog", str(CATALOG), "--request", str(path), "--sample-size", "300",
               "--format", "json")
    assert done.returncode == 0, done.stderr
    ours = fc.design(catalog, "events", ["customer_id", "cutoff_time"], None, label_name="churned_30d",
                     label=label, cutoff_column="cutoff_time", time_columns=time_columns,
                     schedule=schedule, windows=["30d"], max_depth=1, max_features=8, sample_size=300)
    assert ours == json.loads(done.stdout)
    assert ours["point_in_time"]["schedule"] == schedule
    assert ours["label"]["expression"] == label["expression"]
    assert fc.compile(ours, catalog).ok


def test_design_request_errors_are_recipe_errors(catalog):
    with pytest.raises(fc.RecipeError) as raised:
        fc.design(catalog, "customers", ["customer_id"], "churned_at", primitives=["median"])
    assert [d.path for d in raised.value.diagnostics] == ["design.primitives[0]"]
    with pytest.raises(ValueError, match="cutoff_column"):
        fc.design(catalog, "customers", ["customer_id"], "churned_at", time_columns={"events": "event_time"})


def failed_job() -> dict:
    job = json.loads((FIXTURES / "contract" / "retry_response.json").read_text())
    job["status"] = "failed"
    job["error"] = "the crew timed out"
    job["recipe"] = json.loads((FIXTURES / "recipes" / "good" / "churn_basic.json").read_text())
    return job


def test_retry_equals_the_cli(catalog, tmp_path):
    job = failed_job()
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    done = cli("retry", str(path), "--catalog", str(CATALOG))
    assert done.returncode == 0, done.stderr
    theirs = json.loads(done.stdout)
    ours = fc.retry(job, catalog)
    assert ours["status"] == "pending_approval"
    assert ours["job_id"] == job["job_id"] and ours["error"] is None
    ours.pop("updated_at"), theirs.pop("updated_at")
    assert ours == theirs
    job["status"] = "approved"
    with pytest.raises(ValueError, match="only a failed job can be retried"):
        fc.retry(job, catalog)
    with pytest.raises(ValueError, match="not a job"):
        fc.retry({"status": "failed"}, catalog)


def test_retry_with_fix_records_the_fix_in_the_notes(catalog):
    job = failed_job()
    job["recipe"]["features"][4]["expression"] = "SUM(amout)"
    assert fc.retry(job, catalog, sample_size=200)["status"] == "failed"
    fixed = fc.retry(job, catalog, sample_size=200, fix=True)
    assert fixed["status"] == "pending_approval", fixed["error"]
    assert fixed["recipe"]["features"][4]["expression"] == "SUM(amount)"
    assert "`amout` → `amount` (E021)" in fixed["recipe"]["notes"]


def test_retry_with_an_external_crew_equals_the_cli(catalog, tmp_path):
    # The scripted crew of tests/crew.rs fixes one mistake per round from the diagnostics.
    job = failed_job()
    job["recipe"]["features"][4]["expression"] = "SUM(amout)"
    crew = f"{sys.executable} '{ROOT / 'tests' / 'crew' / 'scripted_crew.py'}' learn"
    ours = fc.retry(job, catalog, sample_size=200, crew_command=crew)
    assert ours["status"] == "pending_approval", ours["error"]
    assert "crew round 1: no error" in ours["recipe"]["notes"]
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    done = cli("retry", str(path), "--catalog", str(CATALOG), "--sample-size", "200",
               "--crew-command", crew)
    assert done.returncode == 0, done.stderr
    theirs = json.loads(done.stdout)
    ours.pop("updated_at"), theirs.pop("updated_at")
    assert ours == theirs
    failed = fc.retry(job, catalog, crew_command=f"{sys.executable} -c 'import sys; sys.exit(3)'")
    assert failed["status"] == "failed"
    assert failed["error"].startswith("the crew failed in round 1: the crew exited with exit status: 3")
    with pytest.raises(ValueError, match="crew_command: the crew command has an unclosed"):
        fc.retry(job, catalog, crew_command="python3 'unclosed")
    with pytest.raises(ValueError, match="crew_timeout"):
        fc.retry(job, catalog, crew_command="python3", crew_timeout=0)


def test_usage_errors_are_value_and_type_errors(catalog):
    recipe = FIXTURES / "recipes" / "good" / "churn_basic.json"
    with pytest.raises(ValueError, match="unknown dialect `oracle`"):
        fc.compile(recipe, catalog, dialect="oracle")
    with pytest.raises(ValueError, match="memory_limit"):
        fc.validate(recipe, catalog, memory_limit="lots")
    with pytest.raises(ValueError, match="sample_size"):
        fc.validate(recipe, catalog, sample_size=0)
    with pytest.raises(ValueError, match="null_threshold"):
        fc.validate(recipe, catalog, null_threshold=1.5)
    with pytest.raises(ValueError, match="leak_threshold"):
        fc.validate(recipe, catalog, leak_threshold=1.5)
    for timeout in (0, -1.0, float("nan"), float("inf"), 1e12):
        with pytest.raises(ValueError, match="timeout"):
            fc.validate(recipe, catalog, timeout=timeout)
    with pytest.raises(TypeError, match="recipe must be"):
        fc.compile(42, catalog)
    with pytest.raises(TypeError, match="catalog must be"):
        fc.compile(recipe, 42)
    with pytest.raises(FileNotFoundError, match="no-such-recipe.json"):
        fc.compile("no-such-recipe.json", catalog)


def test_catalog_errors(tmp_path):
    recipe = FIXTURES / "recipes" / "good" / "churn_basic.json"
    with pytest.raises(fc.CatalogError):
        fc.Catalog(tmp_path / "missing")
    with pytest.raises(fc.CatalogError, match="holds no data"):
        fc.validate(recipe, FIXTURES / "retail_catalog.json")
    with pytest.raises(fc.CatalogError):
        fc.compile(recipe, {"tables": "not a list"})


def test_runtime_failures_are_runtime_error_subclasses(tmp_path):
    recipe = FIXTURES / "recipes" / "good" / "churn_basic.json"
    copy = tmp_path / "retail"
    shutil.copytree(CATALOG, copy)
    loaded = fc.Catalog(copy)
    # A data file that disappears after the catalog was loaded.
    (copy / "orders.parquet").unlink()
    with pytest.raises(fc.DataError) as raised:
        fc.validate(recipe, loaded, sample_size=100)
    assert isinstance(raised.value, fc.RuntimeError)
    assert [d.code for d in raised.value.diagnostics] == ["E052"]
    # A warehouse that cannot be written.
    blocked = tmp_path / "warehouse"
    blocked.write_text("a file, not a folder")
    with pytest.raises(fc.OutputError):
        fc.materialize(recipe, fc.Catalog(CATALOG), blocked)
    assert issubclass(fc.MemoryLimitError, fc.RuntimeError)
    assert issubclass(fc.QueryError, fc.RuntimeError)
    assert issubclass(fc.RecipeError, fc.FeaturecraftError)


def test_a_run_past_its_timeout_raises_time_limit_error(catalog, tmp_path):
    recipe = FIXTURES / "recipes" / "good" / "pit_churn.json"
    with pytest.raises(fc.TimeLimitError) as raised:
        fc.validate(recipe, catalog, timeout=0.001)
    assert isinstance(raised.value, fc.RuntimeError)
    assert [d.code for d in raised.value.diagnostics] == ["E054"]
    # The hint names the keyword argument, as this package spells it.
    (hint,) = raised.value.diagnostics[0].hints
    assert "`timeout`" in hint and "time_limit" not in hint and "sample" in hint
    assert "`timeout`" in str(raised.value) and "time_limit" not in str(raised.value)
    with pytest.raises(fc.TimeLimitError) as raised:
        fc.materialize(recipe, catalog, tmp_path / "warehouse", timeout=0.001)
    (hint,) = raised.value.diagnostics[0].hints
    assert "`timeout`" in hint and "sample" not in hint
    # Nothing is published, and no staging folder is left.
    assert list((tmp_path / "warehouse").glob("*/*")) == []
    assert list((tmp_path / "warehouse").glob("*/.*")) == []
    # A generous limit changes nothing.
    assert fc.validate(recipe, catalog, timeout=600).summary == fc.validate(recipe, catalog).summary


def test_validation_releases_the_gil(catalog):
    """Compiles run in one thread while validations run in another: with the GIL held by a
    validation, no compile could finish while one is running."""
    recipe = FIXTURES / "recipes" / "good" / "pit_churn.json"
    running = []
    done = threading.Event()

    def validations():
        while not done.is_set():
            started = time.monotonic()
            fc.validate(recipe, catalog, sample_size=1000)
            running.append((started, time.monotonic()))

    worker = threading.Thread(target=validations)
    worker.start()
    finished = []
    try:
        compiled = FIXTURES / "recipes" / "good" / "churn_basic.json"
        time.sleep(0.05)
        for _ in range(100):
            assert fc.compile(compiled, catalog).ok
            finished.append(time.monotonic())
    finally:
        done.set()
        worker.join()
    assert len(finished) == 100 and running
    inside = [t for t in finished if any(start < t < end for start, end in running)]
    assert inside, f"no compile finished while one of {len(running)} validations ran"


def test_json_schema_accepts_every_fixture_recipe():
    jsonschema = pytest.importorskip("jsonschema")
    schema = fc.json_schema()
    assert schema["title"] == "FeatureRecipe"
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    recipes = GOOD + sorted((FIXTURES / "recipes" / "traps").glob("*.json")) + sorted(
        (FIXTURES / "recipes" / "attacks").glob("*.json"))
    assert len(recipes) > len(GOOD)
    for recipe in recipes:
        errors = list(validator.iter_errors(json.loads(recipe.read_text())))
        assert not errors, f"{recipe.name}: {errors[0].message}"
    # A recipe without features is not one.
    assert list(validator.iter_errors({"target_table": "t", "entity_grain": ["id"], "label": {}}))
    job = fc.json_schema("job")
    assert {"job_id", "status", "recipe", "validation", "error"} <= set(job["required"])
    assert fc.json_schema("design_request")["title"] == "DesignRequest"
    with pytest.raises(ValueError, match="unknown schema"):
        fc.json_schema("nope")


def test_the_type_stubs_ship_and_cover_the_module():
    import ast
    import importlib.resources

    package = importlib.resources.files("featurecraft")
    assert package.joinpath("py.typed").is_file()
    stubs = ast.parse(package.joinpath("__init__.pyi").read_text())
    declared = {node.name for node in stubs.body if isinstance(node, (ast.ClassDef, ast.FunctionDef))}
    declared |= {t.id for node in stubs.body if isinstance(node, ast.AnnAssign) for t in [node.target]}
    public = {name for name in fc.__all__ if name != "__version__"}
    assert public - declared == set(), "names without a stub"
    functions = {node.name: node for node in stubs.body if isinstance(node, ast.FunctionDef)}
    # Each function's stub names the same parameters the function takes.
    import inspect

    for name, node in functions.items():
        stub_params = [a.arg for a in node.args.args + node.args.kwonlyargs]
        actual = list(inspect.signature(getattr(fc, name)).parameters)
        assert stub_params == actual, name
        # ... with the same defaults, which are the library's own.
        stub_defaults = {
            a.arg: ast.literal_eval(d)
            for a, d in zip(node.args.args[len(node.args.args) - len(node.args.defaults):], node.args.defaults)
        }
        for param, default in stub_defaults.items():
            assert inspect.signature(getattr(fc, name)).parameters[param].default == default, (name, param)
    from featurecraft import _native
    library = _native._DEFAULTS
    assert set(library) == {"sample_size", "null_threshold", "memory_limit", "leak_threshold",
                            "crew_rounds", "crew_timeout"}
    for name in functions:
        for param, value in inspect.signature(getattr(fc, name)).parameters.items():
            if param in library:
                assert value.default == library[param], (name, param, value.default)


def test_the_leak_threshold_decides_what_the_screen_flags(catalog, tmp_path):
    recipe = {
        "target_table": "t",
        "entity_grain": ["customer_id"],
        "label": {"column": "customers.churned_at",
                  "derivation": "CASE WHEN churned_at IS NOT NULL THEN 1 ELSE 0 END",
                  "positive_class_value": 1},
        "features": [{"name": "n_cutoffs", "expression": "COUNT(*)", "source_table": "churn_cutoffs"}],
    }
    flagged = fc.validate(recipe, catalog).summary["warnings"]
    assert any(w.startswith("W125 target_leakage: feature `n_cutoffs`") for w in flagged), flagged
    assert not any("W125" in w for w in fc.validate(recipe, catalog, leak_threshold=0.99).summary["warnings"])
