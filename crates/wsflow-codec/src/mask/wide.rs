//! Masking with the widest vector registers the CPU has, chosen at run time.
//!
//! The portable loop in the parent module XORs 16 bytes at a time, which is all the baseline
//! x86-64 target (SSE2) lets the compiler use. Most x86-64 CPUs in service have 32-byte (AVX2)
//! or 64-byte (AVX-512) registers; compiling the same loop once more with those features
//! enabled makes the compiler use them. On a 64 KiB frame that halves the time spent unmasking
//! (`cargo bench --bench codec -- mask_in_place`).
//!
//! Payloads from 64 bytes to 8 KiB, the usual message sizes, take another path on CPUs with
//! AVX-512BW (Ice Lake and later): whole 64-byte blocks wherever they fall, then the last 1 to
//! 63 bytes with one byte-masked load and store, with no narrow head and tail around aligned
//! blocks. On a 2-core Xeon (Sapphire Rapids) that masks 1 KiB at an odd address in 12.7 ns
//! instead of 25, and 128 bytes in 5.2 ns instead of 6.2 with 16-byte registers.
//!
//! This is the only module of the crate besides `utf8_bytes` and `utf8::wide` with `unsafe`
//! code: the calls to functions compiled for a CPU feature, each made only after
//! `is_x86_feature_detected!` has confirmed the running CPU has that feature, and in them the
//! unaligned (and byte-masked) vector loads and stores. The tests compare every path with the
//! byte-at-a-time reference on every alignment, and check that no byte around the buffer
//! changes.
#![allow(unsafe_code)]

/// Below this length one 64-byte register is too wide to pay.
pub(super) const MIN_WIDE_LEN: usize = 64;

/// Below this length the alignment and vector setup of the blocks path (`wide_blocks`) cost
/// more than they save.
const MIN_BLOCKS_LEN: usize = 256;

/// Masks all of `buf` (starting at key index 0 of `key`) with the widest registers this CPU
/// has: below 8 KiB with AVX-512BW, the whole buffer in 64-byte registers; otherwise the
/// bytes up to the first 64-byte boundary and the tail after the last one through the narrow
/// path, the aligned blocks in between with AVX-512 or AVX2. Returns false, having done
/// nothing, where no wide path applies.
#[inline]
pub(super) fn apply_mask_wide(buf: &mut [u8], key: [u8; 4]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if buf.len() < ALIGNED_FROM_LEN && has_avx512bw() {
        // SAFETY: the running CPU supports AVX-512F and AVX-512BW, the features the function
        // is compiled for.
        unsafe { mask_all_avx512(buf, key) };
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

/// From this length on, the blocks in the middle are aligned first (`apply_mask_wide`): a
/// payload this long no longer fits in the first-level cache alongside the rest, and unaligned
/// 64-byte accesses, each touching two cache lines, then cost more than the narrow head and
/// tail. Below it, `mask_all_avx512` takes the whole buffer unaligned.
const ALIGNED_FROM_LEN: usize = 8 * 1024;

/// Whether the running CPU has AVX-512F and AVX-512BW (byte-masked loads and stores), each
/// reported on its own, and is Ice Lake or later (VBMI2, unused here), where short runs of
/// 64-byte instructions hardly lower the core's clock; Skylake-SP keeps the blocks path,
/// which uses them only on longer payloads.
#[cfg(target_arch = "x86_64")]
#[inline]
fn has_avx512bw() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vbmi2")
}

/// Masks all of `buf` (starting at key index 0 of `key`) in 64-byte registers: whole blocks
/// unaligned, then the last 1 to 63 bytes with one byte-masked load and store, so a payload
/// of a few hundred bytes takes a handful of instructions and no narrow head or tail.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
fn mask_all_avx512(buf: &mut [u8], key: [u8; 4]) {
    use std::arch::x86_64::{
        __m512i, _mm512_loadu_si512, _mm512_mask_storeu_epi8, _mm512_maskz_loadu_epi8,
        _mm512_set1_epi32, _mm512_storeu_si512, _mm512_xor_si512,
    };
    let key = _mm512_set1_epi32(i32::from_ne_bytes(key));
    let (blocks, tail) = buf.as_chunks_mut::<64>();
    for block in blocks.iter_mut() {
        let ptr = block.as_mut_ptr().cast::<__m512i>();
        // SAFETY: `ptr` points to one 64-byte block borrowed mutably; the unaligned load and
        // store instructions accept any address.
        unsafe { _mm512_storeu_si512(ptr, _mm512_xor_si512(_mm512_loadu_si512(ptr), key)) };
    }
    if !tail.is_empty() {
        // The blocks are a multiple of 4 bytes long, so the tail starts at key index 0.
        let present = (1u64 << tail.len()) - 1;
        let ptr = tail.as_mut_ptr();
        // SAFETY: the mask selects the tail's `tail.len()` (1 to 63) bytes, borrowed mutably;
        // the bytes it leaves out are neither read nor written, and cannot fault.
        unsafe {
            let masked = _mm512_xor_si512(_mm512_maskz_loadu_epi8(present, ptr.cast()), key);
            _mm512_mask_storeu_epi8(ptr.cast(), present, masked);
        }
    }
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

    const SOURCE_LEN: usize = ALIGNED_FROM_LEN + 500;

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

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_whole_buffer_path_matches_the_plain_loop_and_stays_inside_the_buffer() {
        if !has_avx512bw() {
            return;
        }
        let key = [0x01, 0x80, 0xfe, 0x7f];
        for start in 0..64 {
            // Every tail length (0 to 63) after zero to three whole blocks.
            for len in 0..4 * 64 {
                let mut wide = source();
                let mut plain = source();
                // SAFETY: the CPU was just found to support AVX-512F and AVX-512BW.
                unsafe { mask_all_avx512(&mut wide[start..start + len], key) };
                apply_mask_reference(&mut plain[start..start + len], key, 0);
                assert_eq!(wide, plain, "start {start} len {len}");
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
                ALIGNED_FROM_LEN - 1,
                ALIGNED_FROM_LEN,
                ALIGNED_FROM_LEN + 333,
            ] {
                for rotation in 0..4 {
                    let mut rotated = key;
                    rotated.rotate_left(rotation);
                    let mut wide = source();
                    let mut plain = source();
                    let applied = apply_mask_wide(&mut wide[start..start + len], rotated);
                    assert_eq!(applied, wide_blocks().is_some());
                    if applied {
                        apply_mask_reference(&mut plain[start..start + len], key, rotation);
                        assert_eq!(wide, plain, "start {start} len {len} rotation {rotation}");
                    }
                }
            }
        }
    }
}
