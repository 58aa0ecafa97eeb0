//! How the designer profiles and prunes: the settings every part of the crew reads.

use crate::run::RunOptions;

/// How the designer profiles and prunes.
#[derive(Debug, Clone)]
pub struct DesignOptions {
    /// Compile and validation settings (sample size, null threshold, memory limit).
    pub run: RunOptions,
    /// Rows read from the start of each table to profile its columns.
    pub profile_rows: usize,
    /// Most frequent values of a text column counted as features.
    pub top_values: usize,
    /// A text column with more distinct sampled values than this is not aggregated by value.
    pub max_categories: usize,
    /// The designed recipe's `target_table`.
    pub target_table: String,
}

impl Default for DesignOptions {
    fn default() -> Self {
        DesignOptions {
            run: RunOptions::default(),
            profile_rows: 20_000,
            top_values: 3,
            max_categories: 20,
            target_table: "designed_features".into(),
        }
    }
}
