//! Recognises a root password change in a CloudTrail event record.
//!
//! CloudTrail logs a console password change as a sign-in event
//! (`eventSource` `signin.amazonaws.com`, `eventName` `PasswordUpdated`) whose
//! `userIdentity.type` says who changed it. Only the root user's successful
//! changes count; an IAM user changing their own password is not a root
//! rotation. The reset flow's `PasswordRecoveryCompleted` is accepted with
//! the same rules.

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// Event names that mean the root password was set anew.
pub const PASSWORD_CHANGE_EVENTS: [&str; 2] = ["PasswordUpdated", "PasswordRecoveryCompleted"];

/// A root password change found in CloudTrail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootPasswordChange {
    /// When the change happened.
    pub at: DateTime<Utc>,
    /// CloudTrail's id of the event.
    pub event_id: String,
    /// `PasswordUpdated` or `PasswordRecoveryCompleted`.
    pub event_name: String,
}

/// What an event record turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventVerdict {
    /// A successful root password change.
    RootPasswordChange(RootPasswordChange),
    /// A well-formed event that is not one (another identity, a failure).
    Unrelated,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventRecord {
    event_source: Option<String>,
    event_name: Option<String>,
    event_time: Option<String>,
    #[serde(rename = "eventID")]
    event_id: Option<String>,
    user_identity: Option<UserIdentity>,
    response_elements: Option<serde_json::Value>,
    error_code: Option<String>,
    error_message: Option<String>,
}

#[derive(Deserialize)]
struct UserIdentity {
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// Reads one `CloudTrailEvent` JSON document.
///
/// Returns an error only when the document is not valid JSON or lacks a
/// usable `eventTime`; an event that is simply not a root password change is
/// [`EventVerdict::Unrelated`].
pub fn classify(json: &str) -> Result<EventVerdict, String> {
    let record: EventRecord =
        serde_json::from_str(json).map_err(|e| format!("malformed CloudTrail event: {e}"))?;

    let name = record.event_name.unwrap_or_default();
    let is_change = PASSWORD_CHANGE_EVENTS.contains(&name.as_str())
        && record.event_source.as_deref() == Some("signin.amazonaws.com");
    let by_root = record.user_identity.and_then(|u| u.kind).as_deref() == Some("Root");
    if !is_change || !by_root || !succeeded(&name, record.response_elements.as_ref()) {
        return Ok(EventVerdict::Unrelated);
    }
    if record.error_code.is_some() || record.error_message.is_some() {
        return Ok(EventVerdict::Unrelated);
    }

    let time = record
        .event_time
        .ok_or_else(|| "CloudTrail event has no eventTime".to_owned())?;
    let at = DateTime::parse_from_rfc3339(&time)
        .map_err(|e| format!("CloudTrail eventTime `{time}` is not a timestamp: {e}"))?
        .with_timezone(&Utc);
    Ok(EventVerdict::RootPasswordChange(RootPasswordChange {
        at,
        event_id: record.event_id.unwrap_or_default(),
        event_name: name,
    }))
}

/// Whether `responseElements` reports success. AWS writes
/// `{"PasswordUpdated": "Success"}`; a record without the key is accepted
/// only for the recovery flow, whose shape AWS does not document.
fn succeeded(name: &str, response: Option<&serde_json::Value>) -> bool {
    match response.and_then(|r| r.get(name)).and_then(|v| v.as_str()) {
        Some(outcome) => outcome == "Success",
        None => name == "PasswordRecoveryCompleted",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(identity: &str, name: &str, outcome: &str) -> String {
        format!(
            r#"{{"eventVersion":"1.08","userIdentity":{{"type":"{identity}","principalId":"111122223333",
            "arn":"arn:aws:iam::111122223333:root","accountId":"111122223333"}},
            "eventTime":"2026-11-23T14:05:09Z","eventSource":"signin.amazonaws.com",
            "eventName":"{name}","awsRegion":"us-east-1","sourceIPAddress":"192.0.2.10",
            "userAgent":"Mozilla/5.0","requestParameters":null,
            "responseElements":{{"{name}":"{outcome}"}},
            "eventID":"5b5c5a1e-0000-4000-8000-000000000001","readOnly":false,
            "eventType":"AwsConsoleSignIn","managementEvent":true,
            "recipientAccountId":"111122223333","eventCategory":"Management"}}"#
        )
    }

    #[test]
    fn root_password_updated_with_success_is_a_change() {
        let verdict = classify(&event("Root", "PasswordUpdated", "Success"));

        let expected = RootPasswordChange {
            at: "2026-11-23T14:05:09Z".parse().expect("time"),
            event_id: "5b5c5a1e-0000-4000-8000-000000000001".to_owned(),
            event_name: "PasswordUpdated".to_owned(),
        };
        assert_eq!(verdict, Ok(EventVerdict::RootPasswordChange(expected)));
    }

    #[test]
    fn iam_user_changing_their_password_does_not_count() {
        let verdict = classify(&event("IAMUser", "PasswordUpdated", "Success"));

        assert_eq!(verdict, Ok(EventVerdict::Unrelated));
    }

    #[test]
    fn failed_change_does_not_count() {
        let verdict = classify(&event("Root", "PasswordUpdated", "Failure"));

        assert_eq!(verdict, Ok(EventVerdict::Unrelated));
    }

    #[test]
    fn recovery_completed_counts() {
        let verdict = classify(&event("Root", "PasswordRecoveryCompleted", "Success"));

        assert!(
            matches!(verdict, Ok(EventVerdict::RootPasswordChange(c)) if c.event_name == "PasswordRecoveryCompleted")
        );
    }

    #[test]
    fn other_sign_in_events_do_not_count() {
        let verdict = classify(&event("Root", "ConsoleLogin", "Success"));

        assert_eq!(verdict, Ok(EventVerdict::Unrelated));
    }

    #[test]
    fn malformed_json_is_an_error() {
        let verdict = classify(r#"{"eventName": "PasswordUpdated", "userIdentity": "#);

        assert!(
            verdict
                .expect_err("malformed")
                .starts_with("malformed CloudTrail event")
        );
    }

    #[test]
    fn bad_event_time_is_an_error() {
        let json =
            event("Root", "PasswordUpdated", "Success").replace("2026-11-23T14:05:09Z", "noon");

        assert_eq!(
            classify(&json).expect_err("bad time"),
            "CloudTrail eventTime `noon` is not a timestamp: premature end of input"
        );
    }

    #[test]
    fn mutated_events_never_panic() {
        let valid = event("Root", "PasswordUpdated", "Success");
        let mut mutator = crate::test_support::Mutator::new(0x5EED);

        for _ in 0..3_000 {
            let input = mutator.mutate(valid.as_bytes());

            let _ = classify(&String::from_utf8_lossy(&input));
        }
    }
}
