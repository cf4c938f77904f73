//! Picks, at build time, the roots AWS's endpoints chain to (Amazon Trust Services, and the
//! Starfield root that cross-signs them) out of the Mozilla store, as PEM in `OUT_DIR`:
//! scanning the whole store at every cold start cost about a millisecond.

use std::io::Write;

use base64::Engine;

/// Subject names the roots are picked by.
const AWS_ROOTS: [&[u8]; 2] = [
    b"Amazon Root CA ",
    b"Starfield Services Root Certificate Authority - G2",
];

fn main() {
    let out = std::path::Path::new(&std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("aws_roots.pem");
    let mut pem = Vec::new();
    for root in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        let der: &[u8] = root.as_ref();
        let names_an_aws_root = AWS_ROOTS
            .iter()
            .any(|name| der.windows(name.len()).any(|window| window == *name));
        if names_an_aws_root {
            let body = base64::engine::general_purpose::STANDARD.encode(der);
            writeln!(
                pem,
                "-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----"
            )
            .expect("writing to memory");
        }
    }
    std::fs::write(out, pem).expect("OUT_DIR is writable");
    println!("cargo::rerun-if-changed=build.rs");
}
