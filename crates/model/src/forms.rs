//! Serde helpers for the two-shape fields wasmCloud's YAML uses: a short
//! string, or the full map. Written by hand rather than `untagged`, because
//! an untagged enum reports any mistake in the map as "did not match any
//! variant" and hides unknown keys.

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor, value::MapAccessDeserializer};
use std::marker::PhantomData;

/// Reads `T` from a string (through `from_str`) or from a map (through
/// `M`'s own `Deserialize`, so its errors and unknown keys are its own).
/// `expecting` completes "invalid type: …, expected …".
pub fn string_or_map<'de, D, T, M>(
    deserializer: D,
    expecting: &'static str,
    from_str: fn(&str) -> T,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    M: Deserialize<'de> + Into<T>,
{
    struct Form<T, M> {
        expecting: &'static str,
        from_str: fn(&str) -> T,
        map: PhantomData<M>,
    }
    impl<'de, T, M: Deserialize<'de> + Into<T>> Visitor<'de> for Form<T, M> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<T, E> {
            Ok((self.from_str)(text))
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            M::deserialize(MapAccessDeserializer::new(map)).map(Into::into)
        }
    }
    deserializer.deserialize_any(Form::<T, M> {
        expecting,
        from_str,
        map: PhantomData,
    })
}
