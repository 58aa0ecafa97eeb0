//! Resolving names against the catalog: tables, columns, a fragment's columns and
//! functions, and whether a source reaches the entity key.

use super::*;

impl<'c> Analyzer<'c> {
    pub(super) fn resolve_table(&mut self, name: &str, path: &RecipePath) -> Option<&'c Table> {
        let catalog = self.catalog;
        match catalog.table(name.trim()) {
            Some(table) => Some(table),
            None => {
                let names: Vec<&str> = catalog.tables().map(|t| t.name.as_str()).collect();
                let mut found = suggestions(name, names.iter().copied());
                // `orders` may live in a domain: suggest `retail.orders`.
                for t in catalog.tables() {
                    if let Some((_, bare)) = t.name.split_once('.')
                        && bare.eq_ignore_ascii_case(name)
                        && !found.contains(&t.name)
                    {
                        found.insert(0, t.name.clone());
                    }
                }
                let d = Diagnostic::new(
                    Code::E020,
                    format!("unknown table `{name}`: it is not in the catalog"),
                )
                .at(path.clone());
                self.push(d.suggest(Replaces::Name, name, found));
                None
            }
        }
    }

    /// A source holds the entity key, or reaches it through one shortest path of the
    /// recipe's relationships (recorded in `paths`); otherwise `E023` (or `E027` when
    /// several paths tie).
    pub(super) fn reach_key(
        &mut self,
        table: &Table,
        key: &[String],
        links: &[Link],
        at: &RecipePath,
    ) {
        if links.is_empty() || relationships::holds(table, key) {
            self.check_grain_in(table, key, at);
            return;
        }
        match relationships::path(links, self.catalog, &table.name, key) {
            Ok(Some(hops)) => {
                self.paths.insert(table.name.to_ascii_lowercase(), hops);
            }
            Ok(None) => self.check_grain_in(table, key, at),
            Err(candidates) => self.push(
                Diagnostic::new(
                    Code::E027,
                    format!(
                        "source `{}` reaches ({}) by more than one path of the same length: {candidates}",
                        table.name,
                        key.join(", ")
                    ),
                )
                .at(at.clone())
                .hint("keep only the relationships of the path you mean"),
            ),
        }
    }

    pub(super) fn check_grain_in(&mut self, table: &Table, grain: &[String], path: &RecipePath) {
        for g in grain {
            if table.column(g).is_none() {
                let hint = did_you_mean(&suggestions(
                    g,
                    table.columns.iter().map(|c| c.name.as_str()),
                ));
                self.push(
                    Diagnostic::new(
                        Code::E023,
                        format!("source `{}` has no grain column `{g}`: every source must carry the whole grain", table.name),
                    )
                    .at(path.clone())
                    .hints(hint)
                    .hint("declare how it reaches the grain in `relationships` (`{\"child\": \"t.fk\", \"parent\": \"p.key\"}`), or give it a view in the catalog (a `.sql` file selecting the grain)"),
                );
            }
        }
    }

    /// Checks a feature's expression: forbidden constructs, columns, aggregate mixing.
    pub(super) fn resolve_expr(
        &mut self,
        index: usize,
        table: &Table,
        mut expr: Expr,
        grain: &[String],
        path: &RecipePath,
    ) -> Option<(Resolved, Expr)> {
        let found = self.resolve_fragment(table, &mut expr, grain, path, Role::Feature)?;
        let resolved = Resolved {
            index,
            table: table.name.clone(),
            facts: found.facts,
            bare_non_grain: found.bare_non_grain,
            reads: found.reads,
            reads_cutoff: found.reads_cutoff,
        };
        Some((resolved, expr))
    }

    /// Checks a fragment (a feature's expression or the label's derivation) against its
    /// table: forbidden constructs, calls that change between runs, each column (unknown
    /// ones reported as the role says), and an aggregate mixed with a bare column. On
    /// success the columns are rewritten to the catalog's spelling.
    pub(super) fn resolve_fragment(
        &mut self,
        table: &Table,
        expr: &mut Expr,
        grain: &[String],
        path: &RecipePath,
        role: Role,
    ) -> Option<FragmentColumns> {
        let facts = fragment::inspect(expr);
        self.report_non_deterministic(&facts, path);
        let mut ok = self.report_forbidden(&facts, path);
        let mut bare_non_grain = Vec::new();
        let mut reads = BTreeSet::new();
        // The row's cutoff, read by name where the table has no column of that name.
        let cutoff = match role {
            Role::Feature => self.feature_cutoff.clone(),
            Role::Label => None,
        };
        let is_cutoff = |column: &ColumnRef| {
            column.qualifier.is_none()
                && table.column(&column.name).is_none()
                && cutoff
                    .as_deref()
                    .is_some_and(|c| c.eq_ignore_ascii_case(&column.name))
        };
        let mut reads_cutoff = false;
        for column in &facts.columns {
            if is_cutoff(column) {
                reads_cutoff = true;
                continue;
            }
            let found = match role {
                Role::Feature => self.resolve_column(table, column, path),
                Role::Label => self.resolve_label_column(table, column, path),
            };
            match found {
                Some(name) => {
                    let is_grain = grain.iter().any(|g| g.eq_ignore_ascii_case(&name));
                    if !column.in_aggregate && !is_grain && !bare_non_grain.contains(&name) {
                        bare_non_grain.push(name.clone());
                    }
                    reads.insert(name);
                }
                None => ok = false,
            }
        }
        if facts.aggregates
            && let Some(first) = bare_non_grain.first()
        {
            let span = facts
                .columns
                .iter()
                .find(|c| !c.in_aggregate && c.name.eq_ignore_ascii_case(first))
                .and_then(|c| c.span);
            let what = match role {
                Role::Feature => "an aggregate expression; the source is grouped by the grain",
                Role::Label => "an aggregate label",
            };
            self.push(
                Diagnostic::new(
                    Code::E030,
                    format!("`{first}` is read outside any aggregate in {what}"),
                )
                .at(path.clone())
                .with_span(span)
                .hint(format!("wrap it in an aggregate, e.g. `MAX({first})`")),
            );
            ok = false;
        }
        if !ok {
            return None;
        }
        fragment::rewrite_columns(expr, |qualifier, ident| {
            table
                .column(&ident.value)
                .map(|c| c.name.clone())
                .or_else(|| {
                    cutoff
                        .clone()
                        .filter(|c| qualifier.is_none() && c.eq_ignore_ascii_case(&ident.value))
                })
        });
        Some(FragmentColumns {
            facts,
            reads,
            bare_non_grain,
            reads_cutoff,
        })
    }

    /// `W013` for each call whose value changes from run to run.
    pub(super) fn report_non_deterministic(&mut self, facts: &FragmentFacts, path: &RecipePath) {
        for (name, span) in &facts.non_deterministic {
            self.push(
                Diagnostic::new(
                    Code::W013,
                    format!("`{name}` changes from one run to the next: the table cannot be reproduced, and validation sees other values than materialization"),
                )
                .at(path.clone())
                .with_span(*span)
                .hint("compare with a fixed date, or a cutoff column of the spine (point-in-time recipes), instead of the clock"),
            );
        }
    }

    pub(super) fn report_forbidden(&mut self, facts: &FragmentFacts, path: &RecipePath) -> bool {
        for forbidden in &facts.forbidden {
            self.push(
                Diagnostic::new(
                    Code::E012,
                    format!("{} is not allowed in a recipe fragment", forbidden.what),
                )
                .at(path.clone())
                .with_span(forbidden.span)
                .hint(forbidden.hint),
            );
        }
        facts.forbidden.is_empty()
    }

    /// Resolves one column reference against `table`; reports E021 when it is not there.
    pub(super) fn resolve_column(
        &mut self,
        table: &Table,
        column: &ColumnRef,
        path: &RecipePath,
    ) -> Option<String> {
        if let Some(qualifier) = &column.qualifier {
            let bare_table = table.name.rsplit('.').next().unwrap_or(&table.name);
            if !qualifier.eq_ignore_ascii_case(&table.name)
                && !qualifier.eq_ignore_ascii_case(bare_table)
            {
                self.push(
                    Diagnostic::new(
                        Code::E021,
                        format!("`{qualifier}.{}` reads table `{qualifier}`, but this fragment reads only `{}`", column.name, table.name),
                    )
                    .at(path.clone())
                    .with_span(column.span)
                    .hint(format!("write `{}` alone, or read it through a view that joins the tables", column.name)),
                );
                return None;
            }
        }
        let found = lookup(table, column);
        if let Some(found) = found {
            return Some(found.name.clone());
        }
        let mut d = unknown_column(
            Code::E021,
            format!("unknown column `{}` in table `{}`", column.name, table.name),
            table,
            column,
            path,
        );
        let elsewhere = self.tables_with_column(&column.name);
        if !elsewhere.is_empty() {
            d = d.hint(format!(
                "`{}` exists in {}",
                column.name,
                elsewhere.join(", ")
            ));
        }
        self.push(d);
        None
    }

    /// Up to three tables that have a column of this name, quoted for a hint.
    pub(super) fn tables_with_column(&self, name: &str) -> Vec<String> {
        self.catalog
            .tables()
            .filter(|t| t.column(name).is_some())
            .map(|t| format!("`{}`", t.name))
            .take(3)
            .collect()
    }
}

/// The column a reference names: quoted names match exactly, bare ones ignoring case; a
/// qualifier must name the table itself.
pub(super) fn lookup<'t>(
    table: &'t Table,
    column: &ColumnRef,
) -> Option<&'t crate::catalog::Column> {
    let bare_table = table.name.rsplit('.').next().unwrap_or(&table.name);
    let qualifier_ok = column
        .qualifier
        .as_ref()
        .is_none_or(|q| q.eq_ignore_ascii_case(&table.name) || q.eq_ignore_ascii_case(bare_table));
    if !qualifier_ok {
        return None;
    }
    if column.quoted {
        table.columns.iter().find(|c| c.name == column.name)
    } else {
        table.column(&column.name)
    }
}

/// An unknown column at its span, with the table's closest columns as the suggestion.
pub(super) fn unknown_column(
    code: Code,
    message: String,
    table: &Table,
    column: &ColumnRef,
    path: &RecipePath,
) -> Diagnostic {
    Diagnostic::new(code, message)
        .at(path.clone())
        .with_span(column.span)
        .suggest(
            Replaces::Name,
            &column.name,
            suggestions(&column.name, table.columns.iter().map(|c| c.name.as_str())),
        )
}
