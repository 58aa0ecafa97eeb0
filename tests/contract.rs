//! The contract's JSON shapes round-trip through the library's types unchanged.

mod common;

use featurecraft::{Code, Job, JobStatus, parse_recipe};
use serde_json::Value;

#[test]
fn contract_example_job_round_trips_unchanged() {
    let text =
        std::fs::read_to_string(common::fixtures().join("contract/retry_response.json")).unwrap();
    let original: Value = serde_json::from_str(&text).unwrap();
    let job: Job =
        serde_json::from_value(original.clone()).expect("the contract's example parses as a Job");
    assert_eq!(job.status, JobStatus::PendingApproval);
    let recipe = job.recipe.as_ref().expect("the example carries a recipe");
    assert_eq!(recipe.label.positive_class_value, Some(Value::from(1)));
    let again = serde_json::to_value(&job).unwrap();
    assert_eq!(again, original);
    // Text form too: timestamps keep their RFC 3339 `Z` spelling.
    let printed = serde_json::to_string(&job).unwrap();
    assert!(
        printed.contains(r#""created_at":"2026-11-07T05:31:56Z""#),
        "{printed}"
    );
}

#[test]
fn enum_spellings_match_the_contract() {
    for (status, text) in [
        (JobStatus::Running, "running"),
        (JobStatus::PendingApproval, "pending_approval"),
        (JobStatus::Failed, "failed"),
        (JobStatus::Approved, "approved"),
        (JobStatus::Materializing, "materializing"),
        (JobStatus::Complete, "complete"),
    ] {
        assert_eq!(serde_json::to_value(status).unwrap(), Value::from(text));
        assert_eq!(status.as_str(), text);
    }
    for text in ["binary", "multiclass", "regression"] {
        let label: featurecraft::LabelSpec =
            serde_json::from_value(serde_json::json!({"column": "c", "type": text})).unwrap();
        assert_eq!(
            serde_json::to_value(label.label_type).unwrap(),
            Value::from(text)
        );
    }
}

#[test]
fn nullable_job_fields_serialize_as_null() {
    let job = Job::new("t".into(), "d".into(), "o@example.com".into(), None);
    let value = serde_json::to_value(&job).unwrap();
    for field in ["recipe", "sql", "validation", "error"] {
        assert_eq!(value[field], Value::Null, "{field}");
    }
}

#[test]
fn unknown_recipe_fields_warn_with_their_name() {
    let parsed = parse_recipe(
        r#"{"target_table": "t", "entity_grain": ["id"], "label": {"column": "y", "colour": 1},
            "features": [{"name": "a", "expression": "x", "source_table": "s", "expresion": "x"}],
            "note": ""}"#,
    );
    assert!(parsed.recipe.is_some(), "unknown fields are not fatal");
    let warnings: Vec<(Code, String)> = parsed
        .diagnostics
        .iter()
        .map(|d| (d.code, d.path_text().unwrap_or_default()))
        .collect();
    assert_eq!(
        warnings,
        vec![
            (Code::W001, "note".to_string()),
            (Code::W001, "label.colour".to_string()),
            (Code::W001, "features[0].expresion".to_string()),
        ]
    );
    let typo = &parsed.diagnostics[2];
    assert_eq!(typo.hints, vec!["did you mean `expression`?".to_string()]);
}
