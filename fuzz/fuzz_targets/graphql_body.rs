//! The GraphQL request path: any body POSTed to `/graphql` (batched or not, any content
//! type the input picks), through the real router and schema on a SQLite database, gets an
//! answer that is not a 5xx, and never a panic. The first byte picks the content type and
//! whether a (garbage) bearer token and tenant header come along.

#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;

use auth_api::config::Config;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt as _;

struct World {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dir = std::env::temp_dir().join(format!("auth-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let url = format!("sqlite://{}", dir.join("auth.db").display());
        let mut config = Config::for_database(&url);
        config.master_key = Some(auth_api::crypto::MasterKey::generate());
        config.database_max_connections = 2;
        // Limits scaled far up: the fuzzer sends thousands of requests a second from one
        // address, and a 429 for each would hide the paths behind them.
        config.rate_limit_factor = 1e6;
        let router = runtime.block_on(async {
            let app = auth_api::startup::build(config).await.expect("app builds");
            auth_api::http::router(app.state)
        });
        World { runtime, router }
    })
}

const TYPES: &[&str] = &[
    "application/json",
    "application/graphql-response+json",
    "application/graphql",
    "multipart/form-data; boundary=x",
    "text/plain",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let world = world();
    let mut request = Request::post("/graphql")
        .header("content-type", TYPES[usize::from(pick) % TYPES.len()])
        .extension(ConnectInfo(SocketAddr::from(([192, 0, 2, 1], 40000))));
    if pick & 0x10 != 0 {
        request = request.header("authorization", "Bearer eyJhbGciOiJFZERTQSJ9.e30.AA");
    }
    if pick & 0x20 != 0 {
        request = request.header("x-tenant", "default");
    }
    let request = request.body(Body::from(body.to_vec())).expect("request");
    let response = world
        .runtime
        .block_on(world.router.clone().oneshot(request))
        .expect("infallible");
    assert!(
        !response.status().is_server_error() || response.status() == StatusCode::SERVICE_UNAVAILABLE,
        "{} for {:?}",
        response.status(),
        String::from_utf8_lossy(body)
    );
});
