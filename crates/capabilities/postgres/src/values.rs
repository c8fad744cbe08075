//! The type mapping between wasmCloud's `pg-value` and PostgreSQL's binary
//! wire format, both ways.
//!
//! **Parameters.** A guest's `pg-value` is encoded for the type the server
//! inferred for the parameter (`$1` compared with a `bigint` column is an
//! `int8` whatever variant the guest picked), so the variant says what the
//! value is and the statement says how it is stored: any integer variant
//! fits any integer, float or numeric parameter its value fits; `numeric`
//! strings fit `numeric`, `money`, integers and floats; text-like variants
//! fit `text`, `varchar`, `char(n)`, `name`, `xml`, `json`, `jsonb` and
//! `uuid`. A value that does not fit is refused with the parameter's
//! number and both types.
//!
//! **Columns.** Each column comes back as the variant named after its type
//! (`int8`, `float8`, `text`, `varchar`, `timestamp-tz`, …), one dimension
//! arrays as the `-array` variants, enums and domains as their labels and
//! base types. Types the interface cannot carry (`interval`, ranges,
//! `tsvector`, multi-dimension arrays, arrays with NULLs) are a
//! conversion error that says to cast the column.
//!
//! Floats travel as wasmCloud's `hashable-f64` (mantissa, exponent, sign);
//! `money` is read and written with two decimal places (the `C` locale's).
//!
//! The code is written once (`codec.rs`) and included into one module per
//! interface version: each version's bindings generate their own
//! `pg-value` (wasmtime's `bindgen!` can share only resources between
//! bindings), and the two are the same shape.

/// For `wasmcloud:postgres@0.1.1-draft` (P2).
pub mod v1 {
    use crate::bindings::wasmcloud::postgres::types::{
        Date, HashableF64, MacAddressEui48, MacAddressEui64, Offset, PgValue, Point, Time, TimeTz,
        Timestamp, TimestampTz,
    };
    include!("codec.rs");
}

/// For `wasmcloud:postgres@0.2.0` (P3).
pub mod v2 {
    use crate::bindings_v2::wasmcloud::postgres::types::{
        Date, HashableF64, MacAddressEui48, MacAddressEui64, Offset, PgValue, Point, Time, TimeTz,
        Timestamp, TimestampTz,
    };
    include!("codec.rs");
}
