//! Sign-in throughput against its floor, a bare argon2id verify with the same parameters,
//! measured in the same process: `cargo bench -p auth-api --bench sign_in`.
//!
//! A second baseline is the service's own verify (`passwords::verify`: one per core, a
//! pooled block buffer), the floor of what a sign-in does.
//!
//! Both run with the same concurrency (one task per core) for the same number of
//! operations, alternating rounds so that drift of the machine hits both alike. Sign-in goes
//! through real HTTP into the real app on a fresh SQLite file (or `TEST_DATABASE_URL`'s
//! PostgreSQL server when `BENCH_DATABASE_URL` is set to a database URL).

use std::time::{Duration, Instant};

use argon2::{PasswordHasher, PasswordVerifier};
use auth_api::config::Config;
use auth_api::service::passwords;
use serde_json::json;

const PASSWORD: &str = "correct horse battery staple";

#[tokio::main]
async fn main() {
    let ops: usize = std::env::var("BENCH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let rounds = 3;
    let concurrency = std::thread::available_parallelism().map_or(2, |n| n.get());

    let dir = std::env::temp_dir().join(format!("auth-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.join("bench.db").display()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = Config::for_database(&url);
    config.master_key = Some(auth_api::crypto::MasterKey::generate());
    config.issuer = format!("http://{addr}");
    // The limiter still counts every sign-in (that cost is part of what is measured) but
    // never refuses the benchmark's one address.
    config.rate_limit_factor = 1_000_000.0;
    let app = auth_api::startup::build(config).await.unwrap();
    tokio::spawn(auth_api::startup::run(
        app,
        listener,
        std::future::pending(),
    ));
    let endpoint = format!("http://{addr}/graphql");
    let client = reqwest::Client::new();
    let sign_up = json!({"query": "mutation($e: String!, $p: String!) { signUp(input: {email: $e, password: $p}) { accessToken } }", "variables": {"e": "bench@example.com", "p": PASSWORD}});
    client.post(&endpoint).json(&sign_up).send().await.unwrap();
    let sign_in = json!({"query": "mutation($e: String!, $p: String!) { signIn(input: {email: $e, password: $p}) { accessToken refreshToken session { id } } }", "variables": {"e": "bench@example.com", "p": PASSWORD}});

    let hash = passwords::argon2()
        .hash_password(PASSWORD.as_bytes())
        .unwrap()
        .to_string();
    let mut bare_total = Duration::ZERO;
    let mut pooled_total = Duration::ZERO;
    let mut sign_in_total = Duration::ZERO;
    for round in 0..rounds {
        let bare = run(concurrency, ops, || {
            let hash = hash.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    passwords::argon2()
                        .verify_password(PASSWORD.as_bytes(), hash.as_str())
                        .is_ok()
                })
                .await
                .unwrap();
            }
        })
        .await;
        // The service's own verify (one per core, a pooled block buffer): the floor of what a
        // sign-in does, so signIn over it is what everything beyond the hash costs.
        let pooled = run(concurrency, ops, || {
            let hash = hash.clone();
            async move {
                assert!(passwords::verify(PASSWORD, Some(&hash)).await.unwrap());
            }
        })
        .await;
        let full = run(concurrency, ops, || {
            let request = client.post(&endpoint).json(&sign_in);
            async move {
                let body: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
                assert!(body["data"]["signIn"]["accessToken"].is_string(), "{body}");
            }
        })
        .await;
        println!(
            "round {round}: argon2id verify {:.1}/s, pooled verify {:.1}/s, signIn over HTTP {:.1}/s",
            ops as f64 / bare.as_secs_f64(),
            ops as f64 / pooled.as_secs_f64(),
            ops as f64 / full.as_secs_f64()
        );
        bare_total += bare;
        pooled_total += pooled;
        sign_in_total += full;
    }
    let total = (ops * rounds) as f64;
    let bare_rate = total / bare_total.as_secs_f64();
    let pooled_rate = total / pooled_total.as_secs_f64();
    let sign_in_rate = total / sign_in_total.as_secs_f64();
    println!(
        "argon2id (m=19456 KiB, t=2, p=1) verify: {bare_rate:.1}/s; pooled verify: {pooled_rate:.1}/s; signIn: {sign_in_rate:.1}/s; ratio to the bare verify {:.3} (target >= 0.90 SQLite, 0.85 PostgreSQL), to the pooled verify {:.3}, concurrency {concurrency}, {} ops each",
        sign_in_rate / bare_rate,
        sign_in_rate / pooled_rate,
        ops * rounds
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Run `ops` operations, `concurrency` at a time; the elapsed wall time.
async fn run<F, Fut>(concurrency: usize, ops: usize, make: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let started = Instant::now();
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(ops);
    for _ in 0..ops {
        let permit = semaphore.clone().acquire_owned().await.unwrap();
        let op = make();
        tasks.push(tokio::spawn(async move {
            op.await;
            drop(permit);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}
