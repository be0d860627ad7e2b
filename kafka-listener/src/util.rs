//! Small helpers every layer uses: the wall clock in milliseconds, a lock
//! that survives a panicked holder, a fast hasher and the boxed future type.
//!
//! Base layer: imports nothing from the crate.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// A boxed, `Send` future: what erased handlers, extractors and recoverers
/// return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Milliseconds since the Unix epoch (Kafka's timestamp unit); 0 for a clock
/// before 1970.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Locks `mutex`, taking the data over from a holder that panicked: every
/// structure the crate guards stays consistent between statements, so a
/// poisoned lock carries no torn state.
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A map looked up on the hot path, keyed by values that come from the
/// broker or the program (topic names, partition numbers, `TypeId`s), not
/// from an attacker: a fast hash (FxHash, as in rustc) fits better than the
/// default DoS-resistant SipHash.
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// FxHash: rotate, xor, multiply per 64-bit word.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let mut rest = [0u8; 8];
        let tail = chunks.remainder();
        rest[..tail.len()].copy_from_slice(tail);
        self.add(u64::from_le_bytes(rest) ^ ((tail.len() as u64) << 56));
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_i32(&mut self, i: i32) {
        self.add(u64::from(i as u32));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The broker's metadata as `(topic, partition count)`: of `topic`, or of
/// every topic with `None`. `None` when the broker does not answer within
/// `timeout`; a topic the broker reports with an error (unknown, not
/// authorized) or without partitions is left out. Blocks: call it from a
/// blocking thread.
pub(crate) fn partition_counts<C: rdkafka::ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: Option<&str>,
    timeout: std::time::Duration,
) -> Option<Vec<(String, i32)>> {
    let md = client.fetch_metadata(topic, timeout).ok()?;
    Some(
        md.topics()
            .iter()
            .filter(|t| t.error().is_none() && !t.partitions().is_empty())
            .map(|t| (t.name().to_owned(), t.partitions().len() as i32))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn fx_hash_tells_apart_neighbouring_keys() {
        let build = BuildHasherDefault::<FxHasher>::default();
        let a = build.hash_one(("orders", 0i32));
        let b = build.hash_one(("orders", 1i32));
        let c = build.hash_one(("order", 0i32));
        assert_ne!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn a_poisoned_lock_still_opens() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            panic!("poison");
        })
        .join();
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 2);
    }
}
