//! Request fields read as the OpenAPI document says, where serde's defaults differ:
//! whole numbers as JSON clients write them (`5` or `5.0`: JSON Schema's `integer` admits
//! both, serde's integer types only the first), and objects only where an object is
//! documented (serde also reads a struct from an array of its fields in order).

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeSeed, Error, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Number;

/// Largest magnitude an `f64` holds exactly as a whole number.
const EXACT: f64 = 9_007_199_254_740_992.0;

fn from_number<T: TryFrom<i64>, E: Error>(n: Number) -> Result<T, E> {
    let w = n.as_i64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() <= EXACT)
            .map(|f| f as i64)
    });
    w.and_then(|w| T::try_from(w).ok()).ok_or_else(|| {
        E::custom(format!(
            "invalid value: {n}, expected a whole number in range"
        ))
    })
}

/// A required whole number.
pub fn whole<'de, D: Deserializer<'de>, T: TryFrom<i64>>(d: D) -> Result<T, D::Error> {
    from_number(Number::deserialize(d)?)
}

/// An optional whole number (absent or null: `None`).
pub fn whole_or_none<'de, D: Deserializer<'de>, T: TryFrom<i64>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Option::<Number>::deserialize(d)?
        .map(from_number)
        .transpose()
}

/// A merge patch's whole number: absent `None` (with `#[serde(default)]`), null
/// `Some(None)`, a number `Some(Some(n))`.
pub fn given_whole<'de, D: Deserializer<'de>, T: TryFrom<i64>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    whole_or_none(d).map(Some)
}

/// An optional object (absent or null: `None`); an array is refused. Read straight from
/// the input (building a `serde_json::Value` map first, then the struct from it, was a tenth
/// of a node's CPU under batch creates: every item has two such objects).
pub fn object_or_none<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    d.deserialize_option(OptionalObject(PhantomData))
}

struct OptionalObject<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for OptionalObject<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(Object(PhantomData)).map(Some)
    }
}

/// An object only: a struct read from its fields, never from an array of them.
struct Object<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for Object<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map))
    }
}

/// A list of objects only: each element a struct read from its fields (an element that is
/// not an object is refused, as by [`object_or_none`]).
pub fn objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    d.deserialize_seq(Objects(PhantomData))
}

struct Objects<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for Objects<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        // Not sized by the hint: a hostile length must not reserve memory.
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Object(PhantomData))? {
            items.push(item);
        }
        Ok(items)
    }
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for Object<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_map(self)
    }
}

/// A merge patch's object: absent `None` (with `#[serde(default)]`), null `Some(None)`.
pub fn given_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    object_or_none(d).map(Some)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Body {
        #[serde(default, deserialize_with = "super::whole_or_none")]
        at: Option<i64>,
        #[serde(default, deserialize_with = "super::given_whole")]
        jitter: Option<Option<u32>>,
        #[serde(default, deserialize_with = "super::object_or_none")]
        inner: Option<Inner>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Inner {
        #[serde(default, deserialize_with = "super::whole_or_none")]
        a: Option<u32>,
        b: Option<u32>,
    }

    fn parse(s: &str) -> Result<Body, serde_json::Error> {
        serde_json::from_str(s)
    }

    #[test]
    fn a_whole_float_is_a_whole_number() {
        let b = parse(r#"{"at": -3118.0, "jitter": 5.0}"#).unwrap();
        assert_eq!((b.at, b.jitter), (Some(-3118), Some(Some(5))));
        let b = parse(r#"{"at": 1700000000, "jitter": null}"#).unwrap();
        assert_eq!((b.at, b.jitter), (Some(1_700_000_000), Some(None)));
        let b = parse("{}").unwrap();
        assert_eq!((b.at, b.jitter), (None, None));
        let b = parse(r#"{"inner": {"a": 1}, "at": null}"#).unwrap();
        assert_eq!(
            b.inner,
            Some(Inner {
                a: Some(1),
                b: None
            })
        );
        assert_eq!(b.at, None);
    }

    #[test]
    fn fractions_strings_and_out_of_range_are_refused() {
        for bad in [
            r#"{"at": 1.5}"#,
            r#"{"at": "17"}"#,
            r#"{"at": 1e300}"#,
            r#"{"jitter": -1}"#,
            r#"{"jitter": 4294967296}"#,
            r#"{"inner": [1, 2]}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_object_is_read_from_an_object_only() {
        assert_eq!(parse(r#"{"inner": null}"#).unwrap().inner, None);
        assert_eq!(
            parse(r#"{"inner": {"b": 2, "a": 1.0}}"#).unwrap().inner,
            Some(Inner {
                a: Some(1),
                b: Some(2)
            })
        );
        for (bad, says) in [
            (
                r#"{"inner": [1, 2]}"#,
                "invalid type: sequence, expected an object",
            ),
            (
                r#"{"inner": "a"}"#,
                "invalid type: string \"a\", expected an object",
            ),
            (r#"{"inner": {"a": "x"}}"#, "invalid type: string \"x\""),
        ] {
            let e = parse(bad).err().unwrap().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        #[derive(Debug, Deserialize)]
        struct List {
            #[serde(deserialize_with = "super::objects")]
            items: Vec<Inner>,
        }
        let list: List = serde_json::from_str(r#"{"items": [{"a": 1.0}, {"b": 2}]}"#).unwrap();
        assert_eq!(list.items.len(), 2);
        assert_eq!(list.items[1].b, Some(2));
        for bad in [
            r#"{"items": [{"a": 1}, [1, 2]]}"#,
            r#"{"items": [null]}"#,
            r#"{"items": {"a": 1}}"#,
        ] {
            assert!(serde_json::from_str::<List>(bad).is_err(), "{bad}");
        }
        // Through a `Value` too (bodies re-keyed for their casing are parsed that way).
        let v: serde_json::Value = serde_json::from_str(r#"{"inner": [1]}"#).unwrap();
        assert!(serde_json::from_value::<Body>(v).is_err());
        let v: serde_json::Value = serde_json::from_str(r#"{"inner": {"a": 3}}"#).unwrap();
        assert_eq!(
            serde_json::from_value::<Body>(v).unwrap().inner,
            Some(Inner {
                a: Some(3),
                b: None
            })
        );
    }
}
