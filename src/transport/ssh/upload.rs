//! Atomic file placement over SFTP: write a temporary file beside the target, set its mode,
//! then rename it over the target, so a reader never sees a half-written binary.

use crate::inventory::HostName;
use std::time::{SystemTime, UNIX_EPOCH};

use russh::client::Handle;
use russh::ChannelMsg;
use russh_sftp::client::rawsession::RawSftpSession;
use russh_sftp::client::SftpSession;
use russh_sftp::protocol::{FileAttributes, Packet, StatusCode};
use tokio::io::AsyncWriteExt;

use super::host_key::HostKeyCheck;
use crate::transport::command::{Source, Upload};
use crate::transport::error::TransportError;

type Client = Handle<HostKeyCheck>;

/// The OpenSSH extension that renames over an existing file (plain SFTP v3 rename refuses).
const POSIX_RENAME: &str = "posix-rename@openssh.com";

pub(crate) async fn upload(
    handle: &Client,
    host: &HostName,
    upload: &Upload,
) -> Result<(), TransportError> {
    let target = upload.remote_path.as_str();
    let temporary = temporary_path(target);
    let sftp_error = |operation, path: &str| sftp_failure(host, operation, path);

    let sftp = SftpSession::new(sftp_stream(handle, host).await?)
        .await
        .map_err(sftp_error("start", target))?;
    let written = write_temporary(&sftp, host, upload, &temporary).await;
    let placed = match written {
        Ok(()) => rename_over(handle, host, &temporary, target).await,
        Err(e) => Err(e),
    };
    if placed.is_err() {
        // Leave no stray temporary file; the original error is the one worth reporting.
        let _ = sftp.remove_file(temporary.as_str()).await;
    }
    let _ = sftp.close().await;
    placed
}

/// Maps an SFTP failure of `operation` on `path` to the transport's error for `host`.
fn sftp_failure(
    host: &HostName,
    operation: &'static str,
    path: &str,
) -> impl FnOnce(russh_sftp::client::error::Error) -> TransportError {
    let (host, path) = (host.clone(), path.to_string());
    move |source| TransportError::Sftp {
        host,
        operation,
        path,
        source,
    }
}

/// The login's private folder for uploads that the become user installs (in its home, 0700).
const PRIVATE_FOLDER: &str = ".cluster-upgrade-uploads";

/// A file the login wrote to its private upload folder, for the become user to install.
pub(crate) struct Placed {
    /// Where the login wrote it.
    path: String,
    /// Where it goes, and its mode there.
    target: String,
    mode: u32,
}

impl Placed {
    /// The command (run as the become user) that copies the file beside its target, owned by
    /// that user with the upload's mode, and renames it over the target: `install`, then `mv`.
    pub(crate) fn install_command(&self) -> String {
        let temporary = temporary_path(&self.target);
        let q =
            |text: &str| crate::transport::quote::quote(text).unwrap_or_else(|_| "''".to_string());
        format!(
            "install -m {:04o} {} {tmp} && mv -f {tmp} {}",
            self.mode & 0o7777,
            q(&self.path),
            q(&self.target),
            tmp = q(&temporary)
        )
    }

    /// Removes the login's copy (best effort: the folder is private).
    pub(crate) async fn remove(&self, handle: &Client, host: &HostName) {
        if let Ok(stream) = sftp_stream(handle, host).await {
            if let Ok(sftp) = SftpSession::new(stream).await {
                let _ = sftp.remove_file(self.path.as_str()).await;
                let _ = sftp.close().await;
            }
        }
    }
}

/// Writes the upload to the login's private folder (`~/.cluster-upgrade-uploads`, mode 0700,
/// the file 0600), where the become user installs it from: the login may not write where the
/// file goes, and must not own what is there.
pub(crate) async fn upload_private(
    handle: &Client,
    host: &HostName,
    upload: &Upload,
) -> Result<Placed, TransportError> {
    let target = upload.remote_path.as_str();
    let sftp_error = |operation, path: &str| sftp_failure(host, operation, path);
    // Paths in the characters `quote` takes as they are (the install command quotes them).
    crate::transport::quote::quote(target).map_err(|source| TransportError::Quote {
        host: host.clone(),
        source,
    })?;
    let sftp = SftpSession::new(sftp_stream(handle, host).await?)
        .await
        .map_err(sftp_error("start", target))?;
    let home = sftp
        .canonicalize(".")
        .await
        .map_err(sftp_error("find the login's home", "."))?;
    let folder = format!("{}/{PRIVATE_FOLDER}", home.trim_end_matches('/'));
    // It may exist from an earlier upload; set its mode either way.
    let _ = sftp.create_dir(folder.as_str()).await;
    let private = FileAttributes {
        permissions: Some(0o700),
        ..FileAttributes::default()
    };
    sftp.set_metadata(folder.as_str(), private)
        .await
        .map_err(sftp_error("chmod", &folder))?;
    let name = target.rsplit('/').next().unwrap_or(target);
    let path = temporary_path(&format!("{folder}/{name}"));
    let login_copy = Upload {
        source: upload.source.clone(),
        remote_path: path.clone(),
        mode: 0o600,
    };
    let written = write_temporary(&sftp, host, &login_copy, &path).await;
    if written.is_err() {
        let _ = sftp.remove_file(path.as_str()).await;
    }
    let _ = sftp.close().await;
    written.map(|()| Placed {
        path,
        target: target.to_string(),
        mode: upload.mode,
    })
}

async fn write_temporary(
    sftp: &SftpSession,
    host: &HostName,
    upload: &Upload,
    temporary: &str,
) -> Result<(), TransportError> {
    let sftp_error = |operation| {
        let (host, path) = (host.clone(), temporary.to_string());
        move |source| TransportError::Sftp {
            host,
            operation,
            path,
            source,
        }
    };
    let io_error = |operation| {
        let (host, path) = (host.clone(), temporary.to_string());
        move |e: std::io::Error| TransportError::Sftp {
            host,
            operation,
            path,
            source: russh_sftp::client::error::Error::IO(e.to_string()),
        }
    };
    let mut file = sftp.create(temporary).await.map_err(sftp_error("create"))?;
    match &upload.source {
        Source::Bytes(bytes) => file.write_all(bytes).await.map_err(io_error("write"))?,
        Source::File(path) => {
            let mut local = tokio::fs::File::open(path).await.map_err(|source| {
                TransportError::UploadSource {
                    host: host.clone(),
                    path: path.clone(),
                    source,
                }
            })?;
            tokio::io::copy(&mut local, &mut file)
                .await
                .map_err(io_error("write"))?;
        }
    }
    // Durable before the rename: after a crash the target is the old binary or the whole new
    // one, never an empty file. (A no-op on servers without fsync@openssh.com.)
    file.flush().await.map_err(io_error("write"))?;
    file.sync_all().await.map_err(sftp_error("fsync"))?;
    file.shutdown().await.map_err(io_error("close"))?;
    let mode = FileAttributes {
        permissions: Some(upload.mode & 0o7777),
        ..FileAttributes::default()
    };
    sftp.set_metadata(temporary, mode)
        .await
        .map_err(sftp_error("chmod"))?;
    Ok(())
}

/// Renames with posix-rename on a raw SFTP session (the high-level one has no way to send it).
async fn rename_over(
    handle: &Client,
    host: &HostName,
    from: &str,
    to: &str,
) -> Result<(), TransportError> {
    let sftp_error = |operation| {
        let (host, path) = (host.clone(), to.to_string());
        move |source| TransportError::Sftp {
            host,
            operation,
            path,
            source,
        }
    };
    let raw = RawSftpSession::new(sftp_stream(handle, host).await?);
    let version = raw.init().await.map_err(sftp_error("start"))?;
    let result = if version.extensions.contains_key(POSIX_RENAME) {
        let mut data = Vec::new();
        for path in [from, to] {
            data.extend_from_slice(&(path.len() as u32).to_be_bytes());
            data.extend_from_slice(path.as_bytes());
        }
        match raw.extended(POSIX_RENAME, data).await {
            Ok(Packet::Status(status)) if status.status_code == StatusCode::Ok => Ok(()),
            Ok(Packet::Status(status)) => Err(russh_sftp::client::error::Error::Status(status)),
            Ok(_) => Err(russh_sftp::client::error::Error::UnexpectedPacket),
            Err(e) => Err(e),
        }
    } else {
        // Not atomic: there is a moment without the target. Only for servers lacking the extension.
        let _ = raw.remove(to).await;
        raw.rename(from, to).await.map(|_| ())
    };
    let _ = raw.close_session();
    result.map_err(sftp_error("rename"))
}

/// A channel running the sftp subsystem, as a byte stream.
async fn sftp_stream(
    handle: &Client,
    host: &HostName,
) -> Result<russh::ChannelStream<russh::client::Msg>, TransportError> {
    let channel_error = |source| TransportError::Channel {
        host: host.clone(),
        source: Box::new(source),
    };
    let mut channel = handle.channel_open_session().await.map_err(channel_error)?;
    channel
        .request_subsystem(true, "sftp")
        .await
        .map_err(channel_error)?;
    // Wait for the reply so a server without SFTP fails here, clearly, not as a stream error later.
    loop {
        match channel.wait().await {
            Some(ChannelMsg::Success) => break,
            Some(ChannelMsg::Failure) | Some(ChannelMsg::Close) | None => {
                return Err(TransportError::Refused {
                    host: host.clone(),
                    request: "sftp",
                })
            }
            Some(_) => {}
        }
    }
    Ok(channel.into_stream())
}

/// A hidden name in the target's folder, so the final rename stays within one file system.
fn temporary_path(target: &str) -> String {
    let (folder, name) = match target.rsplit_once('/') {
        Some((folder, name)) => (format!("{folder}/"), name),
        None => (String::new(), target),
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{folder}.{name}.upload-{}-{nanos:09}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::temporary_path;

    #[test]
    fn temporary_file_sits_beside_the_target() {
        let path = temporary_path("/usr/local/bin/ipfs-cluster-service");
        assert!(
            path.starts_with("/usr/local/bin/.ipfs-cluster-service.upload-"),
            "{path}"
        );
        assert!(temporary_path("relative").starts_with(".relative.upload-"));
    }
}
