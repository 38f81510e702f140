//! Certificates for the project's Ingress hosts on the clusters samestack serves Ingresses on.
//!
//! The templates give every Ingress a TLS section naming a Secret (`<service>-tls`) that
//! production fills by its own means (cert-manager, a cloud load balancer). Locally, `up` makes
//! that Secret from a development CA of the user's own, like mkcert: one CA per user, kept in
//! `$XDG_STATE_HOME/samestack/ca/` (key mode 0600, never printed), so trusting `ca.crt` once
//! makes every project's `https://<host>:<port>/` verify. A certificate is issued again only when
//! its hosts change, the CA changes, or it has less than [`RENEW_BEFORE_DAYS`] days left, so a
//! second `up` changes nothing.

use std::path::{Path, PathBuf};

use k8s_openapi::jiff::{SignedDuration, Timestamp, tz::TimeZone};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::kube::object::str_at;

/// Annotations on the Secrets samestack issues, telling whether one can be kept.
const HOSTS_ANNOTATION: &str = "dev.samestack/tls-hosts";
const CA_ANNOTATION: &str = "dev.samestack/tls-ca";
const NOT_AFTER_ANNOTATION: &str = "dev.samestack/tls-not-after";
/// Leaf certificates live a year (browsers refuse much longer ones) ...
const LEAF_DAYS: i64 = 365;
/// ... and are issued again when less than this is left.
const RENEW_BEFORE_DAYS: i64 = 30;
/// The CA lives ten years, as mkcert's does.
const CA_YEARS: i16 = 10;

/// A problem with the development CA.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot {action} the development CA at {}: {source}\n  fix: check the directory's permissions, or remove it to make a new CA (then trust the new ca.crt)", path.display())]
    Io { path: PathBuf, action: &'static str, source: std::io::Error },
    #[error("the development CA at {} is unusable: {message}\n  fix: remove the directory; the next `samestack up` makes a new CA (then trust the new ca.crt)", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error(
        "cannot issue a certificate for {hosts}: {message}\n  fix: use host names made of letters, digits, dots and dashes"
    )]
    Issue { hosts: String, message: String },
}

impl crate::error::Classify for Error {
    fn kind(&self) -> crate::error::ErrorKind {
        match self {
            Error::Issue { .. } => crate::error::ErrorKind::User,
            Error::Io { .. } | Error::Invalid { .. } => crate::error::ErrorKind::Environment,
        }
    }
}
crate::classify!(Error);

/// The user's development CA.
pub struct LocalCa {
    dir: PathBuf,
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl LocalCa {
    /// Where the CA lives when nothing overrides it.
    pub fn default_dir() -> PathBuf {
        crate::cluster::kubeconfig::state_dir().join("ca")
    }

    /// Loads the CA in `dir`, making it first when there is none. Two runs racing each make
    /// one in a private directory and rename it into place; the loser loads the winner's.
    pub fn load_or_create(dir: &Path) -> Result<Self, Error> {
        if !dir.join("ca.crt").is_file() {
            create(dir)?;
        }
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name)).map_err(|source| Error::Io {
                path: dir.join(name),
                action: "read",
                source,
            })
        };
        let (cert_pem, key_pem) = (read("ca.crt")?, read("ca.key")?);
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| Error::Invalid { path: dir.to_path_buf(), message: format!("ca.key: {e}") })?;
        // The issuer is the CA's name and key; its certificate is only handed out.
        let issuer = Issuer::new(ca_params(Timestamp::now()), key);
        Ok(Self { dir: dir.to_path_buf(), cert_pem, issuer })
    }

    /// The CA certificate users trust (`curl --cacert`, the system or browser trust store).
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// A short fingerprint of the CA certificate: Secrets issued by another CA are issued again.
    fn id(&self) -> String {
        hex(&Sha256::digest(self.cert_pem.as_bytes())[..8])
    }

    /// A `kubernetes.io/tls` Secret for `hosts`, valid from yesterday (clock skew between the
    /// host and the nodes) for [`LEAF_DAYS`].
    fn issue(&self, namespace: &str, name: &str, hosts: &[String], now: Timestamp) -> Result<Value, Error> {
        let joined = hosts.join(",");
        let problem = |e: rcgen::Error| Error::Issue { hosts: joined.clone(), message: e.to_string() };
        let mut params = CertificateParams::new(hosts.to_vec()).map_err(problem)?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, hosts[0].as_str());
        params.distinguished_name.push(DnType::OrganizationName, "samestack development certificate");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let not_after = now + SignedDuration::from_hours(24 * LEAF_DAYS);
        params.not_before = date(now - SignedDuration::from_hours(24));
        params.not_after = date(not_after);
        let key = KeyPair::generate().map_err(problem)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(problem)?;
        let annotations = json!({
            HOSTS_ANNOTATION: joined,
            CA_ANNOTATION: self.id(),
            NOT_AFTER_ANNOTATION: date_only(not_after),
        });
        let data = json!({
            "tls.crt": crate::render::base64(cert.pem().as_bytes()),
            "tls.key": crate::render::base64(key.serialize_pem().as_bytes()),
            "ca.crt": crate::render::base64(self.cert_pem.as_bytes()),
        });
        Ok(tls_secret(namespace, name, annotations, data))
    }
}

fn tls_secret(namespace: &str, name: &str, annotations: Value, data: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "type": "kubernetes.io/tls",
        "data": data,
    })
}

fn create(dir: &Path) -> Result<(), Error> {
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, action, source }
    };
    let parent = dir.parent().unwrap_or(Path::new("."));
    crate::cluster::kubeconfig::create_private_dir(parent).map_err(io("create the directory of", dir))?;
    let temp = tempfile::Builder::new().prefix(".samestack-ca").tempdir_in(parent).map_err(io("create", dir))?;
    // The temporary directory becomes the CA directory: private, whatever tempfile's default.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o700)).map_err(io("create", dir))?;
    }
    let key = KeyPair::generate().map_err(|e| Error::Invalid { path: dir.into(), message: e.to_string() })?;
    let cert = ca_params(Timestamp::now())
        .self_signed(&key)
        .map_err(|e| Error::Invalid { path: dir.into(), message: e.to_string() })?;
    write_private(&temp.path().join("ca.key"), &key.serialize_pem()).map_err(io("write", dir))?;
    std::fs::write(temp.path().join("ca.crt"), cert.pem()).map_err(io("write", dir))?;
    let made = temp.keep();
    if let Err(source) = std::fs::rename(&made, dir) {
        let _ = std::fs::remove_dir_all(&made);
        // Another run made it meanwhile: use that one.
        if !dir.join("ca.crt").is_file() {
            return Err(Error::Io { path: dir.into(), action: "create", source });
        }
    }
    Ok(())
}

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(content.as_bytes())
}

/// The CA's name and constraints. Built the same way on every load: leaf certificates name
/// their issuer from these, so they must match the stored certificate's.
fn ca_params(now: Timestamp) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, "samestack development CA");
    params.distinguished_name.push(DnType::OrganizationName, "samestack");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let today = now.to_zoned(TimeZone::UTC).date();
    params.not_before = date(now - SignedDuration::from_hours(24));
    params.not_after =
        rcgen::date_time_ymd((today.year() + CA_YEARS).into(), today.month() as u8, today.day().min(28) as u8);
    params
}

fn date(at: Timestamp) -> time::OffsetDateTime {
    let d = at.to_zoned(TimeZone::UTC).date();
    rcgen::date_time_ymd(d.year().into(), d.month() as u8, d.day() as u8)
}

fn date_only(at: Timestamp) -> String {
    at.to_zoned(TimeZone::UTC).date().to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One TLS Secret the Ingresses in a manifest set name and the set does not provide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub namespace: String,
    pub name: String,
    /// Every host the Ingresses list for this Secret, sorted.
    pub hosts: Vec<String>,
}

/// The TLS Secrets the Ingresses in `manifests` need and nobody else provides.
pub fn wanted(manifests: &[Value], default_namespace: &str) -> Vec<Wanted> {
    let provided = |ns: &str, name: &str| {
        manifests.iter().any(|m| {
            str_at(m, "/kind") == Some("Secret")
                && str_at(m, "/metadata/name") == Some(name)
                && str_at(m, "/metadata/namespace").unwrap_or(default_namespace) == ns
        })
    };
    let mut wanted: Vec<Wanted> = Vec::new();
    for ingress in manifests.iter().filter(|m| str_at(m, "/kind") == Some("Ingress")) {
        let namespace = str_at(ingress, "/metadata/namespace").unwrap_or(default_namespace);
        for tls in ingress.pointer("/spec/tls").and_then(Value::as_array).into_iter().flatten() {
            let Some(name) = str_at(tls, "/secretName") else { continue };
            if provided(namespace, name) {
                continue;
            }
            let hosts = tls.get("hosts").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str);
            match wanted.iter_mut().find(|w| w.namespace == namespace && w.name == name) {
                Some(w) => w.hosts.extend(hosts.map(String::from)),
                None => wanted.push(Wanted {
                    namespace: namespace.into(),
                    name: name.into(),
                    hosts: hosts.map(String::from).collect(),
                }),
            }
        }
    }
    for w in &mut wanted {
        w.hosts.sort();
        w.hosts.dedup();
    }
    wanted.retain(|w| !w.hosts.is_empty());
    wanted
}

/// The Secret to apply for `wanted`: the live one when samestack issued it for the same hosts
/// with this CA and it is not due for renewal, else a new one.
pub fn secret(ca: &LocalCa, wanted: &Wanted, live: Option<&Value>, now: Timestamp) -> Result<Value, Error> {
    if let Some(live) = live.filter(|l| still_good(l, &wanted.hosts, &ca.id(), now)) {
        let annotations: serde_json::Map<String, Value> = [HOSTS_ANNOTATION, CA_ANNOTATION, NOT_AFTER_ANNOTATION]
            .into_iter()
            .map(|key| (key.to_string(), live["metadata"]["annotations"][key].clone()))
            .collect();
        return Ok(tls_secret(&wanted.namespace, &wanted.name, annotations.into(), live["data"].clone()));
    }
    ca.issue(&wanted.namespace, &wanted.name, &wanted.hosts, now)
}

fn still_good(live: &Value, hosts: &[String], ca: &str, now: Timestamp) -> bool {
    let annotation = |key: &str| live.pointer("/metadata/annotations").and_then(|a| a.get(key)).and_then(Value::as_str);
    let renew_from = date_only(now + SignedDuration::from_hours(24 * RENEW_BEFORE_DAYS));
    annotation(HOSTS_ANNOTATION) == Some(hosts.join(",").as_str())
        && annotation(CA_ANNOTATION) == Some(ca)
        // ISO dates compare as strings.
        && annotation(NOT_AFTER_ANNOTATION).is_some_and(|d| d > renew_from.as_str())
        && ["tls.crt", "tls.key"].iter().all(|k| live["data"].get(k).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingress(ns: &str, secret: &str, hosts: &[&str]) -> Value {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i", "namespace": ns},
            "spec": {"tls": [{"hosts": hosts, "secretName": secret}]}})
    }

    #[test]
    fn wanted_secrets_are_those_the_ingresses_name_and_the_set_lacks() {
        let provided =
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "own-tls", "namespace": "shop"}});
        let set = [
            ingress("shop", "api-tls", &["b.localhost"]),
            ingress("shop", "api-tls", &["a.localhost", "b.localhost"]),
            ingress("shop", "own-tls", &["c.localhost"]),
            ingress("shop", "empty-tls", &[]),
            provided,
        ];
        let wanted = wanted(&set, "default");
        assert_eq!(
            wanted,
            [Wanted {
                namespace: "shop".into(),
                name: "api-tls".into(),
                hosts: vec!["a.localhost".into(), "b.localhost".into()]
            }]
        );
    }

    #[test]
    fn the_ca_is_made_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("state/ca");
        let first = LocalCa::load_or_create(&ca_dir).unwrap();
        let again = LocalCa::load_or_create(&ca_dir).unwrap();
        assert_eq!(first.cert_pem, again.cert_pem);
        assert_eq!(first.cert_path(), ca_dir.join("ca.crt"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(ca_dir.join("ca.key")).unwrap().permissions().mode() & 0o777, 0o600);
            for made in [dir.path().join("state"), ca_dir.clone()] {
                let mode = std::fs::metadata(&made).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o700, "{} is {mode:o}", made.display());
            }
        }
        std::fs::write(ca_dir.join("ca.key"), "not a key").unwrap();
        let err = LocalCa::load_or_create(&ca_dir).err().unwrap().to_string();
        assert!(err.contains("is unusable: ca.key") && err.contains("fix: remove the directory"), "{err}");
    }

    #[test]
    fn a_secret_is_kept_until_its_hosts_or_ca_change_or_it_nears_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let ca = LocalCa::load_or_create(&dir.path().join("ca")).unwrap();
        let now: Timestamp = "2026-11-22T08:00:00Z".parse().unwrap();
        let w = Wanted { namespace: "shop".into(), name: "api-tls".into(), hosts: vec!["api.localhost".into()] };
        let issued = secret(&ca, &w, None, now).unwrap();
        assert_eq!(issued["type"], "kubernetes.io/tls");
        assert_eq!(issued["metadata"]["annotations"][NOT_AFTER_ANNOTATION], "2027-11-22");
        assert_eq!(secret(&ca, &w, Some(&issued), now).unwrap(), issued, "kept as it is");
        let other_hosts = Wanted { hosts: vec!["shop.localhost".into()], ..w.clone() };
        assert_ne!(secret(&ca, &other_hosts, Some(&issued), now).unwrap()["data"], issued["data"]);
        let near_expiry: Timestamp = "2027-10-30T00:00:00Z".parse().unwrap();
        assert_ne!(secret(&ca, &w, Some(&issued), near_expiry).unwrap()["data"], issued["data"]);
        let other = LocalCa::load_or_create(&dir.path().join("other")).unwrap();
        assert_ne!(secret(&other, &w, Some(&issued), now).unwrap()["data"], issued["data"]);
    }

    #[test]
    fn the_certificate_verifies_against_the_ca_for_its_hosts() {
        // openssl is the independent check; without it this test fails in CI and skips loudly elsewhere.
        let Ok(version) = std::process::Command::new("openssl").arg("version").output() else {
            let in_ci = crate::ui::is_ci(std::env::var("CI").ok().as_deref());
            assert!(!in_ci, "openssl is not installed, and CI requires this check to run");
            eprintln!("SKIP: openssl is not installed");
            return;
        };
        assert!(version.status.success());
        let dir = tempfile::tempdir().unwrap();
        let ca = LocalCa::load_or_create(&dir.path().join("ca")).unwrap();
        let w = Wanted {
            namespace: "s".into(),
            name: "t".into(),
            hosts: vec!["api.localhost".into(), "www.localhost".into()],
        };
        let issued = secret(&ca, &w, None, Timestamp::now()).unwrap();
        let pem = decode_b64(issued["data"]["tls.crt"].as_str().unwrap());
        let leaf = dir.path().join("leaf.crt");
        std::fs::write(&leaf, pem).unwrap();
        for host in ["api.localhost", "www.localhost", "other.localhost"] {
            let out = std::process::Command::new("openssl")
                .args(["verify", "-purpose", "sslserver", "-verify_hostname", host, "-CAfile"])
                .arg(ca.cert_path())
                .arg(&leaf)
                .output()
                .unwrap();
            assert_eq!(
                out.status.success(),
                host != "other.localhost",
                "{host}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    fn decode_b64(s: &str) -> Vec<u8> {
        const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u32, 0);
        for c in s.bytes().filter(|&c| c != b'=') {
            acc = acc << 6 | T.iter().position(|&t| t == c).unwrap() as u32;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        out
    }
}
