//! jq transforms applied to each record before it is decoded into columns: Fluvio's Smart
//! Connector options `filter`, `map` and `arraymap` (SPEC §6), which here take a jq
//! expression run by the embedded jaq engine instead of the name of a WebAssembly module.
//!
//! A [`Transform`] is a list of steps compiled once, when the source is bound, so a typo in
//! an expression is a load-time error. Applying it to one JSON record gives zero, one or
//! several records: `filter` keeps the record when its expression yields `true` (jq's
//! `select`), `map` replaces it by the expression's output (each output, when it yields
//! several), `arraymap` replaces it by the elements of the array it yields. Steps run in the
//! order given. A record whose expression fails (a jq error, a non-array for `arraymap`, a
//! value that is not JSON) fails alone: the caller makes it a dead letter.

use std::fmt;
use std::sync::Arc;

use jaq_core::compile::Filter;
use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Native, Vars, data};
use jaq_json::Val;
use serde::{Deserialize, Serialize};

/// What one step does with its record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Keep the record when the expression yields `true`.
    Filter,
    /// Replace the record by the expression's outputs.
    Map,
    /// Replace the record by the elements of the array the expression yields.
    Arraymap,
}

impl StepKind {
    /// The option name, as written in a connector file.
    pub fn name(self) -> &'static str {
        match self {
            StepKind::Filter => "filter",
            StepKind::Map => "map",
            StepKind::Arraymap => "arraymap",
        }
    }

    /// Parses an option name (`filter`, `map`, `arraymap`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "filter" => Some(StepKind::Filter),
            "map" => Some(StepKind::Map),
            "arraymap" => Some(StepKind::Arraymap),
            _ => None,
        }
    }
}

/// One step as written: its kind and jq expression. A list of these is what the
/// `transforms` option holds, as a JSON array of one-key objects:
/// `[{"filter": ".length > 10"}, {"map": "{fact}"}]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepSpec {
    /// What the step does.
    pub kind: StepKind,
    /// The jq expression.
    pub expr: String,
}

/// A transform that could not be compiled or failed on a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// The `transforms` option is not a JSON array of one-key objects.
    #[error(
        "`transforms` must be a JSON array of one-key objects such as [{{\"filter\": \".ok\"}}, {{\"map\": \".data\"}}]: {0}"
    )]
    Shape(String),
    /// An expression does not compile.
    #[error("{kind} expression `{expr}` does not compile: {message}")]
    Compile {
        /// The step's option name.
        kind: &'static str,
        /// The expression.
        expr: String,
        /// What jaq said.
        message: String,
    },
    /// An expression failed on a record.
    #[error("{kind} expression `{expr}` failed: {message}")]
    Run {
        /// The step's option name.
        kind: &'static str,
        /// The expression.
        expr: String,
        /// The error.
        message: String,
    },
}

type JqFilter = Filter<Native<data::JustLut<Val>>>;

struct Step {
    kind: StepKind,
    expr: String,
    filter: JqFilter,
}

/// Compiled transform steps; cheap to clone and shared by the decoder of one table.
#[derive(Clone)]
pub struct Transform {
    steps: Arc<Vec<Step>>,
}

impl fmt::Debug for Transform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.steps.iter().map(|s| (s.kind, &s.expr)))
            .finish()
    }
}

/// Parses the `transforms` option text into steps.
pub fn parse_steps(text: &str) -> Result<Vec<StepSpec>, TransformError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| TransformError::Shape(e.to_string()))?;
    let serde_json::Value::Array(items) = value else {
        return Err(TransformError::Shape("not an array".into()));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let serde_json::Value::Object(map) = item else {
                return Err(TransformError::Shape(format!(
                    "element {i} is not an object"
                )));
            };
            let mut entries = map.into_iter();
            match (entries.next(), entries.next()) {
                (Some((key, serde_json::Value::String(expr))), None) => {
                    let kind = StepKind::parse(&key).ok_or_else(|| {
                        TransformError::Shape(format!(
                            "element {i}: `{key}` is not one of filter, map, arraymap"
                        ))
                    })?;
                    Ok(StepSpec { kind, expr })
                }
                _ => Err(TransformError::Shape(format!(
                    "element {i} must have exactly one key with a string value"
                ))),
            }
        })
        .collect()
}

/// Renders steps as the `transforms` option text (the inverse of [`parse_steps`]).
pub fn steps_text(steps: &[StepSpec]) -> String {
    let items: Vec<serde_json::Value> = steps
        .iter()
        .map(|s| serde_json::json!({ s.kind.name(): s.expr }))
        .collect();
    serde_json::Value::Array(items).to_string()
}

impl Transform {
    /// Compiles every step; the first that does not compile is the error.
    pub fn compile(specs: &[StepSpec]) -> Result<Self, TransformError> {
        let steps = specs
            .iter()
            .map(|spec| {
                Ok(Step {
                    kind: spec.kind,
                    expr: spec.expr.clone(),
                    filter: compile_one(spec)?,
                })
            })
            .collect::<Result<Vec<_>, TransformError>>()?;
        Ok(Transform {
            steps: Arc::new(steps),
        })
    }

    /// Whether there is no step at all.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Applies every step to one record given as JSON text, giving the records that come
    /// out, as compact JSON text, in order.
    pub fn apply(&self, record: &[u8]) -> Result<Vec<String>, TransformError> {
        let first = jaq_json::read::parse_single(record).map_err(|e| TransformError::Run {
            kind: self.steps.first().map_or("map", |s| s.kind.name()),
            expr: self
                .steps
                .first()
                .map(|s| s.expr.clone())
                .unwrap_or_default(),
            message: format!("the record is not JSON: {e}"),
        })?;
        let mut values = vec![first];
        for step in self.steps.iter() {
            let mut next = Vec::with_capacity(values.len());
            for value in values {
                step.run(value, &mut next)?;
            }
            values = next;
        }
        values
            .into_iter()
            .map(|v| {
                let text = v.to_string();
                // jq values that JSON cannot hold (NaN, byte strings) are not records.
                match serde_json::from_str::<serde::de::IgnoredAny>(&text) {
                    Ok(_) => Ok(text),
                    Err(e) => Err(self.last_error(format!("output `{text}` is not JSON: {e}"))),
                }
            })
            .collect()
    }

    fn last_error(&self, message: String) -> TransformError {
        let last = self.steps.last();
        TransformError::Run {
            kind: last.map_or("map", |s| s.kind.name()),
            expr: last.map(|s| s.expr.clone()).unwrap_or_default(),
            message,
        }
    }
}

impl Step {
    fn error(&self, message: String) -> TransformError {
        TransformError::Run {
            kind: self.kind.name(),
            expr: self.expr.clone(),
            message,
        }
    }

    fn run(&self, input: Val, out: &mut Vec<Val>) -> Result<(), TransformError> {
        let ctx = Ctx::<data::JustLut<Val>>::new(&self.filter.lut, Vars::new([]));
        let outputs = self.filter.id.run((ctx, input.clone()));
        let mut produced = Vec::new();
        for output in outputs {
            match output {
                Ok(v) => produced.push(v),
                Err(exn) => {
                    let message = match exn.get_err() {
                        Ok(err) => err.to_string(),
                        Err(_) => "halt is not allowed in a transform".to_string(),
                    };
                    return Err(self.error(message));
                }
            }
        }
        match self.kind {
            StepKind::Filter => {
                if produced.iter().any(|v| *v == Val::from(true)) {
                    out.push(input);
                }
            }
            StepKind::Map => out.extend(produced),
            StepKind::Arraymap => {
                for v in produced {
                    match v {
                        Val::Arr(items) => out.extend(items.iter().cloned()),
                        other => {
                            return Err(self.error(format!("yielded {other}, not an array")));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn compile_one(spec: &StepSpec) -> Result<JqFilter, TransformError> {
    let error = |message: String| TransformError::Compile {
        kind: spec.kind.name(),
        expr: spec.expr.clone(),
        message,
    };
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs());
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let program = File {
        code: spec.expr.as_str(),
        path: (),
    };
    let modules = loader.load(&arena, program).map_err(|errs| {
        error(
            errs.into_iter()
                .map(|(_, e)| load_error_text(&e))
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errs| {
            error(
                errs.into_iter()
                    .flat_map(|(_, es)| es)
                    .map(|(name, undefined)| format!("undefined {undefined:?} `{name}`"))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })
}

fn load_error_text(e: &jaq_core::load::Error<&str>) -> String {
    use jaq_core::load::Error;
    let near = |rest: &str| {
        let rest: String = rest.chars().take(20).collect();
        if rest.is_empty() {
            "at the end".to_string()
        } else {
            format!("near `{rest}`")
        }
    };
    match e {
        Error::Io(items) => items
            .iter()
            .map(|(path, message)| format!("{path}: {message}"))
            .collect::<Vec<_>>()
            .join("; "),
        Error::Lex(items) => items
            .iter()
            .map(|(expect, rest)| format!("expected {} {}", expect.as_str(), near(rest)))
            .collect::<Vec<_>>()
            .join("; "),
        Error::Parse(items) => items
            .iter()
            .map(|(expect, rest)| format!("expected {} {}", expect.as_str(), near(rest)))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(steps: &[(StepKind, &str)], input: &str) -> Result<Vec<String>, TransformError> {
        let specs: Vec<StepSpec> = steps
            .iter()
            .map(|(kind, expr)| StepSpec {
                kind: *kind,
                expr: expr.to_string(),
            })
            .collect();
        Transform::compile(&specs)?.apply(input.as_bytes())
    }

    #[test]
    fn filter_keeps_records_whose_expression_is_true() {
        let keep = run(&[(StepKind::Filter, ".length > 10")], r#"{"length": 11}"#).unwrap();
        assert_eq!(keep, vec![r#"{"length":11}"#]);
        let drop = run(&[(StepKind::Filter, ".length > 10")], r#"{"length": 3}"#).unwrap();
        assert!(drop.is_empty());
        // Truthy but not `true` is not kept, as with Fluvio's boolean filters.
        let one = run(&[(StepKind::Filter, ".length")], r#"{"length": 3}"#).unwrap();
        assert!(one.is_empty());
    }

    #[test]
    fn map_and_arraymap_reshape() {
        let mapped = run(
            &[(StepKind::Map, "{fact: .fact | ascii_upcase}")],
            r#"{"fact": "cats", "length": 4}"#,
        )
        .unwrap();
        assert_eq!(mapped, vec![r#"{"fact":"CATS"}"#]);
        let split = run(
            &[(StepKind::Arraymap, ".data"), (StepKind::Map, ".id")],
            r#"{"data": [{"id": 1}, {"id": 2}]}"#,
        )
        .unwrap();
        assert_eq!(split, vec!["1", "2"]);
    }

    #[test]
    fn errors_name_the_step() {
        let bad = run(&[(StepKind::Map, ".a |")], "{}").unwrap_err();
        assert!(
            matches!(&bad, TransformError::Compile { kind: "map", .. }),
            "{bad}"
        );
        let undefined = run(&[(StepKind::Map, "nosuchfn(1)")], "{}").unwrap_err();
        assert!(undefined.to_string().contains("nosuchfn"), "{undefined}");
        let not_array = run(&[(StepKind::Arraymap, ".a")], r#"{"a": 1}"#).unwrap_err();
        assert_eq!(
            not_array.to_string(),
            "arraymap expression `.a` failed: yielded 1, not an array"
        );
        let failed = run(&[(StepKind::Map, "error(\"boom\")")], "{}").unwrap_err();
        assert!(failed.to_string().contains("boom"), "{failed}");
    }

    #[test]
    fn steps_round_trip_through_option_text() {
        let steps = vec![
            StepSpec {
                kind: StepKind::Filter,
                expr: ".ok".into(),
            },
            StepSpec {
                kind: StepKind::Map,
                expr: ".data".into(),
            },
        ];
        assert_eq!(parse_steps(&steps_text(&steps)).unwrap(), steps);
        assert!(parse_steps(r#"[{"select": "."}]"#).is_err());
        assert!(parse_steps(r#"{"map": "."}"#).is_err());
    }

    #[test]
    fn transform_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Transform>();
    }
}
