//! sqlparser trees as featurecraft builds and bounds them: the calls and casts the compiler
//! writes itself, the unqualified name of a call, and the depth every stage may rely on
//! (measured with sqlparser's own visitor, so any tree the parser built can be measured
//! before anything walks it recursively).

use sqlparser::ast::{Expr, Function, FunctionArguments, Visit, Visitor};
use std::ops::ControlFlow;

/// How deep a parsed expression may nest. The parser's recursion limit does not see a chain
/// of operators (`a + b + c …`), which parses into a tree as deep as the chain is long, and
/// everything after parsing (copying, rewriting, rendering, DataFusion's planning and
/// evaluation) walks the tree recursively: a deeper tree is refused here, not left to
/// overflow a thread's stack and abort the process.
pub const MAX_EXPRESSION_DEPTH: usize = 256;

/// Stack a compile stage (analyze, render) needs to copy and rewrite the deepest accepted
/// expression, with room to spare. Unoptimized frames are several times larger (about
/// 10 KiB a level in the deepest walk), so a debug build reserves more. A test compiles that
/// expression on a thread with no more than this.
pub const EXPRESSION_STACK_NEEDED: usize = if cfg!(debug_assertions) {
    6 << 20
} else {
    1 << 20
};

/// Runs `stage` where at least [`EXPRESSION_STACK_NEEDED`] of stack is left, moving to a
/// fresh stack only when the caller's thread has less: most threads have room, and a new
/// stack costs a mapping and its first page faults on every call.
pub fn with_expression_stack<R>(stage: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(EXPRESSION_STACK_NEEDED, 4 * EXPRESSION_STACK_NEEDED, stage)
}

/// How many expressions deep `node` (an expression, a statement) nests. The walk is
/// sqlparser's visitor, which grows its stack as it goes, so any tree the parser built can
/// be measured before anything else walks it.
pub fn depth(node: &impl Visit) -> usize {
    struct Depth {
        current: usize,
        deepest: usize,
    }
    impl Visitor for Depth {
        type Break = ();
        fn pre_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
            self.current += 1;
            self.deepest = self.deepest.max(self.current);
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
            self.current -= 1;
            ControlFlow::Continue(())
        }
    }
    let mut walk = Depth {
        current: 0,
        deepest: 0,
    };
    let _ = node.visit(&mut walk);
    walk.deepest
}

/// Drops a tree too deep for the thread's stack on a stack of its own, sized for `depth`
/// levels: dropping recurses once per level.
pub fn drop_deep<T>(tree: T, depth: usize) {
    const PER_LEVEL: usize = 1024;
    stacker::grow((1 << 20) + depth.saturating_mul(PER_LEVEL), move || {
        drop(tree)
    });
}

/// The function's unqualified lower-case name.
pub fn function_name(function: &Function) -> String {
    function
        .name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.to_ascii_lowercase())
        .unwrap_or_default()
}

/// `CAST(expr AS data_type)`, for SQL the compiler writes itself.
pub fn cast(expr: Expr, data_type: sqlparser::ast::DataType) -> Expr {
    Expr::Cast {
        kind: sqlparser::ast::CastKind::Cast,
        expr: Box::new(expr),
        data_type,
        array: false,
        format: None,
    }
}

/// A plain call `name(args…)`, for SQL the compiler writes itself.
pub fn call(name: &str, args: Vec<Expr>) -> Expr {
    use sqlparser::ast::{
        Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, ObjectName,
    };
    Expr::Function(Function {
        name: ObjectName::from(vec![sqlparser::ast::Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// Whether `name` can be printed bare: ASCII letters, digits and `_`, not starting with a
/// digit (`[A-Za-z_][A-Za-z0-9_]*`), a name every supported warehouse accepts. Function
/// names and the compiler's own keywords must be; nothing else is printed without quotes;
/// an output name that is not one is warned about.
pub fn is_bare_word(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A number as every engine reads it: digits, an optional fraction and exponent.
pub fn is_plain_number(text: &str) -> bool {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((whole, fraction)) => {
            (digits(whole) || whole.is_empty())
                && (digits(fraction) || fraction.is_empty())
                && !(whole.is_empty() && fraction.is_empty())
        }
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

/// Keyword text: letters, digits, `_`, spaces, parentheses and commas, nothing that could
/// open a quote, a comment or a second statement.
pub fn is_keyword_text(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ' ' | '(' | ')' | ','))
}
/// `base`, or `base_2`, `base_3`, …: the first candidate `is_taken` says is free. The one
/// rule for every name featurecraft makes up (a CTE, a feature, a session table): names are
/// compared ignoring ASCII case, since engines fold unquoted names (DataFusion and
/// PostgreSQL to lower case, Snowflake to upper), so `is_taken` is asked about each
/// candidate in ASCII lower case and must answer for every spelling of it.
pub fn fresh_name(base: &str, mut is_taken: impl FnMut(&str) -> bool) -> String {
    match try_fresh_name(base, |key| {
        Ok::<bool, std::convert::Infallible>(is_taken(key))
    }) {
        Ok(name) => name,
        Err(never) => match never {},
    }
}

/// [`fresh_name`] whose question may fail (a session asked whether it has a table).
pub fn try_fresh_name<E>(
    base: &str,
    mut is_taken: impl FnMut(&str) -> Result<bool, E>,
) -> Result<String, E> {
    let mut name = base.to_string();
    let mut n = 2;
    while is_taken(&name.to_ascii_lowercase())? {
        name = format!("{base}_{n}");
        n += 1;
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_name_counts_from_2_and_ignores_case() {
        let taken = ["spine", "Src_Orders", "src_orders_2"];
        let is_taken = |key: &str| taken.iter().any(|t| t.eq_ignore_ascii_case(key));
        assert_eq!(fresh_name("cutoffs", is_taken), "cutoffs");
        assert_eq!(fresh_name("SPINE", is_taken), "SPINE_2");
        assert_eq!(fresh_name("src_orders", is_taken), "src_orders_3");
        let asked = std::cell::RefCell::new(Vec::new());
        fresh_name("Mixed", |key| {
            asked.borrow_mut().push(key.to_string());
            false
        });
        assert_eq!(asked.into_inner(), ["mixed"]);
        assert_eq!(
            try_fresh_name("t", |_| Err::<bool, &str>("no session")),
            Err("no session")
        );
    }
}
