//! Timing of answers for existing against unknown accounts (enumeration by timing):
//! `cargo bench -p auth-api --bench timing`.
//!
//! Two pairs are measured, one request at a time, over real HTTP into the real app:
//! `requestPasswordReset` for an address with an account against one without, and `signIn`
//! with a wrong password for an existing account against `signIn` of an unknown address.
//! Rate limits are off (`rate_limit_factor = 0`) and every request uses an address of its
//! own (accounts are signed up first), so neither the limiter nor the lockout after five
//! failures answers in place of the code under test; every answer is checked.
//!
//! Rounds alternate between the two variants (AB BA AB …: each pair's order swapped, so a
//! steady drift of the machine favours neither), after a warm-up of both. Per variant the
//! table gives the median and p90 of every request's latency and the range of the rounds'
//! medians; then the difference of the medians (existing − unknown), relative to the
//! unknown median, and the spread of the per-pair differences, which says whether the
//! difference stands out of the noise. Then interleaved pairs (one request of each
//! variant back to back, order swapped every pair), which cancel the machine's drift
//! between rounds (argon2 on two shared cores varies by milliseconds from round to round):
//! the median of the paired differences with a distribution-free 95 % interval.
//!
//! Database: a fresh SQLite file in a temporary directory; with `TEST_DATABASE_URL` (a
//! PostgreSQL server URL naming a database to connect to) a fresh database created on that
//! server and dropped afterwards; with `BENCH_DATABASE_URL`, that database as it is (the
//! addresses carry a per-run suffix, so runs do not collide). `BENCH_ROUNDS` (rounds of each
//! variant, 8), `BENCH_PER_ROUND` (50) and `BENCH_PAIRS` (interleaved pairs, 200) resize
//! the run.

use std::time::Instant;

use auth_api::config::Config;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";
const WRONG: &str = "wrong horse battery staple";
const WARM_UP: usize = 10;

const SIGN_UP: &str = "mutation($e: String!, $p: String!) { signUp(input: {email: $e, password: $p}) { accessToken } }";
const SIGN_IN: &str = "mutation($e: String!, $p: String!) { signIn(input: {email: $e, password: $p}) { accessToken } }";
const RESET: &str = "mutation($e: String!) { requestPasswordReset(email: $e) }";

#[tokio::main]
async fn main() {
    let env_number = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n| n > 0)
            .unwrap_or(default)
    };
    // Rounds of each variant: as many pairs of rounds.
    let rounds = env_number("BENCH_ROUNDS", 8);
    let per_round = env_number("BENCH_PER_ROUND", 50);
    // Interleaved pairs (E U, U E, E U …: one request of each variant).
    let interleaved = env_number("BENCH_PAIRS", rounds * per_round / 2);
    let plan = Plan {
        rounds,
        per_round,
        interleaved,
    };
    // Every existing account is used once by each operation: the rounds', the warm-up's
    // and the interleaved pairs'.
    let accounts = rounds * per_round + WARM_UP + interleaved;

    let dir = std::env::temp_dir().join(format!("auth-bench-timing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let database = Database::open(&dir).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = Config::for_database(&database.url);
    config.master_key = Some(auth_api::crypto::MasterKey::generate());
    config.issuer = format!("http://{addr}");
    config.rate_limit_factor = 0.0;
    let app = auth_api::startup::build(config).await.unwrap();
    tokio::spawn(auth_api::startup::run(
        app,
        listener,
        std::future::pending(),
    ));
    let client = Client {
        http: reqwest::Client::new(),
        endpoint: format!("http://{addr}/graphql"),
    };

    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let existing = |i: usize| format!("t{run}-user{i}@example.com");
    let unknown = |op: &str, i: usize| format!("t{run}-{op}-nobody{i}@example.com");
    println!(
        "{}: signing up {accounts} accounts, then per operation {rounds} rounds of each variant x {per_round} requests (after {WARM_UP} warm-up requests of each variant) and {interleaved} interleaved pairs",
        database.name
    );
    let started = Instant::now();
    sign_up_all(&client, (0..accounts).map(existing).collect()).await;
    println!(
        "  {accounts} accounts signed up in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let reset = measure(plan, |variant, i| {
        let email = match variant {
            Variant::Existing => existing(i),
            Variant::Unknown => unknown("reset", i),
        };
        let client = &client;
        async move {
            let (elapsed, body) = client.call(RESET, json!({"e": email})).await;
            assert_eq!(
                body["data"]["requestPasswordReset"],
                json!(true),
                "{variant:?} {email}: {body}"
            );
            elapsed
        }
    })
    .await;
    println!(
        "  requestPasswordReset measured in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let sign_in = measure(plan, |variant, i| {
        let (email, password) = match variant {
            Variant::Existing => (existing(i), WRONG),
            Variant::Unknown => (unknown("signin", i), PASSWORD),
        };
        let client = &client;
        async move {
            let (elapsed, body) = client
                .call(SIGN_IN, json!({"e": email, "p": password}))
                .await;
            assert_eq!(
                body["errors"][0]["extensions"]["code"],
                json!("INVALID_CREDENTIALS"),
                "{variant:?} {email}: {body}"
            );
            elapsed
        }
    })
    .await;
    println!(
        "  signIn measured in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    println!();
    println!(
        "{} — per operation {rounds} rounds of each variant, alternating, x {per_round} sequential requests; latencies in µs",
        database.name
    );
    println!(
        "| operation | variant | median | p90 | round medians (min–max) | existing − unknown (medians) | relative | per pair: median (min … max) | pairs existing slower |"
    );
    println!("| --- | --- | ---: | ---: | --- | ---: | ---: | --- | ---: |");
    reset.print(
        "requestPasswordReset",
        "existing address",
        "unknown address",
    );
    sign_in.print(
        "signIn (wrong password)",
        "existing account",
        "unknown address",
    );
    println!();
    println!(
        "{} — per operation {interleaved} interleaved pairs (one request of each variant, back to back, order swapped every pair); paired differences in µs",
        database.name
    );
    println!(
        "| operation | median paired difference (existing − unknown) | 95 % CI of that median | relative to the unknown median | pairs existing slower |"
    );
    println!("| --- | ---: | --- | ---: | ---: |");
    reset.print_interleaved("requestPasswordReset");
    sign_in.print_interleaved("signIn (wrong password)");
    println!();
    println!(
        "A difference stands out of the noise when the per-pair differences of the rounds all have one sign, and when the interleaved CI excludes 0 (it cancels drift of the machine between rounds)."
    );

    database.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Which address a request names.
#[derive(Debug, Clone, Copy)]
enum Variant {
    Existing,
    Unknown,
}

struct Client {
    http: reqwest::Client,
    endpoint: String,
}

impl Client {
    /// POST one operation; the latency (request sent to body read, µs) and the body.
    async fn call(&self, query: &str, variables: Value) -> (f64, Value) {
        let request = self
            .http
            .post(&self.endpoint)
            .json(&json!({"query": query, "variables": variables}));
        let started = Instant::now();
        let response = request.send().await.unwrap();
        let body: Value = response.json().await.unwrap();
        (started.elapsed().as_secs_f64() * 1e6, body)
    }
}

/// Sign up every address, two at a time (the hashes dominate).
async fn sign_up_all(client: &Client, emails: Vec<String>) {
    let mut emails = emails.into_iter();
    loop {
        let batch: Vec<String> = emails.by_ref().take(2).collect();
        if batch.is_empty() {
            return;
        }
        let calls = batch.iter().map(|email| async move {
            let (_, body) = client
                .call(SIGN_UP, json!({"e": email, "p": PASSWORD}))
                .await;
            assert!(body["data"]["signUp"]["accessToken"].is_string(), "{body}");
        });
        futures_util::future::join_all(calls).await;
    }
}

/// How much to measure per operation.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Rounds of each variant.
    rounds: usize,
    /// Requests per round.
    per_round: usize,
    /// Interleaved pairs after the rounds.
    interleaved: usize,
}

/// Latencies of one operation, per variant and per round.
struct Measured {
    /// `(existing, unknown)` latencies of each pair of rounds.
    pairs: Vec<(Vec<f64>, Vec<f64>)>,
    /// `(existing, unknown)` latencies of each interleaved pair.
    interleaved: Vec<(f64, f64)>,
}

/// Warm up, then run `plan.rounds` rounds of each variant of `plan.per_round` requests,
/// alternating AB BA AB …, then `plan.interleaved` pairs of one request of each variant
/// (again with the order swapped every pair). `one` makes the request for a variant and
/// the index of its address: each index is used once per variant (the rounds', then the
/// warm-up's, then the interleaved pairs').
async fn measure<F, Fut>(plan: Plan, one: F) -> Measured
where
    F: Fn(Variant, usize) -> Fut,
    Fut: std::future::Future<Output = f64>,
{
    let Plan {
        rounds,
        per_round,
        interleaved,
    } = plan;
    let measured_per_variant = rounds * per_round;
    for i in 0..WARM_UP {
        one(Variant::Existing, measured_per_variant + i).await;
        one(Variant::Unknown, measured_per_variant + i).await;
    }
    let mut pairs = Vec::with_capacity(rounds);
    for pair in 0..rounds {
        let order = if pair % 2 == 0 {
            [Variant::Existing, Variant::Unknown]
        } else {
            [Variant::Unknown, Variant::Existing]
        };
        let (mut existing, mut unknown) = (Vec::new(), Vec::new());
        for variant in order {
            let mut samples = Vec::with_capacity(per_round);
            for i in 0..per_round {
                samples.push(one(variant, pair * per_round + i).await);
            }
            match variant {
                Variant::Existing => existing = samples,
                Variant::Unknown => unknown = samples,
            }
        }
        pairs.push((existing, unknown));
    }
    let offset = measured_per_variant + WARM_UP;
    let mut alternating = Vec::with_capacity(interleaved);
    for i in offset..offset + interleaved {
        let pair = if i % 2 == 0 {
            let existing = one(Variant::Existing, i).await;
            (existing, one(Variant::Unknown, i).await)
        } else {
            let unknown = one(Variant::Unknown, i).await;
            (one(Variant::Existing, i).await, unknown)
        };
        alternating.push(pair);
    }
    Measured {
        pairs,
        interleaved: alternating,
    }
}

impl Measured {
    /// Two rows of the table: the existing variant (with the differences), the unknown one.
    fn print(&self, operation: &str, existing_name: &str, unknown_name: &str) {
        let existing = sorted(self.pairs.iter().flat_map(|p| p.0.iter().copied()));
        let unknown = sorted(self.pairs.iter().flat_map(|p| p.1.iter().copied()));
        // The medians of each pair's two rounds, in run order.
        let medians: Vec<(f64, f64)> = self
            .pairs
            .iter()
            .map(|(e, u)| (median(e), median(u)))
            .collect();
        let existing_rounds = sorted(medians.iter().map(|m| m.0));
        let unknown_rounds = sorted(medians.iter().map(|m| m.1));
        let differences = sorted(medians.iter().map(|(e, u)| e - u));
        let slower = differences.iter().filter(|d| **d > 0.0).count();
        let (existing_median, unknown_median) = (quantile(&existing, 0.5), quantile(&unknown, 0.5));
        let difference = existing_median - unknown_median;
        println!(
            "| {operation} | {existing_name} | {existing_median:.0} | {:.0} | {:.0}–{:.0} | {difference:+.0} | {:+.2} % | {:+.0} ({:+.0} … {:+.0}) | {slower}/{} |",
            quantile(&existing, 0.9),
            existing_rounds[0],
            existing_rounds[existing_rounds.len() - 1],
            difference / unknown_median * 100.0,
            quantile(&differences, 0.5),
            differences[0],
            differences[differences.len() - 1],
            differences.len(),
        );
        println!(
            "| | {unknown_name} | {unknown_median:.0} | {:.0} | {:.0}–{:.0} | | | | |",
            quantile(&unknown, 0.9),
            unknown_rounds[0],
            unknown_rounds[unknown_rounds.len() - 1],
        );
    }
}

impl Measured {
    /// One row of the interleaved table.
    fn print_interleaved(&self, operation: &str) {
        let n = self.interleaved.len();
        let differences = sorted(self.interleaved.iter().map(|(e, u)| e - u));
        let unknown = sorted(self.interleaved.iter().map(|p| p.1));
        let slower = differences.iter().filter(|d| **d > 0.0).count();
        let middle = quantile(&differences, 0.5);
        // Distribution-free 95 % interval of a median: the order statistics n/2 ∓ 0.98·√n
        // (the sign test's normal approximation).
        let half = 0.98 * (n as f64).sqrt();
        let low = ((n as f64 / 2.0 - half).floor() as usize).clamp(1, n);
        let high = ((n as f64 / 2.0 + half).ceil() as usize).clamp(1, n);
        println!(
            "| {operation} | {middle:+.0} | {:+.0} … {:+.0} | {:+.2} % | {slower}/{n} |",
            differences[low - 1],
            differences[high - 1],
            middle / quantile(&unknown, 0.5) * 100.0,
        );
    }
}

fn sorted(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values
}

fn median(values: &[f64]) -> f64 {
    quantile(&sorted(values.iter().copied()), 0.5)
}

/// The nearest-rank quantile of sorted values (the median of an even count: the mean of
/// the middle two).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if q == 0.5 && n.is_multiple_of(2) {
        return (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0;
    }
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
    sorted[rank - 1]
}

/// The benchmark's database.
struct Database {
    /// For the table's title.
    name: String,
    url: String,
    /// Server URL and name of a database created for this run (dropped by `close`).
    created: Option<(String, String)>,
}

impl Database {
    async fn open(dir: &std::path::Path) -> Database {
        if let Ok(url) = std::env::var("BENCH_DATABASE_URL")
            && !url.is_empty()
        {
            return Database {
                name: format!("{} (BENCH_DATABASE_URL)", kind(&url)),
                url,
                created: None,
            };
        }
        if let Ok(base) = std::env::var("TEST_DATABASE_URL")
            && !base.is_empty()
        {
            use sqlx::Connection;
            let name = format!("auth_bench_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(&base)
                .await
                .expect("TEST_DATABASE_URL reachable");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("create the bench database");
            let (prefix, _) = base
                .rsplit_once('/')
                .expect("TEST_DATABASE_URL names a database");
            return Database {
                name: "PostgreSQL (fresh database)".into(),
                url: format!("{prefix}/{name}"),
                created: Some((base, name)),
            };
        }
        Database {
            name: "SQLite (fresh file)".into(),
            url: format!("sqlite://{}", dir.join("bench.db").display()),
            created: None,
        }
    }

    async fn close(self) {
        if let Some((base, name)) = self.created {
            use sqlx::Connection;
            if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await;
            }
        }
    }
}

fn kind(url: &str) -> &'static str {
    if url.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    }
}
