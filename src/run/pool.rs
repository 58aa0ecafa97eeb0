//! The memory pool of featurecraft's sessions: one limit for the whole run, most of it
//! open to whichever spilling operator needs it, the rest kept for those that cannot spill.
//!
//! DataFusion's `FairSpillPool` gives each spilling consumer an equal share of the pool,
//! and in DataFusion 55 every output partition of every repartition is such a consumer,
//! though it holds a few batches at most. A point-in-time plan has some thirty of them, so
//! at the default 2 GiB an aggregation was held to about 45 MiB and spilled (at scale L,
//! an as-of source's 134 MB spilled and re-read cost a materialization 15 % of its time)
//! while the pool stood mostly empty. Here an operator that can spill grows while the
//! pool's total stays within [`SPILLABLE_SHARE`] of the limit, and spills past it; one that
//! cannot (a hash join's build side, the held cutoffs) grows up to the whole limit. The
//! limit is the same bound either way: past it the run fails with `E051`.

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::memory_pool::{
    MemoryLimit, MemoryPool, MemoryReservation, human_readable_size,
};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The share of the limit spilling operators may fill together before they spill; the
/// rest is left to the operators that cannot spill.
const SPILLABLE_SHARE: f64 = 0.75;

/// A pool of `limit` bytes (see the module docs).
#[derive(Debug)]
pub struct SharedPool {
    limit: usize,
    spillable_limit: usize,
    used: AtomicUsize,
}

impl SharedPool {
    /// A pool of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        SharedPool {
            limit,
            spillable_limit: (limit as f64 * SPILLABLE_SHARE) as usize,
            used: AtomicUsize::new(0),
        }
    }
}

impl MemoryPool for SharedPool {
    fn name(&self) -> &str {
        "featurecraft"
    }

    fn grow(&self, _reservation: &MemoryReservation, additional: usize) {
        self.used.fetch_add(additional, Ordering::Relaxed);
    }

    fn shrink(&self, _reservation: &MemoryReservation, shrink: usize) {
        self.used.fetch_sub(shrink, Ordering::Relaxed);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let cap = if reservation.consumer().can_spill() {
            self.spillable_limit
        } else {
            self.limit
        };
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(additional).filter(|&total| total <= cap)
            })
            .map(|_| ())
            .map_err(|used| {
                DataFusionError::ResourcesExhausted(format!(
                    "Failed to allocate additional {} for {} with {} already allocated for this reservation - {} remain available for the total memory pool: {self}",
                    human_readable_size(additional),
                    reservation.consumer().name(),
                    human_readable_size(reservation.size()),
                    human_readable_size(cap.saturating_sub(used)),
                ))
            })
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

impl std::fmt::Display for SharedPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}(used: {}, limit: {}, spilling operators up to {})",
            self.name(),
            human_readable_size(self.reserved()),
            human_readable_size(self.limit),
            human_readable_size(self.spillable_limit)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::MemoryConsumer;
    use std::sync::Arc;

    #[test]
    fn spilling_consumers_stop_at_their_share_and_the_others_at_the_limit() {
        let pool: Arc<dyn MemoryPool> = Arc::new(SharedPool::new(1000));
        let spilling = MemoryConsumer::new("aggregate")
            .with_can_spill(true)
            .register(&pool);
        let holding = MemoryConsumer::new("join build").register(&pool);
        // One spilling consumer may take the whole share, not a fraction per consumer.
        spilling.try_grow(750).unwrap();
        let error = spilling.try_grow(1).unwrap_err();
        assert!(
            matches!(error, DataFusionError::ResourcesExhausted(_)),
            "{error}"
        );
        assert!(error.to_string().contains("aggregate"), "{error}");
        // The rest is the others'.
        holding.try_grow(250).unwrap();
        assert!(holding.try_grow(1).is_err());
        assert_eq!(pool.reserved(), 1000);
        // Freed memory is free for both again.
        spilling.shrink(500);
        holding.try_grow(400).unwrap();
        assert!(spilling.try_grow(1).is_err(), "the pool holds 900 > 750");
        drop(holding);
        spilling.try_grow(500).unwrap();
        assert_eq!(pool.reserved(), 750);
    }
}
