//! Building the application from a configuration, and serving it on a listener until a
//! shutdown future resolves, so tests can bind port 0 and stop the server.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::http::{AppState, SHUTDOWN_GRACE, router};
use crate::service::{Auth, passwords};

/// A built application: database migrated, default tenant and signing key in place.
pub struct App {
    /// Shared state of the handlers.
    pub state: AppState,
}

/// Open the service over `config` and build the HTTP surface on it.
pub async fn build(config: Config) -> anyhow::Result<App> {
    let config = Arc::new(config);
    let auth = Auth::open(config.clone()).await?;
    let schema = crate::graphql::schema(Some(auth.clone()), config.introspection());
    passwords::warm_up();
    crate::http::metrics_handle();
    Ok(App {
        state: AppState {
            auth,
            schema,
            config,
        },
    })
}

/// Serve on `listener` until `shutdown` resolves. Then the service tells every worker and
/// open stream (the revocation streams verifiers follow) to end, requests in flight get
/// [`SHUTDOWN_GRACE`] to finish, and the workers as long again.
pub async fn run(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let auth = app.state.auth.clone();
    let workers = auth.start_workers();
    let service = router(app.state).into_make_service_with_connect_info::<SocketAddr>();
    let told = auth.clone();
    let served = axum::serve(listener, service)
        .with_graceful_shutdown(async move {
            shutdown.await;
            told.shut_down();
        })
        .into_future();
    let bounded = async {
        auth.stopped().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    let served = tokio::select! {
        served = served => served.context("server failed"),
        () = bounded => {
            tracing::warn!("requests still in flight after the shutdown grace period; stopping anyway");
            Ok(())
        }
    };
    // Also when the server ended by itself: every worker is told, then awaited.
    auth.shut_down();
    workers.stop(SHUTDOWN_GRACE).await;
    served
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    interrupt.await.ok();
    tracing::info!("shutting down: finishing in-flight requests");
}
