//! Staging the files a lab installs on its hosts: every modelled release and the wrapper.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::release::{write_release, RELEASES};

use super::error::{LabError, Result};
use super::layout::Layout;
use super::parallel;
use super::wrapper;

/// The stand-in executable: `--standin`, else `cluster-peer` beside the running program.
pub fn standin_path(explicit: Option<&Path>) -> Result<PathBuf> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None => {
            let exe = std::env::current_exe().map_err(LabError::io("locating", "the running executable"))?;
            exe.parent().unwrap_or(Path::new(".")).join("cluster-peer")
        }
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(LabError::StandinMissing { path })
    }
}

/// Writes `releases/<version>/` for every modelled release and `assets/ipfs-cluster-svc`.
pub fn stage(layout: &Layout, standin: &Path) -> Result<()> {
    parallel::try_map(RELEASES, RELEASES.len(), |version| {
        let out = layout.release(version);
        write_release(standin, version, &out).map(|_| ()).map_err(LabError::io("writing release", out))
    })?;
    let assets = layout.assets();
    fs::create_dir_all(&assets).map_err(LabError::io("creating", &assets))?;
    let script = assets.join(wrapper::FILE_NAME);
    fs::write(&script, wrapper::SCRIPT).map_err(LabError::io("writing", &script))?;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).map_err(LabError::io("protecting", &script))
}
