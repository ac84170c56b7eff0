//! Loading what every inventory-based command needs: the inventory and the playbooks, both
//! validated before any host is contacted.

use std::path::{Path, PathBuf};

use crate::cli::InventoryArgs;
use crate::error::Error;
use crate::inventory::Inventory;
use crate::plan::Playbooks;
use crate::procedure::Procedure;

/// The playbooks shipped with the tool, used when no `playbooks/` folder is found.
const BUILT_IN: [(&str, &str); 3] = [
    (
        "standard.yaml",
        include_str!("../../playbooks/standard.yaml"),
    ),
    (
        "bootstrap.yaml",
        include_str!("../../playbooks/bootstrap.yaml"),
    ),
    ("recover.yaml", include_str!("../../playbooks/recover.yaml")),
];

/// Loads and validates the inventory and the upgrade playbooks, and checks every template
/// against every host.
pub fn load(args: &InventoryArgs) -> Result<(Inventory, Playbooks), Error> {
    let inventory = Inventory::load(&args.inventory, &args.vars)?;
    let playbooks = Playbooks {
        standard: playbook(args, "standard.yaml", &inventory)?,
        bootstrap: playbook(args, "bootstrap.yaml", &inventory)?,
    };
    Ok((inventory, playbooks))
}

/// Loads and validates the inventory and `recover.yaml`.
pub fn load_recover(args: &InventoryArgs) -> Result<(Inventory, Procedure), Error> {
    let inventory = Inventory::load(&args.inventory, &args.vars)?;
    let procedure = playbook(args, "recover.yaml", &inventory)?;
    Ok((inventory, procedure))
}

/// One playbook: from the playbook folder when it has the file, else the built-in copy;
/// validated against every host of `inventory`.
pub fn playbook(
    args: &InventoryArgs,
    name: &str,
    inventory: &Inventory,
) -> Result<Procedure, Error> {
    // An explicit `--playbooks DIR` must hold the upgrade playbooks; `recover.yaml` may come
    // from the built-in copies (a folder of adapted upgrade steps need not repeat it).
    let required = args.playbooks.is_some() && name != "recover.yaml";
    let file = playbook_dir(args)
        .map(|dir| dir.join(name))
        .filter(|file| required || file.is_file());
    let procedure = match file {
        Some(file) => Procedure::load(&file)?,
        None => {
            let (_, text) = BUILT_IN
                .iter()
                .find(|(file, _)| *file == name)
                .expect("built-in playbook");
            Procedure::from_text(&Path::new("(built-in) playbooks").join(name), text)?
        }
    };
    procedure.validate_against(inventory)?;
    Ok(procedure)
}

/// `--playbooks DIR` if given; else `playbooks/` beside the inventory, then in the current
/// folder; else `None` for the built-in ones.
fn playbook_dir(args: &InventoryArgs) -> Option<PathBuf> {
    if let Some(dir) = &args.playbooks {
        return Some(dir.clone());
    }
    let beside = args.inventory.parent().map(|p| p.join("playbooks"));
    [beside, Some(PathBuf::from("playbooks"))]
        .into_iter()
        .flatten()
        .find(|dir| dir.join("standard.yaml").is_file())
}
