//! `verifier-bench`: helpers of the verifier benchmark (bench/verifier/run.sh).
//!
//! - `issuer ADDR TOKENS_FILE N`: a stand-in for `auth-api` with its own Ed25519 key: serves
//!   discovery, the JWKS, the revocation list and stream (pings every 5 s), `GET /mint?sid=…`
//!   (a fresh token of that session) and `POST /revoke?sid=…` (streams a session revocation);
//!   writes N tokens of distinct sessions to TOKENS_FILE first.
//! - `fill VERIFIER_URL TOKENS_FILE`: asks the verifier about every token once (16 at a
//!   time), so that each becomes a cache entry; prints how many were accepted.
//! - `latency VERIFIER_URL ISSUER_URL SAMPLES`: per sample, mints a token, has it cached, then
//!   revokes its session and polls `/verify` until 401; prints p50, p99 and max of the time
//!   from the revoke call's start to the first 401.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use auth_protocol::{AccessClaims, Discovery, Jwk, JwkSet, RevocationEntry, RevocationList};
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use base64::Engine;
use futures_util::StreamExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tokio::sync::broadcast;

struct Issuer {
    base: String,
    key: EncodingKey,
    kid: String,
    jwk: Jwk,
    seq: AtomicI64,
    entries: std::sync::Mutex<Vec<RevocationEntry>>,
    tx: broadcast::Sender<RevocationEntry>,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Issuer {
    fn mint(&self, sid: &str) -> anyhow::Result<String> {
        let claims = AccessClaims {
            iss: self.base.clone(),
            aud: self.base.clone(),
            sub: sid.replacen("0195a3c4", "0195a3c5", 1),
            tid: "default".into(),
            sid: sid.into(),
            roles: vec!["member".into()],
            iat: now(),
            exp: now() + 3600,
            jti: format!("jti-{sid}"),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, &claims, &self.key)?)
    }
}

#[derive(serde::Deserialize)]
struct Sid {
    sid: String,
}

async fn issuer(addr: &str, tokens_file: &str, n: usize) -> anyhow::Result<()> {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8v1(&rng).map_err(|_| anyhow::anyhow!("keygen"))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| anyhow::anyhow!("key"))?;
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (tx, _) = broadcast::channel(1024);
    let st = Arc::new(Issuer {
        base: base.clone(),
        key: EncodingKey::from_ed_der(pkcs8.as_ref()),
        kid: "bench-key".into(),
        jwk: Jwk {
            kty: "OKP".into(),
            kid: "bench-key".into(),
            alg: "EdDSA".into(),
            use_: "sig".into(),
            crv: Some("Ed25519".into()),
            x: Some(x),
            y: None,
            n: None,
            e: None,
        },
        seq: AtomicI64::new(0),
        entries: Default::default(),
        tx,
    });
    let mut out = String::with_capacity(n * 300);
    for i in 0..n {
        // Session and user ids shaped like the API's UUIDs, so entries are of realistic size.
        out.push_str(&st.mint(&format!("0195a3c4-0000-7000-8000-{i:012}"))?);
        out.push('\n');
    }
    std::fs::write(tokens_file, out).context("write tokens")?;
    eprintln!("issuer at {base}: {n} tokens in {tokens_file}");

    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(|State(st): State<Arc<Issuer>>| async move {
                axum::Json(Discovery::new(&st.base, ["EdDSA"]))
            }),
        )
        .route(
            "/.well-known/jwks.json",
            get(|State(st): State<Arc<Issuer>>| async move {
                axum::Json(JwkSet {
                    keys: vec![st.jwk.clone()],
                })
            }),
        )
        .route(
            "/internal/revocations",
            get(|State(st): State<Arc<Issuer>>| async move {
                let entries = st.entries.lock().map(|e| e.clone()).unwrap_or_default();
                axum::Json(RevocationList {
                    cursor: st.seq.load(Ordering::SeqCst),
                    entries,
                    complete_to: 0,
                })
            }),
        )
        .route(
            "/internal/revocations/stream",
            get(|State(st): State<Arc<Issuer>>| async move {
                let rx = tokio_stream_from(st.tx.subscribe());
                Sse::new(rx).keep_alive(
                    KeepAlive::new()
                        .interval(Duration::from_secs(5))
                        .text("ping"),
                )
            }),
        )
        .route(
            "/mint",
            get(
                |State(st): State<Arc<Issuer>>, Query(q): Query<Sid>| async move {
                    st.mint(&q.sid).unwrap_or_default()
                },
            ),
        )
        .route(
            "/revoke",
            post(
                |State(st): State<Arc<Issuer>>, Query(q): Query<Sid>| async move {
                    let entry = RevocationEntry {
                        seq: st.seq.fetch_add(1, Ordering::SeqCst) + 1,
                        ..RevocationEntry::session("default", q.sid, now() + 3600)
                    };
                    if let Ok(mut e) = st.entries.lock() {
                        e.push(entry.clone());
                    }
                    let _ = st.tx.send(entry);
                    "ok"
                },
            ),
        )
        .with_state(st);
    axum::serve(listener, app).await?;
    Ok(())
}

fn tokio_stream_from(
    rx: broadcast::Receiver<RevocationEntry>,
) -> impl futures_util::Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(rx, |mut rx| async move {
        let ev = match rx.recv().await {
            Ok(entry) => Event::default()
                .event("revocation")
                .id(entry.seq.to_string())
                .data(serde_json::to_string(&entry).unwrap_or_default()),
            Err(broadcast::error::RecvError::Lagged(_)) => {
                Event::default().event("reset").data("{}")
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(ev), rx))
    })
}

async fn fill(verifier: &str, tokens_file: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(tokens_file)?;
    let client = reqwest::Client::new();
    let url = format!("{verifier}/verify");
    let started = Instant::now();
    let ok = futures_util::stream::iter(text.lines().map(str::to_owned))
        .map(|t| {
            let req = client.get(&url).bearer_auth(t).send();
            async move { req.await.map(|r| r.status() == 200).unwrap_or(false) }
        })
        .buffer_unordered(16)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    println!(
        "accepted {ok} of {} tokens in {:.1} s",
        text.lines().count(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn latency(verifier: &str, issuer: &str, samples: usize) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples {
        let sid = format!("lat-{i}-{}", std::process::id());
        let token = client
            .get(format!("{issuer}/mint?sid={sid}"))
            .send()
            .await?
            .text()
            .await?;
        let status = |c: &reqwest::Client| {
            c.get(format!("{verifier}/verify"))
                .bearer_auth(&token)
                .send()
        };
        anyhow::ensure!(
            status(&client).await?.status() == 200,
            "fresh token refused"
        );
        let t0 = Instant::now();
        client
            .post(format!("{issuer}/revoke?sid={sid}"))
            .send()
            .await?;
        loop {
            if status(&client).await?.status() == 401 {
                break;
            }
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(5),
                "revocation never arrived"
            );
        }
        times.push(t0.elapsed());
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1];
    println!(
        "revocation-to-refusal over {samples} samples: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        times.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| {
        args.get(i)
            .cloned()
            .context("missing argument (see the module doc)")
    };
    match args.get(1).map(String::as_str) {
        Some("issuer") => issuer(&arg(2)?, &arg(3)?, arg(4)?.parse()?).await,
        Some("fill") => fill(&arg(2)?, &arg(3)?).await,
        Some("latency") => latency(&arg(2)?, &arg(3)?, arg(4)?.parse()?).await,
        _ => anyhow::bail!("usage: verifier-bench issuer|fill|latency … (see the source's doc)"),
    }
}
