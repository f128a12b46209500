//! Optimising rewrites of a parsed query, applied before evaluation (never by `parse`).
//!
//! `or_to_in` turns chains of equality tests on one attribute into a single array test the
//! storage layer can push down: `.a = "x" || .a = "y"` becomes `.a IN ["x", "y"]`, and
//! likewise `!=`/`&&` → `NOT IN`, `=~`/`||` → `MATCH ANY`, `!~`/`&&` → `MATCH NONE`.

use super::ast::*;
use super::static_value::Static;

/// The hint that switches rewrites off: `with(skip_ast_transformations="or_to_in")`.
pub const SKIP_HINT: &str = "skip_ast_transformations";

/// Applies the default rewrites unless a `skip_ast_transformations` hint names them;
/// returns how many rewrites happened.
pub fn apply_default_rewrites(query: &mut Query) -> usize {
    let skipped = query.hints.iter().any(|hint| {
        hint.name == SKIP_HINT
            && matches!(&hint.value, Static::String(names) if names.split(',').any(|n| n.trim() == "or_to_in"))
    });
    if skipped {
        return 0;
    }
    or_to_in(query)
}

/// Rewrites `||`/`&&` chains of comparisons on one attribute into array operators, in every
/// filter of the query; returns the number of merges.
pub fn or_to_in(query: &mut Query) -> usize {
    let mut count = 0;
    match &mut query.root {
        RootExpr::Pipeline(pipeline) => rewrite_pipeline(pipeline, &mut count),
        RootExpr::Metrics(metrics) => rewrite_metrics(metrics, &mut count),
    }
    count
}

fn rewrite_metrics(metrics: &mut MetricsExpr, count: &mut usize) {
    match metrics {
        MetricsExpr::Query { pipeline, .. } => rewrite_pipeline(pipeline, count),
        MetricsExpr::Math { lhs, rhs, .. } => {
            rewrite_metrics(lhs, count);
            rewrite_metrics(rhs, count);
        }
    }
}

fn rewrite_pipeline(pipeline: &mut Pipeline, count: &mut usize) {
    for stage in &mut pipeline.stages {
        if let Stage::Spanset(expr) = stage {
            rewrite_spanset(expr, count);
        }
    }
}

fn rewrite_spanset(expr: &mut SpansetExpr, count: &mut usize) {
    match expr {
        SpansetExpr::Filter(field) => rewrite_field(field, count),
        SpansetExpr::Op { lhs, rhs, .. } => {
            rewrite_spanset(lhs, count);
            rewrite_spanset(rhs, count);
        }
        SpansetExpr::Pipeline(pipeline) => rewrite_pipeline(pipeline, count),
    }
}

fn rewrite_field(expr: &mut FieldExpr, count: &mut usize) {
    let FieldExpr::Binary { op: join, lhs, rhs } = expr else {
        return;
    };
    rewrite_field(lhs, count);
    rewrite_field(rhs, count);
    if !matches!(join, BinaryOp::And | BinaryOp::Or) {
        return;
    }
    let (Some(left), Some(right)) = (as_array_test(lhs), as_array_test(rhs)) else {
        return;
    };
    if left.join != *join || left.array_op != right.array_op || left.attribute != right.attribute {
        return;
    }
    let Some(values) = merge_values(left.values, right.values) else {
        return;
    };
    let merged = FieldExpr::Binary {
        op: left.array_op,
        lhs: Box::new(FieldExpr::Attribute(left.attribute.clone())),
        rhs: Box::new(FieldExpr::Static(values)),
    };
    *expr = merged;
    *count += 1;
}

/// One side of a chain: `attr OP literal` (or `literal OP attr` for equality), or an
/// already merged `attr ARRAYOP [..]`.
struct ArrayTest<'a> {
    /// the operator joining a chain of such tests (`||` for `=`, `&&` for `!=`)
    join: BinaryOp,
    /// the array operator the chain becomes
    array_op: BinaryOp,
    attribute: &'a Attribute,
    values: Static,
}

fn as_array_test(expr: &FieldExpr) -> Option<ArrayTest<'_>> {
    let FieldExpr::Binary { op, lhs, rhs } = expr else {
        return None;
    };
    let (join, array_op, is_regex) = match op {
        BinaryOp::Eq | BinaryOp::In => (BinaryOp::Or, BinaryOp::In, false),
        BinaryOp::Neq | BinaryOp::NotIn => (BinaryOp::And, BinaryOp::NotIn, false),
        BinaryOp::Regex | BinaryOp::MatchAny => (BinaryOp::Or, BinaryOp::MatchAny, true),
        BinaryOp::NotRegex | BinaryOp::MatchNone => (BinaryOp::And, BinaryOp::MatchNone, true),
        _ => return None,
    };
    let already_merged = *op == array_op;
    let (attribute, value) = match (lhs.as_ref(), rhs.as_ref()) {
        (FieldExpr::Attribute(attribute), FieldExpr::Static(value)) => (attribute, value),
        // Equality is symmetric; a regex pattern must stay on the right.
        (FieldExpr::Static(value), FieldExpr::Attribute(attribute)) if !is_regex => {
            (attribute, value)
        }
        _ => return None,
    };
    let values = match (value, already_merged) {
        (Static::String(v), false) => Static::StringArray(vec![v.clone()]),
        (Static::Int(v), false) if !is_regex => Static::IntArray(vec![*v]),
        (Static::Float(v), false) if !is_regex => Static::FloatArray(vec![*v]),
        (Static::StringArray(_) | Static::IntArray(_) | Static::FloatArray(_), true) => {
            value.clone()
        }
        _ => return None,
    };
    Some(ArrayTest {
        join,
        array_op,
        attribute,
        values,
    })
}

fn merge_values(left: Static, right: Static) -> Option<Static> {
    match (left, right) {
        (Static::StringArray(mut a), Static::StringArray(b)) => {
            a.extend(b);
            Some(Static::StringArray(a))
        }
        (Static::IntArray(mut a), Static::IntArray(b)) => {
            a.extend(b);
            Some(Static::IntArray(a))
        }
        (Static::FloatArray(mut a), Static::FloatArray(b)) => {
            a.extend(b);
            Some(Static::FloatArray(a))
        }
        _ => None,
    }
}
