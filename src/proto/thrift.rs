//! A small Thrift reader: the binary and compact protocols, enough to decode Jaeger's `Batch`
//! and the agent's `emitBatch` message. Written by hand because the only thing we need is
//! reading a handful of structs, and every read must be bounded and panic-free on hostile input:
//! container sizes are checked against the bytes left, nesting is capped, strings are UTF-8
//! checked, and every failure is a [`ThriftError`] naming what was being read.

/// Deepest struct/container nesting accepted when skipping unknown fields; Jaeger's own
/// structures nest four levels, so this only stops stack exhaustion on crafted input.
const MAX_DEPTH: usize = 32;

/// Malformed Thrift input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid thrift {protocol} at byte {offset}: {reason}")]
pub struct ThriftError {
    /// `binary` or `compact`.
    pub protocol: &'static str,
    /// Byte offset where reading failed.
    pub offset: usize,
    /// What was wrong.
    pub reason: String,
}

/// Thrift wire types, protocol-independent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TType {
    Bool,
    Byte,
    Double,
    I16,
    I32,
    I64,
    Binary,
    Struct,
    Map,
    Set,
    List,
    Uuid,
}

/// The reading operations both protocols offer; decoders of Thrift structs are written once
/// against this trait.
pub trait Protocol {
    /// Starts reading a struct.
    fn struct_begin(&mut self) -> Result<(), ThriftError>;
    /// Finishes a struct (after its STOP field).
    fn struct_end(&mut self) -> Result<(), ThriftError>;
    /// The next field's id and type, or `None` at the struct's STOP.
    fn field_begin(&mut self) -> Result<Option<(i16, TType)>, ThriftError>;
    /// A boolean value (in compact, a field's value travels in its header).
    fn read_bool(&mut self) -> Result<bool, ThriftError>;
    /// A signed byte.
    fn read_byte(&mut self) -> Result<i8, ThriftError>;
    /// A 16-bit integer.
    fn read_i16(&mut self) -> Result<i16, ThriftError>;
    /// A 32-bit integer.
    fn read_i32(&mut self) -> Result<i32, ThriftError>;
    /// A 64-bit integer.
    fn read_i64(&mut self) -> Result<i64, ThriftError>;
    /// A double.
    fn read_double(&mut self) -> Result<f64, ThriftError>;
    /// Raw bytes.
    fn read_binary(&mut self) -> Result<Vec<u8>, ThriftError>;
    /// A list or set header: element type and count (already checked against the bytes left).
    fn list_begin(&mut self) -> Result<(TType, usize), ThriftError>;
    /// A map header: key type, value type and count.
    fn map_begin(&mut self) -> Result<(TType, TType, usize), ThriftError>;
    /// An error at the current position.
    fn error(&self, reason: String) -> ThriftError;
    /// A message header: `(name, message type, sequence id)`.
    fn message_begin(&mut self) -> Result<(String, u8, i32), ThriftError>;

    /// A UTF-8 string.
    fn read_string(&mut self) -> Result<String, ThriftError> {
        let bytes = self.read_binary()?;
        String::from_utf8(bytes).map_err(|_| self.error("string is not valid UTF-8".into()))
    }

    /// Skips a value of type `ttype` (unknown fields are skipped, as Thrift requires).
    fn skip(&mut self, ttype: TType) -> Result<(), ThriftError> {
        self.skip_at(ttype, 0)
    }

    /// [`Protocol::skip`] with the current nesting depth.
    fn skip_at(&mut self, ttype: TType, depth: usize) -> Result<(), ThriftError> {
        if depth > MAX_DEPTH {
            return Err(self.error(format!("nesting deeper than {MAX_DEPTH}")));
        }
        match ttype {
            TType::Bool => self.read_bool().map(drop),
            TType::Byte => self.read_byte().map(drop),
            TType::Double => self.read_double().map(drop),
            TType::I16 => self.read_i16().map(drop),
            TType::I32 => self.read_i32().map(drop),
            TType::I64 => self.read_i64().map(drop),
            TType::Binary => self.read_binary().map(drop),
            TType::Uuid => {
                for _ in 0..16 {
                    self.read_byte()?;
                }
                Ok(())
            }
            TType::Struct => {
                self.struct_begin()?;
                while let Some((_, field_type)) = self.field_begin()? {
                    self.skip_at(field_type, depth + 1)?;
                }
                self.struct_end()
            }
            TType::List | TType::Set => {
                let (element_type, count) = self.list_begin()?;
                for _ in 0..count {
                    self.skip_at(element_type, depth + 1)?;
                }
                Ok(())
            }
            TType::Map => {
                let (key_type, value_type, count) = self.map_begin()?;
                for _ in 0..count {
                    self.skip_at(key_type, depth + 1)?;
                    self.skip_at(value_type, depth + 1)?;
                }
                Ok(())
            }
        }
    }
}

/// Reads a list of `T`, each with `read_item`, checking the element type.
pub fn read_list<P: Protocol, T>(
    protocol: &mut P,
    expected: TType,
    what: &str,
    mut read_item: impl FnMut(&mut P) -> Result<T, ThriftError>,
) -> Result<Vec<T>, ThriftError> {
    let (element_type, count) = protocol.list_begin()?;
    if count > 0 && element_type != expected {
        return Err(protocol.error(format!(
            "{what}: list of {element_type:?}, expected {expected:?}"
        )));
    }
    let mut items = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        items.push(read_item(protocol)?);
    }
    Ok(items)
}

/// Reads a struct into `T`'s default: `read_field` reads each field it knows (given its id and
/// wire type) and answers `false` for the others, which are skipped.
pub fn read_struct<P: Protocol, T: Default>(
    protocol: &mut P,
    mut read_field: impl FnMut(&mut P, &mut T, i16, TType) -> Result<bool, ThriftError>,
) -> Result<T, ThriftError> {
    protocol.struct_begin()?;
    let mut value = T::default();
    while let Some((id, ttype)) = protocol.field_begin()? {
        if !read_field(protocol, &mut value, id, ttype)? {
            protocol.skip(ttype)?;
        }
    }
    protocol.struct_end()?;
    Ok(value)
}

/// A struct field a reader knows: its id, its name for errors and its wire type.
pub type KnownField = (i16, &'static str, TType);

/// [`read_struct`] for a reader that refuses a known field of the wrong type, naming it:
/// `read_field` gets each field of `known` (its type checked); other fields are skipped.
pub fn read_known_fields<P: Protocol, T: Default>(
    protocol: &mut P,
    known: &[KnownField],
    mut read_field: impl FnMut(&mut P, &mut T, i16) -> Result<(), ThriftError>,
) -> Result<T, ThriftError> {
    read_struct(protocol, |protocol, value, id, ttype| {
        let Some((_, name, expected)) = known.iter().find(|(known_id, _, _)| *known_id == id)
        else {
            return Ok(false);
        };
        if ttype != *expected {
            return Err(protocol.error(format!("{name} is {ttype:?}, expected {expected:?}")));
        }
        read_field(protocol, value, id)?;
        Ok(true)
    })
}

/// A byte cursor shared by both protocols.
struct Cursor<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.offset)
    }

    fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        let end = self.offset.checked_add(count)?;
        let slice = self.bytes.get(self.offset..end)?;
        self.offset = end;
        Some(slice)
    }
}

// ---------------------------------------------------------------- binary

/// Thrift's binary protocol (big-endian fixed-width integers), as in Jaeger's HTTP collector
/// endpoint and the agent's :6832 port.
pub struct BinaryProtocol<'a> {
    cursor: Cursor<'a>,
}

impl<'a> BinaryProtocol<'a> {
    /// Reads from `bytes`.
    pub fn new(bytes: &'a [u8]) -> BinaryProtocol<'a> {
        BinaryProtocol {
            cursor: Cursor { bytes, offset: 0 },
        }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.cursor.remaining()
    }

    fn fixed<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ThriftError> {
        let slice = self
            .cursor
            .take(N)
            .ok_or_else(|| self.error(format!("truncated {what}")))?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn ttype(&self, code: u8) -> Result<TType, ThriftError> {
        Ok(match code {
            2 => TType::Bool,
            3 => TType::Byte,
            4 => TType::Double,
            6 => TType::I16,
            8 => TType::I32,
            10 => TType::I64,
            11 => TType::Binary,
            12 => TType::Struct,
            13 => TType::Map,
            14 => TType::Set,
            15 => TType::List,
            16 => TType::Uuid,
            other => return Err(self.error(format!("unknown binary type {other}"))),
        })
    }

    fn size(&mut self, what: &str, minimum_element_bytes: usize) -> Result<usize, ThriftError> {
        let size = self.read_i32()?;
        let size = usize::try_from(size).map_err(|_| self.error(format!("negative {what}")))?;
        if size.saturating_mul(minimum_element_bytes.max(1)) > self.remaining() {
            return Err(self.error(format!(
                "{what} of {size} is larger than the {} bytes left",
                self.remaining()
            )));
        }
        Ok(size)
    }
}

fn binary_width(ttype: TType) -> usize {
    match ttype {
        TType::Bool | TType::Byte => 1,
        TType::I16 => 2,
        TType::I32 | TType::Binary | TType::List | TType::Set => 4,
        TType::Double | TType::I64 => 8,
        TType::Map => 6,
        TType::Uuid => 16,
        TType::Struct => 1,
    }
}

impl Protocol for BinaryProtocol<'_> {
    fn message_begin(&mut self) -> Result<(String, u8, i32), ThriftError> {
        let first = self.read_i32()?;
        if first < 0 {
            // Strict header: the version in the high half, the message type in the low byte.
            let version = first as u32 & 0xffff_0000;
            if version != 0x8001_0000 {
                return Err(self.error(format!(
                    "binary protocol version {version:#x} is not 0x80010000"
                )));
            }
            let message_type = (first & 0xff) as u8;
            let name = self.read_string()?;
            let sequence_id = self.read_i32()?;
            return Ok((name, message_type, sequence_id));
        }
        // Old header without a version: the name's length comes first.
        let length = first as usize;
        let name = self
            .cursor
            .take(length)
            .ok_or_else(|| self.error("truncated message name".into()))?;
        let name = String::from_utf8(name.to_vec())
            .map_err(|_| self.error("message name is not valid UTF-8".into()))?;
        let [message_type] = self.fixed::<1>("message type")?;
        let sequence_id = self.read_i32()?;
        Ok((name, message_type, sequence_id))
    }

    fn struct_begin(&mut self) -> Result<(), ThriftError> {
        Ok(())
    }

    fn struct_end(&mut self) -> Result<(), ThriftError> {
        Ok(())
    }

    fn field_begin(&mut self) -> Result<Option<(i16, TType)>, ThriftError> {
        let [code] = self.fixed::<1>("field header")?;
        if code == 0 {
            return Ok(None);
        }
        let ttype = self.ttype(code)?;
        let id = self.read_i16()?;
        Ok(Some((id, ttype)))
    }

    fn read_bool(&mut self) -> Result<bool, ThriftError> {
        Ok(self.fixed::<1>("bool")?[0] != 0)
    }

    fn read_byte(&mut self) -> Result<i8, ThriftError> {
        Ok(i8::from_be_bytes(self.fixed::<1>("byte")?))
    }

    fn read_i16(&mut self) -> Result<i16, ThriftError> {
        Ok(i16::from_be_bytes(self.fixed::<2>("i16")?))
    }

    fn read_i32(&mut self) -> Result<i32, ThriftError> {
        Ok(i32::from_be_bytes(self.fixed::<4>("i32")?))
    }

    fn read_i64(&mut self) -> Result<i64, ThriftError> {
        Ok(i64::from_be_bytes(self.fixed::<8>("i64")?))
    }

    fn read_double(&mut self) -> Result<f64, ThriftError> {
        Ok(f64::from_be_bytes(self.fixed::<8>("double")?))
    }

    fn read_binary(&mut self) -> Result<Vec<u8>, ThriftError> {
        let length = self.size("string length", 1)?;
        let bytes = self
            .cursor
            .take(length)
            .ok_or_else(|| self.error("truncated string".into()))?;
        Ok(bytes.to_vec())
    }

    fn list_begin(&mut self) -> Result<(TType, usize), ThriftError> {
        let [code] = self.fixed::<1>("list header")?;
        let element_type = self.ttype(code)?;
        let count = self.size("list size", binary_width(element_type))?;
        Ok((element_type, count))
    }

    fn map_begin(&mut self) -> Result<(TType, TType, usize), ThriftError> {
        let [key_code, value_code] = self.fixed::<2>("map header")?;
        let key_type = self.ttype(key_code)?;
        let value_type = self.ttype(value_code)?;
        let count = self.size(
            "map size",
            binary_width(key_type) + binary_width(value_type),
        )?;
        Ok((key_type, value_type, count))
    }

    fn error(&self, reason: String) -> ThriftError {
        ThriftError {
            protocol: "binary",
            offset: self.cursor.offset,
            reason,
        }
    }
}

// ---------------------------------------------------------------- compact

/// Thrift's compact protocol (zigzag varints, field-id deltas), as the Jaeger agent's :6831
/// UDP port receives it.
pub struct CompactProtocol<'a> {
    cursor: Cursor<'a>,
    /// Field id of the previous field, per open struct (ids are sent as deltas).
    last_field_ids: Vec<i16>,
    last_field_id: i16,
    /// A boolean field carries its value in the field header; held until `read_bool`.
    pending_bool: Option<bool>,
}

/// Message type of a Thrift `oneway` call.
pub const MESSAGE_ONEWAY: u8 = 4;
/// Message type of a normal call.
pub const MESSAGE_CALL: u8 = 1;

impl<'a> CompactProtocol<'a> {
    /// Reads from `bytes`.
    pub fn new(bytes: &'a [u8]) -> CompactProtocol<'a> {
        CompactProtocol {
            cursor: Cursor { bytes, offset: 0 },
            last_field_ids: Vec::new(),
            last_field_id: 0,
            pending_bool: None,
        }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.cursor.remaining()
    }

    fn byte(&mut self, what: &str) -> Result<u8, ThriftError> {
        self.cursor
            .take(1)
            .map(|slice| slice[0])
            .ok_or_else(|| self.error(format!("truncated {what}")))
    }

    fn varint(&mut self, what: &str) -> Result<u64, ThriftError> {
        let mut value: u64 = 0;
        for index in 0..10 {
            let byte = self.byte(what)?;
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.error(format!("{what}: varint longer than 10 bytes")))
    }

    fn ttype(&self, code: u8) -> Result<TType, ThriftError> {
        Ok(match code {
            1 | 2 => TType::Bool,
            3 => TType::Byte,
            4 => TType::I16,
            5 => TType::I32,
            6 => TType::I64,
            7 => TType::Double,
            8 => TType::Binary,
            9 => TType::List,
            10 => TType::Set,
            11 => TType::Map,
            12 => TType::Struct,
            13 => TType::Uuid,
            other => return Err(self.error(format!("unknown compact type {other}"))),
        })
    }

    fn size(&mut self, what: &str, count: u64) -> Result<usize, ThriftError> {
        // Every element of a compact container takes at least one byte, which bounds counts.
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        if count > self.remaining() {
            return Err(self.error(format!(
                "{what} of {count} is larger than the {} bytes left",
                self.remaining()
            )));
        }
        Ok(count)
    }
}

fn zigzag32(value: u64) -> i32 {
    let value = value as u32;
    ((value >> 1) as i32) ^ -((value & 1) as i32)
}

fn zigzag64(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

impl Protocol for CompactProtocol<'_> {
    fn message_begin(&mut self) -> Result<(String, u8, i32), ThriftError> {
        let protocol_id = self.byte("protocol id")?;
        if protocol_id != 0x82 {
            return Err(self.error(format!(
                "protocol id {protocol_id:#x} is not compact (0x82)"
            )));
        }
        let version_and_type = self.byte("message version")?;
        if version_and_type & 0x1f != 1 {
            return Err(self.error(format!(
                "compact protocol version {} is not 1",
                version_and_type & 0x1f
            )));
        }
        let message_type = version_and_type >> 5;
        let sequence_id = zigzag32(self.varint("sequence id")?);
        let name = self.read_string()?;
        Ok((name, message_type, sequence_id))
    }

    fn struct_begin(&mut self) -> Result<(), ThriftError> {
        if self.last_field_ids.len() > MAX_DEPTH {
            return Err(self.error(format!("nesting deeper than {MAX_DEPTH}")));
        }
        self.last_field_ids.push(self.last_field_id);
        self.last_field_id = 0;
        Ok(())
    }

    fn struct_end(&mut self) -> Result<(), ThriftError> {
        self.last_field_id = self
            .last_field_ids
            .pop()
            .ok_or_else(|| self.error("struct end without a struct".into()))?;
        Ok(())
    }

    fn field_begin(&mut self) -> Result<Option<(i16, TType)>, ThriftError> {
        let header = self.byte("field header")?;
        let code = header & 0x0f;
        if code == 0 {
            return Ok(None);
        }
        let ttype = self.ttype(code)?;
        let delta = header >> 4;
        let id = if delta == 0 {
            let raw = zigzag32(self.varint("field id")?);
            i16::try_from(raw).map_err(|_| self.error(format!("field id {raw} out of range")))?
        } else {
            self.last_field_id.wrapping_add(i16::from(delta))
        };
        self.last_field_id = id;
        if ttype == TType::Bool {
            self.pending_bool = Some(code == 1);
        }
        Ok(Some((id, ttype)))
    }

    fn read_bool(&mut self) -> Result<bool, ThriftError> {
        if let Some(value) = self.pending_bool.take() {
            return Ok(value);
        }
        // Inside containers a bool is one byte: 1 is true (2 or 0 is false).
        Ok(self.byte("bool")? == 1)
    }

    fn read_byte(&mut self) -> Result<i8, ThriftError> {
        Ok(self.byte("byte")? as i8)
    }

    fn read_i16(&mut self) -> Result<i16, ThriftError> {
        let raw = zigzag32(self.varint("i16")?);
        i16::try_from(raw).map_err(|_| self.error(format!("i16 {raw} out of range")))
    }

    fn read_i32(&mut self) -> Result<i32, ThriftError> {
        Ok(zigzag32(self.varint("i32")?))
    }

    fn read_i64(&mut self) -> Result<i64, ThriftError> {
        Ok(zigzag64(self.varint("i64")?))
    }

    fn read_double(&mut self) -> Result<f64, ThriftError> {
        let slice = self
            .cursor
            .take(8)
            .ok_or_else(|| self.error("truncated double".into()))?;
        let mut raw = [0u8; 8];
        raw.copy_from_slice(slice);
        Ok(f64::from_le_bytes(raw))
    }

    fn read_binary(&mut self) -> Result<Vec<u8>, ThriftError> {
        let length = self.varint("string length")?;
        let length = self.size("string length", length)?;
        let bytes = self
            .cursor
            .take(length)
            .ok_or_else(|| self.error("truncated string".into()))?;
        Ok(bytes.to_vec())
    }

    fn list_begin(&mut self) -> Result<(TType, usize), ThriftError> {
        let header = self.byte("list header")?;
        let element_type = self.ttype(header & 0x0f)?;
        let short_size = header >> 4;
        let count = if short_size == 15 {
            self.varint("list size")?
        } else {
            u64::from(short_size)
        };
        let count = self.size("list size", count)?;
        Ok((element_type, count))
    }

    fn map_begin(&mut self) -> Result<(TType, TType, usize), ThriftError> {
        let count = self.varint("map size")?;
        if count == 0 {
            return Ok((TType::Binary, TType::Binary, 0));
        }
        let count = self.size("map size", count)?;
        let types = self.byte("map types")?;
        let key_type = self.ttype(types >> 4)?;
        let value_type = self.ttype(types & 0x0f)?;
        Ok((key_type, value_type, count))
    }

    fn error(&self, reason: String) -> ThriftError {
        ThriftError {
            protocol: "compact",
            offset: self.cursor.offset,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn binary_reads_fields_and_stops() {
        // struct { 1: i64 = 5, 2: string = "ab" } STOP
        let bytes = [
            10, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 11, 0, 2, 0, 0, 0, 2, b'a', b'b', 0,
        ];
        let mut protocol = BinaryProtocol::new(&bytes);
        protocol.struct_begin().unwrap();
        assert_eq!(protocol.field_begin().unwrap(), Some((1, TType::I64)));
        assert_eq!(protocol.read_i64().unwrap(), 5);
        assert_eq!(protocol.field_begin().unwrap(), Some((2, TType::Binary)));
        assert_eq!(protocol.read_string().unwrap(), "ab");
        assert_eq!(protocol.field_begin().unwrap(), None);
    }

    #[test]
    fn compact_reads_deltas_bools_and_zigzag() {
        // field 1 i64 = -3 (zigzag 5), field 3 bool true, field 20 (long form) i32 = 7, STOP
        let bytes = [0x16, 0x05, 0x21, 0x05, 40, 14, 0x00];
        let mut protocol = CompactProtocol::new(&bytes);
        protocol.struct_begin().unwrap();
        assert_eq!(protocol.field_begin().unwrap(), Some((1, TType::I64)));
        assert_eq!(protocol.read_i64().unwrap(), -3);
        assert_eq!(protocol.field_begin().unwrap(), Some((3, TType::Bool)));
        assert!(protocol.read_bool().unwrap());
        assert_eq!(protocol.field_begin().unwrap(), Some((20, TType::I32)));
        assert_eq!(protocol.read_i32().unwrap(), 7);
        assert_eq!(protocol.field_begin().unwrap(), None);
        protocol.struct_end().unwrap();
    }

    #[test]
    fn oversized_containers_are_refused_before_allocating() {
        // binary list of i64 claiming 2^31-1 elements
        let bytes = [15, 10, 0x7f, 0xff, 0xff, 0xff];
        let error = BinaryProtocol::new(&bytes).list_begin().unwrap_err();
        assert!(error.reason.contains("larger than"), "{error}");
        // compact string claiming 1000 bytes
        let bytes = [0xe8, 0x07, b'x'];
        let error = CompactProtocol::new(&bytes).read_binary().unwrap_err();
        assert!(error.reason.contains("larger than"), "{error}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        // compact: struct field 1 of type struct, repeated 100 times
        let bytes = vec![0x1c; 100];
        let mut protocol = CompactProtocol::new(&bytes);
        let error = protocol.skip(TType::Struct).unwrap_err();
        assert!(error.reason.contains("nesting"), "{error}");
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = BinaryProtocol::new(&bytes).skip(TType::Struct);
            let mut compact = CompactProtocol::new(&bytes);
            let _ = compact.skip(TType::Struct);
            let _ = CompactProtocol::new(&bytes).message_begin();
        }
    }
}
