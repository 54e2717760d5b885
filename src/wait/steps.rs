//! `siphon wait -f steps.yaml`: Rocketship-style step files (seed 004) run as they are.
//!
//! A file is a mapping with `steps:` (a list of steps), or Rocketship's `tests:` (each with
//! its own `steps:`, run in order), or a single step (a mapping with `config:`). `vars:` at
//! the top gives values for `{{ name }}` / `{{ .vars.name }}`; `--var name=value` adds or
//! overrides them, and `{{ .env.NAME }}` reads the environment. A step is
//!
//! ```yaml
//! - name: "Wait for job completion"
//!   plugin: "http"
//!   config:
//!     method: "GET"                     # default GET
//!     url: "https://host/jobs/{{ job_id }}"
//!     body: '{"data": 1}'               # a string, or YAML that is sent as JSON
//!     headers: {Accept: application/json}
//!     polling:                          # without it: one request, which must be 2xx
//!       interval: "5s"
//!       timeout: "10m"
//!       max_attempts: 30                # optional
//!       backoff_coefficient: 1.2        # optional, default 1.0
//!       conditions:
//!         - {type: status_code, expected: 200}
//!         - {type: json_path, path: ".status", expected: "completed"}
//!         - {type: json_path, path: ".job_id", exists: true}
//!         - {type: header, name: X-Job-Status, expected: finished}
//!   save:
//!     - {json_path: ".job_id", as: job_id}
//!     - {header: Location, as: location}
//! ```
//!
//! `{{ name }}` is replaced in every string of a step's `config` (conditions included) by
//! the value saved earlier (strings as they are, other JSON values as JSON text). Every
//! step is checked before the first request: a mistake in any step, or a `{{ name }}` that
//! no earlier step saves and no variable gives, is invalid input. Steps run in order; the
//! first that fails ends the run, named.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value as Json;
use serde_norway::{Mapping, Value};

use super::path::JsonPath;
use super::{Condition, RequestSpec, Save, SaveFrom, Schedule, WaitSpec};

/// How long the one request of a step without `polling` may take.
pub const SINGLE_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// One step as read, before `{{ name }}` is filled.
#[derive(Clone, Debug)]
pub struct Step {
    /// `name`, or `step N`.
    pub name: String,
    config: Value,
    save: Vec<Save>,
}

/// A steps file, checked.
#[derive(Clone, Debug)]
pub struct StepsFile {
    /// Steps in run order.
    pub steps: Vec<Step>,
    /// `vars:` merged with `--var`.
    pub vars: BTreeMap<String, String>,
}

fn key(map: &Mapping, name: &str) -> Option<Value> {
    map.get(name).cloned()
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn check_keys(map: &Mapping, allowed: &[&str], what: &str) -> Result<(), String> {
    for k in map.keys() {
        let k = text(k).unwrap_or_default();
        if !allowed.contains(&k.as_str()) {
            return Err(format!(
                "{what}: unknown key `{k}` (known: {})",
                allowed.join(", ")
            ));
        }
    }
    Ok(())
}

/// Reads and checks a steps file. `cli_vars` (from `--var`) override `vars:`.
pub fn parse(text_in: &str, cli_vars: &[(String, String)]) -> Result<StepsFile, String> {
    let doc: Value = serde_norway::from_str(text_in).map_err(|e| format!("not valid YAML: {e}"))?;
    let Value::Mapping(top) = doc else {
        return Err("a steps file is a YAML mapping with `steps:`".into());
    };
    let mut vars = BTreeMap::new();
    if let Some(v) = key(&top, "vars") {
        let Value::Mapping(m) = v else {
            return Err("`vars` must be a mapping of names to values".into());
        };
        for (k, v) in m {
            let (Some(k), Some(v)) = (text(&k), text(&v)) else {
                return Err("`vars` values must be strings, numbers or booleans".into());
            };
            vars.insert(k, v);
        }
    }
    for (k, v) in cli_vars {
        vars.insert(k.clone(), v.clone());
    }
    let mut raw_steps: Vec<Value> = Vec::new();
    if let Some(v) = key(&top, "tests") {
        check_keys(
            &top,
            &["name", "description", "version", "vars", "tests"],
            "the steps file",
        )?;
        let Value::Sequence(tests) = v else {
            return Err("`tests` must be a list".into());
        };
        for test in tests {
            match test.get("steps") {
                Some(Value::Sequence(s)) => raw_steps.extend(s.iter().cloned()),
                _ => return Err("each test needs a list of `steps`".into()),
            }
        }
    } else if let Some(v) = key(&top, "steps") {
        check_keys(
            &top,
            &["name", "description", "version", "vars", "steps"],
            "the steps file",
        )?;
        let Value::Sequence(s) = v else {
            return Err("`steps` must be a list".into());
        };
        raw_steps = s;
    } else if top.contains_key("config") {
        raw_steps.push(Value::Mapping(top.clone()));
    } else {
        return Err(
            "a steps file needs `steps:` (a list of steps with plugin, config, save), `tests:`, or a single step's `config:`"
                .into(),
        );
    }
    if raw_steps.is_empty() {
        return Err("the file holds no step".into());
    }
    let mut steps = Vec::new();
    let mut known: BTreeSet<String> = vars.keys().cloned().collect();
    for (i, raw) in raw_steps.iter().enumerate() {
        let label = format!("step {}", i + 1);
        let step = read_step(raw, &label).map_err(|e| format!("{label}: {e}"))?;
        let named = format!("{label} ({:?})", step.name);
        // Every placeholder must be known by now; then the step must build.
        let mut missing = Vec::new();
        let filled = fill(&step.config, &mut |name| {
            if known.contains(name) || env_name(name).is_some_and(|e| std::env::var(e).is_ok()) {
                Some("placeholder".into())
            } else {
                missing.push(name.to_string());
                None
            }
        });
        if let Some(name) = missing.first() {
            return Err(format!(
                "{named}: `{{{{ {name} }}}}` is not defined: no earlier step saves it (save: - json_path: ... as: {name}), and no variable gives it (vars: or --var {name}=...)"
            ));
        }
        build_spec(&filled, &step.save).map_err(|e| format!("{named}: {e}"))?;
        known.extend(step.save.iter().map(|s| s.name.clone()));
        steps.push(step);
    }
    Ok(StepsFile { steps, vars })
}

fn read_step(raw: &Value, label: &str) -> Result<Step, String> {
    let Value::Mapping(map) = raw else {
        return Err("a step is a mapping with name, plugin, config".into());
    };
    check_keys(
        map,
        &["name", "plugin", "config", "save", "assertions"],
        "step",
    )?;
    let name = key(map, "name")
        .as_ref()
        .and_then(text)
        .unwrap_or_else(|| label.to_string());
    let plugin = key(map, "plugin").as_ref().and_then(text);
    if let Some(p) = plugin.as_deref()
        && p != "http"
    {
        return Err(format!("plugin `{p}` is not supported (only http)"));
    }
    let Some(Value::Mapping(mut config)) = key(map, "config") else {
        return Err("missing `config` (method, url, polling)".into());
    };
    // Rocketship assertions are checked on the response like conditions.
    if let Some(assertions) = key(map, "assertions") {
        config.insert("assertions".into(), assertions);
    }
    let mut save = Vec::new();
    if let Some(v) = key(map, "save") {
        let Value::Sequence(items) = v else {
            return Err("`save` must be a list of {json_path, as}".into());
        };
        for item in items {
            let Value::Mapping(m) = item else {
                return Err("each `save` entry is a mapping {json_path, as}".into());
            };
            check_keys(&m, &["json_path", "header", "as", "required"], "save")?;
            let name = key(&m, "as")
                .as_ref()
                .and_then(text)
                .ok_or("each `save` entry needs `as`")?;
            let from = match (key(&m, "json_path"), key(&m, "header")) {
                (Some(p), None) => SaveFrom::Json(JsonPath::parse(
                    &text(&p).ok_or("`json_path` must be a string")?,
                )?),
                (None, Some(h)) => SaveFrom::Header(text(&h).ok_or("`header` must be a string")?),
                _ => return Err(format!("save `{name}`: give either json_path or header")),
            };
            save.push(Save { from, name });
        }
    }
    Ok(Step {
        name,
        config: Value::Mapping(config),
        save,
    })
}

/// `.env.NAME` → `NAME`.
fn env_name(placeholder: &str) -> Option<&str> {
    placeholder.strip_prefix(".env.")
}

/// Replaces `{{ name }}` in every string of `value`; `lookup` gives a name's text.
fn fill(value: &Value, lookup: &mut dyn FnMut(&str) -> Option<String>) -> Value {
    match value {
        Value::String(s) => Value::String(fill_text(s, lookup)),
        Value::Sequence(items) => Value::Sequence(items.iter().map(|v| fill(v, lookup)).collect()),
        Value::Mapping(map) => Value::Mapping(
            map.iter()
                .map(|(k, v)| (k.clone(), fill(v, lookup)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn fill_text(text: &str, lookup: &mut dyn FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open..].find("}}") else {
            break;
        };
        out.push_str(&rest[..open]);
        let inner = rest[open + 2..open + close].trim();
        let name = inner.strip_prefix(".vars.").unwrap_or(inner);
        match lookup(name) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[open..open + close + 2]),
        }
        rest = &rest[open + close + 2..];
    }
    out.push_str(rest);
    out
}

/// The text a saved value stands for in `{{ name }}`.
pub fn value_text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Step {
    /// The step's wait with `{{ name }}` filled from `values` (and the environment).
    pub fn spec(&self, values: &BTreeMap<String, String>) -> Result<WaitSpec, String> {
        let mut missing = None;
        let filled = fill(&self.config, &mut |name| {
            let found = match env_name(name) {
                Some(env) => std::env::var(env).ok(),
                None => values.get(name).cloned(),
            };
            if found.is_none() {
                missing.get_or_insert_with(|| name.to_string());
            }
            found
        });
        if let Some(name) = missing {
            return Err(format!("`{{{{ {name} }}}}` has no value"));
        }
        build_spec(&filled, &self.save)
    }
}

fn duration(v: &Value, field: &str) -> Result<Duration, String> {
    let t = match v {
        Value::String(s) => s.clone(),
        _ => {
            return Err(format!(
                "polling.{field} must be a duration string such as \"2s\", \"5m\" or \"1h\""
            ));
        }
    };
    siphon_connect::duration::parse(&t).map_err(|e| format!("polling.{field}: {e}"))
}

fn build_spec(config: &Value, save: &[Save]) -> Result<WaitSpec, String> {
    let Value::Mapping(config) = config else {
        return Err("`config` must be a mapping".into());
    };
    check_keys(
        config,
        &["method", "url", "body", "headers", "polling", "assertions"],
        "config",
    )?;
    let method = match key(config, "method").as_ref().and_then(text) {
        None => Method::GET,
        Some(m) => parse_method(&m)?,
    };
    let url = key(config, "url")
        .as_ref()
        .and_then(text)
        .ok_or("config: missing `url`")?;
    check_url(&url)?;
    let body = match key(config, "body") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            Some(serde_json::to_string(&other).map_err(|e| format!("config.body: {e}"))?)
        }
    };
    let mut headers = Vec::new();
    if let Some(h) = key(config, "headers") {
        let Value::Mapping(m) = h else {
            return Err("config.headers must be a mapping of names to values".into());
        };
        for (k, v) in m {
            let (Some(k), Some(v)) = (text(&k), text(&v)) else {
                return Err("config.headers: names and values must be strings".into());
            };
            headers.push((k, v));
        }
    }
    let mut conditions = Vec::new();
    let schedule = match key(config, "polling") {
        None => Schedule::once(SINGLE_REQUEST_TIMEOUT),
        Some(Value::Mapping(p)) => {
            check_keys(
                &p,
                &[
                    "interval",
                    "timeout",
                    "max_attempts",
                    "backoff_coefficient",
                    "conditions",
                ],
                "polling",
            )?;
            let interval = duration(
                &key(&p, "interval").ok_or("polling: missing `interval` (e.g. \"2s\")")?,
                "interval",
            )?;
            let timeout = duration(
                &key(&p, "timeout").ok_or("polling: missing `timeout` (e.g. \"5m\")")?,
                "timeout",
            )?;
            let max_attempts = match key(&p, "max_attempts") {
                None => None,
                Some(v) => Some(
                    v.as_u64()
                        .filter(|n| (1..=u32::MAX as u64).contains(n))
                        .ok_or("polling.max_attempts must be a whole number >= 1")?
                        as u32,
                ),
            };
            let backoff_coefficient = match key(&p, "backoff_coefficient") {
                None => 1.0,
                Some(v) => v
                    .as_f64()
                    .filter(|c| c.is_finite() && *c >= 1.0)
                    .ok_or("polling.backoff_coefficient must be a number >= 1.0")?,
            };
            match key(&p, "conditions") {
                Some(Value::Sequence(items)) => {
                    for item in &items {
                        conditions.push(condition(item)?);
                    }
                }
                None => {}
                Some(_) => return Err("polling.conditions must be a list".into()),
            }
            Schedule {
                interval,
                timeout,
                max_attempts,
                backoff_coefficient,
            }
        }
        Some(_) => return Err("config.polling must be a mapping".into()),
    };
    match key(config, "assertions") {
        Some(Value::Sequence(items)) => {
            for item in &items {
                conditions.push(condition(item)?);
            }
        }
        None => {}
        Some(_) => return Err("assertions must be a list".into()),
    }
    Ok(WaitSpec {
        request: RequestSpec {
            method,
            url,
            headers,
            body,
        },
        schedule,
        conditions,
        save: save.to_vec(),
    })
}

/// GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS (any case).
pub fn parse_method(m: &str) -> Result<Method, String> {
    match m.to_ascii_uppercase().as_str() {
        "GET" => Ok(Method::GET),
        "POST" => Ok(Method::POST),
        "PUT" => Ok(Method::PUT),
        "PATCH" => Ok(Method::PATCH),
        "DELETE" => Ok(Method::DELETE),
        "HEAD" => Ok(Method::HEAD),
        "OPTIONS" => Ok(Method::OPTIONS),
        _ => Err(format!(
            "method `{m}` is not one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"
        )),
    }
}

/// An http:// or https:// URL.
pub fn check_url(url: &str) -> Result<(), String> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
        Ok(_) => Err(format!("url `{url}` must be http:// or https://")),
        Err(e) => Err(format!("url `{url}` is not a valid URL: {e}")),
    }
}

fn yaml_to_json(v: &Value) -> Result<Json, String> {
    serde_json::to_value(v).map_err(|e| format!("`expected` cannot be read as JSON: {e}"))
}

fn condition(item: &Value) -> Result<Condition, String> {
    let Value::Mapping(m) = item else {
        return Err("a condition is a mapping with `type`".into());
    };
    let kind = key(m, "type")
        .as_ref()
        .and_then(text)
        .ok_or("a condition needs `type` (status_code, json_path or header)")?;
    match kind.as_str() {
        "status_code" => {
            check_keys(m, &["type", "expected"], "status_code condition")?;
            let expected = key(m, "expected")
                .and_then(|v| match v {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                })
                .filter(|n| (100..=999).contains(n))
                .ok_or("status_code condition: `expected` must be a status such as 200")?;
            Ok(Condition::Status(expected as u16))
        }
        "json_path" => {
            check_keys(
                m,
                &["type", "path", "expected", "exists"],
                "json_path condition",
            )?;
            let path = key(m, "path")
                .as_ref()
                .and_then(text)
                .ok_or("json_path condition: missing `path`")?;
            let path = JsonPath::parse(&path)?;
            match (key(m, "expected"), key(m, "exists")) {
                (Some(expected), None) => Ok(Condition::JsonEquals(path, yaml_to_json(&expected)?)),
                (None, Some(Value::Bool(exists))) => Ok(Condition::JsonExists(path, exists)),
                (None, Some(_)) => {
                    Err("json_path condition: `exists` must be true or false".into())
                }
                _ => Err(format!(
                    "json_path condition on {path}: give either `expected` or `exists`"
                )),
            }
        }
        "header" => {
            check_keys(m, &["type", "name", "expected"], "header condition")?;
            let name = key(m, "name")
                .as_ref()
                .and_then(text)
                .ok_or("header condition: missing `name`")?;
            let expected = key(m, "expected")
                .as_ref()
                .and_then(text)
                .ok_or("header condition: missing `expected`")?;
            Ok(Condition::Header(name, expected))
        }
        other => Err(format!(
            "condition type `{other}` is not one of status_code, json_path, header"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_from_earlier_steps() {
        let text = r#"
steps:
  - name: "Submit job"
    plugin: "http"
    config:
      method: "POST"
      url: "http://127.0.0.1:1/jobs"
      body: '{"data": "process this"}'
    save:
      - json_path: ".job_id"
        as: "job_id"
  - name: "Wait"
    plugin: "http"
    config:
      url: "http://127.0.0.1:1/jobs/{{ job_id }}"
      polling:
        interval: "5s"
        timeout: "10m"
        conditions:
          - type: "json_path"
            path: ".status"
            expected: "{{ expected_status }}"
"#;
        let file = parse(text, &[("expected_status".into(), "completed".into())]).unwrap();
        assert_eq!(file.steps.len(), 2);
        let mut values = file.vars.clone();
        values.insert("job_id".into(), "j-7".into());
        let spec = file.steps[1].spec(&values).unwrap();
        assert_eq!(spec.request.url, "http://127.0.0.1:1/jobs/j-7");
        assert_eq!(spec.schedule.interval, Duration::from_secs(5));
        assert!(matches!(&spec.conditions[0], Condition::JsonEquals(_, v) if v == "completed"));
    }

    #[test]
    fn an_unknown_placeholder_is_refused_before_any_request() {
        let text = "steps:\n  - name: a\n    plugin: http\n    config:\n      url: \"http://h/files/{{ file_id }}/status\"\n";
        let err = parse(text, &[]).unwrap_err();
        assert!(
            err.contains("step 1 (\"a\")") && err.contains("{{ file_id }}"),
            "{err}"
        );
        assert!(parse(text, &[("file_id".into(), "f1".into())]).is_ok());
    }

    #[test]
    fn mistakes_name_the_step_and_field() {
        let bad_duration = "steps:\n  - name: a\n    config:\n      url: http://h/\n      polling:\n        interval: 2\n        timeout: 5m\n";
        assert!(
            parse(bad_duration, &[])
                .unwrap_err()
                .contains("polling.interval")
        );
        let bad_type = "steps:\n  - name: a\n    config:\n      url: http://h/\n      polling:\n        interval: 2s\n        timeout: 5m\n        conditions:\n          - type: body\n";
        assert!(
            parse(bad_type, &[])
                .unwrap_err()
                .contains("condition type `body`")
        );
        let missing_timeout = "steps:\n  - name: a\n    config:\n      url: http://h/\n      polling:\n        interval: 2s\n";
        assert!(
            parse(missing_timeout, &[])
                .unwrap_err()
                .contains("missing `timeout`")
        );
        let plugin = "steps:\n  - name: a\n    plugin: sql\n    config:\n      url: http://h/\n";
        assert!(parse(plugin, &[]).unwrap_err().contains("plugin `sql`"));
    }

    #[test]
    fn a_bare_config_is_one_step_and_expected_keeps_its_json_type() {
        let text = "config:\n  method: GET\n  url: http://h/jobs/1\n  polling:\n    interval: 2s\n    timeout: 5m\n    max_attempts: 30\n    backoff_coefficient: 1.2\n    conditions:\n      - type: status_code\n        expected: 200\n      - type: json_path\n        path: .processing_complete\n        expected: true\n      - type: json_path\n        path: .errors\n        exists: false\n";
        let file = parse(text, &[]).unwrap();
        let spec = file.steps[0].spec(&BTreeMap::new()).unwrap();
        assert_eq!(spec.schedule.max_attempts, Some(30));
        assert_eq!(spec.schedule.backoff_coefficient, 1.2);
        assert!(matches!(spec.conditions[0], Condition::Status(200)));
        assert!(matches!(
            &spec.conditions[1],
            Condition::JsonEquals(_, Json::Bool(true))
        ));
        assert!(matches!(
            &spec.conditions[2],
            Condition::JsonExists(_, false)
        ));
    }
}
