//! The state directory (`.cluster-upgrade/` beside the inventory, or `--state-dir`) and the run
//! directories inside it: `runs/<run-id>/{plan.json, journal.jsonl, apply.log, backups/}`.
//! Everything is private to the user (0700 folders, 0600 files): plans and logs name hosts,
//! paths and peer IDs, and backups hold the pinset.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::record::Record;

/// Journal and run-directory failures.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}:{line}: corrupt journal record: {message}", path.display())]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("the journal could not be made durable: {message}")]
    Flush { message: String },
    #[error("another `cluster-upgrade apply` holds {} (one apply at a time per cluster); wait for it, or if no apply runs, the lock is released by the system and this is a bug", path.display())]
    Locked { path: PathBuf },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The state directory of one cluster.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub root: PathBuf,
}

/// Holds the cluster's apply lock until dropped (the OS releases it if the process dies).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl StateDir {
    /// `--state-dir`, else `.cluster-upgrade/` beside the inventory.
    pub fn for_inventory(inventory: &Path, explicit: Option<&Path>) -> StateDir {
        let root = match explicit {
            Some(dir) => dir.to_path_buf(),
            None => inventory
                .parent()
                .unwrap_or(Path::new("."))
                .join(".cluster-upgrade"),
        };
        StateDir { root }
    }

    pub fn create(&self) -> Result<(), JournalError> {
        private_dir(&self.root.join("runs"))
    }

    /// The plan `plan` saved last, which a bare `apply` applies.
    pub fn latest_plan(&self) -> PathBuf {
        self.root.join("latest-plan.json")
    }

    pub fn run(&self, run_id: &str) -> RunDir {
        RunDir {
            path: self.root.join("runs").join(run_id),
        }
    }

    /// Run directories, oldest first (run IDs sort by time).
    pub fn runs(&self) -> Result<Vec<RunDir>, JournalError> {
        let dir = self.root.join("runs");
        let mut names: Vec<String> = match fs::read_dir(&dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        names.sort();
        Ok(names.into_iter().map(|name| self.run(&name)).collect())
    }

    /// Takes the cluster's apply lock, or says another apply holds it.
    pub fn lock(&self) -> Result<RunLock, JournalError> {
        self.create()?;
        let path = self.root.join("apply.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(JournalError::Locked { path }),
            Err(fs::TryLockError::Error(e)) => Err(io_err(&path)(e)),
        }
    }
}

/// One run's directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn id(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub fn plan_path(&self) -> PathBuf {
        self.path.join("plan.json")
    }

    pub fn journal_path(&self) -> PathBuf {
        self.path.join("journal.jsonl")
    }

    pub fn log_path(&self) -> PathBuf {
        self.path.join("apply.log")
    }

    pub fn backups_dir(&self) -> PathBuf {
        self.path.join("backups")
    }

    pub fn create(&self) -> Result<(), JournalError> {
        private_dir(&self.backups_dir())
    }

    /// Reads every record. A last line cut short by a crash is ignored; anything else that does
    /// not parse is an error naming the line.
    pub fn records(&self) -> Result<Vec<Record>, JournalError> {
        let path = self.journal_path();
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let lines: Vec<String> = BufReader::new(file)
            .lines()
            .collect::<Result<_, _>>()
            .map_err(io_err(&path))?;
        let mut records = Vec::with_capacity(lines.len());
        for (index, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(line) {
                Ok(record) => records.push(record),
                Err(_) if index + 1 == lines.len() => break,
                Err(e) => {
                    return Err(JournalError::Corrupt {
                        path,
                        line: index + 1,
                        message: e.to_string(),
                    })
                }
            }
        }
        Ok(records)
    }

    /// Opens the journal for appending. A record cut short by a crash (a last line without its
    /// newline) is dropped first, so that what follows parses.
    pub fn journal(&self) -> Result<JournalWriter, JournalError> {
        let path = self.journal_path();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&path))?;
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        if !bytes.is_empty() && !bytes.ends_with(b"\n") {
            let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            file.set_len(keep as u64).map_err(io_err(&path))?;
            file.sync_data().map_err(io_err(&path))?;
        }
        Ok(JournalWriter { file, path })
    }
}

/// Appends records; every append is durable (fsync) before it returns.
#[derive(Debug)]
pub struct JournalWriter {
    file: File,
    path: PathBuf,
}

impl JournalWriter {
    pub fn append(&mut self, record: &Record) -> Result<(), JournalError> {
        self.append_all(std::slice::from_ref(record))
    }

    /// Appends several records with one fsync (group commit).
    pub fn append_all(&mut self, records: &[Record]) -> Result<(), JournalError> {
        let mut buf = Vec::new();
        for record in records {
            serde_json::to_writer(&mut buf, record).expect("records serialize");
            buf.push(b'\n');
        }
        self.file.write_all(&buf).map_err(io_err(&self.path))?;
        self.file.sync_data().map_err(io_err(&self.path))
    }
}

/// Creates a folder (and parents) with mode 0700.
pub fn private_dir(path: &Path) -> Result<(), JournalError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io_err(path))
}

/// Writes a file with mode 0600 through a temporary file and a rename, then syncs it.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), JournalError> {
    write_private_with(path, |out| out.write_all(bytes))
}

/// [`write_private`] of what `fill` writes, streamed through a buffer: a large plan never
/// exists as one string in memory.
pub fn write_private_with(
    path: &Path,
    fill: impl FnOnce(&mut io::BufWriter<File>) -> io::Result<()>,
) -> Result<(), JournalError> {
    // Serializers write a few bytes at a time: a concrete, large buffer keeps that cheap.
    const BUFFER: usize = 1 << 18;
    // A device or pipe (`--out /dev/stdout`, `/dev/null`) is written as it is.
    if fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        let file = File::create(path).map_err(io_err(path))?;
        let mut out = io::BufWriter::with_capacity(BUFFER, file);
        return fill(&mut out)
            .and_then(|()| out.flush())
            .map_err(io_err(path));
    }
    let tmp = path.with_extension("tmp");
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    let mut out = io::BufWriter::with_capacity(BUFFER, file);
    fill(&mut out)
        .and_then(|()| out.flush())
        .map_err(io_err(&tmp))?;
    let file = out.into_inner().map_err(|e| io_err(&tmp)(e.into_error()))?;
    file.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Event;

    #[test]
    fn a_cut_last_line_is_ignored_and_the_next_append_starts_clean() {
        let dir = tempfile::tempdir().unwrap();
        let run = StateDir {
            root: dir.path().to_path_buf(),
        }
        .run("r1");
        run.create().unwrap();
        run.journal()
            .unwrap()
            .append(&Record::now(Event::RunFinished))
            .unwrap();
        let mut file = OpenOptions::new()
            .append(true)
            .open(run.journal_path())
            .unwrap();
        file.write_all(b"{\"at_ms\":1,\"event\":\"step_sta")
            .unwrap();
        assert_eq!(run.records().unwrap().len(), 1);
        run.journal()
            .unwrap()
            .append(&Record::now(Event::RunFinished))
            .unwrap();
        assert_eq!(run.records().unwrap().len(), 2);
    }

    #[test]
    fn a_corrupt_middle_line_is_an_error_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let run = StateDir {
            root: dir.path().to_path_buf(),
        }
        .run("r1");
        run.create().unwrap();
        fs::write(
            run.journal_path(),
            "garbage\n{\"at_ms\":1,\"event\":\"run_finished\"}\n",
        )
        .unwrap();
        assert!(matches!(
            run.records(),
            Err(JournalError::Corrupt { line: 1, .. })
        ));
    }

    #[test]
    fn the_lock_is_exclusive_and_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir {
            root: dir.path().join("state"),
        };
        let lock = state.lock().unwrap();
        assert!(matches!(state.lock(), Err(JournalError::Locked { .. })));
        drop(lock);
        assert!(state.lock().is_ok());
        let run = state.run("r1");
        run.create().unwrap();
        run.journal()
            .unwrap()
            .append(&Record::now(Event::RunFinished))
            .unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&run.path), 0o700);
        assert_eq!(mode(&run.journal_path()), 0o600);
    }
}
