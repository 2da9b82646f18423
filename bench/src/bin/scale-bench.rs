//! The scale-up benchmark's driver (bench/scale/run.sh measure): against two running APIs,
//! one on a database with a million users and one on an empty database, measures in
//! alternating rounds the latency of `signIn`, `refreshSession`, `me`, `users(search)` and
//! `auditLog(userId)`, one request at a time, and prints p50 and p95 of each beside the
//! other database's, with their ratio.
//!
//! `scale-bench --big URL --empty URL --users N --rounds R --n N --password P`. Both APIs
//! need `admin@example.com` as a verified admin and `bench@example.com` (the empty one's
//! only user), both with the password; the big one's generated users `user<k>@example.com`
//! have it too.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

const OPS: [&str; 5] = [
    "signIn",
    "refreshSession",
    "me",
    "users(search)",
    "auditLog(userId)",
];

struct Args {
    big: String,
    empty: String,
    users: u64,
    rounds: usize,
    n: usize,
    password: String,
}

fn args() -> anyhow::Result<Args> {
    let mut map = BTreeMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(key) = it.next() {
        let value = it.next().with_context(|| format!("{key} needs a value"))?;
        map.insert(key.trim_start_matches("--").to_owned(), value);
    }
    let get = |k: &str| {
        map.get(k)
            .cloned()
            .with_context(|| format!("--{k} is required"))
    };
    Ok(Args {
        big: get("big")?,
        empty: get("empty")?,
        users: get("users")?.parse()?,
        rounds: get("rounds")?.parse()?,
        n: get("n")?.parse()?,
        password: get("password")?,
    })
}

struct Api {
    client: reqwest::Client,
    base: String,
    admin: String,
}

impl Api {
    async fn gql(&self, query: &str, vars: Value, token: Option<&str>) -> anyhow::Result<Value> {
        let mut request = self
            .client
            .post(format!("{}/graphql", self.base))
            .json(&json!({"query": query, "variables": vars}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let body: Value = request.send().await?.json().await?;
        if !body["errors"].is_null() {
            bail!("{}: {body}", self.base);
        }
        Ok(body["data"].clone())
    }
}

const SIGN_IN: &str = "mutation($e: String!, $p: String!) { signIn(input: {email: $e, password: $p}) \
    { accessToken refreshToken user { id } } }";
const REFRESH: &str =
    "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken refreshToken } }";
const ME: &str = "{ me { id emails { primary } } }";
const USERS: &str = "query($s: String) { users(first: 20, search: $s) { edges { node { id } } } }";
const AUDIT: &str =
    "query($u: ID) { auditLog(first: 20, userId: $u) { edges { node { id action } } } }";

/// A small deterministic generator (the same users each run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below + 1
    }
}

/// One iteration of every operation; the time of each.
async fn iteration(
    api: &Api,
    email: &str,
    search: &str,
    password: &str,
) -> anyhow::Result<[Duration; 5]> {
    let mut times = [Duration::ZERO; 5];
    let t = Instant::now();
    let signed = api
        .gql(SIGN_IN, json!({"e": email, "p": password}), None)
        .await?;
    times[0] = t.elapsed();
    let user = signed["signIn"]["user"]["id"]
        .as_str()
        .context("user id")?
        .to_owned();
    let refresh = signed["signIn"]["refreshToken"]
        .as_str()
        .context("refresh")?;
    let t = Instant::now();
    let refreshed = api.gql(REFRESH, json!({"t": refresh}), None).await?;
    times[1] = t.elapsed();
    let access = refreshed["refreshSession"]["accessToken"]
        .as_str()
        .context("access")?
        .to_owned();
    let t = Instant::now();
    api.gql(ME, json!({}), Some(&access)).await?;
    times[2] = t.elapsed();
    let t = Instant::now();
    api.gql(USERS, json!({"s": search}), Some(&api.admin))
        .await?;
    times[3] = t.elapsed();
    let t = Instant::now();
    api.gql(AUDIT, json!({"u": user}), Some(&api.admin)).await?;
    times[4] = t.elapsed();
    Ok(times)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at].as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let client = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let mut apis = Vec::new();
    for base in [&args.big, &args.empty] {
        let mut api = Api {
            client: client.clone(),
            base: base.clone(),
            admin: String::new(),
        };
        let admin = api
            .gql(
                SIGN_IN,
                json!({"e": "admin@example.com", "p": args.password}),
                None,
            )
            .await?;
        api.admin = admin["signIn"]["accessToken"]
            .as_str()
            .context("admin token")?
            .to_owned();
        apis.push(api);
    }
    let mut lcg = Lcg(16);
    // [database][op] -> latencies
    let mut samples = vec![vec![Vec::new(); OPS.len()]; 2];
    // Warm-up: one iteration each, not counted.
    for (i, api) in apis.iter().enumerate() {
        let email = if i == 0 {
            "user1@example.com".to_owned()
        } else {
            "bench@example.com".to_owned()
        };
        iteration(api, &email, "user1", &args.password).await?;
    }
    for round in 0..args.rounds {
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for db in order {
            for _ in 0..args.n {
                let k = lcg.next(args.users);
                let (email, search) = if db == 0 {
                    (
                        format!("user{k}@example.com"),
                        format!("user{}", k % 100_000 + 10_000),
                    )
                } else {
                    ("bench@example.com".to_owned(), "bench".to_owned())
                };
                let times = iteration(&apis[db], &email, &search, &args.password).await?;
                for (op, time) in times.into_iter().enumerate() {
                    samples[db][op].push(time);
                }
            }
        }
    }
    println!(
        "| operation | {} users p50 | p95 | empty p50 | p95 | ratio p50 | ratio p95 |",
        args.users
    );
    println!("|---|---|---|---|---|---|---|");
    for (op, name) in OPS.iter().enumerate() {
        let mut big = samples[0][op].clone();
        let mut empty = samples[1][op].clone();
        big.sort();
        empty.sort();
        let (b50, b95) = (percentile(&big, 0.5), percentile(&big, 0.95));
        let (e50, e95) = (percentile(&empty, 0.5), percentile(&empty, 0.95));
        println!(
            "| {name} | {b50:.2} ms | {b95:.2} ms | {e50:.2} ms | {e95:.2} ms | {:.2} | {:.2} |",
            b50 / e50,
            b95 / e95
        );
    }
    println!(
        "({} rounds alternating between the databases, {} iterations of each operation per round and database; one request at a time)",
        args.rounds, args.n
    );
    Ok(())
}
