//! Which partition a user belongs to (`ringmail_store::partition_of`, re-exported) and which
//! executor owns it: `executor = partition mod executors`. P is fixed when the data dir is
//! made, so changing the executor count moves no data.

pub use ringmail_store::partition_of;

/// The executor that owns `partition`.
pub fn executor_of(partition: u32, executors: usize) -> usize {
    partition as usize % executors.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

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
