//! `wasmcloud:postgres@0.2.0`: the same calls as `0.1.1-draft` for P3
//! guests, as component-model `async` functions, with typed errors (the
//! server's SQLSTATE, severity and fields in `db-error`) and a query's rows
//! as a `stream<row>` beside its column names.
//!
//! The rows are read whole first (within `max_result_bytes`, as for
//! `0.1.1-draft`) and then handed to the stream, so the completion future
//! is always `ok`: every error, one partway through the result included,
//! is the call's own `result`.

use crate::{Failure, HasPostgres, PREPARED, QUERY, Shared};
use std::sync::Arc;
use wasmtime::component::{Accessor, FutureReader, StreamReader};

use crate::bindings_v2::wasmcloud::postgres::{prepared, query, types};
use types::{DbError, Error, PgValue};

/// Links the `0.2.0` host functions.
pub(crate) fn add_to_linker<T: nimbus_plugin::PluginState>(
    linker: &mut wasmtime::component::Linker<T>,
    view: fn(&mut T) -> crate::PostgresView<'_>,
) -> wasmtime::Result<()> {
    types::add_to_linker::<T, HasPostgres>(linker, view)?;
    query::add_to_linker::<T, HasPostgres>(linker, view)?;
    prepared::add_to_linker::<T, HasPostgres>(linker, view)
}

/// What the guest is told.
fn guest_error(failure: Failure) -> Error {
    match failure {
        Failure::Params(text) => Error::InvalidParams(text),
        Failure::Database(db)
            if db.code().code() == "57014" && db.message().contains("timeout") =>
        {
            Error::Timeout
        }
        Failure::Database(db) => {
            let fields = [
                ("hint", db.hint()),
                ("where", db.where_()),
                ("schema", db.schema()),
                ("table", db.table()),
                ("column", db.column()),
                ("datatype", db.datatype()),
                ("constraint", db.constraint()),
            ];
            Error::QueryFailed(DbError {
                code: db.code().code().to_string(),
                severity: db.severity().to_string(),
                message: db.message().to_string(),
                detail: db.detail().map(str::to_string),
                extras: fields
                    .into_iter()
                    .filter_map(|(name, value)| Some((name.to_string(), value?.to_string())))
                    .collect(),
            })
        }
        Failure::Connection(text) => Error::ConnectionFailed(text),
        Failure::Timeout(_) => Error::Timeout,
        Failure::Conversion(text) => Error::ValueConversionFailed(text),
        Failure::TooLarge(text) => Error::Other(text),
    }
}

/// The component's binding.
fn shared<T>(accessor: &Accessor<T, HasPostgres>) -> wasmtime::Result<Arc<Shared>> {
    accessor.with(|mut access| access.get().binding().cloned())
}

/// Runs `call` as one observed plugin call of this component (span,
/// metrics).
async fn observed<T, R>(
    accessor: &Accessor<T, HasPostgres>,
    interface: &'static str,
    function: &'static str,
    call: impl Future<Output = Result<R, Failure>>,
) -> Result<R, Error> {
    let observation = accessor.with(|mut access| access.get().calls.start(interface, function));
    let result = observation.run(call).await;
    accessor.with(|mut access| observation.finish(&access.get().calls, result.is_ok()));
    result.map_err(guest_error)
}

type Rows = (
    Vec<String>,
    StreamReader<Vec<PgValue>>,
    FutureReader<Result<(), Error>>,
);

impl types::Host for crate::PostgresView<'_> {}
impl query::Host for crate::PostgresView<'_> {}
impl prepared::Host for crate::PostgresView<'_> {}

impl<T> query::HostWithStore<T> for HasPostgres {
    async fn query(
        accessor: &Accessor<T, Self>,
        sql: String,
        params: Vec<PgValue>,
    ) -> wasmtime::Result<Result<Rows, Error>> {
        let shared = shared(accessor)?;
        let params: Vec<crate::values::v2::Param<'_>> =
            params.iter().map(crate::values::v2::Param).collect();
        let call = shared
            .database
            .rows::<_, crate::values::v2::Column>(&sql, &params);
        let (columns, rows) = match observed(accessor, QUERY, "query", call).await {
            Ok(result) => result,
            Err(error) => return Ok(Err(error)),
        };
        let rows: Vec<Vec<PgValue>> = rows
            .into_iter()
            .map(|row| row.into_iter().map(|column| column.0).collect())
            .collect();
        let (rows, done) = accessor.with(|mut access| -> wasmtime::Result<_> {
            let rows = StreamReader::new(&mut access, rows)?;
            let done = FutureReader::new(&mut access, async {
                Ok::<_, wasmtime::Error>(Ok::<(), Error>(()))
            })?;
            Ok((rows, done))
        })?;
        Ok(Ok((columns, rows, done)))
    }

    async fn query_batch(
        accessor: &Accessor<T, Self>,
        sql: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        let shared = shared(accessor)?;
        let call = shared.database.batch_raw(&sql);
        Ok(observed(accessor, QUERY, "query-batch", call).await)
    }
}

impl<T> prepared::HostWithStore<T> for HasPostgres {
    async fn prepare(
        accessor: &Accessor<T, Self>,
        statement: String,
    ) -> wasmtime::Result<Result<String, Error>> {
        let shared = shared(accessor)?;
        Ok(observed(accessor, PREPARED, "prepare", shared.prepare(statement)).await)
    }

    async fn exec(
        accessor: &Accessor<T, Self>,
        token: String,
        params: Vec<PgValue>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let shared = shared(accessor)?;
        let Some(statement) = shared.statement(&token) else {
            return Ok(Err(Error::UnknownPreparedStatement));
        };
        let params: Vec<crate::values::v2::Param<'_>> =
            params.iter().map(crate::values::v2::Param).collect();
        let call = shared
            .database
            .execute_raw(&statement.sql, &statement.types, &params);
        Ok(observed(accessor, PREPARED, "exec", call).await)
    }
}
