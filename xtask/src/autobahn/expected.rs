//! The checked-in expected results, `autobahn/expected/{server,client}.json`.
//!
//! One file per role, the same for every runtime. Each case id maps to its expected `behavior`
//! and `behaviorClose`, and each case that is not OK has a written `reason`.
//! `allow_unimplemented` lists case patterns that may be UNIMPLEMENTED without failing the run
//! (sections 12 and 13, permessage-deflate, until it lands), with the reason given to those cases.
//!
//! The default mode compares a run with the file; `--update` rewrites the file from the run,
//! keeping the reasons of cases whose outcome did not change. The file is written by hand-rolled
//! JSON, one case per line in case order, so that its diffs are readable.

use std::path::Path;

use serde_json::Value;

use super::report::{self, CaseResult};

/// What a reason starts with until someone writes it; such a reason fails the run.
pub(crate) const TODO_REASON: &str = "TODO: explain";

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ExpectedCase {
    pub(crate) behavior: String,
    pub(crate) behavior_close: String,
    pub(crate) reason: Option<String>,
}

impl ExpectedCase {
    fn is_ok(&self) -> bool {
        self.behavior == "OK" && self.behavior_close == "OK"
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ExpectedFile {
    pub(crate) about: String,
    pub(crate) allow_unimplemented: Vec<String>,
    pub(crate) allow_unimplemented_reason: String,
    /// In case order.
    pub(crate) cases: Vec<(String, ExpectedCase)>,
}

/// The outcome of one case in every runtime that ran it, for `--update`.
#[derive(Debug)]
pub(crate) struct Observed<'a> {
    pub(crate) id: &'a str,
    /// `(runtime, result)`.
    pub(crate) runs: Vec<(&'a str, &'a CaseResult)>,
}

impl ExpectedFile {
    pub(crate) fn load(path: &Path) -> Result<ExpectedFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
        ExpectedFile::parse(&text).map_err(|err| format!("{}: {err}", path.display()))
    }

    pub(crate) fn parse(text: &str) -> Result<ExpectedFile, String> {
        let root: Value = serde_json::from_str(text).map_err(|err| err.to_string())?;
        let string = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
        let allow = root.get("allow_unimplemented");
        let allow_unimplemented = match allow.and_then(|allow| allow.get("cases")) {
            None => Vec::new(),
            Some(Value::Array(patterns)) => patterns
                .iter()
                .map(|pattern| {
                    pattern
                        .as_str()
                        .map(str::to_owned)
                        .ok_or("allow_unimplemented.cases holds a non-string")
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("allow_unimplemented.cases is not an array".into()),
        };
        let allow_unimplemented_reason =
            string(allow.and_then(|allow| allow.get("reason"))).unwrap_or_default();
        if !allow_unimplemented.is_empty() && allow_unimplemented_reason.trim().is_empty() {
            return Err("allow_unimplemented needs a reason".into());
        }
        let mut cases = Vec::new();
        if let Some(map) = root.get("cases") {
            let map = map.as_object().ok_or("`cases` is not an object")?;
            for (id, case) in map {
                let behavior = string(case.get("behavior"))
                    .ok_or_else(|| format!("case {id}: no `behavior`"))?;
                let behavior_close = string(case.get("behaviorClose"))
                    .ok_or_else(|| format!("case {id}: no `behaviorClose`"))?;
                cases.push((
                    id.clone(),
                    ExpectedCase {
                        behavior,
                        behavior_close,
                        reason: string(case.get("reason")),
                    },
                ));
            }
        }
        cases.sort_by(|(a, _), (b, _)| report::case_order(a, b));
        Ok(ExpectedFile {
            about: string(root.get("about")).unwrap_or_default(),
            allow_unimplemented,
            allow_unimplemented_reason,
            cases,
        })
    }

    pub(crate) fn render(&self) -> String {
        let json = |text: &str| serde_json::Value::from(text).to_string();
        let mut out = String::from("{\n");
        out.push_str(&format!("  \"about\": {},\n", json(&self.about)));
        out.push_str("  \"allow_unimplemented\": {\n");
        let patterns: Vec<String> = self.allow_unimplemented.iter().map(|p| json(p)).collect();
        out.push_str(&format!("    \"cases\": [{}],\n", patterns.join(", ")));
        out.push_str(&format!(
            "    \"reason\": {}\n",
            json(&self.allow_unimplemented_reason)
        ));
        out.push_str("  },\n");
        if self.cases.is_empty() {
            out.push_str("  \"cases\": {}\n");
        } else {
            out.push_str("  \"cases\": {\n");
            for (index, (id, case)) in self.cases.iter().enumerate() {
                out.push_str(&format!(
                    "    {}: {{\"behavior\": {}, \"behaviorClose\": {}",
                    json(id),
                    json(&case.behavior),
                    json(&case.behavior_close)
                ));
                if let Some(reason) = &case.reason {
                    out.push_str(&format!(", \"reason\": {}", json(reason)));
                }
                out.push('}');
                if index + 1 < self.cases.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str("  }\n");
        }
        out.push_str("}\n");
        out
    }

    pub(crate) fn save(&self, path: &Path) -> Result<(), String> {
        std::fs::write(path, self.render())
            .map_err(|err| format!("cannot write {}: {err}", path.display()))
    }

    fn get(&self, id: &str) -> Option<&ExpectedCase> {
        self.cases
            .iter()
            .find(|(case_id, _)| case_id == id)
            .map(|(_, case)| case)
    }

    fn allows_unimplemented(&self, id: &str) -> bool {
        self.allow_unimplemented
            .iter()
            .any(|pattern| report::matches_pattern(pattern, id))
    }

    /// The differences between a run and this file: cases whose outcome differs, cases the file
    /// does not know, and (for a full run) cases of the file that were not run.
    pub(crate) fn compare(&self, results: &[CaseResult], full_run: bool) -> Vec<String> {
        let mut differences = Vec::new();
        for result in results {
            match self.get(&result.id) {
                None => differences.push(format!(
                    "{}: not in the expected file (got {})",
                    result.id,
                    result.outcome()
                )),
                Some(expected)
                    if expected.behavior != result.behavior
                        || expected.behavior_close != result.behavior_close =>
                {
                    differences.push(format!(
                        "{}: expected {}, got {}",
                        result.id,
                        report::outcome(&expected.behavior, &expected.behavior_close),
                        result.outcome()
                    ));
                }
                Some(_) => {}
            }
        }
        if full_run {
            for (id, _) in &self.cases {
                if !results.iter().any(|result| &result.id == id) {
                    differences.push(format!("{id}: expected but not run"));
                }
            }
        }
        differences
    }

    /// Cases that are not OK and have no written reason.
    pub(crate) fn missing_reasons(&self) -> Vec<String> {
        self.cases
            .iter()
            .filter(|(_, case)| !case.is_ok())
            .filter(|(_, case)| match &case.reason {
                None => true,
                Some(reason) => reason.trim().is_empty() || reason.starts_with(TODO_REASON),
            })
            .map(|(id, case)| {
                format!(
                    "{id}: {} without a written reason",
                    report::outcome(&case.behavior, &case.behavior_close)
                )
            })
            .collect()
    }

    /// Rewrites the cases from a run. A full run replaces the whole case list; a filtered run
    /// replaces only the cases it ran. Reasons are kept where the outcome did not change; cases
    /// UNIMPLEMENTED under `allow_unimplemented` get its reason; any other new non-OK case gets
    /// [`TODO_REASON`]. Where runtimes disagree the worse outcome is written (so the better
    /// runtime then fails the comparison) with a TODO reason naming the disagreement.
    pub(crate) fn update(&mut self, observed: &[Observed<'_>], full_run: bool) {
        let old = std::mem::take(&mut self.cases);
        let mut cases: Vec<(String, ExpectedCase)> = if full_run {
            Vec::new()
        } else {
            old.iter()
                .filter(|(id, _)| !observed.iter().any(|seen| seen.id == id))
                .cloned()
                .collect()
        };
        for seen in observed {
            let Some(worst) = seen
                .runs
                .iter()
                .map(|(_, result)| *result)
                .max_by_key(|result| severity(result))
            else {
                continue;
            };
            let previous = old
                .iter()
                .find(|(id, _)| id == seen.id)
                .map(|(_, case)| case);
            let disagree = seen.runs.iter().any(|(_, result)| {
                result.behavior != worst.behavior || result.behavior_close != worst.behavior_close
            });
            let reason = if worst.is_ok() {
                None
            } else if disagree {
                let runs: Vec<String> = seen
                    .runs
                    .iter()
                    .map(|(runtime, result)| format!("{runtime}: {}", result.outcome()))
                    .collect();
                Some(format!(
                    "{TODO_REASON} (the runtimes disagree: {})",
                    runs.join(", ")
                ))
            } else {
                match previous {
                    Some(previous)
                        if previous.behavior == worst.behavior
                            && previous.behavior_close == worst.behavior_close
                            && previous.reason.is_some() =>
                    {
                        previous.reason.clone()
                    }
                    _ if worst.behavior == "UNIMPLEMENTED"
                        && self.allows_unimplemented(seen.id) =>
                    {
                        Some(self.allow_unimplemented_reason.clone())
                    }
                    Some(ExpectedCase {
                        behavior,
                        behavior_close,
                        reason: Some(reason),
                    }) => Some(format!(
                        "{TODO_REASON} (was {}: {reason})",
                        report::outcome(behavior, behavior_close)
                    )),
                    _ => Some(TODO_REASON.to_owned()),
                }
            };
            cases.push((
                seen.id.to_owned(),
                ExpectedCase {
                    behavior: worst.behavior.clone(),
                    behavior_close: worst.behavior_close.clone(),
                    reason,
                },
            ));
        }
        cases.sort_by(|(a, _), (b, _)| report::case_order(a, b));
        self.cases = cases;
    }
}

/// Which of two outcomes is worse, for runtimes that disagree.
fn severity(result: &CaseResult) -> (u8, u8) {
    let behavior = match result.behavior.as_str() {
        "OK" => 0,
        "INFORMATIONAL" => 1,
        "NON-STRICT" => 2,
        "UNIMPLEMENTED" => 3,
        _ => 4,
    };
    let close = match result.behavior_close.as_str() {
        "OK" => 0,
        "INFORMATIONAL" => 1,
        _ => 2,
    };
    (behavior, close)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: &str, behavior: &str, close: &str) -> CaseResult {
        CaseResult {
            id: id.to_owned(),
            behavior: behavior.to_owned(),
            behavior_close: close.to_owned(),
            duration_ms: 1,
            reportfile: String::new(),
        }
    }

    fn empty() -> ExpectedFile {
        ExpectedFile {
            about: "about".to_owned(),
            allow_unimplemented: vec!["12.*".to_owned()],
            allow_unimplemented_reason: "no compression yet".to_owned(),
            cases: Vec::new(),
        }
    }

    #[test]
    fn update_then_compare_round_trips() {
        let results = [
            result("1.1.1", "OK", "OK"),
            result("1.1.10", "OK", "OK"),
            result("6.4.3", "NON-STRICT", "OK"),
            result("12.1.1", "UNIMPLEMENTED", "OK"),
        ];
        let observed: Vec<Observed<'_>> = results
            .iter()
            .map(|result| Observed {
                id: &result.id,
                runs: vec![("tokio", result)],
            })
            .collect();
        let mut file = empty();
        file.update(&observed, true);
        assert!(file.compare(&results, true).is_empty());
        assert_eq!(
            file.missing_reasons(),
            ["6.4.3: NON-STRICT without a written reason"]
        );
        assert_eq!(
            file.get("12.1.1").unwrap().reason.as_deref(),
            Some("no compression yet")
        );

        let reparsed = ExpectedFile::parse(&file.render()).unwrap();
        assert_eq!(reparsed, file);
        let ids: Vec<&str> = reparsed.cases.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["1.1.1", "1.1.10", "6.4.3", "12.1.1"]);
    }

    #[test]
    fn reasons_survive_an_update_while_the_outcome_stays() {
        let mut file = empty();
        let first = [result("6.4.3", "NON-STRICT", "OK")];
        let observed = [Observed {
            id: "6.4.3",
            runs: vec![("tokio", &first[0])],
        }];
        file.update(&observed, true);
        file.cases[0].1.reason = Some("fails fast on invalid UTF-8 per message".to_owned());
        file.update(&observed, true);
        assert_eq!(
            file.cases[0].1.reason.as_deref(),
            Some("fails fast on invalid UTF-8 per message")
        );
        assert!(file.missing_reasons().is_empty());

        let changed = [result("6.4.3", "FAILED", "OK")];
        file.update(
            &[Observed {
                id: "6.4.3",
                runs: vec![("tokio", &changed[0])],
            }],
            true,
        );
        let reason = file.cases[0].1.reason.clone().unwrap();
        assert!(
            reason.starts_with(TODO_REASON) && reason.contains("was NON-STRICT"),
            "{reason}"
        );
    }

    #[test]
    fn a_filtered_update_keeps_the_other_cases() {
        let mut file = empty();
        let all = [result("1.1.1", "OK", "OK"), result("2.1", "OK", "OK")];
        let observed: Vec<Observed<'_>> = all
            .iter()
            .map(|r| Observed {
                id: &r.id,
                runs: vec![("tokio", r)],
            })
            .collect();
        file.update(&observed, true);
        let again = [result("2.1", "FAILED", "UNCLEAN")];
        file.update(
            &[Observed {
                id: "2.1",
                runs: vec![("tokio", &again[0])],
            }],
            false,
        );
        assert_eq!(file.cases.len(), 2);
        assert!(file.compare(&again, false).is_empty());
        // A full run that misses a case reports it.
        assert_eq!(file.compare(&again, true), ["1.1.1: expected but not run"]);
    }

    #[test]
    fn disagreeing_runtimes_fail() {
        let mut file = empty();
        let tokio = result("5.1", "OK", "OK");
        let async_std = result("5.1", "FAILED", "OK");
        file.update(
            &[Observed {
                id: "5.1",
                runs: vec![("tokio", &tokio), ("async-std", &async_std)],
            }],
            true,
        );
        assert_eq!(file.cases[0].1.behavior, "FAILED");
        assert_eq!(
            file.compare(&[tokio], true),
            ["5.1: expected FAILED, got OK"]
        );
        assert_eq!(file.missing_reasons().len(), 1);
    }

    #[test]
    fn differences() {
        let mut file = empty();
        let ok = result("1.1.1", "OK", "OK");
        file.update(
            &[Observed {
                id: "1.1.1",
                runs: vec![("tokio", &ok)],
            }],
            true,
        );
        let run = [
            result("1.1.1", "FAILED", "UNCLEAN"),
            result("2.1", "OK", "OK"),
        ];
        assert_eq!(
            file.compare(&run, false),
            [
                "1.1.1: expected OK, got FAILED (close UNCLEAN)",
                "2.1: not in the expected file (got OK)"
            ]
        );
    }
}
