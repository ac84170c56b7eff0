//! The state directory (`.cluster-upgrade/` beside the inventory, or `--state-dir`) and the run
//! directories inside it: `runs/<run-id>/{plan.json, journal.jsonl, apply.log, backups/}`.
//! Everything is private to the user (0700 folders, 0600 files): plans and logs name hosts,
//! paths and peer IDs, and backups hold the pinset.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::record::Record;
use super::run_id::RunId;

/// Journal and run-directory failures.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}:{line}: corrupt journal record", path.display())]
    Corrupt {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("the journal could not be made durable")]
    Flush {
        #[source]
        source: std::sync::Arc<JournalError>,
    },
    #[error("another `cluster-upgrade apply` holds {} (one apply at a time per cluster); wait for it, or if no apply runs, the lock is released by the system and this is a bug", path.display())]
    Locked { path: PathBuf },
    #[error("state directory {}: {problem}", path.display())]
    Unusable {
        path: PathBuf,
        problem: StateDirProblem,
    },
}

/// Why a state directory (or something in it) cannot be used. Plans in it are executed as
/// commands on every host: anything another local user could have written there is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateDirProblem {
    #[error("it is not a directory")]
    NotADirectory,
    #[error("it is owned by uid {owner}, not by this user (uid {me}); runs in it could have been planted by another user: use a state directory of your own (--state-dir)")]
    NotOwned { owner: u32, me: u32 },
    #[error("it is writable by group or others (mode {mode:04o}) and already holds runs, which another user could have planted; check them, `chmod 700` it, then run again")]
    WritableByOthers { mode: u32 },
    #[error("it is read-only ({reason}); runs keep their plan, journal and backups there")]
    ReadOnly { reason: String },
    #[error("it is a symbolic link; give its target instead")]
    Symlink,
}

/// `O_NOFOLLOW`: files of the state directory are never opened through a symbolic link (a
/// link planted in place of a journal or log would redirect our writes).
fn no_follow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// This process's effective user id.
fn my_uid() -> u32 {
    rustix::process::geteuid().as_raw()
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
    /// The state directory of a command: `--state-dir`, else `.cluster-upgrade/` beside the
    /// inventory, else `.cluster-upgrade/` in the current folder.
    pub fn resolve(explicit: Option<&Path>, inventory: Option<&Path>) -> StateDir {
        let root = match (explicit, inventory) {
            (Some(dir), _) => dir.to_path_buf(),
            (None, Some(inventory)) => inventory
                .parent()
                .unwrap_or(Path::new("."))
                .join(".cluster-upgrade"),
            (None, None) => PathBuf::from(".cluster-upgrade"),
        };
        StateDir { root }
    }

    pub fn create(&self) -> Result<(), JournalError> {
        private_dir(&self.root.join("runs"))
    }

    /// Makes sure the state directory can be used, before anything else happens: created when
    /// missing (private), else a directory of this user that only this user can change, and
    /// writable. A directory of ours that others could write to is tightened when it holds no
    /// runs yet (nothing could have been planted), and refused otherwise.
    pub fn prepare(&self) -> Result<Vec<String>, JournalError> {
        let mut notes = Vec::new();
        for dir in [self.root.clone(), self.root.join("runs")] {
            if let Some(note) = check_private_dir(&dir, self.holds_runs())? {
                notes.push(note);
            }
        }
        let read_only = |reason: String| JournalError::Unusable {
            path: self.root.clone(),
            problem: StateDirProblem::ReadOnly { reason },
        };
        if self.root.exists() {
            rustix::fs::access(&self.root, rustix::fs::Access::WRITE_OK)
                .map_err(|error| read_only(io::Error::from(error).to_string()))?;
        }
        self.create().map_err(|error| match error {
            JournalError::Io { source, .. }
                if matches!(
                    source.kind(),
                    io::ErrorKind::ReadOnlyFilesystem | io::ErrorKind::PermissionDenied
                ) =>
            {
                read_only(source.to_string())
            }
            other => other,
        })?;
        Ok(notes)
    }

    fn holds_runs(&self) -> bool {
        fs::read_dir(self.root.join("runs")).is_ok_and(|mut entries| entries.next().is_some())
    }

    /// The plan `plan` saved last, which a bare `apply` applies.
    pub fn latest_plan(&self) -> PathBuf {
        self.root.join("latest-plan.json")
    }

    pub fn run(&self, run_id: &RunId) -> RunDir {
        RunDir {
            path: self.root.join("runs").join(run_id.as_str()),
            id: run_id.clone(),
        }
    }

    /// Run directories, oldest first (run IDs sort by time). Entries whose name is not a run
    /// id are not runs and are left alone.
    pub fn runs(&self) -> Result<Vec<RunDir>, JournalError> {
        let dir = self.root.join("runs");
        let mut ids: Vec<RunId> = match fs::read_dir(&dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        ids.sort();
        Ok(ids.iter().map(|id| self.run(id)).collect())
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
            .custom_flags(no_follow())
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
    id: RunId,
}

impl RunDir {
    pub fn id(&self) -> &RunId {
        &self.id
    }

    /// The run's folder and the files read from it must be this user's and not writable by
    /// anyone else: their commands are executed on every host.
    pub fn check_private(&self) -> Result<(), JournalError> {
        for path in [self.path.clone(), self.plan_path(), self.journal_path()] {
            let metadata = match fs::symlink_metadata(&path) {
                Ok(metadata) => metadata,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&path)(e)),
            };
            let problem = if metadata.file_type().is_symlink() {
                Some(StateDirProblem::Symlink)
            } else if metadata.uid() != my_uid() {
                Some(StateDirProblem::NotOwned {
                    owner: metadata.uid(),
                    me: my_uid(),
                })
            } else if metadata.mode() & 0o022 != 0 {
                Some(StateDirProblem::WritableByOthers {
                    mode: metadata.mode() & 0o7777,
                })
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(JournalError::Unusable { path, problem });
            }
        }
        Ok(())
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
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(no_follow())
            .open(&path)
        {
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
                Err(source) => {
                    return Err(JournalError::Corrupt {
                        path,
                        line: index + 1,
                        source,
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
            .custom_flags(no_follow())
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

/// A state folder, when it exists, must be a directory of this user that nobody else can
/// change; one of ours open to others is tightened to 0700 (a note says so) unless `holds_runs`.
fn check_private_dir(dir: &Path, holds_runs: bool) -> Result<Option<String>, JournalError> {
    let unusable = |problem| JournalError::Unusable {
        path: dir.to_path_buf(),
        problem,
    };
    let metadata = match fs::symlink_metadata(dir) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(dir)(e)),
    };
    if metadata.file_type().is_symlink() {
        return Err(unusable(StateDirProblem::Symlink));
    }
    if !metadata.is_dir() {
        return Err(unusable(StateDirProblem::NotADirectory));
    }
    if metadata.uid() != my_uid() {
        return Err(unusable(StateDirProblem::NotOwned {
            owner: metadata.uid(),
            me: my_uid(),
        }));
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o022 == 0 {
        return Ok(None);
    }
    if holds_runs {
        return Err(unusable(StateDirProblem::WritableByOthers { mode }));
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;
    Ok(Some(format!(
        "{}: was writable by others (mode {mode:04o}); made private (0700)",
        dir.display()
    )))
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
    // A fresh name, created exclusively and never through a link; the rename then replaces
    // whatever `path` is (a planted symbolic link included) rather than writing through it.
    let tmp = unique_tmp(path);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(no_follow())
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    let mut out = io::BufWriter::with_capacity(BUFFER, file);
    fill(&mut out)
        .and_then(|()| out.flush())
        .map_err(io_err(&tmp))?;
    let file = out.into_inner().map_err(|e| io_err(&tmp)(e.into_error()))?;
    file.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err(path)(e)
    })
}

/// `<path>.<pid>.<n>.tmp` beside `path`.
fn unique_tmp(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    path.with_file_name(name)
}

/// Opens a file of the state directory for reading, never through a symbolic link.
pub fn open_private(path: &Path) -> Result<File, JournalError> {
    OpenOptions::new()
        .read(true)
        .custom_flags(no_follow())
        .open(path)
        .map_err(io_err(path))
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
        .run(&"20261204T175237Z-0001".parse().unwrap());
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
        .run(&"20261204T175237Z-0001".parse().unwrap());
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
    fn state_files_are_never_written_through_a_planted_link() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir {
            root: dir.path().join("state"),
        };
        let run = state.run(&"20261204T175237Z-0001".parse().unwrap());
        run.create().unwrap();
        let target = dir.path().join("someone-elses-file");
        fs::write(&target, "theirs").unwrap();
        std::os::unix::fs::symlink(&target, run.journal_path()).unwrap();
        assert!(
            run.journal().is_err(),
            "the journal is not opened through a link"
        );
        assert!(run.records().is_err());
        std::os::unix::fs::symlink(&target, run.plan_path()).unwrap();
        write_private(&run.plan_path(), b"plan").unwrap();
        assert_eq!(
            fs::read_to_string(&target).unwrap(),
            "theirs",
            "the link was replaced, not followed"
        );
        assert_eq!(fs::read_to_string(run.plan_path()).unwrap(), "plan");
        assert!(!fs::symlink_metadata(run.plan_path())
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn a_state_directory_open_to_others_is_tightened_when_empty_and_refused_with_runs() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir {
            root: dir.path().join("state"),
        };
        fs::create_dir_all(&state.root).unwrap();
        fs::set_permissions(&state.root, fs::Permissions::from_mode(0o777)).unwrap();
        let notes = state.prepare().unwrap();
        assert!(notes[0].contains("made private (0700)"), "{notes:?}");
        assert_eq!(
            fs::metadata(&state.root).unwrap().permissions().mode() & 0o777,
            0o700
        );
        state
            .run(&"20261204T175237Z-0001".parse().unwrap())
            .create()
            .unwrap();
        fs::set_permissions(&state.root, fs::Permissions::from_mode(0o775)).unwrap();
        assert!(matches!(
            state.prepare(),
            Err(JournalError::Unusable {
                problem: StateDirProblem::WritableByOthers { mode: 0o775 },
                ..
            })
        ));
        let file = dir.path().join("file");
        fs::write(&file, "").unwrap();
        assert!(matches!(
            StateDir { root: file }.prepare(),
            Err(JournalError::Unusable {
                problem: StateDirProblem::NotADirectory,
                ..
            })
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
        let run = state.run(&"20261204T175237Z-0001".parse().unwrap());
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
