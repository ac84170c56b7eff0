//! `cluster-upgrade check`: validate the inventory and the playbooks without connecting.

use crate::cli::InventoryInput;
use crate::error::Error;
use crate::procedure::Coverage;
use crate::report;

use super::inputs;

pub fn check(input: &InventoryInput) -> Result<(), Error> {
    // Every host, where planning checks one host per variable set: this is the full check.
    let (inventory, playbooks) = inputs::load_with(input, Coverage::EveryHost)?;
    let recover = inputs::playbook(input, "recover.yaml", &inventory, Coverage::EveryHost)?;
    let migrate = inputs::playbook(input, "migrate-crdt.yaml", &inventory, Coverage::EveryHost)?;
    let rollback = inputs::playbook(input, "rollback.yaml", &inventory, Coverage::EveryHost)?;
    report::print(&format!(
        "{}: valid ({} hosts, target {}); playbooks {}, {}, {}, {}, {} and {} render for every host\n",
        input.inventory.display(),
        inventory.hosts.len(),
        inventory.cluster.target_version,
        playbooks.standard.path.display(),
        playbooks.rolling.path.display(),
        playbooks.bootstrap.path.display(),
        recover.path.display(),
        migrate.path.display(),
        rollback.path.display(),
    ));
    Ok(())
}
