//! Semantic checks after parsing: static types, regexes, aggregate arguments, metrics
//! limits, and the constructs that parse but are not supported.
//!
//! Tempo keeps two kinds of refusal apart and so does vivace: [`ValidateError::Invalid`] for a
//! query that is wrong (`{ 1 = "foo" }`), [`ValidateError::Unsupported`] for one that is
//! well-formed but not implemented (`parent.` attributes, aggregate-vs-aggregate filters).

use super::ast::*;
use super::static_value::{compile_regex, Static, StaticType};

/// Why a parsed query was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidateError {
    /// The query is semantically wrong.
    #[error("invalid TraceQL query: {0}")]
    Invalid(String),
    /// The query uses something that parses but is not implemented.
    #[error("{0} not yet supported")]
    Unsupported(String),
}

impl ValidateError {
    /// True for the "not yet supported" kind.
    pub fn is_unsupported(&self) -> bool {
        matches!(self, ValidateError::Unsupported(_))
    }
}

fn invalid(message: impl Into<String>) -> ValidateError {
    ValidateError::Invalid(message.into())
}

/// Most `by` labels a metrics function accepts, and the lower limit for the functions that
/// already add a label of their own (quantile, histogram).
const MAX_METRICS_BY: usize = 5;
const MAX_METRICS_BY_BUCKETED: usize = 4;
/// Most quantiles one `quantile_over_time` computes: each is a series of its own per group.
pub const MAX_QUANTILES: usize = 20;

/// Validates a parsed query.
pub fn validate(query: &Query) -> Result<(), ValidateError> {
    match &query.root {
        RootExpr::Pipeline(pipeline) => validate_pipeline(pipeline),
        RootExpr::Metrics(metrics) => validate_metrics(metrics, false),
    }
}

fn validate_pipeline(pipeline: &Pipeline) -> Result<(), ValidateError> {
    for stage in &pipeline.stages {
        match stage {
            Stage::Spanset(expr) => validate_spanset(expr)?,
            Stage::ScalarFilter(filter) => validate_scalar_filter(filter)?,
            Stage::GroupBy(expr) => {
                if !expr.references_span() {
                    return Err(invalid(format!("by({expr}) must reference the span")));
                }
                field_type(expr)?;
            }
            Stage::Coalesce => {}
            Stage::Select(attributes) => {
                for attribute in attributes {
                    check_attribute_supported(attribute)?;
                }
            }
            Stage::Aggregate(aggregate) => validate_aggregate(aggregate)?,
        }
    }
    Ok(())
}

fn validate_spanset(expr: &SpansetExpr) -> Result<(), ValidateError> {
    match expr {
        SpansetExpr::Filter(field) => validate_filter_body(field),
        SpansetExpr::Op { lhs, rhs, .. } => {
            validate_spanset(lhs)?;
            validate_spanset(rhs)
        }
        SpansetExpr::Pipeline(pipeline) => validate_pipeline(pipeline),
    }
}

/// A `{ }` body must be boolean, or an attribute whose type is only known at run time.
fn validate_filter_body(expr: &FieldExpr) -> Result<(), ValidateError> {
    let body_type = field_type(expr)?;
    if body_type != StaticType::Bool && body_type != StaticType::Attribute {
        return Err(invalid(format!(
            "spanset filter must evaluate to boolean: {{ {expr} }} is {body_type}"
        )));
    }
    Ok(())
}

fn validate_aggregate(aggregate: &Aggregate) -> Result<(), ValidateError> {
    let Some(expr) = &aggregate.expr else {
        return Ok(());
    };
    if !expr.references_span() {
        return Err(invalid(format!(
            "{aggregate}: the aggregate argument must reference the span"
        )));
    }
    let argument_type = field_type(expr)?;
    if !(argument_type.is_numeric() || argument_type == StaticType::Attribute) {
        return Err(invalid(format!(
            "{aggregate}: the aggregate argument must be numeric, not {argument_type}"
        )));
    }
    Ok(())
}

fn validate_scalar_expr(expr: &ScalarExpr) -> Result<(), ValidateError> {
    match expr {
        ScalarExpr::Static(_) => Ok(()),
        ScalarExpr::Aggregate(aggregate) => validate_aggregate(aggregate),
        ScalarExpr::Op { lhs, rhs, .. } => {
            validate_scalar_expr(lhs)?;
            validate_scalar_expr(rhs)
        }
        ScalarExpr::Pipeline(pipeline) => validate_pipeline(pipeline),
    }
}

fn validate_scalar_filter(filter: &ScalarFilter) -> Result<(), ValidateError> {
    // Invalid arguments are reported before the unsupported shape: `sum(3) = min(14)` is an
    // invalid query, not an unsupported one (Tempo's lists).
    validate_scalar_expr(&filter.lhs)?;
    validate_scalar_expr(&filter.rhs)?;
    match (&filter.lhs, &filter.rhs) {
        (ScalarExpr::Aggregate(_), ScalarExpr::Static(_)) => Ok(()),
        (ScalarExpr::Pipeline(_) | ScalarExpr::Op { .. }, _)
        | (_, ScalarExpr::Pipeline(_) | ScalarExpr::Op { .. })
            if has_pipeline(&filter.lhs) || has_pipeline(&filter.rhs) =>
        {
            Err(ValidateError::Unsupported(
                "scalar pipeline expressions are".into(),
            ))
        }
        _ => Err(ValidateError::Unsupported(format!(
            "scalar filter {filter}: only `aggregate CMP literal` is"
        ))),
    }
}

fn has_pipeline(expr: &ScalarExpr) -> bool {
    match expr {
        ScalarExpr::Pipeline(_) => true,
        ScalarExpr::Op { lhs, rhs, .. } => has_pipeline(lhs) || has_pipeline(rhs),
        _ => false,
    }
}

fn check_attribute_supported(attribute: &Attribute) -> Result<(), ValidateError> {
    if attribute.parent || attribute.intrinsic == Some(Intrinsic::Parent) {
        return Err(ValidateError::Unsupported(format!(
            "parent attributes ({attribute}) are"
        )));
    }
    Ok(())
}

/// The static type of a field expression (`Attribute` when only known at run time), or the
/// type error it contains.
pub fn field_type(expr: &FieldExpr) -> Result<StaticType, ValidateError> {
    match expr {
        FieldExpr::Static(value) => Ok(value.static_type()),
        FieldExpr::Attribute(attribute) => {
            check_attribute_supported(attribute)?;
            Ok(attribute
                .intrinsic
                .map_or(StaticType::Attribute, Intrinsic::static_type))
        }
        FieldExpr::Unary { op, expr: operand } => {
            let operand_type = field_type(operand)?;
            match op {
                UnaryOp::Neg => {
                    if operand_type.is_numeric() || operand_type == StaticType::Attribute {
                        Ok(operand_type)
                    } else {
                        Err(invalid(format!(
                            "unary - is not defined for {operand_type}: -{operand}"
                        )))
                    }
                }
                UnaryOp::Not => {
                    if operand_type == StaticType::Bool || operand_type == StaticType::Attribute {
                        Ok(StaticType::Bool)
                    } else {
                        Err(invalid(format!(
                            "unary ! is not defined for {operand_type}: !{operand}"
                        )))
                    }
                }
                UnaryOp::Exists => Ok(StaticType::Bool),
                UnaryOp::NotExists => {
                    if let FieldExpr::Attribute(attribute) = operand.as_ref() {
                        if attribute.intrinsic.is_some() {
                            return Err(invalid(format!(
                                "intrinsics cannot be nil: {attribute} = nil"
                            )));
                        }
                        // Every resource carries service.name, so this can never match.
                        if attribute.scope == AttributeScope::Resource
                            && !attribute.parent
                            && attribute.name == "service.name"
                        {
                            return Err(invalid(format!(
                                "{attribute} is always present and cannot be nil"
                            )));
                        }
                    }
                    Ok(StaticType::Bool)
                }
            }
        }
        FieldExpr::Binary { op, lhs, rhs } => {
            let left = field_type(lhs)?;
            let right = field_type(rhs)?;
            binary_type(*op, left, right, expr)?;
            if matches!(op, BinaryOp::Regex | BinaryOp::NotRegex) {
                if let FieldExpr::Static(Static::String(pattern)) = rhs.as_ref() {
                    compile_regex(pattern).map_err(|error| invalid(error.to_string()))?;
                }
            }
            Ok(if op.is_boolean_result() {
                StaticType::Bool
            } else if left == StaticType::Attribute || right == StaticType::Attribute {
                StaticType::Attribute
            } else if left == right {
                left
            } else {
                StaticType::Float
            })
        }
    }
}

fn binary_type(
    op: BinaryOp,
    left: StaticType,
    right: StaticType,
    expr: &FieldExpr,
) -> Result<(), ValidateError> {
    let mismatch = || {
        invalid(format!(
            "binary operation {} is not defined for {left} and {right}: {expr}",
            op.as_str()
        ))
    };
    if matches!(op, BinaryOp::Regex | BinaryOp::NotRegex) {
        // The pattern side must be a string; the value side a string or an attribute.
        let string_or_attribute =
            |t: StaticType| t == StaticType::String || t == StaticType::Attribute;
        if !string_or_attribute(left) || !string_or_attribute(right) {
            return Err(mismatch());
        }
        return Ok(());
    }
    if left == StaticType::Attribute || right == StaticType::Attribute {
        // One side is only known at run time: check what can be checked on the other side.
        let known = if left == StaticType::Attribute {
            right
        } else {
            left
        };
        if known != StaticType::Attribute && !known.allows(op) {
            return Err(mismatch());
        }
        return Ok(());
    }
    if !left.compatible(right) || !left.allows(op) || !right.allows(op) {
        return Err(mismatch());
    }
    Ok(())
}

fn validate_metrics(metrics: &MetricsExpr, in_math: bool) -> Result<(), ValidateError> {
    match metrics {
        MetricsExpr::Query {
            pipeline,
            function,
            second_stage,
        } => {
            validate_pipeline(pipeline)?;
            validate_metrics_function(function)?;
            if matches!(function.aggregate, MetricsAggregate::Compare { .. })
                && (in_math || !second_stage.is_empty())
            {
                return Err(invalid(
                    "compare() cannot be combined with second-stage functions, filters or arithmetic",
                ));
            }
            validate_second_stage(second_stage)
        }
        MetricsExpr::Math {
            lhs,
            rhs,
            second_stage,
            ..
        } => {
            validate_metrics(lhs, true)?;
            validate_metrics(rhs, true)?;
            validate_second_stage(second_stage)
        }
    }
}

fn validate_second_stage(second_stage: &[SecondStageOp]) -> Result<(), ValidateError> {
    for op in second_stage {
        match op {
            SecondStageOp::TopK(k) | SecondStageOp::BottomK(k) if *k <= 0 => {
                return Err(invalid(format!(
                    "topk/bottomk needs a positive limit, got {k}"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

fn validate_metrics_function(function: &MetricsFunction) -> Result<(), ValidateError> {
    let limit = match function.aggregate {
        MetricsAggregate::QuantileOverTime(..) | MetricsAggregate::HistogramOverTime(_) => {
            MAX_METRICS_BY_BUCKETED
        }
        _ => MAX_METRICS_BY,
    };
    if function.by.len() > limit {
        return Err(ValidateError::Unsupported(format!(
            "{} by() with more than {limit} labels is",
            function.aggregate.name()
        )));
    }
    for attribute in &function.by {
        check_attribute_supported(attribute)?;
    }
    match &function.aggregate {
        MetricsAggregate::MinOverTime(attribute)
        | MetricsAggregate::MaxOverTime(attribute)
        | MetricsAggregate::AvgOverTime(attribute)
        | MetricsAggregate::SumOverTime(attribute)
        | MetricsAggregate::HistogramOverTime(attribute) => check_attribute_supported(attribute),
        MetricsAggregate::QuantileOverTime(attribute, quantiles) => {
            check_attribute_supported(attribute)?;
            if quantiles.is_empty() {
                return Err(invalid("quantile_over_time needs at least one quantile"));
            }
            if quantiles.len() > MAX_QUANTILES {
                return Err(invalid(format!(
                    "quantile_over_time takes at most {MAX_QUANTILES} quantiles, got {}",
                    quantiles.len()
                )));
            }
            for quantile in quantiles {
                if !(0.0..=1.0).contains(quantile) {
                    return Err(invalid(format!("quantile {quantile} is outside [0, 1]")));
                }
            }
            Ok(())
        }
        MetricsAggregate::Compare {
            filter,
            top_n,
            start,
            end,
        } => {
            validate_filter_body(filter)?;
            if !(1..=1000).contains(top_n) {
                return Err(invalid(format!(
                    "compare() topN must be between 1 and 1000, got {top_n}"
                )));
            }
            if start > end {
                return Err(invalid("compare() start must not be after end"));
            }
            Ok(())
        }
        MetricsAggregate::Rate | MetricsAggregate::CountOverTime => Ok(()),
    }
}
