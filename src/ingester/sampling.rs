//! Tail sampling for storage: which complete traces go into blocks.
//!
//! # Where the decision is made
//!
//! When a cut has moved complete traces into a flush batch, the batch is decoded off the async
//! runtime (it always was, to write the block) and each trace is decided there, just before
//! [`super::BlockSink::write_block`]. Kept traces go into the block; dropped ones are left out
//! of it and out of the copy kept readable for `complete_block_timeout`. Everything before
//! that point is unchanged: the distributor feeds the metrics-generator before the ingester,
//! so span metrics and service graphs still see every span, and until its cut a trace is in
//! the WAL and readable from the head like any other.
//!
//! # Precedence
//!
//! 1. A decision remembered for this tenant and trace ID (see below) is reused as it is.
//! 2. The first rule whose TraceQL query matches any span decides, with the rule's ratio.
//!    Rules come first so that a rule can drop what would otherwise be kept (health checks
//!    that fail) or keep a share of it (`ratio: 0.1` of the errors of a noisy service).
//! 3. `keep_errors`: a trace with a span whose status is ERROR is kept.
//! 4. `latency_threshold`: a trace lasting at least this long is kept.
//! 5. `baseline_ratio` decides every other trace.
//!
//! Ratios are decided from the trace ID as OpenTelemetry's `TraceIdRatioBased` sampler does:
//! the last 8 bytes, big-endian, shifted right by one, are kept when below `ratio × 2^63`. The
//! same trace ID therefore gets the same answer at every cut, after a restart, and in every
//! vivace; a trace kept at ratio 0.1 is also kept at any larger ratio.
//!
//! # Late spans
//!
//! Spans arriving after their trace was cut form a new piece of it, cut later. Deciding that
//! piece on its own content could split a trace (its first piece kept for an error, the late
//! piece without one dropped by the baseline), so the sampler remembers its recent decisions
//! per tenant and trace ID in a bounded LRU of `decision_cache_size` entries (about 100 bytes
//! each) and applies the remembered decision to later pieces. A piece decided after its
//! decision was evicted, or after a restart (the cache lives in memory only), is decided on its
//! own content; the ratio part of that decision is the same anyway.
//!
//! # The WAL and crashes
//!
//! The WAL holds every acknowledged span until the cut's block is written and the old
//! segments are deleted, exactly as without sampling: dropping happens only when the block is
//! written. A crash before the segments are deleted replays the dropped traces too; they are
//! cut again and decided again. Decisions depend only on the config, the trace ID and the
//! trace's content, so a replayed trace is dropped again (a replayed trace that now combines
//! pieces cut apart before the crash may be kept where a piece alone was dropped: sampling
//! errs towards keeping). A block write that fails keeps its whole batch, dropped traces
//! included, in the WAL until the retry, which reuses the remembered decisions.
//!
//! # Counting
//!
//! Traces and spans are counted per decision and reason once their batch is written (a retry
//! does not count twice). A trace cut in several pieces counts once per piece.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::model::{trace_time_range, Trace, TraceId};
use crate::traceql::eval::Evaluator;
use crate::traceql::search::CompiledSearch;
use crate::traceql::span::trace_spans;

/// The `ingester.sampling` section: which complete traces are written to blocks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingConfig {
    /// Off: every trace is written to a block. On: each complete trace is kept or dropped when
    /// it is cut, by the rules below; span metrics still see every span.
    pub enabled: bool,
    /// Keep every trace with a span whose status is ERROR (unless a rule decided first).
    pub keep_errors: bool,
    /// Keep every trace lasting at least this long (first span start to last span end);
    /// 0s turns the latency rule off.
    #[serde(with = "humantime_serde")]
    pub latency_threshold: Duration,
    /// Share (0.0 to 1.0) of the other traces kept, decided from the trace ID so every piece
    /// of a trace gets the same answer.
    pub baseline_ratio: f64,
    /// Rules tried in order before everything else; the first whose TraceQL `query` matches
    /// any span of the trace keeps it with its `ratio` (0.0 drops it).
    pub rules: Vec<SamplingRule>,
    /// Recent decisions remembered (per tenant and trace ID) so that spans arriving after
    /// their trace was cut follow the same decision; about 100 bytes each.
    pub decision_cache_size: usize,
}

impl Default for SamplingConfig {
    fn default() -> SamplingConfig {
        SamplingConfig {
            enabled: false,
            keep_errors: true,
            latency_threshold: Duration::ZERO,
            baseline_ratio: 1.0,
            rules: Vec::new(),
            decision_cache_size: 100_000,
        }
    }
}

/// One sampling rule: a TraceQL spanset filter and the share of matching traces kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingRule {
    /// A TraceQL spanset query, e.g. `{ span.http.route = "/health" }`.
    pub query: String,
    /// Share (0.0 to 1.0) of matching traces kept.
    pub ratio: f64,
}

impl SamplingConfig {
    /// Refuses ratios outside 0..1 and rule queries that are not valid spanset queries,
    /// naming the key at fault (relative to `ingester.`).
    pub fn validate(&self) -> Result<(), String> {
        check_ratio("sampling.baseline_ratio", self.baseline_ratio)?;
        for (index, rule) in self.rules.iter().enumerate() {
            check_ratio(&format!("sampling.rules[{index}].ratio"), rule.ratio)?;
            compile_rule_query(&rule.query)
                .map_err(|reason| format!("sampling.rules[{index}].query: {reason}"))?;
        }
        Ok(())
    }
}

fn check_ratio(key: &str, ratio: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&ratio) {
        Ok(())
    } else {
        Err(format!("{key} must be between 0.0 and 1.0, not {ratio}"))
    }
}

fn compile_rule_query(query: &str) -> Result<CompiledSearch, String> {
    let parsed = crate::traceql::parse_and_validate(query)
        .map_err(|error| format!("invalid TraceQL query {query:?}: {error}"))?;
    CompiledSearch::new(parsed).map_err(|error| format!("query {query:?} cannot be used: {error}"))
}

/// Why a trace was kept or dropped: the `reason` label of the sampling metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleReason {
    /// A rule's query matched; its ratio decided.
    Rule,
    /// A span has status ERROR.
    Error,
    /// The trace lasted at least `latency_threshold`.
    Latency,
    /// The baseline ratio decided.
    Baseline,
}

impl SampleReason {
    /// Every reason, in label order.
    pub const ALL: [SampleReason; 4] = [
        SampleReason::Rule,
        SampleReason::Error,
        SampleReason::Latency,
        SampleReason::Baseline,
    ];

    /// The metric label value.
    pub fn label(self) -> &'static str {
        match self {
            SampleReason::Rule => "rule",
            SampleReason::Error => "error",
            SampleReason::Latency => "latency",
            SampleReason::Baseline => "baseline",
        }
    }

    fn index(self) -> usize {
        match self {
            SampleReason::Rule => 0,
            SampleReason::Error => 1,
            SampleReason::Latency => 2,
            SampleReason::Baseline => 3,
        }
    }
}

/// Keep or drop, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the trace goes into the block.
    pub keep: bool,
    /// What decided.
    pub reason: SampleReason,
}

/// Traces and spans decided, `[kept, dropped][reason]`, as `/metrics` shows them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SamplingStats {
    /// Trace pieces per `[kept=0 | dropped=1][reason]`.
    pub traces: [[u64; 4]; 2],
    /// Spans per `[kept=0 | dropped=1][reason]`.
    pub spans: [[u64; 4]; 2],
}

impl SamplingStats {
    /// Counts one decided trace of `spans` spans.
    pub fn add(&mut self, decision: Decision, spans: u64) {
        let row = usize::from(!decision.keep);
        self.traces[row][decision.reason.index()] += 1;
        self.spans[row][decision.reason.index()] += spans;
    }
}

/// What sampling did to one flush batch.
#[derive(Debug, Default)]
pub(crate) struct BatchSampling {
    /// Traces left out of the block.
    pub dropped: HashSet<TraceId>,
    /// Decisions, counted once the block is written.
    pub stats: SamplingStats,
}

/// `ratio` as a threshold on the 63-bit value taken from a trace ID.
fn ratio_threshold(ratio: f64) -> u64 {
    // 2^63 as f64 is exact; ratio is checked to be within 0..=1 by the config.
    (ratio.clamp(0.0, 1.0) * 9_223_372_036_854_775_808.0) as u64
}

/// OpenTelemetry's `TraceIdRatioBased` test: the low 8 bytes of the ID, big-endian, >> 1.
fn ratio_keeps(threshold: u64, trace_id: &TraceId) -> bool {
    let mut low = [0u8; 8];
    low.copy_from_slice(&trace_id.as_bytes()[8..16]);
    (u64::from_be_bytes(low) >> 1) < threshold
}

struct CompiledRule {
    query: String,
    search: CompiledSearch,
    threshold: u64,
}

/// The sampler of one ingester: compiled rules, thresholds and the recent decisions.
pub struct Sampler {
    keep_errors: bool,
    latency_threshold_ns: u64,
    baseline_threshold: u64,
    rules: Vec<CompiledRule>,
    recent: Mutex<RecentDecisions>,
    traces: [[AtomicU64; 4]; 2],
    spans: [[AtomicU64; 4]; 2],
}

impl Sampler {
    /// Compiles the rules; `None` when sampling is off.
    pub fn from_config(config: &SamplingConfig) -> Result<Option<Sampler>, String> {
        if !config.enabled {
            return Ok(None);
        }
        config.validate()?;
        let mut rules = Vec::with_capacity(config.rules.len());
        for (index, rule) in config.rules.iter().enumerate() {
            let search = compile_rule_query(&rule.query)
                .map_err(|reason| format!("sampling.rules[{index}].query: {reason}"))?;
            rules.push(CompiledRule {
                query: rule.query.clone(),
                search,
                threshold: ratio_threshold(rule.ratio),
            });
        }
        Ok(Some(Sampler {
            keep_errors: config.keep_errors,
            latency_threshold_ns: u64::try_from(config.latency_threshold.as_nanos())
                .unwrap_or(u64::MAX),
            baseline_threshold: ratio_threshold(config.baseline_ratio),
            rules,
            recent: Mutex::new(RecentDecisions::new(config.decision_cache_size)),
            traces: Default::default(),
            spans: Default::default(),
        }))
    }

    /// Decides one trace piece: a remembered decision for this trace, else the rules in the
    /// order of the module documentation. CPU work; callers run it off the async runtime.
    pub fn decide(
        &self,
        tenant: &str,
        trace_id: &TraceId,
        trace: &Trace,
        evaluator: &Evaluator,
    ) -> Decision {
        let key = (tenant_key(tenant), *trace_id);
        if let Some(remembered) = self.recent.lock().get(&key) {
            return remembered;
        }
        let decision = self.evaluate(trace_id, trace, evaluator);
        self.recent.lock().insert(key, decision);
        decision
    }

    /// The decision from the trace alone, nothing remembered.
    fn evaluate(&self, trace_id: &TraceId, trace: &Trace, evaluator: &Evaluator) -> Decision {
        if !self.rules.is_empty() {
            // Built once per trace and shared by every rule.
            let (_, spans) = trace_spans(trace_id.to_trimmed_hex(), trace);
            for rule in &self.rules {
                match rule.search.matches_spans(evaluator, &spans) {
                    Ok(true) => {
                        return Decision {
                            keep: ratio_keeps(rule.threshold, trace_id),
                            reason: SampleReason::Rule,
                        }
                    }
                    Ok(false) => {}
                    // A runtime error (e.g. integer division by zero) on this trace: the rule
                    // does not apply to it.
                    Err(error) => {
                        tracing::debug!(query = %rule.query, trace_id = %trace_id, %error,
                        "sampling rule failed on a trace; trying the next")
                    }
                }
            }
        }
        if self.keep_errors && has_error_span(trace) {
            return Decision {
                keep: true,
                reason: SampleReason::Error,
            };
        }
        if self.latency_threshold_ns > 0 {
            let duration = trace_time_range(trace)
                .map(|(start, end)| end.saturating_sub(start))
                .unwrap_or(0);
            if duration >= self.latency_threshold_ns {
                return Decision {
                    keep: true,
                    reason: SampleReason::Latency,
                };
            }
        }
        Decision {
            keep: ratio_keeps(self.baseline_threshold, trace_id),
            reason: SampleReason::Baseline,
        }
    }

    /// Decides every trace of a decoded batch and returns the kept ones with what was dropped.
    pub(crate) fn sample_batch(
        &self,
        tenant: &str,
        traces: Vec<(TraceId, Trace)>,
    ) -> (Vec<(TraceId, Trace)>, BatchSampling) {
        let evaluator = Evaluator::default();
        let mut outcome = BatchSampling::default();
        let mut kept = Vec::with_capacity(traces.len());
        for (trace_id, trace) in traces {
            let decision = self.decide(tenant, &trace_id, &trace, &evaluator);
            outcome.stats.add(decision, span_count(&trace));
            if decision.keep {
                kept.push((trace_id, trace));
            } else {
                outcome.dropped.insert(trace_id);
            }
        }
        (kept, outcome)
    }

    /// Adds a written batch's decisions to the counters.
    pub(crate) fn record(&self, stats: &SamplingStats) {
        let pairs = self
            .traces
            .iter()
            .zip(&stats.traces)
            .chain(self.spans.iter().zip(&stats.spans));
        for (counters, counts) in pairs {
            for (counter, count) in counters.iter().zip(counts) {
                counter.fetch_add(*count, Ordering::Relaxed);
            }
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> SamplingStats {
        let load = |counters: &[[AtomicU64; 4]; 2]| {
            counters.each_ref().map(|row| {
                row.each_ref()
                    .map(|counter| counter.load(Ordering::Relaxed))
            })
        };
        SamplingStats {
            traces: load(&self.traces),
            spans: load(&self.spans),
        }
    }
}

fn has_error_span(trace: &Trace) -> bool {
    trace
        .resource_spans
        .iter()
        .flat_map(|batch| &batch.scope_spans)
        .flat_map(|scope_batch| &scope_batch.spans)
        .any(|span| {
            span.status
                .as_ref()
                .is_some_and(|status| status.code == StatusCode::Error as i32)
        })
}

fn span_count(trace: &Trace) -> u64 {
    trace
        .resource_spans
        .iter()
        .flat_map(|batch| &batch.scope_spans)
        .map(|scope_batch| scope_batch.spans.len() as u64)
        .sum()
}

/// A fixed-size stand-in for the tenant name in cache keys, so an entry stays small.
fn tenant_key(tenant: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    tenant.hash(&mut hasher);
    hasher.finish()
}

type DecisionKey = (u64, TraceId);

/// A bounded least-recently-used map of decisions. `order` lists keys by last use with the
/// stamp of that use; entries whose stamp moved on are stale and skipped on eviction, and the
/// list is compacted when stale entries outnumber live ones.
struct RecentDecisions {
    capacity: usize,
    entries: HashMap<DecisionKey, (Decision, u64)>,
    order: VecDeque<(DecisionKey, u64)>,
    next_stamp: u64,
}

impl RecentDecisions {
    fn new(capacity: usize) -> RecentDecisions {
        RecentDecisions {
            capacity,
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_stamp: 0,
        }
    }

    fn get(&mut self, key: &DecisionKey) -> Option<Decision> {
        let stamp = self.next_stamp;
        let entry = self.entries.get_mut(key)?;
        entry.1 = stamp;
        let decision = entry.0;
        self.next_stamp += 1;
        self.order.push_back((*key, stamp));
        self.compact();
        Some(decision)
    }

    fn insert(&mut self, key: DecisionKey, decision: Decision) {
        if self.capacity == 0 {
            return;
        }
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        self.entries.insert(key, (decision, stamp));
        self.order.push_back((key, stamp));
        while self.entries.len() > self.capacity {
            let Some((oldest, oldest_stamp)) = self.order.pop_front() else {
                break;
            };
            if self
                .entries
                .get(&oldest)
                .is_some_and(|(_, current)| *current == oldest_stamp)
            {
                self.entries.remove(&oldest);
            }
        }
        self.compact();
    }

    fn compact(&mut self) {
        if self.order.len() <= 2 * self.capacity + 16 {
            return;
        }
        let entries = &self.entries;
        self.order.retain(|(key, stamp)| {
            entries
                .get(key)
                .is_some_and(|(_, current)| current == stamp)
        });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::string_attribute;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

    fn id(low: u64) -> TraceId {
        let mut bytes = [7u8; 16];
        bytes[8..16].copy_from_slice(&low.to_be_bytes());
        TraceId(bytes)
    }

    /// A trace ID whose ratio value (low 8 bytes >> 1) is `fraction` of the range.
    fn id_at(fraction: f64) -> TraceId {
        id(((fraction * 9_223_372_036_854_775_808.0) as u64) << 1)
    }

    fn trace(route: &str, error: bool, duration_ms: u64) -> Trace {
        let span = Span {
            trace_id: vec![1; 16],
            span_id: vec![1; 8],
            name: "GET".into(),
            start_time_unix_nano: 1_000_000_000,
            end_time_unix_nano: 1_000_000_000 + duration_ms * 1_000_000,
            attributes: vec![string_attribute("http.route", route)],
            status: error.then(|| Status {
                code: StatusCode::Error as i32,
                ..Status::default()
            }),
            ..Span::default()
        };
        Trace {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![string_attribute("service.name", "shop")],
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![
                        span.clone(),
                        Span {
                            span_id: vec![2; 8],
                            parent_span_id: vec![1; 8],
                            status: None,
                            ..span
                        },
                    ],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
    }

    fn sampler(yaml: &str) -> Sampler {
        let mut config: SamplingConfig = serde_yaml::from_str(yaml).expect("valid yaml");
        config.enabled = true;
        Sampler::from_config(&config)
            .expect("valid config")
            .expect("enabled")
    }

    fn decide(sampler: &Sampler, trace_id: TraceId, trace: &Trace) -> Decision {
        sampler.decide("t", &trace_id, trace, &Evaluator::default())
    }

    fn keep(reason: SampleReason) -> Decision {
        Decision { keep: true, reason }
    }

    fn dropped(reason: SampleReason) -> Decision {
        Decision {
            keep: false,
            reason,
        }
    }

    #[test]
    fn ratio_follows_the_low_half_of_the_trace_id() {
        assert!(!ratio_keeps(ratio_threshold(0.0), &id(0)));
        assert!(ratio_keeps(ratio_threshold(1.0), &id(u64::MAX)));
        assert!(ratio_keeps(ratio_threshold(0.5), &id_at(0.49)));
        assert!(!ratio_keeps(ratio_threshold(0.5), &id_at(0.51)));
        // The high half plays no part.
        let mut high = id_at(0.49);
        high.0[0] = 0xff;
        assert!(ratio_keeps(ratio_threshold(0.5), &high));
        // About the ratio over many IDs.
        let kept = (0..10_000u64)
            .filter(|index| {
                let spread = index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                ratio_keeps(ratio_threshold(0.25), &id(spread))
            })
            .count();
        assert!((2_300..2_700).contains(&kept), "{kept}");
    }

    #[test]
    fn precedence_is_rule_then_error_then_latency_then_baseline() {
        let sampler = sampler(
            "baseline_ratio: 0.0\nlatency_threshold: 2s\nrules:\n  - query: '{ span.http.route = \"/health\" }'\n    ratio: 0.0\n  - query: '{ resource.service.name = \"shop\" && span.http.route = \"/pay\" }'\n    ratio: 1.0\n",
        );
        // A failing, slow health check is still dropped: the rule decides first.
        assert_eq!(
            decide(&sampler, id(1), &trace("/health", true, 5000)),
            dropped(SampleReason::Rule)
        );
        assert_eq!(
            decide(&sampler, id_at(0.9), &trace("/pay", false, 1)),
            keep(SampleReason::Rule)
        );
        assert_eq!(
            decide(&sampler, id(3), &trace("/cart", true, 5000)),
            keep(SampleReason::Error)
        );
        assert_eq!(
            decide(&sampler, id(4), &trace("/cart", false, 2000)),
            keep(SampleReason::Latency)
        );
        assert_eq!(
            decide(&sampler, id(5), &trace("/cart", false, 1999)),
            dropped(SampleReason::Baseline)
        );
    }

    #[test]
    fn errors_and_latency_can_be_turned_off() {
        let sampler = sampler("keep_errors: false\nbaseline_ratio: 0.0\n");
        assert_eq!(
            decide(&sampler, id(1), &trace("/a", true, 60_000)),
            dropped(SampleReason::Baseline)
        );
        let everything = sampler_with_defaults();
        assert_eq!(
            decide(&everything, id(u64::MAX), &trace("/a", false, 1)),
            keep(SampleReason::Baseline)
        );
    }

    fn sampler_with_defaults() -> Sampler {
        sampler("{}")
    }

    #[test]
    fn a_rule_ratio_keeps_a_deterministic_share() {
        let sampler =
            sampler("rules:\n  - query: '{ span.http.route = \"/a\" }'\n    ratio: 0.5\n");
        let health = trace("/a", false, 1);
        assert_eq!(
            decide(&sampler, id_at(0.2), &health),
            keep(SampleReason::Rule)
        );
        assert_eq!(
            decide(&sampler, id_at(0.8), &health),
            dropped(SampleReason::Rule)
        );
    }

    #[test]
    fn later_pieces_follow_the_remembered_decision() {
        let sampler = sampler("baseline_ratio: 0.0\n");
        let trace_id = id(9);
        assert_eq!(
            decide(&sampler, trace_id, &trace("/a", true, 1)),
            keep(SampleReason::Error)
        );
        // The late piece has no error; the trace stays kept for its first piece's error.
        assert_eq!(
            decide(&sampler, trace_id, &trace("/a", false, 1)),
            keep(SampleReason::Error)
        );
        // Another tenant's trace with the same ID is decided on its own.
        assert_eq!(
            sampler.decide(
                "other",
                &trace_id,
                &trace("/a", false, 1),
                &Evaluator::default()
            ),
            dropped(SampleReason::Baseline)
        );
    }

    #[test]
    fn the_decision_cache_is_bounded_and_evicts_the_least_recently_used() {
        let mut recent = RecentDecisions::new(3);
        let decision = keep(SampleReason::Error);
        for low in 1..=3 {
            recent.insert((0, id(low)), decision);
        }
        // Using 1 makes 2 the least recently used.
        assert!(recent.get(&(0, id(1))).is_some());
        recent.insert((0, id(4)), decision);
        assert_eq!(recent.len(), 3);
        assert!(recent.get(&(0, id(2))).is_none());
        assert!(recent.get(&(0, id(1))).is_some());
        for _ in 0..1000 {
            assert!(recent.get(&(0, id(1))).is_some());
        }
        assert!(recent.order.len() <= 2 * 3 + 16 + 1);
        let mut none = RecentDecisions::new(0);
        none.insert((0, id(1)), decision);
        assert!(none.get(&(0, id(1))).is_none());
    }

    #[test]
    fn batches_are_split_and_counted() {
        let sampler = sampler("baseline_ratio: 0.0\n");
        let traces = vec![
            (id(1), trace("/a", true, 1)),
            (id(2), trace("/a", false, 1)),
        ];
        let (kept, outcome) = sampler.sample_batch("t", traces);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].0, id(1));
        assert_eq!(outcome.dropped, HashSet::from([id(2)]));
        let error = SampleReason::Error.index();
        let baseline = SampleReason::Baseline.index();
        assert_eq!(outcome.stats.traces[0][error], 1);
        assert_eq!(outcome.stats.traces[1][baseline], 1);
        assert_eq!(outcome.stats.spans[1][baseline], 2);
        // Counted only when recorded (after the block write).
        assert_eq!(sampler.stats(), SamplingStats::default());
        sampler.record(&outcome.stats);
        assert_eq!(sampler.stats(), outcome.stats);
    }

    #[test]
    fn bad_configs_name_the_key() {
        let ratio = SamplingConfig {
            baseline_ratio: 1.5,
            ..SamplingConfig::default()
        };
        assert_eq!(
            ratio.validate(),
            Err("sampling.baseline_ratio must be between 0.0 and 1.0, not 1.5".into())
        );
        let nan = SamplingConfig {
            baseline_ratio: f64::NAN,
            ..SamplingConfig::default()
        };
        assert!(nan.validate().is_err());
        let query = SamplingConfig {
            rules: vec![SamplingRule {
                query: "{ span.a = }".into(),
                ratio: 0.0,
            }],
            ..SamplingConfig::default()
        };
        let error = query.validate().unwrap_err();
        assert!(
            error.starts_with("sampling.rules[0].query: invalid TraceQL query"),
            "{error}"
        );
        let metrics = SamplingConfig {
            rules: vec![SamplingRule {
                query: "{} | rate()".into(),
                ratio: 0.0,
            }],
            ..SamplingConfig::default()
        };
        assert!(metrics.validate().is_err());
        assert!(Sampler::from_config(&SamplingConfig::default())
            .unwrap()
            .is_none());
    }
}
