//! A small least-recently-used cache bounded by the bytes of its values, for bloom shards and
//! Parquet footers: both are immutable once written, so entries never need invalidating,
//! only evicting.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use parking_lot::Mutex;

/// A thread-safe LRU cache holding at most `capacity_bytes` of values.
pub struct ByteLru<K, V> {
    inner: Mutex<Inner<K, V>>,
    capacity_bytes: usize,
}

struct Inner<K, V> {
    entries: HashMap<K, Entry<V>>,
    /// Last-use tick → key; the first entry is the least recently used.
    recency: BTreeMap<u64, K>,
    next_tick: u64,
    used_bytes: usize,
}

struct Entry<V> {
    value: V,
    size: usize,
    tick: u64,
}

impl<K: Clone + Eq + Hash, V: Clone> ByteLru<K, V> {
    /// An empty cache; a capacity of 0 disables caching.
    pub fn new(capacity_bytes: usize) -> ByteLru<K, V> {
        ByteLru {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                recency: BTreeMap::new(),
                next_tick: 0,
                used_bytes: 0,
            }),
            capacity_bytes,
        }
    }

    /// The cached value, marking it most recently used.
    pub fn get(&self, key: &K) -> Option<V> {
        let mut inner = self.inner.lock();
        let tick = inner.next_tick;
        inner.next_tick += 1;
        let entry = inner.entries.get_mut(key)?;
        let previous_tick = std::mem::replace(&mut entry.tick, tick);
        let value = entry.value.clone();
        inner.recency.remove(&previous_tick);
        inner.recency.insert(tick, key.clone());
        Some(value)
    }

    /// Stores a value of `size` bytes, evicting the least recently used entries to make room.
    /// Values larger than the whole cache are not stored.
    pub fn insert(&self, key: K, value: V, size: usize) {
        if size > self.capacity_bytes {
            return;
        }
        let mut inner = self.inner.lock();
        let tick = inner.next_tick;
        inner.next_tick += 1;
        if let Some(previous) = inner.entries.remove(&key) {
            inner.recency.remove(&previous.tick);
            inner.used_bytes -= previous.size;
        }
        while inner.used_bytes + size > self.capacity_bytes {
            let Some((_, oldest_key)) = inner.recency.pop_first() else {
                break;
            };
            if let Some(evicted) = inner.entries.remove(&oldest_key) {
                inner.used_bytes -= evicted.size;
            }
        }
        inner.recency.insert(tick, key.clone());
        inner.entries.insert(key, Entry { value, size, tick });
        inner.used_bytes += size;
    }

    /// Drops every entry whose key matches, e.g. all shards of a block that is gone.
    pub fn remove_where(&self, mut matches: impl FnMut(&K) -> bool) {
        let mut inner = self.inner.lock();
        let doomed: Vec<K> = inner
            .entries
            .keys()
            .filter(|key| matches(key))
            .cloned()
            .collect();
        for key in doomed {
            if let Some(entry) = inner.entries.remove(&key) {
                inner.recency.remove(&entry.tick);
                inner.used_bytes -= entry.size;
            }
        }
    }

    /// Bytes currently held.
    pub fn used_bytes(&self) -> usize {
        self.inner.lock().used_bytes
    }

    /// Entries currently held.
    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_within_the_byte_bound() {
        let cache: ByteLru<u32, &str> = ByteLru::new(10);
        cache.insert(1, "one", 4);
        cache.insert(2, "two", 4);
        assert_eq!(cache.get(&1), Some("one"));
        cache.insert(3, "three", 4);
        assert_eq!(cache.get(&2), None, "2 was least recently used");
        assert_eq!(cache.get(&1), Some("one"));
        assert_eq!(cache.get(&3), Some("three"));
        assert_eq!(cache.used_bytes(), 8);
        cache.insert(4, "huge", 11);
        assert_eq!(cache.get(&4), None);
        cache.insert(1, "uno", 2);
        assert_eq!(cache.used_bytes(), 6);
        cache.remove_where(|key| *key == 3);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&1), Some("uno"));
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let cache: ByteLru<u32, u32> = ByteLru::new(0);
        cache.insert(1, 1, 1);
        assert!(cache.is_empty());
    }
}
