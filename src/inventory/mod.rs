//! Inventory loading and validation: the YAML file that lists the cluster's hosts, how to reach
//! them, the target release and the playbook variables (schema: `docs/inventory-schema.md`).
//!
//! [`Inventory::load`] reads and validates in one go; everything after it sees only validated
//! types ([`HostName`], [`Version`], [`Vars`]…), never YAML.

mod api_auth;
mod duration;
mod error;
mod host;
mod jump;
mod location;
mod names;
mod openssh;
mod raw;
mod release;
mod ssh;
pub mod ssh_config;
mod validate;
mod vars;
mod version;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use api_auth::{ApiAuth, Credentials, API_AUTH_VAR};
pub use duration::{DurationError, HumanDuration};
pub use error::{IdentityProblem, InventoryError};
pub use host::{Address, AddressError, Host, Identity, Port};
pub use jump::{describe as describe_jumps, hop_name, JumpHost, JumpProblem};
pub use location::{describe_yaml_error, position_of_byte, SourcePosition};
pub use names::{GroupName, HostName, NameError, UserName, VarName};
pub use release::{
    ClusterSettings, ReleaseFile, ReleaseFileInfo, ReleaseSource, ReleaseSums, Sha256, Sha256Error,
    UrlTemplate, UrlTemplateError,
};
pub use ssh::{SshOverrides, SshSettings};
pub use vars::{Vars, RESERVED_VAR_NAMES};
pub use version::{BootstrapFlagStyle, PebbleFormats, Version, VersionError};

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

/// What the command line overrides in an inventory: `--var key=value` pairs (they win over
/// every variable in the file) and the SSH options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub vars: Vec<(String, String)>,
    pub ssh: SshOverrides,
}

impl Overrides {
    /// Only `--var` pairs.
    pub fn vars(vars: &[(String, String)]) -> Overrides {
        Overrides {
            vars: vars.to_vec(),
            ..Overrides::default()
        }
    }
}

impl Inventory {
    /// The largest inventory read: ten thousand hosts take well under 1 MB.
    pub const MAX_BYTES: u64 = 16 << 20;

    /// Reads and validates the inventory at `path`. `overrides` are `--var key=value` pairs
    /// from the command line; they win over every variable in the file.
    pub fn load(path: &Path, overrides: &[(String, String)]) -> Result<Inventory, InventoryError> {
        Inventory::load_with(path, &Overrides::vars(overrides))
    }

    /// Reads and validates the inventory at `path` under the command line's `overrides`.
    pub fn load_with(path: &Path, overrides: &Overrides) -> Result<Inventory, InventoryError> {
        let read_error = |source| InventoryError::Read {
            path: path.to_path_buf(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read_error)?.len();
        if size > Inventory::MAX_BYTES {
            return Err(InventoryError::TooLarge {
                path: path.to_path_buf(),
                bytes: size,
            });
        }
        let bytes = std::fs::read(path).map_err(read_error)?;
        let text = String::from_utf8(bytes).map_err(|error| {
            let valid = error.utf8_error().valid_up_to();
            let bytes = error.as_bytes();
            InventoryError::NotUtf8 {
                at: location::position_of_byte(path, bytes, valid),
                byte: bytes[valid],
            }
        })?;
        Inventory::from_text_with(path, &text, overrides)
    }

    /// Validates inventory `text` as if read from `path` (relative paths inside it resolve
    /// against `path`'s folder).
    pub fn from_text(
        path: &Path,
        text: &str,
        overrides: &[(String, String)],
    ) -> Result<Inventory, InventoryError> {
        Inventory::from_text_with(path, text, &Overrides::vars(overrides))
    }

    /// [`Inventory::from_text`] under all the command line's `overrides`.
    pub fn from_text_with(
        path: &Path,
        text: &str,
        overrides: &Overrides,
    ) -> Result<Inventory, InventoryError> {
        let raw = raw::parse(text).map_err(|error| {
            let (at, message) = describe_yaml_error(path, &error);
            InventoryError::Yaml { at, message }
        })?;
        validate::validate(path, raw, overrides)
    }

    /// This inventory with its target replaced by the newest release its source offers that
    /// `is_hop` accepts (a release an upgrade must pass through), if it offers one.
    pub fn with_intermediate_target(&self, is_hop: &dyn Fn(Version) -> bool) -> Option<Inventory> {
        let inventory = self;
        let is_hop = |v: &Version| is_hop(*v);
        let version = match &inventory.cluster.releases {
            ReleaseSource::Local { path, .. } => std::fs::read_dir(path)
                .ok()?
                .flatten()
                .filter_map(|entry| entry.file_name().to_str()?.parse::<Version>().ok())
                .filter(|v| is_hop(v) && path.join(v.to_string()).join("SHA256SUMS").is_file())
                .max()?,
            ReleaseSource::Url { sha256, .. } => sha256.keys().copied().filter(is_hop).max()?,
        };
        self.with_target(version)
    }

    /// This inventory with `version` as its target, if its release source offers it (a local
    /// folder with `<version>/SHA256SUMS`, or a sha256 entry for it).
    pub fn with_target(&self, version: Version) -> Option<Inventory> {
        let mut other = self.clone();
        other.cluster.target_version = version;
        match &mut other.cluster.releases {
            ReleaseSource::Local { path, sums } => {
                let text =
                    std::fs::read_to_string(path.join(version.to_string()).join("SHA256SUMS"))
                        .ok()?;
                *sums = ReleaseSums::from_sha256sums(&text).ok()?;
            }
            ReleaseSource::Url { sha256, .. } => {
                sha256.get(&version)?;
            }
        }
        Some(other)
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|host| host.name.as_str() == name)
    }
}
