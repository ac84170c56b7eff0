//! Group commit: records of concurrent hosts are made durable together. A writer thread owns
//! the journal file: whenever records are queued it writes all of them and fsyncs once, so N
//! hosts starting a step at once cost about one fsync, not N, and no async worker ever blocks
//! in fsync. `append` waits until its record is durable (a remote command never starts before
//! its "started" record is); `queue` does not wait (a "finished" record): the writer makes it
//! durable right away, and every later record is written after it.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use tokio::sync::Notify;

use super::record::Record;
use super::run_dir::{JournalError, JournalWriter};

/// A journal writer shared by every host task of a run.
#[derive(Debug)]
pub struct GroupJournal {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the writer thread.
    work: Condvar,
    /// Wakes synchronous waiters after a flush.
    flushed: Condvar,
    /// Wakes asynchronous waiters after a flush.
    flushed_async: Notify,
}

#[derive(Debug, Default)]
struct State {
    queue: Vec<Record>,
    /// Sequence number of the last record queued.
    queued: u64,
    /// Every record up to this sequence number is durable.
    durable: u64,
    /// A failed flush fails every record it held and every later one: the run stops.
    failed: Option<Arc<JournalError>>,
    closing: bool,
}

impl GroupJournal {
    pub fn new(writer: JournalWriter) -> GroupJournal {
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("journal".into())
                .spawn(move || write_loop(&shared, writer))
                .expect("start the journal writer thread")
        };
        GroupJournal {
            shared,
            writer: Mutex::new(Some(thread)),
        }
    }

    /// Appends `record` and returns once it is durable.
    pub async fn append(&self, record: Record) -> Result<(), JournalError> {
        let mine = self.push(record)?;
        loop {
            let notified = self.shared.flushed_async.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_durable(mine)? {
                return Ok(());
            }
            notified.await;
        }
    }

    /// Appends `record` and blocks this thread until it is durable (outside async code).
    pub fn append_blocking(&self, record: Record) -> Result<(), JournalError> {
        let mine = self.push(record)?;
        let mut state = self.shared.state.lock().expect("journal state lock");
        loop {
            if let Some(error) = &state.failed {
                return Err(flush_error(error));
            }
            if state.durable >= mine {
                return Ok(());
            }
            state = self.shared.flushed.wait(state).expect("journal state lock");
        }
    }

    /// Appends `record` without waiting: it is written and fsynced by the next flush, which
    /// starts at once, and before any record queued after it.
    pub fn queue(&self, record: Record) -> Result<(), JournalError> {
        self.push(record).map(|_| ())
    }

    fn push(&self, record: Record) -> Result<u64, JournalError> {
        let mut state = self.shared.state.lock().expect("journal state lock");
        if let Some(error) = &state.failed {
            return Err(flush_error(error));
        }
        state.queue.push(record);
        state.queued += 1;
        self.shared.work.notify_one();
        Ok(state.queued)
    }

    fn is_durable(&self, mine: u64) -> Result<bool, JournalError> {
        let state = self.shared.state.lock().expect("journal state lock");
        match &state.failed {
            Some(error) => Err(flush_error(error)),
            None => Ok(state.durable >= mine),
        }
    }
}

impl Drop for GroupJournal {
    /// Writes what is still queued, then stops the writer thread.
    fn drop(&mut self) {
        self.shared
            .state
            .lock()
            .expect("journal state lock")
            .closing = true;
        self.shared.work.notify_one();
        if let Some(thread) = self.writer.lock().expect("journal writer lock").take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread: one write and one fsync for everything queued since the last flush.
fn write_loop(shared: &Shared, mut writer: JournalWriter) {
    let mut state = shared.state.lock().expect("journal state lock");
    loop {
        while state.queue.is_empty() && !state.closing {
            state = shared.work.wait(state).expect("journal state lock");
        }
        if state.queue.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut state.queue);
        let last = state.queued;
        drop(state);
        let result = writer.append_all(&batch);
        state = shared.state.lock().expect("journal state lock");
        match result {
            Ok(()) => state.durable = last,
            Err(error) => state.failed = Some(Arc::new(error)),
        }
        shared.flushed.notify_all();
        shared.flushed_async.notify_waiters();
        if state.failed.is_some() {
            return;
        }
    }
}

fn flush_error(error: &Arc<JournalError>) -> JournalError {
    JournalError::Flush {
        source: Arc::clone(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Event, StateDir};
    use std::sync::Arc;

    fn new_run() -> (tempfile::TempDir, crate::journal::RunDir) {
        let dir = tempfile::tempdir().unwrap();
        let run = StateDir {
            root: dir.path().to_path_buf(),
        }
        .run(&"20261204T000000Z-0001".parse().unwrap());
        run.create().unwrap();
        (dir, run)
    }

    #[test]
    fn concurrent_appends_are_all_durable_and_each_written_once() {
        let (_dir, run) = new_run();
        let journal = Arc::new(GroupJournal::new(run.journal().unwrap()));
        let threads: Vec<_> = (0..16)
            .map(|host| {
                let journal = Arc::clone(&journal);
                std::thread::spawn(move || {
                    for step in 0..20 {
                        let event = Event::StepStarted {
                            step: format!("s{step}").parse().unwrap(),
                            host: format!("h{host}").parse().unwrap(),
                            attempt: 1,
                        };
                        journal.append_blocking(Record::now(event)).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let records = run.records().unwrap();
        assert_eq!(records.len(), 16 * 20);
        let mut seen: Vec<String> = records.iter().map(|r| format!("{:?}", r.event)).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 16 * 20, "no record written twice");
    }

    #[test]
    fn queued_records_are_written_in_order_and_before_the_journal_is_dropped() {
        let (_dir, run) = new_run();
        let journal = GroupJournal::new(run.journal().unwrap());
        let started = |step: &str| Event::StepStarted {
            step: step.into(),
            host: "h1".into(),
            attempt: 1,
        };
        let finished = |step: &str| Event::StepFinished {
            step: step.into(),
            host: "h1".into(),
            by_check: false,
        };
        journal.append_blocking(Record::now(started("a"))).unwrap();
        journal.queue(Record::now(finished("a"))).unwrap();
        journal.append_blocking(Record::now(started("b"))).unwrap();
        journal.queue(Record::now(finished("b"))).unwrap();
        drop(journal);
        let events: Vec<Event> = run
            .records()
            .unwrap()
            .into_iter()
            .map(|r| r.event)
            .collect();
        assert_eq!(
            events,
            vec![started("a"), finished("a"), started("b"), finished("b")]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn async_appends_from_many_tasks_are_durable_when_they_return() {
        let (_dir, run) = new_run();
        let journal = Arc::new(GroupJournal::new(run.journal().unwrap()));
        let mut tasks = tokio::task::JoinSet::new();
        for host in 0..50 {
            let journal = Arc::clone(&journal);
            let run = run.clone();
            tasks.spawn(async move {
                let event = Event::StepStarted {
                    step: "s".into(),
                    host: format!("h{host}").parse().unwrap(),
                    attempt: 1,
                };
                journal.append(Record::now(event.clone())).await.unwrap();
                // Durable means on disk now, read back by anyone.
                assert!(run.records().unwrap().iter().any(|r| r.event == event));
            });
        }
        while let Some(joined) = tasks.join_next().await {
            joined.unwrap();
        }
    }
}
