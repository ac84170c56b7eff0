//! The demo's lab: four hosts and 1,000 pins. Every host must list every pin that was
//! acknowledged, with no re-adding by the lab (alone in this test binary, so that no other lab
//! competes for the cores). How long it takes is printed, not asserted: speed is measured by
//! `bench/run` and shown by `cluster-lab up`.

use crate::lab_support::{assert_healthy, down_and_assert_clean, Lab};

#[test]
fn four_hosts_with_a_thousand_pins_come_up_with_every_pin() {
    let lab = Lab::up(4, "0.9.0", 1000, &[]);
    eprintln!("up of 4 hosts with 1,000 pins took {:?}", lab.up_time);
    assert_healthy(&lab.status(), 4, "0.9.0", 1000);
    down_and_assert_clean(&lab);
}
