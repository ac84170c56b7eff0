//! `cluster-upgrade check`: validate the inventory and the playbooks without connecting.

use crate::cli::CheckArgs;
use crate::error::Error;
use crate::procedure::Coverage;
use crate::report;

use super::inputs;

pub fn check(args: &CheckArgs) -> Result<(), Error> {
    // Every host, where planning checks one host per variable set: this is the full check.
    let no_ssh_overrides = crate::cli::SshArgs::default();
    let (inventory, playbooks) =
        inputs::load_with(&args.input, &no_ssh_overrides, Coverage::EveryHost)?;
    let recover = inputs::playbook(&args.input, "recover.yaml", &inventory, Coverage::EveryHost)?;
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
