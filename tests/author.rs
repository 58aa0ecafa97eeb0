//! `featurecraft test`: snapshots of the SQL and of the validation summary beside a recipe,
//! and unit tests with given and expected rows, as a recipe author uses them.

mod common;

use std::path::Path;
use std::process::Command;

fn featurecraft(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_featurecraft"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `featurecraft test DIR --catalog fixtures/retail --dialect duckdb,postgres …`.
fn test_dir(dir: &Path, extra: &[&str]) -> (i32, String, String) {
    let dir = dir.to_str().unwrap();
    let mut args = vec![
        "test",
        dir,
        "--catalog",
        "fixtures/retail",
        "--dialect",
        "duckdb,postgres",
        "--sample-size",
        "300",
    ];
    args.extend_from_slice(extra);
    featurecraft(&args)
}

fn recipe_copy(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("churn_basic.json");
    std::fs::copy(
        common::fixtures().join("recipes/good/churn_basic.json"),
        &path,
    )
    .unwrap();
    path
}

#[test]
fn new_snapshots_wait_for_review_update_accepts_them_and_a_change_shows_a_diff() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = recipe_copy(dir.path());
    let snapshots = dir.path().join("__snapshots__");

    // First run: nothing is accepted silently; each snapshot waits in a `.new` file.
    let (code, stdout, stderr) = test_dir(dir.path(), &[]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("0 passed, 3 failed (3 new snapshot(s) to review)"),
        "{stdout}"
    );
    let pending = snapshots.join("churn_basic.duckdb.sql.new");
    let compiled = featurecraft(&[
        "compile",
        recipe.to_str().unwrap(),
        "--catalog",
        "fixtures/retail",
        "--dialect",
        "duckdb",
    ]);
    assert_eq!(std::fs::read_to_string(&pending).unwrap(), compiled.1);
    assert!(!snapshots.join("churn_basic.duckdb.sql").exists());

    // Accepting by renaming the reviewed file.
    std::fs::rename(&pending, snapshots.join("churn_basic.duckdb.sql")).unwrap();
    let (code, stdout, _) = test_dir(dir.path(), &[]);
    assert_eq!(code, 1);
    assert!(stdout.contains("1 passed, 2 failed"), "{stdout}");

    // --update writes the rest and removes the pending files; then everything passes.
    let (code, stdout, _) = test_dir(dir.path(), &["--update"]);
    assert_eq!(code, 0, "{stdout}");
    let (code, stdout, _) = test_dir(dir.path(), &[]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("3 passed, 0 failed"), "{stdout}");
    let left: Vec<String> = std::fs::read_dir(&snapshots)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.iter().all(|name| !name.ends_with(".new")), "{left:?}");
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(snapshots.join("churn_basic.validation.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["estimated_row_count"], 1000);

    // A change to the recipe fails with a unified diff of the SQL.
    let text = std::fs::read_to_string(&recipe)
        .unwrap()
        .replace("monthly_fee * 12", "monthly_fee * 13");
    std::fs::write(&recipe, text).unwrap();
    let (code, stdout, _) = test_dir(dir.path(), &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("failed   snapshot duckdb"), "{stdout}");
    assert!(
        stdout.contains("-    \"monthly_fee\" * 12 AS \"annual_fee\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("+    \"monthly_fee\" * 13 AS \"annual_fee\""),
        "{stdout}"
    );
    assert!(stdout.contains("@@ "), "{stdout}");
    // The validation summary did not change: the fee is no label and no null column.
    assert!(stdout.contains("passed   validation"), "{stdout}");
    let (code, _, _) = test_dir(dir.path(), &["--update"]);
    assert_eq!(code, 0);
    let (code, stdout, _) = test_dir(dir.path(), &[]);
    assert_eq!(code, 0, "{stdout}");
}

#[test]
fn unit_tests_run_the_recipe_over_exactly_the_given_rows() {
    let dir = tempfile::tempdir().unwrap();
    recipe_copy(dir.path());
    std::fs::write(
        dir.path().join("orders.csv"),
        "order_id,customer_id,amount,status\n1,1,10,paid\n2,1,20.5,returned\n",
    )
    .unwrap();
    let tests = serde_json::json!({"tests": [
        {
            "name": "counts per customer",
            "given": {
                "customers": [
                    {"customer_id": 1, "plan": "basic", "monthly_fee": 10.0},
                    {"customer_id": 2, "plan": "pro", "churned_at": "2025-03-01T00:00:00"}
                ],
                "events": [
                    {"customer_id": 1, "event_type": "purchase", "amount": 10.5, "event_ts": "2025-01-02 10:00:00"},
                    {"customer_id": 1, "event_type": "login", "event_ts": "2025-01-03T11:00:00"},
                    {"customer_id": 3, "event_type": "purchase", "amount": 99.0}
                ],
                "orders": {"file": "orders.csv"}
            },
            "expected": [
                {"customer_id": 1, "n_events": 2, "n_purchases": 1, "event_spend": 10.5,
                 "annual_fee": 120.0, "label": 0, "last_event_at": "2025-01-03T11:00:00",
                 "n_orders": 2, "order_value": 30.5, "returned_share": 0.5, "n_tickets": 0},
                {"customer_id": 2, "n_events": 0, "event_spend": null, "annual_fee": null,
                 "label": 1, "n_orders": 0, "returned_share": null}
            ]
        },
        {
            "name": "a wrong expectation",
            "given": {"customers": [{"customer_id": 1}], "events": [{"customer_id": 1}]},
            "expected": [{"customer_id": 1, "n_events": 5}, {"customer_id": 9, "n_events": 0}]
        }
    ]});
    std::fs::write(
        dir.path().join("churn_basic.test.json"),
        serde_json::to_string_pretty(&tests).unwrap(),
    )
    .unwrap();
    let (code, stdout, stderr) = test_dir(dir.path(), &["--update"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("passed   unit: counts per customer"),
        "{stdout}"
    );
    assert!(
        stdout.contains("failed   unit: a wrong expectation"),
        "{stdout}"
    );
    // Expected and actual side by side, per column; a key without a row is named.
    let table: Vec<Vec<&str>> = stdout
        .lines()
        .skip_while(|l| !l.contains("unit: a wrong expectation"))
        .skip(1)
        .take(3)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        table[0],
        ["row", "column", "expected", "actual"],
        "{stdout}"
    );
    assert_eq!(
        table[1],
        ["customer_id=1", "n_events", "5", "1"],
        "{stdout}"
    );
    assert_eq!(
        table[2],
        ["customer_id=9", "a", "row", "no", "row"],
        "{stdout}"
    );
    assert!(stdout.contains("4 passed, 1 failed"), "{stdout}");

    // --format json for CI: one result per check.
    let (code, stdout, _) = test_dir(dir.path(), &["--format", "json"]);
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["passed"], 4);
    assert_eq!(report["failed"], 1);
    let failed: Vec<&serde_json::Value> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["check"], "unit: a wrong expectation");
    assert!(
        failed[0]["detail"]
            .as_str()
            .unwrap()
            .contains("customer_id=1  n_events")
    );
}

#[test]
fn unit_test_mistakes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    recipe_copy(dir.path());
    let cases = [
        (
            serde_json::json!({"given": {"events": [{"customer_id": 1, "amout": 3}]}, "expected": [{"customer_id": 1}]}),
            "given.events[0]: `amout` is not a column of events (did you mean `amount`?)",
        ),
        (
            serde_json::json!({"given": {"event": [{"customer_id": 1}]}, "expected": [{"customer_id": 1}]}),
            "given rows for `event`, which the catalog does not have (did you mean",
        ),
        (
            serde_json::json!({"given": {"customers": [{"customer_id": 1}]}, "expected": [{"n_events": 0}]}),
            "expected[0] lacks the grain column `customer_id`",
        ),
        (
            serde_json::json!({"given": {"customers": [{"customer_id": 1}]}, "expected": [{"customer_id": 1, "n_event": 0}]}),
            "the output has no column `n_event` (did you mean `n_events`?)",
        ),
        (
            serde_json::json!({"given": {}, "expectd": [{"customer_id": 1}]}),
            "unknown field `expectd` (did you mean `expected`?)",
        ),
        (
            serde_json::json!({"given": {"orders": {"file": "missing.csv"}}, "expected": [{"customer_id": 1}]}),
            "missing.csv): no such file",
        ),
        (
            // A value of the wrong type, and text that looks like SQL quoting: data, not SQL.
            serde_json::json!({"given": {"customers": [{"customer_id": "1\\'; DROP TABLE x; --"}]}, "expected": [{"customer_id": 1}]}),
            "given.customers:",
        ),
        (
            serde_json::json!({"given": {"customers": [{"customer_id": 1e300}]}, "expected": [{"customer_id": 1}]}),
            "given.customers:",
        ),
    ];
    for (test, message) in cases {
        std::fs::write(dir.path().join("churn_basic.test.json"), test.to_string()).unwrap();
        let (code, stdout, _) = featurecraft(&[
            "test",
            dir.path().join("churn_basic.json").to_str().unwrap(),
            "--catalog",
            "fixtures/retail_catalog.json",
            "--dialect",
            "generic",
            "--update",
        ]);
        assert_eq!(code, 1, "{stdout}");
        assert!(stdout.contains(message), "{message}\n{stdout}");
    }
}

#[test]
fn fix_and_diff_name_a_missing_or_unreadable_recipe() {
    let (code, _, stderr) = featurecraft(&["fix", "no/such.json", "--catalog", "fixtures/retail"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("cannot read recipe no/such.json"),
        "{stderr}"
    );
    let good = "fixtures/recipes/good/churn_basic.json";
    let (code, _, stderr) =
        featurecraft(&["diff", good, "no/such.json", "--catalog", "fixtures/retail"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("cannot read recipe no/such.json"),
        "{stderr}"
    );
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("list.json");
    std::fs::write(&list, "[1, 2]").unwrap();
    let (code, _, stderr) = featurecraft(&[
        "fix",
        list.to_str().unwrap(),
        "--catalog",
        "fixtures/retail",
    ]);
    assert_eq!(
        code, 1,
        "a recipe that is not an object is its error, as in compile"
    );
    assert!(stderr.contains("not a JSON object"), "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, stderr) = featurecraft(&["test", "no/such/dir", "--catalog", "fixtures/retail"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("no/such/dir: no such file or folder"),
        "{stderr}"
    );
    let (code, _, stderr) = featurecraft(&["test", "fixtures/recipes/good"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--catalog"), "{stderr}");
    let empty = tempfile::tempdir().unwrap();
    let (code, _, stderr) = featurecraft(&[
        "test",
        empty.path().to_str().unwrap(),
        "--catalog",
        "fixtures/retail",
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no recipe"), "{stderr}");
}

#[test]
fn the_worked_example_passes_as_committed() {
    // The README's walkthrough: snapshots in all seven dialects, the validation summary and
    // a unit test, all accepted; a change in what featurecraft prints fails here first.
    let (code, stdout, stderr) =
        featurecraft(&["test", "examples/recipes", "--catalog", "fixtures/retail"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("9 passed, 0 failed"), "{stdout}");
}

#[test]
fn fix_repairs_the_bad_recipes_with_one_clear_fix_and_leaves_the_others_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bad = common::fixtures().join("recipes/bad");
    // The bad fixtures with one clear correction, and what it is.
    let fixable = [
        (
            "E021_unknown_column",
            "fixed features[1].expression: `amout` → `amount` (E021)",
        ),
        (
            "E024_cutoff_not_in_grain",
            "fixed point_in_time.cutoff_column: `cutoff_date` → `cutoff_time` (E024)",
        ),
        (
            "W001_unknown_field",
            "fixed features[1].expresion: `expresion` → `expression` (W001)",
        ),
    ];
    let mut entries: Vec<_> = std::fs::read_dir(&bad)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        let dialect = common::bad_fixture_dialect(&stem).name();
        let copy = dir.path().join(format!("{stem}.json"));
        std::fs::copy(&path, &copy).unwrap();
        let before = std::fs::read_to_string(&copy).unwrap();
        let args = [
            "fix",
            copy.to_str().unwrap(),
            "--catalog",
            "fixtures/retail",
            "--dialect",
            dialect,
            "--write",
        ];
        let (code, _, stderr) = featurecraft(&args);
        match fixable.iter().find(|(s, _)| *s == stem) {
            Some((_, fix)) => {
                assert_eq!(code, 0, "{stem}: {stderr}");
                assert!(stderr.contains(fix), "{stem}: {stderr}");
                // The written recipe compiles with no finding at all.
                let (code, _, stderr) = featurecraft(&[
                    "compile",
                    copy.to_str().unwrap(),
                    "--catalog",
                    "fixtures/retail",
                    "--strict",
                ]);
                assert_eq!(code, 0, "{stem} after fix: {stderr}");
            }
            None if stem == "E001_malformed_json" => {
                // The recipe's error, as compile reports it (the exit-code table).
                assert_eq!(code, 1, "{stem}: {stderr}");
                assert!(stderr.contains("not JSON"), "{stderr}");
            }
            None => {
                // Left untouched, each finding with why it was not fixed.
                let code_of_file = stem.split('_').next().unwrap();
                let expected_exit = if code_of_file.starts_with('W') { 0 } else { 1 };
                assert_eq!(code, expected_exit, "{stem}: {stderr}");
                assert!(
                    stderr.contains(&format!("left  {code_of_file}")),
                    "{stem}: {stderr}"
                );
                assert!(
                    stderr.contains("(no single clear candidate)")
                        || stderr.contains("(not a kind of finding featurecraft fixes)")
                        || stderr.contains("(the suggestion does not make the recipe better)"),
                    "{stem}: {stderr}"
                );
                assert!(stderr.contains("0 fix(es) written"), "{stem}: {stderr}");
                assert_eq!(std::fs::read_to_string(&copy).unwrap(), before, "{stem}");
            }
        }
    }
}

#[test]
fn fix_without_write_prints_the_fixed_recipe_and_keeps_the_file() {
    let path = "fixtures/recipes/bad/E021_unknown_column.json";
    let before =
        std::fs::read_to_string(common::fixtures().join("recipes/bad/E021_unknown_column.json"))
            .unwrap();
    let (code, stdout, stderr) = featurecraft(&["fix", path, "--catalog", "fixtures/retail"]);
    assert_eq!(code, 0, "{stderr}");
    let fixed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let original: serde_json::Value = serde_json::from_str(&before).unwrap();
    assert_eq!(fixed["features"][1]["expression"], "SUM(amount)");
    assert_ne!(
        original["features"][1]["expression"],
        fixed["features"][1]["expression"]
    );
    // Everything else is as written.
    let mut restored = fixed.clone();
    restored["features"][1]["expression"] = original["features"][1]["expression"].clone();
    assert_eq!(restored, original);
    assert_eq!(
        std::fs::read_to_string(common::fixtures().join("recipes/bad/E021_unknown_column.json"))
            .unwrap(),
        before
    );
}

#[test]
fn retry_with_fix_repairs_the_recipe_and_records_it_in_the_notes() {
    let dir = tempfile::tempdir().unwrap();
    let mut job: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::fixtures().join("contract/retry_response.json")).unwrap(),
    )
    .unwrap();
    job["status"] = "failed".into();
    job["error"] = "E021 unknown column".into();
    let mut recipe: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::fixtures().join("recipes/good/churn_basic.json")).unwrap(),
    )
    .unwrap();
    recipe["features"][4]["expression"] = "SUM(amout)".into();
    job["recipe"] = recipe;
    let path = dir.path().join("job.json");
    std::fs::write(&path, job.to_string()).unwrap();
    let args = [
        "retry",
        path.to_str().unwrap(),
        "--catalog",
        "fixtures/retail",
        "--sample-size",
        "200",
    ];
    // Without --fix the job fails again.
    let (code, stdout, _) = featurecraft(&args);
    assert_eq!(code, 1);
    let next: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(next["status"], "failed");
    let mut with_fix = args.to_vec();
    with_fix.push("--fix");
    let (code, stdout, stderr) = featurecraft(&with_fix);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("fixed features[4].expression: `amout` → `amount` (E021)"),
        "{stderr}"
    );
    let next: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(next["status"], "pending_approval");
    assert_eq!(next["recipe"]["features"][4]["expression"], "SUM(amount)");
    let notes = next["recipe"]["notes"].as_str().unwrap();
    assert!(notes.starts_with("Churn: a customer churned"), "{notes}");
    assert!(
        notes.contains("featurecraft fixed the recipe before this retry:\n- features[4].expression: `amout` → `amount` (E021)"),
        "{notes}"
    );
}

#[test]
fn diff_names_each_change_the_sql_and_the_share_of_equal_values() {
    let dir = tempfile::tempdir().unwrap();
    let old = common::fixtures().join("recipes/good/churn_basic.json");
    let mut recipe: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&old).unwrap()).unwrap();
    let features = recipe["features"].as_array_mut().unwrap();
    features[1]["expression"] = "monthly_fee * 13".into(); // annual_fee
    features[2]["name"] = "event_count".into(); // n_events, same expression
    features.retain(|f| f["name"] != "avg_satisfaction");
    features.push(serde_json::json!({"name": "max_order", "expression": "MAX(amount)", "source_table": "orders"}));
    recipe["notes"] = "a new version".into();
    let new = dir.path().join("new.json");
    std::fs::write(&new, recipe.to_string()).unwrap();
    let args = |format: &str| {
        vec![
            "diff".to_string(),
            old.to_str().unwrap().to_string(),
            new.to_str().unwrap().to_string(),
            "--catalog".into(),
            "fixtures/retail".into(),
            "--sample-size".into(),
            "300".into(),
            "--format".into(),
            format.into(),
        ]
    };
    let text_args = args("text");
    let (code, stdout, stderr) =
        featurecraft(&text_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{stderr}");
    for line in [
        "  ~ changed  annual_fee (expression)",
        "  > renamed  n_events → event_count",
        "  + added    max_order",
        "  - removed  avg_satisfaction",
        "recipe fields changed: notes",
        "-    \"monthly_fee\" * 12 AS \"annual_fee\",",
        "+    \"monthly_fee\" * 13 AS \"annual_fee\",",
        "values on 300 sampled rows:",
    ] {
        assert!(stdout.contains(line), "{line}\n{stdout}");
    }
    let json_args = args("json");
    let (code, stdout, _) = featurecraft(&json_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let columns = report["values"]["columns"].as_array().unwrap();
    let column = |name: &str| {
        columns
            .iter()
            .find(|c| c["column"] == name)
            .unwrap()
            .clone()
    };
    // The renamed feature is compared with its old column, and is the same everywhere.
    let renamed = column("event_count");
    assert_eq!(renamed["old_column"], "n_events");
    assert_eq!(renamed["equal_share"], 1.0);
    assert_eq!(renamed["compared"], 300);
    // Only the customers without a fee (NULL both times) keep their annual fee.
    let fee = column("annual_fee");
    let share = fee["equal_share"].as_f64().unwrap();
    assert!(share > 0.0 && share < 0.5, "{fee}");
    let example = &fee["examples"][0];
    let (before, after) = (
        example["old"].as_f64().unwrap(),
        example["new"].as_f64().unwrap(),
    );
    assert!((after - before * 13.0 / 12.0).abs() < 1e-6, "{example}");
    assert!(example["key"].as_str().unwrap().starts_with("customer_id="));
    // An added column has nothing to compare with; a removed one is not in the new table.
    assert!(
        columns
            .iter()
            .all(|c| c["column"] != "max_order" && c["column"] != "avg_satisfaction")
    );
    assert_eq!(column("plan")["equal_share"], 1.0);

    // A recipe that does not compile is named, with exit 1.
    let (code, _, stderr) = featurecraft(&[
        "diff",
        old.to_str().unwrap(),
        "fixtures/recipes/bad/E021_unknown_column.json",
        "--catalog",
        "fixtures/retail",
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("the new recipe does not compile"),
        "{stderr}"
    );
    assert!(stderr.contains("E021"), "{stderr}");
}

/// `featurecraft test DIR` on a folder with a symlink cycle (`self -> .`) and a second link
/// to a recipe ends, and tests each recipe once.
#[test]
fn a_symlink_cycle_is_walked_once() {
    let dir = tempfile::tempdir().unwrap();
    let good = common::fixtures().join("recipes/good/churn_basic.json");
    std::fs::copy(&good, dir.path().join("churn.json")).unwrap();
    std::os::unix::fs::symlink(dir.path(), dir.path().join("self")).unwrap();
    std::fs::create_dir(dir.path().join("more")).unwrap();
    std::os::unix::fs::symlink(
        dir.path().join("churn.json"),
        dir.path().join("more/again.json"),
    )
    .unwrap();
    std::os::unix::fs::symlink(dir.path(), dir.path().join("more/up")).unwrap();
    let found = featurecraft::author::recipes_under(&[dir.path().to_path_buf()]).unwrap();
    assert_eq!(found, [dir.path().join("churn.json")]);
}
