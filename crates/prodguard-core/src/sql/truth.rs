//! Is a `WHERE` clause always true? A small, honest prover.
//!
//! [`always_true`] answers `true` only when it can show that the condition
//! holds for every row: `TRUE`, a non-zero number, `1 = 1`, `'a' = 'a'`,
//! `1 <> 2`, `2 > 1`, `1 IN (1, 2)`, `2 BETWEEN 1 AND 3`, `NOT FALSE`,
//! `x OR <true>`, `<true> AND <true>`, `x = x` (the same column on both
//! sides), `x IS NULL OR x IS NOT NULL`, `<true> IS TRUE`, parentheses.
//! Everything else is "can be false", so the statement counts as `… .where`.
//!
//! Known limits (each makes a tautology look like a real filter):
//! - no arithmetic or functions: `1 + 1 = 2`, `length('a') = 1`,
//!   `coalesce(x, 1) = coalesce(x, 1)` are not evaluated;
//! - no type coercion: `'1' = 1` and `WHERE 'abc'` are not evaluated;
//! - no subqueries: `EXISTS (SELECT 1)`, `id IN (SELECT id FROM t)`;
//! - columns are compared by name as written: `t.x = x` is not `x = x`;
//!   `x = x` counts as always true although a `NULL` in `x` makes it
//!   unknown (the rows it would skip are rare; counting all is safer);
//! - comparisons of two constant strings use byte order, not a collation.

use sqlparser::ast::{BinaryOperator, Expr, InTarget, UnaryOperator, Value};

/// Nesting deeper than this is not looked into (the answer is "can be
/// false"). The parser already stops at depth 50.
const MAX_DEPTH: usize = 64;

/// Whether `expr` is provably true for every row.
pub(crate) fn always_true(expr: &Expr) -> bool {
    truth(expr, MAX_DEPTH) == Some(true)
}

/// A constant the prover can compare.
#[derive(Debug, Clone, PartialEq)]
enum Const<'a> {
    Number(f64),
    Text(&'a str),
    Bool(bool),
    Null,
}

/// `Some(true)` when `expr` is always TRUE, `Some(false)` when it is always
/// FALSE (never NULL), `None` when it cannot tell.
fn truth(expr: &Expr, depth: usize) -> Option<bool> {
    let depth = depth.checked_sub(1)?;
    match expr {
        Expr::Nested(inner) => truth(inner, depth),
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => truth(expr, depth).map(|t| !t),
        Expr::BinaryOp { left, op, right } => match op {
            BinaryOperator::Or => {
                let (l, r) = (truth(left, depth), truth(right, depth));
                if l == Some(true) || r == Some(true) || covers_null(left, right, depth) {
                    Some(true)
                } else if l == Some(false) && r == Some(false) {
                    Some(false)
                } else {
                    None
                }
            }
            BinaryOperator::And => {
                let (l, r) = (truth(left, depth), truth(right, depth));
                if l == Some(false) || r == Some(false) {
                    Some(false)
                } else if l == Some(true) && r == Some(true) {
                    Some(true)
                } else {
                    None
                }
            }
            _ => compare(left, op, right, depth),
        },
        // Over a value that is never NULL these are the value or its negation.
        Expr::IsTrue(inner) | Expr::IsNotFalse(inner) => truth(inner, depth),
        Expr::IsFalse(inner) | Expr::IsNotTrue(inner) => truth(inner, depth).map(|t| !t),
        Expr::IsNull(inner) => match constant(inner, depth)? {
            Const::Null => Some(true),
            _ => Some(false),
        },
        Expr::IsNotNull(inner) => match constant(inner, depth)? {
            Const::Null => Some(false),
            _ => Some(true),
        },
        Expr::IsNotDistinctFrom(a, b) if same_column(a, b) => Some(true),
        Expr::In {
            expr,
            target: InTarget::List(list),
            negated,
            ..
        } => {
            let needle = constant(expr, depth)?;
            if needle == Const::Null {
                return None;
            }
            let mut all_known = true;
            for item in list {
                match constant(item, depth) {
                    Some(c) if c == needle => return Some(!negated),
                    Some(Const::Null) | None => all_known = false,
                    Some(_) => {}
                }
            }
            all_known.then_some(*negated)
        }
        Expr::Between {
            expr,
            negated,
            low,
            high,
        } => {
            let x = number(expr, depth)?;
            let (lo, hi) = (number(low, depth)?, number(high, depth)?);
            Some((lo <= x && x <= hi) != *negated)
        }
        _ => match constant(expr, depth)? {
            Const::Bool(b) => Some(b),
            // MySQL and SQLite read a number as a condition: non-zero is true.
            Const::Number(n) => Some(n != 0.0),
            Const::Text(_) | Const::Null => None,
        },
    }
}

/// `x IS NULL OR x IS NOT NULL` (either order) over the same column.
fn covers_null(left: &Expr, right: &Expr, depth: usize) -> bool {
    fn strip(mut e: &Expr, depth: usize) -> Option<(bool, &Expr)> {
        for _ in 0..depth {
            match e {
                Expr::Nested(inner) => e = inner,
                Expr::IsNull(x) => return Some((true, x)),
                Expr::IsNotNull(x) => return Some((false, x)),
                _ => return None,
            }
        }
        None
    }
    match (strip(left, depth), strip(right, depth)) {
        (Some((a_null, a)), Some((b_null, b))) => a_null != b_null && same_column(a, b),
        _ => false,
    }
}

/// Whether both sides name the same column, written the same way.
fn same_column(a: &Expr, b: &Expr) -> bool {
    match (unwrap_nested(a), unwrap_nested(b)) {
        (Expr::Identifier(x), Expr::Identifier(y)) => x == y,
        (Expr::CompoundIdentifier(x), Expr::CompoundIdentifier(y)) => x == y,
        _ => false,
    }
}

fn unwrap_nested(mut e: &Expr) -> &Expr {
    for _ in 0..MAX_DEPTH {
        match e {
            Expr::Nested(inner) => e = inner,
            _ => return e,
        }
    }
    e
}

/// `left op right` for a comparison operator.
fn compare(left: &Expr, op: &BinaryOperator, right: &Expr, depth: usize) -> Option<bool> {
    let reflexive = matches!(
        op,
        BinaryOperator::Eq | BinaryOperator::GtEq | BinaryOperator::LtEq
    );
    if reflexive && same_column(left, right) {
        return Some(true);
    }
    let (l, r) = (constant(left, depth)?, constant(right, depth)?);
    if l == Const::Null || r == Const::Null {
        return None;
    }
    let order = match (&l, &r) {
        (Const::Number(a), Const::Number(b)) => a.partial_cmp(b)?,
        (Const::Text(a), Const::Text(b)) => a.cmp(b),
        (Const::Bool(a), Const::Bool(b)) => a.cmp(b),
        // A number beside a string or a boolean: the dialects disagree.
        _ => return None,
    };
    use std::cmp::Ordering::{Equal, Greater, Less};
    Some(match op {
        BinaryOperator::Eq => order == Equal,
        BinaryOperator::NotEq => order != Equal,
        BinaryOperator::Gt => order == Greater,
        BinaryOperator::Lt => order == Less,
        BinaryOperator::GtEq => order != Less,
        BinaryOperator::LtEq => order != Greater,
        _ => return None,
    })
}

fn number(expr: &Expr, depth: usize) -> Option<f64> {
    match constant(expr, depth)? {
        Const::Number(n) => Some(n),
        _ => None,
    }
}

/// The literal `expr` is, if it is one (a sign in front of a number too).
fn constant(expr: &Expr, depth: usize) -> Option<Const<'_>> {
    let depth = depth.checked_sub(1)?;
    match expr {
        Expr::Nested(inner) => constant(inner, depth),
        Expr::UnaryOp {
            op: op @ (UnaryOperator::Minus | UnaryOperator::Plus),
            expr,
        } => match constant(expr, depth)? {
            Const::Number(n) if matches!(op, UnaryOperator::Minus) => Some(Const::Number(-n)),
            Const::Number(n) => Some(Const::Number(n)),
            _ => None,
        },
        Expr::Value(v) => match &v.value {
            Value::Number(text, _) => text
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .map(Const::Number),
            Value::Boolean(b) => Some(Const::Bool(*b)),
            Value::Null => Some(Const::Null),
            Value::SingleQuotedString(s)
            | Value::EscapedStringLiteral(s)
            | Value::NationalStringLiteral(s)
            | Value::DoubleQuotedString(s) => Some(Const::Text(s)),
            Value::DollarQuotedString(d) => Some(Const::Text(&d.value)),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::GenericDialect;
    use sqlparser::parser::Parser;

    fn check(condition: &str) -> bool {
        let expr = Parser::new(&GenericDialect {})
            .try_with_sql(condition)
            .and_then(|mut p| p.parse_expr())
            .unwrap_or_else(|e| panic!("{condition}: {e}"));
        always_true(&expr)
    }

    #[test]
    fn tautologies_are_proved() {
        for c in [
            "TRUE",
            "true",
            "1",
            "42",
            "-1",
            "0.5",
            "1 = 1",
            "'a' = 'a'",
            "1 <> 2",
            "1 != 2",
            "2 > 1",
            "1 < 2",
            "1 >= 1",
            "1 <= 1",
            "NOT FALSE",
            "NOT 0",
            "NOT (1 = 2)",
            "x = 5 OR TRUE",
            "TRUE OR x = 5",
            "x = 5 OR 1 = 1",
            "(1 = 1) AND (2 = 2)",
            "((TRUE))",
            "x = x",
            "t.x = t.x",
            "x >= x",
            "x IS NULL OR x IS NOT NULL",
            "(x IS NOT NULL) OR (x IS NULL)",
            "1 IN (1)",
            "1 IN (3, 2, 1)",
            "1 NOT IN (2, 3)",
            "2 BETWEEN 1 AND 3",
            "5 NOT BETWEEN 1 AND 3",
            "TRUE IS TRUE",
            "FALSE IS FALSE",
            "NULL IS NULL",
            "1 IS NOT NULL",
            "x IS NOT DISTINCT FROM x",
            "1 = 1.0",
            "'b' > 'a'",
            "NOT (x = 1 AND FALSE)",
        ] {
            assert!(check(c), "{c} should be always true");
        }
    }

    #[test]
    fn what_it_cannot_prove_can_be_false() {
        for c in [
            "FALSE",
            "0",
            "NULL",
            "x",
            "x = 1",
            "x = y",
            "t.x = x",
            "x <> x",
            "x > x",
            "1 = 2",
            "'a' = 'b'",
            "'1' = 1",
            "1 + 1 = 2",
            "NOT TRUE",
            "NOT x",
            "NOT NULL",
            "x = 1 AND TRUE",
            "x = 1 OR FALSE",
            "x IS NULL OR y IS NOT NULL",
            "x IS NULL OR x IS NULL",
            "1 IN (2, 3)",
            "1 IN (2, NULL)",
            "x IN (1)",
            "NULL = NULL",
            "NULL <> 1",
            "1 IN (NULL)",
            "EXISTS (SELECT 1)",
            "id IN (SELECT id FROM t)",
            "'abc'",
            "length('a') = 1",
            "4 BETWEEN 1 AND 3",
            "x IS TRUE",
            "1 IS NULL",
            "x IS NOT DISTINCT FROM y",
        ] {
            assert!(!check(c), "{c} must not be proved true");
        }
    }

    #[test]
    fn deep_nesting_is_not_followed_and_does_not_overflow() {
        let mut e = Expr::Value(Value::Boolean(true).into());
        for _ in 0..10_000 {
            e = Expr::Nested(Box::new(e));
        }
        assert!(!always_true(&e));
        // Dropping a 10,000-deep tree recurses too: take it apart by hand.
        while let Expr::Nested(inner) = e {
            e = *inner;
        }
    }
}
