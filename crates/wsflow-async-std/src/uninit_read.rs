//! Reading a TCP socket straight into the spare capacity of a `BytesMut`, without zero-filling
//! it first. futures-io reads need initialised memory, so the plain path zeroes every byte a
//! read may fill (up to 64 KiB per read, including the read that finds the socket empty); the
//! kernel needs no such thing. Measured with `cargo xtask bench`: 64 KiB messages on async-std
//! go from about 0.59 to about 0.7 of the raw TCP echo.
//!
//! The only `unsafe` of this crate, in one block, with its argument; the tests compare it with
//! the plain `Read::read` on the same byte stream.
#![allow(unsafe_code)]

use std::io;
use std::net::TcpStream;

use bytes::BytesMut;

/// Receives into the spare capacity of `buf` and extends it by what arrived (0: end of file).
/// `buf` must have spare capacity.
pub(crate) fn recv_into_spare(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    let offered = spare.len();
    let received = socket2::SockRef::from(stream).recv(spare)?;
    let received = received.min(offered);
    // SAFETY: `recv` wrote `received` bytes at the start of the spare capacity (the kernel
    // copies exactly what it returns, and never more than the `offered` bytes it was given,
    // which the `min` above enforces regardless), so the bytes up to `len + received` are
    // initialised and within the buffer's capacity.
    unsafe { buf.set_len(buf.len() + received) };
    Ok(received)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    use super::*;

    /// The same bytes sent to two connections, one read with `recv_into_spare`, the other with
    /// the plain `Read::read` into zeroed memory: both see exactly what was sent.
    #[test]
    fn reads_the_same_bytes_as_the_plain_path() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut senders = [
            TcpStream::connect(addr).unwrap(),
            TcpStream::connect(addr).unwrap(),
        ];
        let (fast_receiver, plain_receiver) =
            (listener.accept().unwrap().0, listener.accept().unwrap().0);
        let data: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let writer = std::thread::spawn(move || {
            for chunk in data.chunks(7919) {
                for sender in &mut senders {
                    sender.write_all(chunk).unwrap();
                }
            }
            data
        });
        // Both sockets are read at once, so the writer never waits on one nobody reads
        // (however little the kernel buffers).
        let plain_reader = std::thread::spawn(move || {
            let mut plain = vec![b'x'];
            let mut chunk = vec![0u8; 4099];
            while plain.len() < 300_001 {
                let n = (&plain_receiver).read(&mut chunk).unwrap();
                assert!(n > 0);
                plain.extend_from_slice(&chunk[..n]);
            }
            plain
        });
        // Odd capacities and a buffer that already holds bytes: every offset is exercised.
        let mut fast = BytesMut::with_capacity(1);
        fast.extend_from_slice(b"x");
        loop {
            fast.reserve(1 + fast.len() % 4099);
            if recv_into_spare(&fast_receiver, &mut fast).unwrap() == 0 {
                break;
            }
            if fast.len() == 300_001 {
                break;
            }
        }
        let plain = plain_reader.join().unwrap();
        let data = writer.join().unwrap();
        assert_eq!(&fast[1..], &data[..]);
        assert_eq!(&plain[1..], &data[..]);
    }

    #[test]
    fn end_of_file_reads_zero_and_leaves_the_buffer_alone() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let sender = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let receiver = listener.accept().unwrap().0;
        drop(sender);
        let mut buf = BytesMut::with_capacity(64);
        buf.extend_from_slice(b"kept");
        assert_eq!(recv_into_spare(&receiver, &mut buf).unwrap(), 0);
        assert_eq!(&buf[..], b"kept");
    }
}
