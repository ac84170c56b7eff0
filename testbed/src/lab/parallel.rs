//! Running per-host work on a bounded set of threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;

/// How many hosts the lab works on at once. The work is mostly waiting on `ssh` children, so
/// this can exceed the core count; it stays bounded so a large lab does not fork-bomb the machine.
pub const HOST_WORKERS: usize = 24;

/// Applies `work` to every item on at most `workers` threads and returns the results in order.
pub fn map<T: Sync, R: Send>(items: &[T], workers: usize, work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new(items.iter().map(|_| None).collect());
    thread::scope(|s| {
        for _ in 0..workers.clamp(1, items.len().max(1)) {
            s.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(index) else { break };
                let result = work(item);
                results
                    .lock()
                    .expect("no worker panics while holding the lock")[index] = Some(result);
            });
        }
    });
    results
        .into_inner()
        .expect("workers finished")
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}

/// Like [`map`], for fallible work: the first error in item order, or every result.
pub fn try_map<T: Sync, R: Send, E: Send>(
    items: &[T],
    workers: usize,
    work: impl Fn(&T) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E> {
    map(items, workers, work).into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_their_order() {
        let items: Vec<u32> = (0..50).collect();
        assert_eq!(
            map(&items, 4, |x| x * 2),
            (0..50).map(|x| x * 2).collect::<Vec<_>>()
        );
        let err = try_map(
            &items,
            3,
            |&x| if x == 7 || x == 9 { Err(x) } else { Ok(x) },
        );
        assert_eq!(err, Err(7));
        assert!(map(&Vec::<u32>::new(), 4, |x| *x).is_empty());
    }
}
