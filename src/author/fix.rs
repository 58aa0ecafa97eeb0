//! Machine-applicable fixes, as `cargo fix` and `ruff --fix` apply them: a finding whose
//! only suggestion is one clear candidate (an unknown column or table, a misspelled recipe
//! field such as `expresion`, a cutoff or time column) is applied to the recipe, and the
//! recipe is compiled again. A fix is kept only when the recipe has fewer findings with it;
//! anything else is left as it was, with the reason.
//!
//! A fix is read from the finding's [`Suggestion`] (what it replaces, the name found, its
//! candidates), never from the words of its hints: rewording a hint changes no fix.

use crate::catalog::Catalog;
use crate::compile::{CompileOptions, compile};
use crate::diagnostic::{Code, Diagnostic, RecipePath, Replaces, Span, Suggestion};
use serde_json::Value;
use std::collections::BTreeSet;

/// One change a fix made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix {
    /// The finding it answers.
    pub code: Code,
    /// Where in the recipe (`features[3].expression`).
    pub path: String,
    /// What was there.
    pub from: String,
    /// What is there now.
    pub to: String,
}

impl std::fmt::Display for Fix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: `{}` → `{}` ({})",
            self.path,
            self.from,
            self.to,
            self.code.as_str()
        )
    }
}

/// A recipe after its fixes.
#[derive(Debug, Clone)]
pub struct Fixed {
    /// The recipe JSON with every kept fix applied.
    pub recipe: Value,
    /// The fixes, in the order they were applied.
    pub fixes: Vec<Fix>,
    /// The findings still there, each with why it was not fixed.
    pub left: Vec<(Diagnostic, String)>,
}

impl Fixed {
    /// True when the fixed recipe has no error left.
    pub fn compiles(&self) -> bool {
        !self.left.iter().any(|(d, _)| d.is_error())
    }
}

/// Applies every machine-applicable fix to `recipe_json`; `Err` when it is not a JSON object.
pub fn fix(
    recipe_json: &str,
    catalog: &Catalog,
    options: &CompileOptions,
) -> Result<Fixed, String> {
    fix_with(recipe_json, |recipe| {
        compile(recipe, catalog, options).diagnostics
    })
}

/// [`fix`] with the findings of a recipe's text from `findings_of`.
fn fix_with(
    recipe_json: &str,
    findings_of: impl Fn(&str) -> Vec<Diagnostic>,
) -> Result<Fixed, String> {
    let mut recipe: Value =
        serde_json::from_str(recipe_json).map_err(|e| format!("the recipe is not JSON: {e}"))?;
    if !recipe.is_object() {
        return Err("the recipe is not a JSON object".into());
    }
    let mut fixes = Vec::new();
    let mut refused: BTreeSet<(String, String)> = BTreeSet::new();
    let mut findings = findings_of(&recipe.to_string());
    // Each round applies one fix; a recipe has finitely many findings, and each kept fix
    // removes at least one.
    for _ in 0..64 {
        let candidate = findings.iter().find_map(|d| {
            let (path, from, to) = candidate(d)?;
            (!refused.contains(&(path.to_string(), from.clone()))).then_some((
                d.clone(),
                path,
                from,
                to,
            ))
        });
        let Some((finding, path, from, to)) = candidate else {
            break;
        };
        let mut trial = recipe.clone();
        let applied = apply(&mut trial, &finding, &path, &from, &to);
        let after = applied
            .then(|| findings_of(&trial.to_string()))
            .filter(|after| better(after, &findings));
        match after {
            Some(after) => {
                recipe = trial;
                findings = after;
                fixes.push(Fix {
                    code: finding.code,
                    path: path.to_string(),
                    from,
                    to,
                });
            }
            None => {
                refused.insert((path.to_string(), from));
            }
        }
    }
    let left = findings
        .into_iter()
        .map(|d| {
            let why = match (&d.suggestion, candidate(&d)) {
                (_, Some(_)) => "the suggestion does not make the recipe better".to_string(),
                (Some(_), None) => "no single clear candidate".to_string(),
                (None, None) if fixable(d.code) => "no single clear candidate".to_string(),
                (None, None) => "not a kind of finding featurecraft fixes".to_string(),
            };
            (d, why)
        })
        .collect();
    Ok(Fixed {
        recipe,
        fixes,
        left,
    })
}

/// Fewer errors, or as many errors and fewer findings.
fn better(after: &[Diagnostic], before: &[Diagnostic]) -> bool {
    let errors = |ds: &[Diagnostic]| ds.iter().filter(|d| d.is_error()).count();
    (errors(after), after.len()) < (errors(before), before.len())
}

/// The kinds of finding that carry a [`Suggestion`] when they have candidates (for the
/// reason a finding without one is left).
fn fixable(code: Code) -> bool {
    matches!(
        code,
        Code::W001 | Code::E020 | Code::E021 | Code::E024 | Code::E025 | Code::E031
    )
}

/// (path, the name found, the one suggested) of a finding whose suggestion has one clear
/// candidate.
fn candidate(d: &Diagnostic) -> Option<(RecipePath, String, String)> {
    let suggestion: &Suggestion = d.suggestion.as_ref()?;
    let to = suggestion.single()?;
    let path = d.path.as_deref()?.clone();
    Some((path, suggestion.found.clone(), to.to_string()))
}

/// Applies one fix to `recipe`; false when the place cannot be found as expected.
fn apply(
    recipe: &mut Value,
    finding: &Diagnostic,
    path: &RecipePath,
    from: &str,
    to: &str,
) -> bool {
    if finding
        .suggestion
        .as_ref()
        .is_some_and(|s| s.replaces == Replaces::FieldKey)
    {
        return rename_field(recipe, path, to);
    }
    let Some(Value::String(text)) = path.find_mut(recipe) else {
        return false;
    };
    match replaced(text, finding.span, from, to) {
        Some(new) => {
            *text = new;
            true
        }
        None => false,
    }
}

/// `text` with `from` replaced by `to`: at the span when there is one, else the whole
/// value, or the column of a qualified `table.column`.
fn replaced(text: &str, span: Option<Span>, from: &str, to: &str) -> Option<String> {
    let name = |quoted: bool| {
        let plain = to
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_lowercase() || (i > 0 && c.is_ascii_digit()));
        if quoted && !plain {
            format!("\"{}\"", to.replace('"', "\"\""))
        } else {
            to.to_string()
        }
    };
    if let Some(span) = span {
        let (start, end) = (offset(text, span.start)?, offset(text, span.end)?);
        let at = text.get(start..end)?;
        let bare = at.trim_matches('"');
        // A qualified name's span may cover `table.column`: replace its last part.
        let (head, last) = match bare.rsplit_once('.') {
            Some((head, last)) => (format!("{head}."), last.trim_matches('"')),
            None => (String::new(), bare),
        };
        if !last.eq_ignore_ascii_case(from) {
            return None;
        }
        return Some(format!(
            "{}{head}{}{}",
            &text[..start],
            name(true),
            &text[end..]
        ));
    }
    if text.eq_ignore_ascii_case(from) {
        return Some(to.to_string());
    }
    let (head, last) = text.rsplit_once('.')?;
    last.eq_ignore_ascii_case(from)
        .then(|| format!("{head}.{to}"))
}

/// The byte offset of a 1-based (line, character) position in `text`.
fn offset(text: &str, position: crate::diagnostic::Position) -> Option<usize> {
    let mut line_start = 0;
    for _ in 1..position.line {
        line_start += text[line_start..].find('\n')? + 1;
    }
    let line = &text[line_start..];
    let column = (position.column as usize).checked_sub(1)?;
    match line.char_indices().nth(column) {
        Some((i, _)) => Some(line_start + i),
        None if line.chars().count() == column => Some(line_start + line.len()),
        None => None,
    }
}

/// Renames the field at `path` (`features[0].expresion`) to `to`, in place, unless the
/// object already has a field of that name.
fn rename_field(recipe: &mut Value, path: &RecipePath, to: &str) -> bool {
    let Some((object, key)) = path.field_in(recipe) else {
        return false;
    };
    if object.contains_key(to) || !object.contains_key(&key) {
        return false;
    }
    let renamed: serde_json::Map<String, Value> = std::mem::take(object)
        .into_iter()
        .map(|(k, v)| {
            if k == key {
                (to.to_string(), v)
            } else {
                (k, v)
            }
        })
        .collect();
    *object = renamed;
    true
}

/// A failed job with its recipe fixed before a retry (`retry --fix`,
/// `POST /jobs/{id}/retry?fix=true`): each fix is recorded in the recipe's `notes`, so the
/// reviewer sees what featurecraft changed. A job without a recipe, or whose recipe needs
/// no fix, comes back as it was.
pub fn fix_job(
    job: &crate::contract::job::Job,
    catalog: &Catalog,
    options: &CompileOptions,
) -> (crate::contract::job::Job, Vec<Fix>) {
    let Some(recipe) = &job.recipe else {
        return (job.clone(), Vec::new());
    };
    let Ok(text) = serde_json::to_string(recipe) else {
        return (job.clone(), Vec::new());
    };
    let fixed = match fix(&text, catalog, options) {
        Ok(fixed) if !fixed.fixes.is_empty() => fixed,
        _ => return (job.clone(), Vec::new()),
    };
    let Some(mut recipe) = crate::contract::recipe::parse_recipe(&fixed.recipe.to_string()).recipe
    else {
        return (job.clone(), Vec::new());
    };
    let record: Vec<String> = fixed.fixes.iter().map(|f| format!("- {f}")).collect();
    let heading = "featurecraft fixed the recipe before this retry:";
    recipe.notes = if recipe.notes.trim().is_empty() {
        format!("{heading}\n{}", record.join("\n"))
    } else {
        format!(
            "{}\n\n{heading}\n{}",
            recipe.notes.trim_end(),
            record.join("\n")
        )
    };
    let mut next = job.clone();
    next.recipe = Some(recipe);
    (next, fixed.fixes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every finding's words replaced: its message and each hint.
    fn reworded(mut findings: Vec<Diagnostic>) -> Vec<Diagnostic> {
        for d in &mut findings {
            d.message = "reworded".into();
            for hint in &mut d.hints {
                *hint = "a hint said otherwise".into();
            }
        }
        findings
    }

    /// `fix` reads data: with every message and hint reworded, each bad fixture gets the
    /// same fixes and the same recipe.
    #[tokio::test]
    async fn rewording_every_hint_changes_no_fix() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let catalog = Catalog::load(&root.join("retail")).await.unwrap();
        let options = CompileOptions::default();
        let mut fixed_anything = 0;
        let mut paths: Vec<_> = std::fs::read_dir(root.join("recipes/bad"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).unwrap();
            let Ok(plain) = fix(&text, &catalog, &options) else {
                continue;
            };
            let words = fix_with(&text, |r| {
                reworded(compile(r, &catalog, &options).diagnostics)
            })
            .unwrap();
            assert_eq!(plain.fixes, words.fixes, "{}", path.display());
            assert_eq!(plain.recipe, words.recipe, "{}", path.display());
            fixed_anything += usize::from(!plain.fixes.is_empty());
        }
        // tests/author.rs names the three bad fixtures with one clear fix.
        assert!(
            fixed_anything >= 3,
            "only {fixed_anything} fixtures were fixed"
        );
    }
}
