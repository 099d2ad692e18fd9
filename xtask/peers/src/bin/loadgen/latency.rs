//! Round-trip times of `loadgen run`: one message in flight per connection is timed at a
//! time (a probe), from the moment it became due to the moment its echo was verified, into
//! a histogram of about 3% resolution.
//!
//! Timing one message per round trip rather than every message keeps the cost to one clock
//! read per probe, so the load generator keeps its headroom at 16 in flight (where it does
//! a couple of million echoes a second) while the samples still number tens of thousands
//! per second. The probe is the last message of the batch that became due with it, so it
//! waits behind every message queued before it, as an application's message would.

use std::time::Instant;

/// Values below this are their own bucket (ns); above it, each power of two has
/// `SUB_BUCKETS` buckets.
const LINEAR: u64 = 64;
/// Buckets per power of two above `LINEAR`: a bucket spans 1/32 of its octave, about 3%.
const SUB_BUCKETS: u64 = 32;
const SUB_BITS: u32 = SUB_BUCKETS.trailing_zeros();
/// Octaves from 2^6 ns up to 2^40 ns (18 minutes): longer round trips share the last bucket.
const OCTAVES: u64 = 34;
const BUCKETS: usize = (LINEAR + OCTAVES * SUB_BUCKETS) as usize;

/// Counts of round trips by duration.
#[derive(Clone, Debug)]
pub(crate) struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl Histogram {
    pub(crate) fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
        }
    }

    pub(crate) fn record(&mut self, nanos: u64) {
        self.counts[bucket(nanos)] += 1;
        self.total += 1;
    }

    pub(crate) fn samples(&self) -> u64 {
        self.total
    }

    /// The smallest value (the lower bound of its bucket, ns) at or below which a fraction
    /// `q` of the samples lie; 0 without samples.
    pub(crate) fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return lower_bound(index);
            }
        }
        lower_bound(BUCKETS - 1)
    }
}

fn bucket(nanos: u64) -> usize {
    if nanos < LINEAR {
        return nanos as usize;
    }
    let octave = u64::from(63 - nanos.leading_zeros()) - u64::from(LINEAR.trailing_zeros());
    if octave >= OCTAVES {
        return BUCKETS - 1;
    }
    let sub = (nanos >> (octave + u64::from(LINEAR.trailing_zeros()) - u64::from(SUB_BITS)))
        & (SUB_BUCKETS - 1);
    (LINEAR + octave * SUB_BUCKETS + sub) as usize
}

fn lower_bound(index: usize) -> u64 {
    let index = index as u64;
    if index < LINEAR {
        return index;
    }
    let octave = (index - LINEAR) / SUB_BUCKETS;
    let sub = (index - LINEAR) % SUB_BUCKETS;
    let base = LINEAR << octave;
    base + sub * (base / SUB_BUCKETS)
}

/// One connection's probe: which message is timed and since when.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Probe {
    /// Messages that became due on the connection so far (the first `depth` at the start).
    due: u64,
    /// Echoes verified so far.
    completed: u64,
    /// The timed message (its number among the due ones, from 0) and when it became due.
    timed: Option<(u64, Instant)>,
}

impl Probe {
    /// A connection whose first `depth` messages became due `at`.
    pub(crate) fn start(depth: usize, at: Instant) -> Self {
        Probe {
            due: depth as u64,
            completed: 0,
            timed: Some((depth as u64 - 1, at)),
        }
    }

    /// `done` echoes were verified and as many new messages became due; records the timed
    /// message's round trip into `histogram` (when given) once its echo is among them.
    pub(crate) fn echoed(&mut self, done: usize, histogram: Option<&mut Histogram>) {
        self.completed += done as u64;
        self.due += done as u64;
        let mut now = None;
        if let Some((number, since)) = self.timed
            && self.completed > number
        {
            let at = *now.insert(Instant::now());
            if let Some(histogram) = histogram {
                histogram.record(u64::try_from((at - since).as_nanos()).unwrap_or(u64::MAX));
            }
            self.timed = None;
        }
        if self.timed.is_none() && done > 0 {
            let at = now.unwrap_or_else(Instant::now);
            self.timed = Some((self.due - 1, at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_falls_in_a_bucket_whose_bounds_hold_it() {
        let mut value = 0u64;
        while value < 1 << 42 {
            let index = bucket(value);
            assert!(lower_bound(index) <= value, "{value}");
            if index + 1 < BUCKETS {
                assert!(value < lower_bound(index + 1), "{value}");
                // About 3% resolution above the linear range.
                let width = lower_bound(index + 1) - lower_bound(index);
                assert!(width <= 1.max(value / 16), "{value}: width {width}");
            }
            value = value * 9 / 8 + 1;
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_pick_the_ranked_sample() {
        let mut histogram = Histogram::new();
        assert_eq!(histogram.quantile(0.5), 0);
        for value in 1..=100 {
            histogram.record(value * 1000);
        }
        assert_eq!(histogram.samples(), 100);
        let p50 = histogram.quantile(0.5);
        assert!((48_500..=50_000).contains(&p50), "{p50}");
        let p99 = histogram.quantile(0.99);
        assert!((96_000..=99_000).contains(&p99), "{p99}");
        assert!(histogram.quantile(1.0) >= 97_000);
    }

    #[test]
    fn a_probe_times_the_last_message_of_its_batch_and_then_the_next_batch() {
        let start = Instant::now();
        let mut histogram = Histogram::new();
        let mut probe = Probe::start(4, start);
        // Three of the first four echoed: the timed one (the fourth) is not among them.
        probe.echoed(3, Some(&mut histogram));
        assert_eq!(histogram.samples(), 0);
        // The fourth comes back: one round trip recorded, and the last of the messages that
        // became due now is timed next.
        probe.echoed(1, Some(&mut histogram));
        assert_eq!(histogram.samples(), 1);
        assert_eq!(probe.timed.map(|(number, _)| number), Some(7));
        // Not measured (warm-up): nothing recorded, but the probe moves on.
        probe.echoed(4, None);
        assert_eq!(histogram.samples(), 1);
        assert_eq!(probe.timed.map(|(number, _)| number), Some(11));
    }
}
