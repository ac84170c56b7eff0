//! The integration tests of cluster-upgrade, one binary with a module per area; `support` is
//! the one harness (a `cluster-lab` that is always taken down, and runners of the binary).

mod support;

mod api_auth_e2e;
mod apply_e2e;
mod architecture;
mod become_e2e;
mod bench_floor;
mod bootstrap_e2e;
mod ci_summary;
mod cli;
mod docker_e2e;
mod inventory;
mod inventory_ssh_config;
mod migrate_e2e;
mod plan_e2e;
mod procedure;
mod procedure_gates;
mod procedure_playbooks;
mod proxyjump_e2e;
mod real_e2e;
mod recover_e2e;
mod releases_e2e;
mod rollback_e2e;
mod rolling_e2e;
mod run_safety;
mod snapshots;
mod ssh_config;
mod ssh_keys_e2e;
mod systemd_e2e;
mod traffic;
mod transport_known_hosts;
mod transport_ssh;
