//! Decimal numbers for the responses that list many of them: a SEARCH or SORT answer over a
//! large mailbox is hundreds of thousands of numbers, so their formatting is most of the
//! work of writing it.
//!
//! A lone number looks its digits up in pairs (half the divisions of one digit at a time).
//! In a list, each number's digits are computed in the lanes of one register, with no
//! division and no table, and a number one above the one before (a run such as every
//! unseen message of a mailbox) whose last digit is not 9 just counts that digit up.

/// "00", "01", ... "99".
const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// How many decimal digits `n` has.
pub fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |l| l as usize + 1)
}

/// Writes the digits of `n` at the start of `out` and returns how many there are.
pub fn format(n: u64, out: &mut [u8; 20]) -> usize {
    let len = digits(n);
    let mut end = len;
    let mut n = n;
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        end -= 2;
        out[end..end + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        out[..2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        out[0] = b'0' + n as u8;
    }
    len
}

/// Appends ` n` for each of `ids` to `out`. Any order is right; an ascending list (what
/// SEARCH answers) is the fast case.
pub fn append_spaced(out: &mut Vec<u8>, ids: &[u32]) {
    // The widest any of them can be: the largest, or the last of an ascending list.
    let widest = ids.last().map_or(1, |&n| digits(u64::from(n)));
    let at = out.len();
    // Each number is built in a register (` ` and its digits, first byte lowest) and stored
    // as a whole 16 bytes, the position then advanced past its length; the slack of 16
    // holds the last store's overhang. Building it in a byte array instead costs a stall
    // per number, when the 16-byte load of the array waits for its single-byte stores. A
    // number wider than the last (a descending list) grows the buffer as it goes.
    out.resize(at + ids.len() * (widest + 1) + 16, 0);
    let mut word = 0u128;
    let mut len = 0;
    let mut previous: Option<u32> = None;
    let mut pos = at;
    for &id in ids {
        // One above the number before and not ending in 9: its last digit counts up.
        let last_digit = (word >> (8 * len)) as u8;
        if previous.is_some_and(|p| p.checked_add(1) == Some(id)) && last_digit != b'9' {
            word += 1 << (8 * len);
        } else {
            (word, len) = spaced_digits(id);
        }
        if out.len() < pos + 16 {
            out.resize(pos + 16, 0);
        }
        out[pos..pos + 16].copy_from_slice(&word.to_le_bytes());
        pos += 1 + len;
        previous = Some(id);
    }
    out.truncate(pos);
}

/// ` ` and the digits of `n` as the bytes of a u128, first byte lowest, and how many digits.
fn spaced_digits(n: u32) -> (u128, usize) {
    let (digits, len) = digits_word(n);
    (u128::from(b' ') | digits << 8, len)
}

/// The digits of `n` as the bytes of a u128, first byte lowest, and how many there are.
fn digits_word(n: u32) -> (u128, usize) {
    let len = digits(u64::from(n));
    let (top, low) = (n / 100_000_000, n % 100_000_000);
    let eight = u128::from(eight_digits(low));
    let word = match top {
        // No leading zeros: the first 8 - len of the eight go.
        0 => eight >> (8 * (8 - len)),
        1..=9 => u128::from(b'0' + top as u8) | eight << 8,
        _ => {
            let (first, second) = (b'0' + (top / 10) as u8, b'0' + (top % 10) as u8);
            u128::from(first) | u128::from(second) << 8 | eight << 16
        }
    };
    (word, len)
}

/// Appends a sequence set of inclusive `ranges`, `1:3,7,9:12` (a range `(n, n)` is `n`).
pub fn append_ranges(out: &mut Vec<u8>, ranges: impl IntoIterator<Item = (u32, u32)>) {
    for (i, (low, high)) in ranges.into_iter().enumerate() {
        push_number(out, if i == 0 { None } else { Some(b',') }, low);
        if high != low {
            push_number(out, Some(b':'), high);
        }
    }
}

/// Appends `prefix` and `n`: 16 bytes from a register, cut back to the length.
fn push_number(out: &mut Vec<u8>, prefix: Option<u8>, n: u32) {
    let (digits, len) = digits_word(n);
    let (word, len) = match prefix {
        Some(p) => (u128::from(p) | digits << 8, len + 1),
        None => (digits, len),
    };
    let at = out.len();
    out.extend_from_slice(&word.to_le_bytes());
    out.truncate(at + len);
}

/// The eight ASCII digits of `n` (below 10^8, with leading zeros), first digit in the
/// lowest byte, computed in lanes of one register: the halves of 4 digits, then of 2, then
/// the single digits, each split by a multiplication that divides every lane at once.
fn eight_digits(n: u32) -> u64 {
    // 32-bit lanes: the first four digits, the last four.
    let v = u64::from(n / 10_000) | u64::from(n % 10_000) << 32;
    // x / 100 for x < 10,000 is (x * 10,486) >> 20; no lane's product passes 2^32.
    let hundreds = ((v * 10_486) >> 20) & 0x0000_007f_0000_007f;
    // 16-bit lanes of two digits each.
    let v = hundreds | (v - hundreds * 100) << 16;
    // x / 10 for x < 100 is (x * 103) >> 10; no lane's product passes 2^16.
    let tens = ((v * 103) >> 10) & 0x000f_000f_000f_000f;
    let v = tens | (v - tens * 10) << 8;
    v | 0x3030_3030_3030_3030
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spaced(ids: &[u32]) -> String {
        let mut out = b"* SEARCH".to_vec();
        append_spaced(&mut out, ids);
        String::from_utf8(out).unwrap()
    }

    fn expected(ids: &[u32]) -> String {
        let mut s = String::from("* SEARCH");
        ids.iter().for_each(|id| s.push_str(&format!(" {id}")));
        s
    }

    #[test]
    fn numbers_are_their_decimal_digits() {
        let mut out = [0u8; 20];
        let mut cases = vec![0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 65_535, 1_000_000];
        cases.extend([u64::from(u32::MAX), u64::MAX, u64::MAX - 1, 10u64.pow(19)]);
        cases.extend((0..20).map(|p| 10u64.pow(p) - 1));
        for n in cases {
            let len = format(n, &mut out);
            assert_eq!(&out[..len], n.to_string().as_bytes(), "{n}");
        }
    }

    #[test]
    fn lists_read_as_their_numbers_in_order() {
        let runs: Vec<u32> = (1..2_000).chain(9_990..10_011).chain([99_999]).collect();
        assert_eq!(spaced(&runs), expected(&runs), "runs across every carry");
        let sparse: Vec<u32> = (0..5_000u32).map(|i| i * 7 + i % 3).collect();
        assert_eq!(spaced(&sparse), expected(&sparse));
        let edge = [0, 1, 9, 10, 4_294_967_294, 4_294_967_295];
        assert_eq!(
            spaced(&edge),
            expected(&edge),
            "the largest UID and no wrap after it"
        );
        let wrap = [4_294_967_295, 0, 1];
        assert_eq!(
            spaced(&wrap),
            expected(&wrap),
            "no count up past the largest"
        );
        let big: Vec<u32> = (0..40_000u32)
            .map(|i| i.wrapping_mul(2_654_435_761))
            .chain((1..10).map(|p| 10u32.pow(p)))
            .chain((1..10).map(|p| 10u32.pow(p) - 1))
            .collect();
        assert_eq!(spaced(&big), expected(&big), "every width");
        let descending: Vec<u32> = (0..3_000u32).rev().map(|i| i * 1_001).collect();
        assert_eq!(
            spaced(&descending),
            expected(&descending),
            "wider than the last"
        );
        assert_eq!(spaced(&[]), "* SEARCH");
    }

    #[test]
    fn sequence_sets_read_as_their_ranges() {
        let ranges = [
            (1, 3),
            (7, 7),
            (9, 12),
            (99, 100),
            (4_294_967_295, 4_294_967_295),
        ];
        let mut out = Vec::new();
        append_ranges(&mut out, ranges);
        assert_eq!(out, b"1:3,7,9:12,99:100,4294967295");
        let many: Vec<(u32, u32)> = (0..10_000u32)
            .map(|i| {
                (
                    i.wrapping_mul(2_654_435_761),
                    i.wrapping_mul(2_654_435_761) | 1,
                )
            })
            .collect();
        let mut out = Vec::new();
        append_ranges(&mut out, many.iter().copied());
        let want: Vec<String> = many
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}:{b}")
                }
            })
            .collect();
        assert_eq!(String::from_utf8(out).unwrap(), want.join(","));
        let mut out = Vec::new();
        append_ranges(&mut out, []);
        assert!(out.is_empty());
    }
}
