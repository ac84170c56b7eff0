//! How the lab tells its caller what it is doing (the library never prints).

/// Receives one line per phase of a long operation.
pub trait Progress: Sync {
    fn step(&self, text: &str);
}

/// Discards progress (tests, library callers).
pub struct Silent;

impl Progress for Silent {
    fn step(&self, _text: &str) {}
}
