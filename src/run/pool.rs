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
//! limit is the same bound either way: past it the run fails with `E051`. A repartition's
//! batches in flight are the exception: always granted, and counted (see
//! [`is_repartition`]).
//!
//! A spilling operator needs some memory of its own to go on, though. An aggregation
//! refused the room for one batch's groups spills what it holds, and if that was less than
//! it asked for, the run ends (seen: one holding 2.2 MB refused 12.3 MB at L under a 700 MB
//! limit the others had filled). And some refusals end the run whatever it holds (seen: a
//! final aggregation's partition holding 164 KB refused 76 KB in a 3 MB pool its siblings
//! had filled, a grouping DataFusion's fair pool finishes). So a spilling operator within
//! its equal share of the spillable part (what the fair pool would give it) may grow past
//! that part, up to the limit, when it asks for more than it holds or when the others,
//! over their shares, keep it from its own; otherwise it stops at the spillable part as
//! before, and spills ([`SharedPool::passes_spillable_part`]).

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation, human_readable_size,
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
    /// Bytes held by every consumer.
    used: AtomicUsize,
    /// Bytes held by spilling operators, and how many are registered (a repartition's
    /// consumers are neither: see [`is_spilling_operator`]).
    spilling_used: AtomicUsize,
    spilling: AtomicUsize,
}

impl SharedPool {
    /// A pool of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        SharedPool {
            limit,
            spillable_limit: (limit as f64 * SPILLABLE_SHARE) as usize,
            used: AtomicUsize::new(0),
            spilling_used: AtomicUsize::new(0),
            spilling: AtomicUsize::new(0),
        }
    }

    /// Whether a spilling operator holding `own` bytes may grow by `additional` past the
    /// spillable part, up to the limit: if it stays within its equal share of that part,
    /// and either spilling what it holds could not make the room it asks for or the other
    /// spilling operators, over their shares together, keep it from its own.
    fn passes_spillable_part(&self, own: usize, additional: usize) -> bool {
        let share = self.spillable_limit / self.spilling.load(Ordering::Relaxed).max(1);
        let others = self
            .spilling_used
            .load(Ordering::Relaxed)
            .saturating_sub(own);
        own.saturating_add(additional) <= share
            && (own < additional || others > self.spillable_limit - share)
    }
}

impl MemoryPool for SharedPool {
    fn name(&self) -> &str {
        "featurecraft"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        if is_spilling_operator(consumer) {
            self.spilling.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        if is_spilling_operator(consumer) {
            let _ = self
                .spilling
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.used.fetch_add(additional, Ordering::Relaxed);
        if is_spilling_operator(reservation.consumer()) {
            self.spilling_used.fetch_add(additional, Ordering::Relaxed);
        }
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.used.fetch_sub(shrink, Ordering::Relaxed);
        if is_spilling_operator(reservation.consumer()) {
            self.spilling_used.fetch_sub(shrink, Ordering::Relaxed);
        }
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        if is_repartition(reservation.consumer()) {
            self.grow(reservation, additional);
            return Ok(());
        }
        let can_spill = reservation.consumer().can_spill();
        let cap = if can_spill && !self.passes_spillable_part(reservation.size(), additional) {
            self.spillable_limit
        } else {
            self.limit
        };
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(additional).filter(|&total| total <= cap)
            })
            .map(|_| {
                if can_spill {
                    self.spilling_used.fetch_add(additional, Ordering::Relaxed);
                }
            })
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

/// Whether `reservation` holds a repartition's batches in flight, which are always granted
/// (and counted, so that the other operators spill or stop sooner).
///
/// Refused, DataFusion 55's `RepartitionExec` writes the batch to its spill pool instead,
/// and that pool can stop the query for good: a reader waits on the older of two open
/// spill files while the batch it needs is in the newer one, and every task parks
/// (apache/datafusion#24883, fixed after 55). Seen at scale L: the point-in-time bench
/// recipe under a 600 MB limit hung, CPU idle, in 5 runs of 12. Should DataFusion rename
/// the consumer, `a_repartition_short_of_memory_does_not_stop_the_query` hangs and fails.
fn is_repartition(consumer: &MemoryConsumer) -> bool {
    consumer.name().starts_with(REPARTITION_CONSUMER)
}

/// Whether `consumer` is an operator that spills past its share (an aggregation, a sort):
/// a repartition's consumers say they can spill, but they are always granted instead.
fn is_spilling_operator(consumer: &MemoryConsumer) -> bool {
    consumer.can_spill() && !is_repartition(consumer)
}

/// The name DataFusion's `RepartitionExec` gives its reservations, before `[partition]`.
const REPARTITION_CONSUMER: &str = "RepartitionExec[";

/// Makes room in `values` for `additional` more, first growing `reservation` by what the
/// larger capacity adds (at least doubling it), so memory featurecraft holds beside
/// DataFusion's operators (hashes of every spine row, say) counts against the same limit.
/// Refused, `values` is left as it was and the pool's `ResourcesExhausted` returned.
pub(crate) fn reserve_in_pool<T>(
    values: &mut Vec<T>,
    additional: usize,
    reservation: &MemoryReservation,
) -> Result<()> {
    let needed = values.len().saturating_add(additional);
    if needed > values.capacity() {
        let capacity = needed.max(values.capacity().saturating_mul(2));
        let more = (capacity - values.capacity()).saturating_mul(size_of::<T>());
        reservation.try_grow(more)?;
        values.reserve_exact(capacity - values.len());
        // The allocator may give more than asked: that counts too.
        reservation.grow((values.capacity() - capacity).saturating_mul(size_of::<T>()));
    }
    Ok(())
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
        // A repartition's batches in flight are granted past the limit, and counted.
        let repartition = MemoryConsumer::new("RepartitionExec[1]")
            .with_can_spill(true)
            .register(&pool);
        repartition.try_grow(400).unwrap();
        assert_eq!(pool.reserved(), 1150);
        assert!(spilling.try_grow(1).is_err());
        drop(repartition);
        assert_eq!(pool.reserved(), 750);
    }

    #[test]
    fn a_spilling_consumer_within_its_share_passes_the_spillable_part_when_it_must() {
        let pool: Arc<dyn MemoryPool> = Arc::new(SharedPool::new(1000));
        let spilling = |name: &str| {
            MemoryConsumer::new(name)
                .with_can_spill(true)
                .register(&pool)
        };
        let (first, second) = (spilling("aggregate[0]"), spilling("aggregate[1]"));
        // Repartitions are not spilling operators: they do not shrink the shares (375).
        let repartition = spilling("RepartitionExec[0]");
        repartition.try_grow(10).unwrap();
        let holding = MemoryConsumer::new("join build").register(&pool);
        holding.try_grow(740).unwrap();
        // The spillable part (750) is full. Asking more than it holds, within its share,
        // the second may pass it; asking less, it can spill to make the room.
        second.try_grow(100).unwrap();
        assert!(second.try_grow(50).is_err());
        assert!(
            second.try_grow(200).is_err(),
            "the limit: 850 + 200 > 1 000"
        );
        second.try_grow(150).unwrap();
        assert_eq!(pool.reserved(), 1000);

        // Spilling operators over their shares keep a third from its own (250 of three):
        // it passes the spillable part even asking less than it holds.
        holding.shrink(740);
        first.try_grow(490).unwrap();
        let third = spilling("aggregate[2]");
        third.try_grow(20).unwrap();
        third.try_grow(10).unwrap();
        assert_eq!(pool.reserved(), 780);
        // Past its share, a spilling consumer stops at the spillable part.
        assert!(second.try_grow(1).is_err(), "250 + 1 > 250");
        // Without others over their shares, so does one within its share.
        first.shrink(490);
        holding.try_grow(460).unwrap();
        assert!(third.try_grow(10).is_err(), "750 + 10 > 750");
    }

    #[test]
    fn vectors_grow_within_what_the_pool_grants() {
        let pool: Arc<dyn MemoryPool> = Arc::new(SharedPool::new(1000));
        let reservation = MemoryConsumer::new("hashes").register(&pool);
        let mut values: Vec<u64> = Vec::new();
        reserve_in_pool(&mut values, 10, &reservation).unwrap();
        assert!(values.capacity() >= 10);
        assert_eq!(reservation.size(), 80);
        values.extend(0..10);
        // Growth at least doubles: 20 slots, 80 bytes more.
        reserve_in_pool(&mut values, 1, &reservation).unwrap();
        assert_eq!(reservation.size(), 160);
        values.extend(10..20);
        reserve_in_pool(&mut values, 0, &reservation).unwrap();
        assert_eq!(reservation.size(), 160, "no growth without need");
        // 40 slots would pass the limit with another vector's 700 bytes held.
        let other = MemoryConsumer::new("other").register(&pool);
        other.try_grow(700).unwrap();
        let error = reserve_in_pool(&mut values, 1, &reservation).unwrap_err();
        assert!(
            matches!(error, DataFusionError::ResourcesExhausted(_)),
            "{error}"
        );
        assert_eq!(values.len(), 20);
        assert_eq!(reservation.size(), 160, "a refusal reserves nothing");
    }

    /// A grouping on two partitions under a limit that makes its repartition run short,
    /// DataFusion's own plan and functions: each attempt ends, with rows or `E051`'s error.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_repartition_short_of_memory_does_not_stop_the_query() {
        use datafusion::execution::runtime_env::RuntimeEnvBuilder;
        use datafusion::prelude::{SessionConfig, SessionContext};
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(SharedPool::new(2 << 20)))
            .build_arc()
            .unwrap();
        let config = SessionConfig::new()
            .with_target_partitions(2)
            .with_batch_size(64);
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        ctx.sql(
            "CREATE TABLE t AS SELECT v % 13 AS g, md5(CAST(v % 337 AS VARCHAR)) AS trace_id \
             FROM generate_series(1, 40000) AS s(v)",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
        let mut finished = 0;
        for attempt in 0..12 {
            let run = async {
                ctx.sql("SELECT g, COUNT(DISTINCT trace_id) AS n FROM t GROUP BY g")
                    .await?
                    .collect()
                    .await
            };
            match tokio::time::timeout(std::time::Duration::from_secs(20), run).await {
                Ok(Ok(batches)) => {
                    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
                    assert_eq!(rows, 13, "attempt {attempt}");
                    finished += 1;
                }
                Ok(Err(error)) => assert!(
                    matches!(error.find_root(), DataFusionError::ResourcesExhausted(_)),
                    "attempt {attempt}: {error}"
                ),
                Err(_) => panic!("attempt {attempt} stopped for good (20 s without an end)"),
            }
        }
        eprintln!("{finished} of 12 attempts gave rows");
    }
}
