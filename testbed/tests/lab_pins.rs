//! The demo's lab: four hosts and 1,000 pins. Adding the pins must be quick (the stand-in
//! replicates one entry per write to caught-up followers) and every host must list every pin
//! that was acknowledged, with no re-adding by the lab (alone in this test binary, so that no
//! other lab competes for the cores).

mod lab_support;

use std::time::Duration;

use lab_support::{assert_healthy, down_and_assert_clean, Lab};

#[test]
fn four_hosts_with_a_thousand_pins_come_up_in_under_30_seconds() {
    let lab = Lab::up(4, "0.9.0", 1000, &[]);
    assert_healthy(&lab.status(), 4, "0.9.0", 1000);
    assert!(
        lab.up_time < Duration::from_secs(30),
        "up of 4 hosts with 1,000 pins took {:?}",
        lab.up_time
    );
    down_and_assert_clean(&lab);
}
