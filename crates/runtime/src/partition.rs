//! Which partition a user belongs to and which executor owns it.
//!
//! `partition = crc32c(lowercase(user)) mod P` and `executor = partition mod executors`.
//! CRC-32C (Castagnoli) is fixed, documented and identical on every machine and Rust version,
//! so a user's partition never moves between releases; P is fixed when the data dir is made,
//! so changing the executor count moves no data.

/// The partition holding `user`'s mail.
pub fn partition_of(user: &str, partitions: u32) -> u32 {
    let lower = user.to_lowercase();
    crc32c::crc32c(lower.as_bytes()) % partitions.max(1)
}

/// The executor that owns `partition`.
pub fn executor_of(partition: u32, executors: usize) -> usize {
    partition as usize % executors.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_case_insensitive() {
        // The crate must agree with a bit-by-bit CRC-32C: a change here would move every
        // user's mail to another partition.
        assert_eq!(crc32c::crc32c(b"demo"), partition_crc_of_demo());
        assert_eq!(partition_of("Demo", 256), partition_of("demo", 256));
        assert_eq!(partition_of("demo", 256), partition_crc_of_demo() % 256);
    }

    fn partition_crc_of_demo() -> u32 {
        // Computed bit by bit from the CRC-32C polynomial, independent of the crate.
        let mut crc = !0u32;
        for &b in b"demo" {
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
    fn spreads_over_executors() {
        let mut seen = [0usize; 4];
        for i in 0..1000 {
            let p = partition_of(&format!("user{i}"), 256);
            seen[executor_of(p, 4)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 150), "{seen:?}");
    }
}
