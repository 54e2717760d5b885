//! Feldera pipelines: named SQL programs with a lifecycle, each run by its own [`Engine`]
//! on its own part of the data directory.
//!
//! A pipeline lives in `<data dir>/pipelines/<name>/`: `pipeline.json` holds what the
//! client sent (program, configs, description), the deployment it wants (stopped,
//! paused, running) and whether it has storage; `store/` is the engine's data directory.
//! A pipeline that was running when siphon stopped is started again when siphon starts.
//!
//! The program is compiled (parsed, checked, views planned) when it is put, with the same
//! loader as pipeline files, so a program that does not compile is refused with its line
//! and column and never replaces the one before. Starting opens the engine on `store/`
//! (inputs paused for `initial=paused`); stopping shuts it down and ends its egress
//! streams; clearing deletes `store/`.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use siphon_engine::catalog::Catalog;
use siphon_engine::pipeline::{LoadError, SourceFile};
use siphon_engine::{Engine, EngineError, EngineOptions};

/// How many recent steps a pipeline remembers (for completion tokens and the
/// `processed_steps` of egress streams).
const STEPS_KEPT: usize = 100_000;

/// Where a pipeline's deployment is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Deployment {
    /// No engine.
    Stopped,
    /// The engine is opening.
    Provisioning,
    /// Running with inputs paused.
    Paused,
    /// Running.
    Running,
    /// The engine is shutting down.
    Stopping,
}

impl Deployment {
    /// Feldera's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Deployment::Stopped => "Stopped",
            Deployment::Provisioning => "Provisioning",
            Deployment::Paused => "Paused",
            Deployment::Running => "Running",
            Deployment::Stopping => "Stopping",
        }
    }
}

/// What the client sent with `PUT /v0/pipelines/{name}`, echoed back.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Meta {
    /// The name.
    pub name: String,
    /// A UUID made when the pipeline was created.
    pub id: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// +1 per change.
    pub version: u64,
    /// +1 per change of the program.
    pub program_version: u64,
    /// The SQL program.
    pub program_code: String,
    /// Echoed.
    #[serde(default)]
    pub udf_rust: String,
    /// Echoed.
    #[serde(default)]
    pub udf_toml: String,
    /// Echoed.
    #[serde(default)]
    pub program_config: Value,
    /// Echoed.
    #[serde(default)]
    pub runtime_config: Value,
    /// Echoed.
    #[serde(default)]
    pub description: String,
    /// Echoed.
    #[serde(default)]
    pub tags: Value,
}

/// What `pipeline.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Saved {
    meta: Meta,
    desired: Deployment,
    storage_in_use: bool,
}

/// A program that compiled: its tables and views.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The catalog the program makes.
    pub catalog: Catalog,
}

/// Why an action was refused, in Feldera's terms.
#[derive(Debug)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// Feldera's `error_code`.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
    /// Feldera's `details`.
    pub details: Value,
}

impl Refusal {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            status,
            code,
            message: message.into(),
            details: json!({}),
        }
    }
}

/// The mutable part of a pipeline.
struct State {
    saved: Saved,
    compiled: Result<Compiled, Vec<LoadError>>,
    deployment: Deployment,
    deployment_error: Option<String>,
    engine: Option<Arc<Engine>>,
    /// Ends the egress streams of the running engine.
    closing: tokio::sync::watch::Sender<bool>,
    /// The last step (a commit through `/v0` ingress), and recent steps with every
    /// relation's last sequence number when they completed.
    step: u64,
    steps: VecDeque<(u64, BTreeMap<String, u64>)>,
}

/// One pipeline.
pub struct Pipeline {
    dir: PathBuf,
    state: Mutex<State>,
    /// Serializes start and stop.
    lifecycle: tokio::sync::Mutex<()>,
}

/// All pipelines of a data directory.
pub struct Pipelines {
    root: PathBuf,
    options: EngineOptions,
    map: Mutex<BTreeMap<String, Arc<Pipeline>>>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Compiles a program with the pipeline-file loader.
pub fn compile(program: &str) -> Result<Compiled, Vec<LoadError>> {
    let files = [SourceFile {
        path: "program".into(),
        text: program.to_string(),
    }];
    siphon_engine::pipeline::load(&files, &Catalog::default(), &env).map(|loaded| Compiled {
        catalog: loaded.catalog,
    })
}

/// A pipeline name Feldera accepts: letters, digits, `_` and `-`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Pipelines {
    /// The pipelines under `root`; those that were running are started again.
    pub async fn open(root: PathBuf, options: EngineOptions) -> std::io::Result<Arc<Self>> {
        std::fs::create_dir_all(&root)?;
        let pipelines = Arc::new(Pipelines {
            root: root.clone(),
            options,
            map: Mutex::new(BTreeMap::new()),
        });
        let mut restart = Vec::new();
        for entry in std::fs::read_dir(&root)? {
            let dir = entry?.path();
            let Ok(text) = std::fs::read_to_string(dir.join("pipeline.json")) else {
                continue;
            };
            let saved: Saved = match serde_json::from_str(&text) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(path = %dir.display(), error = %e, "a pipeline's pipeline.json cannot be read; the pipeline is left out");
                    continue;
                }
            };
            let name = saved.meta.name.clone();
            let desired = saved.desired;
            let pipeline = Arc::new(Pipeline::new(dir, saved));
            if matches!(desired, Deployment::Running | Deployment::Paused) {
                restart.push((pipeline.clone(), desired));
            }
            pipelines
                .map
                .lock()
                .expect("pipelines lock")
                .insert(name, pipeline);
        }
        for (pipeline, desired) in restart {
            if let Err(e) = pipelines
                .start(&pipeline, desired == Deployment::Paused)
                .await
            {
                tracing::error!(error = %e.message, "restarting a pipeline failed");
            }
        }
        Ok(pipelines)
    }

    /// A pipeline by name.
    pub fn get(&self, name: &str) -> Result<Arc<Pipeline>, Refusal> {
        self.map
            .lock()
            .expect("pipelines lock")
            .get(name)
            .cloned()
            .ok_or_else(|| {
                Refusal::new(
                    404,
                    "UnknownPipelineName",
                    format!("Unknown pipeline name '{name}'"),
                )
            })
    }

    /// Every pipeline, by name.
    pub fn list(&self) -> Vec<Arc<Pipeline>> {
        self.map
            .lock()
            .expect("pipelines lock")
            .values()
            .cloned()
            .collect()
    }

    /// Creates or replaces a pipeline's program; `Ok(true)` when created. A program that
    /// does not compile is refused, and nothing changes.
    pub fn put(&self, name: &str, body: &Value, create_only: bool) -> Result<bool, Refusal> {
        if !valid_name(name) {
            return Err(Refusal::new(
                400,
                "NameDoesNotMatchPattern",
                format!("pipeline name '{name}' may hold only letters, digits, '_' and '-'"),
            ));
        }
        let program = body
            .get("program_code")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let compiled = compile(&program).map_err(|errors| program_errors(&program, &errors))?;
        let text = |key: &str| {
            body.get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let value = |key: &str, default: Value| body.get(key).cloned().unwrap_or(default);
        let mut map = self.map.lock().expect("pipelines lock");
        if let Some(existing) = map.get(name) {
            if create_only {
                return Err(Refusal::new(
                    409,
                    "DuplicateName",
                    format!("a pipeline named '{name}' already exists"),
                ));
            }
            let mut state = existing.state.lock().expect("pipeline lock");
            if state.deployment != Deployment::Stopped {
                return Err(Refusal::new(
                    400,
                    "CannotUpdateNonStoppedPipeline",
                    format!(
                        "pipeline '{name}' is {}: stop it before replacing it",
                        state.deployment.name()
                    ),
                ));
            }
            let meta = &mut state.saved.meta;
            meta.version += 1;
            if meta.program_code != program {
                meta.program_version += 1;
            }
            meta.program_code = program;
            meta.udf_rust = text("udf_rust");
            meta.udf_toml = text("udf_toml");
            meta.program_config = value("program_config", json!({}));
            meta.runtime_config = value("runtime_config", json!({}));
            meta.description = text("description");
            meta.tags = value("tags", json!([]));
            state.compiled = Ok(compiled);
            existing.save(&state).map_err(storage_error)?;
            return Ok(false);
        }
        let meta = Meta {
            name: name.to_string(),
            id: uuid(),
            created_at: Utc::now(),
            version: 1,
            program_version: 1,
            program_code: program,
            udf_rust: text("udf_rust"),
            udf_toml: text("udf_toml"),
            program_config: value("program_config", json!({})),
            runtime_config: value("runtime_config", json!({})),
            description: text("description"),
            tags: value("tags", json!([])),
        };
        let saved = Saved {
            meta,
            desired: Deployment::Stopped,
            storage_in_use: false,
        };
        let pipeline = Arc::new(Pipeline::new(self.root.join(name), saved));
        {
            let state = pipeline.state.lock().expect("pipeline lock");
            pipeline.save(&state).map_err(storage_error)?;
        }
        map.insert(name.to_string(), pipeline);
        Ok(true)
    }

    /// Deletes a stopped pipeline with its storage.
    pub fn delete(&self, name: &str) -> Result<(), Refusal> {
        let pipeline = self.get(name)?;
        {
            let state = pipeline.state.lock().expect("pipeline lock");
            if state.deployment != Deployment::Stopped {
                return Err(Refusal::new(
                    400,
                    "IllegalPipelineAction",
                    format!(
                        "pipeline '{name}' is {}: stop it before deleting it",
                        state.deployment.name()
                    ),
                ));
            }
        }
        std::fs::remove_dir_all(&pipeline.dir)
            .or_else(ignore_missing)
            .map_err(storage_error)?;
        self.map.lock().expect("pipelines lock").remove(name);
        Ok(())
    }

    /// Starts a stopped pipeline (a repeat of the same start is a no-op). The engine opens
    /// in the background; the status shows `Provisioning` until it is up, then `Running`
    /// or `Paused`, or `Stopped` with the error.
    pub async fn start(
        self: &Arc<Self>,
        pipeline: &Arc<Pipeline>,
        paused: bool,
    ) -> Result<(), Refusal> {
        let target = if paused {
            Deployment::Paused
        } else {
            Deployment::Running
        };
        {
            let mut state = pipeline.state.lock().expect("pipeline lock");
            match state.deployment {
                Deployment::Stopped => {}
                d if d == target
                    || (d == Deployment::Provisioning && state.saved.desired == target) =>
                {
                    return Ok(());
                }
                d => {
                    return Err(Refusal::new(
                        400,
                        "IllegalPipelineAction",
                        format!(
                            "pipeline '{}' is {}: only a stopped pipeline starts",
                            state.saved.meta.name,
                            d.name()
                        ),
                    ));
                }
            }
            if let Err(errors) = &state.compiled {
                let first = errors.first().map(|e| e.to_string()).unwrap_or_default();
                return Err(Refusal::new(
                    400,
                    "ProgramNotCompiled",
                    format!("the program does not compile: {first}"),
                ));
            }
            state.deployment = Deployment::Provisioning;
            state.deployment_error = None;
            state.saved.desired = target;
            state.saved.storage_in_use = true;
            let _ = pipeline.save(&state);
        }
        let pipelines = self.clone();
        let pipeline = pipeline.clone();
        tokio::spawn(async move { pipelines.open_engine(&pipeline, paused).await });
        Ok(())
    }

    async fn open_engine(&self, pipeline: &Arc<Pipeline>, paused: bool) {
        let _lifecycle = pipeline.lifecycle.lock().await;
        let program = pipeline
            .state
            .lock()
            .expect("pipeline lock")
            .saved
            .meta
            .program_code
            .clone();
        let options = EngineOptions {
            start_paused: paused,
            ..self.options.clone()
        };
        let store = pipeline.dir.join("store");
        let mut opened = Err(EngineError::Internal("not opened".into()));
        // A stopped engine lets go of its store a moment after it stops.
        for _ in 0..100 {
            opened = Engine::open(
                &store,
                vec![SourceFile {
                    path: "program".into(),
                    text: program.clone(),
                }],
                env,
                options.clone(),
            )
            .await;
            match &opened {
                Err(EngineError::Store(siphon_engine::store::StoreError::InUse { .. })) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ => break,
            }
        }
        let mut state = pipeline.state.lock().expect("pipeline lock");
        match opened {
            Ok(engine) => {
                let engine_for_start = engine.clone();
                tokio::spawn(async move { engine_for_start.start().await });
                state.engine = Some(engine);
                state.closing = tokio::sync::watch::Sender::new(false);
                state.deployment = if paused {
                    Deployment::Paused
                } else {
                    Deployment::Running
                };
            }
            Err(e) => {
                tracing::error!(pipeline = %state.saved.meta.name, error = %e, "starting a pipeline failed");
                state.deployment = Deployment::Stopped;
                state.saved.desired = Deployment::Stopped;
                state.deployment_error = Some(e.to_string());
                let _ = pipeline.save(&state);
            }
        }
    }

    /// Pauses or resumes a running pipeline's inputs.
    pub fn set_paused(&self, pipeline: &Pipeline, paused: bool) -> Result<(), Refusal> {
        let mut state = pipeline.state.lock().expect("pipeline lock");
        let target = if paused {
            Deployment::Paused
        } else {
            Deployment::Running
        };
        match (&state.engine, state.deployment) {
            (Some(engine), Deployment::Running | Deployment::Paused) => {
                if paused {
                    engine.pause();
                } else {
                    engine.resume();
                }
                state.deployment = target;
                state.saved.desired = target;
                let _ = pipeline.save(&state);
                Ok(())
            }
            (_, d) => Err(Refusal::new(
                400,
                "IllegalPipelineAction",
                format!(
                    "pipeline '{}' is {}: only a running or paused pipeline pauses or resumes",
                    state.saved.meta.name,
                    d.name()
                ),
            )),
        }
    }

    /// Stops a pipeline: its egress streams end, the engine shuts down (pushes in flight
    /// finish or fail), its storage stays. Stopping a stopped pipeline is a no-op.
    pub async fn stop(&self, pipeline: &Arc<Pipeline>) -> Result<(), Refusal> {
        let engine = {
            let mut state = pipeline.state.lock().expect("pipeline lock");
            if state.deployment == Deployment::Stopped {
                return Ok(());
            }
            state.saved.desired = Deployment::Stopped;
            let _ = pipeline.save(&state);
            if state.deployment == Deployment::Provisioning {
                None
            } else {
                state.deployment = Deployment::Stopping;
                state.closing.send_replace(true);
                state.engine.take()
            }
        };
        let pipeline = pipeline.clone();
        tokio::spawn(async move {
            // After a start in flight has finished opening.
            let _lifecycle = pipeline.lifecycle.lock().await;
            let engine = match engine {
                Some(e) => Some(e),
                None => {
                    let mut state = pipeline.state.lock().expect("pipeline lock");
                    state.closing.send_replace(true);
                    state.engine.take()
                }
            };
            if let Some(engine) = engine {
                engine.resume();
                engine.shutdown().await;
                drop(engine);
            }
            let mut state = pipeline.state.lock().expect("pipeline lock");
            state.deployment = Deployment::Stopped;
        });
        Ok(())
    }

    /// Shuts every running pipeline's engine down (siphon is stopping); their desired
    /// state is kept, so they run again at the next start.
    pub async fn shutdown_all(&self) {
        for pipeline in self.list() {
            let engine = {
                let mut state = pipeline.state.lock().expect("pipeline lock");
                state.closing.send_replace(true);
                state.engine.take()
            };
            if let Some(engine) = engine {
                engine.shutdown().await;
            }
        }
    }

    /// Deletes a stopped pipeline's storage: its next start begins with empty tables.
    pub async fn clear(&self, pipeline: &Pipeline) -> Result<(), Refusal> {
        let _lifecycle = pipeline.lifecycle.lock().await;
        let mut state = pipeline.state.lock().expect("pipeline lock");
        if state.deployment != Deployment::Stopped {
            return Err(Refusal::new(
                400,
                "IllegalPipelineAction",
                format!(
                    "pipeline '{}' is {}: stop it before clearing its storage",
                    state.saved.meta.name,
                    state.deployment.name()
                ),
            ));
        }
        std::fs::remove_dir_all(pipeline.dir.join("store"))
            .or_else(ignore_missing)
            .map_err(storage_error)?;
        state.saved.storage_in_use = false;
        state.step = 0;
        state.steps.clear();
        pipeline.save(&state).map_err(storage_error)
    }
}

fn ignore_missing(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

fn storage_error(e: std::io::Error) -> Refusal {
    Refusal::new(
        500,
        "StorageError",
        format!("the pipeline's storage failed: {e}"),
    )
}

/// A random UUID (v4) from the OS's randomness, via the standard library's hasher seeds.
fn uuid() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut bytes = [0u8; 16];
    for chunk in bytes.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(Utc::now().timestamp_nanos_opt().unwrap_or(0) as u128);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A program's compile errors in Feldera's shape (`program_error`), as a 400.
pub fn program_errors(program: &str, errors: &[LoadError]) -> Refusal {
    let lines: Vec<&str> = program.lines().collect();
    let messages: Vec<Value> = errors
        .iter()
        .map(|e| {
            let line = e.line as usize;
            let snippet = if line >= 1 && line <= lines.len() {
                format!(
                    "{:>4}|{}\n    |{}^",
                    line,
                    lines[line - 1],
                    " ".repeat((e.column as usize).saturating_sub(1))
                )
            } else {
                String::new()
            };
            let mut message = String::new();
            if let Some(s) = &e.statement {
                message.push_str(s);
                message.push_str(": ");
            }
            if let Some(o) = &e.option {
                message.push_str(&format!("option `{o}`: "));
            }
            message.push_str(&e.message);
            json!({
                "start_line_number": e.line,
                "start_column": e.column,
                "end_line_number": e.line,
                "end_column": e.column,
                "warning": false,
                "error_type": "Error in SQL statement",
                "message": message,
                "snippet": snippet,
            })
        })
        .collect();
    let summary = errors
        .iter()
        .map(|e| format!("line {}, column {}: {}", e.line, e.column, e.message))
        .collect::<Vec<_>>()
        .join("; ");
    Refusal {
        status: 400,
        code: "SqlCompilationError",
        message: format!("the SQL program does not compile: {summary}"),
        details: json!({
            "sql_compilation": {"exit_code": 1, "messages": messages},
            "rust_compilation": null,
            "system_error": null,
        }),
    }
}

impl Pipeline {
    fn new(dir: PathBuf, saved: Saved) -> Self {
        let compiled = compile(&saved.meta.program_code);
        Pipeline {
            dir,
            state: Mutex::new(State {
                saved,
                compiled,
                deployment: Deployment::Stopped,
                deployment_error: None,
                engine: None,
                closing: tokio::sync::watch::Sender::new(false),
                step: 0,
                steps: VecDeque::new(),
            }),
            lifecycle: tokio::sync::Mutex::new(()),
        }
    }

    fn save(&self, state: &State) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let text = serde_json::to_string_pretty(&state.saved).expect("pipelines serialize");
        let path = self.dir.join("pipeline.json");
        let tmp = self.dir.join("pipeline.json.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        if let Ok(dir) = std::fs::File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// The pipeline's name.
    pub fn name(&self) -> String {
        self.state
            .lock()
            .expect("pipeline lock")
            .saved
            .meta
            .name
            .clone()
    }

    /// The running engine, or a 400 saying the pipeline is not running or paused.
    pub fn engine(&self) -> Result<(Arc<Engine>, tokio::sync::watch::Receiver<bool>), Refusal> {
        let state = self.state.lock().expect("pipeline lock");
        match (&state.engine, state.deployment) {
            (Some(engine), Deployment::Running | Deployment::Paused) => {
                Ok((engine.clone(), state.closing.subscribe()))
            }
            (_, d) => Err(Refusal::new(
                400,
                "PipelineNotRunningOrPaused",
                format!(
                    "pipeline '{}' is {}: start it first",
                    state.saved.meta.name,
                    d.name()
                ),
            )),
        }
    }

    /// The deployment status, as the status endpoint shows it.
    pub fn deployment(&self) -> Deployment {
        self.state.lock().expect("pipeline lock").deployment
    }

    /// Records a completed step (a push): its number, and every relation's last sequence.
    pub fn complete_step(&self, engine: &Engine) -> u64 {
        // Read under the lock: steps then record non-decreasing sequence numbers per
        // relation (they only grow), which `processed_steps` searches by.
        let mut state = self.state.lock().expect("pipeline lock");
        let sequences: BTreeMap<String, u64> = engine
            .table_names()
            .into_iter()
            .filter_map(|name| {
                let last = *engine.table(&name)?.watch_sequence().borrow();
                Some((name, last))
            })
            .collect();
        state.step += 1;
        let step = state.step;
        state.steps.push_back((step, sequences));
        while state.steps.len() > STEPS_KEPT {
            state.steps.pop_front();
        }
        step
    }

    /// The last step.
    pub fn step(&self) -> u64 {
        self.state.lock().expect("pipeline lock").step
    }

    /// The last step whose changes to `relation` are all at or below `sequence`.
    pub fn processed_steps(&self, relation: &str, sequence: u64) -> u64 {
        let state = self.state.lock().expect("pipeline lock");
        let before_kept = state
            .steps
            .front()
            .map_or(state.step, |(s, _)| s.saturating_sub(1));
        // Sequences per relation do not decrease with the step: the steps at or below
        // `sequence` are a prefix.
        let done = state.steps.partition_point(|(_, sequences)| {
            sequences.get(relation).copied().unwrap_or(0) <= sequence
        });
        match done {
            0 => before_kept,
            n => state.steps[n - 1].0,
        }
    }

    /// The pipeline object: status fields, and with `all` the program fields.
    pub fn object(&self, all: bool) -> Value {
        let state = self.state.lock().expect("pipeline lock");
        let meta = &state.saved.meta;
        let (program_status, program_error, program_info) = match &state.compiled {
            Ok(compiled) => (
                "Success",
                json!({"sql_compilation": {"exit_code": 0, "messages": []}, "rust_compilation": null, "system_error": null}),
                crate::feldera::schema::program_info(&compiled.catalog),
            ),
            Err(errors) => (
                "SqlError",
                program_errors(&meta.program_code, errors).details,
                Value::Null,
            ),
        };
        let desired = match state.saved.desired {
            Deployment::Running => "Running",
            Deployment::Paused => "Paused",
            _ => "Stopped",
        };
        let since = meta.created_at.to_rfc3339();
        let mut object = json!({
            "id": meta.id,
            "name": meta.name,
            "description": meta.description,
            "created_at": since,
            "version": meta.version,
            "platform_version": "0.369.0",
            "program_version": meta.program_version,
            "program_status": program_status,
            "program_status_since": since,
            "program_error": program_error,
            "deployment_status": state.deployment.name(),
            "deployment_status_since": since,
            "deployment_desired_status": desired,
            "deployment_desired_status_since": since,
            "deployment_error": state.deployment_error.as_ref().map(|m| json!({"message": m, "error_code": "StartFailed", "details": {}})),
            "deployment_location": null,
            "deployment_id": null,
            "deployment_initial": null,
            "deployment_resources_status": null,
            "deployment_resources_desired_status": null,
            "deployment_runtime_status": null,
            "deployment_runtime_desired_status": null,
            "deployment_runtime_status_details": null,
            "deployment_runtime_status_since": null,
            "deployment_resources_status_since": null,
            "deployment_resources_desired_status_since": null,
            "deployment_runtime_desired_status_since": null,
            "bootstrap_policy": null,
            "storage_status": if state.saved.storage_in_use { "InUse" } else { "Cleared" },
            "storage_status_details": null,
            "refresh_version": meta.version,
            "tags": meta.tags,
        });
        if all {
            let o = object.as_object_mut().expect("an object");
            o.insert("program_code".into(), json!(meta.program_code));
            o.insert("udf_rust".into(), json!(meta.udf_rust));
            o.insert("udf_toml".into(), json!(meta.udf_toml));
            o.insert("program_config".into(), meta.program_config.clone());
            o.insert("runtime_config".into(), meta.runtime_config.clone());
            o.insert("program_info".into(), program_info);
        }
        object
    }

    /// Dismisses the last deployment error.
    pub fn dismiss_error(&self) {
        self.state.lock().expect("pipeline lock").deployment_error = None;
    }
}

/// Where the pipelines of a data directory live.
pub fn root_of(data_dir: &Path) -> PathBuf {
    data_dir.join("pipelines")
}
