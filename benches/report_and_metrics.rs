//! Benchmarks of the hot paths for a 5,000-user account (IAM's user quota):
//! parsing the credential report, building and encoding the metrics, and
//! answering a scrape from the cached exposition.

use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use chrono::{DateTime, Duration, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt as _;

use iam_credentials_exporter::credential_report;
use iam_credentials_exporter::metrics::{self, BuildInfo, ExpositionOptions};
use iam_credentials_exporter::server;
use iam_credentials_exporter::snapshot::{
    AccountFacts, AccountInputs, AccountSettings, AccountSnapshot,
};
use iam_credentials_exporter::store::Store;

const USERS: usize = 5_000;

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_796_300_000, 0).unwrap_or_default()
}

/// A report shaped like AWS's, with a mix of console users, keys and MFA.
fn generated_report(users: usize) -> String {
    let mut csv = String::from(
        "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,\
         password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,\
         access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,\
         access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,\
         access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,\
         cert_1_last_rotated,cert_2_active,cert_2_last_rotated\n\
         <root_account>,arn:aws:iam::111122223333:root,2019-01-01T00:00:00+00:00,not_supported,\
         2026-11-30T10:00:00+00:00,not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,false,\
         N/A,N/A,N/A,N/A,false,N/A,false,N/A\n",
    );
    let at = |days: usize| (now() - Duration::days(days as i64)).to_rfc3339();
    for i in 0..users {
        let console = i % 3 == 0;
        let (password, used, changed) = if console {
            ("true", at(i % 40), at(i % 200))
        } else {
            ("false", "N/A".to_owned(), "N/A".to_owned())
        };
        let _ = writeln!(
            csv,
            "user-{i:05},arn:aws:iam::111122223333:user/user-{i:05},{created},{password},{used},\
             {changed},N/A,{mfa},true,{rotated},{key_used},us-east-1,s3,{second},{rotated2},N/A,N/A,N/A,\
             false,N/A,false,N/A",
            created = at(400 + i % 300),
            mfa = i % 2 == 0,
            rotated = at(i % 365),
            key_used = at(i % 30),
            second = i % 5 == 0,
            rotated2 = at(10 + i % 100),
        );
    }
    csv
}

fn snapshot(report: &str) -> AccountSnapshot {
    let facts = AccountFacts {
        report: Some((
            credential_report::parse(report.as_bytes()).unwrap_or_default(),
            Some(now()),
        )),
        policy: Some(None),
        ..AccountFacts::default()
    };
    AccountSnapshot::build(
        "111122223333",
        &facts,
        &AccountSettings::default(),
        None,
        now(),
    )
}

fn options() -> ExpositionOptions {
    ExpositionOptions {
        collect_users: true,
        build: BuildInfo::current(),
    }
}

fn benchmarks(c: &mut Criterion) {
    let report = generated_report(USERS);
    c.bench_function("parse credential report, 5000 users", |b| {
        b.iter(|| credential_report::parse(black_box(report.as_bytes())))
    });

    let parsed = credential_report::parse(report.as_bytes()).unwrap_or_default();
    let facts = AccountFacts {
        report: Some((parsed, Some(now()))),
        ..AccountFacts::default()
    };
    c.bench_function("build snapshot, 5000 users", |b| {
        b.iter(|| {
            AccountSnapshot::build(
                "111122223333",
                black_box(&facts),
                &AccountSettings::default(),
                None,
                now(),
            )
        })
    });

    let accounts: Arc<[AccountSnapshot]> = Arc::from(vec![snapshot(&report)]);
    c.bench_function("encode metrics (both formats), 5000 users", |b| {
        b.iter(|| metrics::encode(black_box(accounts.clone()), &options()))
    });

    let exposition = metrics::encode(accounts.clone(), &options());
    c.bench_function(
        "gzip the OpenMetrics exposition (first gzip scrape), 5000 users",
        |b| {
            b.iter(|| {
                // A fresh copy each time: compression is cached per exposition.
                let fresh = exposition
                    .as_ref()
                    .map(|e| e.plain(metrics::Format::OpenMetrics));
                fresh.map(|plain| metrics::gzip(&plain).len())
            })
        },
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let store = Arc::new(Store::new(1, options(), Arc::default()));
    let inputs = AccountInputs {
        account_id: "111122223333".to_owned(),
        facts: facts.clone(),
        ..AccountInputs::default()
    };
    runtime.block_on(store.publish(0, inputs, now(), now()));
    let app = server::app(store, "/metrics");
    c.bench_function(
        "serve a scrape from the cached exposition, 5000 users",
        |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let request = Request::get("/metrics")
                        .body(Body::empty())
                        .unwrap_or_default();
                    let response = app.clone().oneshot(request).await;
                    let body = response.map(|r| axum::body::to_bytes(r.into_body(), usize::MAX));
                    match body {
                        Ok(body) => body.await.map(|b| b.len()).unwrap_or(0),
                        Err(_) => 0,
                    }
                })
            })
        },
    );
}

criterion_group!(benches, benchmarks);
criterion_main!(benches);
