//! `goschedctl certs init|issue`: a cluster CA and node certificates for a dev or test
//! cluster (production may use its own PKI: any CA works whose node certificates carry
//! the names [`super::node_name`] and [`super::ANY_NODE`]).

use std::path::{Path, PathBuf};

use chrono::{Datelike, Utc};
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use crate::ids::NodeId;

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";
/// Years a CA (10) and a node certificate (2) are valid from today.
const CA_YEARS: i32 = 10;
const NODE_YEARS: i32 = 2;

/// The files of node `id`'s certificate and key in `dir`.
pub fn node_files(dir: &Path, id: NodeId) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("node{id}.pem")),
        dir.join(format!("node{id}.key")),
    )
}

/// The CA certificate's file in `dir`.
pub fn ca_file(dir: &Path) -> PathBuf {
    dir.join(CA_CERT)
}

/// Makes a new cluster CA in `dir` (refusing to replace one: its nodes' certificates
/// would no longer verify).
pub fn init(dir: &Path, cluster: &str) -> anyhow::Result<PathBuf> {
    let cert_file = ca_file(dir);
    anyhow::ensure!(
        !cert_file.exists(),
        "{} exists: a new CA would invalidate every certificate it signed",
        cert_file.display()
    );
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, format!("goscheduler CA {cluster}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    valid_for(&mut params, CA_YEARS);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    std::fs::create_dir_all(dir)?;
    write_secret(&dir.join(CA_KEY), &key.serialize_pem())?;
    std::fs::write(&cert_file, cert.pem())?;
    Ok(cert_file)
}

/// Issues node `id`'s certificate and key into `dir`, signed by the CA there. `extra`
/// names (host names or IP addresses) are added for clients that check them.
pub fn issue(dir: &Path, id: NodeId, extra: &[String]) -> anyhow::Result<(PathBuf, PathBuf)> {
    let ca_pem = std::fs::read_to_string(ca_file(dir))
        .map_err(|e| anyhow::anyhow!("{}: {e} (run `certs init` first)", dir.display()))?;
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(dir.join(CA_KEY))?)?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;

    let names = [super::node_name(id), super::ANY_NODE.to_string()]
        .into_iter()
        .chain(extra.iter().cloned())
        .collect::<Vec<_>>();
    let mut params = CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(DnType::CommonName, super::node_name(id));
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    // A node is a server to its peers' calls and a client of theirs.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    valid_for(&mut params, NODE_YEARS);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    let (cert_file, key_file) = node_files(dir, id);
    write_secret(&key_file, &key.serialize_pem())?;
    std::fs::write(&cert_file, cert.pem())?;
    Ok((cert_file, key_file))
}

/// Valid from yesterday (clocks differ) for `years`.
fn valid_for(params: &mut CertificateParams, years: i32) {
    let from = Utc::now() - chrono::Duration::days(1);
    params.not_before = date_time_ymd(from.year(), from.month() as u8, from.day() as u8);
    // The 28th: every month has one.
    params.not_after = date_time_ymd(from.year() + years, from.month() as u8, 28);
}

/// Writes a private key readable by its owner only.
fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_certificate_names_its_node_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), "t").unwrap();
        assert!(init(dir.path(), "t").is_err(), "a CA is never replaced");
        let (cert, _) = issue(dir.path(), 3, &[]).unwrap();
        let pem = std::fs::read(cert).unwrap();
        let der = rustls_pki_types::CertificateDer::from_pem_slice(&pem).unwrap();
        use rustls_pki_types::pem::PemObject;
        let certs = [der];
        assert!(super::super::check_peer(Some(&certs), 3).is_ok());
        let other = super::super::check_peer(Some(&certs), 2).unwrap_err();
        assert!(other.contains("does not name node 2"), "{other}");
        assert!(super::super::check_peer(None, 3).is_err());
    }
}
