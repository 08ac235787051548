//! Which store holds the node's Raft log and sealed shares.

use std::fmt;
use std::path::PathBuf;

/// The store: embedded sled (the default) or a MongoDB deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreConfig {
    /// sled in a directory under the data dir.
    Sled {
        /// The sled directory (`<data_dir>/sled`).
        path: PathBuf,
    },
    /// MongoDB at this URI.
    Mongo(MongoUri),
}

/// A `mongodb://` connection string. It may carry a password, so `Debug` and `Display` redact
/// the user information and any `...password...=` option; [`MongoUri::expose`] gives the real one
/// to the driver.
#[derive(Clone, PartialEq, Eq)]
pub struct MongoUri(String);

impl MongoUri {
    /// Checks the shape of `s` (the driver checks the rest when it connects). Errors never
    /// repeat the string, which may hold a password.
    pub fn parse(s: &str) -> Result<MongoUri, String> {
        if s.starts_with("mongodb+srv://") {
            return Err(
                "mongodb+srv:// needs a DNS SRV resolver, which this build leaves out; list the \
                 hosts in a mongodb:// URI"
                    .into(),
            );
        }
        let Some(rest) = s.strip_prefix("mongodb://") else {
            return Err("expected \"sled\" or a mongodb:// URI".into());
        };
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("the URI contains whitespace or control characters".into());
        }
        let hosts = after_userinfo(rest).split(['/', '?']).next().unwrap_or("");
        if hosts.is_empty() || hosts.split(',').any(str::is_empty) {
            return Err("the URI names no host (mongodb://host[:port][,host...]/...)".into());
        }
        Ok(MongoUri(s.to_string()))
    }

    /// The URI, password included, for the driver only. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// The part of `rest` (after the scheme) past the user information, if any. The user
/// information ends at the last `@` before the path or options (MongoDB requires `@`, `/`
/// and `?` in user names and passwords to be percent-encoded).
fn after_userinfo(rest: &str) -> &str {
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(i) => &rest[i + 1..],
        None => rest,
    }
}

impl fmt::Display for MongoUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rest = &self.0["mongodb://".len()..];
        let shown = after_userinfo(rest);
        f.write_str("mongodb://")?;
        if shown.len() != rest.len() {
            f.write_str("***@")?;
        }
        match shown.split_once('?') {
            None => f.write_str(shown),
            Some((path, query)) => {
                write!(f, "{path}?")?;
                for (i, pair) in query.split('&').enumerate() {
                    if i > 0 {
                        f.write_str("&")?;
                    }
                    match pair.split_once('=') {
                        Some((k, _)) if k.to_ascii_lowercase().contains("password") => {
                            write!(f, "{k}=***")?
                        }
                        _ => f.write_str(pair)?,
                    }
                }
                Ok(())
            }
        }
    }
}

impl fmt::Debug for MongoUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MongoUri({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let uri = MongoUri::parse(
            "mongodb://admin:s3cr%40t@db1:27017,db2/keyshard?replicaSet=rs&tlsCertificateKeyFilePassword=hunter2",
        )
        .unwrap();
        for shown in [uri.to_string(), format!("{uri:?}")] {
            assert!(
                !shown.contains("s3cr") && !shown.contains("hunter2"),
                "{shown}"
            );
            assert!(!shown.contains("admin"), "{shown}");
            assert!(
                shown.contains("db1:27017,db2/keyshard?replicaSet=rs&"),
                "{shown}"
            );
        }
        assert!(uri.expose().contains("s3cr%40t"));
        let plain = MongoUri::parse("mongodb://127.0.0.1:27017/?directConnection=true").unwrap();
        assert_eq!(
            plain.to_string(),
            "mongodb://127.0.0.1:27017/?directConnection=true"
        );
    }

    #[test]
    fn bad_uris_are_refused_without_echoing_them() {
        for bad in [
            "mongodb://",
            "mongodb://user:pw@",
            "mongodb://user:pw@/db",
            "mongodb://a,,b/",
            "mongodb://user:pw@host /db",
            "mongodb+srv://user:pw@cluster.example/",
            "postgres://user:pw@host/",
        ] {
            let e = MongoUri::parse(bad).unwrap_err();
            assert!(!e.contains("pw"), "{e}");
        }
    }
}
