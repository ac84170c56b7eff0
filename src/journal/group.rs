//! Group commit: records of concurrent hosts are made durable together. Each caller queues its
//! record and waits until a flush that includes it has been fsynced; whoever finds no flush in
//! progress becomes the flusher and writes everything queued so far with one fsync. So a remote
//! command never starts before its "started" record is durable, and N hosts starting a step at
//! once cost about one fsync, not N.

use std::sync::{Condvar, Mutex};

use super::record::Record;
use super::run_dir::{JournalError, JournalWriter};

/// A journal writer shared by every host task of a run.
#[derive(Debug)]
pub struct GroupJournal {
    state: Mutex<State>,
    flushed: Condvar,
    writer: Mutex<JournalWriter>,
}

#[derive(Debug, Default)]
struct State {
    queue: Vec<Record>,
    /// Sequence number of the last record queued.
    queued: u64,
    /// Every record up to this sequence number is durable.
    durable: u64,
    flushing: bool,
    /// A failed flush fails every record it held, and the run stops.
    failed: Option<String>,
}

impl GroupJournal {
    pub fn new(writer: JournalWriter) -> GroupJournal {
        GroupJournal {
            state: Mutex::new(State::default()),
            flushed: Condvar::new(),
            writer: Mutex::new(writer),
        }
    }

    /// Appends `record` and returns once it is durable.
    pub fn append(&self, record: Record) -> Result<(), JournalError> {
        let mut state = self.state.lock().expect("journal state lock");
        state.queue.push(record);
        state.queued += 1;
        let mine = state.queued;
        loop {
            if let Some(error) = &state.failed {
                return Err(JournalError::Flush {
                    message: error.clone(),
                });
            }
            if state.durable >= mine {
                return Ok(());
            }
            if !state.flushing {
                state.flushing = true;
                let batch = std::mem::take(&mut state.queue);
                let last = state.queued;
                drop(state);
                let result = self
                    .writer
                    .lock()
                    .expect("journal writer lock")
                    .append_all(&batch);
                state = self.state.lock().expect("journal state lock");
                state.flushing = false;
                match result {
                    Ok(()) => state.durable = last,
                    Err(error) => {
                        state.failed = Some(crate::error::chain(&error));
                        self.flushed.notify_all();
                        return Err(error);
                    }
                }
                self.flushed.notify_all();
            } else {
                state = self.flushed.wait(state).expect("journal state lock");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Event, StateDir};
    use std::sync::Arc;

    #[test]
    fn concurrent_appends_are_all_durable_and_each_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let run = StateDir {
            root: dir.path().to_path_buf(),
        }
        .run("r1");
        run.create().unwrap();
        let journal = Arc::new(GroupJournal::new(run.journal().unwrap()));
        let threads: Vec<_> = (0..16)
            .map(|host| {
                let journal = Arc::clone(&journal);
                std::thread::spawn(move || {
                    for step in 0..20 {
                        let event = Event::StepStarted {
                            step: format!("s{step}"),
                            host: format!("h{host}"),
                            attempt: 1,
                        };
                        journal.append(Record::now(event)).unwrap();
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
}
