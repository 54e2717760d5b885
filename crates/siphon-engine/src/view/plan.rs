//! A view's query, compiled into the steps that maintain it incrementally.
//!
//! DataFusion parses, resolves and type-checks the query (its analyzer only: the optimizer
//! may rewrite a plan in ways that are correct for one run over a whole table but not for
//! a stream of changes, such as folding `now()` into a constant). The logical plan must
//! then be a chain over ONE table or view: stateless steps (filters and projections, any
//! scalar expression DataFusion evaluates on a batch), at most one `GROUP BY` with
//! `COUNT`, `SUM`, `MIN`, `MAX`, `AVG`, and stateless steps over its output (`HAVING`,
//! the final projection). Anything else is refused here, at load time, with what is
//! supported: no view is ever silently recomputed from scratch.
//!
//! The output is normalized to the column types siphon stores (an `Int32` sum becomes
//! `BIGINT`, a `Utf8View` becomes `TEXT`, ...), so a view's rows look exactly like a
//! table's to queries, egress and the catalog.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::common::DFSchemaRef;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::empty::EmptyTable;
use datafusion::execution::SessionState;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::{SessionConfig, SessionContext};
use siphon_connect::schema::{Column, ColumnType};

/// Why a view's query cannot be maintained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

fn refuse(message: impl Into<String>) -> PlanError {
    PlanError(message.into())
}

/// What a query may hold, for the messages of refused queries.
pub const SUPPORTED: &str = "a view is maintained incrementally when it reads ONE table or view with \
     WHERE, projections and scalar expressions, and optionally GROUP BY with COUNT(*), COUNT(col), \
     SUM, MIN, MAX, AVG (each with an optional FILTER (WHERE ...)) and HAVING";

/// One stateless step, evaluated on a batch of changes (their weights ride along).
#[derive(Debug)]
pub enum Step {
    /// Keeps the rows where the predicate is true.
    Filter(Arc<dyn PhysicalExpr>),
    /// Computes new columns.
    Project {
        /// One expression per output column.
        exprs: Vec<Arc<dyn PhysicalExpr>>,
        /// The output schema.
        schema: SchemaRef,
    },
    /// Selects columns of the input (a table scan with a projection).
    Columns(Vec<usize>),
}

/// An aggregate function a view maintains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggKind {
    /// `COUNT(*)` / `COUNT(expr)`: rows where the argument is not NULL.
    Count,
    /// `SUM(expr)`.
    Sum,
    /// `AVG(expr)`.
    Avg,
    /// `MIN(expr)`.
    Min,
    /// `MAX(expr)`.
    Max,
}

/// One aggregate of a `GROUP BY`.
#[derive(Debug)]
pub struct AggSpec {
    /// Which function.
    pub kind: AggKind,
    /// Its argument, over the aggregate's input.
    pub arg: Arc<dyn PhysicalExpr>,
    /// `FILTER (WHERE ...)`, over the aggregate's input.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// The output type (as DataFusion types it).
    pub output: DataType,
    /// The argument's type.
    pub input: DataType,
}

/// The `GROUP BY` step.
#[derive(Debug)]
pub struct AggregateStep {
    /// Group expressions over the aggregate's input (empty: one global group).
    pub group: Vec<Arc<dyn PhysicalExpr>>,
    /// The aggregates, in output order after the group columns.
    pub aggs: Vec<AggSpec>,
    /// The aggregate's output schema: group columns, then aggregates.
    pub schema: SchemaRef,
}

/// A compiled view.
#[derive(Debug)]
pub struct ViewPlan {
    /// The table or view it reads.
    pub input: String,
    /// Stateless steps over the input's rows.
    pub before: Vec<Step>,
    /// The `GROUP BY`, if any.
    pub aggregate: Option<AggregateStep>,
    /// Stateless steps over the aggregate's output (`HAVING`, the final projection).
    pub after: Vec<Step>,
    /// The schema the steps produce, before normalization.
    pub raw_schema: SchemaRef,
    /// The view's columns as stored (normalized types, every column nullable).
    pub columns: Vec<Column>,
    /// The stored schema of its rows.
    pub schema: SchemaRef,
}

/// A session that knows the relations a view may read, by name and schema.
pub struct Planner {
    state: SessionState,
}

impl Planner {
    /// A planner over `relations` (name, schema): tables and views already defined.
    pub fn new<'a>(relations: impl IntoIterator<Item = (&'a str, SchemaRef)>) -> Self {
        let mut state = SessionStateBuilder::new()
            .with_config(crate::query::json_dialect(SessionConfig::new()))
            .with_default_features()
            .build();
        // Registering into a fresh state cannot clash with anything: a failure here is a
        // bug of the crate, and a view using the functions would then fail to plan.
        if let Err(e) = crate::query::register_json_functions(&mut state) {
            tracing::error!("registering the JSON functions for views: {e}");
        }
        let ctx = SessionContext::new_with_state(state);
        for (name, schema) in relations {
            let _ = ctx.register_table(
                datafusion::common::TableReference::bare(name.to_string()),
                Arc::new(EmptyTable::new(schema)),
            );
        }
        Planner { state: ctx.state() }
    }

    /// Makes `name` readable by later views.
    pub fn add(&mut self, name: &str, schema: SchemaRef) {
        let ctx = SessionContext::new_with_state(self.state.clone());
        let _ = ctx.register_table(
            datafusion::common::TableReference::bare(name.to_string()),
            Arc::new(EmptyTable::new(schema)),
        );
        self.state = ctx.state();
    }

    /// Compiles `sql` (the text after `AS`).
    pub fn plan(&self, sql: &str) -> Result<ViewPlan, PlanError> {
        let state = self.state.clone();
        let sql_text = sql.to_string();
        // Planning is async in DataFusion (table lookup) but does no I/O here; it runs on
        // its own thread so that callers inside or outside a runtime can wait for it.
        let logical = std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .map_err(|e| refuse(format!("planning the view: {e}")))?;
                    runtime
                        .block_on(state.create_logical_plan(&sql_text))
                        .map_err(|e| {
                            let message = e.to_string();
                            if message.contains("'datafusion.system.") {
                                refuse("a view reads a table or a view, not a system table")
                            } else {
                                refuse(clean(&message))
                            }
                        })
                })
                .join()
                .map_err(|_| refuse("planning the view panicked"))?
        })?;
        // `->` and `json_get` give a JSON union, which a view cannot store: its JSON text is.
        let logical = match crate::query::json_unions_as_text(&logical) {
            Ok(Some(plan)) => plan,
            Ok(None) => logical,
            Err(e) => return Err(refuse(clean(&e.to_string()))),
        };
        let analyzed = self
            .state
            .analyzer()
            .execute_and_check(logical, self.state.config_options(), |_, _| {})
            .map_err(|e| refuse(clean(&e.to_string())))?;
        self.compile(&analyzed)
    }

    fn compile(&self, plan: &LogicalPlan) -> Result<ViewPlan, PlanError> {
        // The chain from the output down to the scan.
        let mut chain: Vec<&LogicalPlan> = Vec::new();
        let mut node = plan;
        let input = loop {
            match node {
                LogicalPlan::TableScan(scan) => {
                    if scan.table_name.schema().is_some() {
                        return Err(refuse(format!(
                            "a view reads a table or a view, not {}",
                            scan.table_name
                        )));
                    }
                    if !scan.filters.is_empty() || scan.fetch.is_some() {
                        return Err(refuse("a filtered or limited scan cannot be maintained"));
                    }
                    chain.push(node);
                    break scan.table_name.table().to_string();
                }
                LogicalPlan::Projection(p) => {
                    chain.push(node);
                    node = &p.input;
                }
                LogicalPlan::Filter(f) => {
                    chain.push(node);
                    node = &f.input;
                }
                LogicalPlan::Aggregate(a) => {
                    chain.push(node);
                    node = &a.input;
                }
                LogicalPlan::SubqueryAlias(s) => node = &s.input,
                other => return Err(refused_node(other)),
            }
        };
        chain.reverse();
        let mut before = Vec::new();
        let mut aggregate = None;
        let mut after = Vec::new();
        for node in chain {
            let steps = if aggregate.is_some() {
                &mut after
            } else {
                &mut before
            };
            match node {
                LogicalPlan::TableScan(scan) => {
                    if let Some(p) = &scan.projection {
                        steps.push(Step::Columns(p.clone()));
                    }
                }
                LogicalPlan::Filter(f) => {
                    let schema = f.input.schema();
                    steps.push(Step::Filter(self.physical(&f.predicate, schema)?));
                }
                LogicalPlan::Projection(p) => {
                    let schema = p.input.schema();
                    let exprs = p
                        .expr
                        .iter()
                        .map(|e| self.physical(e, schema))
                        .collect::<Result<_, _>>()?;
                    steps.push(Step::Project {
                        exprs,
                        schema: Arc::new(p.schema.as_arrow().clone()),
                    });
                }
                LogicalPlan::Aggregate(a) => {
                    if aggregate.is_some() {
                        return Err(refuse(
                            "a GROUP BY over another GROUP BY's result cannot be maintained in one view; \
                             declare the inner one as its own view and read that",
                        ));
                    }
                    aggregate = Some(self.aggregate(a)?);
                }
                _ => unreachable!("the chain holds only the nodes matched above"),
            }
        }
        let raw_schema = Arc::new(plan.schema().as_arrow().clone());
        let columns = raw_schema
            .fields()
            .iter()
            .map(|f| stored_column(f))
            .collect::<Result<Vec<_>, _>>()?;
        let schema = siphon_connect::schema::RecordSchema::new(columns.clone()).arrow_schema();
        Ok(ViewPlan {
            input,
            before,
            aggregate,
            after,
            raw_schema,
            columns,
            schema,
        })
    }

    fn physical(
        &self,
        expr: &Expr,
        schema: &DFSchemaRef,
    ) -> Result<Arc<dyn PhysicalExpr>, PlanError> {
        check_expr(expr)?;
        self.state
            .create_physical_expr(expr.clone(), schema)
            .map_err(|e| refuse(clean(&e.to_string())))
    }

    fn aggregate(
        &self,
        a: &datafusion::logical_expr::Aggregate,
    ) -> Result<AggregateStep, PlanError> {
        let input = a.input.schema();
        let mut group = Vec::new();
        for g in &a.group_expr {
            if matches!(g, Expr::GroupingSet(_)) {
                return Err(refuse(format!(
                    "GROUPING SETS, ROLLUP and CUBE cannot be maintained incrementally; {SUPPORTED}"
                )));
            }
            group.push(self.physical(g, input)?);
        }
        let schema: SchemaRef = Arc::new(a.schema.as_arrow().clone());
        let mut aggs = Vec::new();
        for (i, e) in a.aggr_expr.iter().enumerate() {
            let output = schema.field(a.group_expr.len() + i).data_type().clone();
            let mut inner = e;
            while let Expr::Alias(alias) = inner {
                inner = &alias.expr;
            }
            let Expr::AggregateFunction(f) = inner else {
                return Err(refuse(format!("`{e}` is not an aggregate function call")));
            };
            let name = f.func.name().to_ascii_lowercase();
            let kind = match name.as_str() {
                "count" => AggKind::Count,
                "sum" => AggKind::Sum,
                "avg" | "mean" => AggKind::Avg,
                "min" => AggKind::Min,
                "max" => AggKind::Max,
                other => {
                    return Err(refuse(format!(
                        "aggregate {}() cannot be maintained incrementally (supported: COUNT, SUM, MIN, MAX, AVG)",
                        other.to_uppercase()
                    )));
                }
            };
            let params = &f.params;
            if params.distinct {
                return Err(refuse(format!(
                    "{}(DISTINCT ...) cannot be maintained incrementally: a view would have to keep \
                     every distinct value of every group; declare a view that GROUPs BY the value \
                     and aggregate over that view instead",
                    name.to_uppercase()
                )));
            }
            if !params.order_by.is_empty() {
                return Err(refuse(format!(
                    "{}(... ORDER BY ...) cannot be maintained incrementally",
                    name.to_uppercase()
                )));
            }
            let arg = match params.args.as_slice() {
                [] => self.physical(&datafusion::prelude::lit(1i64), input)?,
                [arg] => self.physical(arg, input)?,
                _ => {
                    return Err(refuse(format!(
                        "{}() with several arguments cannot be maintained incrementally",
                        name.to_uppercase()
                    )));
                }
            };
            check_agg_type(kind, &name, &output)?;
            let input_type = arg
                .data_type(input.as_arrow())
                .map_err(|e| refuse(clean(&e.to_string())))?;
            let filter = params
                .filter
                .as_deref()
                .map(|f| self.physical(f, input))
                .transpose()?;
            aggs.push(AggSpec {
                kind,
                arg,
                filter,
                output,
                input: input_type,
            });
        }
        Ok(AggregateStep {
            group,
            aggs,
            schema,
        })
    }
}

fn check_agg_type(kind: AggKind, name: &str, output: &DataType) -> Result<(), PlanError> {
    let ok = match kind {
        AggKind::Count => matches!(output, DataType::Int64),
        AggKind::Sum => matches!(
            output,
            DataType::Int64 | DataType::UInt64 | DataType::Float64 | DataType::Decimal128(_, _)
        ),
        AggKind::Avg => matches!(output, DataType::Float64 | DataType::Decimal128(_, _)),
        AggKind::Min | AggKind::Max => !matches!(
            output,
            DataType::List(_)
                | DataType::LargeList(_)
                | DataType::Struct(_)
                | DataType::Map(_, _)
                | DataType::Null
        ),
    };
    if ok {
        Ok(())
    } else {
        Err(refuse(format!(
            "{}() over a value of type {output} cannot be maintained incrementally",
            name.to_uppercase()
        )))
    }
}

/// Refuses plan nodes outside the chain, naming the part of the query.
fn refused_node(node: &LogicalPlan) -> PlanError {
    let part = match node {
        LogicalPlan::Join(_) => "a JOIN",
        LogicalPlan::Window(_) => "a window function (OVER ...)",
        LogicalPlan::Sort(_) => "ORDER BY (a view's rows have no order; order when you query it)",
        LogicalPlan::Limit(_) => "LIMIT/OFFSET",
        LogicalPlan::Distinct(_) => "SELECT DISTINCT (write GROUP BY the selected columns instead)",
        LogicalPlan::Union(_) => "UNION/INTERSECT/EXCEPT",
        LogicalPlan::EmptyRelation(_) | LogicalPlan::Values(_) => {
            "a query without a table (a view reads one table or view)"
        }
        LogicalPlan::Subquery(_) => "a subquery",
        LogicalPlan::Unnest(_) => "UNNEST",
        LogicalPlan::RecursiveQuery(_) => "a recursive query",
        _ => "this statement",
    };
    refuse(format!(
        "{part} cannot be maintained incrementally; {SUPPORTED}"
    ))
}

/// Refuses expressions whose value is not a function of the row alone.
fn check_expr(expr: &Expr) -> Result<(), PlanError> {
    let mut problem = None;
    let _ = expr.apply(|e| {
        match e {
            Expr::ScalarSubquery(_) | Expr::InSubquery(_) | Expr::Exists(_) => {
                problem = Some(format!(
                    "a subquery cannot be maintained incrementally; {SUPPORTED}"
                ));
            }
            Expr::OuterReferenceColumn(..) => {
                problem = Some("a correlated reference cannot be maintained".to_string());
            }
            Expr::ScalarFunction(f) if f.func.signature().volatility != Volatility::Immutable => {
                problem = Some(format!(
                    "{}() gives another value each time it runs, so a view that uses it would \
                     depend on when each row arrived; store the time in the table instead",
                    f.func.name()
                ));
            }
            _ => {}
        }
        Ok(if problem.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    match problem {
        Some(p) => Err(refuse(p)),
        None => Ok(()),
    }
}

/// The stored column for an output field: a type siphon stores, always nullable.
fn stored_column(field: &Field) -> Result<Column, PlanError> {
    let ty = match field.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            if field
                .metadata()
                .get(siphon_connect::schema::SIPHON_TYPE_METADATA_KEY)
                .is_some_and(|v| v == "json")
            {
                ColumnType::Json
            } else {
                ColumnType::Text
            }
        }
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => ColumnType::SmallInt,
        DataType::Int32 | DataType::UInt16 => ColumnType::Int,
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => ColumnType::BigInt,
        DataType::Float16 | DataType::Float32 | DataType::Float64 => ColumnType::Double,
        DataType::Decimal128(p, s) if *p <= 38 && *s >= 0 && (*s as u8) <= *p => {
            ColumnType::Decimal {
                precision: *p,
                scale: *s,
            }
        }
        DataType::Boolean => ColumnType::Boolean,
        DataType::Timestamp(_, _) => ColumnType::Timestamp,
        DataType::Date32 | DataType::Date64 => ColumnType::Date,
        DataType::Null => ColumnType::Text,
        other => {
            return Err(refuse(format!(
                "column `{}` would have type {other}, which a view cannot store; CAST it to TEXT, \
                 BIGINT, DOUBLE, DECIMAL, BOOLEAN, TIMESTAMP or DATE",
                field.name()
            )));
        }
    };
    Ok(Column::new(field.name(), ty, true))
}

/// DataFusion's messages carry a "Error during planning:" prefix and the like.
fn clean(message: &str) -> String {
    let mut m = message.trim();
    for prefix in [
        "Error during planning: ",
        "Schema error: ",
        "SQL error: ",
        "This feature is not implemented: ",
        "Optimizer rule 'type_coercion' failed\ncaused by\n",
        "type_coercion\ncaused by\n",
    ] {
        if let Some(rest) = m.strip_prefix(prefix) {
            m = rest;
        }
    }
    m.to_string()
}
