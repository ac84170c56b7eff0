//! Loading what every inventory-based command needs: the inventory and the playbooks, both
//! validated before any host is contacted (`check`: every playbook for every host; the
//! commands that plan: for one host per distinct variable set, see [`Coverage`]).

use std::path::{Path, PathBuf};

use crate::cli::InventoryInput;
use crate::error::Error;
use crate::inventory::Inventory;
use crate::plan::Playbooks;
use crate::procedure::{Coverage, Procedure};

/// The playbooks shipped with the tool, used when no `playbooks/` folder is found.
const BUILT_IN: [(&str, &str); 6] = [
    (
        "standard.yaml",
        include_str!("../../playbooks/standard.yaml"),
    ),
    (
        "bootstrap.yaml",
        include_str!("../../playbooks/bootstrap.yaml"),
    ),
    ("rolling.yaml", include_str!("../../playbooks/rolling.yaml")),
    ("recover.yaml", include_str!("../../playbooks/recover.yaml")),
    (
        "rollback.yaml",
        include_str!("../../playbooks/rollback.yaml"),
    ),
    (
        "migrate-crdt.yaml",
        include_str!("../../playbooks/migrate-crdt.yaml"),
    ),
];

/// The partials the built-in playbooks share (`partials_from: partials.yaml`), also used by a
/// playbook folder that names them without having the file.
const BUILT_IN_PARTIALS: (&str, &str) = (
    "partials.yaml",
    include_str!("../../playbooks/partials.yaml"),
);

/// Where the built-in copies are said to come from.
const BUILT_IN_DIR: &str = "(built-in) playbooks";

/// Loads and validates the inventory and the upgrade playbooks for planning: the planner
/// renders the chosen playbook for every host, so both are checked here against one host per
/// distinct variable set only.
pub fn load(args: &InventoryInput) -> Result<(Inventory, Playbooks), Error> {
    load_with(args, Coverage::OnePerVariableSet)
}

/// Loads the inventory and the upgrade playbooks, validated for the hosts `coverage` names.
pub fn load_with(
    args: &InventoryInput,
    coverage: Coverage,
) -> Result<(Inventory, Playbooks), Error> {
    // Reading the playbooks needs no inventory, only validating them does: they are read on a
    // second thread while the inventory (thousands of hosts of YAML) is parsed. The errors come
    // in the same order as one after the other: inventory, then each playbook read, validated.
    let (inventory, (standard, bootstrap, rolling)) = std::thread::scope(|scope| {
        let playbooks = scope.spawn(|| {
            (
                read_playbook(args, "standard.yaml"),
                read_playbook(args, "bootstrap.yaml"),
                read_playbook(args, "rolling.yaml"),
            )
        });
        let inventory = Inventory::load_with(&args.inventory, &args.overrides);
        let playbooks = playbooks
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (inventory, playbooks)
    });
    let inventory = inventory?;
    inventory.ssh.check_known_hosts()?;
    let validated = |procedure: Result<Procedure, Error>| {
        let procedure = procedure?;
        procedure.validate(&inventory, coverage)?;
        Ok::<_, Error>(procedure)
    };
    // The validations are independent: side by side, errors still in playbook order.
    let (standard, bootstrap, rolling) = std::thread::scope(|scope| {
        let standard = scope.spawn(|| validated(standard));
        let rolling = scope.spawn(|| validated(rolling));
        let bootstrap = validated(bootstrap);
        let join = |thread: std::thread::ScopedJoinHandle<'_, _>| {
            thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        };
        (join(standard), bootstrap, join(rolling))
    });
    let playbooks = Playbooks {
        standard: standard?,
        bootstrap: bootstrap?,
        rolling: rolling?,
    };
    Ok((inventory, playbooks))
}

/// Loads and validates the inventory and `recover.yaml` for planning a recovery.
pub fn load_recover(args: &InventoryInput) -> Result<(Inventory, Procedure), Error> {
    let inventory = Inventory::load_with(&args.inventory, &args.overrides)?;
    inventory.ssh.check_known_hosts()?;
    let procedure = playbook(
        args,
        "recover.yaml",
        &inventory,
        Coverage::OnePerVariableSet,
    )?;
    Ok((inventory, procedure))
}

/// Loads and validates the inventory and `migrate-crdt.yaml` for planning a migration.
pub fn load_migrate(args: &InventoryInput) -> Result<(Inventory, Procedure), Error> {
    let inventory = Inventory::load_with(&args.inventory, &args.overrides)?;
    inventory.ssh.check_known_hosts()?;
    let procedure = playbook(
        args,
        "migrate-crdt.yaml",
        &inventory,
        Coverage::OnePerVariableSet,
    )?;
    Ok((inventory, procedure))
}

/// Loads and validates the inventory and `rollback.yaml` for planning a rollback.
pub fn load_rollback(args: &InventoryInput) -> Result<(Inventory, Procedure), Error> {
    let inventory = Inventory::load_with(&args.inventory, &args.overrides)?;
    inventory.ssh.check_known_hosts()?;
    let procedure = playbook(
        args,
        "rollback.yaml",
        &inventory,
        Coverage::OnePerVariableSet,
    )?;
    Ok((inventory, procedure))
}

/// One playbook: from the playbook folder when it has the file, else the built-in copy;
/// validated against the hosts of `inventory` that `coverage` names.
pub fn playbook(
    args: &InventoryInput,
    name: &str,
    inventory: &Inventory,
    coverage: Coverage,
) -> Result<Procedure, Error> {
    let procedure = read_playbook(args, name)?;
    procedure.validate(inventory, coverage)?;
    Ok(procedure)
}

/// One playbook, read and compiled but not yet validated against an inventory.
fn read_playbook(args: &InventoryInput, name: &str) -> Result<Procedure, Error> {
    // An explicit `--playbooks DIR` must hold the standard and bootstrap playbooks;
    // `rolling.yaml`, `recover.yaml`, `migrate-crdt.yaml` and `rollback.yaml` may come from the
    // built-in copies (a folder of adapted upgrade steps made before they existed need not
    // repeat them).
    let required = args.playbooks.is_some()
        && ![
            "recover.yaml",
            "rolling.yaml",
            "migrate-crdt.yaml",
            "rollback.yaml",
        ]
        .contains(&name);
    let dir = playbook_dir(args);
    let file = dir
        .as_ref()
        .map(|dir| dir.join(name))
        .filter(|file| required || file.is_file());
    // The partials file a playbook names: the playbook folder's when it has one (also for a
    // built-in playbook the folder lacks, so an adapted `service_stop` applies to every
    // procedure), else the built-in copy.
    let partials_files = |partials: &str| {
        let in_folder = dir.as_ref().map(|dir| dir.join(partials));
        if let Some(path) = in_folder.as_ref().filter(|path| path.is_file()) {
            let text = std::fs::read_to_string(path);
            return (path.clone(), text);
        }
        built_in_partials(partials).unwrap_or_else(|| {
            let path = in_folder.unwrap_or_else(|| Path::new(BUILT_IN_DIR).join(partials));
            let text = std::fs::read_to_string(&path);
            (path, text)
        })
    };
    let procedure = match file {
        Some(file) => Procedure::load_with(&file, &partials_files)?,
        None => {
            let (_, text) = BUILT_IN
                .iter()
                .find(|(file, _)| *file == name)
                .expect("built-in playbook");
            Procedure::from_text_with(&Path::new(BUILT_IN_DIR).join(name), text, &partials_files)?
        }
    };
    Ok(procedure)
}

/// The built-in file of partials called `name`, if there is one.
fn built_in_partials(name: &str) -> Option<(PathBuf, std::io::Result<String>)> {
    let (file, text) = BUILT_IN_PARTIALS;
    (name == file).then(|| (Path::new(BUILT_IN_DIR).join(file), Ok(text.to_string())))
}

/// `--playbooks DIR` if given; else `playbooks/` beside the inventory, then in the current
/// folder; else `None` for the built-in ones.
fn playbook_dir(args: &InventoryInput) -> Option<PathBuf> {
    if let Some(dir) = &args.playbooks {
        return Some(dir.clone());
    }
    let beside = args.inventory.parent().map(|p| p.join("playbooks"));
    [beside, Some(PathBuf::from("playbooks"))]
        .into_iter()
        .flatten()
        .find(|dir| dir.join("standard.yaml").is_file())
}
