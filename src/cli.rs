//! Command-line flags, in the Prometheus exporter style; each can also be
//! set from an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};

/// The default port: outside the fully allocated 9100–9999 exporter range,
/// clear of Prometheus, Alertmanager, Grafana and the common exporters.
pub const DEFAULT_LISTEN_ADDRESS: &str = "0.0.0.0:10178";

/// Exports the health of AWS IAM credentials, above all the root password's
/// age, as Prometheus metrics.
#[derive(Debug, Clone, Parser)]
#[command(version, about, long_about = None)]
pub struct Args {
    /// Address to serve metrics on.
    #[arg(long = "web.listen-address", env = "IAM_EXPORTER_WEB_LISTEN_ADDRESS", default_value = DEFAULT_LISTEN_ADDRESS)]
    pub listen_address: SocketAddr,

    /// Path under which to expose metrics.
    #[arg(long = "web.telemetry-path", env = "IAM_EXPORTER_WEB_TELEMETRY_PATH", default_value = "/metrics", value_parser = telemetry_path)]
    pub telemetry_path: String,

    /// Time between two refreshes of an account (humantime: 30m, 1h, 6h).
    #[arg(long = "refresh.interval", env = "IAM_EXPORTER_REFRESH_INTERVAL", default_value = "1h", value_parser = refresh_interval)]
    pub refresh_interval: Duration,

    /// Export per-user series (false keeps only account-level series).
    #[arg(long = "collect.users", env = "IAM_EXPORTER_COLLECT_USERS", default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub collect_users: bool,

    /// YAML file with rotation thresholds and per-account settings.
    #[arg(long = "config.file", env = "IAM_EXPORTER_CONFIG_FILE")]
    pub config_file: Option<PathBuf>,

    /// JSON file remembering root password changes across restarts.
    #[arg(long = "state.file", env = "IAM_EXPORTER_STATE_FILE")]
    pub state_file: Option<PathBuf>,

    /// Regions whose CloudTrail event history is searched for root password
    /// changes (comma separated; empty disables the search).
    #[arg(
        long = "cloudtrail.regions",
        env = "IAM_EXPORTER_CLOUDTRAIL_REGIONS",
        default_value = "us-east-1",
        value_delimiter = ','
    )]
    pub cloudtrail_regions: Vec<String>,

    /// How far back CloudTrail is searched; at most 90d, all its event
    /// history keeps, so that "no change seen" is never claimed for longer.
    #[arg(long = "cloudtrail.lookback", env = "IAM_EXPORTER_CLOUDTRAIL_LOOKBACK", default_value = "90d", value_parser = cloudtrail_lookback)]
    pub cloudtrail_lookback: Duration,

    /// Longest wait for one attempt of an AWS call; a call is given up after
    /// three times this (the SDK retries transient failures up to three times).
    #[arg(long = "aws.timeout", env = "IAM_EXPORTER_AWS_TIMEOUT", default_value = "30s", value_parser = aws_timeout)]
    pub aws_timeout: Duration,

    /// Only log messages with the given severity or above.
    #[arg(
        long = "log.level",
        env = "IAM_EXPORTER_LOG_LEVEL",
        default_value = "info",
        value_enum
    )]
    pub log_level: LogLevel,

    /// Output format of log messages.
    #[arg(
        long = "log.format",
        env = "IAM_EXPORTER_LOG_FORMAT",
        default_value = "logfmt",
        value_enum
    )]
    pub log_format: LogFormat,
}

impl Args {
    /// The CloudTrail regions, without empty entries.
    pub fn cloudtrail_regions(&self) -> Vec<String> {
        self.cloudtrail_regions
            .iter()
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
            .collect()
    }
}

/// Log severities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// Lifecycle events, warnings and errors.
    Info,
    /// Every AWS call.
    Debug,
}

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `key=value` pairs.
    Logfmt,
    /// One JSON object per line.
    Json,
}

fn positive_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|e| format!("`{text}`: {e}"))?;
    if duration.is_zero() {
        return Err("must be longer than zero".to_owned());
    }
    Ok(duration)
}

/// The longest refresh interval accepted: a week.
const MAX_REFRESH_INTERVAL: Duration = Duration::from_secs(7 * 86_400);

/// CloudTrail's event history keeps 90 days of management events.
const MAX_CLOUDTRAIL_LOOKBACK: Duration = Duration::from_secs(90 * 86_400);

fn aws_timeout(text: &str) -> Result<Duration, String> {
    let duration = positive_duration(text)?;
    if duration > Duration::from_secs(600) {
        return Err("must be at most 10m".to_owned());
    }
    Ok(duration)
}

fn refresh_interval(text: &str) -> Result<Duration, String> {
    let duration = positive_duration(text)?;
    if duration > MAX_REFRESH_INTERVAL {
        return Err("must be at most 7d".to_owned());
    }
    Ok(duration)
}

fn cloudtrail_lookback(text: &str) -> Result<Duration, String> {
    let duration = positive_duration(text)?;
    if duration > MAX_CLOUDTRAIL_LOOKBACK {
        return Err(
            "must be at most 90d: CloudTrail's event history keeps no more, and a \
                    longer window would claim an age that was never checked"
                .to_owned(),
        );
    }
    Ok(duration)
}

fn telemetry_path(text: &str) -> Result<String, String> {
    if !text.starts_with('/') || text == "/" || text.starts_with("/-/") {
        return Err(format!(
            "`{text}` must start with / and not be / or under /-/"
        ));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documentation() {
        let args = Args::try_parse_from(["iam-credentials-exporter"]).expect("defaults parse");

        assert_eq!(args.listen_address.to_string(), DEFAULT_LISTEN_ADDRESS);
        assert_eq!(args.telemetry_path, "/metrics");
        assert_eq!(args.refresh_interval, Duration::from_secs(3600));
        assert!(args.collect_users);
        assert_eq!(args.cloudtrail_regions(), ["us-east-1"]);
        assert_eq!(args.cloudtrail_lookback, Duration::from_secs(90 * 86_400));
        assert_eq!(args.aws_timeout, Duration::from_secs(30));
    }

    #[test]
    fn flags_take_exporter_style_values() {
        let args = Args::try_parse_from([
            "iam-credentials-exporter",
            "--collect.users=false",
            "--refresh.interval=15m",
            "--cloudtrail.regions=us-east-1,eu-west-1",
        ])
        .expect("parse");

        assert!(!args.collect_users);
        assert_eq!(args.refresh_interval, Duration::from_secs(900));
        assert_eq!(args.cloudtrail_regions(), ["us-east-1", "eu-west-1"]);
    }

    #[test]
    fn empty_region_list_disables_cloudtrail() {
        let args = Args::try_parse_from(["x", "--cloudtrail.regions="]).expect("parse");

        assert!(args.cloudtrail_regions().is_empty());
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in [
            ["x", "--refresh.interval=0s"],
            ["x", "--refresh.interval=soon"],
            ["x", "--web.telemetry-path=metrics"],
            ["x", "--refresh.interval=30d"],
            ["x", "--cloudtrail.lookback=91d"],
        ] {
            assert!(Args::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }
}
