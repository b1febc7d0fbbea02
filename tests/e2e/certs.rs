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

/// Writes `ca.pem`/`ca.key` and `<name>.pem`/`<name>.key` (P-256) for `dns_names` into `dir`.
pub fn server_certificate(dir: &Path, name: &str, dns_names: &[&str]) {
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
    let (key, csr, pem, ext) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    let subject = format!("/CN={}", dns_names.first().copied().unwrap_or("localhost"));
    let req = ["-keyout", &key, "-out", &csr, "-subj", &subject];
    openssl(dir, &[&["req"], &ec[..], &req[..]].concat());
    let mut alt: Vec<String> = dns_names.iter().map(|n| format!("DNS:{n}")).collect();
    alt.push("IP:127.0.0.1".into());
    std::fs::write(
        dir.join(&ext),
        format!(
            "subjectAltName={}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
            alt.join(",")
        ),
    )
    .unwrap();
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
            &ext,
        ],
    );
}
