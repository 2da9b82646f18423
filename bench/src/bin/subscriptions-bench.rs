//! The `sessionEvents` benchmark's driver (bench/subscriptions/run.sh): against a running
//! auth-api, signs up one user, opens N WebSocket connections with one `sessionEvents`
//! subscription each (graphql-transport-ws, the token in `connection_init`), reads the API's
//! resident memory before and after (`/proc/<pid>/status`), then signs in once more and
//! measures how long the CREATED event takes to reach every subscriber.
//!
//! `subscriptions-bench <api base URL> <api pid> [count]` (count defaults to 10000). The API
//! must allow that many subscriptions per session (`AUTH_SUBSCRIPTIONS_PER_SESSION`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "correct horse battery staple";

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("VmRSS value")?
        .parse()?)
}

async fn gql(client: &reqwest::Client, base: &str, query: &str) -> anyhow::Result<Value> {
    let body: Value = client
        .post(format!("{base}/graphql"))
        .json(&json!({ "query": query }))
        .send()
        .await?
        .json()
        .await?;
    if !body["errors"].is_null() {
        bail!("{body}");
    }
    Ok(body)
}

async fn open_subscriptions(client: &reqwest::Client, base: &str) -> anyhow::Result<u64> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("auth_subscriptions_active "))
        .map_or(0.0, |v| v.trim().parse::<f64>().unwrap_or(0.0)) as u64)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn subscriber(url: String, token: String) -> anyhow::Result<Socket> {
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "graphql-transport-ws".parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
    let init =
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}});
    ws.send(Message::Text(init.to_string().into())).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) if text.contains("connection_ack") => break,
            Some(Ok(_)) => {}
            other => bail!("no ack: {other:?}"),
        }
    }
    if std::env::var_os("CONNECT_ONLY").is_none() {
        let subscribe = json!({"type": "subscribe", "id": "1", "payload": {"query": "subscription { sessionEvents { kind sessionId at } }"}});
        ws.send(Message::Text(subscribe.to_string().into())).await?;
    }
    Ok(ws)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let base = args
        .get(1)
        .context("base URL")?
        .trim_end_matches('/')
        .to_owned();
    let pid: u32 = args.get(2).context("API pid")?.parse()?;
    let count: usize = args.get(3).map_or(Ok(10_000), |c| c.parse())?;
    let client = reqwest::Client::new();
    let signed_up = gql(
        &client,
        &base,
        &format!("mutation {{ signUp(input: {{email: \"{EMAIL}\", password: \"{PASSWORD}\"}}) {{ accessToken }} }}"),
    )
    .await?;
    let token = signed_up["data"]["signUp"]["accessToken"]
        .as_str()
        .context("token")?
        .to_owned();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = rss_kib(pid)?;

    let url = base.replace("http://", "ws://") + "/graphql/ws";
    let started = Instant::now();
    let mut sockets = Vec::with_capacity(count);
    let mut pending =
        futures_util::stream::iter((0..count).map(|_| subscriber(url.clone(), token.clone())))
            .buffer_unordered(200);
    while let Some(socket) = pending.next().await {
        sockets.push(socket?);
    }
    let connect_only = std::env::var_os("CONNECT_ONLY").is_some();
    while !connect_only && open_subscriptions(&client, &base).await? < count as u64 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let opened = started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib(pid)?;
    if connect_only {
        // Connections acknowledged, no subscription: what a connection alone costs.
        println!(
            "{}",
            json!({"connections": count, "rss_delta_mib": (after as f64 - before as f64) / 1024.0,
                   "rss_per_connection_kib": (after as f64 - before as f64) / count as f64})
        );
        return Ok(());
    }

    // Every subscriber waits for its first event.
    let arrivals = Arc::new(Mutex::new(Vec::with_capacity(count)));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(count);
    let mut tasks = Vec::with_capacity(count);
    for mut ws in sockets {
        let arrivals = arrivals.clone();
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            let _ = ready.send(()).await;
            while let Some(Ok(message)) = ws.next().await {
                if let Message::Text(text) = message {
                    if text.contains("\"ping\"") {
                        let _ = ws.send(Message::Text(r#"{"type":"pong"}"#.into())).await;
                    } else if text.contains("\"next\"") {
                        arrivals.lock().await.push(Instant::now());
                        break;
                    }
                }
            }
            ws
        }));
    }
    for _ in 0..count {
        ready_rx.recv().await;
    }
    let sent = Instant::now();
    gql(
        &client,
        &base,
        &format!("mutation {{ signIn(input: {{email: \"{EMAIL}\", password: \"{PASSWORD}\"}}) {{ session {{ id }} }} }}"),
    )
    .await?;
    let answered = sent.elapsed();
    let deadline = Instant::now() + Duration::from_secs(60);
    while arrivals.lock().await.len() < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut times: Vec<Duration> = arrivals.lock().await.iter().map(|t| *t - sent).collect();
    times.sort();
    let received = times.len();
    let pick = |q: f64| {
        times
            .get(((received as f64 * q) as usize).min(received.saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let result = json!({
        "subscriptions": count,
        "opened_in_s": opened.as_secs_f64(),
        "rss_before_mib": before as f64 / 1024.0,
        "rss_after_mib": after as f64 / 1024.0,
        "rss_delta_mib": (after as f64 - before as f64) / 1024.0,
        "rss_per_subscription_kib": (after as f64 - before as f64) / count as f64,
        "sign_in_answered_ms": answered.as_secs_f64() * 1000.0,
        "received": received,
        "first_ms": pick(0.0).as_secs_f64() * 1000.0,
        "p50_ms": pick(0.5).as_secs_f64() * 1000.0,
        "p99_ms": pick(0.99).as_secs_f64() * 1000.0,
        "last_ms": times.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    if received < count {
        bail!("only {received} of {count} subscribers got the event within 60 s");
    }
    Ok(())
}
