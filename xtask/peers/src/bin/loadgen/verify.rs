//! Checking what comes back: a streaming parser of the server's frames that compares every
//! payload byte with what was sent, and the same comparison for the unframed raw stream.
//! Neither buffers a message: bytes are checked where the read put them.

use crate::payload::Messages;

/// The state of one connection's incoming stream.
#[derive(Debug)]
pub(crate) enum EchoReader {
    WebSocket(FrameReader),
    Raw(RawReader),
}

impl EchoReader {
    pub(crate) fn new(websocket: bool) -> Self {
        if websocket {
            EchoReader::WebSocket(FrameReader::default())
        } else {
            EchoReader::Raw(RawReader::default())
        }
    }

    /// Checks `data`, the next bytes read; returns how many messages it completed.
    pub(crate) fn feed(&mut self, data: &[u8], messages: &Messages) -> Result<usize, String> {
        match self {
            EchoReader::WebSocket(reader) => reader.feed(data, messages),
            EchoReader::Raw(reader) => reader.feed(data, messages),
        }
    }
}

/// The unframed echo: the stream must equal the payloads sent, in order.
#[derive(Debug, Default)]
pub(crate) struct RawReader {
    /// Bytes verified so far.
    received: u64,
}

impl RawReader {
    fn feed(&mut self, mut data: &[u8], messages: &Messages) -> Result<usize, String> {
        let size = messages.size as u64;
        let before = self.received / size;
        let cycle = messages.payloads.len() as u64;
        while !data.is_empty() {
            let at = (self.received % cycle) as usize;
            let n = data.len().min(messages.payloads.len() - at);
            if data[..n] != messages.payloads[at..at + n] {
                return Err(format!(
                    "raw echo differs from what was sent, within bytes {}..{}",
                    self.received,
                    self.received + n as u64
                ));
            }
            self.received += n as u64;
            data = &data[n..];
        }
        Ok((self.received / size - before) as usize)
    }
}

/// Where the frame parser is.
#[derive(Debug)]
enum FrameState {
    /// Collecting a header (2 to 10 bytes: server frames are not masked).
    Header { buf: [u8; 10], len: usize },
    /// In a frame's payload.
    Payload { remaining: u64, fin: bool },
}

/// The echoed WebSocket stream: data frames only, each message equal to the one sent.
#[derive(Debug)]
pub(crate) struct FrameReader {
    state: FrameState,
    /// Messages completed so far: the next one must carry payload `messages % count`.
    messages: usize,
    /// Payload bytes of the current message verified so far.
    offset: usize,
    /// Inside a fragmented message.
    in_message: bool,
}

impl Default for FrameReader {
    fn default() -> Self {
        FrameReader {
            state: FrameState::Header {
                buf: [0; 10],
                len: 0,
            },
            messages: 0,
            offset: 0,
            in_message: false,
        }
    }
}

impl FrameReader {
    fn feed(&mut self, mut data: &[u8], messages: &Messages) -> Result<usize, String> {
        let before = self.messages;
        while !data.is_empty() {
            match &mut self.state {
                FrameState::Header { buf, len } => {
                    // Two bytes first; they tell how long the rest of the header is.
                    let need = if *len < 2 { 2 } else { header_len(buf[1]) };
                    let take = (need - *len).min(data.len());
                    buf[*len..*len + take].copy_from_slice(&data[..take]);
                    *len += take;
                    data = &data[take..];
                    if *len >= 2 && *len == header_len(buf[1]) {
                        let (header, len) = (*buf, *len);
                        self.start_frame(&header[..len], messages)?;
                    }
                }
                FrameState::Payload { remaining, fin } => {
                    let n = data
                        .len()
                        .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                    let expected = &messages.payload(self.messages)[self.offset..self.offset + n];
                    if data[..n] != *expected {
                        return Err(format!(
                            "echo of message {} differs from what was sent, within payload bytes \
                             {}..{}",
                            self.messages,
                            self.offset,
                            self.offset + n
                        ));
                    }
                    self.offset += n;
                    *remaining -= n as u64;
                    data = &data[n..];
                    if *remaining == 0 {
                        let fin = *fin;
                        self.end_frame(fin, messages)?;
                    }
                }
            }
        }
        Ok(self.messages - before)
    }

    fn start_frame(&mut self, header: &[u8], messages: &Messages) -> Result<(), String> {
        let fin = header[0] & 0x80 != 0;
        let rsv = header[0] & 0x70;
        let opcode = header[0] & 0x0f;
        if rsv != 0 {
            return Err(format!(
                "frame with RSV bits {rsv:#x} (no extension was negotiated)"
            ));
        }
        if header[1] & 0x80 != 0 {
            return Err("masked frame from the server".into());
        }
        let len = match header[1] & 0x7f {
            126 => u64::from(u16::from_be_bytes([header[2], header[3]])),
            127 => u64::from_be_bytes([
                header[2], header[3], header[4], header[5], header[6], header[7], header[8],
                header[9],
            ]),
            n => u64::from(n),
        };
        let expected = if messages.text { 0x1 } else { 0x2 };
        match opcode {
            0x0 if self.in_message => {}
            op if op == expected && !self.in_message => {}
            0x8 => return Err("the server sent a close frame (see its log)".into()),
            op => {
                return Err(format!(
                    "unexpected frame: opcode {op:#x} (expected {}{expected:#x})",
                    if self.in_message { "0x0 or " } else { "" }
                ));
            }
        }
        if self.offset as u64 + len > messages.size as u64 {
            return Err(format!(
                "echo of message {} is longer than the {} bytes sent",
                self.messages, messages.size
            ));
        }
        self.in_message = true;
        self.state = FrameState::Payload {
            remaining: len,
            fin,
        };
        if len == 0 {
            self.end_frame(fin, messages)?;
        }
        Ok(())
    }

    fn end_frame(&mut self, fin: bool, messages: &Messages) -> Result<(), String> {
        if fin {
            if self.offset != messages.size {
                return Err(format!(
                    "echo of message {} has {} bytes, {} were sent",
                    self.messages, self.offset, messages.size
                ));
            }
            self.messages += 1;
            self.offset = 0;
            self.in_message = false;
        }
        self.state = FrameState::Header {
            buf: [0; 10],
            len: 0,
        };
        Ok(())
    }
}

/// The length of a server frame's header, from its second byte.
fn header_len(second: u8) -> usize {
    match second & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => out.push(n as u8),
            n if n <= 0xffff => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn echoes_verify_in_any_split() {
        for size in [20, 200, 70_000] {
            let messages = Messages::new(size, 2, true, true);
            let mut wire = Vec::new();
            for i in 0..6 {
                wire.extend(server_frame(0x1, true, messages.payload(i)));
            }
            // The third message fragmented in two.
            let third = messages.payload(6);
            wire.extend(server_frame(0x1, false, &third[..size / 2]));
            wire.extend(server_frame(0x0, true, &third[size / 2..]));
            for chunk in [1, 3, 7, 1000, wire.len()] {
                let mut reader = EchoReader::new(true);
                let done: usize = wire
                    .chunks(chunk)
                    .map(|c| reader.feed(c, &messages).unwrap())
                    .sum();
                assert_eq!(done, 7, "size {size} chunk {chunk}");
            }
        }
    }

    #[test]
    fn a_wrong_byte_a_wrong_order_or_type_fails() {
        let messages = Messages::new(20, 1, false, true);
        let mut corrupt = server_frame(0x2, true, messages.payload(0));
        corrupt[10] ^= 1;
        assert!(EchoReader::new(true).feed(&corrupt, &messages).is_err());
        let swapped = server_frame(0x2, true, messages.payload(1));
        assert!(EchoReader::new(true).feed(&swapped, &messages).is_err());
        let text = server_frame(0x1, true, messages.payload(0));
        assert!(EchoReader::new(true).feed(&text, &messages).is_err());
        let ping = server_frame(0x9, true, b"");
        assert!(EchoReader::new(true).feed(&ping, &messages).is_err());
    }

    #[test]
    fn the_raw_stream_counts_messages_by_size() {
        let messages = Messages::new(10, 2, false, false);
        let stream: Vec<u8> = messages.wire.iter().copied().cycle().take(95).collect();
        let mut reader = EchoReader::new(false);
        let done: usize = stream
            .chunks(7)
            .map(|c| reader.feed(c, &messages).unwrap())
            .sum();
        assert_eq!(done, 9);
        let mut bad = stream.clone();
        bad[42] ^= 0xff;
        let mut reader = EchoReader::new(false);
        assert!(bad.chunks(7).any(|c| reader.feed(c, &messages).is_err()));
    }
}
