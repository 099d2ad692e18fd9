//! UTF-8 validation with 64-byte (AVX-512) registers, chosen at run time.
//!
//! simdutf8 validates with 32-byte registers at most. On a CPU with AVX-512BW and AVX-512VBMI
//! (Ice Lake, Zen 4 and later, see `is_valid_wide`) the same algorithm, the "lookup" check of
//! Keiser and Lemire ("Validating UTF-8 In Less Than One Instruction Per Byte", 2021), takes
//! one set of instructions per 64 bytes instead of two. Every byte is classified by three
//! 16-entry table lookups: the high and low nibble of the byte before it and the high nibble
//! of the byte itself. Each table entry is a set of error bits, and a byte pair is wrong
//! exactly when all three lookups share a bit. Two more checks cover what a pair cannot see:
//! the third and fourth bytes of a sequence must be continuation bytes, and the input must not
//! end inside a sequence.
//!
//! The lookups are VBMI's byte permutation over the table repeated four times, which ignores
//! the bits above a nibble, so no instruction masks them off first (the byte shuffle simdutf8
//! uses would need one per lookup). On an AMD EPYC (Zen 4), `cargo bench --bench codec --
//! utf8_validate` measures 52 GiB/s on mostly multi-byte text, 2.5 times simdutf8's 21 GiB/s
//! and 1.5 times this module's speed with the shuffle and a per-block ASCII test; ASCII runs
//! at 170-185 GiB/s, 1.2 times simdutf8.
//!
//! A client's text arrives masked. `unmask_is_valid` unmasks and checks it in the same pass,
//! storing each unmasked block as it checks it: the check is bound by the shuffle units, and
//! unmasking a payload larger than the first-level cache by the second-level cache, so the
//! two overlap. On a Sapphire Rapids Xeon (2-core VM), 64 KiB of text took 3.8 µs that way
//! against 4.8 µs unmasked and then checked; the check alone runs at about 22 GB/s there
//! (the lookups and byte shifts all need the one port that shuffles 64-byte registers).
//!
//! This module and `mask::wide` are the crate's only `unsafe` code besides `utf8_bytes`: the
//! unaligned 64-byte loads and stores (masked ones for the bytes before the first cache line
//! boundary and after the last whole block), and the calls to the functions compiled for
//! AVX-512, made only after `is_x86_feature_detected!` has confirmed the running CPU has it.
//! The tests compare this path with `std::str::from_utf8` on every error class at every
//! offset and on random input, and the fused pass with the plain one (same answer, same
//! unmasked bytes, nothing written around them) at starts covering every offset from a
//! cache line.
#![allow(unsafe_code)]

/// Whether `bytes` are valid UTF-8 by the AVX-512 path, or `None` where the CPU lacks it.
#[inline]
pub(super) fn is_valid_wide(bytes: &[u8]) -> Option<bool> {
    #[cfg(target_arch = "x86_64")]
    {
        // VBMI2 (unused here) marks Ice Lake and later, where 64-byte registers lower the
        // core's clock much less than on Skylake-SP, which keeps simdutf8's path.
        if has_avx512() && std::arch::is_x86_feature_detected!("avx512vbmi2") {
            // SAFETY: the running CPU supports AVX-512F, AVX-512BW and AVX-512VBMI, the
            // features the function is compiled for.
            return Some(unsafe { avx512::is_valid(bytes) });
        }
    }
    let _ = bytes;
    None
}

/// Whether `unmask_is_valid_wide` runs on this CPU.
#[inline]
pub(super) fn has_unmask_is_valid() -> bool {
    #[cfg(target_arch = "x86_64")]
    return has_avx512() && std::arch::is_x86_feature_detected!("avx512vbmi2");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Unmasks `bytes` (from key index 0 of `key`) and says whether the result is valid UTF-8, in
/// one pass by the AVX-512 path; `None`, having done nothing, where the CPU lacks it.
#[inline]
pub(super) fn unmask_is_valid_wide(bytes: &mut [u8], key: [u8; 4]) -> Option<bool> {
    #[cfg(target_arch = "x86_64")]
    {
        if has_unmask_is_valid() {
            // SAFETY: as in `is_valid_wide`.
            return Some(unsafe { avx512::unmask_is_valid(bytes, key) });
        }
    }
    let _ = (bytes, key);
    None
}

/// Whether the running CPU has the three features the AVX-512 path is compiled for (each is
/// reported on its own; a virtual machine may show one without the others).
#[cfg(target_arch = "x86_64")]
#[inline]
fn has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vbmi")
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::{
        __m512i, _mm512_alignr_epi8, _mm512_alignr_epi64, _mm512_and_si512, _mm512_loadu_si512,
        _mm512_mask_storeu_epi8, _mm512_maskz_loadu_epi8, _mm512_maskz_mov_epi8,
        _mm512_movepi8_mask, _mm512_or_si512, _mm512_permutexvar_epi8, _mm512_set_epi32,
        _mm512_set1_epi8, _mm512_set1_epi32, _mm512_set4_epi32, _mm512_setzero_si512,
        _mm512_srli_epi16, _mm512_storeu_si512, _mm512_subs_epu8, _mm512_test_epi8_mask,
        _mm512_xor_si512,
    };

    // The error bits of the lookup tables: which rule a byte pair breaks.
    /// A lead byte or ASCII followed by a lead byte or ASCII: a sequence ended early.
    const TOO_SHORT: u8 = 1 << 0;
    /// ASCII followed by a continuation byte.
    const TOO_LONG: u8 = 1 << 1;
    /// `E0` followed by `80..=9F`: a 3-byte encoding of a code point below U+0800.
    const OVERLONG_3: u8 = 1 << 2;
    /// A lead byte above `F4`, or `F4` followed by `90..=BF`: beyond U+10FFFF.
    const TOO_LARGE: u8 = 1 << 3;
    /// `ED` followed by `A0..=BF`: a UTF-16 surrogate.
    const SURROGATE: u8 = 1 << 4;
    /// `C0` or `C1`: a 2-byte encoding of ASCII.
    const OVERLONG_2: u8 = 1 << 5;
    /// A lead byte above `F4` followed by `80..=8F` (shares its bit with `OVERLONG_4`: the two
    /// never apply to the same lead byte).
    const TOO_LARGE_1000: u8 = 1 << 6;
    /// `F0` followed by `80..=8F`: a 4-byte encoding of a code point below U+10000.
    const OVERLONG_4: u8 = 1 << 6;
    /// Two continuation bytes: allowed only where the third or fourth byte of a sequence is.
    const TWO_CONTS: u8 = 1 << 7;
    /// The rules decided by the first byte's high nibble alone.
    const CARRY: u8 = TOO_SHORT | TOO_LONG | TWO_CONTS;

    /// By the high nibble of the first byte of a pair.
    const BYTE_1_HIGH: [u8; 16] = [
        TOO_LONG,
        TOO_LONG,
        TOO_LONG,
        TOO_LONG,
        TOO_LONG,
        TOO_LONG,
        TOO_LONG,
        TOO_LONG,
        TWO_CONTS,
        TWO_CONTS,
        TWO_CONTS,
        TWO_CONTS,
        TOO_SHORT | OVERLONG_2,
        TOO_SHORT,
        TOO_SHORT | OVERLONG_3 | SURROGATE,
        TOO_SHORT | TOO_LARGE | TOO_LARGE_1000 | OVERLONG_4,
    ];

    /// By the low nibble of the first byte of a pair.
    const BYTE_1_LOW: [u8; 16] = [
        CARRY | OVERLONG_3 | OVERLONG_2 | OVERLONG_4,
        CARRY | OVERLONG_2,
        CARRY,
        CARRY,
        CARRY | TOO_LARGE,
        CARRY | TOO_LARGE | TOO_LARGE_1000,
        CARRY | TOO_LARGE | TOO_LARGE_1000,
        CARRY | TOO_LARGE | TOO_LARGE_1000,
        CARRY | TOO_LARGE | TOO_LARGE_1000,
        CARRY | TOO_LARGE | TOO_LARGE_1000,
        CARRY | TOO_LARGE | TOO_LARGE_1000,
        CARRY | TOO_LARGE | TOO_LARGE_1000,
        CARRY | TOO_LARGE | TOO_LARGE_1000,
        CARRY | TOO_LARGE | TOO_LARGE_1000 | SURROGATE,
        CARRY | TOO_LARGE | TOO_LARGE_1000,
        CARRY | TOO_LARGE | TOO_LARGE_1000,
    ];

    /// By the high nibble of the second byte of a pair.
    const BYTE_2_HIGH: [u8; 16] = [
        TOO_SHORT,
        TOO_SHORT,
        TOO_SHORT,
        TOO_SHORT,
        TOO_SHORT,
        TOO_SHORT,
        TOO_SHORT,
        TOO_SHORT,
        TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE_1000 | OVERLONG_4,
        TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE,
        TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE,
        TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE,
        TOO_SHORT,
        TOO_SHORT,
        TOO_SHORT,
        TOO_SHORT,
    ];

    /// A 16-entry table as the four little-endian 32-bit words `_mm512_set4_epi32` repeats in
    /// every 128-bit lane. The byte permutation looks up 64 entries by the low six bits of each
    /// index byte; with the table four times over, bits 4 and 5 do not matter, so a nibble
    /// needs no masking off from the bits above it.
    const fn words(table: [u8; 16]) -> [i32; 4] {
        let mut words = [0; 4];
        let mut i = 0;
        while i < 4 {
            words[i] = i32::from_le_bytes([
                table[4 * i],
                table[4 * i + 1],
                table[4 * i + 2],
                table[4 * i + 3],
            ]);
            i += 1;
        }
        words
    }

    /// The running state between 64-byte blocks.
    struct Checker {
        /// Nonzero once any error bit was set.
        error: __m512i,
        /// The previous block: the bytes before this block's first three.
        previous: __m512i,
        byte_1_high: __m512i,
        byte_1_low: __m512i,
        byte_2_high: __m512i,
        /// Subtracted (saturating) from a block, leaves a nonzero byte where a sequence starts
        /// too late to end in it: a 4-byte lead in the last three bytes, a 3-byte lead in the
        /// last two, a 2-byte lead in the last.
        incomplete_limits: __m512i,
    }

    impl Checker {
        #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
        fn new() -> Self {
            let table = |table: [u8; 16]| {
                let [w0, w1, w2, w3] = words(table);
                _mm512_set4_epi32(w3, w2, w1, w0)
            };
            // Bytes 61, 62, 63: a lead byte of 4, 3, 2 bytes or more is over its limit.
            let last_word = i32::from_le_bytes([0xff, 0xf0 - 1, 0xe0 - 1, 0xc0 - 1]);
            Self {
                error: _mm512_setzero_si512(),
                previous: _mm512_setzero_si512(),
                byte_1_high: table(BYTE_1_HIGH),
                byte_1_low: table(BYTE_1_LOW),
                byte_2_high: table(BYTE_2_HIGH),
                incomplete_limits: _mm512_set_epi32(
                    last_word, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                ),
            }
        }

        /// Checks the next 64 bytes, skipping the checks if they are ASCII.
        #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
        #[inline]
        fn check(&mut self, input: __m512i) {
            if _mm512_movepi8_mask(input) == 0 {
                self.skip_ascii(input);
            } else {
                self.check_all(input);
            }
        }

        /// Checks the next four blocks: skipped together if they are all ASCII, each checked
        /// otherwise.
        #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
        #[inline]
        fn check_run(&mut self, [a, b, c, d]: [__m512i; 4]) {
            let any = _mm512_or_si512(_mm512_or_si512(a, b), _mm512_or_si512(c, d));
            if _mm512_movepi8_mask(any) == 0 {
                self.skip_ascii(d);
            } else {
                self.check_all(a);
                self.check_all(b);
                self.check_all(c);
                self.check_all(d);
            }
        }

        /// Checks the next 64 bytes, whatever they are.
        #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
        #[inline]
        fn check_all(&mut self, input: __m512i) {
            // `input` moved up by 16 bytes, the last 16 of the previous block in front...
            let lanes = _mm512_alignr_epi64::<6>(input, self.previous);
            // ...so that each lane's byte shift can take its bytes from the lane before.
            let prev1 = _mm512_alignr_epi8::<15>(input, lanes);
            let prev2 = _mm512_alignr_epi8::<14>(input, lanes);
            let prev3 = _mm512_alignr_epi8::<13>(input, lanes);

            // Each 16-bit shift brings a byte's high nibble down to its low four bits, with bits
            // of the next byte above them, which the lookup ignores (see `words`).
            let byte_1_high =
                _mm512_permutexvar_epi8(_mm512_srli_epi16::<4>(prev1), self.byte_1_high);
            let byte_1_low = _mm512_permutexvar_epi8(prev1, self.byte_1_low);
            let byte_2_high =
                _mm512_permutexvar_epi8(_mm512_srli_epi16::<4>(input), self.byte_2_high);
            let special_cases =
                _mm512_and_si512(_mm512_and_si512(byte_1_high, byte_1_low), byte_2_high);

            // Bit 7 where two or three bytes back a 3- or 4-byte sequence started: there the
            // byte must be a continuation, which `special_cases` marks as TWO_CONTS.
            let third = _mm512_subs_epu8(prev2, _mm512_set1_epi8((0xe0u8 - 0x80) as i8));
            let fourth = _mm512_subs_epu8(prev3, _mm512_set1_epi8((0xf0u8 - 0x80) as i8));
            let must_continue = _mm512_and_si512(
                _mm512_or_si512(third, fourth),
                _mm512_set1_epi8(0x80u8 as i8),
            );
            let errors = _mm512_xor_si512(must_continue, special_cases);
            self.error = _mm512_or_si512(self.error, errors);
            self.previous = input;
        }

        /// Nonzero where the previous block ended inside a sequence (zero before the first
        /// block, and after ASCII).
        #[target_feature(enable = "avx512f,avx512bw")]
        #[inline]
        fn previous_incomplete(&self) -> __m512i {
            _mm512_subs_epu8(self.previous, self.incomplete_limits)
        }

        /// Takes ASCII bytes, `last` being the last 64 of them: fine unless the bytes before
        /// them ended inside a sequence.
        #[target_feature(enable = "avx512f,avx512bw")]
        #[inline]
        fn skip_ascii(&mut self, last: __m512i) {
            self.error = _mm512_or_si512(self.error, self.previous_incomplete());
            self.previous = last;
        }

        /// Whether everything checked was valid and ended on a code point boundary.
        #[target_feature(enable = "avx512f,avx512bw")]
        fn is_valid(&self) -> bool {
            let error = _mm512_or_si512(self.error, self.previous_incomplete());
            _mm512_test_epi8_mask(error, error) == 0
        }
    }

    /// One 64-byte block in a register.
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    fn load(block: &[u8; 64]) -> __m512i {
        // SAFETY: `block` is 64 readable bytes; the unaligned load accepts any address.
        unsafe { _mm512_loadu_si512(block.as_ptr().cast()) }
    }

    /// Unmasks `bytes` in place (starting at key index 0 of `key`, every byte, valid or
    /// not) and returns whether the unmasked bytes are valid UTF-8: one pass where unmasking
    /// and then checking would take two. The check's shuffles keep the vector ports busy,
    /// while unmasking a buffer that does not fit the first-level cache waits on the
    /// second-level one, so the XOR and the store come almost for free.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    pub(super) fn unmask_is_valid(bytes: &mut [u8], key: [u8; 4]) -> bool {
        let mut checker = Checker::new();
        // The stores go to whole cache lines: a 64-byte store that straddles two costs about
        // twice as much. The bytes before the first line boundary come first, at the top of
        // a register whose lower bytes stay zero (ASCII before a code point boundary, so the
        // check reads them as it would the end of an earlier block).
        let head_len = bytes.as_ptr().align_offset(64).min(bytes.len());
        let (head, bytes) = bytes.split_at_mut(head_len);
        // The blocks after the head start at key index `head_len` modulo 4, and so does the
        // head's register: its byte `i` is byte `i - (64 - head_len)` of `head`.
        let key = _mm512_set1_epi32(i32::from_ne_bytes(crate::mask::rotate_key(key, head_len)));
        if !head.is_empty() {
            let present = !(u64::MAX >> head_len);
            let start = head.as_mut_ptr().wrapping_sub(64 - head_len).cast();
            // SAFETY: the mask selects the register's top `head_len` (1 to 63) bytes, which
            // are `head`, borrowed mutably; the bytes before it are neither read nor written
            // (masked off: the instructions suppress their faults, and LLVM's masked load and
            // store access only selected bytes), and `wrapping_sub` computes their address
            // without claiming it points into the buffer.
            let first = unsafe {
                let first = _mm512_xor_si512(_mm512_maskz_loadu_epi8(present, start), key);
                let first = _mm512_maskz_mov_epi8(present, first);
                _mm512_mask_storeu_epi8(start, present, first);
                first
            };
            checker.check(first);
        }
        let (blocks, tail) = bytes.as_chunks_mut::<64>();
        // As in `is_valid`: ASCII runs of four blocks skip the checks.
        let (runs, blocks) = blocks.as_chunks_mut::<4>();
        for [a, b, c, d] in runs {
            checker.check_run([
                unmask(a, key),
                unmask(b, key),
                unmask(c, key),
                unmask(d, key),
            ]);
        }
        for block in blocks {
            checker.check(unmask(block, key));
        }
        if !tail.is_empty() {
            let present = u64::MAX >> (64 - tail.len());
            let ptr = tail.as_mut_ptr().cast();
            // SAFETY: the mask selects the tail's `tail.len()` (1 to 63) bytes, all borrowed
            // mutably; the masked-off bytes after them are neither read nor written (the
            // instructions suppress their faults, and LLVM's masked load and store, which
            // these are, access only selected bytes). The masked-off bytes of the register
            // stay zero (ASCII), as in `is_valid`.
            let last = unsafe {
                let last = _mm512_xor_si512(_mm512_maskz_loadu_epi8(present, ptr), key);
                let last = _mm512_maskz_mov_epi8(present, last);
                _mm512_mask_storeu_epi8(ptr, present, last);
                last
            };
            checker.check(last);
        }
        checker.is_valid()
    }

    /// One 64-byte block unmasked in place, and in a register.
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    fn unmask(block: &mut [u8; 64], key: __m512i) -> __m512i {
        let ptr = block.as_mut_ptr().cast::<__m512i>();
        // SAFETY: `block` is 64 bytes borrowed mutably; the unaligned load and store accept
        // any address.
        unsafe {
            let unmasked = _mm512_xor_si512(_mm512_loadu_si512(ptr), key);
            _mm512_storeu_si512(ptr, unmasked);
            unmasked
        }
    }

    /// Whether `bytes` are valid UTF-8.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    pub(super) fn is_valid(bytes: &[u8]) -> bool {
        let mut checker = Checker::new();
        let (blocks, tail) = bytes.as_chunks::<64>();
        // ASCII text skips the checks 256 bytes at a time; other text takes all four blocks
        // through them (asking block by block would cost mostly non-ASCII text more than the
        // odd ASCII block saves).
        let (runs, blocks) = blocks.as_chunks::<4>();
        for [a, b, c, d] in runs {
            checker.check_run([load(a), load(b), load(c), load(d)]);
        }
        for block in blocks {
            checker.check(load(block));
        }
        if !tail.is_empty() {
            // The tail's bytes, the rest of the register zero: ASCII, which is valid after a
            // complete sequence and ends an incomplete one as an error.
            let present = u64::MAX >> (64 - tail.len());
            // SAFETY: the mask selects the tail's `tail.len()` (1 to 63) bytes, all readable;
            // the masked-off bytes after them are not read (the instruction suppresses their
            // faults, and LLVM's masked load, which this is, accesses only selected bytes).
            checker.check(unsafe { _mm512_maskz_loadu_epi8(present, tail.as_ptr().cast()) });
        }
        checker.is_valid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn std_says(bytes: &[u8]) -> bool {
        std::str::from_utf8(bytes).is_ok()
    }

    /// The AVX-512 path's answer, whether or not `is_valid_wide` would choose it on this CPU;
    /// `None` where the CPU cannot run it (the tests then say so and check nothing).
    ///
    /// Each call also runs the fused pass (`avx512::unmask_is_valid`) on a masked copy, at
    /// two starts that vary with the length (so every count of bytes before the first line
    /// boundary comes up), and checks that it gives the same answer, unmasks exactly the
    /// copy and leaves the bytes around it alone.
    fn wide(bytes: &[u8]) -> Option<bool> {
        #[cfg(target_arch = "x86_64")]
        if has_avx512() {
            // SAFETY: the CPU was just found to support AVX-512F, AVX-512BW and AVX-512VBMI.
            let valid = unsafe { avx512::is_valid(bytes) };
            let key = [0xa5, 0x3c, 0x96, 0x0f];
            for start in [bytes.len() % 64, (bytes.len() * 13 + 5) % 64] {
                // A 64-byte-aligned buffer, so that `start` is the offset from a line boundary.
                let mut lines = vec![[0x5au8; 64]; bytes.len() / 64 + 3];
                let buffer = lines.as_flattened_mut();
                let copy = &mut buffer[start..start + bytes.len()];
                copy.copy_from_slice(bytes);
                crate::apply_mask_reference(copy, key, 0);
                // SAFETY: as above.
                let fused = unsafe { avx512::unmask_is_valid(copy, key) };
                assert_eq!(fused, valid, "fused pass, {} bytes at {start}", bytes.len());
                assert_eq!(
                    copy,
                    bytes,
                    "fused pass unmasked, {} bytes at {start}",
                    bytes.len()
                );
                let end = start + bytes.len();
                assert!(
                    buffer[..start]
                        .iter()
                        .chain(&buffer[end..])
                        .all(|&byte| byte == 0x5a),
                    "fused pass wrote outside, {} bytes at {start}",
                    bytes.len()
                );
            }
            return Some(valid);
        }
        let _ = bytes;
        None
    }

    /// Whether the tests can run the AVX-512 path here; says so when not.
    fn runs_here() -> bool {
        let runs = wide(b"").is_some();
        if !runs {
            eprintln!("no AVX-512F/BW/VBMI on this CPU: the AVX-512 path is not tested here");
        }
        runs
    }

    /// Valid text with every sequence length, longer than a few blocks.
    fn text() -> Vec<u8> {
        "κόσμε 日本語のテキスト µ@ßöäü 𝄞 Ελληνικά 中文 plain ASCII for a while. "
            .repeat(5)
            .into_bytes()
    }

    /// Byte sequences that are wrong in each way the tables know, and their valid neighbours.
    const PROBES: &[&[u8]] = &[
        &[0x80],                   // continuation without a lead
        &[0xbf],                   //
        &[0xc0, 0x80],             // overlong 2-byte
        &[0xc1, 0xbf],             //
        &[0xc2, 0x80],             // valid: smallest 2-byte
        &[0xc2],                   // 2-byte cut short
        &[0xc2, 0x41],             //
        &[0xdf, 0xbf],             // valid
        &[0xe0, 0x80, 0x80],       // overlong 3-byte
        &[0xe0, 0x9f, 0xbf],       //
        &[0xe0, 0xa0, 0x80],       // valid: smallest 3-byte
        &[0xe1, 0x80],             // 3-byte cut short
        &[0xe1, 0x80, 0x41],       //
        &[0xed, 0x9f, 0xbf],       // valid: below the surrogates
        &[0xed, 0xa0, 0x80],       // surrogate
        &[0xed, 0xbf, 0xbf],       //
        &[0xef, 0xbf, 0xbf],       // valid
        &[0xf0, 0x80, 0x80, 0x80], // overlong 4-byte
        &[0xf0, 0x8f, 0xbf, 0xbf], //
        &[0xf0, 0x90, 0x80, 0x80], // valid: smallest 4-byte
        &[0xf1, 0x80, 0x80],       // 4-byte cut short
        &[0xf1, 0x80, 0x80, 0x41], //
        &[0xf4, 0x8f, 0xbf, 0xbf], // valid: U+10FFFF
        &[0xf4, 0x90, 0x80, 0x80], // beyond U+10FFFF
        &[0xf5, 0x80, 0x80, 0x80], //
        &[0xf8, 0x88, 0x80, 0x80, 0x80],
        &[0xff],
        &[0xe1, 0x80, 0x80, 0x80], // one continuation too many
        &[0xc2, 0x80, 0x80],
    ];

    #[test]
    fn agrees_with_std_on_every_error_class_at_every_offset() {
        if !runs_here() {
            return;
        }
        // Mixed text, and ASCII, which the check skips 256 bytes at a time; the longer bases
        // put a probe after whole 256-byte runs of either.
        let mut ascii_after_text = text();
        ascii_after_text.extend_from_slice(&[b'a'; 600]);
        let mut text_after_ascii = vec![b'a'; 300];
        text_after_ascii.extend_from_slice(&text());
        for base in [text(), vec![b'a'; 700], ascii_after_text, text_after_ascii] {
            agrees_with_std_on_every_probe_in(&base);
        }
    }

    #[test]
    fn an_ascii_run_after_an_unfinished_code_point_is_an_error() {
        if !runs_here() {
            return;
        }
        // (what comes first, how often, an unfinished code point, the same finished, then
        // this much ASCII): the unfinished one ends exactly where an ASCII run starts, or
        // inside one.
        type Case = (&'static str, usize, &'static [u8], &'static [u8], usize);
        let cases: [Case; 5] = [
            ("a", 255, b"\xc2", b"\xc2\xa9", 256),
            ("a", 254, b"\xe2\x82", b"\xe2\x82\xac", 256),
            ("a", 253, b"\xf0\x9f\x98", b"\xf0\x9f\x98\x80", 300),
            ("a", 189, b"\xe2\x82", b"\xe2\x82\xac", 600),
            ("é", 128, b"\xe2", b"\xe2\x82\xac", 512),
        ];
        for (unit, repeat, unfinished, finished, ascii) in cases {
            for (middle, valid) in [(unfinished, false), (finished, true)] {
                let mut bytes = unit.repeat(repeat).into_bytes();
                bytes.extend_from_slice(middle);
                bytes.extend(std::iter::repeat_n(b'a', ascii));
                // Ending there, and with complete non-ASCII text after the run.
                for end in ["", "é", "日本語のテキスト"] {
                    let mut bytes = bytes.clone();
                    bytes.extend_from_slice(end.repeat(20).as_bytes());
                    assert_eq!(std_says(&bytes), valid);
                    assert_eq!(
                        wide(&bytes),
                        Some(valid),
                        "{middle:x?} after {repeat} {unit}, then {end}"
                    );
                }
            }
        }
        // A stray continuation byte after a whole run that followed non-ASCII text.
        let mut bytes = "é".repeat(128).into_bytes();
        bytes.extend_from_slice(&[b'a'; 256]);
        bytes.push(0x80);
        assert_eq!(wide(&bytes), Some(false));
        bytes.extend_from_slice("é".repeat(100).as_bytes());
        assert_eq!(wide(&bytes), Some(false));
    }

    fn agrees_with_std_on_every_probe_in(base: &[u8]) {
        for probe in PROBES {
            for at in 0..base.len().min(700) {
                for len in [
                    at + probe.len(),
                    at + probe.len() + 1,
                    at + probe.len() + 70,
                ] {
                    let mut bytes = base[..at].to_vec();
                    // Cut at a character boundary so that only the probe can be wrong.
                    while std::str::from_utf8(&bytes).is_err() {
                        bytes.pop();
                        bytes.insert(0, b'.');
                    }
                    bytes.extend_from_slice(probe);
                    bytes.extend(std::iter::repeat_n(b'x', len - bytes.len()));
                    assert_eq!(
                        wide(&bytes),
                        Some(std_says(&bytes)),
                        "{probe:x?} at {at}, {len} bytes"
                    );
                }
            }
        }
    }

    #[test]
    fn agrees_with_std_on_valid_text_of_every_length_and_start() {
        if !runs_here() {
            return;
        }
        let text = text();
        for start in 0..8 {
            for end in start..text.len() {
                let bytes = &text[start..end];
                assert_eq!(wide(bytes), Some(std_says(bytes)), "{start}..{end}");
            }
        }
    }

    proptest! {
        #[test]
        fn agrees_with_std_on_text_with_one_byte_changed(
            text in "\\PC{0,300}",
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut bytes = text.into_bytes();
            if !bytes.is_empty() {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
            if let Some(wide) = wide(&bytes) {
                prop_assert_eq!(wide, std_says(&bytes));
            }
        }

        #[test]
        fn agrees_with_std_on_any_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            text in "\\PC{0,100}",
            cut in 0usize..400,
            use_text in any::<bool>(),
        ) {
            let bytes = if use_text {
                let mut text = text.into_bytes();
                text.truncate(cut);
                text
            } else {
                bytes
            };
            if let Some(wide) = wide(&bytes) {
                prop_assert_eq!(wide, std_says(&bytes));
            }
        }
    }
}
