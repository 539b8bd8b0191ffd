//! Feeding the store 10 million distinct keys does not grow memory without bound: idle keys
//! are swept, and the cap holds when they are not idle. A counting allocator measures the
//! heap each test's thread holds (the store is used from that thread only), so tests running
//! side by side do not see each other's memory.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use tollgate_core::{Algorithm, FakeClock, Limit};
use tollgate_memory::{MemoryStore, WhenFull};

struct Counting;

thread_local! {
    // `const` and `Cell`: no lazy initialisation and no destructor, so safe to touch from
    // inside the allocator.
    static IN_USE: Cell<isize> = const { Cell::new(0) };
}

fn add(bytes: usize) {
    IN_USE.with(|c| c.set(c.get() + bytes as isize));
}

fn sub(bytes: usize) {
    IN_USE.with(|c| c.set(c.get() - bytes as isize));
}

/// Bytes allocated by this thread and not yet freed (frees of others' memory count against it,
/// which only makes the bound harder to meet).
fn in_use() -> isize {
    IN_USE.with(Cell::get)
}

#[allow(unsafe_code)] // a global allocator can only be written with unsafe
// SAFETY: forwards to the system allocator unchanged, only counting bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size());
        // SAFETY: same layout as asked.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        sub(layout.size());
        // SAFETY: the pointer came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size);
        sub(layout.size());
        // SAFETY: as `realloc` requires, forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const KEYS: u64 = 10_000_000;

#[test]
fn ten_million_keys_with_idle_sweeping_stay_bounded() {
    let clock = FakeClock::at_millis(1_700_000_000_000);
    // No cap: only sweeping of idle keys keeps memory down.
    let store = MemoryStore::builder()
        .clock(clock.clone())
        .max_keys(usize::MAX)
        .build();
    let limit = Limit::new("10/s".parse().expect("rate"), Algorithm::Gcra, None).expect("limit");
    let baseline = in_use();
    let mut peak: isize = 0;
    let mut key = String::with_capacity(32);
    for i in 0..KEYS {
        key.clear();
        use std::fmt::Write;
        let _ = write!(key, "client:{i}");
        store.check(&key, &limit, 1).expect("never full");
        // 1 µs between keys: a key used once is idle 100 ms later, so ~100k are live.
        clock.advance(Duration::from_micros(1));
        if i % 65_536 == 0 {
            peak = peak.max(in_use() - baseline);
        }
    }
    let tracked = store.len();
    eprintln!(
        "idle sweeping: peak heap {} KiB, {tracked} keys tracked at the end",
        peak >> 10
    );
    assert!(tracked < 400_000, "{tracked} keys still tracked");
    // ~100k live keys at ~70 bytes each, tables at most 4× oversized after doubling: well
    // under 64 MiB, where 10M keys kept would take over 600 MiB.
    assert!(peak < 64 << 20, "peak heap {} MiB", peak >> 20);
    clock.advance(Duration::from_secs(1));
    store.sweep();
    assert!(store.is_empty());
    let after = in_use() - baseline;
    assert!(
        after < 4 << 20,
        "{} KiB still held after every key went idle",
        after >> 10
    );
}

#[test]
fn ten_million_busy_keys_respect_the_cap() {
    let clock = FakeClock::at_millis(1_700_000_000_000);
    let cap = 50_000;
    let store = MemoryStore::builder()
        .clock(clock.clone())
        .max_keys(cap)
        .when_full(WhenFull::EvictNearestIdle)
        .build();
    // 1 per hour: no key goes idle during the test, so only the cap bounds memory.
    let limit = Limit::new("1/h".parse().expect("rate"), Algorithm::Gcra, None).expect("limit");
    let baseline = in_use();
    let mut peak: isize = 0;
    let mut key = String::with_capacity(32);
    for i in 0..KEYS {
        key.clear();
        use std::fmt::Write;
        let _ = write!(key, "client:{i}");
        assert!(store.check(&key, &limit, 1).expect("evicts").allowed);
        if i % 65_536 == 0 {
            peak = peak.max(in_use() - baseline);
        }
    }
    eprintln!(
        "cap {}: peak heap {} KiB, {} keys tracked",
        store.max_keys(),
        peak >> 10,
        store.len()
    );
    assert!(store.len() <= store.max_keys());
    assert!(store.max_keys() < cap + 1024);
    assert!(peak < 32 << 20, "peak heap {} MiB", peak >> 20);
}
