//! The Confluent wire format: one magic byte `0`, the schema id as a 4-byte
//! big-endian unsigned integer, then the Avro binary encoding of the datum
//! (no Avro object container header).
//!
//! Source: Confluent documentation, "Schema Registry: Wire format"
//! (<https://docs.confluent.io/platform/current/schema-registry/fundamentals/serdes-develop/index.html#wire-format>).

/// The first byte of every Confluent-framed record.
pub const MAGIC_BYTE: u8 = 0;

/// The length of the frame before the Avro body: magic byte + schema id (5 bytes).
pub const HEADER_LEN: usize = 5;

/// Bytes that are not in the Confluent wire format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Fewer than 5 bytes: no room for the magic byte and the schema id.
    #[error(
        "{len} bytes is too short for the Confluent wire format (magic byte + 4-byte schema id)"
    )]
    TooShort {
        /// The length of what was read, in bytes.
        len: usize,
    },
    /// The first byte is not the magic byte `0`: the record was not written
    /// by a Schema Registry serializer (plain JSON starts with `{`, 0x7b).
    #[error("unknown magic byte 0x{found:02x} (expected 0x00): not written by a Schema Registry serializer")]
    NoMagicByte {
        /// The first byte found.
        found: u8,
    },
}

/// Frames an Avro body: `[0, id (4 bytes, big-endian), body...]`.
pub fn encode(schema_id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Splits framed bytes into the schema id and the Avro body.
///
/// # Errors
/// [`WireError`] when the bytes are shorter than 5 or do not start with
/// the magic byte.
pub fn decode(bytes: &[u8]) -> Result<(u32, &[u8]), WireError> {
    if bytes.len() < HEADER_LEN {
        return Err(WireError::TooShort { len: bytes.len() });
    }
    if bytes[0] != MAGIC_BYTE {
        return Err(WireError::NoMagicByte { found: bytes[0] });
    }
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    Ok((id, &bytes[HEADER_LEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_unframes() {
        let framed = encode(0x0102_0304, b"\x02a");
        assert_eq!(framed, [0, 1, 2, 3, 4, 2, b'a']);
        assert_eq!(decode(&framed), Ok((0x0102_0304, &b"\x02a"[..])));
    }

    #[test]
    fn refuses_json_and_short_input() {
        assert_eq!(
            decode(b"{\"a\":1}"),
            Err(WireError::NoMagicByte { found: b'{' })
        );
        assert_eq!(decode(&[0, 0, 1]), Err(WireError::TooShort { len: 3 }));
    }
}
