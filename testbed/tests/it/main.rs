//! The integration tests of the test bed, one binary with a module per area. Harnesses:
//! `common` (stand-in peers run as local processes), `lab_support` (a `cluster-lab` of sshd
//! hosts, always taken down) and `fidelity_support` (the differential suite's runners and
//! normalisation).

mod common;
mod fidelity_support;
mod lab_support;

mod fidelity;
mod lab_cli;
mod lab_docker;
mod lab_fault;
mod lab_interrupted_merge;
mod lab_pins;
mod lab_real;
mod lab_rtt;
mod lab_systemd;
mod lab_twenty;
mod lab_up;
mod lab_wrapper;
mod standin_cli;
mod standin_cluster;
mod standin_crdt;
mod standin_follow;
mod standin_peer;
mod standin_releases;
mod standin_writers;
