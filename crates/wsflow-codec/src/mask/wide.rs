//! Masking with the widest vector registers the CPU has, chosen at run time.
//!
//! The portable loop in the parent module XORs 16 bytes at a time, which is all the baseline
//! x86-64 target (SSE2) lets the compiler use. Most x86-64 CPUs in service have 32-byte (AVX2)
//! or 64-byte (AVX-512) registers; compiling the same loop once more with those features
//! enabled makes the compiler use them. On a 64 KiB frame that halves the time spent unmasking
//! (`cargo bench --bench codec -- mask_in_place`).
//!
//! Payloads from 128 to 255 bytes, too short for aligned blocks to pay, take 64-byte blocks
//! wherever they fall on CPUs with AVX-512 of Ice Lake or later, then the narrow tail. That
//! path starts at two blocks: one block and a tail took about 1 ns longer than the 16-byte
//! loop from 64 to 112 bytes, while 128 to 255 bytes take 0.74-0.92 of its time. It stops at
//! 256 bytes: from about 500 bytes on, 64-byte accesses that straddle two cache
//! lines cost more than aligning the blocks saves (on a 2-core Xeon, Sapphire Rapids, 1 KiB
//! took 21 ns unaligned against 12 ns aligned, timing both in turn in one process), and a
//! byte-masked load and store for the tail, tried too, took about 6 ns, longer than the
//! narrow loop.
//!
//! This is the only module of the crate besides `utf8_bytes` and `utf8::wide` with `unsafe`
//! code: the calls to functions compiled for a CPU feature, each made only after
//! `is_x86_feature_detected!` has confirmed the running CPU has that feature, and in them the
//! unaligned vector loads and stores. The tests compare every path with the byte-at-a-time
//! reference on every alignment, and check that no byte around the buffer changes.
#![allow(unsafe_code)]

/// Below this length (two 64-byte registers) the 16-byte loop is faster: one 64-byte block
/// and the narrow tail do not make up for calling into the AVX-512 code.
pub(super) const MIN_WIDE_LEN: usize = 128;

/// Below this length the alignment and vector setup of the blocks path (`wide_blocks`) cost
/// more than they save; on Ice Lake and later the shorter payloads from `MIN_WIDE_LEN` on
/// take the same blocks unaligned instead.
const MIN_BLOCKS_LEN: usize = 256;

/// Masks all of `buf` (starting at key index 0 of `key`) with the widest registers this CPU
/// has: below 256 bytes on Ice Lake and later, unaligned 64-byte blocks and the narrow tail;
/// otherwise the bytes up to the first 64-byte boundary and the tail after the last one
/// through the narrow path, the aligned blocks in between with AVX-512 or AVX2. Returns
/// false, having done nothing, where no wide path applies.
#[inline]
pub(super) fn apply_mask_wide(buf: &mut [u8], key: [u8; 4]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if buf.len() < MIN_BLOCKS_LEN && has_short_block_path() {
        // Too short for aligning to pay: the blocks wherever they fall, then the tail.
        // SAFETY: the running CPU supports AVX-512F, the only feature the function is
        // compiled for.
        let done = unsafe { mask_blocks_avx512(buf, key) };
        // `done` is a multiple of 64, so the tail starts at key index 0.
        super::apply_mask_narrow(&mut buf[done..], key);
        return true;
    }
    if buf.len() < MIN_BLOCKS_LEN {
        return false;
    }
    let Some(blocks) = wide_blocks() else {
        return false;
    };
    // Aligned blocks never straddle two cache lines, which unaligned 64-byte accesses do.
    let head_len = buf.as_ptr().align_offset(64).min(buf.len());
    let (head, rest) = buf.split_at_mut(head_len);
    super::apply_mask_narrow(head, key);
    let key = super::rotate_key(key, head_len);
    let done = blocks(rest, key);
    // `done` is a multiple of 64, so the tail starts at key index 0 of the same key.
    super::apply_mask_narrow(&mut rest[done..], key);
    true
}

/// Whether payloads under `MIN_BLOCKS_LEN` take 64-byte blocks unaligned: on CPUs with
/// AVX-512F of Ice Lake or later (VBMI2, unused here, marks them), where short runs of
/// 64-byte instructions hardly lower the core's clock; Skylake-SP keeps them for longer
/// payloads.
#[cfg(target_arch = "x86_64")]
#[inline]
fn has_short_block_path() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512vbmi2")
}

/// A function that masks the whole 64-byte blocks at the start of a buffer and returns how
/// many bytes it masked.
type BlockMasker = fn(&mut [u8], [u8; 4]) -> usize;

/// The block masker for the widest registers the running CPU has, if wider than 16 bytes.
#[inline]
fn wide_blocks() -> Option<BlockMasker> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Some(|buf, key| {
                // SAFETY: the running CPU supports AVX-512F, the only feature the function is
                // compiled for.
                unsafe { mask_blocks_avx512(buf, key) }
            });
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return Some(|buf, key| {
                // SAFETY: the running CPU supports AVX2, the only feature the function is
                // compiled for.
                unsafe { mask_blocks_avx2(buf, key) }
            });
        }
    }
    None
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn mask_blocks_avx2(buf: &mut [u8], key: [u8; 4]) -> usize {
    use std::arch::x86_64::{
        __m256i, _mm256_loadu_si256, _mm256_set1_epi32, _mm256_storeu_si256, _mm256_xor_si256,
    };
    let key = _mm256_set1_epi32(i32::from_ne_bytes(key));
    let (blocks, _) = buf.as_chunks_mut::<64>();
    for block in blocks.iter_mut() {
        let low = block.as_mut_ptr().cast::<__m256i>();
        // SAFETY: `low` and `high` are the two 32-byte halves of one 64-byte block borrowed
        // mutably; the unaligned load and store instructions accept any address.
        unsafe {
            let high = low.add(1);
            _mm256_storeu_si256(low, _mm256_xor_si256(_mm256_loadu_si256(low), key));
            _mm256_storeu_si256(high, _mm256_xor_si256(_mm256_loadu_si256(high), key));
        }
    }
    blocks.len() * 64
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn mask_blocks_avx512(buf: &mut [u8], key: [u8; 4]) -> usize {
    use std::arch::x86_64::{
        __m512i, _mm512_loadu_si512, _mm512_set1_epi32, _mm512_storeu_si512, _mm512_xor_si512,
    };
    let key = _mm512_set1_epi32(i32::from_ne_bytes(key));
    let (blocks, _) = buf.as_chunks_mut::<64>();
    for block in blocks.iter_mut() {
        let ptr = block.as_mut_ptr().cast::<__m512i>();
        // SAFETY: `ptr` points to one 64-byte block borrowed mutably; the unaligned load and
        // store instructions accept any address.
        unsafe { _mm512_storeu_si512(ptr, _mm512_xor_si512(_mm512_loadu_si512(ptr), key)) };
    }
    blocks.len() * 64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::apply_mask_reference;

    const SOURCE_LEN: usize = 1100;

    fn source() -> Vec<u8> {
        (0..SOURCE_LEN as u32)
            .map(|i| (i * 131 + 17) as u8)
            .collect()
    }

    #[test]
    fn every_block_masker_the_cpu_has_matches_the_plain_loop() {
        let key = [0x01, 0x80, 0xfe, 0x7f];
        let mut maskers: Vec<BlockMasker> = Vec::new();
        maskers.extend(wide_blocks());
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU was just found to support AVX2.
            maskers.push(|buf, key| unsafe { mask_blocks_avx2(buf, key) });
        }
        for masker in maskers {
            for start in 0..64 {
                for len in [0, 1, 63, 64, 65, 127, 128, 200, 511, 512, 900] {
                    let mut wide = source();
                    let mut plain = source();
                    let done = masker(&mut wide[start..start + len], key);
                    assert_eq!(done, len / 64 * 64);
                    apply_mask_reference(&mut plain[start..start + done], key, 0);
                    assert_eq!(wide, plain, "start {start} len {len}");
                }
            }
        }
    }

    /// Whether `apply_mask_wide` takes the unaligned blocks below `MIN_BLOCKS_LEN` here.
    fn short_block_path() -> bool {
        #[cfg(target_arch = "x86_64")]
        return has_short_block_path();
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    #[test]
    fn short_payloads_match_the_plain_loop_and_leave_the_bytes_around_alone() {
        let key = [0x01, 0x80, 0xfe, 0x7f];
        for start in 0..64 {
            // Every tail length (0 to 63) after two or three whole blocks.
            for len in MIN_WIDE_LEN..MIN_BLOCKS_LEN {
                let mut wide = source();
                let mut plain = source();
                let applied = apply_mask_wide(&mut wide[start..start + len], key);
                assert_eq!(applied, short_block_path(), "len {len}");
                apply_mask_reference(&mut plain[start..start + len], key, 0);
                if applied {
                    assert_eq!(wide, plain, "start {start} len {len}");
                }
            }
        }
    }

    #[test]
    fn the_wide_path_masks_every_alignment_and_key_rotation_like_the_plain_loop() {
        let key = [0xde, 0xad, 0xbe, 0xef];
        for start in 0..64 {
            for len in [
                MIN_WIDE_LEN,
                MIN_WIDE_LEN + 1,
                MIN_BLOCKS_LEN - 1,
                MIN_BLOCKS_LEN,
                333,
                1000,
            ] {
                for rotation in 0..4 {
                    let mut rotated = key;
                    rotated.rotate_left(rotation);
                    let mut wide = source();
                    let mut plain = source();
                    let applied = apply_mask_wide(&mut wide[start..start + len], rotated);
                    let short = len < MIN_BLOCKS_LEN && short_block_path();
                    let expected = short || (len >= MIN_BLOCKS_LEN && wide_blocks().is_some());
                    assert_eq!(applied, expected, "len {len}");
                    if applied {
                        apply_mask_reference(&mut plain[start..start + len], key, rotation);
                        assert_eq!(wide, plain, "start {start} len {len} rotation {rotation}");
                    }
                }
            }
        }
    }
}
