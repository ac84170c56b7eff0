//! Twenty hosts: `up` must take less than 30 s on a 2-core machine (alone in this test binary,
//! so that no other lab competes for the cores).

mod lab_support;

use std::time::Duration;

use lab_support::{assert_healthy, down_and_assert_clean, Lab};

#[test]
fn twenty_hosts_start_in_under_30_seconds_and_stop_cleanly() {
    let lab = Lab::up(20, "0.10.1", 20, &[]);
    assert_healthy(&lab.status(), 20, "0.10.1", 20);
    assert!(
        lab.up_time < Duration::from_secs(30),
        "up of 20 hosts took {:?}",
        lab.up_time
    );
    down_and_assert_clean(&lab);
}
