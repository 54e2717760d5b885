//! Loading pipeline files: parse, check, bind, and work out what changes in the catalog.
//!
//! Loading is all-or-nothing: every statement of every file is checked (names, types,
//! options, environment variables, the binding of each source's options) before anything
//! is applied, and every problem is reported at once with its file, line, statement and
//! option. `siphon check` runs exactly this code against an empty catalog; `siphon run`
//! runs it against the persisted catalog and then applies the result in one transaction.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use siphon_connect::config::{OPTION_NAMES, PollingConfig, bind_with_env};
use siphon_connect::decode::Format;
use siphon_connect::schema::{Column, ColumnType};
use siphon_connect::source::check_source;
use siphon_connect::template::RequestVar;
use siphon_ddl::{ObjectKind, OptionValue, Pos, Statement, StatementKind};

use crate::catalog::{
    Catalog, ConnectionDef, ConnectorKind, SinkConnector, SinkDef, TableDef, ViewDef,
};
use crate::sink::config::NatsSinkConfig;
use crate::tables::MAX_BUFFERED_RECORDS;
use crate::view::plan::{Planner, ViewPlan};

/// Options only a table may carry.
const TABLE_ONLY_OPTIONS: &[&str] = &["connector", "connection", MAX_BUFFERED_RECORDS];

/// A pipeline file's name and text.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// The path as the user gave it (used in messages).
    pub path: String,
    /// The file's text.
    pub text: String,
}

/// One problem found while loading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    /// File (or `catalog` for definitions that come from the data directory).
    pub file: String,
    /// Line, 1-based (0 when unknown).
    pub line: u32,
    /// Column, 1-based (0 when unknown).
    pub column: u32,
    /// The statement, e.g. `statement 2 (CREATE TABLE api_data)`.
    pub statement: Option<String>,
    /// The option at fault, if any.
    pub option: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        write!(f, ": ")?;
        if let Some(s) = &self.statement {
            write!(f, "{s}: ")?;
        }
        if let Some(o) = &self.option {
            write!(f, "option `{o}`: ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// The outcome of a successful load.
#[derive(Debug)]
pub struct Loaded {
    /// The catalog after the files are applied.
    pub catalog: Catalog,
    /// The store writes that turn the old catalog into the new one, in order.
    pub store_changes: Vec<(String, Option<String>)>,
    /// The bound configuration of every polling table in the new catalog.
    pub sources: BTreeMap<String, Arc<PollingConfig>>,
    /// Every view of the new catalog with its compiled query, inputs before readers.
    pub views: Vec<(ViewDef, Arc<ViewPlan>)>,
    /// The bound options of every sink in the new catalog.
    pub sinks: BTreeMap<String, Arc<NatsSinkConfig>>,
    /// Things worth telling the user that are not errors.
    pub notes: Vec<String>,
}

/// Where a definition came from, for messages.
#[derive(Clone, Debug)]
struct Origin {
    file: String,
    pos: Pos,
    label: String,
    /// Positions of the option keys in the statement.
    options: HashMap<String, Pos>,
}

impl Origin {
    fn catalog(kind: &str, name: &str) -> Self {
        Origin {
            file: "catalog".into(),
            pos: Pos { line: 0, column: 0 },
            label: format!("stored {kind} {name}"),
            options: HashMap::new(),
        }
    }

    fn error(&self, option: Option<&str>, message: impl Into<String>) -> LoadError {
        let pos = option
            .and_then(|o| self.options.get(o))
            .copied()
            .unwrap_or(self.pos);
        LoadError {
            file: self.file.clone(),
            line: pos.line,
            column: pos.column,
            statement: Some(self.label.clone()),
            option: option.map(str::to_string),
            message: message.into(),
        }
    }
}

/// Loads `files` on top of `base`, resolving `${NAME}` with `env`.
pub fn load(
    files: &[SourceFile],
    base: &Catalog,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, Vec<LoadError>> {
    let mut cx = LoadContext {
        catalog: base.clone(),
        changes: Vec::new(),
        errors: Vec::new(),
        notes: Vec::new(),
        connection_origins: HashMap::new(),
        table_origins: HashMap::new(),
        view_origins: HashMap::new(),
        sink_origins: HashMap::new(),
        reset_tables: std::collections::BTreeSet::new(),
        base: base.clone(),
    };
    for file in files {
        let parsed = if crate::fluvio::is_connector_file(&file.path) {
            crate::fluvio::statements(&file.text).map_err(|errors| {
                let at = |e: crate::fluvio::FluvioError| (e.line, e.column, e.option, e.message);
                errors.into_iter().map(at).collect()
            })
        } else {
            siphon_ddl::parse_script(&file.text)
                .map_err(|e| vec![(e.pos.line, e.pos.column, None, e.message)])
        };
        let statements = match parsed {
            Ok(s) => s,
            Err(errors) => {
                for (line, column, option, message) in errors {
                    cx.errors.push(LoadError {
                        file: file.path.clone(),
                        line,
                        column,
                        statement: None,
                        option,
                        message,
                    });
                }
                continue;
            }
        };
        for (index, statement) in statements.iter().enumerate() {
            cx.statement(&file.path, index + 1, statement);
        }
    }
    let sources = cx.bind_all(env);
    let views = cx.plan_views();
    let sinks = cx.bind_sinks(env);
    if !cx.errors.is_empty() {
        return Err(cx.errors);
    }
    Ok(Loaded {
        catalog: cx.catalog,
        store_changes: cx.changes,
        sources,
        views,
        sinks,
        notes: cx.notes,
    })
}

struct LoadContext {
    catalog: Catalog,
    changes: Vec<(String, Option<String>)>,
    errors: Vec<LoadError>,
    notes: Vec<String>,
    connection_origins: HashMap<String, Origin>,
    table_origins: HashMap<String, Origin>,
    /// Views declared in the files, with where their query starts.
    view_origins: HashMap<String, Origin>,
    /// Sinks declared in the files, with their option positions.
    sink_origins: HashMap<String, Origin>,
    /// Tables whose stored rows this load drops (replaced or dropped): the views over
    /// them start afresh too.
    reset_tables: std::collections::BTreeSet<String>,
    /// The catalog before the files.
    base: Catalog,
}

fn describe(statement: &Statement) -> String {
    match &statement.kind {
        StatementKind::CreateConnection { name, .. } => format!("CREATE CONNECTION {}", name.value),
        StatementKind::CreateTable { name, .. } => format!("CREATE TABLE {}", name.value),
        StatementKind::CreateView { name, .. } => format!("CREATE VIEW {}", name.value),
        StatementKind::CreateSink { name, .. } => format!("CREATE SINK {}", name.value),
        StatementKind::Drop { object, names, .. } => {
            let names: Vec<&str> = names.iter().map(|n| n.value.as_str()).collect();
            format!("DROP {} {}", object.keyword(), names.join(", "))
        }
        StatementKind::Query { .. } => "SELECT".into(),
    }
}

fn option_text(value: &OptionValue) -> String {
    value.as_text()
}

impl LoadContext {
    fn statement(&mut self, file: &str, index: usize, statement: &Statement) {
        let origin = Origin {
            file: file.to_string(),
            pos: statement.pos,
            label: format!("statement {index} ({})", describe(statement)),
            options: HashMap::new(),
        };
        match &statement.kind {
            StatementKind::CreateConnection {
                name,
                connector,
                options,
                or_replace,
                if_not_exists,
            } => {
                let mut origin = origin;
                origin.options = options.iter().map(|o| (o.key.clone(), o.key_pos)).collect();
                let Some(kind) = ConnectorKind::parse(&connector.value) else {
                    let mut e = origin.error(
                        None,
                        unknown_message("connector", &connector.value, ConnectorKind::NAMES),
                    );
                    (e.line, e.column) = (connector.pos.line, connector.pos.column);
                    self.errors.push(e);
                    return;
                };
                if kind != ConnectorKind::PollingHttp {
                    self.errors.push(origin.error(
                        None,
                        format!(
                            "a connection configures a polling_http_source, not {}",
                            kind.name()
                        ),
                    ));
                    return;
                }
                let mut map = BTreeMap::new();
                for option in options {
                    if TABLE_ONLY_OPTIONS.contains(&option.key.as_str()) {
                        self.errors.push(origin.error(
                            Some(&option.key),
                            "belongs on a CREATE TABLE, not on a connection",
                        ));
                    } else if !OPTION_NAMES.contains(&option.key.as_str()) {
                        self.errors.push(origin.error(
                            Some(&option.key),
                            unknown_message("option", &option.key, OPTION_NAMES),
                        ));
                    }
                    map.insert(option.key.clone(), option_text(&option.value));
                }
                let def = ConnectionDef {
                    name: name.value.clone(),
                    connector: kind,
                    options: map,
                };
                if let Some(first) = self.connection_origins.get(&def.name) {
                    if !*or_replace && !*if_not_exists {
                        self.errors.push(origin.error(
                            None,
                            format!(
                                "connection {} is already declared at {}:{}",
                                def.name, first.file, first.pos.line
                            ),
                        ));
                        return;
                    }
                    if *if_not_exists {
                        return;
                    }
                }
                if *if_not_exists
                    && self.catalog.connections.contains_key(&def.name)
                    && !self.connection_origins.contains_key(&def.name)
                {
                    return;
                }
                self.connection_origins.insert(def.name.clone(), origin);
                self.put_connection(def);
            }
            StatementKind::CreateTable {
                name,
                columns,
                primary_key,
                options,
                or_replace,
                if_not_exists,
            } => {
                let mut origin = origin;
                origin.options = options.iter().map(|o| (o.key.clone(), o.key_pos)).collect();
                let Some(def) = self.table_def(&origin, &name.value, columns, primary_key, options)
                else {
                    return;
                };
                self.create_table(origin, def, *or_replace, *if_not_exists);
            }
            StatementKind::CreateView {
                name,
                query,
                query_pos,
                or_replace,
                if_not_exists,
            } => {
                let mut origin = origin;
                origin.pos = *query_pos;
                self.create_view(origin, &name.value, query, *or_replace, *if_not_exists);
            }
            StatementKind::CreateSink {
                name,
                from,
                options,
                or_replace,
                if_not_exists,
            } => {
                let mut origin = origin;
                origin.options = options.iter().map(|o| (o.key.clone(), o.key_pos)).collect();
                self.create_sink(
                    origin,
                    &name.value,
                    &from.value,
                    options,
                    *or_replace,
                    *if_not_exists,
                );
            }
            StatementKind::Drop {
                object,
                names,
                if_exists,
            } => {
                for name in names {
                    self.drop(&origin, *object, &name.value, *if_exists);
                }
            }
            StatementKind::Query { .. } => {
                self.notes.push(format!(
                    "{}:{}: {} is not run at load time; run ad-hoc queries with `siphon sql`",
                    origin.file, origin.pos.line, origin.label
                ));
            }
        }
    }

    fn table_def(
        &mut self,
        origin: &Origin,
        name: &str,
        columns: &[siphon_ddl::ColumnDef],
        primary_key: &[siphon_ddl::Ident],
        options: &[siphon_ddl::SqlOption],
    ) -> Option<TableDef> {
        let errors_before = self.errors.len();
        let mut cols: Vec<Column> = Vec::new();
        for c in columns {
            if cols.iter().any(|existing| existing.name == c.name.value) {
                let mut e =
                    origin.error(None, format!("column {} is declared twice", c.name.value));
                (e.line, e.column) = (c.name.pos.line, c.name.pos.column);
                self.errors.push(e);
                continue;
            }
            match ColumnType::from_sql(&c.type_name.name, &c.type_name.params) {
                Ok(ty) => cols.push(Column {
                    name: c.name.value.clone(),
                    ty,
                    nullable: !c.not_null,
                }),
                Err(message) => {
                    let mut e = origin.error(None, format!("column {}: {message}", c.name.value));
                    (e.line, e.column) = (c.type_name.pos.line, c.type_name.pos.column);
                    self.errors.push(e);
                }
            }
        }
        if cols.is_empty() && self.errors.len() == errors_before {
            self.errors
                .push(origin.error(None, "a table needs at least one column"));
        }
        let primary_key: Vec<String> = primary_key.iter().map(|i| i.value.clone()).collect();

        let mut map = BTreeMap::new();
        // Options of the table's push input, which every table has.
        let mut push_options = BTreeMap::new();
        let mut connector = None;
        let mut connection = None;
        for option in options {
            let value = option_text(&option.value);
            match option.key.as_str() {
                "connector" => match ConnectorKind::parse(&value) {
                    Some(kind) => connector = Some(kind),
                    None => self.errors.push(origin.error(
                        Some("connector"),
                        unknown_message("connector", &value, ConnectorKind::NAMES),
                    )),
                },
                "connection" => {
                    if !self.catalog.connections.contains_key(&value) {
                        let known: Vec<&str> = self
                            .catalog
                            .connections
                            .keys()
                            .map(String::as_str)
                            .collect();
                        self.errors.push(origin.error(
                            Some("connection"),
                            unknown_message("connection", &value, &known),
                        ));
                    }
                    connection = Some(value);
                }
                MAX_BUFFERED_RECORDS => match value.parse::<u32>() {
                    Ok(n) if n > 0 => {
                        push_options.insert(option.key.clone(), value);
                    }
                    _ => self.errors.push(origin.error(
                        Some(MAX_BUFFERED_RECORDS),
                        format!(
                            "`{value}` is not a positive whole number of records (at most {})",
                            u32::MAX
                        ),
                    )),
                },
                key if OPTION_NAMES.contains(&key) => {
                    map.insert(option.key.clone(), value);
                }
                key => {
                    let mut names: Vec<&str> = OPTION_NAMES.to_vec();
                    names.extend(TABLE_ONLY_OPTIONS);
                    self.errors
                        .push(origin.error(Some(key), unknown_message("option", key, &names)));
                }
            }
        }
        let connector = match (connector, &connection, map.is_empty()) {
            (Some(kind), _, _) => kind,
            (None, Some(_), _) => ConnectorKind::PollingHttp,
            (None, None, true) => ConnectorKind::HttpInput,
            (None, None, false) => {
                self.errors.push(origin.error(None, "source options are given but no connector: add connector = 'polling_http_source'"));
                ConnectorKind::HttpInput
            }
        };
        if connector == ConnectorKind::HttpInput && (!map.is_empty() || connection.is_some()) {
            self.errors
                .push(origin.error(None, "an http_input (push) table takes no source options"));
        }
        if self.errors.len() > errors_before {
            return None;
        }
        map.extend(push_options);
        Some(TableDef {
            name: name.to_string(),
            columns: cols,
            primary_key,
            connector,
            connection,
            options: map,
        })
    }

    fn create_table(
        &mut self,
        origin: Origin,
        def: TableDef,
        or_replace: bool,
        if_not_exists: bool,
    ) {
        if let Some(first) = self.table_origins.get(&def.name)
            && !or_replace
            && !if_not_exists
        {
            self.errors.push(origin.error(
                None,
                format!(
                    "table {} is already declared at {}:{}",
                    def.name, first.file, first.pos.line
                ),
            ));
            return;
        }
        if self.catalog.views.contains_key(&def.name) {
            self.errors.push(origin.error(
                None,
                format!(
                    "{} is a view; a table cannot have its name (DROP VIEW {} first)",
                    def.name, def.name
                ),
            ));
            return;
        }
        let existing = self.catalog.tables.get(&def.name).cloned();
        let key = Catalog::table_key(&def.name);
        match existing {
            Some(_) if if_not_exists => return,
            // Files are applied at every start: an identical definition is not a change,
            // and replacing it would wipe the table at every run.
            Some(old) if or_replace && old == def => {}
            Some(old) if or_replace => {
                self.changes.push((key.clone(), None));
                self.reset_tables.insert(def.name.clone());
                if !self.table_origins.contains_key(&def.name) {
                    self.notes.push(format!(
                        "{}:{}: table {} differs from its stored definition ({}) and is replaced \
                         (CREATE OR REPLACE): its stored rows, source state and dead letters \
                         are dropped. Later runs with this same definition keep the data.",
                        origin.file,
                        origin.pos.line,
                        def.name,
                        describe_difference(&old, &def),
                    ));
                }
            }
            Some(old) if !old.same_shape(&def) => {
                if self.table_origins.contains_key(&def.name) {
                    // Declared earlier in these files with another shape: the replace above
                    // handles OR REPLACE; anything else was reported as a duplicate.
                } else {
                    self.errors.push(origin.error(
                        None,
                        format!(
                            "table {name} already exists in the data directory with columns ({old_cols}){old_pk}, but this statement declares ({new_cols}){new_pk}. \
                             Its stored rows have the old shape. To keep them, restore the old definition; \
                             to start the table afresh and drop its rows, write CREATE OR REPLACE TABLE {name} (once), or run with another --data-dir",
                            name = def.name,
                            old_cols = old.describe_columns(),
                            new_cols = def.describe_columns(),
                            old_pk = pk_text(&old.primary_key),
                            new_pk = pk_text(&def.primary_key),
                        ),
                    ));
                    return;
                }
            }
            _ => {}
        }
        self.table_origins.insert(def.name.clone(), origin);
        self.changes.push((
            key,
            Some(serde_json::to_string(&def).expect("definitions serialize")),
        ));
        self.catalog.tables.insert(def.name.clone(), def);
    }

    fn create_view(
        &mut self,
        origin: Origin,
        name: &str,
        query: &str,
        or_replace: bool,
        if_not_exists: bool,
    ) {
        if self.catalog.tables.contains_key(name) {
            self.errors.push(origin.error(
                None,
                format!("{name} is a table; a view cannot have its name"),
            ));
            return;
        }
        if let Some(first) = self.view_origins.get(name)
            && !or_replace
            && !if_not_exists
        {
            self.errors.push(origin.error(
                None,
                format!(
                    "view {name} is already declared at {}:{}",
                    first.file, first.pos.line
                ),
            ));
            return;
        }
        match self.catalog.views.get(name) {
            Some(_) if if_not_exists => return,
            Some(old) if old.query == query => {}
            Some(old) if !or_replace && !self.view_origins.contains_key(name) => {
                self.errors.push(origin.error(
                    None,
                    format!(
                        "view {name} already exists in the data directory as `{}`; to change its \
                         query write CREATE OR REPLACE VIEW {name} (its rows are computed again and \
                         the difference streams out as changes), or DROP VIEW {name} first",
                        old.query
                    ),
                ));
                return;
            }
            _ => {}
        }
        self.view_origins.insert(name.to_string(), origin);
        // Columns are filled in when the query is planned, after every statement.
        let columns = self
            .catalog
            .views
            .get(name)
            .map(|v| v.columns.clone())
            .unwrap_or_default();
        self.catalog.views.insert(
            name.to_string(),
            ViewDef {
                name: name.to_string(),
                query: query.to_string(),
                columns,
            },
        );
    }

    /// Plans every view of the final catalog, inputs first, against the final tables; a
    /// view whose input's rows are dropped, or whose columns change, starts afresh.
    fn plan_views(&mut self) -> Vec<(ViewDef, Arc<ViewPlan>)> {
        let mut planner = Planner::new(
            self.catalog
                .tables
                .values()
                .map(|t| (t.name.as_str(), t.schema().arrow_schema())),
        );
        // In the order they were written (stored views not in these files first), so
        // errors come out in file order.
        let mut pending: Vec<String> = self.catalog.views.keys().cloned().collect();
        pending.sort_by_key(|name| {
            self.view_origins
                .get(name)
                .map(|o| (1, o.file.clone(), o.pos.line, o.pos.column))
                .unwrap_or((0, String::new(), 0, 0))
        });
        let mut planned: Vec<(ViewDef, Arc<ViewPlan>)> = Vec::new();
        let mut reset: std::collections::BTreeSet<String> = self.reset_tables.clone();
        // Views may read views: plan those whose inputs are known, until none is left.
        loop {
            let mut progress = false;
            let mut still = Vec::new();
            for name in std::mem::take(&mut pending) {
                let def = self.catalog.views[&name].clone();
                let reads_pending = |message: &str| {
                    self.catalog.views.keys().any(|v| {
                        v != &name
                            && !planned.iter().any(|(p, _)| &p.name == v)
                            && (message.contains(&format!("'{v}'"))
                                || message.contains(&format!(".{v}'")))
                    })
                };
                match planner.plan(&def.query) {
                    Ok(plan) => {
                        progress = true;
                        planner.add(&name, plan.schema.clone());
                        if let Some(def) = self.settle_view(def, &plan, &mut reset) {
                            planned.push((def, Arc::new(plan)));
                        }
                    }
                    Err(e) if reads_pending(&e.0) => still.push(name),
                    Err(e) => {
                        progress = true;
                        self.view_error(&name, &e.0);
                    }
                }
            }
            pending = still;
            if pending.is_empty() || !progress {
                break;
            }
        }
        for name in pending {
            self.view_error(&name, "it reads a view that reads it back (a cycle)");
        }
        planned
    }

    /// Records a planned view in the catalog changes; `None` when it is refused.
    fn settle_view(
        &mut self,
        mut def: ViewDef,
        plan: &ViewPlan,
        reset: &mut std::collections::BTreeSet<String>,
    ) -> Option<ViewDef> {
        let key = Catalog::view_key(&def.name);
        let stored = self.base.views.get(&def.name).cloned();
        let declared = self.view_origins.contains_key(&def.name);
        let columns_change = stored.as_ref().is_some_and(|s| s.columns != plan.columns);
        if columns_change && !declared {
            let stored = stored.expect("checked");
            self.view_error(
                &def.name,
                &format!(
                    "its columns would change from ({}) to ({}) because {} changed; declare it \
                     again (CREATE OR REPLACE VIEW {} AS ...) in the same files, or DROP VIEW {} first",
                    stored.table_def().describe_columns(),
                    ViewDef { columns: plan.columns.clone(), ..def.clone() }.table_def().describe_columns(),
                    plan.input,
                    def.name,
                    def.name
                ),
            );
            return None;
        }
        def.columns = plan.columns.clone();
        let starts_afresh = reset.contains(&plan.input) || columns_change;
        if starts_afresh && stored.is_some() {
            reset.insert(def.name.clone());
            self.changes.push((key.clone(), None));
        }
        if starts_afresh || stored.as_ref() != Some(&def) {
            self.changes.push((
                key,
                Some(serde_json::to_string(&def).expect("definitions serialize")),
            ));
        }
        self.catalog.views.insert(def.name.clone(), def.clone());
        Some(def)
    }

    fn view_error(&mut self, name: &str, message: &str) {
        match self.view_origins.get(name) {
            Some(origin) => self.errors.push(origin.error(None, message.to_string())),
            None => {
                let origin = Origin::catalog("view", name);
                self.errors.push(origin.error(
                    None,
                    format!(
                        "{message}. DROP VIEW {name} in these files, or declare it again with \
                         CREATE OR REPLACE VIEW {name} AS ..."
                    ),
                ));
            }
        }
    }

    fn create_sink(
        &mut self,
        origin: Origin,
        name: &str,
        from: &str,
        options: &[siphon_ddl::SqlOption],
        or_replace: bool,
        if_not_exists: bool,
    ) {
        // Like a table's options, a sink's are applied as the files say at every start;
        // OR REPLACE only allows a second declaration in the same files.
        let mut written = BTreeMap::new();
        let mut connector = None;
        for option in options {
            if option.key == "connector" {
                let value = option_text(&option.value);
                match SinkConnector::parse(&value) {
                    Some(kind) => connector = Some(kind),
                    None => self.errors.push(origin.error(
                        Some("connector"),
                        unknown_message("sink connector", &value, SinkConnector::NAMES),
                    )),
                }
            } else {
                written.insert(option.key.clone(), option_text(&option.value));
            }
        }
        if !options.iter().any(|o| o.key == "connector") {
            self.errors.push(origin.error(
                None,
                "a sink needs `connector` (connector = 'nats_jetstream')",
            ));
        }
        let Some(connector) = connector else {
            return;
        };
        if let Some(first) = self.sink_origins.get(name)
            && !or_replace
            && !if_not_exists
        {
            self.errors.push(origin.error(
                None,
                format!(
                    "sink {name} is already declared at {}:{}",
                    first.file, first.pos.line
                ),
            ));
            return;
        }
        let def = SinkDef {
            name: name.to_string(),
            from: from.to_string(),
            connector,
            options: written,
        };
        match self.catalog.sinks.get(name) {
            Some(_) if if_not_exists => return,
            Some(old) if *old == def => {}
            Some(old) if !self.sink_origins.contains_key(name) => {
                let keeps = old.from == def.from
                    && old.options.get("stream") == def.options.get("stream")
                    && old.options.get("subject") == def.options.get("subject");
                self.notes.push(format!(
                    "{}:{}: sink {name} changed since it was stored; {}",
                    origin.file,
                    origin.pos.line,
                    if keeps {
                        "it keeps its published position (same input, stream and subject)"
                    } else {
                        "its input, stream or subject changed, so it starts afresh \
                         (start_from decides where)"
                    }
                ));
                self.changes.push((
                    Catalog::sink_key(name),
                    Some(serde_json::to_string(&def).expect("definitions serialize")),
                ));
            }
            _ => self.changes.push((
                Catalog::sink_key(name),
                Some(serde_json::to_string(&def).expect("definitions serialize")),
            )),
        }
        self.sink_origins.insert(name.to_string(), origin);
        self.catalog.sinks.insert(name.to_string(), def);
    }

    /// Checks every sink of the final catalog (its input exists, its name is its own,
    /// its options bind) and binds its options with the environment.
    fn bind_sinks(
        &mut self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> BTreeMap<String, Arc<NatsSinkConfig>> {
        let mut bound = BTreeMap::new();
        let sinks: Vec<SinkDef> = self.catalog.sinks.values().cloned().collect();
        for sink in sinks {
            let origin = self
                .sink_origins
                .get(&sink.name)
                .cloned()
                .unwrap_or_else(|| Origin::catalog("sink", &sink.name));
            let declared = self.sink_origins.contains_key(&sink.name);
            if self.catalog.tables.contains_key(&sink.name)
                || self.catalog.views.contains_key(&sink.name)
            {
                self.errors.push(origin.error(
                    None,
                    format!(
                        "{} is a table or view; a sink cannot have its name",
                        sink.name
                    ),
                ));
                continue;
            }
            if !self.catalog.tables.contains_key(&sink.from)
                && !self.catalog.views.contains_key(&sink.from)
            {
                let message = if declared {
                    let names: Vec<&str> = self
                        .catalog
                        .tables
                        .keys()
                        .chain(self.catalog.views.keys())
                        .map(String::as_str)
                        .collect();
                    unknown_message("table or view", &sink.from, &names)
                } else {
                    format!(
                        "{} is published by sink {}: DROP SINK {} as well, or keep {}",
                        sink.from, sink.name, sink.name, sink.from
                    )
                };
                self.errors.push(origin.error(None, message));
                continue;
            }
            let mut resolved = BTreeMap::new();
            let mut ok = true;
            for (key, value) in &sink.options {
                match siphon_ddl::env::substitute_env_with_values(value, env, &[]) {
                    Ok((v, _)) => {
                        resolved.insert(key.clone(), v);
                    }
                    Err(e) => {
                        self.errors.push(origin.error(Some(key), e.to_string()));
                        ok = false;
                    }
                }
            }
            if !ok {
                continue;
            }
            match NatsSinkConfig::bind(&resolved) {
                Ok(config) => {
                    bound.insert(sink.name.clone(), Arc::new(config));
                }
                Err(problems) => {
                    for (option, message) in problems {
                        self.errors.push(origin.error(option.as_deref(), message));
                    }
                }
            }
        }
        bound
    }

    fn put_connection(&mut self, def: ConnectionDef) {
        self.changes.push((
            Catalog::connection_key(&def.name),
            Some(serde_json::to_string(&def).expect("definitions serialize")),
        ));
        self.catalog.connections.insert(def.name.clone(), def);
    }

    fn drop(&mut self, origin: &Origin, object: ObjectKind, name: &str, if_exists: bool) {
        match object {
            ObjectKind::Table => {
                if self.catalog.tables.remove(name).is_some() {
                    self.table_origins.remove(name);
                    self.reset_tables.insert(name.to_string());
                    self.changes.push((Catalog::table_key(name), None));
                } else if !if_exists {
                    self.errors.push(origin.error(
                        None,
                        format!("table {name} does not exist (use DROP TABLE IF EXISTS)"),
                    ));
                }
            }
            ObjectKind::Connection => {
                if let Some(user) = self
                    .catalog
                    .tables
                    .values()
                    .find(|t| t.connection.as_deref() == Some(name))
                {
                    self.errors.push(origin.error(
                        None,
                        format!(
                            "connection {name} is used by table {}: drop the table first",
                            user.name
                        ),
                    ));
                } else if self.catalog.connections.remove(name).is_some() {
                    self.connection_origins.remove(name);
                    self.changes.push((Catalog::connection_key(name), None));
                } else if !if_exists {
                    self.errors.push(origin.error(
                        None,
                        format!("connection {name} does not exist (use DROP CONNECTION IF EXISTS)"),
                    ));
                }
            }
            ObjectKind::Sink => {
                if self.catalog.sinks.remove(name).is_some() {
                    self.sink_origins.remove(name);
                    self.changes.push((Catalog::sink_key(name), None));
                } else if !if_exists {
                    self.errors.push(origin.error(
                        None,
                        format!("sink {name} does not exist (use DROP SINK IF EXISTS)"),
                    ));
                }
            }
            ObjectKind::View => {
                if self.catalog.views.remove(name).is_some() {
                    self.view_origins.remove(name);
                    self.changes.push((Catalog::view_key(name), None));
                } else if !if_exists {
                    self.errors.push(origin.error(
                        None,
                        format!("view {name} does not exist (use DROP VIEW IF EXISTS)"),
                    ));
                }
            }
        }
    }

    /// Binds every polling table of the final catalog, and every connection declared in
    /// the files that no table uses (so its mistakes surface too).
    fn bind_all(
        &mut self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> BTreeMap<String, Arc<PollingConfig>> {
        let mut sources = BTreeMap::new();
        let tables: Vec<TableDef> = self.catalog.tables.values().cloned().collect();
        for table in &tables {
            if table.connector != ConnectorKind::PollingHttp {
                continue;
            }
            let table_origin = self
                .table_origins
                .get(&table.name)
                .cloned()
                .unwrap_or_else(|| Origin::catalog("table", &table.name));
            let connection = table
                .connection
                .as_ref()
                .and_then(|c| self.catalog.connections.get(c))
                .cloned();
            let conn_origin = connection.as_ref().map(|c| {
                self.connection_origins
                    .get(&c.name)
                    .cloned()
                    .unwrap_or_else(|| Origin::catalog("connection", &c.name))
            });
            // Which statement each merged option comes from.
            let mut merged: BTreeMap<String, (String, &Origin)> = BTreeMap::new();
            if let (Some(conn), Some(o)) = (&connection, &conn_origin) {
                for (k, v) in &conn.options {
                    merged.insert(k.clone(), (v.clone(), o));
                }
            }
            for (k, v) in &table.options {
                if k != MAX_BUFFERED_RECORDS {
                    merged.insert(k.clone(), (v.clone(), &table_origin));
                }
            }
            let Some((resolved, substituted)) = resolve_env(&merged, env, &mut self.errors) else {
                continue;
            };
            // Errors from binding are redacted there: they may quote option text.
            match bind_with_env(&resolved, &substituted) {
                Ok(config) => {
                    if let Err(e) = check_source(&config, Arc::new(table.schema())) {
                        let option = match (&config.format, e.option) {
                            (Format::Json { json_path: Some(_) }, "format") => "json_path",
                            (_, option) => option,
                        };
                        let origin = merged.get(option).map(|(_, o)| *o).unwrap_or(&table_origin);
                        let message = config.redactor.redact(&e.message);
                        self.errors.push(origin.error(Some(option), message));
                        continue;
                    }
                    sources.insert(table.name.clone(), Arc::new(config));
                }
                Err(errors) => {
                    for e in errors {
                        let origin = merged
                            .get(&e.option)
                            .map(|(_, o)| *o)
                            .unwrap_or(&table_origin);
                        self.errors.push(origin.error(Some(&e.option), e.message));
                    }
                }
            }
        }
        // Connections declared in these files that no table uses: bind them alone, with a
        // stand-in endpoint when the tables are expected to supply it.
        let unused: Vec<ConnectionDef> = self
            .catalog
            .connections
            .values()
            .filter(|c| self.connection_origins.contains_key(&c.name))
            .filter(|c| {
                !tables
                    .iter()
                    .any(|t| t.connection.as_deref() == Some(c.name.as_str()))
            })
            .cloned()
            .collect();
        for conn in unused {
            let origin = self.connection_origins[&conn.name].clone();
            let merged: BTreeMap<String, (String, &Origin)> = conn
                .options
                .iter()
                .map(|(k, v)| (k.clone(), (v.clone(), &origin)))
                .collect();
            let Some((mut resolved, substituted)) = resolve_env(&merged, env, &mut self.errors)
            else {
                continue;
            };
            resolved
                .entry("endpoint".into())
                .or_insert_with(|| "http://placeholder.invalid/".into());
            if let Err(errors) = bind_with_env(&resolved, &substituted) {
                for e in errors {
                    self.errors.push(origin.error(Some(&e.option), e.message));
                }
            }
        }
        sources
    }
}

/// The merged options with `${NAME}` resolved, and every value substituted from the
/// environment (secrets, for the source's redactor).
fn resolve_env(
    merged: &BTreeMap<String, (String, &Origin)>,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<LoadError>,
) -> Option<(BTreeMap<String, String>, Vec<String>)> {
    let mut resolved = BTreeMap::new();
    let mut substituted = Vec::new();
    let mut ok = true;
    for (key, (value, origin)) in merged {
        match siphon_ddl::env::substitute_env_with_values(value, env, RequestVar::NAMES) {
            Ok((v, values)) => {
                resolved.insert(key.clone(), v);
                substituted.extend(values);
            }
            Err(e) => {
                errors.push(origin.error(Some(key), e.to_string()));
                ok = false;
            }
        }
    }
    ok.then_some((resolved, substituted))
}

/// What differs between two definitions of a table, for the replace note. Option values
/// are not quoted (they may hold secrets), only their names.
fn describe_difference(old: &TableDef, new: &TableDef) -> String {
    let mut parts = Vec::new();
    if old.columns != new.columns || old.primary_key != new.primary_key {
        parts.push(format!(
            "columns ({}){} were ({}){}",
            new.describe_columns(),
            pk_text(&new.primary_key),
            old.describe_columns(),
            pk_text(&old.primary_key)
        ));
    }
    if old.connector != new.connector {
        parts.push(format!(
            "connector {} was {}",
            new.connector.name(),
            old.connector.name()
        ));
    }
    if old.connection != new.connection {
        parts.push("connection changed".into());
    }
    let changed: Vec<&str> = old
        .options
        .keys()
        .chain(new.options.keys())
        .filter(|k| old.options.get(*k) != new.options.get(*k))
        .map(String::as_str)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !changed.is_empty() {
        parts.push(format!("options changed: {}", changed.join(", ")));
    }
    parts.join("; ")
}

fn pk_text(pk: &[String]) -> String {
    if pk.is_empty() {
        String::new()
    } else {
        format!(" PRIMARY KEY ({})", pk.join(", "))
    }
}

fn unknown_message(what: &str, name: &str, candidates: &[&str]) -> String {
    match siphon_ddl::closest(name, candidates.iter().copied()) {
        Some(best) => format!("unknown {what} `{name}`; did you mean `{best}`?"),
        None if candidates.is_empty() => format!("unknown {what} `{name}`"),
        None if candidates.len() <= 8 => format!(
            "unknown {what} `{name}`; expected one of {}",
            candidates.join(", ")
        ),
        None => format!("unknown {what} `{name}`"),
    }
}
