//! `iam-credentials-exporter`: parses flags, sets up logging, loads the
//! config and state files, starts one refresher per account and serves.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use clap::Parser;
use tracing::{error, info, warn};

use iam_credentials_exporter::aws::AwsClients;
use iam_credentials_exporter::cli::Args;
use iam_credentials_exporter::config::{Config, SharedConfig};
use iam_credentials_exporter::metrics::{BuildInfo, ExpositionOptions};
use iam_credentials_exporter::refresher::{AccountRefresher, RefreshOptions, StateKeeper};
use iam_credentials_exporter::state::{self, Loaded, State};
use iam_credentials_exporter::store::{AGE_UPDATE_INTERVAL, Store};
use iam_credentials_exporter::{logging, server};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    logging::init(args.log_level, args.log_format);
    let build = BuildInfo::current();
    info!(
        version = build.version,
        revision = build.revision,
        "starting iam-credentials-exporter"
    );

    let config = match &args.config_file {
        Some(path) => match Config::load(path) {
            Ok(config) => config,
            Err(e) => {
                error!(error = %e, "cannot start without a valid config file");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    let state = Arc::new(StateKeeper::new(args.state_file.clone(), load_state(&args)));

    let sdk = load_sdk_config(args.aws_timeout).await;
    let config = Arc::new(SharedConfig::new(args.config_file.clone(), config));
    let store = Arc::new(Store::new(
        1,
        ExpositionOptions {
            collect_users: args.collect_users,
            build,
        },
        config,
    ));
    // One account today: the one the credentials belong to. The store and
    // the refreshers already work on a list.
    let refresher = AccountRefresher {
        index: 0,
        clients: AwsClients::new(&sdk, &args.cloudtrail_regions()),
        account_id: None,
        state,
        options: RefreshOptions {
            interval: args.refresh_interval,
            cloudtrail_lookback: args.cloudtrail_lookback,
        },
        store: store.clone(),
    };
    let refreshers = tokio::spawn(refresher.run());
    let ages = tokio::spawn(store.clone().keep_ages_current(AGE_UPDATE_INTERVAL));
    let reloads = tokio::spawn(reload_on_sighup(store.clone()));

    let listener = match tokio::net::TcpListener::bind(args.listen_address).await {
        Ok(listener) => listener,
        Err(e) => {
            error!(address = %args.listen_address, error = %e, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    info!(address, telemetry_path = args.telemetry_path, "listening");

    let app = server::app(store, &args.telemetry_path);
    let served = server::run(listener, app, shutdown_signal()).await;
    refreshers.abort();
    ages.abort();
    reloads.abort();
    match served {
        Ok(()) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!(error = %e, "serving failed");
            ExitCode::FAILURE
        }
    }
}

fn load_state(args: &Args) -> State {
    let Some(path) = &args.state_file else {
        return State::default();
    };
    match state::load(path, chrono::Utc::now()) {
        Loaded::Read(state) => {
            info!(path = %path.display(), accounts = state.accounts.len(), "state file loaded");
            state
        }
        Loaded::Missing => {
            info!(path = %path.display(), "no state file yet; it is created when a root password change is seen");
            State::default()
        }
        Loaded::Unusable { error, moved_to } => {
            let moved_to = moved_to
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "not moved".to_owned());
            warn!(path = %path.display(), error, moved_to, "state file unusable; starting from an empty state");
            State::default()
        }
    }
}

/// The AWS configuration from the default chain. IAM and STS are global, so
/// a missing region falls back to us-east-1 rather than failing. Every call
/// is bounded: `attempt_timeout` per attempt, three times that in all.
async fn load_sdk_config(attempt_timeout: Duration) -> SdkConfig {
    let region = RegionProviderChain::default_provider().or_else("us-east-1");
    aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(attempt_timeout.min(Duration::from_secs(5)))
                .operation_attempt_timeout(attempt_timeout)
                .operation_timeout(attempt_timeout * 3)
                .build(),
        )
        .load()
        .await
}

/// Reloads the config file on every SIGHUP.
async fn reload_on_sighup(store: Arc<Store>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            return;
        };
        while hangups.recv().await.is_some() {
            match store.reload_config().await {
                Ok(()) => info!(signal = "hangup", "config reloaded"),
                Err(e) => error!(error = %e, "config reload failed; keeping the config in force"),
            }
        }
    }
    #[cfg(not(unix))]
    std::future::pending::<()>().await;
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!(signal = "interrupt", "shutting down"),
        () = terminate => info!(signal = "terminate", "shutting down"),
    }
}
