//! The messages a connection sends: `2 x depth` distinct payloads, and the bytes that go on the
//! wire for them, encoded once before the run.

/// A small deterministic generator (xorshift64*): payloads and mask keys need to be varied,
/// not secret.
#[derive(Debug)]
pub(crate) struct XorShift(u64);

impl XorShift {
    pub(crate) fn new(seed: u64) -> Self {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(crate) fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// Multi-byte characters to build text payloads from: 2-byte (Greek, Latin-1), 3-byte (CJK)
/// and 4-byte (U+1D11E) UTF-8, with a few ASCII separators.
const TEXT: &str = "κόσμε 日本語のテキスト µ@ßöäü 𝄞 Ελληνικά 中文 ";

/// A valid UTF-8 string of exactly `size` bytes, mostly multi-byte characters, starting with
/// `index` so that payloads differ.
fn text_payload(index: usize, size: usize) -> Vec<u8> {
    let mut text = format!("{index} ");
    text.truncate(size);
    'fill: loop {
        for ch in TEXT.chars() {
            if text.len() + ch.len_utf8() > size {
                break 'fill;
            }
            text.push(ch);
        }
    }
    // Pad with ASCII where the next character would not fit.
    while text.len() < size {
        text.push('.');
    }
    text.into_bytes()
}

/// The messages of one run and their wire encoding.
#[derive(Debug)]
pub(crate) struct Messages {
    /// Payload bytes per message.
    pub(crate) size: usize,
    /// How many distinct payloads there are (`2 x depth`); message `n` carries payload
    /// `n % count`.
    pub(crate) count: usize,
    pub(crate) text: bool,
    /// The payloads, one after another (`count x size` bytes).
    pub(crate) payloads: Vec<u8>,
    /// What a client writes for the messages `0..count`, twice over, so that any run of up to
    /// `count` consecutive messages starting at message `0..count` is one contiguous slice.
    pub(crate) wire: Vec<u8>,
    /// Wire bytes per message.
    pub(crate) frame_len: usize,
}

impl Messages {
    /// `websocket`: masked client frames (a fresh mask key per frame); otherwise the bare
    /// payloads (the raw TCP ceiling).
    pub(crate) fn new(size: usize, depth: usize, text: bool, websocket: bool) -> Self {
        let count = 2 * depth;
        let mut rng = XorShift::new(0x5eed ^ size as u64);
        let mut payloads = Vec::with_capacity(count * size);
        for index in 0..count {
            if text {
                payloads.extend_from_slice(&text_payload(index, size));
            } else {
                let start = payloads.len();
                payloads.resize(start + size, 0);
                rng.fill(&mut payloads[start..]);
            }
        }
        let mut once = Vec::new();
        for index in 0..count {
            let payload = &payloads[index * size..(index + 1) * size];
            if websocket {
                let mut key = [0u8; 4];
                rng.fill(&mut key);
                encode_client_frame(&mut once, if text { 0x1 } else { 0x2 }, payload, key);
            } else {
                once.extend_from_slice(payload);
            }
        }
        let frame_len = once.len() / count;
        let mut wire = once.clone();
        wire.extend_from_slice(&once);
        Messages {
            size,
            count,
            text,
            payloads,
            wire,
            frame_len,
        }
    }

    /// The payload of message `index % count`.
    pub(crate) fn payload(&self, index: usize) -> &[u8] {
        let index = index % self.count;
        &self.payloads[index * self.size..(index + 1) * self.size]
    }

    /// Bytes in one cycle of the wire stream (`count` messages).
    pub(crate) fn cycle_len(&self) -> usize {
        self.count * self.frame_len
    }
}

/// Appends one final, masked client frame.
pub(crate) fn encode_client_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], key: [u8; 4]) {
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_payloads_have_the_exact_size_and_are_utf8() {
        for size in [1, 2, 20, 1024, 65536] {
            let messages = Messages::new(size, 3, true, true);
            for index in 0..messages.count {
                let payload = messages.payload(index);
                assert_eq!(payload.len(), size);
                let text = std::str::from_utf8(payload).expect("valid UTF-8");
                if size >= 1024 {
                    let ascii = text.chars().filter(char::is_ascii).count();
                    assert!(ascii * 4 < text.chars().count(), "mostly non-ASCII");
                }
            }
        }
    }

    #[test]
    fn the_wire_is_two_cycles_of_frames() {
        let messages = Messages::new(20, 2, false, true);
        assert_eq!(messages.frame_len, 2 + 4 + 20);
        assert_eq!(messages.wire.len(), 2 * messages.cycle_len());
        let raw = Messages::new(20, 2, false, false);
        assert_eq!(raw.frame_len, 20);
        assert_eq!(&raw.wire[..raw.cycle_len()], &raw.payloads[..]);
    }
}
