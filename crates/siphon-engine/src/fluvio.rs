//! Fluvio HTTP connector files (`connect.yml`, SPEC §6) translated into the statement a SQL
//! file would hold, so that one loader checks, binds and stores both.
//!
//! Both Fluvio forms are read: v1 (`api_version: v1`, `name`, `type: http`/`http-source`,
//! `topic`, `create_topic`, `direction: source`, and a `parameters:` block) and the newer one
//! (`meta:` with `type`, `topic`, `name`; `http:` with `endpoint`, `method`, `headers` as a
//! list of `'K: V'`, `body`, `interval`). Either becomes
//!
//! ```sql
//! CREATE TABLE "<topic>" (value JSON) WITH (connector = 'polling_http_source',
//!   endpoint = ..., format = 'raw', interval_ms = <interval>, [method, body, headers, transforms]);
//! ```
//!
//! so each response body is one record in the JSON column `value`, polled every `interval`
//! (seconds when a bare number, else a duration such as `10s`; default 300 s). Fluvio's
//! Smart Connector options `filter`, `map` and `arraymap` (a jq expression here) become the
//! `transforms` option, in the order written. Positions in the statement are the lines of
//! the YAML keys, so every later error points into the YAML file.
//!
//! The connect.yml printed in Fluvio's documentation (seed 002) lost its `parameters:` line,
//! which makes it invalid YAML; that exact mistake is recognised, and the error shows the
//! corrected file.

use serde_norway::{Mapping, Value};
use siphon_connect::transform::{StepKind, StepSpec, steps_text};
use siphon_ddl::{
    ColumnDef, Ident, OptionValue, Pos, SqlOption, Statement, StatementKind, TypeName,
};

/// Fluvio's default `interval`, in seconds.
pub const DEFAULT_INTERVAL_SECS: u64 = 300;

/// Keys of a `parameters:` / `http:` block that this build reads.
const HTTP_KEYS: &[&str] = &[
    "endpoint",
    "method",
    "body",
    "headers",
    "interval",
    "user_agent",
    "output_parts",
    "output_type",
    "filter",
    "map",
    "arraymap",
];

/// Top-level keys of the v1 form.
const V1_KEYS: &[&str] = &[
    "api_version",
    "version",
    "name",
    "type",
    "topic",
    "create_topic",
    "direction",
    "parameters",
    "filter",
    "map",
    "arraymap",
];

/// Keys of the newer form's `meta:` block.
const META_KEYS: &[&str] = &[
    "version",
    "name",
    "type",
    "topic",
    "create_topic",
    "direction",
    "producer",
    "consumer",
    "secrets",
];

/// One problem in a connector file, with its 1-based line and column (0 when unknown).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FluvioError {
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// The option (YAML key) at fault, if any.
    pub option: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// Whether `path` names a YAML connector file (`.yml` / `.yaml`).
pub fn is_connector_file(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.ends_with(".yml") || lower.ends_with(".yaml")
}

/// Translates a connector file into its `CREATE TABLE` statement, or every problem found.
pub fn statements(text: &str) -> Result<Vec<Statement>, Vec<FluvioError>> {
    let doc: Value = match serde_norway::from_str(text) {
        Ok(v) => v,
        Err(e) => return Err(vec![yaml_error(text, &e)]),
    };
    let mut cx = Translate {
        text,
        errors: Vec::new(),
    };
    let statement = cx.translate(&doc);
    match statement {
        Some(s) if cx.errors.is_empty() => Ok(vec![s]),
        _ => Err(cx.errors),
    }
}

struct Translate<'t> {
    text: &'t str,
    errors: Vec<FluvioError>,
}

/// A scalar as option text; `None` for mappings and sequences.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn normal_key(key: &Value) -> Option<String> {
    key.as_str()
        .map(|k| k.replace('-', "_").to_ascii_lowercase())
}

impl Translate<'_> {
    fn error(&mut self, key: Option<&str>, message: impl Into<String>) {
        let pos = key.map_or(Pos::new(1, 1), |k| self.key_pos(k));
        self.errors.push(FluvioError {
            line: pos.line,
            column: pos.column,
            option: key.map(str::to_string),
            message: message.into(),
        });
    }

    /// Where `key:` is first written (accepting `-` for `_`), for messages and positions.
    fn key_pos(&self, key: &str) -> Pos {
        for (i, line) in self.text.lines().enumerate() {
            let trimmed = line.trim_start();
            let indent = line.len() - trimmed.len();
            let Some((k, _)) = trimmed.split_once(':') else {
                continue;
            };
            let k = k.trim().trim_matches(|c| c == '"' || c == '\'');
            if k.replace('-', "_").eq_ignore_ascii_case(key) {
                return Pos::new(i as u32 + 1, indent as u32 + 1);
            }
        }
        Pos::new(1, 1)
    }

    fn check_keys(&mut self, map: &Mapping, allowed: &[&str], block: &str) {
        for key in map.keys() {
            let Some(k) = normal_key(key) else {
                self.error(None, format!("{block}: keys must be strings"));
                continue;
            };
            if k == "transforms" {
                self.error(
                    Some(&k),
                    "`transforms` runs WebAssembly SmartModules in Fluvio; siphon takes a jq expression in `filter`, `map` or `arraymap` instead",
                );
                continue;
            }
            if !allowed.contains(&k.as_str()) {
                let hint = siphon_ddl::closest(&k, allowed.iter().copied())
                    .map(|c| format!("; did you mean `{c}`?"))
                    .unwrap_or_default();
                self.error(
                    Some(&k),
                    format!(
                        "unknown key `{k}` in {block}{hint} (known: {})",
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    fn translate(&mut self, doc: &Value) -> Option<Statement> {
        let Value::Mapping(top) = doc else {
            self.error(
                None,
                "a connector file is a YAML mapping (api_version, name, type, topic, parameters: ...)",
            );
            return None;
        };
        let get = |map: &Mapping, key: &str| -> Option<Value> {
            map.iter()
                .find(|(k, _)| normal_key(k).as_deref() == Some(key))
                .map(|(_, v)| v.clone())
        };
        // The newer form keeps its identity under `meta:` and its options under `http:`.
        let (ident_block, ident_name, http, http_name) = match get(top, "meta") {
            Some(Value::Mapping(meta)) => {
                self.check_keys(
                    top,
                    &[
                        "api_version",
                        "apiversion",
                        "meta",
                        "http",
                        "filter",
                        "map",
                        "arraymap",
                    ],
                    "the connector file",
                );
                self.check_keys(&meta, META_KEYS, "meta");
                let http = match get(top, "http") {
                    Some(Value::Mapping(h)) => h,
                    Some(_) => {
                        self.error(
                            Some("http"),
                            "`http` must be a mapping of endpoint, method, headers, body, interval",
                        );
                        return None;
                    }
                    None => {
                        self.error(None, "missing `http:` block (with at least `endpoint`)");
                        return None;
                    }
                };
                (meta, "meta", http, "http")
            }
            Some(_) => {
                self.error(
                    Some("meta"),
                    "`meta` must be a mapping of name, type, topic",
                );
                return None;
            }
            None => {
                self.check_keys(top, V1_KEYS, "the connector file");
                let params = match get(top, "parameters") {
                    Some(Value::Mapping(p)) => p,
                    Some(_) => {
                        self.error(Some("parameters"), "`parameters` must be a mapping of endpoint, method, body, headers, interval");
                        return None;
                    }
                    None => {
                        self.error(
                            None,
                            "missing `parameters:` block (with at least `endpoint`)",
                        );
                        return None;
                    }
                };
                (top.clone(), "the connector file", params, "parameters")
            }
        };
        if let Some(t) = get(&ident_block, "type") {
            let t = scalar_text(&t).unwrap_or_default();
            if !matches!(t.as_str(), "http" | "http-source" | "http_source") {
                self.error(
                    Some("type"),
                    format!("type `{t}` is not an HTTP source connector (use http or http-source)"),
                );
            }
        }
        if let Some(d) = get(&ident_block, "direction") {
            let d = scalar_text(&d).unwrap_or_default();
            if d != "source" {
                self.error(
                    Some("direction"),
                    format!("direction `{d}`: only `source` is supported"),
                );
            }
        }
        let topic = match get(&ident_block, "topic").as_ref().and_then(scalar_text) {
            Some(t) if !t.trim().is_empty() => t,
            _ => {
                self.error(
                    None,
                    format!("missing `topic` in {ident_name}: it names the table the bodies go to"),
                );
                return None;
            }
        };
        self.check_keys(&http, HTTP_KEYS, http_name);

        let mut options: Vec<SqlOption> = Vec::new();
        let mut push = |cx: &Self, key: &str, yaml_key: &str, value: OptionValue| {
            let pos = cx.key_pos(yaml_key);
            options.push(SqlOption {
                key: key.to_string(),
                key_pos: pos,
                value,
                value_pos: pos,
            });
        };
        push(
            self,
            "connector",
            "type",
            OptionValue::String("polling_http_source".into()),
        );
        match get(&http, "endpoint").as_ref().and_then(scalar_text) {
            Some(e) => push(self, "endpoint", "endpoint", OptionValue::String(e)),
            None => self.error(None, format!("missing `endpoint` in {http_name}")),
        }
        for key in ["method", "body"] {
            if let Some(v) = get(&http, key) {
                match scalar_text(&v) {
                    Some(text) => push(self, key, key, OptionValue::String(text)),
                    None => self.error(Some(key), format!("`{key}` must be a string")),
                }
            }
        }
        let mut headers = serde_json::Map::new();
        if let Some(h) = get(&http, "headers") {
            self.headers(&h, &mut headers);
        }
        if let Some(agent) = get(&http, "user_agent").as_ref().and_then(scalar_text) {
            headers.insert("User-Agent".into(), serde_json::Value::String(agent));
        }
        if !headers.is_empty() {
            push(
                self,
                "headers",
                "headers",
                OptionValue::String(serde_json::Value::Object(headers).to_string()),
            );
        }
        let interval_ms = match get(&http, "interval") {
            None => DEFAULT_INTERVAL_SECS * 1000,
            Some(v) => match interval_millis(&v) {
                Ok(ms) => ms,
                Err(e) => {
                    self.error(Some("interval"), e);
                    DEFAULT_INTERVAL_SECS * 1000
                }
            },
        };
        push(
            self,
            "interval_ms",
            "interval",
            OptionValue::Number(interval_ms.to_string()),
        );
        if let Some(v) = get(&http, "output_parts").as_ref().and_then(scalar_text)
            && v != "body"
        {
            self.error(
                Some("output_parts"),
                format!("output_parts `{v}`: only `body` is supported (each body is one record)"),
            );
        }
        if let Some(v) = get(&http, "output_type").as_ref().and_then(scalar_text)
            && !matches!(v.as_str(), "text" | "json")
        {
            self.error(
                Some("output_type"),
                format!("output_type `{v}` is not one of text, json"),
            );
        }
        push(
            self,
            "format",
            "endpoint",
            OptionValue::String("raw".into()),
        );

        // filter / map / arraymap, in the order written, from either level.
        let mut steps = Vec::new();
        for block in [top, &http] {
            for (k, v) in block {
                let Some(kind) = normal_key(k).as_deref().and_then(StepKind::parse) else {
                    continue;
                };
                match scalar_text(v) {
                    Some(expr) => steps.push((self.key_pos(kind.name()), StepSpec { kind, expr })),
                    None => self.error(
                        Some(kind.name()),
                        format!("`{}` must be a jq expression (a string)", kind.name()),
                    ),
                }
            }
        }
        steps.sort_by_key(|(pos, _)| *pos);
        if let Some((pos, _)) = steps.first() {
            let specs: Vec<StepSpec> = steps.iter().map(|(_, s)| s.clone()).collect();
            options.push(SqlOption {
                key: "transforms".into(),
                key_pos: *pos,
                value: OptionValue::String(steps_text(&specs)),
                value_pos: *pos,
            });
        }

        let topic_pos = self.key_pos("topic");
        let value_column = ColumnDef {
            name: Ident {
                value: "value".into(),
                pos: topic_pos,
                quoted: false,
            },
            type_name: TypeName {
                name: "JSON".into(),
                params: Vec::new(),
                pos: topic_pos,
            },
            not_null: false,
            primary_key: false,
        };
        let text = format!(
            "CREATE TABLE \"{}\" (value JSON) WITH ({})",
            topic.replace('"', "\"\""),
            options
                .iter()
                .map(|o| format!("{} = {}", o.key, o.value))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Some(Statement {
            kind: StatementKind::CreateTable {
                name: Ident {
                    value: topic,
                    pos: topic_pos,
                    quoted: true,
                },
                columns: vec![value_column],
                primary_key: Vec::new(),
                options,
                or_replace: false,
                if_not_exists: false,
            },
            pos: topic_pos,
            text,
        })
    }

    /// `headers` as a list of `'K: V'` (Fluvio) or a mapping.
    fn headers(&mut self, value: &Value, out: &mut serde_json::Map<String, serde_json::Value>) {
        match value {
            Value::Sequence(items) => {
                for item in items {
                    match item.as_str().and_then(|s| s.split_once(':')) {
                        Some((k, v)) if !k.trim().is_empty() => {
                            out.insert(k.trim().to_string(), v.trim().into());
                        }
                        _ => self.error(
                            Some("headers"),
                            format!(
                                "header `{}` is not written `Name: value`",
                                scalar_text(item).unwrap_or_default()
                            ),
                        ),
                    }
                }
            }
            Value::Mapping(map) => {
                for (k, v) in map {
                    match (k.as_str(), scalar_text(v)) {
                        (Some(k), Some(v)) => {
                            out.insert(k.to_string(), v.into());
                        }
                        _ => self.error(Some("headers"), "header names and values must be strings"),
                    }
                }
            }
            _ => self.error(
                Some("headers"),
                "`headers` must be a list of 'Name: value' strings",
            ),
        }
    }
}

/// Fluvio's `interval`: a bare number is seconds; text may carry a unit (`10s`, `1m`,
/// `500ms`, `1h`).
fn interval_millis(value: &Value) -> Result<u64, String> {
    let text = scalar_text(value)
        .ok_or("`interval` must be a number of seconds or a duration such as 10s")?;
    let text = text.trim();
    let millis = if let Ok(secs) = text.parse::<f64>() {
        if !(secs.is_finite() && secs > 0.0) {
            return Err(format!("interval `{text}` must be more than 0 seconds"));
        }
        (secs * 1000.0).round() as u64
    } else {
        siphon_connect::duration::parse(text)
            .map_err(|e| format!("interval `{text}`: {e}"))?
            .as_millis() as u64
    };
    if millis == 0 {
        return Err(format!("interval `{text}` must be at least 1ms"));
    }
    Ok(millis)
}

/// The error for text that is not YAML; for the seed 002 snippet (a v1 file whose
/// `parameters:` line was lost) it says so and shows the corrected file.
fn yaml_error(text: &str, e: &serde_norway::Error) -> FluvioError {
    if let Some(fix) = missing_parameters(text) {
        return fix;
    }
    let (line, column) = e
        .location()
        .map_or((0, 0), |l| (l.line() as u32, l.column() as u32));
    FluvioError {
        line,
        column,
        option: None,
        message: format!("not valid YAML: {e}"),
    }
}

/// Recognises indented `endpoint:`/`interval:`/... lines under a top-level key that already
/// has a value: the `parameters:` line is missing above them.
fn missing_parameters(text: &str) -> Option<FluvioError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut previous_top: Option<&str> = None;
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if indent == 0 {
            previous_top = Some(line);
            continue;
        }
        let key = trimmed.split_once(':').map(|(k, _)| k.trim());
        let is_param = key.is_some_and(|k| HTTP_KEYS.contains(&k.replace('-', "_").as_str()));
        let parent_has_value = previous_top
            .and_then(|p| p.split_once(':'))
            .is_some_and(|(_, v)| !v.trim().is_empty() && !v.trim().starts_with('#'));
        if !(is_param && parent_has_value) {
            return None;
        }
        let mut fixed: Vec<String> = lines[..i].iter().map(|l| l.to_string()).collect();
        fixed.push("parameters:".into());
        fixed.extend(lines[i..].iter().map(|l| l.to_string()));
        let mut fixed = fixed.join("\n");
        fixed.push('\n');
        // Only offer the fix when it makes a valid connector file.
        statements(&fixed).ok()?;
        return Some(FluvioError {
            line: i as u32 + 1,
            column: indent as u32 + 1,
            option: None,
            message: format!(
                "not valid YAML: `{}` is indented under `{}`, which already has a value. \
                 The `parameters:` line is missing above it (Fluvio's documentation printed \
                 connect.yml without it). The corrected file:\n\n{fixed}",
                trimmed.trim_end(),
                previous_top.unwrap_or_default().trim_end(),
            ),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_AS_PRINTED: &str = "# connect.yml\napi_version: v1\nname: cat-facts\ntype: http\ntopic: cat-facts\ncreate_topic: true\ndirection: source\n  endpoint: https://catfact.ninja/fact\n  interval: 10\n";

    fn options(stmt: &Statement) -> Vec<(String, String)> {
        let StatementKind::CreateTable { options, .. } = &stmt.kind else {
            panic!("not a table")
        };
        options
            .iter()
            .map(|o| (o.key.clone(), o.value.as_text()))
            .collect()
    }

    #[test]
    fn v1_form_with_parameters() {
        let text =
            SEED_AS_PRINTED.replace("direction: source\n", "direction: source\nparameters:\n");
        let stmts = statements(&text).unwrap();
        assert_eq!(stmts.len(), 1);
        let StatementKind::CreateTable { name, columns, .. } = &stmts[0].kind else {
            panic!()
        };
        assert_eq!(name.value, "cat-facts");
        assert_eq!(name.pos.line, 5);
        assert_eq!(columns[0].type_name.name, "JSON");
        let opts = options(&stmts[0]);
        assert!(opts.contains(&("endpoint".into(), "https://catfact.ninja/fact".into())));
        assert!(opts.contains(&("interval_ms".into(), "10000".into())));
        assert!(opts.contains(&("format".into(), "raw".into())));
    }

    #[test]
    fn newer_form_with_headers_and_transforms() {
        let text = "apiVersion: 0.1.0\nmeta:\n  version: 0.2.5\n  name: cat-facts\n  type: http-source\n  topic: cat-facts\nhttp:\n  endpoint: http://127.0.0.1:1/fact\n  method: POST\n  body: '{\"q\": 1}'\n  headers:\n    - 'Authorization: token x'\n    - 'Accept: application/json'\n  interval: 2s\n  map: '.fact'\n  filter: '.length > 3'\n";
        let stmts = statements(text).unwrap();
        let opts = options(&stmts[0]);
        assert!(opts.contains(&("method".into(), "POST".into())));
        assert!(opts.contains(&("interval_ms".into(), "2000".into())));
        let headers = &opts.iter().find(|(k, _)| k == "headers").unwrap().1;
        let headers: serde_json::Value = serde_json::from_str(headers).unwrap();
        assert_eq!(headers["Authorization"], "token x");
        let transforms = &opts.iter().find(|(k, _)| k == "transforms").unwrap().1;
        assert_eq!(transforms, r#"[{"map":".fact"},{"filter":".length > 3"}]"#);
    }

    #[test]
    fn default_interval_is_300_seconds() {
        let stmts =
            statements("name: x\ntype: http\ntopic: t\nparameters:\n  endpoint: http://h/\n")
                .unwrap();
        assert!(options(&stmts[0]).contains(&("interval_ms".into(), "300000".into())));
    }

    #[test]
    fn seed_as_printed_points_at_the_line_and_shows_the_fix() {
        let errs = statements(SEED_AS_PRINTED).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!((errs[0].line, errs[0].column), (8, 3));
        assert!(
            errs[0].message.contains("`parameters:` line is missing"),
            "{}",
            errs[0].message
        );
        assert!(
            errs[0].message.contains(
                "direction: source\nparameters:\n  endpoint: https://catfact.ninja/fact\n"
            ),
            "{}",
            errs[0].message
        );
    }

    #[test]
    fn mistakes_are_named_at_their_line() {
        let errs = statements(
            "name: x\ntype: http\ntopic: t\nparameters:\n  endpiont: http://h/\n  interval: soon\n",
        )
        .unwrap_err();
        let messages: Vec<String> = errs
            .iter()
            .map(|e| format!("{}:{} {}", e.line, e.column, e.message))
            .collect();
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with("5:3 unknown key `endpiont`")
                    && m.contains("did you mean `endpoint`")),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with("6:3 interval `soon`")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.contains("missing `endpoint`")),
            "{messages:?}"
        );
        let other = statements("a: [1,\n").unwrap_err();
        assert!(other[0].message.starts_with("not valid YAML"), "{other:?}");
        assert!(other[0].line >= 1);
    }
}
