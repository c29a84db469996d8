//! A rolling window of two counters (successes and failures, or requests and retries) kept in
//! ten buckets: old buckets are cleared as time moves on, so the sums cover the last `length`.

use std::time::Duration;

use tokio::time::Instant;

const BUCKETS: usize = 10;

#[derive(Debug)]
pub(crate) struct RollingWindow {
    bucket_length: Duration,
    buckets: [(u64, u64); BUCKETS],
    /// Index of the current bucket and the time it started.
    current: usize,
    current_start: Instant,
}

impl RollingWindow {
    pub(crate) fn new(length: Duration) -> RollingWindow {
        RollingWindow {
            bucket_length: (length / BUCKETS as u32).max(Duration::from_millis(1)),
            buckets: [(0, 0); BUCKETS],
            current: 0,
            current_start: Instant::now(),
        }
    }

    fn advance(&mut self) {
        let elapsed = self.current_start.elapsed();
        if elapsed < self.bucket_length {
            return;
        }
        let steps = (elapsed.as_nanos() / self.bucket_length.as_nanos()) as usize;
        for _ in 0..steps.min(BUCKETS) {
            self.current = (self.current + 1) % BUCKETS;
            self.buckets[self.current] = (0, 0);
        }
        let moved = self.bucket_length.as_nanos() * steps as u128;
        self.current_start += Duration::from_nanos(u64::try_from(moved).unwrap_or(u64::MAX));
    }

    pub(crate) fn add(&mut self, first: u64, second: u64) {
        self.advance();
        let bucket = &mut self.buckets[self.current];
        bucket.0 += first;
        bucket.1 += second;
    }

    /// Sums over the window.
    pub(crate) fn totals(&mut self) -> (u64, u64) {
        self.advance();
        self.buckets
            .iter()
            .fold((0, 0), |(a, b), (x, y)| (a + x, b + y))
    }

    pub(crate) fn clear(&mut self) {
        self.buckets = [(0, 0); BUCKETS];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn old_counts_roll_out() {
        let mut window = RollingWindow::new(Duration::from_secs(10));
        window.add(1, 0);
        tokio::time::advance(Duration::from_secs(5)).await;
        window.add(0, 2);
        assert_eq!(window.totals(), (1, 2));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(window.totals(), (0, 2));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(window.totals(), (0, 0));
        window.add(3, 3);
        window.clear();
        assert_eq!(window.totals(), (0, 0));
    }
}
