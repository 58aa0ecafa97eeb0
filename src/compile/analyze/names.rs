//! The names a recipe gives: the target table and the output columns (unique, portable,
//! within the dialect's length).

use super::*;

impl<'c> Analyzer<'c> {
    /// The target table is `name` or `domain.name`: materialization writes
    /// `WAREHOUSE/DOMAIN/NAME`, so a third part would be dropped on the way.
    pub(super) fn check_target(&mut self, target: &str) -> Option<Vec<String>> {
        let parts: Vec<String> = target.split('.').map(str::to_string).collect();
        let problem = if parts.len() > 2 {
            Some(format!(
                "has {} parts: a training table is `name` or `domain.name` (written to WAREHOUSE/DOMAIN/NAME)",
                parts.len()
            ))
        } else {
            parts.iter().find_map(|p| {
                name_problem(p).map(|why| format!("has a part `{}` that {why}", shown_name(p)))
            })
        };
        if let Some(why) = problem {
            self.push(
                Diagnostic::new(
                    Code::E003,
                    format!("target table `{}` {why}", shown_name(target)),
                )
                .at(RecipePath::Field("target_table".into()))
                .hint("use `name` or `domain.name` made of letters, digits and `_`"),
            );
            return None;
        }
        Some(parts)
    }

    /// Output names: portable, at most 128 characters, unique ignoring case; the grain non-empty.
    pub(super) fn check_names(&mut self, recipe: &FeatureRecipe) {
        if recipe.entity_grain.is_empty() {
            self.push(
                Diagnostic::new(
                    Code::E002,
                    "`entity_grain` is empty: name the columns that identify one row",
                )
                .at(RecipePath::Field("entity_grain".into()))
                .hint("e.g. `[\"customer_id\"]`"),
            );
        }
        // Lower-cased name → the path that first used it.
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut check = |me: &mut Self, name: &str, path: RecipePath, what: &str| {
            if let Some(reason) = name_problem(name) {
                me.push(
                    Diagnostic::new(
                        Code::E003,
                        format!("{what} name `{}` {reason}", shown_name(name)),
                    )
                    .at(path.clone()),
                );
                return;
            }
            let lower = name.to_ascii_lowercase();
            if let Some(first) = seen.get(&lower) {
                me.push(
                    Diagnostic::new(
                        Code::E004,
                        format!("output name `{name}` is already used by {first}"),
                    )
                    .at(path.clone())
                    .hint("output names must be unique, ignoring case"),
                );
            } else {
                seen.insert(lower, format!("`{path}`"));
            }
        };
        for (i, g) in recipe.entity_grain.iter().enumerate() {
            check(self, g, RecipePath::Grain(i), "grain column");
        }
        for (i, f) in recipe.features.iter().enumerate() {
            check(
                self,
                &f.name,
                RecipePath::feature(i, FeatureField::Name),
                "feature",
            );
        }
        check(
            self,
            &recipe.label.name,
            RecipePath::Label(LabelField::Name),
            "label",
        );
    }
}

/// Why `name` cannot be an output column, table or domain name, if it cannot: it must be
/// portable and at most [`MAX_NAME_CHARS`] long. The one rule for recipes, jobs and the
/// warehouse folders materialization writes.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("is empty".to_string())
    } else if name.len() > MAX_NAME_CHARS {
        Some(format!(
            "is {} characters long; the limit is {MAX_NAME_CHARS}",
            name.chars().count()
        ))
    } else if !crate::sql::is_bare_word(name) {
        Some(
            "is not a portable identifier (letters, digits and `_`, not starting with a digit)"
                .to_string(),
        )
    } else {
        None
    }
}

/// A name for a message: cut to 64 characters, so a 5000-character name stays readable.
pub fn shown_name(name: &str) -> String {
    if name.chars().count() > 64 {
        format!("{}…", name.chars().take(64).collect::<String>())
    } else {
        name.to_string()
    }
}
