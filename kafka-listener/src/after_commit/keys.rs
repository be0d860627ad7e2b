//! The relay's per-key bookkeeping: rows split into one chain per
//! (topic, key), and the keys whose last send failed, each backing off on
//! its own ([`Blocked`]) while the other keys go on.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::outbox::OutboxRow;
use crate::retry::BackOff;

/// A (topic, key): what order is kept per.
pub(super) type ChainKey = (String, String);

/// Most blocked keys left out of the relay's query; more are read and
/// skipped.
const MAX_EXCLUDED_KEYS: usize = 100;

/// The keys whose last send failed: each waits its own back-off (the
/// relay's [`BackOff`], retry `n` after the `n`th failure in a row) while
/// the other keys go on.
#[derive(Debug, Default)]
pub(super) struct Blocked {
    /// (topic, key) -> (blocked until, failures in a row).
    keys: HashMap<ChainKey, (Instant, u32)>,
}

impl Blocked {
    /// The keys blocked at `now` (at most [`MAX_EXCLUDED_KEYS`]).
    pub(super) fn active(&self, now: Instant) -> Vec<ChainKey> {
        self.keys
            .iter()
            .filter(|(_, (until, _))| *until > now)
            .take(MAX_EXCLUDED_KEYS)
            .map(|(key, _)| key.clone())
            .collect()
    }

    pub(super) fn is_blocked(&self, key: &ChainKey, now: Instant) -> bool {
        self.keys.get(key).is_some_and(|(until, _)| *until > now)
    }

    /// Blocks `key` after a failed send; returns how long.
    pub(super) fn fail(&mut self, key: ChainKey, backoff: &BackOff, now: Instant) -> Duration {
        let failures = self.keys.get(&key).map_or(0, |(_, n)| *n) + 1;
        let delay = backoff.delay(failures);
        self.keys.insert(key, (now + delay, failures));
        delay
    }

    pub(super) fn succeed(&mut self, key: &ChainKey) {
        self.keys.remove(key);
    }

    /// How long until the first blocked key may be tried again.
    pub(super) fn next_retry(&self, now: Instant) -> Option<Duration> {
        self.keys
            .values()
            .map(|(until, _)| until.saturating_duration_since(now))
            .min()
    }
}

/// The (topic, key) of a row.
pub(super) fn chain_key(row: &OutboxRow) -> ChainKey {
    (row.topic.clone(), row.key.clone())
}

/// Splits rows (in id order) into one chain per key, each in id order; the
/// chains are ordered by their first id.
pub(super) fn by_key(rows: Vec<OutboxRow>) -> Vec<Vec<OutboxRow>> {
    let mut index: HashMap<ChainKey, usize> = HashMap::new();
    let mut chains: Vec<Vec<OutboxRow>> = Vec::new();
    for row in rows {
        let slot = *index.entry(chain_key(&row)).or_insert_with(|| {
            chains.push(Vec::new());
            chains.len() - 1
        });
        chains[slot].push(row);
    }
    chains
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, key: &str) -> OutboxRow {
        OutboxRow {
            id,
            event_id: format!("e{id}"),
            event_type: "T".into(),
            topic: "t".into(),
            key: key.into(),
            payload: "{}".into(),
            created_at: 0,
            sent_at: None,
            attempts: 0,
            last_error: None,
            trace: None,
        }
    }

    #[test]
    fn blocked_keys_back_off_on_their_own() {
        let backoff =
            BackOff::exponential(Duration::from_millis(100), 2.0, Duration::from_millis(300));
        let now = Instant::now();
        let mut blocked = Blocked::default();
        let a = ("t".to_owned(), "a".to_owned());
        let ms = Duration::from_millis;
        assert_eq!(blocked.fail(a.clone(), &backoff, now), ms(100));
        assert_eq!(blocked.fail(a.clone(), &backoff, now), ms(200));
        assert_eq!(blocked.fail(a.clone(), &backoff, now), ms(300));
        assert_eq!(blocked.fail(a.clone(), &backoff, now), ms(300));
        assert!(blocked.is_blocked(&a, now));
        assert!(!blocked.is_blocked(&a, now + ms(301)));
        assert_eq!(blocked.active(now), vec![a.clone()]);
        assert_eq!(blocked.next_retry(now), Some(ms(300)));
        blocked.succeed(&a);
        assert_eq!(blocked.next_retry(now), None);
        assert_eq!(blocked.fail(a, &backoff, now), ms(100));
    }

    #[test]
    fn chains_keep_id_order_per_key() {
        let rows = vec![
            row(1, "a"),
            row(2, "b"),
            row(3, "a"),
            row(5, "c"),
            row(7, "b"),
        ];
        let chains: Vec<Vec<i64>> = by_key(rows)
            .into_iter()
            .map(|c| c.into_iter().map(|r| r.id).collect())
            .collect();
        assert_eq!(chains, vec![vec![1, 3], vec![2, 7], vec![5]]);
    }
}
