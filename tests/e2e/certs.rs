//! Test certificates made with the openssl CLI: a CA and a server certificate it signed for the
//! given DNS names (and 127.0.0.1), valid for two days.

use std::path::Path;
use std::process::Command;

/// Runs `openssl args` in `dir`, failing the test with its stderr.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes `ca.pem`/`ca.key` (once) and `<name>.pem`/`<name>.key` (P-256), a server certificate
/// for `dns_names` (and 127.0.0.1) signed by that CA, into `dir`.
pub fn server_certificate(dir: &Path, name: &str, dns_names: &[&str]) {
    let mut alt: Vec<String> = dns_names.iter().map(|n| format!("DNS:{n}")).collect();
    alt.push("IP:127.0.0.1".into());
    let subject = dns_names.first().copied().unwrap_or("localhost");
    let ext = format!(
        "subjectAltName={}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        alt.join(",")
    );
    certificate(dir, name, subject, &ext);
}

/// Writes a client certificate for `subject` signed by the CA in `dir` (made if need be):
/// `<name>.pem`/`<name>.key`.
pub fn client_certificate(dir: &Path, name: &str, subject: &str) {
    let ext = "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n";
    certificate(dir, name, subject, ext);
}

/// `<name>.pem`/`<name>.key` for `/CN=<subject>` with the X.509 extensions `ext`, signed by
/// `ca.pem` in `dir` (made first if it is not there).
fn certificate(dir: &Path, name: &str, subject: &str, ext: &str) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    if !dir.join("ca.pem").exists() {
        let ca = [
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=sluice e2e CA",
        ];
        openssl(dir, &[&["req", "-x509"], &ec[..], &ca[..]].concat());
    }
    let (key, csr, pem, ext_file) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    let subject = format!("/CN={subject}");
    let req = ["-keyout", &key, "-out", &csr, "-subj", &subject];
    openssl(dir, &[&["req"], &ec[..], &req[..]].concat());
    std::fs::write(dir.join(&ext_file), ext).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext_file,
        ],
    );
}
