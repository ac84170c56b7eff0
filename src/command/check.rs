//! `cluster-upgrade check`: validate the inventory and the playbooks without connecting.

use crate::cli::CheckArgs;
use crate::error::Error;
use crate::report;

use super::inputs;

pub fn check(args: &CheckArgs) -> Result<(), Error> {
    let (inventory, playbooks) = inputs::load(&args.input)?;
    let recover = inputs::playbook(&args.input, "recover.yaml", &inventory)?;
    report::print(&format!(
        "{}: valid ({} hosts, target {}); playbooks {}, {} and {} render for every host\n",
        args.input.inventory.display(),
        inventory.hosts.len(),
        inventory.cluster.target_version,
        playbooks.standard.path.display(),
        playbooks.bootstrap.path.display(),
        recover.path.display(),
    ));
    Ok(())
}
