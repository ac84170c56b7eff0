//! The lab: real sshd hosts running stand-in peers (filled in by the lab work).
