//! Reading a tokio TCP socket at once, straight into the spare capacity of a `BytesMut`: no
//! zero-filling, and no asking tokio first whether the socket is readable. tokio keeps a
//! socket "not readable" from the read that drained it until its reactor reports new data,
//! which under load can be long after the data came (the reactor turns when the scheduler
//! runs out of tasks, or every so many tasks); the kernel knows at once.
//!
//! The only `unsafe` of this crate, in one block, with its argument; the tests compare it with
//! tokio's own read of the same byte stream.
#![allow(unsafe_code)]

use std::io;

use bytes::BytesMut;

/// Receives into the spare capacity of `buf` and extends it by what arrived (0: end of file);
/// `WouldBlock` when nothing has. `buf` must have spare capacity.
pub(crate) fn recv_into_spare<S>(stream: &S, buf: &mut BytesMut) -> io::Result<usize>
where
    for<'s> socket2::SockRef<'s>: From<&'s S>,
{
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// A connected pair: the client, and the server's end.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        (client, listener.accept().await.unwrap().0)
    }

    /// The same bytes sent to two connections, one read with `recv_into_spare`, the other
    /// with tokio's own read into zeroed memory: both see exactly what was sent.
    #[tokio::test]
    async fn reads_the_same_bytes_as_tokio() {
        let (mut fast_sender, fast_receiver) = pair().await;
        let (mut plain_sender, mut plain_receiver) = pair().await;
        let data: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            for chunk in sent.chunks(7919) {
                fast_sender.write_all(chunk).await.unwrap();
                plain_sender.write_all(chunk).await.unwrap();
            }
        });
        let plain_reader = tokio::spawn(async move {
            let mut plain = vec![b'x'];
            let mut chunk = vec![0u8; 4099];
            while plain.len() < 300_001 {
                let n = plain_receiver.read(&mut chunk).await.unwrap();
                assert!(n > 0);
                plain.extend_from_slice(&chunk[..n]);
            }
            plain
        });
        // Odd capacities and a buffer that already holds bytes: every offset is exercised.
        let mut fast = BytesMut::with_capacity(1);
        fast.extend_from_slice(b"x");
        while fast.len() < 300_001 {
            fast.reserve(1 + fast.len() % 4099);
            match recv_into_spare(&fast_receiver, &mut fast) {
                Ok(n) => assert!(n > 0),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    // tokio may still hold the socket readable from before: a `WouldBlock`
                    // through `try_io` clears that, so `readable` waits for new data.
                    let _ = fast_receiver.try_io(tokio::io::Interest::READABLE, || {
                        Err::<(), _>(io::ErrorKind::WouldBlock.into())
                    });
                    fast_receiver.readable().await.unwrap();
                }
                Err(err) => panic!("{err}"),
            }
        }
        writer.await.unwrap();
        let plain = plain_reader.await.unwrap();
        assert_eq!(&fast[1..], &data[..]);
        assert_eq!(&plain[1..], &data[..]);
    }

    #[tokio::test]
    async fn end_of_file_reads_zero_and_leaves_the_buffer_alone() {
        let (sender, receiver) = pair().await;
        drop(sender);
        receiver.readable().await.unwrap();
        let mut buf = BytesMut::with_capacity(64);
        buf.extend_from_slice(b"kept");
        assert_eq!(recv_into_spare(&receiver, &mut buf).unwrap(), 0);
        assert_eq!(&buf[..], b"kept");
    }
}
