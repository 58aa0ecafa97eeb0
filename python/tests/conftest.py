"""Shared fixtures: the repository's paths and the command line to compare with."""

import json
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
CATALOG = FIXTURES / "retail"
GOOD = sorted((FIXTURES / "recipes" / "good").glob("*.json"))
BAD = sorted((FIXTURES / "recipes" / "bad").glob("*.json"))


def cli_binary() -> pathlib.Path:
    """The featurecraft binary `cargo test` built (tests/python.rs passes its path)."""
    path = pathlib.Path(os.environ.get("FEATURECRAFT_BIN", ROOT / "target" / "debug" / "featurecraft"))
    if not path.exists():
        pytest.fail(f"no featurecraft binary at {path}: run `cargo build` first or set FEATURECRAFT_BIN")
    return path


def cli(*args: str) -> subprocess.CompletedProcess:
    """Runs the command line from the repository's root, as a user would."""
    env = dict(os.environ, NO_COLOR="1")
    return subprocess.run(
        [str(cli_binary()), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def cli_json(*args: str) -> dict:
    done = cli(*args, "--format", "json")
    assert done.stdout, done.stderr
    return json.loads(done.stdout)


def dialect_for(recipe: pathlib.Path) -> str:
    """The dialect a bad recipe's finding shows in (as the Rust tests choose it)."""
    named = [d for d in ("datafusion", "duckdb", "postgres", "snowflake", "bigquery", "databricks")
             if d in recipe.stem]
    return named[0] if named else "generic"


@pytest.fixture(scope="session")
def catalog():
    import featurecraft

    return featurecraft.Catalog(str(CATALOG))
