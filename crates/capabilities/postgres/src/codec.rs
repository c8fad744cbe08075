// The codec between `pg-value` and PostgreSQL's binary format, included
// once per interface version by `values.rs` (each generated its own
// `pg-value`, of the same shape); the including module brings the types in.

use bytes::{Buf, BufMut, BytesMut};
use chrono::{Datelike, NaiveDate, NaiveTime, Timelike};
use std::net::IpAddr;
use tokio_postgres::types::{FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};

type BoxError = Box<dyn std::error::Error + Sync + Send>;

fn fail<T>(message: impl Into<String>) -> Result<T, BoxError> {
    Err(message.into().into())
}

/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
fn pg_epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).expect("a valid date")
}

// ---------------------------------------------------------------- floats

/// A float as `hashable-f64`: mantissa, exponent and sign with
/// `mantissa * 2^exponent * sign == value`.
pub fn hashable_f64(value: f64) -> HashableF64 {
    let bits = value.to_bits();
    let sign: i8 = if bits >> 63 == 0 { 1 } else { -1 };
    let biased = ((bits >> 52) & 0x7ff) as i16;
    let fraction = bits & 0x000f_ffff_ffff_ffff;
    let mantissa = if biased == 0 {
        fraction << 1
    } else {
        fraction | 0x0010_0000_0000_0000
    };
    (mantissa, biased - 1075, sign)
}

/// [`hashable_f64`] of an `f32`, in the `f32`'s own terms.
pub fn hashable_f32(value: f32) -> HashableF64 {
    let bits = value.to_bits();
    let sign: i8 = if bits >> 31 == 0 { 1 } else { -1 };
    let biased = ((bits >> 23) & 0xff) as i16;
    let fraction = bits & 0x007f_ffff;
    let mantissa = if biased == 0 {
        fraction << 1
    } else {
        fraction | 0x0080_0000
    };
    (u64::from(mantissa), biased - 150, sign)
}

/// The float a `hashable-f64` stands for. Infinities and NaN (the largest
/// exponents) come back as themselves.
pub fn float_of((mantissa, exponent, sign): HashableF64) -> f64 {
    let sign = if sign < 0 { -1.0 } else { 1.0 };
    // An f64 with an all-ones exponent, and the same for an f32.
    if exponent == 972 || exponent == 105 {
        let implicit = if exponent == 972 { 1u64 << 52 } else { 1 << 23 };
        return if mantissa == implicit {
            sign * f64::INFINITY
        } else {
            f64::NAN
        };
    }
    // In two steps so that subnormal exponents do not underflow to zero.
    let half = i32::from(exponent) / 2;
    sign * (mantissa as f64) * 2f64.powi(half) * 2f64.powi(i32::from(exponent) - half)
}

// ---------------------------------------------------------------- numeric

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// Writes a decimal string (`-12.50`, `NaN`, `Infinity`) as a binary
/// `numeric`: base-10000 digit groups, a weight and a display scale.
fn put_numeric(text: &str, out: &mut BytesMut) -> Result<(), BoxError> {
    let trimmed = text.trim();
    let special = match trimmed.to_ascii_lowercase().as_str() {
        "nan" => Some(NUMERIC_NAN),
        "infinity" | "+infinity" | "inf" => Some(NUMERIC_PINF),
        "-infinity" | "-inf" => Some(NUMERIC_NINF),
        _ => None,
    };
    if let Some(sign) = special {
        out.put_i16(0);
        out.put_i16(0);
        out.put_u16(sign);
        out.put_u16(0);
        return Ok(());
    }
    let (negative, unsigned) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    let (int_part, frac_part) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty())
        || !digits_ok(int_part)
        || !digits_ok(frac_part)
    {
        return fail(format!("`{text}` is not a decimal number"));
    }
    let int_part = int_part.trim_start_matches('0');
    let scale = u16::try_from(frac_part.len()).map_err(|_| "too many decimal places")?;
    // Pad to whole groups of four: the integer part on the left, the
    // fraction on the right.
    let int_pad = (4 - int_part.len() % 4) % 4;
    let frac_pad = (4 - frac_part.len() % 4) % 4;
    let padded: String = "0".repeat(int_pad) + int_part + frac_part + &"0".repeat(frac_pad);
    let mut groups: Vec<i16> = padded
        .as_bytes()
        .chunks(4)
        .map(|chunk| {
            chunk
                .iter()
                .fold(0i16, |acc, digit| acc * 10 + i16::from(digit - b'0'))
        })
        .collect();
    let int_groups = (int_part.len() + int_pad) / 4;
    let mut weight = i64::try_from(int_groups).unwrap_or(i64::MAX) - 1;
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= leading as i64;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let ndigits = i16::try_from(groups.len()).map_err(|_| "too many digits")?;
    let weight = i16::try_from(weight).map_err(|_| "the number is too large")?;
    out.put_i16(ndigits);
    out.put_i16(weight);
    out.put_u16(if negative && !groups.is_empty() {
        NUMERIC_NEG
    } else {
        NUMERIC_POS
    });
    out.put_u16(scale);
    for group in groups {
        out.put_i16(group);
    }
    Ok(())
}

/// Reads a binary `numeric` as its decimal string, with its display scale.
fn numeric_text(mut raw: &[u8]) -> Result<String, BoxError> {
    if raw.len() < 8 {
        return fail("a numeric shorter than its header");
    }
    let ndigits = raw.get_i16();
    let weight = i32::from(raw.get_i16());
    let sign = raw.get_u16();
    let scale = usize::from(raw.get_u16());
    match sign {
        NUMERIC_NAN => return Ok("NaN".into()),
        NUMERIC_PINF => return Ok("Infinity".into()),
        NUMERIC_NINF => return Ok("-Infinity".into()),
        NUMERIC_POS | NUMERIC_NEG => {}
        other => return fail(format!("a numeric with sign {other:#x}")),
    }
    let count = usize::try_from(ndigits).map_err(|_| "a negative digit count")?;
    if raw.len() != count * 2 {
        return fail("a numeric whose digits do not match its count");
    }
    let groups: Vec<i32> = (0..count).map(|_| i32::from(raw.get_i16())).collect();
    let group = |index: i32| -> i32 {
        usize::try_from(index)
            .ok()
            .and_then(|i| groups.get(i).copied())
            .unwrap_or(0)
    };
    let mut text = String::new();
    if sign == NUMERIC_NEG {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        text.push_str(&group(0).to_string());
        for index in 1..=weight {
            text.push_str(&format!("{:04}", group(index)));
        }
    }
    if scale > 0 {
        let mut fraction = String::new();
        let mut index = weight + 1;
        while fraction.len() < scale {
            fraction.push_str(&format!("{:04}", group(index)));
            index += 1;
        }
        fraction.truncate(scale);
        text.push('.');
        text.push_str(&fraction);
    }
    Ok(text)
}

/// `money` in cents, from a decimal string with at most two places.
fn money_cents(text: &str) -> Result<i64, BoxError> {
    let trimmed = text.trim();
    let (negative, unsigned) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed),
    };
    let (units, cents) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if units.is_empty() || !digits_ok(units) || !digits_ok(cents) || cents.len() > 2 {
        return fail(format!(
            "`{text}` is not an amount of money (digits, at most two decimal places)"
        ));
    }
    let units: i64 = units.parse().map_err(|_| "the amount is too large")?;
    let cents: i64 = format!("{cents:0<2}").parse().unwrap_or(0);
    let value = units
        .checked_mul(100)
        .and_then(|v| v.checked_add(cents))
        .ok_or("the amount is too large")?;
    Ok(if negative { -value } else { value })
}

fn money_text(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}{}.{:02}", cents / 100, cents % 100)
}

// ---------------------------------------------------------------- dates

fn date_days(date: &Date) -> Result<i32, BoxError> {
    match date {
        Date::PositiveInfinity => Ok(i32::MAX),
        Date::NegativeInfinity => Ok(i32::MIN),
        Date::Ymd((year, month, day)) => {
            let date = NaiveDate::from_ymd_opt(*year, *month, *day)
                .ok_or_else(|| format!("{year}-{month}-{day} is not a date"))?;
            Ok(
                i32::try_from(date.signed_duration_since(pg_epoch()).num_days())
                    .map_err(|_| "the date is out of range")?,
            )
        }
    }
}

fn date_of(days: i32) -> Result<Date, BoxError> {
    Ok(match days {
        i32::MAX => Date::PositiveInfinity,
        i32::MIN => Date::NegativeInfinity,
        days => {
            let date = pg_epoch()
                .checked_add_signed(chrono::Duration::days(i64::from(days)))
                .ok_or("the date is out of range")?;
            Date::Ymd((date.year(), date.month(), date.day()))
        }
    })
}

fn time_micros(time: &Time) -> Result<i64, BoxError> {
    // 24:00:00 is a valid PostgreSQL time.
    if (time.hour, time.min, time.sec, time.micro) == (24, 0, 0, 0) {
        return Ok(86_400_000_000);
    }
    let valid = NaiveTime::from_hms_micro_opt(time.hour, time.min, time.sec, time.micro)
        .ok_or_else(|| {
            format!(
                "{:02}:{:02}:{:02}.{:06} is not a time of day",
                time.hour, time.min, time.sec, time.micro
            )
        })?;
    Ok(i64::from(valid.num_seconds_from_midnight()) * 1_000_000
        + i64::from(valid.nanosecond() / 1000))
}

fn time_of(micros: i64) -> Time {
    let micros = micros.clamp(0, 86_400_000_000);
    let seconds = micros / 1_000_000;
    Time {
        hour: (seconds / 3600) as u32,
        min: (seconds / 60 % 60) as u32,
        sec: (seconds % 60) as u32,
        micro: (micros % 1_000_000) as u32,
    }
}

const DAY_MICROS: i64 = 86_400_000_000;

fn timestamp_micros(timestamp: &Timestamp) -> Result<i64, BoxError> {
    match timestamp.date {
        Date::PositiveInfinity => Ok(i64::MAX),
        Date::NegativeInfinity => Ok(i64::MIN),
        ref date => {
            let days = i64::from(date_days(date)?);
            days.checked_mul(DAY_MICROS)
                .and_then(|d| d.checked_add(time_micros(&timestamp.time).ok()?))
                .ok_or_else(|| "the timestamp is out of range or its time invalid".into())
        }
    }
}

fn timestamp_of(micros: i64) -> Result<Timestamp, BoxError> {
    Ok(match micros {
        i64::MAX => Timestamp {
            date: Date::PositiveInfinity,
            time: time_of(0),
        },
        i64::MIN => Timestamp {
            date: Date::NegativeInfinity,
            time: time_of(0),
        },
        micros => {
            let days = micros.div_euclid(DAY_MICROS);
            Timestamp {
                date: date_of(i32::try_from(days).map_err(|_| "the timestamp is out of range")?)?,
                time: time_of(micros.rem_euclid(DAY_MICROS)),
            }
        }
    })
}

/// Seconds east of UTC.
fn offset_seconds(offset: &Offset) -> i64 {
    match offset {
        Offset::EasternHemisphereSecs(s) => i64::from(*s),
        Offset::WesternHemisphereSecs(s) => -i64::from(*s),
    }
}

/// `+02:00`, `-0530`, `+5`, `UTC`, `Z` as seconds east of UTC.
fn zone_seconds(zone: &str) -> Result<i64, BoxError> {
    let zone = zone.trim();
    if zone.is_empty() || zone.eq_ignore_ascii_case("utc") || zone == "Z" {
        return Ok(0);
    }
    let bad = || format!("time zone `{zone}` is not an offset such as +02:00 or UTC");
    let (sign, rest) = match zone.as_bytes()[0] {
        b'+' => (1, &zone[1..]),
        b'-' => (-1, &zone[1..]),
        _ => return fail(bad()),
    };
    let (hours, minutes) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => rest.split_at(2),
        None => (rest, "0"),
    };
    let hours: i64 = hours.parse().map_err(|_| bad())?;
    let minutes: i64 = minutes.parse().map_err(|_| bad())?;
    if hours > 15 || minutes > 59 {
        return fail(bad());
    }
    Ok(sign * (hours * 3600 + minutes * 60))
}

fn zone_text(east_seconds: i64) -> String {
    let sign = if east_seconds < 0 { '-' } else { '+' };
    let seconds = east_seconds.abs();
    format!("{sign}{:02}:{:02}", seconds / 3600, seconds / 60 % 60)
}

// ---------------------------------------------------------------- network

const AF_INET: u8 = 2;
const AF_INET6: u8 = 3;

/// `inet` and `cidr`: family, prefix bits, whether it is a `cidr`, and the
/// address bytes.
fn put_inet(text: &str, is_cidr: bool, out: &mut BytesMut) -> Result<(), BoxError> {
    let (address, bits) = match text.trim().split_once('/') {
        Some((address, bits)) => (address, Some(bits)),
        None => (text.trim(), None),
    };
    let address: IpAddr = address
        .parse()
        .map_err(|_| format!("`{text}` is not an IP address"))?;
    let (family, octets): (u8, Vec<u8>) = match address {
        IpAddr::V4(v4) => (AF_INET, v4.octets().to_vec()),
        IpAddr::V6(v6) => (AF_INET6, v6.octets().to_vec()),
    };
    let max = (octets.len() * 8) as u8;
    let bits = match bits {
        Some(bits) => bits
            .parse::<u8>()
            .ok()
            .filter(|b| *b <= max)
            .ok_or_else(|| format!("`{text}` has a bad prefix length"))?,
        None => max,
    };
    out.put_u8(family);
    out.put_u8(bits);
    out.put_u8(u8::from(is_cidr));
    out.put_u8(octets.len() as u8);
    out.put_slice(&octets);
    Ok(())
}

fn inet_text(mut raw: &[u8], is_cidr: bool) -> Result<String, BoxError> {
    if raw.len() < 4 {
        return fail("an address shorter than its header");
    }
    let family = raw.get_u8();
    let bits = raw.get_u8();
    raw.get_u8();
    let length = usize::from(raw.get_u8());
    if raw.len() != length {
        return fail("an address whose length does not match");
    }
    let address: IpAddr = match (family, length) {
        (AF_INET, 4) => <[u8; 4]>::try_from(raw).map(IpAddr::from)?,
        (AF_INET6, 16) => <[u8; 16]>::try_from(raw).map(IpAddr::from)?,
        _ => return fail(format!("address family {family}")),
    };
    let full = (length * 8) as u8;
    Ok(if is_cidr || bits != full {
        format!("{address}/{bits}")
    } else {
        address.to_string()
    })
}

// ---------------------------------------------------------------- geometry

fn put_point(point: &Point, out: &mut BytesMut) {
    out.put_f64(float_of(point.0));
    out.put_f64(float_of(point.1));
}

fn point_of(raw: &mut &[u8]) -> Result<Point, BoxError> {
    if raw.len() < 16 {
        return fail("a point shorter than two floats");
    }
    Ok((hashable_f64(raw.get_f64()), hashable_f64(raw.get_f64())))
}

fn put_points(points: &[Point], out: &mut BytesMut) -> Result<(), BoxError> {
    out.put_i32(i32::try_from(points.len()).map_err(|_| "too many points")?);
    for point in points {
        put_point(point, out);
    }
    Ok(())
}

fn points_of(raw: &mut &[u8]) -> Result<Vec<Point>, BoxError> {
    if raw.len() < 4 {
        return fail("a point list shorter than its count");
    }
    let count = usize::try_from(raw.get_i32()).map_err(|_| "a negative point count")?;
    if raw.len() != count * 16 {
        return fail("a point list whose length does not match its count");
    }
    (0..count).map(|_| point_of(raw)).collect()
}

/// Two points on the line `a*x + b*y + c = 0`.
fn line_points(a: f64, b: f64, c: f64) -> (Point, Point) {
    let point = |x: f64, y: f64| (hashable_f64(x), hashable_f64(y));
    if b != 0.0 {
        (point(0.0, -c / b), point(1.0, -(a + c) / b))
    } else {
        (point(-c / a, 0.0), point(-c / a, 1.0))
    }
}

// ---------------------------------------------------------------- parameters

/// One value of a parameter, or one element of an array parameter.
enum Scalar<'a> {
    Int(i64),
    Bool(bool),
    Float(f64),
    Numeric(&'a str),
    Money(&'a str),
    Text(&'a [u8]),
    Bytes(&'a [u8]),
    Uuid(&'a str),
    Date(&'a Date),
    Time(&'a Time),
    TimeTz(&'a TimeTz),
    Timestamp(&'a Timestamp),
    TimestampTz(&'a TimestampTz),
    Inet(&'a str),
    /// The bytes, of which the first 6 (EUI-48) or 8 (EUI-64) count.
    Mac([u8; 8], usize),
    Point(&'a Point),
    Box(&'a (Point, Point)),
    Lseg(&'a (Point, Point)),
    Line(&'a (Point, Point)),
    Circle(&'a (Point, HashableF64)),
    Path(&'a [Point]),
    Polygon(&'a [Point]),
    Bits(Option<u32>, &'a [u8]),
    Lsn(u64),
    Int2Vector(&'a [i16]),
    Hstore(&'a [(String, Option<String>)]),
}

impl Scalar<'_> {
    /// What the value is, for errors.
    fn kind(&self) -> &'static str {
        match self {
            Self::Int(_) => "an integer",
            Self::Bool(_) => "a boolean",
            Self::Float(_) => "a float",
            Self::Numeric(_) => "a numeric",
            Self::Money(_) => "money",
            Self::Text(_) => "text",
            Self::Bytes(_) => "bytes (bytea)",
            Self::Uuid(_) => "a uuid",
            Self::Date(_) => "a date",
            Self::Time(_) => "a time",
            Self::TimeTz(_) => "a time with time zone",
            Self::Timestamp(_) => "a timestamp",
            Self::TimestampTz(_) => "a timestamp with time zone",
            Self::Inet(_) => "an address",
            Self::Mac(..) => "a MAC address",
            Self::Point(_) => "a point",
            Self::Box(_) => "a box",
            Self::Lseg(_) => "a line segment",
            Self::Line(_) => "a line",
            Self::Circle(_) => "a circle",
            Self::Path(_) => "a path",
            Self::Polygon(_) => "a polygon",
            Self::Bits(..) => "a bit string",
            Self::Lsn(_) => "a pg_lsn",
            Self::Int2Vector(_) => "an int2vector",
            Self::Hstore(_) => "an hstore",
        }
    }

    /// Writes the value as `ty`, or says why it does not fit.
    fn put(&self, ty: &Type, out: &mut BytesMut) -> Result<(), BoxError> {
        let mismatch =
            || -> BoxError { format!("{} cannot be sent as `{}`", self.kind(), ty.name()).into() };
        let int_fits = |value: i64, min: i64, max: i64| -> Result<i64, BoxError> {
            if (min..=max).contains(&value) {
                Ok(value)
            } else {
                Err(format!("{value} does not fit in `{}`", ty.name()).into())
            }
        };
        let text_type = matches!(
            *ty,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::XML | Type::UNKNOWN
        ) || matches!(ty.kind(), Kind::Enum(_));
        match (self, ty) {
            (Self::Int(v), &Type::INT2) => {
                out.put_i16(int_fits(*v, i16::MIN.into(), i16::MAX.into())? as i16)
            }
            (Self::Int(v), &Type::INT4) => {
                out.put_i32(int_fits(*v, i32::MIN.into(), i32::MAX.into())? as i32)
            }
            (Self::Int(v), &Type::INT8) => out.put_i64(*v),
            (Self::Int(v), &Type::OID) => out.put_u32(int_fits(*v, 0, u32::MAX.into())? as u32),
            (Self::Int(v), &Type::FLOAT4) => out.put_f32(*v as f32),
            (Self::Int(v), &Type::FLOAT8) => out.put_f64(*v as f64),
            (Self::Int(v), &Type::NUMERIC) => put_numeric(&v.to_string(), out)?,
            (Self::Bool(v), &Type::BOOL) => out.put_u8(u8::from(*v)),
            (Self::Float(v), &Type::FLOAT4) => out.put_f32(*v as f32),
            (Self::Float(v), &Type::FLOAT8) => out.put_f64(*v),
            (Self::Float(v), &Type::NUMERIC) => put_numeric(&float_decimal(*v), out)?,
            (Self::Numeric(s), &Type::NUMERIC) => put_numeric(s, out)?,
            (Self::Numeric(s) | Self::Money(s), &Type::MONEY) => out.put_i64(money_cents(s)?),
            (Self::Money(s), &Type::NUMERIC) => put_numeric(s, out)?,
            (Self::Numeric(s), &Type::INT2 | &Type::INT4 | &Type::INT8) => {
                let value: i64 = s
                    .trim()
                    .parse()
                    .map_err(|_| format!("`{s}` is not an integer"))?;
                Self::Int(value).put(ty, out)?
            }
            (Self::Numeric(s), &Type::FLOAT4 | &Type::FLOAT8) => {
                let value: f64 = s
                    .trim()
                    .parse()
                    .map_err(|_| format!("`{s}` is not a number"))?;
                Self::Float(value).put(ty, out)?
            }
            (Self::Numeric(s) | Self::Money(s) | Self::Uuid(s) | Self::Inet(s), _) if text_type => {
                out.put_slice(s.as_bytes())
            }
            (Self::Text(bytes), _) if text_type => {
                std::str::from_utf8(bytes).map_err(|_| "text is not UTF-8")?;
                out.put_slice(bytes)
            }
            (Self::Text(bytes), &Type::JSON) => out.put_slice(bytes),
            (Self::Text(bytes), &Type::JSONB) => {
                out.put_u8(1);
                out.put_slice(bytes)
            }
            (Self::Text(bytes), &Type::UUID) => {
                let text = std::str::from_utf8(bytes).map_err(|_| "text is not UTF-8")?;
                Self::Uuid(text).put(ty, out)?
            }
            (Self::Text(bytes), &Type::INET | &Type::CIDR) => {
                let text = std::str::from_utf8(bytes).map_err(|_| "text is not UTF-8")?;
                Self::Inet(text).put(ty, out)?
            }
            (Self::Bytes(bytes), &Type::BYTEA) => out.put_slice(bytes),
            (Self::Uuid(s), &Type::UUID) => {
                let uuid =
                    uuid::Uuid::parse_str(s.trim()).map_err(|_| format!("`{s}` is not a UUID"))?;
                out.put_slice(uuid.as_bytes())
            }
            (Self::Date(date), &Type::DATE) => out.put_i32(date_days(date)?),
            (Self::Time(time), &Type::TIME) => out.put_i64(time_micros(time)?),
            (Self::TimeTz(time), &Type::TIMETZ) => {
                out.put_i64(time_micros(&time.time)?);
                // PostgreSQL stores the offset as seconds west of UTC.
                let east = zone_seconds(&time.timesonze)?;
                out.put_i32(-(east as i32));
            }
            (Self::Timestamp(ts), &Type::TIMESTAMP | &Type::TIMESTAMPTZ) => {
                out.put_i64(timestamp_micros(ts)?)
            }
            (Self::TimestampTz(ts), &Type::TIMESTAMPTZ | &Type::TIMESTAMP) => {
                let local = timestamp_micros(&ts.timestamp)?;
                let utc = if local == i64::MAX || local == i64::MIN {
                    local
                } else {
                    local
                        .checked_sub(offset_seconds(&ts.offset) * 1_000_000)
                        .ok_or("the timestamp is out of range")?
                };
                out.put_i64(utc)
            }
            (Self::Inet(s), &Type::INET) => put_inet(s, false, out)?,
            (Self::Inet(s), &Type::CIDR) => put_inet(s, true, out)?,
            (Self::Mac(bytes, 6), &Type::MACADDR) => out.put_slice(&bytes[..6]),
            (Self::Mac(bytes, 8), &Type::MACADDR8) => out.put_slice(bytes),
            (Self::Point(point), &Type::POINT) => put_point(point, out),
            (Self::Box((lower_left, upper_right)), &Type::BOX) => {
                // PostgreSQL writes the upper-right corner first.
                put_point(upper_right, out);
                put_point(lower_left, out)
            }
            (Self::Lseg((start, end)), &Type::LSEG) => {
                put_point(start, out);
                put_point(end, out)
            }
            (Self::Line((start, end)) | Self::Lseg((start, end)), &Type::LINE) => {
                let (x1, y1) = (float_of(start.0), float_of(start.1));
                let (x2, y2) = (float_of(end.0), float_of(end.1));
                if x1 == x2 && y1 == y2 {
                    return fail("a line needs two different points");
                }
                out.put_f64(y2 - y1);
                out.put_f64(x1 - x2);
                out.put_f64(x2 * y1 - x1 * y2)
            }
            (Self::Circle((center, radius)), &Type::CIRCLE) => {
                put_point(center, out);
                out.put_f64(float_of(*radius))
            }
            (Self::Path(points), &Type::PATH) => {
                // An open path: the interface has no flag for closed ones.
                out.put_u8(0);
                put_points(points, out)?
            }
            (Self::Polygon(points) | Self::Path(points), &Type::POLYGON) => {
                put_points(points, out)?
            }
            (Self::Bits(declared, bytes), &Type::BIT | &Type::VARBIT) => {
                let bits = declared.unwrap_or((bytes.len() * 8) as u32);
                if bytes.len() != (bits as usize).div_ceil(8) {
                    return fail(format!(
                        "{bits} bits need {} bytes, not {}",
                        (bits as usize).div_ceil(8),
                        bytes.len()
                    ));
                }
                out.put_i32(i32::try_from(bits).map_err(|_| "too many bits")?);
                out.put_slice(bytes)
            }
            (Self::Lsn(lsn), &Type::PG_LSN) => out.put_u64(*lsn),
            (Self::Int2Vector(values), &Type::INT2_VECTOR) => {
                let elements: Vec<Scalar<'_>> =
                    values.iter().map(|v| Scalar::Int(i64::from(*v))).collect();
                // int2vector is a zero-based array.
                put_array(&elements, &Type::INT2, 0, out)?
            }
            (Self::Hstore(pairs), ty) if ty.name() == "hstore" => {
                out.put_i32(i32::try_from(pairs.len()).map_err(|_| "too many pairs")?);
                for (key, value) in pairs.iter() {
                    put_counted(key.as_bytes(), out)?;
                    match value {
                        Some(value) => put_counted(value.as_bytes(), out)?,
                        None => out.put_i32(-1),
                    }
                }
            }
            (_, ty) => {
                if let Kind::Domain(base) = ty.kind() {
                    return self.put(base, out);
                }
                return Err(mismatch());
            }
        }
        Ok(())
    }
}

fn put_counted(bytes: &[u8], out: &mut BytesMut) -> Result<(), BoxError> {
    out.put_i32(i32::try_from(bytes.len()).map_err(|_| "a value over 2 GiB")?);
    out.put_slice(bytes);
    Ok(())
}

/// A float as a plain decimal string (Rust's `Display` never uses an
/// exponent), or PostgreSQL's names for the special values.
fn float_decimal(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        value.to_string()
    }
}

/// A one-dimension array of `elements`, each written as `element_type`,
/// its first index `lower_bound`.
fn put_array(
    elements: &[Scalar<'_>],
    element_type: &Type,
    lower_bound: i32,
    out: &mut BytesMut,
) -> Result<(), BoxError> {
    out.put_i32(if elements.is_empty() { 0 } else { 1 });
    out.put_i32(0);
    out.put_u32(element_type.oid());
    if !elements.is_empty() {
        out.put_i32(i32::try_from(elements.len()).map_err(|_| "too many elements")?);
        out.put_i32(lower_bound);
    }
    for element in elements {
        let length_at = out.len();
        out.put_i32(0);
        element.put(element_type, out)?;
        let length =
            i32::try_from(out.len() - length_at - 4).map_err(|_| "an element over 2 GiB")?;
        out[length_at..length_at + 4].copy_from_slice(&length.to_be_bytes());
    }
    Ok(())
}

/// A parameter value as the guest gave it.
enum Shape<'a> {
    Null,
    One(Scalar<'a>),
    Many(Vec<Scalar<'a>>),
}

fn shape(value: &PgValue) -> Shape<'_> {
    use Scalar as S;
    use Shape::One;
    fn many<'a, T: 'a>(items: &'a [T], each: impl Fn(&'a T) -> Scalar<'a>) -> Shape<'a> {
        Shape::Many(items.iter().map(each).collect())
    }
    match value {
        PgValue::Null => Shape::Null,
        PgValue::BigInt(v) | PgValue::Int8(v) | PgValue::BigSerial(v) | PgValue::Serial8(v) => {
            One(S::Int(*v))
        }
        PgValue::TxidSnapshot(v) => One(S::Int(*v)),
        PgValue::Int8Array(v) => many(v, |x| S::Int(*x)),
        PgValue::Bool(v) | PgValue::Boolean(v) => One(S::Bool(*v)),
        PgValue::BoolArray(v) => many(v, |x| S::Bool(*x)),
        PgValue::Double(v) | PgValue::Float8(v) | PgValue::Real(v) | PgValue::Float4(v) => {
            One(S::Float(float_of(*v)))
        }
        PgValue::Float8Array(v) | PgValue::Float4Array(v) => many(v, |x| S::Float(float_of(*x))),
        PgValue::Integer(v) | PgValue::Int(v) | PgValue::Int4(v) => One(S::Int((*v).into())),
        PgValue::Int4Array(v) => many(v, |x| S::Int((*x).into())),
        PgValue::Serial(v) | PgValue::Serial4(v) => One(S::Int((*v).into())),
        PgValue::SmallInt(v) | PgValue::Int2(v) | PgValue::SmallSerial(v) | PgValue::Serial2(v) => {
            One(S::Int((*v).into()))
        }
        PgValue::Int2Array(v) => many(v, |x| S::Int((*x).into())),
        PgValue::Int2Vector(v) => One(S::Int2Vector(v)),
        PgValue::Int2VectorArray(v) => many(v, |x| S::Int2Vector(x)),
        PgValue::Numeric(v) | PgValue::Decimal(v) => One(S::Numeric(v)),
        PgValue::NumericArray(v) => many(v, |x| S::Numeric(x)),
        PgValue::Money(v) => One(S::Money(v)),
        PgValue::MoneyArray(v) => many(v, |x| S::Money(x)),
        PgValue::Bit((bits, bytes)) => One(S::Bits(Some(*bits), bytes)),
        PgValue::BitArray(v) => many(v, |(bits, bytes)| S::Bits(Some(*bits), bytes)),
        PgValue::BitVarying((bits, bytes)) | PgValue::Varbit((bits, bytes)) => {
            One(S::Bits(*bits, bytes))
        }
        PgValue::VarbitArray(v) => many(v, |(bits, bytes)| S::Bits(*bits, bytes)),
        PgValue::Bytea(v) => One(S::Bytes(v)),
        PgValue::ByteaArray(v) => many(v, |x| S::Bytes(x)),
        PgValue::Char((_, bytes)) => One(S::Text(bytes)),
        PgValue::CharArray(v) => many(v, |(_, bytes)| S::Text(bytes)),
        PgValue::Varchar((_, bytes)) => One(S::Text(bytes)),
        PgValue::VarcharArray(v) => many(v, |(_, bytes)| S::Text(bytes)),
        PgValue::Cidr(v) | PgValue::Inet(v) => One(S::Inet(v)),
        PgValue::CidrArray(v) | PgValue::InetArray(v) => many(v, |x| S::Inet(x)),
        PgValue::Macaddr(MacAddressEui48 { bytes }) => One(mac48(bytes)),
        PgValue::MacaddrArray(v) => many(v, |m| mac48(&m.bytes)),
        PgValue::Macaddr8(MacAddressEui64 { bytes }) => One(mac64(bytes)),
        PgValue::Macaddr8Array(v) => many(v, |m| mac64(&m.bytes)),
        PgValue::Box(v) => One(S::Box(v)),
        PgValue::BoxArray(v) => many(v, S::Box),
        PgValue::Circle(v) => One(S::Circle(v)),
        PgValue::CircleArray(v) => many(v, S::Circle),
        PgValue::Line(v) => One(S::Line(v)),
        PgValue::LineArray(v) => many(v, S::Line),
        PgValue::Lseg(v) => One(S::Lseg(v)),
        PgValue::LsegArray(v) => many(v, S::Lseg),
        PgValue::Path(v) => One(S::Path(v)),
        PgValue::PathArray(v) => many(v, |x| S::Path(x)),
        PgValue::Point(v) => One(S::Point(v)),
        PgValue::PointArray(v) => many(v, S::Point),
        PgValue::Polygon(v) => One(S::Polygon(v)),
        PgValue::PolygonArray(v) => many(v, |x| S::Polygon(x)),
        PgValue::Date(v) => One(S::Date(v)),
        PgValue::DateArray(v) => many(v, S::Date),
        PgValue::Time(v) => One(S::Time(v)),
        PgValue::TimeArray(v) => many(v, S::Time),
        PgValue::TimeTz(v) => One(S::TimeTz(v)),
        PgValue::TimeTzArray(v) => many(v, S::TimeTz),
        PgValue::Timestamp(v) => One(S::Timestamp(v)),
        PgValue::TimestampArray(v) => many(v, S::Timestamp),
        PgValue::TimestampTz(v) => One(S::TimestampTz(v)),
        PgValue::TimestampTzArray(v) => many(v, S::TimestampTz),
        PgValue::Json(v) | PgValue::Jsonb(v) => One(S::Text(v.as_bytes())),
        PgValue::JsonArray(v) | PgValue::JsonbArray(v) => many(v, |x| S::Text(x.as_bytes())),
        PgValue::PgLsn(v) => One(S::Lsn(*v)),
        PgValue::PgLsnArray(v) => many(v, |x| S::Lsn(*x)),
        PgValue::Name(v) | PgValue::Text(v) | PgValue::Xml(v) | PgValue::TsQuery(v) => {
            One(S::Text(v.as_bytes()))
        }
        PgValue::NameArray(v) | PgValue::TextArray(v) | PgValue::XmlArray(v) => {
            many(v, |x| S::Text(x.as_bytes()))
        }
        PgValue::Uuid(v) => One(S::Uuid(v)),
        PgValue::UuidArray(v) => many(v, |x| S::Uuid(x)),
        PgValue::Hstore(v) => One(S::Hstore(v)),
        // No binary form the interface can fill: refused with a hint by
        // `Param::to_sql`.
        PgValue::Interval(_)
        | PgValue::IntervalArray(_)
        | PgValue::PgSnapshot(_)
        | PgValue::TsVector(_) => Shape::Many(Vec::new()),
    }
}

fn mac48(&(a, b, c, d, e, f): &(u8, u8, u8, u8, u8, u8)) -> Scalar<'static> {
    Scalar::Mac([a, b, c, d, e, f, 0, 0], 6)
}

fn mac64(&(a, b, c, d, e, f, g, h): &(u8, u8, u8, u8, u8, u8, u8, u8)) -> Scalar<'static> {
    Scalar::Mac([a, b, c, d, e, f, g, h], 8)
}

/// A guest's parameter, encoded for the type the statement gives it.
#[derive(Debug)]
pub(crate) struct Param<'a>(pub(crate) &'a PgValue);

impl ToSql for Param<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match (shape(self.0), ty.kind()) {
            (Shape::Null, _) => return Ok(IsNull::Yes),
            (Shape::One(scalar), _) => scalar.put(ty, out)?,
            (Shape::Many(elements), Kind::Array(element_type)) if !unsupported(self.0) => {
                put_array(&elements, element_type, 1, out)?
            }
            (Shape::Many(_), _) if unsupported(self.0) => {
                return fail(format!(
                    "{} values cannot be sent; send text and cast it in SQL (`$1::text::{}`)",
                    variant_name(self.0),
                    ty.name()
                ));
            }
            (Shape::Many(_), _) => {
                return fail(format!(
                    "an array ({}) cannot be sent as `{}`",
                    variant_name(self.0),
                    ty.name()
                ));
            }
        }
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        // Whether a value fits is decided per value in `to_sql`.
        true
    }

    to_sql_checked!();
}

fn unsupported(value: &PgValue) -> bool {
    matches!(
        value,
        PgValue::Interval(_)
            | PgValue::IntervalArray(_)
            | PgValue::PgSnapshot(_)
            | PgValue::TsVector(_)
    )
}

fn variant_name(value: &PgValue) -> &'static str {
    match value {
        PgValue::Interval(_) => "interval",
        PgValue::IntervalArray(_) => "interval-array",
        PgValue::PgSnapshot(_) => "pg-snapshot",
        PgValue::TsVector(_) => "ts-vector",
        _ => "this variant's",
    }
}

// ---------------------------------------------------------------- columns

/// One column's value as the guest receives it.
pub(crate) struct Column(pub(crate) PgValue);

impl<'a> FromSql<'a> for Column {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        column(ty, raw).map(Column)
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(Column(PgValue::Null))
    }

    fn accepts(_: &Type) -> bool {
        // Types without a mapping fail in `from_sql`, naming the type.
        true
    }
}

fn text_of(raw: &[u8]) -> Result<String, BoxError> {
    Ok(std::str::from_utf8(raw)
        .map_err(|_| "a text value that is not UTF-8")?
        .to_string())
}

fn fixed<const N: usize>(raw: &[u8], what: &str) -> Result<[u8; N], BoxError> {
    <[u8; N]>::try_from(raw).map_err(|_| format!("{what} of {} bytes", raw.len()).into())
}

/// The guest's value for one non-NULL column of type `ty`.
fn column(ty: &Type, raw: &[u8]) -> Result<PgValue, BoxError> {
    if let Kind::Array(element) = ty.kind() {
        // int2vector is an array type with a variant of its own.
        if *ty != Type::INT2_VECTOR {
            return array_column(ty, element, raw);
        }
    }
    let mut cursor = raw;
    Ok(match *ty {
        Type::BOOL => PgValue::Bool(fixed::<1>(raw, "a bool")?[0] != 0),
        Type::INT2 => PgValue::Int2(i16::from_be_bytes(fixed(raw, "an int2")?)),
        Type::INT4 => PgValue::Int4(i32::from_be_bytes(fixed(raw, "an int4")?)),
        Type::INT8 => PgValue::Int8(i64::from_be_bytes(fixed(raw, "an int8")?)),
        Type::OID => PgValue::Int8(u32::from_be_bytes(fixed(raw, "an oid")?).into()),
        Type::FLOAT4 => PgValue::Float4(hashable_f32(f32::from_be_bytes(fixed(raw, "a float4")?))),
        Type::FLOAT8 => PgValue::Float8(hashable_f64(f64::from_be_bytes(fixed(raw, "a float8")?))),
        Type::NUMERIC => PgValue::Numeric(numeric_text(raw)?),
        Type::MONEY => PgValue::Money(money_text(i64::from_be_bytes(fixed(raw, "money")?))),
        Type::TEXT | Type::UNKNOWN => PgValue::Text(text_of(raw)?),
        // What `pg_sleep()` and other procedures return.
        Type::VOID => PgValue::Null,
        Type::VARCHAR => PgValue::Varchar((None, raw.to_vec())),
        Type::BPCHAR | Type::CHAR => PgValue::Char((raw.len() as u32, raw.to_vec())),
        Type::NAME => PgValue::Name(text_of(raw)?),
        Type::XML => PgValue::Xml(text_of(raw)?),
        Type::JSON => PgValue::Json(text_of(raw)?),
        Type::JSONB => match raw.split_first() {
            Some((1, rest)) => PgValue::Jsonb(text_of(rest)?),
            _ => return fail("a jsonb value of an unknown version"),
        },
        Type::BYTEA => PgValue::Bytea(raw.to_vec()),
        Type::UUID => PgValue::Uuid(uuid::Uuid::from_bytes(fixed(raw, "a uuid")?).to_string()),
        Type::DATE => PgValue::Date(date_of(i32::from_be_bytes(fixed(raw, "a date")?))?),
        Type::TIME => PgValue::Time(time_of(i64::from_be_bytes(fixed(raw, "a time")?))),
        Type::TIMETZ => {
            let bytes: [u8; 12] = fixed(raw, "a timetz")?;
            let micros = i64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
            let west = i32::from_be_bytes(bytes[8..].try_into().expect("4 bytes"));
            PgValue::TimeTz(TimeTz {
                timesonze: zone_text(-i64::from(west)),
                time: time_of(micros),
            })
        }
        Type::TIMESTAMP => PgValue::Timestamp(timestamp_of(i64::from_be_bytes(fixed(
            raw,
            "a timestamp",
        )?))?),
        Type::TIMESTAMPTZ => PgValue::TimestampTz(TimestampTz {
            timestamp: timestamp_of(i64::from_be_bytes(fixed(raw, "a timestamptz")?))?,
            offset: Offset::EasternHemisphereSecs(0),
        }),
        Type::INET => PgValue::Inet(inet_text(raw, false)?),
        Type::CIDR => PgValue::Cidr(inet_text(raw, true)?),
        Type::MACADDR => {
            let [a, b, c, d, e, f] = fixed::<6>(raw, "a macaddr")?;
            PgValue::Macaddr(MacAddressEui48 {
                bytes: (a, b, c, d, e, f),
            })
        }
        Type::MACADDR8 => {
            let [a, b, c, d, e, f, g, h] = fixed::<8>(raw, "a macaddr8")?;
            PgValue::Macaddr8(MacAddressEui64 {
                bytes: (a, b, c, d, e, f, g, h),
            })
        }
        Type::POINT => PgValue::Point(point_of(&mut cursor)?),
        Type::BOX => {
            let upper_right = point_of(&mut cursor)?;
            let lower_left = point_of(&mut cursor)?;
            PgValue::Box((lower_left, upper_right))
        }
        Type::LSEG => {
            let start = point_of(&mut cursor)?;
            PgValue::Lseg((start, point_of(&mut cursor)?))
        }
        Type::LINE => {
            if raw.len() != 24 {
                return fail("a line that is not three floats");
            }
            let (a, b, c) = (cursor.get_f64(), cursor.get_f64(), cursor.get_f64());
            PgValue::Line(line_points(a, b, c))
        }
        Type::CIRCLE => {
            let center = point_of(&mut cursor)?;
            if cursor.len() != 8 {
                return fail("a circle without its radius");
            }
            PgValue::Circle((center, hashable_f64(cursor.get_f64())))
        }
        Type::PATH => {
            if cursor.is_empty() {
                return fail("an empty path value");
            }
            cursor.get_u8();
            PgValue::Path(points_of(&mut cursor)?)
        }
        Type::POLYGON => PgValue::Polygon(points_of(&mut cursor)?),
        Type::BIT | Type::VARBIT => {
            if raw.len() < 4 {
                return fail("a bit string shorter than its length");
            }
            let bits = u32::try_from(cursor.get_i32()).map_err(|_| "a negative bit count")?;
            if cursor.len() != (bits as usize).div_ceil(8) {
                return fail("a bit string whose bytes do not match its length");
            }
            if *ty == Type::BIT {
                PgValue::Bit((bits, cursor.to_vec()))
            } else {
                PgValue::Varbit((Some(bits), cursor.to_vec()))
            }
        }
        Type::PG_LSN => PgValue::PgLsn(u64::from_be_bytes(fixed(raw, "a pg_lsn")?)),
        Type::INT2_VECTOR => match array_column(ty, &Type::INT2, raw)? {
            PgValue::Int2Array(values) => PgValue::Int2Vector(values),
            _ => return fail("an int2vector that is not int2s"),
        },
        ref other if other.name() == "hstore" => PgValue::Hstore(hstore_of(raw)?),
        ref other => match other.kind() {
            // An enum's value is its label.
            Kind::Enum(_) => PgValue::Text(text_of(raw)?),
            Kind::Domain(base) => return column(base, raw),
            _ => {
                return fail(format!(
                    "type `{}` has no pg-value; cast the column in SQL (for example `::text`)",
                    other.name()
                ));
            }
        },
    })
}

fn hstore_of(mut raw: &[u8]) -> Result<Vec<(String, Option<String>)>, BoxError> {
    let short = || -> BoxError { "an hstore shorter than it says".into() };
    let counted = |raw: &mut &[u8]| -> Result<Option<String>, BoxError> {
        if raw.len() < 4 {
            return Err(short());
        }
        let length = raw.get_i32();
        if length < 0 {
            return Ok(None);
        }
        let length = length as usize;
        if raw.len() < length {
            return Err(short());
        }
        let text = text_of(&raw[..length])?;
        raw.advance(length);
        Ok(Some(text))
    };
    if raw.len() < 4 {
        return Err(short());
    }
    let count = raw.get_i32().max(0) as usize;
    let mut pairs = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let key = counted(&mut raw)?.ok_or("an hstore key that is NULL")?;
        pairs.push((key, counted(&mut raw)?));
    }
    Ok(pairs)
}

/// A one-dimension array column as its `-array` variant.
fn array_column(ty: &Type, element: &Type, mut raw: &[u8]) -> Result<PgValue, BoxError> {
    if raw.len() < 12 {
        return fail("an array shorter than its header");
    }
    let dimensions = raw.get_i32();
    let _has_nulls = raw.get_i32();
    let _element_oid = raw.get_u32();
    let count = match dimensions {
        0 => 0,
        1 => {
            if raw.len() < 8 {
                return fail("an array shorter than its header");
            }
            let count = raw.get_i32();
            raw.get_i32();
            usize::try_from(count).map_err(|_| "a negative array length")?
        }
        _ => {
            return fail(format!(
                "`{}` with {dimensions} dimensions has no pg-value; one dimension only",
                ty.name()
            ));
        }
    };
    let mut values = Vec::with_capacity(count.min(4096));
    for _ in 0..count {
        if raw.len() < 4 {
            return fail("an array shorter than its elements");
        }
        let length = raw.get_i32();
        if length < 0 {
            return fail(format!(
                "`{}` holds NULL elements, which an array pg-value cannot; filter them in SQL (array_remove)",
                ty.name()
            ));
        }
        let length = length as usize;
        if raw.len() < length {
            return fail("an array shorter than its elements");
        }
        values.push(column(element, &raw[..length])?);
        raw.advance(length);
    }
    collect_array(element, values)
}

/// Elements of one type as that type's `-array` variant.
fn collect_array(element: &Type, values: Vec<PgValue>) -> Result<PgValue, BoxError> {
    macro_rules! gather {
        ($variant:ident, $array:ident) => {
            PgValue::$array(
                values
                    .into_iter()
                    .map(|v| match v {
                        PgValue::$variant(x) => Ok(x),
                        _ => Err("mixed array elements"),
                    })
                    .collect::<Result<_, _>>()?,
            )
        };
    }
    let element_kind = match element.kind() {
        Kind::Domain(base) => base.clone(),
        Kind::Enum(_) => Type::TEXT,
        _ => element.clone(),
    };
    Ok(match element_kind {
        Type::BOOL => gather!(Bool, BoolArray),
        Type::INT2 => gather!(Int2, Int2Array),
        Type::INT4 => gather!(Int4, Int4Array),
        Type::INT8 | Type::OID => gather!(Int8, Int8Array),
        Type::FLOAT4 => gather!(Float4, Float4Array),
        Type::FLOAT8 => gather!(Float8, Float8Array),
        Type::NUMERIC => gather!(Numeric, NumericArray),
        Type::MONEY => gather!(Money, MoneyArray),
        Type::TEXT | Type::UNKNOWN => gather!(Text, TextArray),
        Type::VARCHAR => gather!(Varchar, VarcharArray),
        Type::BPCHAR | Type::CHAR => gather!(Char, CharArray),
        Type::NAME => gather!(Name, NameArray),
        Type::XML => gather!(Xml, XmlArray),
        Type::JSON => gather!(Json, JsonArray),
        Type::JSONB => gather!(Jsonb, JsonbArray),
        Type::BYTEA => gather!(Bytea, ByteaArray),
        Type::UUID => gather!(Uuid, UuidArray),
        Type::DATE => gather!(Date, DateArray),
        Type::TIME => gather!(Time, TimeArray),
        Type::TIMETZ => gather!(TimeTz, TimeTzArray),
        Type::TIMESTAMP => gather!(Timestamp, TimestampArray),
        Type::TIMESTAMPTZ => gather!(TimestampTz, TimestampTzArray),
        Type::INET => gather!(Inet, InetArray),
        Type::CIDR => gather!(Cidr, CidrArray),
        Type::MACADDR => gather!(Macaddr, MacaddrArray),
        Type::MACADDR8 => gather!(Macaddr8, Macaddr8Array),
        Type::POINT => gather!(Point, PointArray),
        Type::BOX => gather!(Box, BoxArray),
        Type::LSEG => gather!(Lseg, LsegArray),
        Type::LINE => gather!(Line, LineArray),
        Type::CIRCLE => gather!(Circle, CircleArray),
        Type::PATH => gather!(Path, PathArray),
        Type::POLYGON => gather!(Polygon, PolygonArray),
        Type::BIT => gather!(Bit, BitArray),
        Type::VARBIT => gather!(Varbit, VarbitArray),
        Type::PG_LSN => gather!(PgLsn, PgLsnArray),
        Type::INT2_VECTOR => gather!(Int2Vector, Int2VectorArray),
        other => {
            return fail(format!(
                "arrays of `{}` have no pg-value; cast the column in SQL (for example `::text[]`)",
                other.name()
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashable_floats_round_trip() {
        for value in [
            0.0,
            -0.0,
            1.5,
            -2.25,
            1e300,
            5e-324,
            f64::MAX,
            f64::INFINITY,
        ] {
            assert_eq!(
                float_of(hashable_f64(value)).to_bits(),
                value.to_bits(),
                "{value}"
            );
        }
        assert!(float_of(hashable_f64(f64::NAN)).is_nan());
        for value in [0.5f32, -3.75, f32::MAX, f32::MIN_POSITIVE, f32::INFINITY] {
            assert_eq!(float_of(hashable_f32(value)) as f32, value, "{value}");
        }
        assert!(float_of(hashable_f32(f32::NAN)).is_nan());
        // The documented form: mantissa * 2^exponent * sign.
        let (mantissa, exponent, sign) = hashable_f64(-6.0);
        assert_eq!(sign, -1);
        assert_eq!(mantissa as f64 * 2f64.powi(exponent.into()), 6.0);
    }

    #[test]
    fn numerics_round_trip_through_the_binary_form() {
        for (text, back) in [
            ("0", "0"),
            ("12.50", "12.50"),
            ("-12345678.000100", "-12345678.000100"),
            ("0.0001", "0.0001"),
            ("100000000", "100000000"),
            ("+7", "7"),
            ("007.5", "7.5"),
            ("NaN", "NaN"),
            ("-Infinity", "-Infinity"),
            (
                "123456789012345678901234567890.123456789",
                "123456789012345678901234567890.123456789",
            ),
        ] {
            let mut out = BytesMut::new();
            put_numeric(text, &mut out).unwrap();
            assert_eq!(numeric_text(&out).unwrap(), back, "{text}");
        }
        for bad in ["", "1.2.3", "12a", "1e5", "-"] {
            assert!(put_numeric(bad, &mut BytesMut::new()).is_err(), "{bad}");
        }
    }

    #[test]
    fn money_has_two_places() {
        assert_eq!(money_cents("12.5").unwrap(), 1250);
        assert_eq!(money_cents("-0.07").unwrap(), -7);
        assert_eq!(money_text(-7), "-0.07");
        assert_eq!(money_text(123456), "1234.56");
        assert!(money_cents("1.234").is_err());
    }

    #[test]
    fn dates_and_times_map_to_the_postgres_epoch() {
        assert_eq!(date_days(&Date::Ymd((2000, 1, 2))).unwrap(), 1);
        assert_eq!(date_days(&Date::Ymd((1999, 12, 31))).unwrap(), -1);
        assert!(matches!(date_of(i32::MAX).unwrap(), Date::PositiveInfinity));
        assert!(date_days(&Date::Ymd((2023, 2, 30))).is_err());
        let time = Time {
            hour: 13,
            min: 5,
            sec: 7,
            micro: 250,
        };
        let micros = time_micros(&time).unwrap();
        assert_eq!(micros, ((13 * 60 + 5) * 60 + 7) * 1_000_000 + 250);
        let back = time_of(micros);
        assert_eq!((back.hour, back.min, back.sec, back.micro), (13, 5, 7, 250));
        let ts = timestamp_of(-1).unwrap();
        assert!(matches!(ts.date, Date::Ymd((1999, 12, 31))));
        assert_eq!((ts.time.hour, ts.time.micro), (23, 999_999));
        assert_eq!(zone_seconds("+05:30").unwrap(), 19_800);
        assert_eq!(zone_seconds("-0800").unwrap(), -28_800);
        assert_eq!(zone_text(-28_800), "-08:00");
        assert!(zone_seconds("Europe/Paris").is_err());
    }

    #[test]
    fn addresses_keep_their_prefix() {
        for (text, cidr, back) in [
            ("10.1.2.3", false, "10.1.2.3"),
            ("10.1.2.3/16", false, "10.1.2.3/16"),
            ("10.1.0.0/16", true, "10.1.0.0/16"),
            ("::1", false, "::1"),
        ] {
            let mut out = BytesMut::new();
            put_inet(text, cidr, &mut out).unwrap();
            assert_eq!(inet_text(&out, cidr).unwrap(), back);
        }
        assert!(put_inet("10.1.2.3/33", false, &mut BytesMut::new()).is_err());
    }

    #[test]
    fn a_value_that_does_not_fit_its_parameter_says_both_types() {
        let mut out = BytesMut::new();
        let error = Param(&PgValue::Int8(70_000))
            .to_sql(&Type::INT2, &mut out)
            .err()
            .unwrap();
        assert_eq!(error.to_string(), "70000 does not fit in `int2`");
        let error = Param(&PgValue::Bool(true))
            .to_sql(&Type::INT4, &mut out)
            .err()
            .unwrap();
        assert_eq!(error.to_string(), "a boolean cannot be sent as `int4`");
        let error = Param(&PgValue::Int4Array(vec![1]))
            .to_sql(&Type::INT4, &mut out)
            .err()
            .unwrap();
        assert!(error.to_string().starts_with("an array"), "{error}");
    }

    #[test]
    fn arrays_round_trip_with_their_element_type() {
        let value = PgValue::TextArray(vec!["a".into(), "bc".into()]);
        let mut out = BytesMut::new();
        Param(&value).to_sql(&Type::TEXT_ARRAY, &mut out).unwrap();
        match column(&Type::TEXT_ARRAY, &out).unwrap() {
            PgValue::TextArray(items) => assert_eq!(items, ["a", "bc"]),
            _ => panic!("not a text array"),
        }
        let mut out = BytesMut::new();
        Param(&PgValue::Int8Array(vec![]))
            .to_sql(&Type::INT8_ARRAY, &mut out)
            .unwrap();
        assert!(matches!(
            column(&Type::INT8_ARRAY, &out).unwrap(),
            PgValue::Int8Array(items) if items.is_empty()
        ));
    }
}
