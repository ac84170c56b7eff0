//! The log file of a run: tracing writes there (debug level) once `apply` knows its run
//! directory, besides stderr (warnings, or debug with `-v`).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

static LOG_FILE: Mutex<Option<File>> = Mutex::new(None);

/// From now on, logs also go to `path` (appended, private to the user, never through a
/// symbolic link planted in its place).
pub fn log_to_file(path: &Path) {
    if let Ok(file) = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
    {
        *LOG_FILE.lock().expect("log file lock") = Some(file);
    }
}

/// A `tracing_subscriber` writer into the current log file (nothing before one is set).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogFileWriter;

impl Write for LogFileWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match LOG_FILE.lock().expect("log file lock").as_mut() {
            Some(file) => file.write(buf),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match LOG_FILE.lock().expect("log file lock").as_mut() {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogFileWriter {
    type Writer = LogFileWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LogFileWriter
    }
}
