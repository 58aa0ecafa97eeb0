//! An external crew on retry (`retry --crew-command`): a scripted crew
//! (tests/crew/scripted_crew.py) that makes a model's typical mistakes and fixes one per
//! round from the diagnostics converges within three rounds, each round a line of the
//! notes; a crew that hangs, prints garbage, exits 1 or prints 100 MB ends in a clean
//! failed retry naming why.
//!
//! Without Python 3 the tests say so and stop, unless `FEATURECRAFT_REQUIRE_ENGINES=1`.

mod common;

use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn python() -> Option<&'static str> {
    let found = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && std::env::var("FEATURECRAFT_REQUIRE_ENGINES").as_deref() == Ok("1") {
        panic!("python3 is needed for the scripted crew");
    }
    found.then_some("python3")
}

/// A failed job whose recipe has three mistakes: a misspelled table, a misspelled column
/// and a bare column beside an aggregate.
fn failed_job(dir: &Path) -> std::path::PathBuf {
    let mut job: Value = serde_json::from_str(
        &std::fs::read_to_string(common::fixtures().join("contract/retry_response.json")).unwrap(),
    )
    .unwrap();
    job["status"] = "failed".into();
    job["error"] = "the recipe does not compile".into();
    job["recipe"] = json!({
        "target_table": "churn_training",
        "entity_grain": ["customer_id"],
        "label": {"column": "churned_at",
                  "derivation": "CASE WHEN churned_at IS NOT NULL THEN 1 ELSE 0 END"},
        "features": [
            {"name": "n_events", "expression": "COUNT(*)", "source_table": "evnts"},
            {"name": "spend", "expression": "SUM(amout)", "source_table": "orders"},
            {"name": "spend_plus_discount", "expression": "SUM(amount) + discount",
             "source_table": "orders"}
        ]
    });
    let path = dir.join("job.json");
    std::fs::write(&path, job.to_string()).unwrap();
    path
}

/// `featurecraft retry JOB --catalog fixtures/retail --crew-command COMMAND EXTRA…` on the
/// failed job of three mistakes.
fn retry_job(command: &str, extra: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let job = failed_job(dir.path());
    Command::new(env!("CARGO_BIN_EXE_featurecraft"))
        .current_dir(common::fixtures().join(".."))
        .args([
            "retry",
            job.to_str().unwrap(),
            "--catalog",
            "fixtures/retail",
        ])
        .args(["--crew-command", command])
        .args(extra)
        .output()
        .unwrap()
}

/// [`retry_job`] with the scripted crew in `mode`, 300 sampled entities:
/// (exit code, the printed job, stderr, seconds taken).
fn retry_with(mode: &str, extra: &[&str]) -> (i32, Value, String, f64) {
    let crew = common::fixtures().join("../tests/crew/scripted_crew.py");
    let command = format!("python3 '{}' {mode}", crew.display());
    let started = Instant::now();
    let out = retry_job(&command, &[&["--sample-size", "300"], extra].concat());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let job = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        job,
        stderr,
        started.elapsed().as_secs_f64(),
    )
}

#[test]
fn a_crew_that_learns_from_the_diagnostics_converges_within_three_rounds() {
    if python().is_none() {
        return;
    }
    let (code, job, stderr, _) = retry_with("learn", &[]);
    assert_eq!(code, 0, "{stderr}\n{job:#}");
    assert_eq!(job["status"], "pending_approval", "{job:#}");
    assert!(job["validation"].is_object());
    let notes = job["recipe"]["notes"].as_str().unwrap();
    let rounds: Vec<&str> = notes
        .lines()
        .filter(|l| l.starts_with("crew round"))
        .collect();
    assert_eq!(
        rounds,
        [
            "crew round 1: 2 errors, first E021",
            "crew round 2: 1 error, first E030",
            "crew round 3: no error"
        ],
        "{notes}"
    );
    assert!(
        notes.contains("proposed by the scripted crew in round 3"),
        "{notes}"
    );
    let features = &job["recipe"]["features"];
    assert_eq!(features[0]["source_table"], "events");
    assert_eq!(features[1]["expression"], "SUM(amount)");
    assert_eq!(features[2]["expression"], "SUM(amount) + SUM(discount)");
}

#[test]
fn a_crew_that_logs_a_megabyte_on_stderr_still_converges() {
    if python().is_none() {
        return;
    }
    let (code, job, stderr, _) = retry_with("chatty", &[]);
    assert_eq!(code, 0, "{stderr}\n{job:#}");
    assert_eq!(job["status"], "pending_approval", "{job:#}");
    assert!(
        job["recipe"]["notes"]
            .as_str()
            .unwrap()
            .contains("crew round 3: no error")
    );
}

#[test]
fn two_rounds_are_not_enough_and_the_retry_fails_with_the_last_findings() {
    if python().is_none() {
        return;
    }
    let (code, job, stderr, _) = retry_with("learn", &["--crew-rounds", "2"]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(job["status"], "failed");
    assert!(job["error"].as_str().unwrap().contains("E030"), "{job:#}");
    let notes = job["recipe"]["notes"].as_str().unwrap();
    assert!(
        notes.contains("crew round 2: 1 error, first E030"),
        "{notes}"
    );
}

#[test]
fn a_crew_that_misbehaves_ends_in_a_clean_failed_retry_naming_why() {
    if python().is_none() {
        return;
    }
    for (mode, extra, why) in [
        (
            "hang",
            &["--crew-timeout", "2"][..],
            "did not answer within 2 s",
        ),
        ("garbage", &[][..], "printed something that is not a recipe"),
        ("exit1", &[][..], "the model is overloaded"),
        ("flood", &[][..], "printed more than 8 MB"),
    ] {
        let (code, job, stderr, seconds) = retry_with(mode, extra);
        assert_eq!(code, 1, "{mode}: {stderr}");
        assert_eq!(job["status"], "failed", "{mode}: {job:#}");
        let error = job["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("the crew failed in round 1: ") && error.contains(why),
            "{mode}: {error}"
        );
        assert!(seconds < 60.0, "{mode} took {seconds} s");
        // The job keeps its identity and its last recipe.
        assert_eq!(job["recipe"]["features"][0]["source_table"], "evnts");
    }
}

#[test]
fn a_crew_command_that_cannot_run_is_a_failed_round_and_a_bad_one_a_usage_error() {
    let run = |command: &str| retry_job(command, &[]);
    let out = run("/no/such/crew --flag");
    assert_eq!(out.status.code(), Some(1));
    let job: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        job["error"]
            .as_str()
            .unwrap()
            .contains("the crew `/no/such/crew` could not start"),
        "{job:#}"
    );
    let out = run("python3 'unclosed");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--crew-command: the crew command has an unclosed `'`"),
        "{stderr}"
    );
}
