//! `sessionEvents` over graphql-transport-ws at `GET /graphql/ws`, with a real WebSocket
//! client (tokio-tungstenite): refused without a valid token (4401/4403, before any event),
//! the `connection_init` timeout (4408), CREATED and REVOKED events of the user's own
//! sessions only, the stream ending when its own session is revoked, the per-session limit
//! counted in `/metrics`, and — on PostgreSQL — a revocation made through a second API
//! replica on the same database arriving within a second.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::{PASSWORD, TestApp, spawn_app, spawn_app_with, spawn_on};

const SUBSCRIBE: &str = "subscription { sessionEvents { kind sessionId at } }";
const REVOKE: &str = "mutation($id: ID!) { revokeSession(id: $id) }";
const WAIT: Duration = Duration::from_secs(5);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A graphql-transport-ws client.
struct Ws {
    socket: Socket,
}

/// How a read ended.
#[derive(Debug, PartialEq)]
enum Read {
    /// A protocol message (pings are answered and skipped).
    Message(Value),
    /// The server closed with this code.
    Closed(u16),
    /// Nothing within the time.
    Nothing,
}

impl Ws {
    async fn connect(app: &TestApp) -> Ws {
        let url = app.base.replace("http://", "ws://") + "/graphql/ws";
        let mut request = url.into_client_request().expect("request");
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        let (socket, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("WebSocket upgrade");
        assert_eq!(
            response.headers()["sec-websocket-protocol"],
            "graphql-transport-ws"
        );
        Ws { socket }
    }

    async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("sent");
    }

    async fn read(&mut self, within: Duration) -> Read {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let Ok(next) = tokio::time::timeout_at(deadline, self.socket.next()).await else {
                return Read::Nothing;
            };
            match next {
                Some(Ok(Message::Text(text))) => {
                    let message: Value = serde_json::from_str(&text).expect("JSON message");
                    if message["type"] == "ping" {
                        self.send(json!({"type": "pong"})).await;
                        continue;
                    }
                    return Read::Message(message);
                }
                Some(Ok(Message::Close(frame))) => {
                    return Read::Closed(frame.map_or(1005, |f| u16::from(f.code)));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Read::Closed(1006),
            }
        }
    }

    async fn message(&mut self) -> Value {
        match self.read(WAIT).await {
            Read::Message(message) => message,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// `connection_init` with `Authorization: Bearer <token>`, and its `connection_ack`.
    async fn init(app: &TestApp, token: &str) -> Ws {
        let mut ws = Ws::connect(app).await;
        ws.send(json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}}))
            .await;
        assert_eq!(ws.message().await["type"], "connection_ack");
        ws
    }

    async fn subscribe(&mut self, id: &str) {
        self.send(json!({"type": "subscribe", "id": id, "payload": {"query": SUBSCRIBE}}))
            .await;
    }

    /// The next event of subscription `id`: (kind, sessionId).
    async fn event(&mut self, id: &str) -> (String, String) {
        let message = self.message().await;
        assert_eq!(message["id"], id, "{message}");
        Self::event_of(&message)
    }

    /// The next event of any subscription: (kind, sessionId).
    async fn event_any(&mut self) -> (String, String) {
        let message = self.message().await;
        Self::event_of(&message)
    }

    fn event_of(message: &Value) -> (String, String) {
        assert_eq!(message["type"], "next", "{message}");
        let event = &message["payload"]["data"]["sessionEvents"];
        assert!(
            event["at"].as_str().is_some_and(|at| at.ends_with('Z')),
            "{message}"
        );
        (
            event["kind"].as_str().unwrap().to_owned(),
            event["sessionId"].as_str().unwrap().to_owned(),
        )
    }
}

/// Subscribes and waits until the server holds the subscription (a subscription is in place
/// once the registry counts it; the metric says so).
async fn subscribed(app: &TestApp, ws: &mut Ws, id: &str, expected_open: u64) {
    ws.subscribe(id).await;
    let deadline = Instant::now() + WAIT;
    while open_subscriptions(app).await != expected_open {
        assert!(Instant::now() < deadline, "subscription {id} not held");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn open_subscriptions(app: &TestApp) -> u64 {
    let (_, _, text) = app.get("/metrics").await;
    text.lines()
        .find_map(|line| line.strip_prefix("auth_subscriptions_active "))
        .map_or(0, |value| value.trim().parse::<f64>().unwrap() as u64)
}

/// A subscription refused by its resolver: async-graphql sends the GraphQL error as the
/// subscription's only result, then completes it.
async fn assert_refused(ws: &mut Ws, id: &str, code: &str) {
    let refused = ws.message().await;
    assert_eq!(refused["type"], "next", "{refused}");
    assert_eq!(refused["id"], id, "{refused}");
    assert_eq!(refused["payload"]["data"], Value::Null, "{refused}");
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], code,
        "{refused}"
    );
    assert_eq!(ws.message().await, json!({"type": "complete", "id": id}));
}

async fn revoke(app: &TestApp, bearer: &str, session: &str) {
    let body = app.gql(REVOKE, json!({"id": session}), Some(bearer)).await;
    assert_eq!(body["data"]["revokeSession"], true, "{body}");
}

#[tokio::test]
async fn a_connection_without_a_valid_token_is_refused_before_any_event() {
    let app = spawn_app().await;
    let ada = app.sign_up("ada@example.com").await;

    let cases: Vec<(&str, Value, u16)> = vec![
        ("no payload", json!({"type": "connection_init"}), 4401),
        (
            "no token",
            json!({"type": "connection_init", "payload": {}}),
            4401,
        ),
        (
            "not a bearer",
            json!({"type": "connection_init", "payload": {"Authorization": format!("Basic {}", ada.access_token)}}),
            4401,
        ),
        (
            "a forged token",
            json!({"type": "connection_init", "payload": {"Authorization": "Bearer eyJhbGciOiJFZERTQSJ9.e30.c2ln"}}),
            4401,
        ),
        (
            "subscribe first",
            json!({"type": "subscribe", "id": "1", "payload": {"query": SUBSCRIBE}}),
            4401,
        ),
        ("not JSON", json!("hello"), 4400),
    ];
    for (what, first, code) in cases {
        let mut ws = Ws::connect(&app).await;
        ws.send(first).await;
        assert_eq!(ws.read(WAIT).await, Read::Closed(code), "{what}");
    }

    // A machine token may not subscribe; another tenant's token neither.
    let machine = app.machine_token("default", &["admin"]).await;
    let mut ws = Ws::connect(&app).await;
    ws.send(json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {machine}")}}))
        .await;
    assert_eq!(ws.read(WAIT).await, Read::Closed(4403));
    let platform = app.machine_token("default", &["platform"]).await;
    app.create_tenant(&platform, "other").await;
    let mut ws = Ws::connect(&app).await;
    ws.send(json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {}", ada.access_token), "X-Tenant": "other"}}))
        .await;
    assert_eq!(ws.read(WAIT).await, Read::Closed(4403));

    // A revoked session's token, though its signature and expiry are fine.
    app.sign_out(&ada.access_token).await;
    let mut ws = Ws::connect(&app).await;
    ws.send(json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {}", ada.access_token)}}))
        .await;
    assert_eq!(ws.read(WAIT).await, Read::Closed(4401));

    // Over plain HTTP a subscription is refused too.
    let body = app.gql(SUBSCRIBE, json!({}), Some(&ada.access_token)).await;
    assert_eq!(body.code(), "BAD_USER_INPUT", "{body}");
}

#[tokio::test]
async fn a_silent_connection_is_closed_with_4408() {
    let app = spawn_app().await;
    let mut ws = Ws::connect(&app).await;
    let started = Instant::now();
    assert_eq!(ws.read(Duration::from_secs(15)).await, Read::Closed(4408));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(12),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_subscriber_hears_of_its_users_sessions_only_and_ends_with_its_own() {
    let app = spawn_app().await;
    let ada = app.sign_up("ada@example.com").await;
    let bob = app.sign_up("bob@example.com").await;
    let mut ws = Ws::init(&app, &ada.access_token).await;
    subscribed(&app, &mut ws, "s1", 1).await;

    // Bob's sessions come and go: nothing for Ada. Then Ada signs in elsewhere: the first
    // event Ada's subscriber gets is that one (the feed is in order, so Bob's would be first).
    let bob2 = app.signed_in("bob@example.com", PASSWORD).await;
    revoke(&app, &bob.access_token, &bob2.session_id).await;
    let phone = app.signed_in("ada@example.com", PASSWORD).await;
    assert_eq!(
        ws.event("s1").await,
        ("CREATED".into(), phone.session_id.clone())
    );
    revoke(&app, &ada.access_token, &phone.session_id).await;
    assert_eq!(
        ws.event("s1").await,
        ("REVOKED".into(), phone.session_id.clone())
    );
    app.sign_out(&bob.access_token).await;
    let laptop = app.signed_in("ada@example.com", PASSWORD).await;
    assert_eq!(
        ws.event("s1").await,
        ("CREATED".into(), laptop.session_id.clone())
    );

    // From the laptop, Ada revokes the session the subscriber belongs to: its REVOKED event,
    // then the stream completes, and a new subscription on the connection is refused.
    revoke(&app, &laptop.access_token, &ada.session_id).await;
    assert_eq!(
        ws.event("s1").await,
        ("REVOKED".into(), ada.session_id.clone())
    );
    let done = ws.message().await;
    assert_eq!(done, json!({"type": "complete", "id": "s1"}));
    ws.subscribe("s2").await;
    assert_refused(&mut ws, "s2", "UNAUTHENTICATED").await;
    assert_eq!(open_subscriptions(&app).await, 0);
}

#[tokio::test]
async fn subscriptions_are_limited_per_session_and_counted_in_metrics() {
    let app = spawn_app().await;
    let ada = app.sign_up("ada@example.com").await;
    let mut first = Ws::init(&app, &ada.access_token).await;
    for i in 1..=3 {
        subscribed(&app, &mut first, &format!("a{i}"), i).await;
    }
    // The limit is per session, across connections.
    let mut second = Ws::init(&app, &ada.access_token).await;
    subscribed(&app, &mut second, "b1", 4).await;
    subscribed(&app, &mut second, "b2", 5).await;
    second.subscribe("b3").await;
    assert_refused(&mut second, "b3", "FORBIDDEN").await;
    let (_, _, text) = app.get("/metrics").await;
    assert!(
        text.contains("auth_subscriptions_refused_total{reason=\"per_session\"} 1"),
        "{text}"
    );

    // Another session of the same user has its own five.
    let other = app.signed_in("ada@example.com", PASSWORD).await;
    for _ in 0..3 {
        let (kind, session) = first.event_any().await;
        assert_eq!(
            (kind.as_str(), session.as_str()),
            ("CREATED", other.session_id.as_str())
        );
    }
    let mut third = Ws::init(&app, &other.access_token).await;
    subscribed(&app, &mut third, "c1", 6).await;

    // Ending one (complete) or closing a connection gives the places back.
    first.send(json!({"type": "complete", "id": "a1"})).await;
    assert_eq!(
        first.message().await,
        json!({"type": "complete", "id": "a1"})
    );
    drop(second);
    let deadline = Instant::now() + WAIT;
    while open_subscriptions(&app).await != 3 {
        assert!(Instant::now() < deadline, "places not given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    subscribed(&app, &mut first, "a4", 4).await;
    // Still delivering after all that.
    let tablet = app.signed_in("ada@example.com", PASSWORD).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let message = first.message().await;
        seen.push(message["id"].as_str().unwrap().to_owned());
        assert_eq!(
            message["payload"]["data"]["sessionEvents"]["sessionId"],
            tablet.session_id
        );
    }
    seen.sort();
    assert_eq!(seen, ["a2", "a3", "a4"]);
}

#[tokio::test]
async fn a_revocation_through_another_replica_arrives_within_a_second() {
    let app = spawn_app().await;
    if !app.db.is_postgres() {
        // One SQLite file is one process's: replicas need PostgreSQL (LISTEN/NOTIFY).
        return;
    }
    // The same issuer: a replica behind the same name, so each accepts the other's tokens.
    let issuer = app.config.issuer.clone();
    let other = spawn_on(app.db.share(), move |config| config.issuer = issuer).await;
    let ada = app.sign_up("ada@example.com").await;
    let phone = other.signed_in("ada@example.com", PASSWORD).await;
    let mut ws = Ws::init(&app, &ada.access_token).await;
    subscribed(&app, &mut ws, "s", 1).await;

    // Created on the other replica: heard here.
    let laptop = other.signed_in("ada@example.com", PASSWORD).await;
    assert_eq!(
        ws.event("s").await,
        ("CREATED".into(), laptop.session_id.clone())
    );

    // Revoked through the other replica: heard here within a second, each time.
    for session in [&phone.session_id, &laptop.session_id] {
        let started = Instant::now();
        revoke(&other, &ada.access_token, session).await;
        let event = match ws.read(Duration::from_secs(1)).await {
            Read::Message(message) => message,
            other => panic!("no event within a second: {other:?}"),
        };
        let elapsed = started.elapsed();
        assert_eq!(event["payload"]["data"]["sessionEvents"]["kind"], "REVOKED");
        assert_eq!(
            event["payload"]["data"]["sessionEvents"]["sessionId"],
            **session
        );
        assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    }
    // And the subscriber's own session, revoked over there, ends the stream here.
    let started = Instant::now();
    other.sign_out(&ada.access_token).await;
    assert_eq!(
        ws.event("s").await,
        ("REVOKED".into(), ada.session_id.clone())
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(ws.message().await, json!({"type": "complete", "id": "s"}));
}

#[tokio::test]
async fn a_commit_that_only_created_sessions_says_so_in_its_notification() {
    // A replica with no `sessionEvents` subscriber does not read the feed for a sign-in
    // elsewhere: the trigger's payload tells it the commit created sessions and revoked
    // nothing. Revocations must still say otherwise, or the replicas would sleep through them.
    let app = spawn_app().await;
    if !app.db.is_postgres() {
        return;
    }
    let mut listener = sqlx::postgres::PgListener::connect(&app.db.url)
        .await
        .expect("listener");
    listener.listen("auth_revocations").await.expect("LISTEN");
    let next = async |listener: &mut sqlx::postgres::PgListener| {
        tokio::time::timeout(WAIT, listener.recv())
            .await
            .expect("a notification")
            .expect("listener")
            .payload()
            .to_owned()
    };

    let ada = app.sign_up("ada@example.com").await;
    assert_eq!(next(&mut listener).await, "session_created");
    let phone = app.signed_in("ada@example.com", PASSWORD).await;
    assert_eq!(next(&mut listener).await, "session_created");
    revoke(&app, &ada.access_token, &phone.session_id).await;
    assert_eq!(next(&mut listener).await, "");
    // Signing out writes a revocation and opens nothing.
    let laptop = app.signed_in("ada@example.com", PASSWORD).await;
    assert_eq!(next(&mut listener).await, "session_created");
    app.sign_out(&laptop.access_token).await;
    assert_eq!(next(&mut listener).await, "");
}

#[tokio::test]
async fn events_keep_the_shape_the_subscription_asked_for() {
    // The connection renders events itself once the subscription is set up: aliases,
    // fragments, directives and `__typename` must come out as GraphQL says they do.
    let app = spawn_app().await;
    let ada = app.sign_up("ada@example.com").await;
    let mut ws = Ws::init(&app, &ada.access_token).await;
    let query = r#"subscription Watch($withTime: Boolean!) {
        feed: sessionEvents {
            __typename
            what: kind
            ...Ids
            ... on SessionEvent @include(if: $withTime) { when: at }
            ... @skip(if: true) { hidden: kind }
            again: sessionId
        }
    }
    fragment Ids on SessionEvent { sessionId }"#;
    ws.send(json!({"type": "subscribe", "id": "shape", "payload": {
        "query": query, "variables": {"withTime": true}, "operationName": "Watch"}}))
        .await;
    let deadline = Instant::now() + WAIT;
    while open_subscriptions(&app).await < 1 {
        assert!(Instant::now() < deadline, "subscription not opened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let other = app.signed_in("ada@example.com", PASSWORD).await;
    let message = ws.message().await;
    assert_eq!(message["id"], "shape");
    assert_eq!(message["type"], "next");
    let feed = &message["payload"]["data"]["feed"];
    // (serde_json here sorts keys: the set is what is compared.)
    let keys: Vec<&str> = feed
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["__typename", "again", "sessionId", "what", "when"],
        "{message}"
    );
    assert_eq!(feed["__typename"], "SessionEvent");
    assert_eq!(feed["what"], "CREATED");
    assert_eq!(feed["sessionId"], other.session_id);
    assert_eq!(feed["again"], other.session_id);
    let when = feed["when"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(when, &time::format_description::well_known::Rfc3339).is_ok(),
        "{when}"
    );
    assert_eq!(
        message["payload"].as_object().unwrap().len(),
        1,
        "{message}"
    );

    // Revoked: the same shape with the other kind.
    revoke(&app, &ada.access_token, &other.session_id).await;
    let message = ws.message().await;
    assert_eq!(message["payload"]["data"]["feed"]["what"], "REVOKED");
    assert_eq!(
        message["payload"]["data"]["feed"]["again"],
        other.session_id
    );
}

#[tokio::test]
async fn the_connection_runs_queries_and_refuses_reused_ids_and_too_many_operations() {
    let app = spawn_app_with(|config| config.subscriptions_per_session = 50).await;
    let ada = app.sign_up("ada@example.com").await;
    let mut ws = Ws::init(&app, &ada.access_token).await;

    // A query over the connection: its answer, then complete.
    ws.send(json!({"type": "subscribe", "id": "q", "payload": {"query": "{ me { emails { primary } } }"}}))
        .await;
    let answer = ws.message().await;
    assert_eq!(answer["type"], "next", "{answer}");
    assert_eq!(
        answer["payload"]["data"]["me"]["emails"]["primary"],
        "ada@example.com"
    );
    assert_eq!(ws.message().await, json!({"type": "complete", "id": "q"}));

    // A subscription that does not validate: its errors, then complete; nothing opened.
    ws.send(json!({"type": "subscribe", "id": "bad", "payload": {"query": "subscription { sessionEvents { nope } }"}}))
        .await;
    let answer = ws.message().await;
    assert_eq!(answer["id"], "bad");
    assert!(
        answer["payload"]["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nope"),
        "{answer}"
    );
    assert_eq!(ws.message().await, json!({"type": "complete", "id": "bad"}));
    assert_eq!(open_subscriptions(&app).await, 0);

    // The client's ping is answered.
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.message().await, json!({"type": "pong"}));

    // More operations at once than a connection may run: the extra one refused with an
    // `error` message, the others untouched.
    for i in 0..16 {
        subscribed(&app, &mut ws, &format!("s{i}"), i + 1).await;
    }
    ws.send(json!({"type": "subscribe", "id": "s16", "payload": {"query": SUBSCRIBE}}))
        .await;
    let refused = ws.message().await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["id"], "s16", "{refused}");
    assert_eq!(open_subscriptions(&app).await, 16);

    // An id in use closes the connection with 4409, as the protocol says.
    ws.send(json!({"type": "subscribe", "id": "s0", "payload": {"query": SUBSCRIBE}}))
        .await;
    assert_eq!(ws.read(WAIT).await, Read::Closed(4409));
}
