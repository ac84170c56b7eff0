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
            let exe = std::env::current_exe()
                .map_err(LabError::io("locating", "the running executable"))?;
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
    let assets = layout.assets();
    fs::create_dir_all(&assets).map_err(LabError::io("creating", &assets))?;
    let standin = stripped(standin, &assets);
    parallel::try_map(RELEASES, RELEASES.len(), |version| {
        let out = layout.release(version);
        write_release(&standin, version, &out)
            .map(|_| ())
            .map_err(LabError::io("writing release", out))
    })?;
    stage_wrapper(layout)
}

/// Writes `assets/ipfs-cluster-svc`, the one file a lab of real binaries stages (its releases
/// are installed from where `scripts/real-releases` built them).
pub fn stage_wrapper(layout: &Layout) -> Result<()> {
    let assets = layout.assets();
    fs::create_dir_all(&assets).map_err(LabError::io("creating", &assets))?;
    let script = assets.join(wrapper::FILE_NAME);
    fs::write(&script, wrapper::SCRIPT).map_err(LabError::io("writing", &script))?;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755))
        .map_err(LabError::io("protecting", &script))
}

/// A copy of the stand-in without debug info, or the stand-in itself if `strip` is missing or
/// fails. A debug build is ~20 MB, mostly DWARF; every host gets two copies over SSH, and
/// checksums are computed on each, so this is most of the cost of a large `up`. Symbols stay,
/// so a panic's backtrace still names functions.
fn stripped(standin: &Path, assets: &Path) -> PathBuf {
    let out = assets.join("cluster-peer");
    let status = std::process::Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&out)
        .arg(standin)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    match status {
        Ok(status) if status.success() => out,
        _ => standin.to_path_buf(),
    }
}
