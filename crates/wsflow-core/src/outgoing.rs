//! The send queue: encoded frames waiting to be written, as a list of slices for one
//! vectored write.
//!
//! Everything queued between two flushes goes out together (a cork): small frames are copied,
//! header and payload, into one staging buffer, so a burst of small messages becomes one
//! contiguous slice; a large payload is never copied, only referenced as its own slice after
//! its header. Client frames are masked while being copied, or in place when the payload's
//! buffer is not shared.

use bytes::{Buf, Bytes, BytesMut};
use wsflow_codec::{FrameHeader, OpCode, apply_mask};

use crate::lazy_deque::LazyDeque;

/// Payloads up to this size are copied into the staging buffer; larger ones are referenced.
const COPY_THRESHOLD: usize = 2048;

#[derive(Debug, Default)]
pub(crate) struct Outgoing {
    /// Frozen slices, written before `staging`: payloads too large to copy, and what was
    /// staged before them. Allocated by the first.
    chunks: LazyDeque<Bytes>,
    /// Small frames and headers accumulated since the last frozen slice.
    staging: BytesMut,
    /// Total bytes queued.
    len: usize,
}

impl Outgoing {
    /// Queues `payload` as a final, unmasked frame without RSV bits if it is small enough to
    /// be copied (see [`COPY_THRESHOLD`]): the usual server message, copied with its header in
    /// one reservation. Returns whether it did; a larger payload is left to
    /// [`Outgoing::push_frame`], which references it rather than copying.
    #[inline]
    pub(crate) fn push_short_unmasked(&mut self, opcode: OpCode, payload: &[u8]) -> bool {
        let len = payload.len();
        if len > COPY_THRESHOLD {
            return false;
        }
        let first = FrameHeader::new(opcode, len as u64).first_byte();
        // The length bytes have the mask bit clear.
        if len < 126 {
            self.len += 2 + len;
            self.staging.reserve(2 + len);
            self.staging.extend_from_slice(&[first, len as u8]);
        } else {
            let [high, low] = (len as u16).to_be_bytes();
            self.len += 4 + len;
            self.staging.reserve(4 + len);
            self.staging.extend_from_slice(&[first, 126, high, low]);
        }
        self.staging.extend_from_slice(payload);
        true
    }

    /// Queues one frame. `header.mask`, if set, is applied to the payload.
    pub(crate) fn push_frame(&mut self, header: FrameHeader, payload: Bytes) {
        let payload_len = payload.len();
        self.len += header.encoded_len() + payload_len;
        header.encode_to(&mut self.staging);
        match header.mask {
            None if payload_len <= COPY_THRESHOLD => self.staging.extend_from_slice(&payload),
            None => {
                self.freeze_staging();
                self.chunks.push_back(payload);
            }
            Some(key) if payload_len <= COPY_THRESHOLD => {
                let start = self.staging.len();
                self.staging.extend_from_slice(&payload);
                apply_mask(&mut self.staging[start..], key, 0);
            }
            Some(key) => {
                let mut owned = payload
                    .try_into_mut()
                    .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
                apply_mask(&mut owned, key, 0);
                self.freeze_staging();
                self.chunks.push_back(owned.freeze());
            }
        }
    }

    fn freeze_staging(&mut self) {
        if !self.staging.is_empty() {
            self.chunks.push_back(self.staging.split().freeze());
        }
    }

    /// The queued bytes, in order, as slices.
    pub(crate) fn chunks(&self) -> impl Iterator<Item = &[u8]> {
        self.chunks
            .iter()
            .map(|chunk| &chunk[..])
            .chain((!self.staging.is_empty()).then_some(&self.staging[..]))
    }

    /// Drops the first `n` queued bytes, which were written.
    #[inline]
    pub(crate) fn advance(&mut self, n: usize) {
        if n >= self.len && self.chunks.is_empty() {
            // The usual case: all written, and all of it was staged. Clearing (rather than
            // advancing) keeps the buffer's start, so the next frames reuse it from there
            // with no reclaiming.
            self.staging.clear();
            self.len = 0;
            return;
        }
        self.advance_in_part(n);
    }

    /// [`Outgoing::advance`] through the frozen slices, or part of the way.
    fn advance_in_part(&mut self, mut n: usize) {
        n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            if let Some(front) = self.chunks.front_mut() {
                if n >= front.len() {
                    n -= front.len();
                    self.chunks.pop_front();
                } else {
                    front.advance(n);
                    n = 0;
                }
            } else if n >= self.staging.len() {
                // All written: clearing (rather than advancing) keeps the buffer's start, so
                // the next frames reuse it from there with no reclaiming.
                self.staging.clear();
                n = 0;
            } else {
                self.staging.advance(n);
                n = 0;
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn clear(&mut self) {
        self.chunks.clear();
        self.staging.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(out: &Outgoing) -> Vec<u8> {
        out.chunks().flatten().copied().collect()
    }

    #[test]
    fn small_frames_share_one_slice_and_large_payloads_are_not_copied() {
        let mut out = Outgoing::default();
        let big = Bytes::from(vec![7u8; 10_000]);
        out.push_frame(FrameHeader::new(OpCode::Text, 2), Bytes::from_static(b"hi"));
        out.push_frame(FrameHeader::new(OpCode::Text, 2), Bytes::from_static(b"yo"));
        out.push_frame(FrameHeader::new(OpCode::Binary, 10_000), big.clone());
        out.push_frame(FrameHeader::new(OpCode::Ping, 0), Bytes::new());
        let slices: Vec<&[u8]> = out.chunks().collect();
        // [two small frames + big header], [big payload], [ping]
        assert_eq!(slices.len(), 3);
        assert_eq!(slices[1].as_ptr(), big.as_ptr());
        assert_eq!(out.len(), 4 + 4 + 4 + 10_000 + 2);
    }

    #[test]
    fn advancing_across_slices_keeps_the_rest_in_order() {
        let mut out = Outgoing::default();
        out.push_frame(
            FrameHeader::new(OpCode::Binary, 3000),
            Bytes::from(vec![1u8; 3000]),
        );
        out.push_frame(FrameHeader::new(OpCode::Text, 1), Bytes::from_static(b"x"));
        let all = collect(&out);
        assert_eq!(all.len(), 4 + 3000 + 2 + 1);
        for step in [1, 5, 1000, 2000] {
            out.advance(step);
        }
        assert_eq!(collect(&out), all[3006..]);
        out.advance(usize::MAX);
        assert!(out.is_empty());
        assert_eq!(out.chunks().count(), 0);
    }

    #[test]
    fn every_frame_is_queued_as_the_codec_encodes_it() {
        // Around the short path's limit (a one-byte length), the copy threshold and the
        // two-byte length, with every header bit that can vary.
        for len in [0usize, 1, 124, 125, 126, 127, 2048, 2049, 65_535, 65_536] {
            for (fin, rsv1, opcode, mask) in [
                (true, false, OpCode::Binary, None),
                (true, false, OpCode::Text, None),
                (false, false, OpCode::Continuation, None),
                (true, true, OpCode::Text, None),
                (true, false, OpCode::Binary, Some([9, 8, 7, 6])),
            ] {
                let payload = Bytes::from((0..len).map(|i| i as u8).collect::<Vec<_>>());
                let mut frame = wsflow_codec::Frame::new(opcode, payload.clone()).with_mask(mask);
                frame.fin = fin;
                frame.rsv1 = rsv1;
                let mut expected = BytesMut::new();
                frame.encode(&mut expected);
                let mut out = Outgoing::default();
                out.push_frame(frame.header(), payload.clone());
                assert_eq!(collect(&out), expected, "len {len}, fin {fin}, rsv1 {rsv1}");
                assert_eq!(out.len(), expected.len());
                // The short path takes the frames it can write, and writes them alike.
                let mut short = Outgoing::default();
                let plain = fin && !rsv1 && mask.is_none() && opcode.is_data();
                if plain && short.push_short_unmasked(opcode, &payload) {
                    assert!(len <= COPY_THRESHOLD);
                    assert_eq!(collect(&short), expected, "len {len}, short path");
                    assert_eq!(short.len(), expected.len());
                } else {
                    assert!(
                        !plain || len > COPY_THRESHOLD,
                        "len {len}: refused by the short path"
                    );
                }
            }
        }
    }

    #[test]
    fn masked_frames_are_masked_whether_copied_or_not() {
        for len in [10usize, 5000] {
            let key = [1, 2, 3, 4];
            let payload = Bytes::from(vec![0xaa; len]);
            let mut out = Outgoing::default();
            out.push_frame(
                FrameHeader::new(OpCode::Binary, len as u64).with_mask(Some(key)),
                payload.clone(),
            );
            let wire = collect(&out);
            let header_len = wire.len() - len;
            let mut unmasked = wire[header_len..].to_vec();
            apply_mask(&mut unmasked, key, 0);
            assert_eq!(unmasked, payload);
            // A shared payload is copied, never modified.
            assert!(payload.iter().all(|&b| b == 0xaa));
        }
    }
}
