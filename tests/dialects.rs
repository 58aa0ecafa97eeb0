//! Every dialect's CTAS executed in a real engine and compared with DataFusion's table, by
//! `scripts/check-dialects` (DuckDB from its Python package, PostgreSQL from the machine's
//! server binaries, both started and stopped by the script).
//!
//! An engine this machine cannot provide (no PostgreSQL server, no Python, no PyPI) makes
//! these tests say so on stderr and stop, unless `FEATURECRAFT_REQUIRE_ENGINES=1`, which
//! `.ci/run` sets after installing them: there a missing engine fails the test.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ENGINES: &str = "duckdb,postgres";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn recipes(kind: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join("fixtures/recipes").join(kind))
        .expect("recipe folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    out.sort();
    out
}

/// Runs the script with `TMPDIR` pointing at `tmp`, so whatever it leaves behind is visible.
fn check_dialects(tmp: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(root().join("scripts/check-dialects"));
    command
        .args(["--featurecraft", env!("CARGO_BIN_EXE_featurecraft")])
        .arg("--catalog")
        .arg(root().join("fixtures/retail"))
        .args(args)
        .env("TMPDIR", tmp);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("scripts/check-dialects starts")
}

/// `None` (after saying why) when the engines are not available here and not required.
fn engines_ready(output: &Output) -> Option<()> {
    if output.status.code() != Some(2) {
        return Some(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    if std::env::var("FEATURECRAFT_REQUIRE_ENGINES").as_deref() == Ok("1") {
        panic!("an engine is missing and FEATURECRAFT_REQUIRE_ENGINES=1:\n{stderr}");
    }
    eprintln!("SKIPPED: an engine is not available on this machine:\n{stderr}");
    None
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Nothing of a run survives it: no file under its TMPDIR, no process naming that folder.
fn assert_nothing_left(tmp: &Path) {
    let left: Vec<_> = std::fs::read_dir(tmp)
        .expect("tmp")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let needle = tmp.to_string_lossy().into_owned();
    // The server exits after its postmaster; give its last processes a moment.
    for _ in 0..50 {
        let alive = processes_mentioning(&needle);
        if alive.is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!(
        "processes still running: {:?}",
        processes_mentioning(&needle)
    );
}

fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(needle) {
                found.push(text);
            }
        }
    }
    found
}

#[test]
fn every_good_recipe_gives_the_same_table_in_duckdb_and_postgres() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = recipes("good");
    let mut args = vec!["--engines", ENGINES, "--format", "json"];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    let output = check_dialects(tmp.path(), &args, &[]);
    if engines_ready(&output).is_none() {
        return;
    }
    let report = json(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        serde_json::to_string_pretty(&report).unwrap()
    );
    let recipes = report["recipes"].as_array().unwrap();
    assert_eq!(recipes.len(), paths.len());
    for recipe in recipes {
        let rows = &recipe["datafusion"]["rows"];
        assert!(rows.as_u64().is_some_and(|r| r > 0), "{recipe:#}");
        for engine in recipe["engines"].as_array().unwrap() {
            match engine["dialect"].as_str().unwrap() {
                "duckdb" | "postgres" => {
                    assert_eq!(engine["verdict"], "same", "{recipe:#}");
                    assert_eq!(&engine["rows"], rows, "{recipe:#}");
                }
                "snowflake" | "bigquery" => {
                    assert_eq!(engine["verdict"], "parse-checked", "{recipe:#}")
                }
                other => panic!("unexpected dialect {other}"),
            }
        }
    }
    assert_nothing_left(tmp.path());
}

/// The per-engine outcome of the trap recipes: the verdicts, the refusals, and the first
/// three rows as each engine computed them.
#[test]
fn trap_recipes_have_the_same_outcome_in_every_engine_or_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = recipes("traps");
    let mut args = vec!["--engines", ENGINES, "--format", "json", "--show-rows", "3"];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    let output = check_dialects(tmp.path(), &args, &[]);
    if engines_ready(&output).is_none() {
        return;
    }
    let report = json(&output);
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    let mut outcome = String::new();
    for recipe in report["recipes"].as_array().unwrap() {
        outcome.push_str(&format!(
            "== {} (DataFusion: {} rows)\n",
            recipe["recipe"].as_str().unwrap(),
            recipe["datafusion"]["rows"]
        ));
        outcome.push_str(&format!(
            "datafusion rows: {}\n",
            serde_json::to_string(&recipe["datafusion"]["shown"]).unwrap()
        ));
        for engine in recipe["engines"].as_array().unwrap() {
            let verdict = engine["verdict"].as_str().unwrap();
            outcome.push_str(&format!(
                "{}: {verdict}",
                engine["dialect"].as_str().unwrap()
            ));
            if verdict == "refused" {
                outcome.push_str(&format!(" ({})", engine["message"].as_str().unwrap()));
            }
            outcome.push('\n');
            if let Some(rows) = engine.get("shown") {
                outcome.push_str(&format!(
                    "  rows: {}\n",
                    serde_json::to_string(rows).unwrap()
                ));
            }
        }
        outcome.push('\n');
    }
    insta::assert_snapshot!("traps_per_engine", outcome);
    assert_nothing_left(tmp.path());
}

/// The attack recipes run in DuckDB and PostgreSQL: each is refused in every dialect, or
/// builds the same table as DataFusion and touches no other table (the script's sentinel
/// tables); and arbitrary strings written by featurecraft's escaper come back unchanged
/// from `SELECT <literal>` in both engines.
#[test]
fn attacks_touch_nothing_and_escaped_literals_read_back_in_the_engines() {
    use featurecraft::Dialect;
    use proptest::strategy::{Strategy, ValueTree};
    use sqlparser::ast::{Expr, Value};
    let tmp = tempfile::tempdir().unwrap();
    // Hand-picked strings, then arbitrary ones from proptest's deterministic runner.
    let mut strings: Vec<String> = [
        "\\'",
        "\\",
        "'",
        "''",
        "a''b",
        "\\'; DROP TABLE pwned; --",
        "\n",
        "line\nbreak\r\n",
        "tab\there",
        "$$",
        "$tag$",
        "%_",
        "é😀",
        "\u{1}\u{7f}",
        "--",
        "/*",
        "E'x'",
        "",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = proptest::prelude::any::<String>();
    for _ in 0..200 {
        let value = strategy.new_tree(&mut runner).unwrap().current();
        strings.push(value.replace('\0', ""));
    }
    let mut cases = Vec::new();
    for dialect in [Dialect::DuckDb, Dialect::Postgres] {
        for s in &strings {
            let literal = Expr::value(Value::SingleQuotedString(s.clone()));
            let sql = featurecraft::compile::print::expression_text(&literal, dialect)
                .unwrap_or_else(|e| panic!("{s:?} in {dialect}: {e}"));
            cases.push(serde_json::json!({"dialect": dialect.name(), "sql": sql, "expected": s}));
        }
    }
    let literals = tmp.path().join("literals.json");
    std::fs::write(&literals, serde_json::to_string(&cases).unwrap()).unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let paths = recipes("attacks");
    let mut args = vec![
        "--engines",
        ENGINES,
        "--format",
        "json",
        "--literals",
        literals.to_str().unwrap(),
    ];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    let output = check_dialects(&work, &args, &[]);
    if engines_ready(&output).is_none() {
        return;
    }
    let report = json(&output);
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    assert_eq!(
        report["literals"]["checked"].as_u64(),
        Some(cases.len() as u64),
        "{report:#}"
    );
    assert_eq!(report["literals"]["mismatches"], serde_json::json!([]));
    let recipes = report["recipes"].as_array().unwrap();
    assert_eq!(recipes.len(), paths.len());
    let mut ran = 0;
    for recipe in recipes {
        let refused = recipe["datafusion"]["verdict"] == "refused";
        for engine in recipe["engines"].as_array().unwrap() {
            let verdict = engine["verdict"].as_str().unwrap();
            if refused {
                assert_eq!(verdict, "refused", "{recipe:#}");
            } else if engine["engine"].is_string() {
                assert_eq!(verdict, "same", "{recipe:#}");
                ran += 1;
            }
        }
    }
    // The three recipes whose literals are legitimate run in both engines.
    assert_eq!(ran, 6, "{report:#}");
    assert_nothing_left(&work);
}

#[test]
fn a_missing_engine_is_named_with_how_to_install_it() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = root().join("fixtures/recipes/good/churn_basic.json");
    let output = check_dialects(
        tmp.path(),
        &["--engines", "postgres", recipe.to_str().unwrap()],
        &[("FEATURECRAFT_PG_BINDIR", "/nonexistent/postgresql/bin")],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("pip could not install") || stderr.contains("virtual environment") {
        engines_ready(&output);
        return;
    }
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("postgres: PostgreSQL's server"), "{stderr}");
    assert!(stderr.contains("/nonexistent/postgresql/bin"), "{stderr}");
    assert!(stderr.contains("apt-get install postgresql"), "{stderr}");
    assert_nothing_left(tmp.path());
}

#[test]
fn an_engine_that_fails_to_start_is_reported_and_nothing_is_left_behind() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let fake = tempfile::tempdir().unwrap();
    for (name, script) in [
        (
            "initdb",
            "#!/bin/sh\necho 'initdb: could not create directory: disk full' >&2\nexit 1\n",
        ),
        ("postgres", "#!/bin/sh\nexit 1\n"),
    ] {
        let path = fake.path().join(name);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // Readable by the unprivileged user PostgreSQL is run as when the tests run as root.
    std::fs::set_permissions(fake.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let recipe = root().join("fixtures/recipes/good/churn_basic.json");
    let output = check_dialects(
        tmp.path(),
        &["--engines", "duckdb,postgres", recipe.to_str().unwrap()],
        &[("FEATURECRAFT_PG_BINDIR", fake.path().to_str().unwrap())],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("pip could not install") || stderr.contains("virtual environment") {
        engines_ready(&output);
        return;
    }
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("postgres: PostgreSQL's initdb failed (exit 1)"),
        "{stderr}"
    );
    assert!(stderr.contains("disk full"), "{stderr}");
    assert_nothing_left(tmp.path());
}

#[test]
fn a_run_stopped_by_sigterm_stops_its_server_and_removes_its_files() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = vec!["--engines".into(), "postgres".into()];
    // Enough work that the run is still going when the signal arrives.
    for _ in 0..20 {
        args.extend(
            recipes("good")
                .iter()
                .map(|p| p.to_string_lossy().into_owned()),
        );
    }
    let mut child = Command::new(root().join("scripts/check-dialects"))
        .args(["--featurecraft", env!("CARGO_BIN_EXE_featurecraft")])
        .arg("--catalog")
        .arg(root().join("fixtures/retail"))
        .args(&args)
        .env("TMPDIR", tmp.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("scripts/check-dialects starts");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = String::new();
    let started = loop {
        match lines.next() {
            Some(Ok(line)) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains("PostgreSQL") && line.contains("loaded the catalog") {
                    break true;
                }
            }
            _ => break false,
        }
    };
    if !started {
        let status = child.wait().unwrap();
        if status.code() == Some(2)
            && std::env::var("FEATURECRAFT_REQUIRE_ENGINES").as_deref() != Ok("1")
        {
            eprintln!("SKIPPED: an engine is not available on this machine:\n{seen}");
            return;
        }
        panic!("the run ended before PostgreSQL started ({status}):\n{seen}");
    }
    assert!(
        !processes_mentioning(&tmp.path().to_string_lossy()).is_empty(),
        "the server is running while the run goes on"
    );
    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(!status.success(), "{status}");
    assert_nothing_left(tmp.path());
}
