//! `raft/raft.db`: the stand-in's log of committed entries since the last snapshot, one JSON
//! object per line. It is replayed at start, so a killed peer keeps what it committed, while
//! `state export` (which reads only the last snapshot) does not see it, as on a real peer.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::{Error, Result};
use super::state::Entry;

/// File name of the log inside the raft folder.
pub const RAFT_DB: &str = "raft.db";

fn path(raft_dir: &Path) -> PathBuf {
    raft_dir.join(RAFT_DB)
}

/// Appends one entry. It is not fsynced: a SIGKILLed process's writes survive in the page
/// cache, and host crashes are not modelled, while an fsync per commit on every peer would make
/// large test clusters slow.
pub fn append(raft_dir: &Path, entry: &Entry) -> Result<()> {
    append_all(raft_dir, std::slice::from_ref(entry))
}

/// Appends several entries with one write.
pub fn append_all(raft_dir: &Path, entries: &[Entry]) -> Result<()> {
    fs::create_dir_all(raft_dir).map_err(Error::io(raft_dir))?;
    let file_path = path(raft_dir);
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file_path)
        .map_err(Error::io(&file_path))?;
    let mut lines = String::new();
    for entry in entries {
        lines.push_str(&serde_json::to_string(entry).expect("entry serializes"));
        lines.push('\n');
    }
    file.write_all(lines.as_bytes())
        .map_err(Error::io(&file_path))
}

/// All entries; a torn last line (killed mid-write) is ignored.
pub fn entries(raft_dir: &Path) -> Result<Vec<Entry>> {
    let file_path = path(raft_dir);
    let text = match fs::read_to_string(&file_path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(Error::io(&file_path)(err)),
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = Vec::with_capacity(lines.len());
    for (n, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(entry) => out.push(entry),
            Err(_) if n + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(source) => {
                return Err(Error::ParseJson {
                    path: file_path,
                    source,
                })
            }
        }
    }
    Ok(out)
}

/// Empties the log after a snapshot made it redundant.
pub fn clear(raft_dir: &Path) -> Result<()> {
    let file_path = path(raft_dir);
    fs::create_dir_all(raft_dir).map_err(Error::io(raft_dir))?;
    fs::write(&file_path, b"").map_err(Error::io(&file_path))
}

/// File name of the highest term this peer has seen (raft's stable store keeps `CurrentTerm`
/// in `raft.db`; here it has a file of its own so that `raft.db` stays empty after a snapshot).
pub const TERM_FILE: &str = "term";

/// Records the highest term seen, before the peer votes or acts in it: a restarted peer must
/// not vote twice in one term nor take entries of a term it has left behind.
pub fn save_term(raft_dir: &Path, term: u64) -> Result<()> {
    fs::create_dir_all(raft_dir).map_err(Error::io(raft_dir))?;
    let file_path = raft_dir.join(TERM_FILE);
    fs::write(&file_path, format!("{term}\n")).map_err(Error::io(&file_path))
}

/// The term recorded by `save_term`; 0 when there is none (or it cannot be read).
pub fn saved_term(raft_dir: &Path) -> u64 {
    fs::read_to_string(raft_dir.join(TERM_FILE))
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0)
}
