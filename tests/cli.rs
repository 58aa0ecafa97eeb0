//! The command line as a new user meets it.

mod common;

use std::process::Command;

fn featurecraft(args: &[&str]) -> (i32, String, String) {
    featurecraft_with_env(args, &[])
}

/// Runs the binary with extra environment variables; returns (exit code, stdout, stderr).
fn featurecraft_with_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_featurecraft"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_column_typo_names_the_feature_shows_a_caret_and_suggests_the_column() {
    let (code, stdout, stderr) = featurecraft(&[
        "compile",
        "fixtures/recipes/bad/E021_unknown_column.json",
        "--catalog",
        "fixtures/retail",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stdout.is_empty(),
        "no SQL for a recipe with errors: {stdout}"
    );
    assert!(
        stderr.contains("error[E021]: unknown column `amout` in table `orders`"),
        "{stderr}"
    );
    assert!(stderr.contains("--> features[1].expression"), "{stderr}");
    assert!(stderr.contains("1 | SUM(amout)"), "{stderr}");
    assert!(stderr.contains("  |     ^^^^^"), "{stderr}");
    assert!(stderr.contains("did you mean `amount`?"), "{stderr}");
}

#[test]
fn a_good_recipe_prints_the_ctas_and_exits_zero() {
    let (code, stdout, stderr) = featurecraft(&[
        "compile",
        "fixtures/recipes/good/churn_basic.json",
        "--catalog",
        "fixtures/retail",
        "--dialect",
        "duckdb",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("CREATE OR REPLACE TABLE \"retail\".\"churn_training\" AS"),
        "{stdout}"
    );
}

#[test]
fn json_format_carries_sql_and_diagnostics() {
    let (code, stdout, _) = featurecraft(&[
        "compile",
        "fixtures/recipes/bad/W011_declared_type.json",
        "--catalog",
        "fixtures/retail_catalog.json",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0);
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(value["sql"].is_string());
    let d = &value["diagnostics"][0];
    assert_eq!(d["code"], "W011");
    assert_eq!(d["severity"], "warning");
    assert_eq!(d["path"], "features[1].data_type");
    for key in ["message", "span", "hints"] {
        assert!(d.get(key).is_some(), "{key} is present");
    }
}

#[test]
fn strict_mode_fails_on_warnings() {
    let (code, stdout, _) = featurecraft(&[
        "compile",
        "fixtures/recipes/bad/W011_declared_type.json",
        "--catalog",
        "fixtures/retail_catalog.json",
        "--strict",
    ]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
}

#[test]
fn usage_and_io_problems_exit_two_with_a_message() {
    let (code, _, stderr) = featurecraft(&[
        "compile",
        "no/such/recipe.json",
        "--catalog",
        "fixtures/retail",
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no/such/recipe.json"), "{stderr}");
    let (code, _, stderr) = featurecraft(&[
        "compile",
        "fixtures/recipes/good/churn_basic.json",
        "--catalog",
        "no/such/catalog",
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no/such/catalog"), "{stderr}");
    let (code, _, stderr) = featurecraft(&[
        "compile",
        "fixtures/recipes/good/churn_basic.json",
        "--catalog",
        "fixtures/retail",
        "--dialect",
        "oracle",
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown dialect `oracle`"), "{stderr}");
    let design = [
        "design",
        "--catalog",
        "fixtures/retail",
        "--spine",
        "churn_cutoffs",
        "--grain",
        "customer_id,cutoff_time",
        "--label-column",
        "churned_30d",
    ];
    let (code, _, stderr) =
        featurecraft(&[&design[..], &["--time-column", "events=event_ts"]].concat());
    assert_eq!(code, 2);
    assert!(stderr.contains("need --cutoff-column"), "{stderr}");
    let (code, _, stderr) = featurecraft(
        &[
            &design[..],
            &["--cutoff-column", "cutoff_time", "--time-column", "events"],
        ]
        .concat(),
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--time-column `events`: write TABLE=COLUMN"),
        "{stderr}"
    );
    // A relationship that is not CHILD.COL=PARENT.KEY (a quote after a backslash in it) is a
    // usage error; one naming an unknown table is the design's error.
    let (code, _, stderr) = featurecraft(
        &[
            &design[..],
            &["--relationship", "order_items\\'order_id=orders"],
        ]
        .concat(),
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("write CHILD_TABLE.COLUMN=PARENT_TABLE.KEY"),
        "{stderr}"
    );
    let (code, _, stderr) = featurecraft(
        &[
            &design[..],
            &["--relationship", "order_items.order_id=nowhere.order_id"],
        ]
        .concat(),
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("unknown table `nowhere`")
            && stderr.contains("design.relationships[0].parent"),
        "{stderr}"
    );
}

#[test]
fn a_corrupt_parquet_file_in_the_catalog_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.parquet"), b"not parquet at all").unwrap();
    let (code, _, stderr) = featurecraft(&[
        "compile",
        "fixtures/recipes/good/churn_basic.json",
        "--catalog",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("broken.parquet") && stderr.contains("not a readable Parquet file"),
        "{stderr}"
    );
}

#[test]
fn the_generator_rewrites_the_bundled_catalog_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("retail");
    let (code, _, stderr) = featurecraft(&[
        "generate",
        "--out",
        out.to_str().unwrap(),
        "--customers",
        "1000",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let bundled = common::fixtures().join("retail");
    let mut compared = 0;
    for relative in [
        "customers.parquet",
        "orders.parquet",
        "events/part-000.parquet",
        "events/part-001.parquet",
        "marketing/campaign_touches.parquet",
        "plan_changes.parquet",
        "churn_cutoffs.parquet",
        "customer_order_items.sql",
        "events_monthly.sql",
    ] {
        let fresh = std::fs::read(out.join(relative)).unwrap();
        let committed = std::fs::read(bundled.join(relative)).unwrap();
        assert!(
            fresh == committed,
            "{relative} differs from the bundled fixture"
        );
        compared += 1;
    }
    assert_eq!(compared, 9);
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary files are left behind");
}

#[test]
fn validate_prints_the_summary_as_json() {
    let (code, stdout, stderr) = featurecraft(&[
        "validate",
        "fixtures/recipes/good/churn_basic.json",
        "--catalog",
        "fixtures/retail",
        "--sample-size",
        "200",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(value["validation"]["estimated_row_count"], 1000);
    let labels: u64 = value["validation"]["label_distribution"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(labels, 200, "the sample has 200 entities");
    assert!(value["sql"].as_str().unwrap().starts_with("CREATE TABLE"));
    let (code, _, stderr) = featurecraft(&[
        "validate",
        "fixtures/recipes/good/churn_basic.json",
        "--catalog",
        "fixtures/retail",
        "--memory-limit",
        "lots",
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("`lots` is not a size"), "{stderr}");
    for (timeout, says) in [
        ("0", "--timeout"),
        ("-5", "-5"),
        ("1.5", "--timeout"),
        ("2592001", "2592001"),
        ("99999999999999999999999", "--timeout"),
    ] {
        let (code, _, stderr) = featurecraft(&[
            "materialize",
            "fixtures/recipes/good/churn_basic.json",
            "--catalog",
            "fixtures/retail",
            "--timeout",
            timeout,
        ]);
        assert_eq!(code, 2, "{timeout}: {stderr}");
        assert!(stderr.contains(says), "{timeout}: {stderr}");
    }
}

#[test]
fn retry_of_a_failed_job_file_prints_the_new_job() {
    let dir = tempfile::tempdir().unwrap();
    let mut job: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::fixtures().join("contract/retry_response.json")).unwrap(),
    )
    .unwrap();
    job["status"] = "failed".into();
    job["error"] = "the crew timed out".into();
    job["recipe"] = serde_json::from_str(
        &std::fs::read_to_string(common::fixtures().join("recipes/good/churn_basic.json")).unwrap(),
    )
    .unwrap();
    let path = dir.path().join("job.json");
    std::fs::write(&path, job.to_string()).unwrap();
    let (code, stdout, stderr) = featurecraft(&[
        "retry",
        path.to_str().unwrap(),
        "--catalog",
        "fixtures/retail",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let next: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(next["status"], "pending_approval");
    assert_eq!(next["job_id"], job["job_id"]);
    assert_eq!(next["created_at"], job["created_at"]);
    assert_eq!(next["error"], serde_json::Value::Null);
    // A job that has not failed is refused.
    job["status"] = "approved".into();
    std::fs::write(&path, job.to_string()).unwrap();
    let (code, _, stderr) = featurecraft(&[
        "retry",
        path.to_str().unwrap(),
        "--catalog",
        "fixtures/retail",
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("only a failed job can be retried; this one is approved"),
        "{stderr}"
    );
}

#[test]
fn a_bad_datafusion_setting_in_the_environment_is_named_not_run() {
    let validate = [
        "validate",
        "fixtures/recipes/good/churn_basic.json",
        "--catalog",
        "fixtures/retail",
        "--format",
        "text",
    ];
    let (code, _, stderr) =
        featurecraft_with_env(&validate, &[("DATAFUSION_EXECUTION_BATCH_SIZE", "many")]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("E050") && stderr.contains("DATAFUSION_EXECUTION_BATCH_SIZE"),
        "{stderr}"
    );
    // A valid setting is taken and the run succeeds.
    let (code, _, stderr) =
        featurecraft_with_env(&validate, &[("DATAFUSION_EXECUTION_BATCH_SIZE", "1024")]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_token_lifetime_that_overflows_or_is_zero_is_a_usage_error() {
    let secret = [(
        "FEATURECRAFT_JWT_SECRET",
        "a-development-secret-of-32-bytes!",
    )];
    for ttl in ["999999999999999999d", "3661d", "0s"] {
        let (code, stdout, stderr) =
            featurecraft_with_env(&["token", "--sub", "ana", "--ttl", ttl], &secret);
        assert_eq!(code, 2, "{ttl}: {stdout}{stderr}");
        assert!(stdout.is_empty(), "{ttl}: no token printed: {stdout}");
        assert!(stderr.contains("lifetime"), "{ttl}: {stderr}");
    }
    let (code, stdout, _) =
        featurecraft_with_env(&["token", "--sub", "ana", "--ttl", "3660d"], &secret);
    assert_eq!(code, 0);
    assert_eq!(stdout.trim().split('.').count(), 3);
}

#[test]
fn a_catalog_generate_cannot_load_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    for (args, says) in [
        (
            vec!["--event-files", "0"],
            "--event-files must be at least 2",
        ),
        (
            vec!["--event-files", "1"],
            "--event-files must be at least 2",
        ),
        (
            vec!["--customers", "3", "--event-files", "4"],
            "cannot exceed --customers",
        ),
        (vec!["--customers", "0"], "--customers must be at least 1"),
    ] {
        let out = dir.path().join("catalog");
        let mut all = vec!["generate", "--out", out.to_str().unwrap()];
        all.extend(args.iter().copied());
        let (code, _, stderr) = featurecraft(&all);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!out.exists(), "{args:?}: nothing written");
    }
    // The smallest catalog it writes loads: as many event files as customers.
    let out = dir.path().join("small");
    let (code, _, stderr) = featurecraft(&[
        "generate",
        "--out",
        out.to_str().unwrap(),
        "--customers",
        "3",
        "--event-files",
        "3",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) =
        featurecraft(&["describe-catalog", "--catalog", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("\"events\""), "{stdout}");
}

#[test]
fn commands_that_run_queries_refuse_a_json_catalog_and_say_why() {
    for args in [
        vec!["validate", "fixtures/recipes/good/churn_basic.json"],
        vec!["materialize", "fixtures/recipes/good/churn_basic.json"],
    ] {
        let mut all = args.clone();
        all.extend(["--catalog", "fixtures/retail_catalog.json"]);
        let (code, stdout, stderr) = featurecraft(&all);
        assert_eq!(code, 2, "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains("is a JSON catalog"), "{stderr}");
        assert!(stderr.contains("holds no data"), "{stderr}");
        assert!(stderr.contains("--catalog fixtures/retail"), "{stderr}");
    }
    // compile takes it: schemas are all it needs.
    let (code, _, stderr) = featurecraft(&[
        "compile",
        "fixtures/recipes/good/churn_basic.json",
        "--catalog",
        "fixtures/retail_catalog.json",
    ]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn strict_names_the_warnings_that_failed_it_and_a_small_spine_is_not_one() {
    let (code, _, stderr) = featurecraft(&[
        "compile",
        "fixtures/recipes/bad/W011_declared_type.json",
        "--catalog",
        "fixtures/retail",
        "--strict",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("--strict: failed by 1 warning(s): W011 at features[1].data_type"),
        "{stderr}"
    );
    // Every bundled recipe validates under --strict with the default sample size, larger
    // than the bundled catalog's 1000 customers.
    for (stem, _) in common::recipes("good") {
        let path = format!("fixtures/recipes/good/{stem}.json");
        let (code, _, stderr) = featurecraft(&[
            "validate",
            &path,
            "--catalog",
            "fixtures/retail",
            "--strict",
        ]);
        if code != 0 {
            assert!(
                stderr.contains("--strict: failed by"),
                "{stem}: a strict failure names its warnings: {stderr}"
            );
            assert!(!stderr.contains("W130"), "{stem}: {stderr}");
        }
    }
}

#[test]
fn validate_reports_as_text_by_default_and_shows_rows_on_request() {
    let (code, stdout, stderr) = featurecraft(&[
        "validate",
        "fixtures/recipes/good/churn_basic.json",
        "--catalog",
        "fixtures/retail",
        "--sample-size",
        "300",
        "--show",
        "3",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("estimated rows: 1000\nlabel distribution:\n"),
        "{stdout}"
    );
    assert!(stdout.contains("first 3 of 300 sampled rows:"), "{stdout}");
    let table: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("first 3"))
        .skip(1)
        .collect();
    assert!(table[1].contains("| customer_id |"), "{stdout}");
    // A header, three rows and four borders.
    assert_eq!(
        table.iter().filter(|l| l.starts_with('|')).count(),
        4,
        "{stdout}"
    );
}

#[test]
fn materialize_writes_into_the_recipe_s_domain_unless_told_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "materialize",
            "fixtures/recipes/good/churn_basic.json",
            "--catalog",
            "fixtures/retail",
            "--warehouse",
            warehouse,
        ];
        args.extend(extra);
        let (code, stdout, stderr) = featurecraft(&args);
        assert_eq!(code, 0, "{stderr}");
        let written: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        std::path::PathBuf::from(written["path"].as_str().unwrap())
    };
    // churn_basic's target is `retail.churn_training`.
    assert_eq!(run(&[]), dir.path().join("retail/churn_training"));
    assert_eq!(
        run(&["--domain", "sandbox"]),
        dir.path().join("sandbox/churn_training")
    );
}

#[test]
fn schema_prints_the_json_schema_of_each_shape() {
    let (code, stdout, stderr) = featurecraft(&["schema"]);
    assert_eq!(code, 0, "{stderr}");
    let recipe: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(recipe, featurecraft::contract::schema::recipe_schema());
    assert_eq!(recipe["title"], "FeatureRecipe");
    let required: Vec<&str> = recipe["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(
        required,
        ["target_table", "entity_grain", "label", "features"]
    );
    for (kind, title) in [("job", "Job"), ("design-request", "DesignRequest")] {
        let (code, stdout, stderr) = featurecraft(&["schema", "--kind", kind]);
        assert_eq!(code, 0, "{stderr}");
        let schema: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(schema["title"], title);
    }
    let (code, _, stderr) = featurecraft(&["schema", "--kind", "table"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("possible values"), "{stderr}");
}

/// A URL is never taken for a local folder (`ftp:`): a scheme featurecraft does not read is
/// refused by name (the object stores featurecraft reads are tested in tests/object_store.rs).
#[test]
fn unknown_storage_schemes_are_refused_clearly_and_create_no_local_folder() {
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_featurecraft"))
            .args(args)
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .env(
                "FEATURECRAFT_JWT_SECRET",
                "a-secret-of-at-least-32-bytes-long!",
            )
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let recipe = format!("{root}/fixtures/recipes/good/churn_basic.json");
    let retail = format!("{root}/fixtures/retail");
    let (code, stderr) = run(&["validate", &recipe, "--catalog", "ftp://host/retail"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("catalog ftp://host/retail: unknown storage scheme `ftp://`"),
        "{stderr}"
    );
    let (code, stderr) = run(&[
        "materialize",
        &recipe,
        "--catalog",
        &retail,
        "--warehouse",
        "ftp://host/warehouse",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("error[E053]"), "{stderr}");
    assert!(
        stderr.contains("cannot write into ftp://host/warehouse: unknown storage scheme"),
        "{stderr}"
    );
    let (code, stderr) = run(&[
        "serve",
        "--catalog",
        &retail,
        "--db",
        "jobs.db",
        "--warehouse",
        "ftp://host/warehouse",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--warehouse ftp://host/warehouse: unknown storage scheme"),
        "{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "nothing local was created: {left:?}");
}

/// `--leak-threshold` decides what the leakage screen flags, and a value outside (0, 1]
/// is a usage error naming the flag (validate, design, retry and serve take it).
#[test]
fn the_leak_threshold_flag_sets_what_the_screen_flags() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("leak.json");
    std::fs::write(
        &recipe,
        serde_json::json!({
            "target_table": "t",
            "entity_grain": ["customer_id"],
            "label": {"column": "customers.churned_at", "derivation": "CASE WHEN churned_at IS NOT NULL THEN 1 ELSE 0 END", "positive_class_value": 1},
            "features": [
                {"name": "n_orders", "expression": "COUNT(*)", "source_table": "orders"},
                {"name": "n_cutoffs", "expression": "COUNT(*)", "source_table": "churn_cutoffs"}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let recipe = recipe.to_str().unwrap();
    let catalog = common::fixtures().join("retail");
    let catalog = catalog.to_str().unwrap();
    let warnings = |extra: &[&str]| {
        let mut args = vec!["validate", recipe, "--catalog", catalog, "--format", "json"];
        args.extend(extra);
        let (code, out, err) = featurecraft(&args);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["validation"]["warnings"].to_string()
    };
    let default = warnings(&[]);
    assert!(
        default.contains("W125 target_leakage: feature `n_cutoffs` alone predicts the label (AUC 0.967 on 1000 rows)"),
        "{default}"
    );
    assert!(!default.contains("`n_orders`"), "{default}");
    assert!(!warnings(&["--leak-threshold", "0.99"]).contains("W125"));
    for command in [
        vec!["validate", recipe, "--catalog", catalog],
        vec![
            "design",
            "--catalog",
            catalog,
            "--spine",
            "customers",
            "--grain",
            "customer_id",
            "--label-column",
            "churned_at",
        ],
        vec!["serve", "--catalog", catalog, "--db", "x.db"],
    ] {
        let mut args = command.clone();
        args.extend(["--leak-threshold", "1.5"]);
        let (code, _, err) = featurecraft(&args);
        assert_eq!(code, 2, "{command:?}: {err}");
        assert!(
            err.contains("`--leak-threshold` must be above 0 and at most 1"),
            "{command:?}: {err}"
        );
    }
}

/// `--sample-out` and `fix --write` write only a regular file or a new path: a FIFO and a
/// symbolic link are refused and left as they were, and a rewritten recipe keeps its
/// permissions.
#[test]
fn outputs_go_only_where_the_user_meant() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let recipe = "fixtures/recipes/good/churn_basic.json";
    let sample_out = |target: &std::path::Path| {
        featurecraft(&[
            "validate",
            recipe,
            "--catalog",
            "fixtures/retail",
            "--sample-size",
            "50",
            "--sample-out",
            target.to_str().unwrap(),
        ])
    };
    let fifo = dir.path().join("pipe");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let (code, _, err) = sample_out(&fifo);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not a regular file"), "{err}");
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );

    let kept = dir.path().join("kept.txt");
    std::fs::write(&kept, "mine").unwrap();
    let link = dir.path().join("link.parquet");
    std::os::unix::fs::symlink(&kept, &link).unwrap();
    let (code, _, err) = sample_out(&link);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is a symbolic link"), "{err}");
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), "mine");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );

    // A new path and a regular file are written; nothing else is left beside them.
    let out = dir.path().join("rows.parquet");
    assert_eq!(sample_out(&out).0, 0);
    assert_eq!(sample_out(&out).0, 0);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");

    // fix --write keeps a private recipe private.
    let typo = dir.path().join("typo.json");
    std::fs::copy("fixtures/recipes/bad/E021_unknown_column.json", &typo).unwrap();
    std::fs::set_permissions(&typo, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, _, err) = featurecraft(&[
        "fix",
        typo.to_str().unwrap(),
        "--catalog",
        "fixtures/retail",
        "--write",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        std::fs::read_to_string(&typo)
            .unwrap()
            .contains("SUM(amount)")
    );
    let mode = std::fs::metadata(&typo).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

/// One bound for every time limit, and no token the service would refuse.
#[test]
fn a_zero_job_timeout_and_an_empty_token_subject_are_usage_errors() {
    let (code, _, err) = featurecraft(&[
        "serve",
        "--catalog",
        "fixtures/retail",
        "--db",
        "x.db",
        "--job-timeout",
        "0",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--job-timeout"), "{err}");
    let (code, out, err) = featurecraft(&["token", "--sub", ""]);
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty() && err.contains("--sub"), "{out} {err}");
}

/// One input, one exit code in every command that reads a recipe: a recipe that is not
/// JSON is the recipe's error (1); a file that is not UTF-8 text cannot be read (2).
#[test]
fn a_malformed_recipe_exits_alike_in_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let not_json = dir.path().join("broken.json");
    std::fs::write(&not_json, "{\"target_table\": ").unwrap();
    let not_text = dir.path().join("binary.json");
    std::fs::write(&not_text, [0xff, 0xfe, 0x00, 0x7b]).unwrap();
    for (file, expected) in [(&not_json, 1), (&not_text, 2)] {
        let file = file.to_str().unwrap();
        for command in ["compile", "validate", "test", "fix"] {
            let (code, _, err) = featurecraft(&[command, file, "--catalog", "fixtures/retail"]);
            assert_eq!(code, expected, "{command} {file}: {err}");
        }
    }
}

/// A full disk during a materialization is E053 naming the table's folder, and leaves no
/// staging folder. Needs a small tmpfs (root with mount rights); skipped, saying so, without.
#[test]
fn a_full_disk_is_a_write_error_naming_the_folder() {
    struct Mounted(std::path::PathBuf);
    impl Drop for Mounted {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=32k", "tmpfs"])
        .arg(dir.path())
        .output();
    if !mounted.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: cannot mount a small tmpfs here ({mounted:?})");
        return;
    }
    let _guard = Mounted(dir.path().to_path_buf());
    // A recipe whose table is larger than 32 KiB: every customer's orders and events.
    let recipe = dir.path().with_extension("recipe.json");
    let features: Vec<serde_json::Value> = (0..40)
        .map(|i| serde_json::json!({"name": format!("f{i}"), "expression": format!("SUM(amount * {i}.5)"), "source_table": "orders"}))
        .collect();
    std::fs::write(
        &recipe,
        serde_json::json!({
            "target_table": "retail.wide", "entity_grain": ["customer_id"],
            "label": {"column": "churned_at", "derivation": "CASE WHEN churned_at IS NOT NULL THEN 1 ELSE 0 END"},
            "features": features
        })
        .to_string(),
    )
    .unwrap();
    let (code, _, err) = featurecraft(&[
        "materialize",
        recipe.to_str().unwrap(),
        "--catalog",
        "fixtures/retail",
        "--warehouse",
        dir.path().to_str().unwrap(),
    ]);
    let _ = std::fs::remove_file(&recipe);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("E053") && err.contains("No space left on device"),
        "{err}"
    );
    assert!(
        err.contains(dir.path().to_str().unwrap()),
        "the folder is named: {err}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path().join("retail"))
        .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

/// Outer joins on a source grouped by the key run as lookups (`run::lookup_join`) where
/// DataFusion plans partitioned hash joins, as it does at scale; the bundled tables are small
/// enough for its single-partition joins, which stay DataFusion's. The settings below make
/// every join partitioned, so every good recipe's table is built both ways and compared.
#[tokio::test(flavor = "multi_thread")]
async fn every_good_recipe_s_table_is_the_same_with_its_joins_partitioned() {
    let warehouses = tempfile::tempdir().unwrap();
    let partitioned = [
        (
            "DATAFUSION_OPTIMIZER_HASH_JOIN_SINGLE_PARTITION_THRESHOLD",
            "0",
        ),
        (
            "DATAFUSION_OPTIMIZER_HASH_JOIN_SINGLE_PARTITION_THRESHOLD_ROWS",
            "0",
        ),
    ];
    for recipe in common::good_recipes() {
        let name = recipe.file_stem().unwrap().to_string_lossy().into_owned();
        let mut tables = Vec::new();
        for (way, env) in [("single", &[][..]), ("partitioned", &partitioned[..])] {
            let warehouse = warehouses.path().join(way);
            let (code, stdout, stderr) = featurecraft_with_env(
                &[
                    "materialize",
                    recipe.to_str().unwrap(),
                    "--catalog",
                    "fixtures/retail",
                    "--warehouse",
                    warehouse.to_str().unwrap(),
                ],
                env,
            );
            assert_eq!(code, 0, "{name}, {way} joins: {stderr}");
            let written: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
            let path = std::path::PathBuf::from(written["path"].as_str().unwrap());
            tables.push(common::table_rows(&path).await);
        }
        let (want, got) = (&tables[0], &tables[1]);
        assert!(!want.is_empty(), "{name}: an empty table proves nothing");
        assert_eq!(got.len(), want.len(), "{name}: rows in the table");
        for (w, g) in want.iter().zip(got) {
            assert!(
                w.len() == g.len() && w.iter().zip(g).all(|(a, b)| common::same_value(a, b)),
                "{name}: single-partition joins give {w:?}, partitioned ones {g:?}"
            );
        }
    }
}
