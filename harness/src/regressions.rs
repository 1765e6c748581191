//! Regression seeds, in the spirit of proptest-regressions: seeds that once
//! failed a scenario, kept in a file beside it (`name.regressions` next to
//! `name.toml`) so that `cargo test` replays them first. `faultline sweep
//! --record-regressions` appends the failing seeds of a sweep.
//!
//! A record keeps the seed, the invariant it broke and the run's digest. A
//! changed digest on replay is worth a note, not a failure: any change to the
//! system or the harness changes runs.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::InputError;

/// One recorded seed: a `[[seed]]` table of a `.regressions` file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Regression {
    /// The seed that failed.
    pub seed: crate::units::Seed,
    /// What the seed broke when it was recorded ("read-your-writes", "aborted").
    pub invariant: String,
    /// The run's digest when it was recorded (hex): a different digest on
    /// replay means the run has changed since.
    pub digest: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    seed: Vec<Regression>,
}

const HEADER: &str = "# Seeds that failed this scenario, recorded by `faultline sweep --record-regressions`.\n\
# `cargo test` replays them before the scenario's own seeds. Check this file in\n\
# with the fix for what they found: it keeps the bug from coming back.\n\n";

/// The regressions file of a scenario file.
pub fn path_for(scenario: &Path) -> PathBuf {
    scenario.with_extension("regressions")
}

/// The recorded seeds of a scenario (none if there is no file).
pub fn load(scenario: &Path) -> Result<Vec<Regression>, InputError> {
    let path = path_for(scenario);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => {
            return Err(InputError::new(
                path.display().to_string(),
                format!("cannot read the regression seeds: {error}"),
            ))
        }
    };
    let file: File = crate::knobs::parse_toml(&path.display().to_string(), &text)?;
    Ok(file.seed)
}

/// Adds `records` to a scenario's regressions file (a seed already there is
/// kept as it was). Returns how many were new.
pub fn record(scenario: &Path, records: &[Regression]) -> Result<usize, String> {
    let mut known = load(scenario).map_err(|e| e.to_string())?;
    let before = known.len();
    for record in records {
        if !known.iter().any(|k| k.seed == record.seed) {
            known.push(record.clone());
        }
    }
    let added = known.len() - before;
    if added > 0 {
        known.sort_by_key(|r| r.seed);
        let body = toml::to_string(&File { seed: known }).map_err(|e| e.to_string())?;
        let path = path_for(scenario);
        std::fs::write(&path, format!("{HEADER}{body}"))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::Seed;

    #[test]
    fn records_round_trip_and_do_not_repeat() {
        let dir = std::env::temp_dir().join(format!("faultline-regressions-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let scenario = dir.join("x.toml");
        assert_eq!(load(&scenario).unwrap(), Vec::new());
        let a = Regression { seed: Seed(7), invariant: "liveness".into(), digest: "ab".into() };
        let b = Regression { seed: Seed(3), invariant: "echo-matches".into(), digest: "cd".into() };
        assert_eq!(record(&scenario, std::slice::from_ref(&a)).unwrap(), 1);
        assert_eq!(record(&scenario, &[a.clone(), b.clone()]).unwrap(), 1);
        assert_eq!(load(&scenario).unwrap(), vec![b, a]);
        assert!(std::fs::read_to_string(path_for(&scenario)).unwrap().starts_with("# Seeds that failed"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
