//! Twenty hosts: `up`, `status` and `down` at the size the benchmarks use (alone in this test
//! binary, so that no other lab competes for the cores). The start-up time (target: under 30 s
//! on a 2-core machine) is printed here and by `cluster-lab up` itself, and measured by
//! `bench/run`; a test does not assert on it.

use crate::lab_support::{assert_healthy, down_and_assert_clean, Lab};

#[test]
fn twenty_hosts_start_report_healthy_and_stop_cleanly() {
    let lab = Lab::up(20, "0.10.1", 20, &[]);
    eprintln!("up of 20 hosts took {:?}", lab.up_time);
    assert_healthy(&lab.status(), 20, "0.10.1", 20);
    down_and_assert_clean(&lab);
}
