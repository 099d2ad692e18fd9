//! The certificate of `cargo xtask autobahn --tls`: a self-signed certificate for `127.0.0.1`
//! and `localhost`, generated once with rcgen into `target/autobahn/tls/` (wstest does not
//! verify certificates; the test is of the WebSocket layer over TLS).

use std::path::{Path, PathBuf};

/// The PEM certificate and key files, generated if missing.
pub(crate) fn certificate(dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(dir)
        .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
    let generated =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .map_err(|err| format!("cannot generate the test certificate: {err}"))?;
    std::fs::write(&cert, generated.cert.pem())
        .map_err(|err| format!("cannot write {}: {err}", cert.display()))?;
    std::fs::write(&key, generated.signing_key.serialize_pem())
        .map_err(|err| format!("cannot write {}: {err}", key.display()))?;
    Ok((cert, key))
}
