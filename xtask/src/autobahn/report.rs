//! Reading wstest's `index.json` and judging and summarising its cases.
//!
//! `index.json` is `{agent: {case_id: {behavior, behaviorClose, duration, remoteCloseCode,
//! reportfile}}}`. `behavior` is one of OK, NON-STRICT, INFORMATIONAL, UNIMPLEMENTED, FAILED;
//! `behaviorClose` judges the closing handshake (OK, INFORMATIONAL, FAILED, WRONG CODE, UNCLEAN,
//! FAILED BY CLIENT, ...).

use std::path::Path;

use serde_json::Value;

/// One case of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CaseResult {
    pub(crate) id: String,
    pub(crate) behavior: String,
    pub(crate) behavior_close: String,
    /// As measured by wstest, in milliseconds.
    pub(crate) duration_ms: u64,
    /// The per-case JSON report, relative to the report directory.
    pub(crate) reportfile: String,
}

impl CaseResult {
    pub(crate) fn is_ok(&self) -> bool {
        self.behavior == "OK" && self.behavior_close == "OK"
    }

    /// `FAILED (close UNCLEAN)`, or just `NON-STRICT` when the close is OK.
    pub(crate) fn outcome(&self) -> String {
        outcome(&self.behavior, &self.behavior_close)
    }
}

/// How a behaviour pair is shown.
pub(crate) fn outcome(behavior: &str, behavior_close: &str) -> String {
    if behavior_close == "OK" {
        behavior.to_owned()
    } else {
        format!("{behavior} (close {behavior_close})")
    }
}

/// The cases of one agent in one report directory, in case order.
#[derive(Debug)]
pub(crate) struct SuiteReport {
    pub(crate) agent: String,
    pub(crate) cases: Vec<CaseResult>,
}

/// Reads `dir/index.json`, which must hold exactly one agent (each suite runs a fresh wstest
/// into a fresh directory).
pub(crate) fn read_index(dir: &Path) -> Result<SuiteReport, String> {
    let path = dir.join("index.json");
    let text = std::fs::read_to_string(&path).map_err(|err| {
        format!(
            "cannot read {}: {err} (wstest wrote no report)",
            path.display()
        )
    })?;
    parse_index(&text).map_err(|err| format!("{}: {err}", path.display()))
}

pub(crate) fn parse_index(text: &str) -> Result<SuiteReport, String> {
    let root: Value = serde_json::from_str(text).map_err(|err| err.to_string())?;
    let agents = root.as_object().ok_or("not a JSON object")?;
    let mut agents = agents.iter();
    let (agent, cases) = match (agents.next(), agents.next()) {
        (Some(only), None) => only,
        (None, _) => return Err("no agent: no case was run".into()),
        (Some(_), Some(_)) => return Err("more than one agent".into()),
    };
    let cases = cases
        .as_object()
        .ok_or("the agent's cases are not an object")?;
    let mut results = Vec::with_capacity(cases.len());
    for (id, case) in cases {
        let text_field = |name: &str| -> Result<String, String> {
            case.get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("case {id}: no `{name}`"))
        };
        results.push(CaseResult {
            id: id.clone(),
            behavior: text_field("behavior")?,
            behavior_close: text_field("behaviorClose")?,
            duration_ms: case.get("duration").and_then(Value::as_u64).unwrap_or(0),
            reportfile: text_field("reportfile").unwrap_or_default(),
        });
    }
    results.sort_by(|a, b| case_order(&a.id, &b.id));
    Ok(SuiteReport {
        agent: agent.clone(),
        cases: results,
    })
}

/// Case ids compare as dotted numbers: 1.1.2 < 1.1.10 < 1.2.1.
pub(crate) fn case_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn key(id: &str) -> Vec<u32> {
        id.split('.')
            .map(|part| part.parse().unwrap_or(u32::MAX))
            .collect()
    }
    key(a).cmp(&key(b))
}

/// Whether `id` matches a wstest case pattern (`*` matches any run of characters, as in wstest).
pub(crate) fn matches_pattern(pattern: &str, id: &str) -> bool {
    fn matches(pattern: &[u8], id: &[u8]) -> bool {
        match pattern.split_first() {
            None => id.is_empty(),
            Some((b'*', rest)) => (0..=id.len()).any(|skip| matches(rest, &id[skip..])),
            Some((&c, rest)) => id.first() == Some(&c) && matches(rest, &id[1..]),
        }
    }
    matches(pattern.as_bytes(), id.as_bytes())
}

/// Whether a case passes: OK, or INFORMATIONAL (wstest does not judge those cases), or
/// UNIMPLEMENTED when one of `allow_unimplemented` matches it; and its close OK (or
/// INFORMATIONAL for an INFORMATIONAL case, where wstest does not judge the close either).
pub(crate) fn passes(case: &CaseResult, allow_unimplemented: &[String]) -> bool {
    let behavior_ok = match case.behavior.as_str() {
        "OK" | "INFORMATIONAL" => true,
        "UNIMPLEMENTED" => allow_unimplemented
            .iter()
            .any(|pattern| matches_pattern(pattern, &case.id)),
        _ => false,
    };
    let close_ok = case.behavior_close == "OK"
        || (case.behavior == "INFORMATIONAL" && case.behavior_close == "INFORMATIONAL");
    behavior_ok && close_ok
}

/// The counts of a result table row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) cases: usize,
    pub(crate) ok: usize,
    pub(crate) non_strict: usize,
    pub(crate) informational: usize,
    pub(crate) unimplemented: usize,
    /// FAILED and any behaviour wstest 0.8.2 is not known to report.
    pub(crate) failed: usize,
    /// Cases whose close is neither OK nor INFORMATIONAL (wstest did not judge it).
    pub(crate) close_not_ok: usize,
}

impl Counts {
    pub(crate) fn of(cases: &[CaseResult]) -> Counts {
        let mut counts = Counts {
            cases: cases.len(),
            ..Counts::default()
        };
        for case in cases {
            match case.behavior.as_str() {
                "OK" => counts.ok += 1,
                "NON-STRICT" => counts.non_strict += 1,
                "INFORMATIONAL" => counts.informational += 1,
                "UNIMPLEMENTED" => counts.unimplemented += 1,
                _ => counts.failed += 1,
            }
            if !matches!(case.behavior_close.as_str(), "OK" | "INFORMATIONAL") {
                counts.close_not_ok += 1;
            }
        }
        counts
    }

    pub(crate) const HEADER: [&'static str; 7] = [
        "cases",
        "OK",
        "NON-STRICT",
        "INFORMATIONAL",
        "UNIMPLEMENTED",
        "FAILED",
        "close not OK",
    ];

    pub(crate) fn cells(&self) -> [String; 7] {
        [
            self.cases,
            self.ok,
            self.non_strict,
            self.informational,
            self.unimplemented,
            self.failed,
            self.close_not_ok,
        ]
        .map(|count| count.to_string())
    }
}

/// The cases that are not OK, grouped by outcome (in order of first appearance), each group's
/// ids in case order, with a whole section written as `12.*` when every case of that section
/// in `all` has the group's outcome.
pub(crate) fn not_ok_groups<'a>(
    not_ok: impl IntoIterator<Item = (&'a str, String)>,
    section_size: &dyn Fn(&str) -> usize,
) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for (id, outcome) in not_ok {
        match groups.iter_mut().find(|(group, _)| *group == outcome) {
            Some((_, ids)) => ids.push(id),
            None => groups.push((outcome, vec![id])),
        }
    }
    groups
        .into_iter()
        .map(|(outcome, ids)| (outcome, compress_sections(&ids, section_size)))
        .collect()
}

/// The top-level section of a case id: `12` for `12.1.3`.
pub(crate) fn section(id: &str) -> &str {
    id.split('.').next().unwrap_or(id)
}

fn compress_sections(ids: &[&str], section_size: &dyn Fn(&str) -> usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let current = section(ids[i]);
        let in_group = ids[i..]
            .iter()
            .take_while(|id| section(id) == current)
            .count();
        let in_run = section_size(current);
        if in_group == in_run && in_group > 1 {
            out.push(format!("{current}.* ({in_group} cases)"));
        } else {
            out.extend(ids[i..i + in_group].iter().map(|id| (*id).to_owned()));
        }
        i += in_group;
    }
    out
}

/// Lines of `items` joined by `, ` and wrapped at about `width` characters.
pub(crate) fn wrap(items: &[String], width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for item in items {
        if !line.is_empty() && line.len() + item.len() + 2 > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push_str(", ");
        }
        line.push_str(item);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// The `description` of a case from its per-case JSON report.
pub(crate) fn case_description(dir: &Path, case: &CaseResult) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(&case.reportfile)).ok()?;
    let report: Value = serde_json::from_str(&text).ok()?;
    report
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// A Markdown-style table with aligned columns (plain text that also renders as Markdown).
pub(crate) fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: &[String]| {
        let mut text = String::from("|");
        for (index, width) in widths.iter().enumerate().take(columns) {
            let cell = cells.get(index).map(String::as_str).unwrap_or("");
            text.push_str(&format!(" {cell:<width$} |"));
        }
        text
    };
    let mut out = line(header);
    out.push('\n');
    out.push('|');
    for width in &widths {
        out.push_str(&format!(" {} |", "-".repeat(*width)));
    }
    for row in rows {
        out.push('\n');
        out.push_str(&line(row));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"{"agent": {
        "1.1.10": {"behavior": "OK", "behaviorClose": "OK", "duration": 2, "remoteCloseCode": 1000, "reportfile": "a.json"},
        "1.1.2": {"behavior": "NON-STRICT", "behaviorClose": "OK", "duration": 1, "remoteCloseCode": null, "reportfile": "b.json"},
        "7.1.6": {"behavior": "INFORMATIONAL", "behaviorClose": "INFORMATIONAL", "duration": 1, "remoteCloseCode": 1000, "reportfile": "c.json"},
        "12.1.1": {"behavior": "UNIMPLEMENTED", "behaviorClose": "OK", "duration": 1, "remoteCloseCode": 1000, "reportfile": "d.json"},
        "5.1": {"behavior": "FAILED", "behaviorClose": "UNCLEAN", "duration": 1, "remoteCloseCode": null, "reportfile": "e.json"}
    }}"#;

    #[test]
    fn cases_come_in_numeric_order() {
        let report = parse_index(INDEX).unwrap();
        assert_eq!(report.agent, "agent");
        let ids: Vec<&str> = report.cases.iter().map(|case| case.id.as_str()).collect();
        assert_eq!(ids, ["1.1.2", "1.1.10", "5.1", "7.1.6", "12.1.1"]);
    }

    #[test]
    fn counts() {
        let report = parse_index(INDEX).unwrap();
        let counts = Counts::of(&report.cases);
        assert_eq!(
            counts,
            Counts {
                cases: 5,
                ok: 1,
                non_strict: 1,
                informational: 1,
                unimplemented: 1,
                failed: 1,
                close_not_ok: 1,
            }
        );
    }

    #[test]
    fn pass_rules() {
        let report = parse_index(INDEX).unwrap();
        let passing = |allow: &[String]| -> Vec<&str> {
            report
                .cases
                .iter()
                .filter(|case| passes(case, allow))
                .map(|case| case.id.as_str())
                .collect()
        };
        assert_eq!(passing(&[]), ["1.1.10", "7.1.6"]);
        assert_eq!(passing(&["12.*".to_owned()]), ["1.1.10", "7.1.6", "12.1.1"]);
    }

    #[test]
    fn patterns() {
        assert!(matches_pattern("*", "1.1.1"));
        assert!(matches_pattern("12.*", "12.1.1"));
        assert!(!matches_pattern("12.*", "1.2.1"));
        assert!(matches_pattern("9.1.*", "9.1.6"));
        assert!(matches_pattern("5.3", "5.3"));
        assert!(!matches_pattern("5.3", "5.30"));
    }

    #[test]
    fn whole_sections_are_compressed() {
        let all = ["1.1", "1.2", "12.1", "12.2", "13.1", "13.2"];
        let size = |name: &str| all.iter().filter(|id| section(id) == name).count();
        let groups = not_ok_groups(
            [
                ("1.2", "FAILED".to_owned()),
                ("12.1", "UNIMPLEMENTED".to_owned()),
                ("12.2", "UNIMPLEMENTED".to_owned()),
                ("13.1", "UNIMPLEMENTED".to_owned()),
            ],
            &size,
        );
        assert_eq!(
            groups,
            [
                ("FAILED".to_owned(), vec!["1.2".to_owned()]),
                (
                    "UNIMPLEMENTED".to_owned(),
                    vec!["12.* (2 cases)".to_owned(), "13.1".to_owned()]
                ),
            ]
        );
    }

    #[test]
    fn tables_align() {
        let text = table(
            &["a".to_owned(), "bb".to_owned()],
            &[vec!["ccc".to_owned(), "d".to_owned()]],
        );
        assert_eq!(text, "| a   | bb |\n| --- | -- |\n| ccc | d  |");
    }
}
