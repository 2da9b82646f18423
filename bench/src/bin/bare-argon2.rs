//! `bare-argon2`: the floor of the sign-in benchmark (bench/signin/run.sh). A hyper 1
//! HTTP/1.1 server on the same tokio runtime as the API that answers every request by
//! verifying the benchmark's password against an argon2id hash with the service's parameters
//! (m = 19456 KiB, t = 2, p = 1, as in `api/src/service/passwords.rs`), with the crate's
//! plain `verify_password` (a fresh 19 MiB block buffer each time), inline on the runtime's
//! worker threads: one hash per core. Listens on the address in its first argument.

use std::convert::Infallible;
use std::sync::Arc;

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

const PASSWORD: &[u8] = b"correct horse battery staple";

fn argon2() -> Argon2<'static> {
    let params = Params::new(19456, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8091".into());
    let hash: Arc<str> = argon2()
        .hash_password(PASSWORD)
        .map_err(|error| anyhow::anyhow!("hashing failed: {error}"))?
        .to_string()
        .into();
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("bare-argon2 listening on {addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let hash = hash.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let hash = hash.clone();
                async move {
                    // Read the body as the API does, then hash.
                    let _ = request.into_body().collect().await;
                    let ok = argon2().verify_password(PASSWORD, &*hash).is_ok();
                    let mut response = Response::new(Full::new(Bytes::from_static(
                        br#"{"data":{"verified":true}}"#,
                    )));
                    if !ok {
                        *response.status_mut() = StatusCode::UNAUTHORIZED;
                    }
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
