//! UUIDv7 identifiers (request ids, issuance and event ids, chain ids) from a userspace
//! random generator seeded by the operating system once per thread, not a `getrandom`
//! system call per id.
//!
//! The uuid crate's own generator asks the kernel for fresh bytes for every id (and its
//! `ContextV7` once more whenever the millisecond changes): three `getrandom` calls per
//! cached issuance (`strace -f -c`, bench/README *Per-request work*). Here the random bits
//! come from rand's thread-local `ThreadRng` (ChaCha12, reseeded from the OS as rand
//! decides), and [`monotonic`] keeps its own counter, as `ContextV7` did.

use std::sync::Mutex;
use std::time::SystemTime;

use rand::Rng as _;
use uuid::{Builder, Uuid};

/// Bits of a UUIDv7 that are neither timestamp, version nor variant: 12 of `rand_a` and
/// 62 of `rand_b`.
const PAYLOAD_BITS: u32 = 74;
const RAND_B_BITS: u32 = 62;

/// The last millisecond handed out and the counter within it.
struct Last {
    millis: u64,
    counter: u128,
}

static LAST: Mutex<Last> = Mutex::new(Last {
    millis: 0,
    counter: 0,
});

fn unix_millis(now: SystemTime) -> u64 {
    let d = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    d.as_secs()
        .saturating_mul(1000)
        .saturating_add(u64::from(d.subsec_millis()))
}

/// A UUIDv7 for `payload` (its low [`PAYLOAD_BITS`] bits) at `millis`: the payload's top
/// 12 bits go to `rand_a`, the rest to `rand_b`, around the variant bits, so a greater
/// payload in the same millisecond gives a greater id.
fn v7(millis: u64, payload: u128) -> Uuid {
    let low = payload & ((1u128 << RAND_B_BITS) - 1);
    let high = (payload >> RAND_B_BITS) & 0xfff;
    // 80 bits for `Builder`: [version 4][rand_a 12][variant 2][rand_b 62]; the version and
    // variant bits are overwritten by it.
    let bits = (high << 64) | low;
    let bytes = bits.to_be_bytes();
    let mut ten = [0u8; 10];
    if let Some(b) = bytes.get(6..) {
        ten.copy_from_slice(b);
    }
    Builder::from_unix_timestamp_millis(millis, &ten).into_uuid()
}

/// A random UUIDv7 at `now`, with no ordering promise within a millisecond: request ids.
pub fn random(now: SystemTime) -> Uuid {
    v7(unix_millis(now), rand::rng().random::<u128>())
}

/// A UUIDv7 at `now` (or just after the last one, if the clock stepped back): later calls
/// in this process give strictly greater ids, also within one millisecond, so ids order
/// events. Within a millisecond the 74-bit payload counts up from a random start below
/// 2^73 (room for 2^73 ids per millisecond); if it ever ran out, the next millisecond is
/// borrowed.
pub fn monotonic(now: SystemTime) -> Uuid {
    let millis = unix_millis(now);
    let fresh = || rand::rng().random::<u128>() & ((1u128 << (PAYLOAD_BITS - 1)) - 1);
    let mut last = LAST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if millis > last.millis {
        last.millis = millis;
        last.counter = fresh();
    } else {
        last.counter += 1;
        if last.counter >> PAYLOAD_BITS != 0 {
            last.millis += 1;
            last.counter = fresh();
        }
    }
    v7(last.millis, last.counter)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use super::*;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn ids_are_version_7_with_the_timestamp_of_now() {
        let now = at(1_764_000_000_123);
        for id in [random(now), monotonic(now)] {
            assert_eq!(id.get_version_num(), 7);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            let (secs, nanos) = id.get_timestamp().unwrap().to_unix();
            assert!(secs * 1000 + u64::from(nanos) / 1_000_000 >= 1_764_000_000_123);
        }
        let (secs, nanos) = random(now).get_timestamp().unwrap().to_unix();
        assert_eq!((secs, nanos), (1_764_000_000, 123_000_000));
    }

    #[test]
    fn random_ids_differ() {
        let now = at(1_764_000_000_000);
        let ids: HashSet<Uuid> = (0..10_000).map(|_| random(now)).collect();
        assert_eq!(ids.len(), 10_000);
    }

    #[test]
    fn monotonic_ids_increase_within_a_millisecond_and_when_the_clock_steps_back() {
        let mut prev = monotonic(at(1_900_000_000_000));
        for ms in [
            1_900_000_000_000,
            1_900_000_000_000,
            1_800_000_000_000,
            1_900_000_000_001,
        ] {
            for _ in 0..1000 {
                let id = monotonic(at(ms));
                assert!(id > prev, "{id} after {prev}");
                prev = id;
            }
        }
    }

    #[test]
    fn the_counter_carries_into_the_next_millisecond_when_it_runs_out() {
        let a = v7(5, (1u128 << PAYLOAD_BITS) - 1);
        let b = v7(6, 0);
        assert!(a < b);
        // The payload's order is the ids' order, around the variant bits.
        assert!(v7(5, 1u128 << RAND_B_BITS) > v7(5, (1u128 << RAND_B_BITS) - 1));
    }

    #[test]
    fn monotonic_ids_are_unique_and_ordered_per_thread_under_concurrency() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(move || {
                    let ids: Vec<Uuid> = (0..5_000).map(|_| monotonic(now)).collect();
                    assert!(ids.windows(2).all(|w| w[0] < w[1]));
                    ids
                })
            })
            .collect();
        let mut all = HashSet::new();
        for t in threads {
            for id in t.join().unwrap() {
                assert!(all.insert(id), "duplicate {id}");
            }
        }
        assert_eq!(all.len(), 40_000);
    }
}
