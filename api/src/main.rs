//! The `auth-api` binary: parse the command line and run a subcommand.

use anyhow::Context as _;
use auth_api::config::{Cli, Command, KeysCommand, TokenCommand};
use auth_api::domain::Scope;
use auth_api::{graphql, startup, telemetry};
use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // A missing .env is fine; a malformed one is reported by clap through the variables.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    telemetry::init(&cli.config.log_format);
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("auth-api: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Schema => {
            print!("{}", graphql::sdl());
            Ok(())
        }
        Command::Migrate => {
            auth_api::service::migrate(&config).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Serve => {
            let listen = config.listen;
            let issuer = config.issuer.clone();
            let graphiql = config.graphiql;
            let app = startup::build(config).await?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            tracing::info!(address = %listen, "auth-api listening");
            if graphiql {
                tracing::info!("GraphiQL: open {issuer}/graphql in a browser");
            }
            startup::run(app, listener, startup::shutdown_signal()).await
        }
        Command::Token(TokenCommand::Create(args)) => {
            let scopes = args
                .scopes
                .iter()
                .map(|s| Scope::parse(s).map_err(|e| anyhow::anyhow!(e.0)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let app = startup::build(config).await?;
            let auth = &app.state.auth;
            let tenant = auth
                .tenant(Some(&args.tenant))
                .await
                .map_err(|e| anyhow::anyhow!("tenant {}: {e}", args.tenant))?;
            let created = auth
                .create_api_token(&tenant, None, &args.name, &scopes)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("id: {}", created.token.id);
            println!("secret: {}", created.secret);
            eprintln!("The secret is shown once; store it now.");
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate { prepublish_seconds }) => {
            let app = startup::build(config).await?;
            let prepublish = std::time::Duration::from_secs(prepublish_seconds);
            let kid = app.state.auth.rotate_signing_key(prepublish).await?;
            println!("new signing key: {kid} (signs in {prepublish_seconds} s)");
            Ok(())
        }
        Command::Keys(KeysCommand::Revoke { kid }) => {
            let app = startup::build(config).await?;
            match app.state.auth.withdraw_signing_key(&kid).await? {
                Some(new) => println!("revoked {kid}; new signing key: {new}"),
                None => println!("revoked {kid}"),
            }
            Ok(())
        }
        Command::Keys(KeysCommand::List) => {
            let app = startup::build(config).await?;
            for key in app.state.auth.jwks().await.keys.iter() {
                println!("{} {}", key.kid, key.alg);
            }
            Ok(())
        }
    }
}
