//! The querier: answers reads over the ingester's memory (live traces, WAL-replayed data and
//! blocks being flushed) and the blocks in the store, and merges a trace split across them.
//!
//! This file only declares and re-exports. The scan machinery every read shares lives in
//! `scan` (the [`Querier`], read plans, head and block scans) and `batch` (what a scan hands
//! its visitor); each read is a child of its own on top of them: `trace_by_id`, `search`,
//! `metrics` and `tags`. None of them imports this file, so they form no circle with it.

mod batch;
mod metrics;
mod scan;
mod search;
mod tags;
mod trace_by_id;

pub use scan::{Querier, QuerierError};
pub use search::{SearchOutcome, SearchProgress};
pub use tags::{TagNamesOutcome, TagValuesOutcome};
pub use trace_by_id::TraceLookup;

#[cfg(test)]
mod head_tests;
