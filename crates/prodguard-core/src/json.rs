//! Compact JSON text on the hot paths — the answers of the JSON API (Wasm,
//! C) and the events of audit records: the bytes `serde_json::to_string`
//! writes, with less work per string.
//!
//! Both are mostly sentences (reasons, what to do next, messages), and
//! `serde_json` looks at a string a byte at a time; this writer looks for
//! the bytes that need escaping eight at a time and copies the runs between
//! them. The output is tested to equal `serde_json`'s for every shape and
//! every character a string may hold, and the record encoder's lines to
//! equal `encode_record`'s (which keeps `serde_json`) for every kind of event.

use std::fmt::{Display, Write as _};

use serde::ser::{self, Serialize};

/// Why a value could not be written (a map key that is not a string or an
/// integer, or a custom error from a `Serialize` impl).
#[derive(Debug)]
pub(crate) struct Error(String);

impl Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// `value` as compact JSON, byte for byte what `serde_json::to_string` gives.
pub(crate) fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, Error> {
    // Room for a typical answer: growing from nothing costs several copies.
    let mut out = Writer(String::with_capacity(2048));
    value.serialize(&mut out)?;
    Ok(out.0)
}

struct Writer(String);

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the eight bytes in `word` needs escaping in a JSON
/// string: a control character (below 0x20), `"` or `\`. Exact: the
/// "has a zero byte" test never reports a byte that is not there.
fn needs_escape(word: u64) -> bool {
    let has_zero = |x: u64| x.wrapping_sub(LOW_BITS) & !x & HIGH_BITS != 0;
    let below_space = word.wrapping_sub(LOW_BITS * 0x20) & !word & HIGH_BITS != 0;
    below_space
        || has_zero(word ^ (LOW_BITS * u64::from(b'"')))
        || has_zero(word ^ (LOW_BITS * u64::from(b'\\')))
}

fn is_escaped(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// The length of the longest prefix of `bytes` that needs no escaping.
fn plain_prefix(bytes: &[u8]) -> usize {
    let word_at = |at: usize| {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(eight)
    };
    let first_escaped = |from: usize| {
        bytes[from..]
            .iter()
            .position(|&b| is_escaped(b))
            .map_or(bytes.len(), |i| from + i)
    };
    if bytes.len() < 8 {
        return first_escaped(0);
    }
    let mut at = 0;
    while at + 8 <= bytes.len() {
        if needs_escape(word_at(at)) {
            return first_escaped(at);
        }
        at += 8;
    }
    // The last bytes, as the word that ends the text: the bytes it shares
    // with the word before were clean, so what it finds is after them.
    let last = bytes.len() - 8;
    if at < bytes.len() && needs_escape(word_at(last)) {
        return first_escaped(last);
    }
    bytes.len()
}

impl Writer {
    fn string(&mut self, text: &str) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.0.reserve(text.len() + 2);
        self.0.push('"');
        let mut rest = text;
        loop {
            // The byte at `plain`, if any, is ASCII: a char boundary.
            let (run, after) = rest.split_at(plain_prefix(rest.as_bytes()));
            self.0.push_str(run);
            let Some(&byte) = after.as_bytes().first() else {
                break;
            };
            match byte {
                b'"' => self.0.push_str("\\\""),
                b'\\' => self.0.push_str("\\\\"),
                b'\n' => self.0.push_str("\\n"),
                b'\r' => self.0.push_str("\\r"),
                b'\t' => self.0.push_str("\\t"),
                0x08 => self.0.push_str("\\b"),
                0x0c => self.0.push_str("\\f"),
                _ => {
                    self.0.push_str("\\u00");
                    self.0.push(char::from(HEX[usize::from(byte >> 4)]));
                    self.0.push(char::from(HEX[usize::from(byte & 0xf)]));
                }
            }
            rest = &after[1..];
        }
        self.0.push('"');
    }

    fn display(&mut self, value: impl Display) {
        // Writing to a String cannot fail.
        let _ = write!(self.0, "{value}");
    }

    fn float(&mut self, value: impl Serialize) -> Result<(), Error> {
        // No answer carries one: serde_json's own digits, not a second copy.
        let text = serde_json::to_string(&value).map_err(|e| Error(e.to_string()))?;
        self.0.push_str(&text);
        Ok(())
    }

    /// `{"variant":` before a variant's content.
    fn open_variant(&mut self, variant: &str) {
        self.0.push('{');
        self.string(variant);
        self.0.push(':');
    }
}

/// A sequence or map being written: whether an element was written yet.
struct Compound<'a> {
    writer: &'a mut Writer,
    first: bool,
}

impl Compound<'_> {
    fn comma(&mut self) {
        if !std::mem::take(&mut self.first) {
            self.writer.0.push(',');
        }
    }
}

macro_rules! display_numbers {
    ($($method:ident: $ty:ty),*) => {$(
        fn $method(self, v: $ty) -> Result<(), Error> {
            self.display(v);
            Ok(())
        }
    )*};
}

impl<'a> ser::Serializer for &'a mut Writer {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    display_numbers!(
        serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_i128: i128, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_u128: u128
    );

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.0.push_str(if v { "true" } else { "false" });
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.float(v)
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.float(v)
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.string(v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.string(v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        use ser::SerializeSeq;
        let mut seq = self.serialize_seq(Some(v.len()))?;
        for byte in v {
            seq.serialize_element(byte)?;
        }
        seq.end()
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.0.push_str("null");
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.open_variant(variant);
        value.serialize(&mut *self)?;
        self.0.push('}');
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a>, Error> {
        self.0.push('[');
        Ok(Compound {
            writer: self,
            first: true,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, Error> {
        self.open_variant(variant);
        self.serialize_seq(Some(len))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a>, Error> {
        self.0.push('{');
        Ok(Compound {
            writer: self,
            first: true,
        })
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Compound<'a>, Error> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, Error> {
        self.open_variant(variant);
        self.serialize_map(Some(len))
    }
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.comma();
        value.serialize(&mut *self.writer)
    }
    fn end(self) -> Result<(), Error> {
        self.writer.0.push(']');
        Ok(())
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<(), Error> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<(), Error> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleVariant for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<(), Error> {
        self.writer.0.push_str("]}");
        Ok(())
    }
}

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.comma();
        key.serialize(MapKey(&mut *self.writer))
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.writer.0.push(':');
        value.serialize(&mut *self.writer)
    }
    fn end(self) -> Result<(), Error> {
        self.writer.0.push('}');
        Ok(())
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.comma();
        self.writer.string(key);
        self.writer.0.push(':');
        value.serialize(&mut *self.writer)
    }
    fn end(self) -> Result<(), Error> {
        ser::SerializeMap::end(self)
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        ser::SerializeStruct::serialize_field(self, key, value)
    }
    fn end(self) -> Result<(), Error> {
        self.writer.0.push_str("}}");
        Ok(())
    }
}

/// Writes a map key: a string as it is, an integer quoted (as serde_json);
/// anything else is an error.
struct MapKey<'a>(&'a mut Writer);

fn key_must_be_a_string() -> Error {
    Error("key must be a string".into())
}

macro_rules! quoted_integer_keys {
    ($($method:ident: $ty:ty),*) => {$(
        fn $method(self, v: $ty) -> Result<(), Error> {
            self.0.0.push('"');
            self.0.display(v);
            self.0.0.push('"');
            Ok(())
        }
    )*};
}

impl MapKey<'_> {
    /// A finite float key, quoted (as serde_json).
    fn float(self, finite: bool, value: impl Serialize) -> Result<(), Error> {
        if !finite {
            return Err(Error("float key must be finite (got NaN or +/-inf)".into()));
        }
        self.0.0.push('"');
        self.0.float(value)?;
        self.0.0.push('"');
        Ok(())
    }
}

macro_rules! refused_keys {
    ($($method:ident($($arg:ty),*)),*) => {$(
        fn $method(self, $(_: $arg),*) -> Result<(), Error> {
            Err(key_must_be_a_string())
        }
    )*};
}

impl ser::Serializer for MapKey<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = ser::Impossible<(), Error>;
    type SerializeTuple = ser::Impossible<(), Error>;
    type SerializeTupleStruct = ser::Impossible<(), Error>;
    type SerializeTupleVariant = ser::Impossible<(), Error>;
    type SerializeMap = ser::Impossible<(), Error>;
    type SerializeStruct = ser::Impossible<(), Error>;
    type SerializeStructVariant = ser::Impossible<(), Error>;

    quoted_integer_keys!(
        serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_i128: i128, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_u128: u128
    );

    refused_keys!(
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str)
    );

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.0.string(if v { "true" } else { "false" });
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.float(v.is_finite(), v)
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.float(v.is_finite(), v)
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.0.string(v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.0.string(v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.0.string(variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(key_must_be_a_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;
    use std::collections::BTreeMap;

    fn same_as_serde_json<T: Serialize + ?Sized + std::fmt::Debug>(value: &T) {
        assert_eq!(
            to_string(value).unwrap(),
            serde_json::to_string(value).unwrap(),
            "{value:?}"
        );
    }

    #[test]
    fn every_character_a_string_can_hold_is_written_as_serde_json_writes_it() {
        // Each ASCII character and some wider ones, at every offset of an
        // 8-byte word, alone and beside multi-byte characters.
        let specials: Vec<char> = (0u8..0x80)
            .map(char::from)
            .chain(['é', 'ü', '日', '\u{1F600}', '\u{7ff}', '\u{ffff}'])
            .collect();
        for &c in &specials {
            for pad in 0..17 {
                let before = "a".repeat(pad);
                same_as_serde_json(&format!("{before}{c}"));
                same_as_serde_json(&format!("{before}{c}{before}é{c}"));
            }
        }
        let everything: String = specials.iter().collect();
        same_as_serde_json(&everything);
        same_as_serde_json(&everything.repeat(3));
        same_as_serde_json("");
    }

    #[test]
    fn needs_escape_is_exact_for_every_byte_in_every_lane() {
        for byte in 0u8..=255 {
            for lane in 0..8 {
                let mut word = [b'a'; 8];
                word[lane] = byte;
                assert_eq!(
                    needs_escape(u64::from_le_bytes(word)),
                    is_escaped(byte),
                    "{byte:#x} at {lane}"
                );
                // Beside bytes just either side of the lines it draws.
                let mut word = [0x20, b'#', b']', 0x80, 0xff, 0x21, b'[', 0x7f];
                word[lane] = byte;
                let any = word.iter().any(|&b| is_escaped(b));
                assert_eq!(needs_escape(u64::from_le_bytes(word)), any, "{word:?}");
            }
        }
    }

    #[test]
    fn values_of_every_shape_are_written_as_serde_json_writes_them() {
        #[derive(Debug, Serialize)]
        enum Kind {
            Unit,
            Newtype(u8),
            Tuple(i32, String),
            Struct { a: Option<bool>, b: Vec<u64> },
        }
        #[derive(Debug, Serialize)]
        struct Unit;
        #[derive(Debug, Serialize)]
        struct Wrapper(String);
        #[derive(Debug, Serialize)]
        struct Tuple(u8, char);
        #[derive(Debug, Serialize)]
        struct All {
            kinds: Vec<Kind>,
            unit: Unit,
            wrapper: Wrapper,
            tuple: Tuple,
            pair: (i8, i16),
            none: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            skipped: Option<String>,
            numbers: [i128; 3],
            big: u128,
            floats: [f64; 4],
            float32: f32,
            value: serde_json::Value,
            by_name: BTreeMap<String, Vec<String>>,
            by_number: BTreeMap<i64, bool>,
            by_kind: BTreeMap<crate::Tier, u8>,
            nothing: (),
        }
        let value = All {
            kinds: vec![
                Kind::Unit,
                Kind::Newtype(7),
                Kind::Tuple(-3, "t\"".into()),
                Kind::Struct {
                    a: Some(false),
                    b: vec![0, u64::MAX],
                },
                Kind::Struct { a: None, b: vec![] },
            ],
            unit: Unit,
            wrapper: Wrapper("w\n".into()),
            tuple: Tuple(255, '\u{1}'),
            pair: (i8::MIN, i16::MAX),
            none: None,
            skipped: None,
            numbers: [i128::MIN, 0, i128::MAX],
            big: u128::MAX,
            floats: [0.1, -2.5e300, f64::NAN, 3.0],
            float32: 1.5,
            value: serde_json::json!({"x": [1, "y", null, {"z": true}], "n": -0.5}),
            by_name: BTreeMap::from([("k\\ey".into(), vec!["v".into()]), (String::new(), vec![])]),
            by_number: BTreeMap::from([(-1, true), (9, false)]),
            by_kind: BTreeMap::from([(crate::Tier::Production, 1)]),
            nothing: (),
        };
        same_as_serde_json(&value);
        // Bytes, through serialize_bytes.
        #[derive(Debug)]
        struct Bytes(&'static [u8]);
        impl Serialize for Bytes {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        same_as_serde_json(&Bytes(b"\x00\xff"));
        // A map key that is neither a string nor an integer is an error, as in serde_json.
        let bad: BTreeMap<(u8, u8), u8> = BTreeMap::from([((1, 2), 3)]);
        assert!(to_string(&bad).is_err() && serde_json::to_string(&bad).is_err());
        // An optional key is written as what it holds, as in serde_json.
        same_as_serde_json(&BTreeMap::from([(Some("k".to_owned()), 1)]));
        // Booleans, chars and finite floats are quoted, as in serde_json.
        same_as_serde_json(&BTreeMap::from([(true, 3), (false, 4)]));
        same_as_serde_json(&BTreeMap::from([('k', 3)]));
        #[derive(Debug)]
        struct FloatKeys(Vec<(f64, u8)>);
        impl Serialize for FloatKeys {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
            }
        }
        same_as_serde_json(&FloatKeys(vec![(1.5, 1), (-2.25e-7, 2)]));
        let nan = FloatKeys(vec![(f64::NAN, 1)]);
        assert!(to_string(&nan).is_err() && serde_json::to_string(&nan).is_err());
    }
}
