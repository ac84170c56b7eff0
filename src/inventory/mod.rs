//! Inventory loading and validation: the YAML file that lists the cluster's hosts, how to reach
//! them, the target release and the playbook variables (schema: `docs/inventory-schema.md`).
//!
//! [`Inventory::load`] reads and validates in one go; everything after it sees only validated
//! types ([`HostName`], [`Version`], [`Vars`]…), never YAML.

mod duration;
mod error;
mod host;
mod location;
mod names;
mod raw;
mod release;
mod ssh;
mod validate;
mod vars;
mod version;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use duration::{DurationError, HumanDuration};
pub use error::InventoryError;
pub use host::{Address, AddressError, Host, Identity, Port};
pub use location::{describe_yaml_error, SourcePosition};
pub use names::{GroupName, HostName, NameError, UserName, VarName};
pub use release::{
    ClusterSettings, ReleaseFile, ReleaseFileInfo, ReleaseSource, ReleaseSums, Sha256, Sha256Error,
    UrlTemplate, UrlTemplateError,
};
pub use ssh::SshSettings;
pub use vars::{Vars, RESERVED_VAR_NAMES};
pub use version::{BootstrapFlagStyle, Version, VersionError};

/// A validated inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    /// The file it was loaded from, as given.
    pub path: PathBuf,
    pub cluster: ClusterSettings,
    pub ssh: SshSettings,
    /// Hosts in file order (the order serial steps walk them in).
    pub hosts: Vec<Host>,
}

impl Inventory {
    /// Reads and validates the inventory at `path`. `overrides` are `--var key=value` pairs
    /// from the command line; they win over every variable in the file.
    pub fn load(path: &Path, overrides: &[(String, String)]) -> Result<Inventory, InventoryError> {
        let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Inventory::from_text(path, &text, overrides)
    }

    /// Validates inventory `text` as if read from `path` (relative paths inside it resolve
    /// against `path`'s folder).
    pub fn from_text(
        path: &Path,
        text: &str,
        overrides: &[(String, String)],
    ) -> Result<Inventory, InventoryError> {
        let raw = raw::parse(text).map_err(|error| {
            let (at, message) = describe_yaml_error(path, &error);
            InventoryError::Yaml { at, message }
        })?;
        validate::validate(path, raw, overrides)
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|host| host.name.as_str() == name)
    }
}
