//! Picks, at build time, the roots AWS's endpoints chain to (Amazon Trust Services, and the
//! Starfield root that cross-signs them) out of the Mozilla store, as DER files in
//! `OUT_DIR` and the list of them (`aws_roots.rs`): scanning the whole store at every cold
//! start cost about a millisecond, decoding PEM a fifth of that.

/// Subject names the roots are picked by.
const AWS_ROOTS: [&[u8]; 2] = [
    b"Amazon Root CA ",
    b"Starfield Services Root Certificate Authority - G2",
];

fn main() {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut roots = String::from("&[\n");
    let mut picked = 0;
    for root in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        let der: &[u8] = root.as_ref();
        let names_an_aws_root = AWS_ROOTS
            .iter()
            .any(|name| der.windows(name.len()).any(|window| window == *name));
        if names_an_aws_root {
            picked += 1;
            let file = out.join(format!("aws_root_{picked}.der"));
            std::fs::write(&file, der).expect("OUT_DIR is writable");
            roots.push_str(&format!("    include_bytes!({file:?}),\n"));
        }
    }
    roots.push(']');
    std::fs::write(out.join("aws_roots.rs"), roots).expect("OUT_DIR is writable");
    println!("cargo::rerun-if-changed=build.rs");
}
