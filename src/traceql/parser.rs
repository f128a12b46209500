//! Hand-written TraceQL parser.
//!
//! Field expressions inside `{ }`, `by()` and aggregates are parsed by precedence climbing.
//! Outside braces the grammar mixes spansets, scalar filters, scalar pipelines and metrics
//! arithmetic, which goyacc resolves with an LR table. Here one precedence-climbing pass
//! parses the union of those forms into typed [`Node`]s, and each operator checks that its
//! operands' kinds may meet; a combination the grammar does not allow is a syntax error at
//! the operator. Precedence, lowest first: `|`; `&&` `||`; comparisons and structural
//! operators; `+ -`; `* / %`; `^` (right-associative).

use super::ast::*;
use super::lexer::{line_col, tokenize, ColonScope, DotScope, ParseError, Token, TokenKind};
use super::static_value::{Kind, Static, Status};

/// Nesting deeper than this is refused, so hostile input cannot overflow the stack.
const MAX_DEPTH: usize = 200;
/// Binary operators per query at most. A chain `a || b || c …` parses in a loop, but the tree
/// it builds is as deep as the chain is long, and evaluating, rewriting or dropping that tree
/// recurses once per operator: without this bound a long query overflows the stack.
pub const MAX_OPERATORS: usize = 1000;

/// Parses a TraceQL query into its syntax tree. Constant sub-expressions are folded, as
/// Tempo does; no other rewrite is applied (see [`super::rewrite`]).
pub fn parse(query: &str) -> Result<Query, ParseError> {
    let tokens = tokenize(query)?;
    let mut parser = Parser {
        source: query,
        tokens,
        pos: 0,
        depth: 0,
        operators: 0,
    };
    parser.query()
}

/// Parses a bare attribute or intrinsic reference (`span.foo`, `duration`, `."a b"`), the
/// way Tempo's `ParseIdentifier` does: as the only content of a `{ }` filter.
pub fn parse_identifier(input: &str) -> Result<Attribute, ParseError> {
    let wrapped = format!("{{{input}}}");
    let query = parse(&wrapped)?;
    if let RootExpr::Pipeline(pipeline) = &query.root {
        if let [Stage::Spanset(SpansetExpr::Filter(FieldExpr::Attribute(attribute)))] =
            pipeline.stages.as_slice()
        {
            if query.hints.is_empty() && !input.trim().is_empty() {
                return Ok(attribute.clone());
            }
        }
    }
    Err(ParseError {
        line: 1,
        col: 1,
        message: format!("{input:?} is not a single attribute or intrinsic"),
    })
}

/// What an operand outside braces turned out to be.
#[derive(Debug, Clone)]
enum Node {
    /// `{ … }` and spanset operators; may hold parenthesised pipelines.
    Spanset(SpansetExpr),
    /// `( a | b )`
    Pipeline(Pipeline),
    /// `( a | count() )` and arithmetic between such.
    ScalarPipeline(ScalarExpr),
    /// Aggregates and arithmetic involving at least one aggregate.
    Scalar(ScalarExpr),
    /// A constant-folded numeric literal.
    Number(Static),
    /// A comparison between scalars.
    ScalarFilter(ScalarFilter),
    By(FieldExpr),
    Select(Vec<Attribute>),
    Coalesce,
    /// A metrics function written in a pipeline, with the filters that follow it.
    MetricsStage(MetricsFunction, Vec<SecondStageOp>),
    /// `topk(k)` / `bottomk(k)` written in a pipeline, with the filters that follow it.
    RankStage(Vec<SecondStageOp>),
    /// A complete metrics expression (parenthesised or already combined).
    Metrics(MetricsExpr),
}

/// A field-expression operand while parsing: `nil` is only legal next to `=` / `!=`.
enum Operand {
    Nil(usize),
    Expr(FieldExpr),
}

struct Parser<'a> {
    source: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
    /// binary operators combined so far (see [`MAX_OPERATORS`])
    operators: usize,
}

const EOF_TOKEN: Token = Token {
    kind: TokenKind::Eof,
    start: 0,
};

impl Parser<'_> {
    // ---- token helpers ------------------------------------------------------------------

    fn peek(&self) -> &Token {
        self.tokens
            .get(self.pos)
            .or_else(|| self.tokens.last())
            .unwrap_or(&EOF_TOKEN)
    }

    fn peek_kind(&self) -> &TokenKind {
        &self.peek().kind
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        token
    }

    fn is_symbol(&self, symbol: &str) -> bool {
        matches!(self.peek_kind(), TokenKind::Symbol(s) if *s == symbol)
    }

    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek_kind(), TokenKind::Keyword(k) if *k == keyword)
    }

    fn error_at(&self, offset: usize, message: String) -> ParseError {
        let (line, col) = line_col(self.source, offset);
        ParseError { line, col, message }
    }

    /// goyacc's "syntax error: unexpected X" at the current token.
    fn unexpected(&self) -> ParseError {
        let token = self.peek();
        self.unexpected_token(token)
    }

    fn unexpected_token(&self, token: &Token) -> ParseError {
        self.error_at(
            token.start,
            format!("syntax error: unexpected {}", token.kind.describe()),
        )
    }

    fn out_of_range(&self, token: &Token) -> ParseError {
        self.error_at(
            token.start,
            "syntax error: integer 9223372036854775808 out of range".into(),
        )
    }

    fn unexpected_expecting(&self, expecting: &str) -> ParseError {
        let token = self.peek();
        self.error_at(
            token.start,
            format!(
                "syntax error: unexpected {}, expecting {expecting}",
                token.kind.describe()
            ),
        )
    }

    fn expect_symbol(&mut self, symbol: &str) -> Result<(), ParseError> {
        if self.is_symbol(symbol) {
            self.advance();
            Ok(())
        } else {
            Err(self.unexpected_expecting(symbol))
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let offset = self.peek().start;
            return Err(self.error_at(offset, "syntax error: expression nested too deeply".into()));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Counts one binary operator against [`MAX_OPERATORS`].
    fn count_operator(&mut self, op_token: &Token) -> Result<(), ParseError> {
        self.operators += 1;
        if self.operators > MAX_OPERATORS {
            return Err(self.error_at(
                op_token.start,
                format!("syntax error: more than {MAX_OPERATORS} operators in one query"),
            ));
        }
        Ok(())
    }

    // ---- root ---------------------------------------------------------------------------

    fn query(&mut self) -> Result<Query, ParseError> {
        let node = self.pipe_chain()?;
        let node_end = self.peek().clone();
        let hints = if self.is_keyword("with") {
            self.hints()?
        } else {
            Vec::new()
        };
        if !matches!(self.peek_kind(), TokenKind::Eof) {
            return Err(if hints.is_empty() {
                self.unexpected_expecting("with")
            } else {
                self.unexpected()
            });
        }
        let root = match node {
            Node::Spanset(expr) => RootExpr::Pipeline(Pipeline {
                stages: vec![Stage::Spanset(expr)],
            }),
            // `({ .a } | { .b })` alone is the pipeline itself.
            Node::Pipeline(pipeline) => RootExpr::Pipeline(pipeline),
            Node::ScalarFilter(filter) => RootExpr::Pipeline(Pipeline {
                stages: vec![Stage::ScalarFilter(filter)],
            }),
            Node::By(expr) => RootExpr::Pipeline(Pipeline {
                stages: vec![Stage::GroupBy(expr)],
            }),
            Node::Select(attributes) => RootExpr::Pipeline(Pipeline {
                stages: vec![Stage::Select(attributes)],
            }),
            Node::Metrics(metrics) => RootExpr::Metrics(metrics),
            // A scalar, a number or a scalar pipeline must be compared with something.
            _ => return Err(self.unexpected_token(&node_end)),
        };
        Ok(Query { root, hints })
    }

    fn hints(&mut self) -> Result<Vec<Hint>, ParseError> {
        self.advance(); // with
        self.expect_symbol("(")?;
        let mut hints = Vec::new();
        loop {
            let name = match self.peek_kind().clone() {
                TokenKind::Identifier(name) => name,
                TokenKind::Keyword(keyword) => keyword.to_string(),
                _ => return Err(self.unexpected_expecting("IDENTIFIER")),
            };
            self.advance();
            self.expect_symbol("=")?;
            let value = self.hint_value()?;
            hints.push(Hint { name, value });
            if self.is_symbol(",") {
                self.advance();
                continue;
            }
            self.expect_symbol(")")?;
            return Ok(hints);
        }
    }

    fn hint_value(&mut self) -> Result<Static, ParseError> {
        let negative = self.is_symbol("-");
        if negative {
            self.advance();
        }
        let token = self.peek().clone();
        let value = match &token.kind {
            TokenKind::Integer(i64::MIN) if negative => {
                self.advance();
                return Ok(Static::Int(i64::MIN));
            }
            TokenKind::Integer(i64::MIN) => return Err(self.out_of_range(&token)),
            TokenKind::String(value) if !negative => Static::String(value.clone()),
            TokenKind::Integer(value) => Static::Int(*value),
            TokenKind::Float(value) => Static::Float(*value),
            TokenKind::Duration(value) => Static::Duration(*value),
            TokenKind::Keyword(keyword) if !negative => match keyword_static(keyword) {
                Some(value) => value,
                None => return Err(self.unexpected()),
            },
            TokenKind::Identifier(name) => match name.as_str() {
                "minInt" => Static::Int(i64::MIN),
                "maxInt" => Static::Int(i64::MAX),
                _ => return Err(self.unexpected()),
            },
            _ => return Err(self.unexpected()),
        };
        self.advance();
        if negative {
            return value.negate().map_err(|_| self.unexpected_token(&token));
        }
        Ok(value)
    }

    // ---- outside braces -----------------------------------------------------------------

    /// `stage { "|" stage }` and the assembly of a pipeline, scalar pipeline or metrics query.
    fn pipe_chain(&mut self) -> Result<Node, ParseError> {
        self.enter()?;
        let result = self.pipe_chain_inner();
        self.leave();
        result
    }

    fn pipe_chain_inner(&mut self) -> Result<Node, ParseError> {
        let mut elements = vec![(self.peek().clone(), self.binary(1)?)];
        while self.is_symbol("|") {
            self.advance();
            let start = self.peek().clone();
            elements.push((start, self.binary(1)?));
        }
        self.assemble(elements)
    }

    fn assemble(&self, elements: Vec<(Token, Node)>) -> Result<Node, ParseError> {
        if elements.len() == 1 {
            let Some((start, node)) = elements.into_iter().next() else {
                return Err(self.unexpected());
            };
            return match node {
                Node::MetricsStage(..) | Node::RankStage(..) | Node::Coalesce => {
                    Err(self.unexpected_token(&start))
                }
                other => Ok(other),
            };
        }
        let count = elements.len();
        let mut stages = Vec::new();
        let mut metrics: Option<MetricsExpr> = None;
        for (index, (start, node)) in elements.into_iter().enumerate() {
            if let Some(expr) = metrics.as_mut() {
                // After the metrics function only topk/bottomk (with their filters) follow.
                match node {
                    Node::RankStage(ops) => expr.second_stage_mut().extend(ops),
                    _ => return Err(self.unexpected_token(&start)),
                }
                continue;
            }
            match node {
                Node::MetricsStage(function, filters) if index > 0 => {
                    metrics = Some(MetricsExpr::Query {
                        pipeline: Pipeline {
                            stages: std::mem::take(&mut stages),
                        },
                        function,
                        second_stage: filters,
                    });
                }
                // `(a) + (b) | topk(5)`: a complete metrics expression may start the chain.
                Node::Metrics(expr) if index == 0 => metrics = Some(expr),
                Node::Scalar(ScalarExpr::Aggregate(aggregate))
                    if index + 1 == count && index > 0 =>
                {
                    stages.push(Stage::Aggregate(aggregate));
                    return Ok(Node::ScalarPipeline(ScalarExpr::Pipeline(Box::new(
                        Pipeline { stages },
                    ))));
                }
                Node::Spanset(expr) if !spanset_has_pipeline(&expr) => {
                    stages.push(Stage::Spanset(expr))
                }
                Node::ScalarFilter(filter) if !scalar_filter_has_pipeline(&filter) => {
                    stages.push(Stage::ScalarFilter(filter))
                }
                Node::By(expr) => stages.push(Stage::GroupBy(expr)),
                Node::Select(attributes) => stages.push(Stage::Select(attributes)),
                Node::Coalesce if index > 0 => stages.push(Stage::Coalesce),
                _ => return Err(self.unexpected_token(&start)),
            }
        }
        match metrics {
            Some(expr) => Ok(Node::Metrics(expr)),
            None => Ok(Node::Pipeline(Pipeline { stages })),
        }
    }

    /// Binary operators outside braces, by precedence level (1 = `&&`/`||` … 5 = `^`).
    fn binary(&mut self, min_level: u8) -> Result<Node, ParseError> {
        self.enter()?;
        let result = self.binary_inner(min_level);
        self.leave();
        result
    }

    fn binary_inner(&mut self, min_level: u8) -> Result<Node, ParseError> {
        let mut lhs = self.unary_outside()?;
        loop {
            let Some((level, symbol)) = outside_operator(self.peek_kind()) else {
                return Ok(lhs);
            };
            if level < min_level {
                return Ok(lhs);
            }
            let op_token = self.advance();
            self.count_operator(&op_token)?;
            // `^` is right-associative; the rest group left to right.
            let next_level = if symbol == "^" { level } else { level + 1 };
            let rhs = self.binary(next_level)?;
            lhs = self.combine(&op_token, symbol, lhs, rhs)?;
        }
    }

    fn unary_outside(&mut self) -> Result<Node, ParseError> {
        if self.is_symbol("-") {
            let minus = self.advance();
            if matches!(self.peek_kind(), TokenKind::Integer(i64::MIN)) {
                self.advance();
                return Ok(Node::Number(Static::Int(i64::MIN)));
            }
            self.enter()?;
            let operand = self.unary_outside();
            self.leave();
            let operand = operand?;
            return match operand {
                Node::Number(value) => value
                    .negate()
                    .map(Node::Number)
                    .map_err(|_| self.unexpected_token(&minus)),
                _ => Err(self.unexpected_token(&minus)),
            };
        }
        self.primary_outside()
    }

    fn combine(
        &self,
        op_token: &Token,
        symbol: &'static str,
        lhs: Node,
        rhs: Node,
    ) -> Result<Node, ParseError> {
        let refuse = || Err(self.unexpected_token(op_token));
        if let Some(op) = spanset_op(symbol) {
            if is_spanset_like(&lhs) && is_spanset_like(&rhs) {
                return Ok(Node::Spanset(SpansetExpr::Op {
                    op,
                    lhs: Box::new(into_spanset(lhs)),
                    rhs: Box::new(into_spanset(rhs)),
                }));
            }
        }
        let Some(op) = BinaryOp::from_symbol(symbol) else {
            return refuse();
        };
        if op.is_comparison() {
            return self.combine_comparison(op_token, op, lhs, rhs);
        }
        if !op.is_arithmetic() {
            return refuse();
        }
        match (lhs, rhs) {
            (Node::Number(a), Node::Number(b)) => {
                // Durations cannot take part in arithmetic outside braces (reference §7, §9).
                if matches!(a, Static::Duration(_)) || matches!(b, Static::Duration(_)) {
                    return refuse();
                }
                match Static::binary_op(op, &a, &b) {
                    Ok(value @ (Static::Int(_) | Static::Float(_))) => Ok(Node::Number(value)),
                    _ => refuse(),
                }
            }
            (Node::Scalar(a), Node::Scalar(b)) => Ok(Node::Scalar(scalar_op(op, a, b))),
            (Node::Scalar(a), Node::Number(b)) => {
                Ok(Node::Scalar(scalar_op(op, a, ScalarExpr::Static(b))))
            }
            (Node::Number(a), Node::Scalar(b)) => {
                Ok(Node::Scalar(scalar_op(op, ScalarExpr::Static(a), b)))
            }
            (Node::ScalarPipeline(a), Node::ScalarPipeline(b)) => {
                Ok(Node::ScalarPipeline(scalar_op(op, a, b)))
            }
            (Node::Metrics(a), Node::Metrics(b)) if is_metrics_math_op(op) => {
                Ok(Node::Metrics(MetricsExpr::Math {
                    op,
                    lhs: Box::new(a),
                    rhs: Box::new(b),
                    second_stage: Vec::new(),
                }))
            }
            (Node::Metrics(mut expr), Node::Number(value)) if is_metrics_math_op(op) => {
                let Some(value) = metrics_constant(&value) else {
                    return refuse();
                };
                expr.second_stage_mut().push(SecondStageOp::Scalar {
                    op,
                    value,
                    scalar_on_left: false,
                });
                Ok(Node::Metrics(expr))
            }
            (Node::Number(value), Node::Metrics(mut expr)) if is_metrics_math_op(op) => {
                let Some(value) = metrics_constant(&value) else {
                    return refuse();
                };
                expr.second_stage_mut().push(SecondStageOp::Scalar {
                    op,
                    value,
                    scalar_on_left: true,
                });
                Ok(Node::Metrics(expr))
            }
            _ => refuse(),
        }
    }

    fn combine_comparison(
        &self,
        op_token: &Token,
        op: BinaryOp,
        lhs: Node,
        rhs: Node,
    ) -> Result<Node, ParseError> {
        let refuse = || Err(self.unexpected_token(op_token));
        let filter = |lhs: ScalarExpr, rhs: ScalarExpr| {
            Ok(Node::ScalarFilter(ScalarFilter { op, lhs, rhs }))
        };
        match (lhs, rhs) {
            (Node::Scalar(a), Node::Scalar(b)) => filter(a, b),
            (Node::Scalar(a), Node::Number(b)) => filter(a, ScalarExpr::Static(b)),
            (Node::Number(a), Node::Scalar(b)) => filter(ScalarExpr::Static(a), b),
            (Node::ScalarPipeline(a), Node::ScalarPipeline(b)) => filter(a, b),
            (Node::ScalarPipeline(a), Node::Number(b)) => filter(a, ScalarExpr::Static(b)),
            (Node::Number(a), Node::ScalarPipeline(b)) => filter(ScalarExpr::Static(a), b),
            (metrics, Node::Number(value)) => {
                let Some(value) = metrics_threshold(&value) else {
                    return refuse();
                };
                let filter_op = SecondStageOp::Filter { op, value };
                match metrics {
                    Node::MetricsStage(function, mut ops) => {
                        ops.push(filter_op);
                        Ok(Node::MetricsStage(function, ops))
                    }
                    Node::RankStage(mut ops) => {
                        ops.push(filter_op);
                        Ok(Node::RankStage(ops))
                    }
                    Node::Metrics(mut expr) => {
                        expr.second_stage_mut().push(filter_op);
                        Ok(Node::Metrics(expr))
                    }
                    _ => refuse(),
                }
            }
            _ => refuse(),
        }
    }

    fn primary_outside(&mut self) -> Result<Node, ParseError> {
        let token = self.peek().clone();
        match &token.kind {
            TokenKind::Symbol("{") => {
                Ok(Node::Spanset(SpansetExpr::Filter(self.spanset_filter()?)))
            }
            TokenKind::Symbol("(") => {
                self.advance();
                let inner = self.pipe_chain()?;
                if !self.is_symbol(")") {
                    return Err(self.unexpected_expecting(") or |"));
                }
                self.advance();
                Ok(inner)
            }
            TokenKind::Integer(i64::MIN) => Err(self.out_of_range(&token)),
            TokenKind::Integer(value) => {
                self.advance();
                Ok(Node::Number(Static::Int(*value)))
            }
            TokenKind::Float(value) => {
                self.advance();
                Ok(Node::Number(Static::Float(*value)))
            }
            TokenKind::Duration(value) => {
                self.advance();
                Ok(Node::Number(Static::Duration(*value)))
            }
            TokenKind::Keyword(keyword) => match *keyword {
                "count" | "avg" | "min" | "max" | "sum" => {
                    Ok(Node::Scalar(ScalarExpr::Aggregate(self.aggregate()?)))
                }
                "by" => {
                    self.advance();
                    self.expect_symbol("(")?;
                    let expr = self.field_expr_no_nil()?;
                    self.expect_symbol(")")?;
                    Ok(Node::By(expr))
                }
                "select" => {
                    self.advance();
                    self.expect_symbol("(")?;
                    let attributes = self.attribute_list()?;
                    self.expect_symbol(")")?;
                    Ok(Node::Select(attributes))
                }
                "coalesce" => {
                    self.advance();
                    self.expect_symbol("(")?;
                    self.expect_symbol(")")?;
                    Ok(Node::Coalesce)
                }
                "topk" | "bottomk" => {
                    self.advance();
                    self.expect_symbol("(")?;
                    let TokenKind::Integer(k) = *self.peek_kind() else {
                        return Err(self.unexpected_expecting("INTEGER"));
                    };
                    self.advance();
                    self.expect_symbol(")")?;
                    let op = if *keyword == "topk" {
                        SecondStageOp::TopK(k)
                    } else {
                        SecondStageOp::BottomK(k)
                    };
                    Ok(Node::RankStage(vec![op]))
                }
                "rate"
                | "count_over_time"
                | "min_over_time"
                | "max_over_time"
                | "avg_over_time"
                | "sum_over_time"
                | "quantile_over_time"
                | "histogram_over_time"
                | "compare" => {
                    let function = self.metrics_function()?;
                    Ok(Node::MetricsStage(function, Vec::new()))
                }
                _ => Err(self.unexpected()),
            },
            _ => Err(self.unexpected()),
        }
    }

    fn aggregate(&mut self) -> Result<Aggregate, ParseError> {
        let TokenKind::Keyword(keyword) = self.advance().kind else {
            return Err(self.unexpected());
        };
        let func = match keyword {
            "count" => AggregateFn::Count,
            "avg" => AggregateFn::Avg,
            "min" => AggregateFn::Min,
            "max" => AggregateFn::Max,
            _ => AggregateFn::Sum,
        };
        self.expect_symbol("(")?;
        if func == AggregateFn::Count {
            self.expect_symbol(")")?;
            return Ok(Aggregate { func, expr: None });
        }
        let expr = self.field_expr_no_nil()?;
        self.expect_symbol(")")?;
        Ok(Aggregate {
            func,
            expr: Some(expr),
        })
    }

    fn metrics_function(&mut self) -> Result<MetricsFunction, ParseError> {
        let TokenKind::Keyword(name) = self.advance().kind else {
            return Err(self.unexpected());
        };
        self.expect_symbol("(")?;
        let aggregate = match name {
            "rate" => MetricsAggregate::Rate,
            "count_over_time" => MetricsAggregate::CountOverTime,
            "quantile_over_time" => {
                let attribute = self.attribute()?;
                let mut quantiles = Vec::new();
                while self.is_symbol(",") {
                    self.advance();
                    quantiles.push(self.quantile()?);
                }
                MetricsAggregate::QuantileOverTime(attribute, quantiles)
            }
            "compare" => {
                let filter = self.spanset_filter()?;
                let mut numbers = Vec::new();
                while self.is_symbol(",") && numbers.len() < 3 {
                    self.advance();
                    let TokenKind::Integer(value) = *self.peek_kind() else {
                        return Err(self.unexpected_expecting("INTEGER"));
                    };
                    self.advance();
                    numbers.push(value);
                }
                // The timestamps come both or neither.
                if numbers.len() == 2 {
                    return Err(self.unexpected_expecting(","));
                }
                MetricsAggregate::Compare {
                    filter,
                    top_n: numbers.first().copied().unwrap_or(10),
                    start: numbers.get(1).copied().unwrap_or(0),
                    end: numbers.get(2).copied().unwrap_or(0),
                }
            }
            other => {
                let attribute = self.attribute()?;
                match other {
                    "min_over_time" => MetricsAggregate::MinOverTime(attribute),
                    "max_over_time" => MetricsAggregate::MaxOverTime(attribute),
                    "avg_over_time" => MetricsAggregate::AvgOverTime(attribute),
                    "sum_over_time" => MetricsAggregate::SumOverTime(attribute),
                    _ => MetricsAggregate::HistogramOverTime(attribute),
                }
            }
        };
        self.expect_symbol(")")?;
        let mut by = Vec::new();
        if self.is_keyword("by") {
            self.advance();
            self.expect_symbol("(")?;
            by = self.attribute_list()?;
            self.expect_symbol(")")?;
        }
        Ok(MetricsFunction { aggregate, by })
    }

    fn quantile(&mut self) -> Result<f64, ParseError> {
        let negative = self.is_symbol("-");
        if negative {
            self.advance();
        }
        let value = match *self.peek_kind() {
            TokenKind::Integer(value) => {
                if value == i64::MIN && !negative {
                    let token = self.peek().clone();
                    return Err(self.out_of_range(&token));
                }
                value as f64
            }
            TokenKind::Float(value) => value,
            _ => return Err(self.unexpected_expecting("FLOAT")),
        };
        self.advance();
        Ok(if negative { -value } else { value })
    }

    fn attribute_list(&mut self) -> Result<Vec<Attribute>, ParseError> {
        let mut attributes = vec![self.attribute()?];
        while self.is_symbol(",") {
            self.advance();
            attributes.push(self.attribute()?);
        }
        Ok(attributes)
    }

    /// An intrinsic, scoped intrinsic or attribute; not an expression.
    fn attribute(&mut self) -> Result<Attribute, ParseError> {
        match self.attribute_or_intrinsic()? {
            Some(attribute) => Ok(attribute),
            None => Err(self.unexpected()),
        }
    }

    // ---- inside braces ------------------------------------------------------------------

    /// `{ [expr] }`; `{}` means `{ true }`.
    fn spanset_filter(&mut self) -> Result<FieldExpr, ParseError> {
        self.expect_symbol("{")?;
        if self.is_symbol("}") {
            self.advance();
            return Ok(FieldExpr::Static(Static::Bool(true)));
        }
        let expr = self.field_expr_no_nil()?;
        if !self.is_symbol("}") {
            return Err(self.unexpected());
        }
        self.advance();
        Ok(expr)
    }

    fn field_expr_no_nil(&mut self) -> Result<FieldExpr, ParseError> {
        match self.field_binary(1)? {
            Operand::Expr(expr) => Ok(expr),
            Operand::Nil(offset) => {
                Err(self.error_at(offset, "syntax error: unexpected nil".into()))
            }
        }
    }

    /// Precedence climbing for field expressions. Levels: 1 `&&` `||` (one level, Tempo),
    /// 2 comparisons and regex, 3 `+ -`, 4 prefix `!`, 5 `* / %`, 6 `^`.
    fn field_binary(&mut self, min_level: u8) -> Result<Operand, ParseError> {
        self.enter()?;
        let result = self.field_binary_inner(min_level);
        self.leave();
        result
    }

    fn field_binary_inner(&mut self, min_level: u8) -> Result<Operand, ParseError> {
        let mut lhs = self.field_unary()?;
        loop {
            let Some((level, op)) = field_operator(self.peek_kind()) else {
                return Ok(lhs);
            };
            if level < min_level {
                return Ok(lhs);
            }
            let op_token = self.advance();
            self.count_operator(&op_token)?;
            let next_level = if op == BinaryOp::Pow {
                level
            } else {
                level + 1
            };
            let rhs = self.field_binary(next_level)?;
            lhs = self.field_combine(&op_token, op, lhs, rhs)?;
        }
    }

    fn field_combine(
        &self,
        op_token: &Token,
        op: BinaryOp,
        lhs: Operand,
        rhs: Operand,
    ) -> Result<Operand, ParseError> {
        let nil_compare = matches!(op, BinaryOp::Eq | BinaryOp::Neq);
        let existence = |expr: FieldExpr| {
            let unary = if op == BinaryOp::Neq {
                UnaryOp::Exists
            } else {
                UnaryOp::NotExists
            };
            Operand::Expr(FieldExpr::Unary {
                op: unary,
                expr: Box::new(expr),
            })
        };
        match (lhs, rhs) {
            // `nil = nil` and `nil != nil` fold to false: nil never equals anything.
            (Operand::Nil(_), Operand::Nil(_)) if nil_compare => {
                Ok(Operand::Expr(FieldExpr::Static(Static::Bool(false))))
            }
            (Operand::Expr(expr), Operand::Nil(_)) | (Operand::Nil(_), Operand::Expr(expr))
                if nil_compare =>
            {
                Ok(existence(expr))
            }
            (Operand::Nil(_), _) => Err(self.unexpected_token(op_token)),
            (_, Operand::Nil(offset)) => {
                Err(self.error_at(offset, "syntax error: unexpected nil".into()))
            }
            (Operand::Expr(lhs), Operand::Expr(rhs)) => {
                Ok(Operand::Expr(fold_binary(op, lhs, rhs)))
            }
        }
    }

    fn field_unary(&mut self) -> Result<Operand, ParseError> {
        let (op, operand_level) = if self.is_symbol("!") {
            // `!` binds tighter than `+` but looser than `*`: `!.a * .b` is `!(.a * .b)`.
            (UnaryOp::Not, 5)
        } else if self.is_symbol("-") {
            // Prefix `-` has the precedence of binary `-`.
            (UnaryOp::Neg, 4)
        } else {
            return self.field_primary();
        };
        self.advance();
        if op == UnaryOp::Neg && matches!(self.peek_kind(), TokenKind::Integer(i64::MIN)) {
            self.advance();
            return Ok(Operand::Expr(FieldExpr::Static(Static::Int(i64::MIN))));
        }
        match self.field_binary(operand_level)? {
            Operand::Expr(expr) => Ok(Operand::Expr(fold_unary(op, expr))),
            Operand::Nil(offset) => {
                Err(self.error_at(offset, "syntax error: unexpected nil".into()))
            }
        }
    }

    fn field_primary(&mut self) -> Result<Operand, ParseError> {
        let token = self.peek().clone();
        match &token.kind {
            TokenKind::Symbol("(") => {
                self.advance();
                let inner = self.field_binary(1)?;
                if let Operand::Nil(offset) = inner {
                    return Err(self.error_at(offset, "syntax error: unexpected nil".into()));
                }
                self.expect_symbol(")")?;
                Ok(inner)
            }
            TokenKind::String(value) => {
                self.advance();
                Ok(Operand::Expr(FieldExpr::Static(Static::String(
                    value.clone(),
                ))))
            }
            TokenKind::Integer(i64::MIN) => Err(self.out_of_range(&token)),
            TokenKind::Integer(value) => {
                self.advance();
                Ok(Operand::Expr(FieldExpr::Static(Static::Int(*value))))
            }
            TokenKind::Float(value) => {
                self.advance();
                Ok(Operand::Expr(FieldExpr::Static(Static::Float(*value))))
            }
            TokenKind::Duration(value) => {
                self.advance();
                Ok(Operand::Expr(FieldExpr::Static(Static::Duration(*value))))
            }
            TokenKind::Identifier(name) => {
                let value = match name.as_str() {
                    "minInt" => Static::Int(i64::MIN),
                    "maxInt" => Static::Int(i64::MAX),
                    _ => return Err(self.unexpected()),
                };
                self.advance();
                Ok(Operand::Expr(FieldExpr::Static(value)))
            }
            TokenKind::Keyword("nil") => {
                self.advance();
                Ok(Operand::Nil(token.start))
            }
            TokenKind::Keyword(keyword) => {
                if let Some(value) = keyword_static(keyword) {
                    self.advance();
                    return Ok(Operand::Expr(FieldExpr::Static(value)));
                }
                match self.attribute_or_intrinsic()? {
                    Some(attribute) => Ok(Operand::Expr(FieldExpr::Attribute(attribute))),
                    None => Err(self.unexpected()),
                }
            }
            _ => match self.attribute_or_intrinsic()? {
                Some(attribute) => Ok(Operand::Expr(FieldExpr::Attribute(attribute))),
                None => Err(self.unexpected()),
            },
        }
    }

    /// Parses an attribute or intrinsic at the current token, or returns `None` (consuming
    /// nothing) when the token cannot start one.
    fn attribute_or_intrinsic(&mut self) -> Result<Option<Attribute>, ParseError> {
        match self.peek_kind().clone() {
            TokenKind::Keyword(keyword) => {
                let Some(intrinsic) = bare_intrinsic(keyword) else {
                    return Ok(None);
                };
                self.advance();
                Ok(Some(Attribute::intrinsic(intrinsic)))
            }
            TokenKind::ColonScope(scope) => {
                self.advance();
                let TokenKind::Keyword(keyword) = *self.peek_kind() else {
                    return Err(self.unexpected());
                };
                let Some(intrinsic) = scoped_intrinsic(scope, keyword) else {
                    return Err(self.unexpected());
                };
                self.advance();
                Ok(Some(Attribute::intrinsic(intrinsic)))
            }
            TokenKind::DotScope(scope) => {
                self.advance();
                let mut parent = false;
                let mut scope = scope;
                if scope == DotScope::Parent {
                    parent = true;
                    scope = DotScope::None;
                    if let TokenKind::DotScope(nested @ (DotScope::Span | DotScope::Resource)) =
                        *self.peek_kind()
                    {
                        self.advance();
                        scope = nested;
                    } else if !matches!(self.peek_kind(), TokenKind::Identifier(_)) {
                        return Err(self.unexpected_expecting("IDENTIFIER or resource. or span."));
                    }
                }
                let TokenKind::Identifier(name) = self.peek_kind().clone() else {
                    return Err(self.unexpected_expecting("IDENTIFIER"));
                };
                self.advance();
                if !matches!(self.peek_kind(), TokenKind::EndAttribute) {
                    return Err(self.unexpected_expecting("END_ATTRIBUTE"));
                }
                self.advance();
                let scope = match scope {
                    DotScope::Span => AttributeScope::Span,
                    DotScope::Resource => AttributeScope::Resource,
                    DotScope::Event => AttributeScope::Event,
                    DotScope::Link => AttributeScope::Link,
                    DotScope::Instrumentation => AttributeScope::Instrumentation,
                    DotScope::None | DotScope::Parent => AttributeScope::None,
                };
                Ok(Some(Attribute::new(scope, parent, name)))
            }
            _ => Ok(None),
        }
    }
}

// ---- helpers ----------------------------------------------------------------------------

fn keyword_static(keyword: &str) -> Option<Static> {
    match keyword {
        "true" => Some(Static::Bool(true)),
        "false" => Some(Static::Bool(false)),
        other => Status::from_keyword(other)
            .map(Static::Status)
            .or_else(|| Kind::from_keyword(other).map(Static::Kind)),
    }
}

fn bare_intrinsic(keyword: &str) -> Option<Intrinsic> {
    Some(match keyword {
        "duration" => Intrinsic::Duration,
        "name" => Intrinsic::Name,
        "status" => Intrinsic::Status,
        "statusMessage" => Intrinsic::StatusMessage,
        "kind" => Intrinsic::Kind,
        "rootName" => Intrinsic::RootName,
        "rootServiceName" => Intrinsic::RootServiceName,
        "traceDuration" => Intrinsic::TraceDuration,
        "nestedSetLeft" => Intrinsic::NestedSetLeft,
        "nestedSetRight" => Intrinsic::NestedSetRight,
        "nestedSetParent" => Intrinsic::NestedSetParent,
        "parent" => Intrinsic::Parent,
        _ => return None,
    })
}

fn scoped_intrinsic(scope: ColonScope, keyword: &str) -> Option<Intrinsic> {
    Some(match (scope, keyword) {
        (ColonScope::Trace, "duration") => Intrinsic::TraceDuration,
        (ColonScope::Trace, "rootName") => Intrinsic::RootName,
        (ColonScope::Trace, "rootService") => Intrinsic::RootServiceName,
        (ColonScope::Trace, "id") => Intrinsic::TraceId,
        (ColonScope::Span, "duration") => Intrinsic::Duration,
        (ColonScope::Span, "name") => Intrinsic::Name,
        (ColonScope::Span, "kind") => Intrinsic::Kind,
        (ColonScope::Span, "status") => Intrinsic::Status,
        (ColonScope::Span, "statusMessage") => Intrinsic::StatusMessage,
        (ColonScope::Span, "id") => Intrinsic::SpanId,
        (ColonScope::Span, "parentID") => Intrinsic::SpanParentId,
        (ColonScope::Span, "childCount") => Intrinsic::SpanChildCount,
        (ColonScope::Event, "name") => Intrinsic::EventName,
        (ColonScope::Event, "timeSinceStart") => Intrinsic::EventTimeSinceStart,
        (ColonScope::Link, "traceID") => Intrinsic::LinkTraceId,
        (ColonScope::Link, "spanID") => Intrinsic::LinkSpanId,
        (ColonScope::Instrumentation, "name") => Intrinsic::InstrumentationName,
        (ColonScope::Instrumentation, "version") => Intrinsic::InstrumentationVersion,
        _ => return None,
    })
}

fn field_operator(kind: &TokenKind) -> Option<(u8, BinaryOp)> {
    let TokenKind::Symbol(symbol) = kind else {
        return None;
    };
    let op = BinaryOp::from_symbol(symbol)?;
    let level = match op {
        BinaryOp::And | BinaryOp::Or => 1,
        BinaryOp::Add | BinaryOp::Sub => 3,
        BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => 5,
        BinaryOp::Pow => 6,
        BinaryOp::In | BinaryOp::NotIn | BinaryOp::MatchAny | BinaryOp::MatchNone => return None,
        _ => 2,
    };
    Some((level, op))
}

fn outside_operator(kind: &TokenKind) -> Option<(u8, &'static str)> {
    let TokenKind::Symbol(symbol) = kind else {
        return None;
    };
    let level = match *symbol {
        "&&" | "||" => 1,
        "=" | "!=" | "<" | "<=" | ">" | ">=" | "=~" | "!~" | ">>" | "<<" | "~" | "!>" | "!<"
        | "!>>" | "!<<" | "&>" | "&<" | "&>>" | "&<<" | "&~" => 2,
        "+" | "-" => 3,
        "*" | "/" | "%" => 4,
        "^" => 5,
        _ => return None,
    };
    Some((level, symbol))
}

fn spanset_op(symbol: &str) -> Option<SpansetOp> {
    Some(match symbol {
        "&&" => SpansetOp::And,
        "||" => SpansetOp::Or,
        ">" => SpansetOp::Child,
        "<" => SpansetOp::Parent,
        ">>" => SpansetOp::Descendant,
        "<<" => SpansetOp::Ancestor,
        "~" => SpansetOp::Sibling,
        "!>" => SpansetOp::NotChild,
        "!<" => SpansetOp::NotParent,
        "!>>" => SpansetOp::NotDescendant,
        "!<<" => SpansetOp::NotAncestor,
        "!~" => SpansetOp::NotSibling,
        "&>" => SpansetOp::UnionChild,
        "&<" => SpansetOp::UnionParent,
        "&>>" => SpansetOp::UnionDescendant,
        "&<<" => SpansetOp::UnionAncestor,
        "&~" => SpansetOp::UnionSibling,
        _ => return None,
    })
}

fn is_spanset_like(node: &Node) -> bool {
    matches!(node, Node::Spanset(_) | Node::Pipeline(_))
}

fn into_spanset(node: Node) -> SpansetExpr {
    match node {
        Node::Spanset(expr) => expr,
        Node::Pipeline(pipeline) => SpansetExpr::Pipeline(Box::new(pipeline)),
        // Callers check is_spanset_like first; an empty filter is a harmless fallback.
        _ => SpansetExpr::Filter(FieldExpr::Static(Static::Bool(false))),
    }
}

fn spanset_has_pipeline(expr: &SpansetExpr) -> bool {
    match expr {
        SpansetExpr::Filter(_) => false,
        SpansetExpr::Pipeline(_) => true,
        SpansetExpr::Op { lhs, rhs, .. } => spanset_has_pipeline(lhs) || spanset_has_pipeline(rhs),
    }
}

fn scalar_has_pipeline(expr: &ScalarExpr) -> bool {
    match expr {
        ScalarExpr::Pipeline(_) => true,
        ScalarExpr::Op { lhs, rhs, .. } => scalar_has_pipeline(lhs) || scalar_has_pipeline(rhs),
        _ => false,
    }
}

fn scalar_filter_has_pipeline(filter: &ScalarFilter) -> bool {
    scalar_has_pipeline(&filter.lhs) || scalar_has_pipeline(&filter.rhs)
}

fn scalar_op(op: BinaryOp, lhs: ScalarExpr, rhs: ScalarExpr) -> ScalarExpr {
    ScalarExpr::Op {
        op,
        lhs: Box::new(lhs),
        rhs: Box::new(rhs),
    }
}

fn is_metrics_math_op(op: BinaryOp) -> bool {
    matches!(
        op,
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div
    )
}

/// A constant in metrics arithmetic: ints and floats only; durations are refused.
fn metrics_constant(value: &Static) -> Option<f64> {
    match value {
        Static::Int(value) => Some(*value as f64),
        Static::Float(value) => Some(*value),
        _ => None,
    }
}

/// A metrics filter threshold: a duration is converted to seconds.
fn metrics_threshold(value: &Static) -> Option<f64> {
    match value {
        Static::Duration(nanos) => Some(*nanos as f64 / 1e9),
        other => metrics_constant(other),
    }
}

/// Builds `lhs op rhs`, folding it when both operands are literals and the operation
/// succeeds (a fold that fails, like `5 / 0`, is left for run time).
fn fold_binary(op: BinaryOp, lhs: FieldExpr, rhs: FieldExpr) -> FieldExpr {
    if let (FieldExpr::Static(a), FieldExpr::Static(b)) = (&lhs, &rhs) {
        if let Some(value) = fold_statics(op, a, b) {
            return FieldExpr::Static(value);
        }
    }
    FieldExpr::Binary {
        op,
        lhs: Box::new(lhs),
        rhs: Box::new(rhs),
    }
}

fn fold_statics(op: BinaryOp, a: &Static, b: &Static) -> Option<Static> {
    // Only fold well-typed operations: a type error must survive to validation
    // (`{ 1 = "foo" }` is a validate error, not `{ false }`).
    let (left, right) = (a.static_type(), b.static_type());
    if !left.compatible(right) || !left.allows(op) || !right.allows(op) {
        return None;
    }
    if matches!(op, BinaryOp::Regex | BinaryOp::NotRegex) {
        // An invalid pattern is a validation error, so it must not be folded away.
        return None;
    }
    match Static::binary_op(op, a, b) {
        Ok(Static::Nil) | Err(_) => None,
        // ±Inf and NaN have no literal syntax: leave `1.0 / 0` for run time so the canonical
        // string still re-parses.
        Ok(Static::Float(value)) if !value.is_finite() => None,
        Ok(value) => Some(value),
    }
}

fn fold_unary(op: UnaryOp, expr: FieldExpr) -> FieldExpr {
    if let FieldExpr::Static(value) = &expr {
        let folded = match op {
            UnaryOp::Neg if value.static_type().is_numeric() => value.negate().ok(),
            UnaryOp::Not if matches!(value, Static::Bool(_)) => value.not().ok(),
            _ => None,
        };
        if let Some(value) = folded {
            return FieldExpr::Static(value);
        }
    }
    FieldExpr::Unary {
        op,
        expr: Box::new(expr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(query: &str) -> String {
        match parse(query) {
            Ok(parsed) => parsed.to_string(),
            Err(error) => format!("ERROR {error}"),
        }
    }

    #[test]
    fn and_or_share_one_level_inside_filters() {
        assert_eq!(canonical("{ .a || .b && .c }"), "{ (.a || .b) && .c }");
        assert_eq!(canonical("{ .a = .b && .c }"), "{ (.a = .b) && .c }");
    }

    #[test]
    fn arithmetic_and_prefix_precedence() {
        assert_eq!(canonical("{ .a + .b ^ .c }"), "{ .a + (.b ^ .c) }");
        assert_eq!(canonical("{ .a ^ .b ^ .c }"), "{ .a ^ (.b ^ .c) }");
        assert_eq!(canonical("{ !.a = .b }"), "{ (!.a) = .b }");
        assert_eq!(canonical("{ .c - -.a + .b }"), "{ (.c - (-.a)) + .b }");
        assert_eq!(canonical("{ !.a * .b }"), "{ !(.a * .b) }");
    }

    #[test]
    fn spanset_operator_precedence() {
        assert_eq!(
            canonical("{ true } && { false } >> { `a` }"),
            "({ true }) && (({ false }) >> ({ `a` }))"
        );
    }

    #[test]
    fn constants_fold() {
        assert_eq!(canonical("{ 1 + 1 > 1 }"), "{ true }");
        assert_eq!(canonical("{ duration > 1 + 2 }"), "{ duration > 3 }");
        assert_eq!(canonical("{ 1 = \"foo\" }"), "{ 1 = `foo` }");
        assert_eq!(canonical("{ nil = nil }"), "{ false }");
        assert_eq!(canonical("{ 1.5m }"), "{ 1m30s }");
        assert_eq!(canonical("{ minInt }"), "{ -9223372036854775808 }");
        assert_eq!(
            canonical("{ -9223372036854775808 }"),
            "{ -9223372036854775808 }"
        );
        assert!(parse("{ 1 - 9223372036854775808 = 1 }").is_err());
        assert!(parse("{ 9223372036854775808 }").is_err());
    }

    #[test]
    fn quoted_attributes_round_trip() {
        assert_eq!(
            canonical(r#"{ ."foo bar" = "v" }"#),
            r#"{ ."foo bar" = `v` }"#
        );
        assert_eq!(canonical(r#"{ ."a\"b" = 1 }"#), r#"{ ."a\"b" = 1 }"#);
        assert_eq!(canonical(r#"{ ."3" = 1 }"#), r#"{ ."3" = 1 }"#);
    }

    #[test]
    fn error_positions_match_tempo() {
        let error = |query: &str| {
            parse(query)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(
            error("{ span.http.method = }"),
            "parse error at line 1, col 22: syntax error: unexpected }"
        );
        assert_eq!(
            error("{ .foo = \"bar\" } | by("),
            "parse error at line 1, col 23: syntax error: unexpected $end"
        );
        assert_eq!(
            error("{} | topk(10)"),
            "parse error at line 1, col 6: syntax error: unexpected topk"
        );
        assert_eq!(
            error("{\n  .a = }"),
            "parse error at line 2, col 8: syntax error: unexpected }"
        );
    }

    #[test]
    fn metrics_math_and_second_stage() {
        assert_eq!(canonical("({ } | rate()) > 10"), "{ true } | rate() > 10");
        assert_eq!(
            canonical("(60 * ({} | rate())) / ({} | count_over_time())"),
            "(60 * ({ true } | rate())) / ({ true } | count_over_time())"
        );
        assert!(parse("({} | rate()) * 10s").is_err());
        assert!(parse("{} | rate() + 5").is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let query = format!("{}{{}}{}", "(".repeat(5000), ")".repeat(5000));
        assert!(parse(&query).is_err());
        let field = format!("{{ {}1{} }}", "(".repeat(5000), ")".repeat(5000));
        assert!(parse(&field).is_err());
        let minus = format!("{{ {}1 }}", "-".repeat(5000));
        assert!(parse(&minus).is_err());
    }

    #[test]
    fn long_operator_chains_are_an_error_not_a_crash() {
        let within = vec!["{}"; MAX_OPERATORS + 1].join(" && ");
        assert!(parse(&within).is_ok());
        let spansets = vec!["{}"; MAX_OPERATORS + 2].join(" && ");
        let error = parse(&spansets).unwrap_err();
        assert!(
            error.message.contains("more than 1000 operators"),
            "{error}"
        );
        let fields = format!("{{ {} }}", vec![".a = 1"; 50_000].join(" || "));
        assert!(parse(&fields).is_err());
        let metrics = vec!["({} | rate())"; 50_000].join(" + ");
        assert!(parse(&metrics).is_err());
    }
}
