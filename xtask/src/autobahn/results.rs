//! The summaries of the latest full runs (`autobahn/results/*.json`) and `docs/conformance.md`,
//! which is rendered from them and never edited by hand.
//!
//! A full run (no `--cases`) of a suite writes its summary: the counts, every case that is not
//! OK, and the durations of the 9.x performance cases. The summaries are checked in so that a
//! run of one suite (say, only `--mode client`) re-renders the document without losing the other
//! suites' latest results; each summary carries its date and wstest version.

use std::path::Path;

use serde_json::{Value, json};

use super::report::{self, CaseResult, Counts};

/// The summary of one full run of one suite.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SuiteRecord {
    /// `wsflow-tokio-server`, `tungstenite-client`, `tungstenite-server-perf`, ...: the file name.
    pub(crate) key: String,
    pub(crate) testee: String,
    pub(crate) runtime: String,
    pub(crate) role: String,
    pub(crate) agent: String,
    /// `YYYY-MM-DD`, UTC.
    pub(crate) date: String,
    pub(crate) wstest: String,
    pub(crate) wall_seconds: f64,
    pub(crate) counts: Counts,
    /// `(case, behavior, behaviorClose)`, in case order.
    pub(crate) not_ok: Vec<(String, String, String)>,
    /// `(section, cases run)`, to print a whole failing section as `12.*`.
    pub(crate) sections: Vec<(String, usize)>,
    /// `(case, description, duration in ms)` of the 9.x cases, in case order.
    pub(crate) performance: Vec<(String, String, u64)>,
}

impl SuiteRecord {
    /// `descriptions` gives the wstest description of a case (read from its report file).
    pub(crate) fn new(
        key: &str,
        [testee, runtime, role]: [&str; 3],
        agent: &str,
        wstest: &str,
        wall_seconds: f64,
        cases: &[CaseResult],
        descriptions: &dyn Fn(&CaseResult) -> Option<String>,
    ) -> SuiteRecord {
        let mut sections: Vec<(String, usize)> = Vec::new();
        for case in cases {
            let section = report::section(&case.id);
            match sections.iter_mut().find(|(name, _)| name == section) {
                Some((_, count)) => *count += 1,
                None => sections.push((section.to_owned(), 1)),
            }
        }
        SuiteRecord {
            key: key.to_owned(),
            testee: testee.to_owned(),
            runtime: runtime.to_owned(),
            role: role.to_owned(),
            agent: agent.to_owned(),
            date: today(),
            wstest: wstest.to_owned(),
            wall_seconds: (wall_seconds * 10.0).round() / 10.0,
            counts: Counts::of(cases),
            not_ok: cases
                .iter()
                .filter(|case| !case.is_ok())
                .map(|case| {
                    (
                        case.id.clone(),
                        case.behavior.clone(),
                        case.behavior_close.clone(),
                    )
                })
                .collect(),
            sections,
            performance: cases
                .iter()
                .filter(|case| report::section(&case.id) == "9")
                .map(|case| {
                    (
                        case.id.clone(),
                        descriptions(case).unwrap_or_default(),
                        case.duration_ms,
                    )
                })
                .collect(),
        }
    }

    fn to_json(&self) -> Value {
        let c = &self.counts;
        json!({
            "testee": self.testee,
            "runtime": self.runtime,
            "role": self.role,
            "agent": self.agent,
            "date": self.date,
            "wstest": self.wstest,
            "wall_seconds": self.wall_seconds,
            "counts": {
                "cases": c.cases,
                "ok": c.ok,
                "non_strict": c.non_strict,
                "informational": c.informational,
                "unimplemented": c.unimplemented,
                "failed": c.failed,
                "close_not_ok": c.close_not_ok,
            },
            "not_ok": self.not_ok.iter().map(|(case, behavior, close)| json!({
                "case": case, "behavior": behavior, "behaviorClose": close,
            })).collect::<Vec<_>>(),
            "sections": self.sections.iter().map(|(section, count)| json!([section, count])).collect::<Vec<_>>(),
            "performance": self.performance.iter().map(|(case, description, ms)| json!({
                "case": case, "description": description, "duration_ms": ms,
            })).collect::<Vec<_>>(),
        })
    }

    fn from_json(key: &str, value: &Value) -> Option<SuiteRecord> {
        let text = |value: &Value, name: &str| value.get(name)?.as_str().map(str::to_owned);
        let count = |name: &str| -> Option<usize> {
            usize::try_from(value.get("counts")?.get(name)?.as_u64()?).ok()
        };
        Some(SuiteRecord {
            key: key.to_owned(),
            testee: text(value, "testee")?,
            runtime: text(value, "runtime")?,
            role: text(value, "role")?,
            agent: text(value, "agent")?,
            date: text(value, "date")?,
            wstest: text(value, "wstest")?,
            wall_seconds: value.get("wall_seconds")?.as_f64()?,
            counts: Counts {
                cases: count("cases")?,
                ok: count("ok")?,
                non_strict: count("non_strict")?,
                informational: count("informational")?,
                unimplemented: count("unimplemented")?,
                failed: count("failed")?,
                close_not_ok: count("close_not_ok")?,
            },
            not_ok: value
                .get("not_ok")?
                .as_array()?
                .iter()
                .map(|case| {
                    Some((
                        text(case, "case")?,
                        text(case, "behavior")?,
                        text(case, "behaviorClose")?,
                    ))
                })
                .collect::<Option<_>>()?,
            sections: value
                .get("sections")?
                .as_array()?
                .iter()
                .map(|pair| {
                    Some((
                        pair.get(0)?.as_str()?.to_owned(),
                        usize::try_from(pair.get(1)?.as_u64()?).ok()?,
                    ))
                })
                .collect::<Option<_>>()?,
            performance: value
                .get("performance")?
                .as_array()?
                .iter()
                .map(|case| {
                    Some((
                        text(case, "case")?,
                        text(case, "description")?,
                        case.get("duration_ms")?.as_u64()?,
                    ))
                })
                .collect::<Option<_>>()?,
        })
    }

    pub(crate) fn save(&self, dir: &Path) -> Result<(), String> {
        std::fs::create_dir_all(dir)
            .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
        let path = dir.join(format!("{}.json", self.key));
        let text = render_json(&self.to_json(), 0);
        std::fs::write(&path, text + "\n")
            .map_err(|err| format!("cannot write {}: {err}", path.display()))
    }

    /// The not-OK cases grouped by outcome, whole sections compressed to `12.*`.
    pub(crate) fn not_ok_groups(&self) -> Vec<(String, Vec<String>)> {
        let size = |section: &str| {
            self.sections
                .iter()
                .find(|(name, _)| name == section)
                .map_or(0, |(_, count)| *count)
        };
        report::not_ok_groups(
            self.not_ok
                .iter()
                .map(|(case, behavior, close)| (case.as_str(), report::outcome(behavior, close))),
            &size,
        )
    }
}

/// JSON with the top two levels indented and everything deeper on one line, so that a list of
/// cases has one case per line.
fn render_json(value: &Value, depth: usize) -> String {
    let indent = "  ".repeat(depth + 1);
    let close = "  ".repeat(depth);
    match value {
        Value::Object(map) if depth < 2 && !map.is_empty() => {
            let entries: Vec<String> = map
                .iter()
                .map(|(key, value)| {
                    format!(
                        "{indent}{}: {}",
                        Value::from(key.as_str()),
                        render_json(value, depth + 1)
                    )
                })
                .collect();
            format!("{{\n{}\n{close}}}", entries.join(",\n"))
        }
        Value::Array(items) if depth < 2 && !items.is_empty() => {
            let entries: Vec<String> = items
                .iter()
                .map(|item| format!("{indent}{}", render_json(item, depth + 1)))
                .collect();
            format!("[\n{}\n{close}]", entries.join(",\n"))
        }
        other => other.to_string(),
    }
}

/// wstest's description of a 9.x case, shortened for a table column:
/// `Send text message message with payload of length 64 * 2**10 (64k).` -> `text message 64k`.
fn short_description(description: &str) -> String {
    let mut text = description.trim().trim_end_matches('.').to_owned();
    if let Some(rest) = text.strip_prefix("Send ") {
        text = rest.to_owned();
    }
    // `4 * 2**20 (4M)` -> `4M`, computed (wstest labels 9.2.5, `8 * 2**20`, as `(16M)`).
    while let Some(power) = text.find(" * 2**") {
        let start = text[..power]
            .rfind(|c: char| !c.is_ascii_digit())
            .map_or(0, |index| index + 1);
        let exponent_at = power + " * 2**".len();
        let exponent_end = text[exponent_at..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(text.len(), |index| exponent_at + index);
        let (Ok(factor), Ok(exponent)) = (
            text[start..power].parse::<u64>(),
            text[exponent_at..exponent_end].parse::<u32>(),
        ) else {
            break;
        };
        let bytes = factor.saturating_mul(2u64.saturating_pow(exponent));
        let size = if bytes % (1 << 20) == 0 {
            format!("{}M", bytes >> 20)
        } else if bytes % (1 << 10) == 0 {
            format!("{}k", bytes >> 10)
        } else {
            bytes.to_string()
        };
        // Drop wstest's own label ` (4M)` after the expression.
        let mut end = exponent_end;
        if let Some(close) = text[end..]
            .strip_prefix(" (")
            .and_then(|label| label.find(')'))
        {
            end += 2 + close + 1;
        }
        text.replace_range(start..end, &size);
    }
    for (long, short) in [
        (" message message", " message"),
        ("with message payload of length ", ""),
        ("with payload of length ", ""),
        (". Sent out in fragments of ", ", fragments of "),
        (". Sent out data in chops of ", ", in chops of "),
        (
            " to measure implementation/network RTT (round trip time) / latency",
            ", one at a time",
        ),
    ] {
        text = text.replace(long, short);
    }
    text
}

/// Every summary in `dir`, by key.
pub(crate) fn load_all(dir: &Path) -> Result<Vec<SuiteRecord>, String> {
    let mut records = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(records);
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(key) = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".json"))
        else {
            continue;
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
        let value: Value =
            serde_json::from_str(&text).map_err(|err| format!("{}: {err}", path.display()))?;
        let record = SuiteRecord::from_json(key, &value)
            .ok_or_else(|| format!("{}: not a result summary", path.display()))?;
        records.push(record);
    }
    records.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(records)
}

const WSFLOW_SUITES: [(&str, &str); 5] = [
    ("tokio", "server"),
    ("async-std", "server"),
    ("tokio", "client"),
    ("async-std", "client"),
    // `--tls`: the server over wss://.
    ("tokio", "server-wss"),
];

/// `docs/conformance.md` from the summaries.
pub(crate) fn render_conformance(records: &[SuiteRecord]) -> String {
    let find = |key: &str| records.iter().find(|record| record.key == key);
    let mut out = String::new();
    out.push_str("# Autobahn testsuite conformance\n\n");
    out.push_str(
        "<!-- Generated by `cargo xtask autobahn` from autobahn/results/*.json. Do not edit by hand. -->\n\n",
    );
    out.push_str(
        "Generated by `cargo xtask autobahn` from the latest full run of each suite \
         (`autobahn/results/`), never edited by hand; how the runs work and how to rerun them is in \
         [autobahn/README.md](../autobahn/README.md). A suite is one role (server: wstest's \
         fuzzingclient against our echo server; client: our Autobahn client against wstest's \
         fuzzingserver) on one runtime.\n\n",
    );
    let mut versions: Vec<&str> = records
        .iter()
        .map(|record| record.wstest.as_str())
        .collect();
    versions.sort_unstable();
    versions.dedup();
    if versions.is_empty() {
        out.push_str("- Testsuite: no run yet\n");
    } else {
        out.push_str(&format!(
            "- Testsuite: wstest of {}, on Python 2.7.18\n",
            versions.join("; ")
        ));
    }
    out.push_str(&format!("- Rendered: {}\n", today()));
    out.push_str(
        "- Columns: `behavior` counts per case; *close not OK* counts cases whose closing \
         handshake was judged neither OK nor INFORMATIONAL.\n\n",
    );

    out.push_str("## wsflow\n\n");
    let wsflow: Vec<(String, Option<&SuiteRecord>)> = WSFLOW_SUITES
        .iter()
        .map(|(runtime, role)| {
            (
                format!("{runtime} | {role}"),
                find(&format!("wsflow-{runtime}-{role}")),
            )
        })
        .collect();
    render_suite_table(&mut out, &["runtime", "role"], &wsflow);
    render_not_ok(&mut out, &wsflow);

    out.push_str("## Reference: tokio-tungstenite\n\n");
    out.push_str(
        "The same suites against the tokio-tungstenite 0.30 peers of `xtask/peers` \
         (`cargo xtask autobahn --testee tungstenite`), for comparison; they do not gate \
         anything.\n\n",
    );
    let reference: Vec<(String, Option<&SuiteRecord>)> = ["server", "client"]
        .iter()
        .map(|role| {
            (
                format!("tokio | {role}"),
                find(&format!("tungstenite-{role}")),
            )
        })
        .collect();
    render_suite_table(&mut out, &["runtime", "role"], &reference);
    render_not_ok(&mut out, &reference);

    render_performance(&mut out, records);
    out
}

fn render_suite_table(
    out: &mut String,
    labels: &[&str],
    suites: &[(String, Option<&SuiteRecord>)],
) {
    let mut header: Vec<String> = labels.iter().map(|label| (*label).to_owned()).collect();
    header.push("date".into());
    header.extend(Counts::HEADER.iter().map(|name| (*name).to_owned()));
    header.push("wall time".into());
    let rows: Vec<Vec<String>> = suites
        .iter()
        .map(|(label, record)| {
            let mut row: Vec<String> = label.split(" | ").map(str::to_owned).collect();
            match record {
                Some(record) => {
                    row.push(record.date.clone());
                    row.extend(record.counts.cells());
                    row.push(format!("{:.1} s", record.wall_seconds));
                }
                None => {
                    row.push("not run yet".into());
                    row.extend(std::iter::repeat_n(
                        "–".to_owned(),
                        Counts::HEADER.len() + 1,
                    ));
                }
            }
            row
        })
        .collect();
    out.push_str(&report::table(&header, &rows));
    out.push_str("\n\n");
}

fn render_not_ok(out: &mut String, suites: &[(String, Option<&SuiteRecord>)]) {
    let ran: Vec<(&String, &SuiteRecord)> = suites
        .iter()
        .filter_map(|(label, record)| record.map(|record| (label, record)))
        .collect();
    if ran.is_empty() {
        return;
    }
    out.push_str("Cases not OK:\n\n");
    for (label, record) in ran {
        let label = label.replace(" | ", " ");
        let groups = record.not_ok_groups();
        if groups.is_empty() {
            out.push_str(&format!("- {label}: none\n"));
            continue;
        }
        for (outcome, ids) in groups {
            out.push_str(&format!("- {label}, {outcome}: {}\n", ids.join(", ")));
        }
    }
    out.push('\n');
}

fn render_performance(out: &mut String, records: &[SuiteRecord]) {
    out.push_str("## Performance cases (9.x): wsflow server vs tokio-tungstenite\n\n");
    out.push_str(
        "Durations in milliseconds as measured by wstest for each 9.x case against each echo \
         server, one run each on the same machine. wstest is Python: it bounds these numbers, so \
         they show gross differences only (`cargo bench` measures speed). The tokio-tungstenite \
         column is the comparison run that `cargo xtask autobahn` makes right after a wsflow \
         server run with 9.x cases (`tungstenite-server-perf`), or the latest \
         `--testee tungstenite` server run when that is newer.\n\n",
    );
    let mut columns: Vec<(String, &SuiteRecord)> = Vec::new();
    for (runtime, role) in WSFLOW_SUITES {
        if role != "server" {
            continue;
        }
        if let Some(record) = records
            .iter()
            .find(|record| record.key == format!("wsflow-{runtime}-server"))
            .filter(|record| !record.performance.is_empty())
        {
            columns.push((format!("wsflow {runtime}"), record));
        }
    }
    let reference = records
        .iter()
        .filter(|record| {
            record.key == "tungstenite-server-perf" || record.key == "tungstenite-server"
        })
        .filter(|record| !record.performance.is_empty())
        // The newer; on the same day the comparison run, made next to the wsflow runs.
        .max_by_key(|record| (record.date.clone(), record.key == "tungstenite-server-perf"));
    if let Some(record) = reference {
        columns.push(("tokio-tungstenite".to_owned(), record));
    }
    if columns.is_empty() {
        out.push_str("No server run with 9.x cases yet.\n");
        return;
    }
    let mut cases: Vec<(&str, &str)> = Vec::new();
    for (_, record) in &columns {
        for (case, description, _) in &record.performance {
            if !cases.iter().any(|(seen, _)| seen == case) {
                cases.push((case, description));
            }
        }
    }
    cases.sort_by(|(a, _), (b, _)| report::case_order(a, b));
    let mut header = vec!["case".to_owned(), "description".to_owned()];
    header.extend(columns.iter().map(|(name, _)| format!("{name} (ms)")));
    let mut totals = vec![0u64; columns.len()];
    let mut rows: Vec<Vec<String>> = Vec::new();
    for (case, description) in &cases {
        let mut row = vec![(*case).to_owned(), short_description(description)];
        for (index, (_, record)) in columns.iter().enumerate() {
            match record.performance.iter().find(|(id, _, _)| id == case) {
                Some((_, _, ms)) => {
                    totals[index] += ms;
                    row.push(ms.to_string());
                }
                None => row.push("–".to_owned()),
            }
        }
        rows.push(row);
    }
    let mut total = vec!["total".to_owned(), String::new()];
    total.extend(totals.iter().map(u64::to_string));
    rows.push(total);
    out.push_str(&report::table(&header, &rows));
    out.push_str("\n\nSources: ");
    let sources: Vec<String> = columns
        .iter()
        .map(|(name, record)| format!("{name}: `{}` of {}", record.key, record.date))
        .collect();
    out.push_str(&sources.join("; "));
    out.push_str(".\n");
}

/// Today's date (UTC) as `YYYY-MM-DD`.
pub(crate) fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let (year, month, day) = civil_from_days(i64::try_from(secs / 86_400).unwrap_or(0));
    format!("{year:04}-{month:02}-{day:02}")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(id: &str, behavior: &str, close: &str, ms: u64) -> CaseResult {
        CaseResult {
            id: id.to_owned(),
            behavior: behavior.to_owned(),
            behavior_close: close.to_owned(),
            duration_ms: ms,
            reportfile: String::new(),
        }
    }

    #[test]
    fn descriptions_shorten() {
        let cases = [
            (
                "Send text message message with payload of length 64 * 2**10 (64k).",
                "text message 64k",
            ),
            (
                "Send fragmented binary message message with message payload of length 4 * 2**20 (4M). Sent out in fragments of 256k.",
                "fragmented binary message 4M, fragments of 256k",
            ),
            (
                "Send text message message with payload of length 1 * 2**20 (1M). Sent out data in chops of 64 octets.",
                "text message 1M, in chops of 64 octets",
            ),
            (
                "Send 1000 binary messages of payload size 0 to measure implementation/network RTT (round trip time) / latency.",
                "1000 binary messages of payload size 0, one at a time",
            ),
            (
                "Send binary message message with payload of length 8 * 2**20 (16M).",
                "binary message 8M",
            ),
            ("Something else", "Something else"),
        ];
        for (long, short) in cases {
            assert_eq!(short_description(long), short);
        }
    }

    #[test]
    fn nested_json_stays_on_one_line() {
        let value = json!({"a": 1, "list": [{"case": "1.1.1", "x": [1, 2]}], "empty": []});
        assert_eq!(
            render_json(&value, 0),
            "{\n  \"a\": 1,\n  \"empty\": [],\n  \"list\": [\n    {\"case\":\"1.1.1\",\"x\":[1,2]}\n  ]\n}"
        );
        let back: Value = serde_json::from_str(&render_json(&value, 0)).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(today().len(), 10);
    }

    #[test]
    fn records_round_trip_and_render() {
        let cases = [
            case("1.1.1", "OK", "OK", 1),
            case("9.1.1", "OK", "OK", 12),
            case("12.1.1", "UNIMPLEMENTED", "OK", 1),
            case("12.1.2", "UNIMPLEMENTED", "OK", 1),
        ];
        let record = SuiteRecord::new(
            "wsflow-tokio-server",
            ["wsflow", "tokio", "server"],
            "wsflow-tokio",
            "AutobahnTestSuite 0.8.2",
            3.04,
            &cases,
            &|_| Some("64 KiB".to_owned()),
        );
        assert_eq!(record.wall_seconds, 3.0);
        let back = SuiteRecord::from_json(&record.key, &record.to_json()).unwrap();
        assert_eq!(back, record);
        let doc = render_conformance(std::slice::from_ref(&record));
        assert!(doc.contains("| tokio     | server     | "), "{doc}");
        assert!(doc.contains("not run yet"));
        assert!(
            doc.contains("- tokio server, UNIMPLEMENTED: 12.* (2 cases)"),
            "{doc}"
        );
        assert!(doc.contains("| 9.1.1 | 64 KiB      | 12"), "{doc}");
        let saved = render_json(&record.to_json(), 0);
        let parsed: Value = serde_json::from_str(&saved).unwrap();
        assert_eq!(
            SuiteRecord::from_json(&record.key, &parsed).unwrap(),
            record
        );
    }
}
