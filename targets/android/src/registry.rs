//! The handle table: what a `long` handle held by a Java object means.
//!
//! A handle is an opaque id, never a pointer. Ids come from one process-wide counter that
//! starts at 1 and is never reset, so an id is issued once and never reused (the limiting
//! case of a generation counter: 2^63 handles would have to be created before a wrap).
//! Each kind of object has its own table, so:
//!
//! - a closed handle, a forged number, `0`, or a model handle passed where a session is
//!   expected are all a table miss, reported as `IllegalStateException`, never undefined
//!   behaviour;
//! - `close` removes the entry, so it succeeds exactly once; a second `close` is a miss;
//! - the table stores an `Arc`: an operation running on another thread when `close` is
//!   called keeps its own reference, and the native memory is freed when the last of
//!   them ends (after `close` and any call that was already running).
//!
//! The lock is held only to look up, insert or remove; it is never held across model work
//! or a call into Java, so one object's long `generate` never blocks another object.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::error::{BridgeError, Kind};

/// The next handle to issue, shared by every table (so the kinds never share an id).
static NEXT_HANDLE: AtomicI64 = AtomicI64::new(1);

/// Objects of one kind, by handle.
pub struct Registry<T> {
    /// The Java class name, for messages ("RwkvSession is closed").
    name: &'static str,
    entries: Mutex<BTreeMap<i64, Arc<T>>>,
}

impl<T> Registry<T> {
    /// An empty table for objects the Java side calls `name`.
    pub const fn new(name: &'static str) -> Self {
        Registry { name, entries: Mutex::new(BTreeMap::new()) }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<i64, Arc<T>>> {
        // Nothing panics while the lock is held (map operations and `Arc` clones only), so a
        // poisoned lock still guards a consistent map.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn closed(&self, handle: i64) -> BridgeError {
        BridgeError::new(
            Kind::IllegalState,
            if handle == 0 {
                format!("{} handle is 0 (never opened)", self.name)
            } else {
                format!("{} is closed (or the handle {handle} is not a live {})", self.name, self.name)
            },
        )
    }

    /// Stores `value` and returns its new handle (never 0, never issued before).
    pub fn insert(&self, value: T) -> i64 {
        let value = Arc::new(value);
        let handle = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(handle, value);
        handle
    }

    /// The object behind `handle`, or `IllegalStateException` if it is closed or invalid.
    pub fn get(&self, handle: i64) -> Result<Arc<T>, BridgeError> {
        self.lock().get(&handle).cloned().ok_or_else(|| self.closed(handle))
    }

    /// Removes `handle` and returns its object (the caller drops it, outside the lock), or
    /// `IllegalStateException` if it was already closed or never valid.
    pub fn remove(&self, handle: i64) -> Result<Arc<T>, BridgeError> {
        let removed = self.lock().remove(&handle);
        removed.ok_or_else(|| self.closed(handle))
    }

    /// How many objects are open.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no object is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dropped(Arc<std::sync::atomic::AtomicUsize>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn close_succeeds_once_and_frees_once() {
        static TABLE: Registry<Dropped> = Registry::new("Thing");
        let drops = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let h = TABLE.insert(Dropped(drops.clone()));
        assert_ne!(h, 0);
        assert!(TABLE.get(h).is_ok());
        drop(TABLE.remove(h).expect("first close"));
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        let again = TABLE.remove(h).err().expect("second close fails");
        assert_eq!(again.exception().0, Kind::IllegalState);
        assert!(again.to_string().contains("Thing is closed"), "{again}");
        assert!(TABLE.get(h).is_err(), "use after close fails");
        assert_eq!(drops.load(Ordering::SeqCst), 1, "never freed twice");
    }

    #[test]
    fn a_running_call_keeps_the_object_alive_past_close() {
        static TABLE: Registry<Dropped> = Registry::new("Thing");
        let drops = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let h = TABLE.insert(Dropped(drops.clone()));
        let in_use = TABLE.get(h).unwrap();
        drop(TABLE.remove(h).unwrap());
        assert_eq!(drops.load(Ordering::SeqCst), 0, "still in use");
        drop(in_use);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn handles_are_never_reused_or_shared_between_kinds() {
        static A: Registry<u8> = Registry::new("A");
        static B: Registry<u8> = Registry::new("B");
        let a = A.insert(1);
        A.remove(a).unwrap();
        let b = B.insert(2);
        let a2 = A.insert(3);
        assert!(a != a2 && a != b && a2 != b);
        assert!(A.get(b).is_err(), "a B handle is not an A");
        assert!(B.get(a2).is_err(), "an A handle is not a B");
        assert!(A.get(0).is_err() && A.get(-1).is_err() && A.get(i64::MAX).is_err());
        assert!(A.get(0).err().unwrap().to_string().contains("never opened"));
    }

    #[test]
    fn concurrent_close_frees_exactly_once() {
        static TABLE: Registry<Dropped> = Registry::new("Thing");
        for _ in 0..50 {
            let drops = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let h = TABLE.insert(Dropped(drops.clone()));
            let wins: usize = std::thread::scope(|s| {
                let threads: Vec<_> = (0..4).map(|_| s.spawn(|| usize::from(TABLE.remove(h).is_ok()))).collect();
                threads.into_iter().map(|t| t.join().unwrap()).sum()
            });
            assert_eq!(wins, 1);
            assert_eq!(drops.load(Ordering::SeqCst), 1);
        }
    }
}
