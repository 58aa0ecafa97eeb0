//! The command line as a new user meets it.

mod common;

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
