//! Which partition a user's mail lives in: the one function every layer uses (the runtime
//! to pick the executor, the cluster to pick the node, the tools to open the right partition).
//!
//! `partition = crc32c(lowercase(user)) mod P`. CRC-32C (Castagnoli) is fixed, documented and
//! identical on every machine and Rust version, so a user's partition never moves between
//! releases. The test pins values: a different answer would send users to a partition (and in
//! a cluster, a node) that does not hold their mail.

/// `crc32c(lowercase(user)) mod partitions`.
pub fn partition_of(user: &str, partitions: u32) -> u32 {
    let lower = user.to_lowercase();
    crc32c::crc32c(lower.as_bytes()) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CRC-32C computed bit by bit from the polynomial, independent of the crate.
    fn reference_crc(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0x82F6_3B78
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn reference_is_crc32c() {
        // The published check value of CRC-32C.
        assert_eq!(reference_crc(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn pinned_values() {
        // Fixed forever: these say where existing users' mail is. The same user in another
        // case maps to the same partition.
        let pinned = [
            ("demo", 256, 162),
            ("Demo", 256, 162),
            ("alice@example.com", 256, 225),
            ("Bob.Smith@Example.ORG", 4096, 2267),
            ("user42", 4096, 3350),
            ("\u{dc}n\u{ef}code@example.com", 1024, 542),
        ];
        for (user, partitions, expected) in pinned {
            assert_eq!(
                partition_of(user, partitions),
                expected,
                "{user} mod {partitions}"
            );
            let lower = user.to_lowercase();
            assert_eq!(
                reference_crc(lower.as_bytes()) % partitions,
                expected,
                "{user}"
            );
        }
        assert_eq!(reference_crc(b"demo"), 0x2D0D_CCA2);
    }
}
