//! An S3-compatible server in process: s3s-fs over a local folder, on a loopback port.
//!
//! Fast to start (well under a second) and good for happy paths and `ferry dev`. It does not verify
//! `Content-MD5`, accepts wrong ETags at Complete and has no flexible checksums (see
//! `shared/reference/s3-multipart.md`): tests of what S3 must reject use LocalStack instead.

use hyper_util::rt::TokioIo;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Access key the local server accepts.
pub const ACCESS_KEY: &str = "ferry-local";
/// Secret key the local server accepts.
pub const SECRET_KEY: &str = "ferry-local-secret";

/// A running s3s-fs server; stops when dropped.
#[derive(Debug)]
pub struct LocalS3 {
    addr: SocketAddr,
    root: PathBuf,
    task: JoinHandle<()>,
}

impl LocalS3 {
    /// Serves the folder `root` (created if missing; each subfolder is a bucket) on `addr`
    /// (use `127.0.0.1:0` for any free port).
    ///
    /// # Errors
    /// When the folder cannot be created or the address cannot be bound.
    pub async fn start(root: impl AsRef<Path>, addr: SocketAddr) -> io::Result<Self> {
        let root = root.as_ref().to_path_buf();
        std::fs::create_dir_all(&root)?;
        let fs = s3s_fs::FileSystem::new(&root).map_err(|e| io::Error::other(format!("{e:?}")))?;
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, root, task })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The folder served.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Multipart uploads begun and neither completed nor aborted (s3s-fs does not implement
    /// ListMultipartUploads; it keeps one `.upload-<id>.json` file per open upload, and part files
    /// `.upload_id-<id>.part-<n>`). Returns (open uploads, part files).
    pub fn pending_multipart(&self) -> (usize, usize) {
        let Ok(entries) = std::fs::read_dir(&self.root) else { return (0, 0) };
        let names: Vec<String> =
            entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        let uploads = names.iter().filter(|n| n.starts_with(".upload-") && n.ends_with(".json")).count();
        let parts = names.iter().filter(|n| n.starts_with(".upload_id-")).count();
        (uploads, parts)
    }

    /// Creates a bucket (a folder) if it does not exist.
    ///
    /// # Errors
    /// When the folder cannot be created.
    pub fn create_bucket(&self, name: &str) -> io::Result<()> {
        std::fs::create_dir_all(self.root.join(name))
    }
}

impl Drop for LocalS3 {
    fn drop(&mut self) {
        self.task.abort();
    }
}
