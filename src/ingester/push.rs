//! Why a push to a write-ahead-logged store (the ingester, the log store) was not acknowledged.

use std::io;

/// Which limit refused a push.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverloadReason {
    /// The head budget is used up until blocks are written.
    #[error("max_head_bytes limit of {limit} bytes reached ({in_use} bytes in memory, push needs {needed})")]
    HeadFull {
        limit: u64,
        in_use: u64,
        needed: u64,
    },
    /// The log writer is behind.
    #[error("wal_queue_capacity limit of {capacity} pushes waiting for the wal reached")]
    WalQueueFull { capacity: usize },
}

/// Why a push was not acknowledged. Nothing of a refused push is kept.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// Back-pressure; retrying later can succeed. HTTP 429 / gRPC RESOURCE_EXHAUSTED.
    #[error("ingester overloaded: {reason}")]
    Overloaded { reason: OverloadReason },
    /// The push alone is larger than a limit, so retrying cannot succeed. HTTP 413.
    #[error("push of {bytes} bytes exceeds the {limit_name} limit of {limit} bytes")]
    TooLarge {
        bytes: u64,
        limit_name: &'static str,
        limit: u64,
    },
    /// The log write or fsync failed. HTTP 500 / gRPC INTERNAL.
    #[error("wal write failed: {0}")]
    Wal(#[source] io::Error),
    /// The ingester is stopping. HTTP 503 / gRPC UNAVAILABLE.
    #[error("ingester is shutting down")]
    ShuttingDown,
}

impl PushError {
    /// The HTTP status the API answers with (gRPC: 429 → RESOURCE_EXHAUSTED, 413 →
    /// INVALID_ARGUMENT, 500 → INTERNAL, 503 → UNAVAILABLE).
    pub fn http_status(&self) -> u16 {
        match self {
            PushError::Overloaded { .. } => 429,
            PushError::TooLarge { .. } => 413,
            PushError::Wal(_) => 500,
            PushError::ShuttingDown => 503,
        }
    }
}

impl PushError {
    /// Whether a limit refused the push (it was overloaded or too large), as opposed to a
    /// failed write or a shutdown.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            PushError::Overloaded { .. } | PushError::TooLarge { .. }
        )
    }
}
