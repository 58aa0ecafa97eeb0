//! Helpers shared by the integration tests.
#![allow(dead_code)]

use featurecraft::Catalog;
use std::path::{Path, PathBuf};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The bundled retail catalog (Parquet files and views).
pub async fn retail() -> Catalog {
    Catalog::load(&fixtures().join("retail"))
        .await
        .expect("the bundled catalog loads")
}

/// The same catalog described as JSON (schemas only).
pub fn retail_json() -> Catalog {
    let text = std::fs::read_to_string(fixtures().join("retail_catalog.json"))
        .expect("JSON catalog exists");
    Catalog::from_json(&text).expect("JSON catalog parses")
}

/// `(file stem, text)` of every recipe in `fixtures/recipes/<kind>`, sorted by name.
pub fn recipes(kind: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(fixtures().join("recipes").join(kind))
        .expect("recipe folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            (stem, std::fs::read_to_string(&p).expect("recipe text"))
        })
        .collect();
    out.sort();
    out
}
