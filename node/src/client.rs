//! Talking to a cluster as a client: a profile (endpoint and certificate files) and a
//! connected gRPC client over mutual TLS.
//!
//! ```toml
//! endpoint = "127.0.0.1:7001"
//! ca_cert = "certs/ca.pem"
//! cert = "certs/billing.pem"
//! key = "certs/billing.key"
//! ```

use std::path::{Path, PathBuf};

use keyshard_grpc::{connect, install_crypto_provider, ConnectOptions, ExpectServer, TlsMaterial};
use keyshard_pki::SecretPem;
use keyshard_proto::client::keyshard_client::KeyshardClient;
use serde::Deserialize;
use tonic::transport::Channel;

/// Where a client connects and with which certificate.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// A node's `host:port`.
    pub endpoint: String,
    /// The cluster CA certificate.
    pub ca_cert: PathBuf,
    /// The client certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// A client-side failure, in words.
#[derive(Debug)]
pub struct ClientError(pub String);

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ClientError {}

impl Profile {
    /// Reads a profile; relative paths in it are relative to the profile's directory.
    pub fn load(path: &Path) -> Result<Profile, ClientError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ClientError(format!("cannot read profile {}: {e}", path.display())))?;
        let mut p: Profile = toml::from_str(&text)
            .map_err(|e| ClientError(format!("profile {}: {}", path.display(), e.message())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for f in [&mut p.ca_cert, &mut p.cert, &mut p.key] {
            if f.is_relative() {
                *f = base.join(&*f);
            }
        }
        Ok(p)
    }

    /// The profile as TOML.
    pub fn to_toml(&self) -> String {
        format!(
            "endpoint = {:?}\nca_cert = {:?}\ncert = {:?}\nkey = {:?}\n",
            self.endpoint,
            self.ca_cert.display().to_string(),
            self.cert.display().to_string(),
            self.key.display().to_string()
        )
    }

    /// Connects to the profile's endpoint (any cluster node's certificate is accepted).
    pub async fn connect(&self) -> Result<KeyshardClient<Channel>, ClientError> {
        self.connect_to(&self.endpoint).await
    }

    /// Connects to another node with the same certificate.
    pub async fn connect_to(&self, endpoint: &str) -> Result<KeyshardClient<Channel>, ClientError> {
        let channel = self.channel_to(endpoint).await?;
        Ok(KeyshardClient::new(channel)
            .max_decoding_message_size(keyshard_core::node::wire::MAX_MESSAGE)
            .max_encoding_message_size(keyshard_core::node::wire::MAX_MESSAGE))
    }

    /// A mutual-TLS channel to a node (for any service on it: the client API, health).
    pub async fn channel_to(&self, endpoint: &str) -> Result<Channel, ClientError> {
        install_crypto_provider();
        let read = |p: &Path| {
            std::fs::read_to_string(p)
                .map_err(|e| ClientError(format!("cannot read {}: {e}", p.display())))
        };
        let tls = TlsMaterial {
            ca_pem: read(&self.ca_cert)?,
            cert_pem: read(&self.cert)?,
            key_pem: SecretPem::new(read(&self.key)?),
        };
        let config = tls
            .client_config()
            .map_err(|e| ClientError(format!("TLS: {e}")))?;
        let channel = connect(
            endpoint,
            config,
            ExpectServer::AnyNode,
            &ConnectOptions::default(),
            None,
        )
        .await
        .map_err(|e| ClientError(format!("cannot connect to {endpoint}: {e}")))?;
        Ok(channel)
    }
}
