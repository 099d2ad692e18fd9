//! Codec micro-benchmarks: masking, header parsing and UTF-8 validation, each beside the same
//! work done through `tungstenite`'s public API in the same run, and unmasking and validating
//! text in one pass beside doing it in two.
//!
//! Run with `cargo bench --bench codec`; `-- --quick` for a fast pass.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::io::Cursor;

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use wsflow_codec::{
    Frame, FrameHeader, OpCode, Utf8Bytes, Utf8Validator, apply_mask, apply_mask_reference,
};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const SIZES: [usize; 6] = [16, 128, 1024, 16 * 1024, 64 * 1024, 1024 * 1024];

fn masking(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask_in_place");
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let mut buf = vec![0x5au8; size + 1];
        group.bench_with_input(BenchmarkId::new("wsflow", size), &size, |b, &size| {
            // Offset by one byte so the buffer is not aligned.
            b.iter(|| apply_mask(black_box(&mut buf[1..=size]), KEY, 0));
        });
        group.bench_with_input(BenchmarkId::new("plain_loop", size), &size, |b, &size| {
            b.iter(|| apply_mask_reference(black_box(&mut buf[1..=size]), KEY, 0));
        });
    }
    group.finish();

    // tungstenite exposes masking only through `Frame::format` (header, copy, mask), so this
    // group compares the whole masked encode.
    let mut group = c.benchmark_group("encode_masked_frame");
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let payload = Bytes::from(vec![0x5au8; size]);
        let mut out = BytesMut::with_capacity(size + 14);
        group.bench_with_input(BenchmarkId::new("wsflow", size), &payload, |b, payload| {
            b.iter(|| {
                out.clear();
                Frame::new(OpCode::Binary, payload.clone())
                    .with_mask(Some(KEY))
                    .encode(&mut out);
                black_box(&out);
            });
        });
        let mut out = Vec::with_capacity(size + 14);
        group.bench_with_input(
            BenchmarkId::new("tungstenite", size),
            &payload,
            |b, payload| {
                b.iter(|| {
                    out.clear();
                    let mut frame = tungstenite::protocol::frame::Frame::message(
                        payload.clone(),
                        tungstenite::protocol::frame::coding::OpCode::Data(
                            tungstenite::protocol::frame::coding::Data::Binary,
                        ),
                        true,
                    );
                    frame.header_mut().mask = Some(KEY);
                    frame.format(&mut out).unwrap();
                    black_box(&out);
                });
            },
        );
    }
    group.finish();
}

fn header_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("header_parse");
    for (name, len) in [("7bit", 100u64), ("16bit", 1000), ("64bit", 100_000)] {
        let header = FrameHeader::new(OpCode::Binary, len).with_mask(Some(KEY));
        let mut bytes = [0u8; 14];
        let n = header.encode(&mut bytes);
        let wire = bytes[..n].to_vec();
        group.bench_function(BenchmarkId::new("wsflow", name), |b| {
            b.iter(|| FrameHeader::parse(black_box(&wire)).unwrap());
        });
        group.bench_function(BenchmarkId::new("tungstenite", name), |b| {
            b.iter(|| {
                let mut cursor = Cursor::new(black_box(&wire));
                tungstenite::protocol::frame::FrameHeader::parse(&mut cursor).unwrap()
            });
        });
    }
    group.finish();
}

fn utf8(c: &mut Criterion) {
    let ascii = "The quick brown fox jumps over the lazy dog. ".repeat(1500);
    let mixed = "Hello-µ@ßöäüàá-UTF-8!! κόσμε 𝄞 日本語のテキスト ".repeat(1000);
    // Mostly multi-byte, as `cargo xtask bench` sends in its 64 KiB text scenario.
    let multibyte = "κόσμε 日本語のテキスト µ@ßöäü 𝄞 Ελληνικά 中文 ".repeat(1000);
    let mut group = c.benchmark_group("utf8_validate");
    for (name, text, size) in [
        ("ascii", &ascii, 64 * 1024),
        ("mixed", &mixed, 64 * 1024),
        ("multibyte", &multibyte, 64 * 1024),
        ("mixed_1k", &mixed, 1024),
        ("mixed_20b", &mixed, 20),
    ] {
        let mut end = text.len().min(size);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let text = &text[..end];
        let bytes = Bytes::copy_from_slice(text.as_bytes());
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(BenchmarkId::new("wsflow_utf8bytes", name), |b| {
            b.iter(|| Utf8Bytes::try_from(black_box(bytes.clone())).unwrap());
        });
        group.bench_function(BenchmarkId::new("wsflow_streaming_4k_chunks", name), |b| {
            b.iter(|| {
                let mut validator = Utf8Validator::new();
                for chunk in black_box(&bytes).chunks(4096) {
                    validator.feed(chunk).unwrap();
                }
                validator.finish().unwrap();
            });
        });
        group.bench_function(BenchmarkId::new("tungstenite_utf8bytes", name), |b| {
            b.iter(|| {
                tungstenite::protocol::frame::Utf8Bytes::try_from(black_box(bytes.clone())).unwrap()
            });
        });
        // What wsflow uses where the CPU has no AVX-512 (and used everywhere before).
        group.bench_function(BenchmarkId::new("simdutf8_basic", name), |b| {
            b.iter(|| simdutf8::basic::from_utf8(black_box(&bytes)).unwrap().len());
        });
        group.bench_function(BenchmarkId::new("std_from_utf8", name), |b| {
            b.iter(|| std::str::from_utf8(black_box(&bytes)).unwrap().len());
        });
    }
    group.finish();
}

/// A client's masked text made ready to hand out: unmasked and validated in one pass
/// (`unmask_and_feed`, what a whole text frame past the short path takes) or in two.
fn unmask_and_validate(c: &mut Criterion) {
    let multibyte = "κόσμε 日本語のテキスト µ@ßöäü 𝄞 Ελληνικά 中文 ".repeat(1000);
    let ascii = "The quick brown fox jumps over the lazy dog. ".repeat(1500);
    let mut group = c.benchmark_group("unmask_and_validate");
    for (name, text, size) in [
        ("multibyte", &multibyte, 64 * 1024),
        ("multibyte_16k", &multibyte, 16 * 1024),
        ("multibyte_4k", &multibyte, 4 * 1024),
        ("multibyte_1k", &multibyte, 1024),
        ("ascii", &ascii, 64 * 1024),
    ] {
        let mut end = text.len().min(size);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        // Behind a 14-byte header, as a 64-bit-length frame's payload sits in the read buffer.
        let mut masked = vec![0u8; 14];
        masked.extend_from_slice(&text.as_bytes()[..end]);
        apply_mask(&mut masked[14..], KEY, 0);
        group.throughput(Throughput::Bytes(end as u64));
        group.bench_function(BenchmarkId::new("wsflow_one_pass", name), |b| {
            b.iter_batched_ref(
                || masked.clone(),
                |buf| {
                    let mut validator = Utf8Validator::new();
                    validator.unmask_and_feed(&mut buf[14..], KEY, 0).unwrap();
                    validator.finish().unwrap();
                },
                criterion::BatchSize::SmallInput,
            );
        });
        group.bench_function(BenchmarkId::new("wsflow_two_passes", name), |b| {
            b.iter_batched_ref(
                || masked.clone(),
                |buf| {
                    apply_mask(&mut buf[14..], KEY, 0);
                    let mut validator = Utf8Validator::new();
                    validator.feed(&buf[14..]).unwrap();
                    validator.finish().unwrap();
                },
                criterion::BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, masking, header_parse, utf8, unmask_and_validate);
criterion_main!(benches);
