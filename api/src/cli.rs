//! The command line of `auth-api`: its subcommands, and one service call for each (serve,
//! migrate, print the schema, machine tokens, signing keys).

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::domain::Scope;
use crate::{graphql, startup};

/// The `auth-api` command line.
#[derive(Debug, Parser)]
#[command(name = "auth-api", version, about = "GraphQL authentication API")]
pub struct Cli {
    /// Settings shared by every subcommand.
    #[command(flatten)]
    pub config: Config,
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands of `auth-api`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply migrations and serve (the default).
    Serve,
    /// Apply migrations and exit.
    Migrate,
    /// Print the GraphQL schema (SDL) and exit.
    Schema,
    /// Machine tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// `auth-api token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a machine token and print its id and, once, its secret.
    Create(TokenCreate),
}

/// Arguments of `auth-api token create`.
#[derive(Debug, Args)]
pub struct TokenCreate {
    /// Scopes: admin, connections, platform, verify (repeat or separate by commas).
    #[arg(long = "scope", required = true, value_delimiter = ',')]
    pub scopes: Vec<String>,
    /// A name to recognise the token by.
    #[arg(long, default_value = "cli")]
    pub name: String,
    /// Tenant the token belongs to.
    #[arg(long, default_value = "default")]
    pub tenant: String,
}

/// `auth-api keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate a new signing key: published at once, signing after the pre-publication
    /// time; older keys stay published until their tokens expire.
    Rotate {
        /// Seconds between publishing the new key and signing with it (0: sign at once).
        /// The default covers the replicas' 30 s key reload and the verifiers' one-minute
        /// limit on JWK set refetches.
        #[arg(long, default_value_t = 120)]
        prepublish_seconds: u64,
    },
    /// List the signing keys.
    List,
    /// Withdraw a key at once (e.g. leaked): verifiers and every API replica refuse the
    /// tokens it signed within a second; a current key is replaced by a new one first.
    Revoke {
        /// The key id (`kid`), as `keys list` shows it.
        kid: String,
    },
}

/// Run the subcommand `cli` names (`serve` when it names none).
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Schema => {
            print!("{}", graphql::sdl());
            Ok(())
        }
        Command::Migrate => {
            crate::service::migrate(&config).await?;
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
                .create_api_token(
                    &tenant,
                    None,
                    &args.name,
                    &scopes,
                    None,
                    &crate::domain::Device::default(),
                )
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
