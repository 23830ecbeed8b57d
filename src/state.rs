//! The state file: root password changes seen before, kept across restarts.
//!
//! CloudTrail's event history only reaches 90 days back. Once a change has
//! been seen it is written here, so the age stays exact after the event has
//! left CloudTrail's window. The file is small JSON, rewritten atomically
//! (temporary file, fsync, rename) only when something new was learned.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cloudtrail_event::RootPasswordChange;

const FORMAT_VERSION: u32 = 1;

/// Everything the state file holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The file format's version.
    pub version: u32,
    /// Per account id, the newest root password change seen.
    pub accounts: BTreeMap<String, RememberedChange>,
}

/// A root password change as remembered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RememberedChange {
    /// When the root password was changed.
    pub root_password_last_changed: DateTime<Utc>,
    /// The CloudTrail event that showed it.
    pub event_id: String,
    /// Its event name.
    pub event_name: String,
    /// When the exporter first saw it.
    pub recorded_at: DateTime<Utc>,
}

/// How loading went, for the caller to log.
#[derive(Debug)]
pub enum Loaded {
    /// The file was read.
    Read(State),
    /// There was no file yet: normal on a first start.
    Missing,
    /// The file could not be used; it was moved to `moved_to` (if possible)
    /// and an empty state is used.
    Unusable {
        /// What was wrong.
        error: String,
        /// Where the bad file went.
        moved_to: Option<PathBuf>,
    },
}

impl State {
    /// The newest change remembered for `account_id`.
    pub fn last_change(&self, account_id: &str) -> Option<DateTime<Utc>> {
        self.accounts
            .get(account_id)
            .map(|c| c.root_password_last_changed)
    }

    /// Records `change` if it is newer than what is remembered; returns
    /// whether anything changed.
    pub fn remember(
        &mut self,
        account_id: &str,
        change: &RootPasswordChange,
        now: DateTime<Utc>,
    ) -> bool {
        if self
            .last_change(account_id)
            .is_some_and(|known| known >= change.at)
        {
            return false;
        }
        self.accounts.insert(
            account_id.to_owned(),
            RememberedChange {
                root_password_last_changed: change.at,
                event_id: change.event_id.clone(),
                event_name: change.event_name.clone(),
                recorded_at: now,
            },
        );
        true
    }
}

/// Reads the state file. Never fails: a missing file is an empty state, and
/// a corrupt one is moved aside so that it is not overwritten unseen.
pub fn load(path: &Path, now: DateTime<Utc>) -> Loaded {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::Missing,
        Err(e) => {
            return Loaded::Unusable {
                error: format!("reading {}: {e}", path.display()),
                moved_to: None,
            };
        }
    };
    match parse(&bytes) {
        Ok(state) => Loaded::Read(state),
        Err(error) => {
            let aside = aside_path(path, now);
            let moved_to = std::fs::rename(path, &aside).ok().map(|()| aside);
            Loaded::Unusable { error, moved_to }
        }
    }
}

fn parse(bytes: &[u8]) -> Result<State, String> {
    let state: State =
        serde_json::from_slice(bytes).map_err(|e| format!("state file is not valid: {e}"))?;
    if state.version != FORMAT_VERSION {
        return Err(format!(
            "state file has version {}, this exporter reads version {FORMAT_VERSION}",
            state.version
        ));
    }
    Ok(state)
}

fn aside_path(path: &Path, now: DateTime<Utc>) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".corrupt-{}", now.timestamp()));
    path.with_file_name(name)
}

/// Writes the state atomically: a reader sees the old file or the new one,
/// never a half-written one, even across a crash.
pub fn save(path: &Path, state: &State) -> std::io::Result<()> {
    let mut to_write = state.clone();
    to_write.version = FORMAT_VERSION;
    let json = serde_json::to_vec_pretty(&to_write).map_err(std::io::Error::other)?;

    let mut temporary = path.as_os_str().to_os_string();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&json)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Persist the rename itself; not every platform allows opening a directory.
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(at: &str) -> RootPasswordChange {
        RootPasswordChange {
            at: at.parse().expect("time"),
            event_id: format!("event-{at}"),
            event_name: "PasswordUpdated".to_owned(),
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-12-03T12:00:00Z".parse().expect("time")
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("iam-exporter-state-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn only_a_newer_change_is_remembered() {
        let mut state = State::default();

        let first = state.remember("111122223333", &change("2026-10-01T00:00:00Z"), now());
        let older = state.remember("111122223333", &change("2026-09-01T00:00:00Z"), now());
        let same = state.remember("111122223333", &change("2026-10-01T00:00:00Z"), now());
        let newer = state.remember("111122223333", &change("2026-11-01T00:00:00Z"), now());

        assert_eq!((first, older, same, newer), (true, false, false, true));
        assert_eq!(
            state.last_change("111122223333"),
            Some("2026-11-01T00:00:00Z".parse().expect("time"))
        );
    }

    #[test]
    fn saved_state_loads_back_the_same() {
        let path = temp_dir("roundtrip").join("state.json");
        let mut state = State::default();
        state.remember("111122223333", &change("2026-10-01T00:00:00Z"), now());

        save(&path, &state).expect("saved");
        let loaded = load(&path, now());

        state.version = FORMAT_VERSION;
        assert!(matches!(loaded, Loaded::Read(s) if s == state));
        assert!(!path.with_file_name("state.json.tmp").exists());
    }

    #[test]
    fn missing_file_is_normal() {
        let path = temp_dir("missing").join("state.json");

        assert!(matches!(load(&path, now()), Loaded::Missing));
    }

    #[test]
    fn corrupt_file_is_moved_aside_with_the_reason() {
        let dir = temp_dir("corrupt");
        let path = dir.join("state.json");
        std::fs::write(&path, b"{\"version\": 1, \"accounts\": {").expect("write");

        let loaded = load(&path, now());

        let Loaded::Unusable { error, moved_to } = loaded else {
            panic!("expected an unusable file, got {loaded:?}");
        };
        assert!(error.starts_with("state file is not valid"), "{error}");
        assert_eq!(
            moved_to,
            Some(dir.join(format!("state.json.corrupt-{}", now().timestamp())))
        );
        assert!(!path.exists());
    }

    #[test]
    fn unknown_version_is_refused() {
        assert_eq!(
            parse(br#"{"version": 7, "accounts": {}}"#),
            Err("state file has version 7, this exporter reads version 1".to_owned())
        );
    }

    #[test]
    fn mutated_state_files_never_panic() {
        let mut state = State::default();
        state.remember("111122223333", &change("2026-10-01T00:00:00Z"), now());
        state.version = FORMAT_VERSION;
        let valid = serde_json::to_vec_pretty(&state).expect("json");
        let mut mutator = crate::test_support::Mutator::new(0xFEED);

        for _ in 0..3_000 {
            let input = mutator.mutate(&valid);

            let _ = parse(&input);
        }
    }
}
