//! How far the listener is behind this process' own sends, per partition:
//! the input of the load shedding on the embedded broker.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Next offset produced and next offset handled, per partition.
#[derive(Debug)]
pub(crate) struct LagTracker {
    limit: Option<i64>,
    partitions: Mutex<BTreeMap<i32, (i64, i64)>>,
}

impl LagTracker {
    /// A tracker that refuses admission past `limit` records of lag on any
    /// partition (`None`: never refuses).
    pub(crate) fn new(limit: Option<i64>) -> Self {
        Self {
            limit,
            partitions: Mutex::new(BTreeMap::new()),
        }
    }

    fn update(&self, partition: i32, f: impl FnOnce(&mut (i64, i64))) -> i64 {
        let mut map = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        f(map.entry(partition).or_insert((0, 0)));
        map.values().map(|(p, h)| (p - h).max(0)).sum()
    }

    /// The broker acknowledged a record at `offset` of `partition`.
    pub(crate) fn produced(&self, partition: i32, offset: i64) {
        let total = self.update(partition, |e| e.0 = e.0.max(offset + 1));
        metrics::gauge!("coupon_issue_lag_records").set(total as f64);
    }

    /// The listener finished the record at `offset` of `partition`.
    pub(crate) fn handled(&self, partition: i32, offset: i64) {
        let total = self.update(partition, |e| e.1 = e.1.max(offset + 1));
        metrics::gauge!("coupon_issue_lag_records").set(total as f64);
    }

    /// `Err(lag)` when some partition is more than the limit behind.
    pub(crate) fn admit(&self) -> Result<(), i64> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let map = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        let worst = map.values().map(|(p, h)| p - h).max().unwrap_or(0);
        if worst > limit {
            Err(worst)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheds_past_the_limit_and_recovers() {
        let lag = LagTracker::new(Some(2));
        for o in 0..4 {
            lag.produced(1, o);
        }
        assert_eq!(lag.admit(), Err(4));
        lag.handled(1, 1);
        assert_eq!(lag.admit(), Ok(()));
        assert_eq!(LagTracker::new(None).admit(), Ok(()));
    }
}
