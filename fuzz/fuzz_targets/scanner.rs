//! `Scanner::advance` over arbitrary bytes that arrive in pieces.
//!
//! Input: `[max_bytes, max_depth, n, size_1 .. size_n, stream...]`. The stream is fed to the
//! scanner as a connection would receive it, in pieces whose sizes cycle through `size_i`
//! (0 included: a read that added nothing), and each frame the scanner finds is split off the
//! front of the buffer. Checks: no panic; a frame's length is within the buffer and the
//! limits; the frames (and the final error, if any) are the same as when the whole stream is
//! scanned at once; every frame is one whole msgpack value for `Reader::skip`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logrouter::msgpack::{DecodeError, Reader, Scanner, ScannerLimits};

#[derive(Debug, PartialEq)]
enum End {
    /// The stream ended with this many bytes of an unfinished frame buffered.
    NeedMore(usize),
    Error(DecodeError),
}

fn check_frame(frame: &[u8], limits: ScannerLimits) {
    assert!(!frame.is_empty(), "empty frame");
    assert!(frame.len() <= limits.max_bytes, "frame past max_bytes");
    let mut r = Reader::new(frame);
    let skipped = r.skip().expect("a scanned frame is one whole value");
    assert_eq!(skipped.len(), frame.len(), "frame is not exactly one value");
}

/// Feeds `stream` in pieces; returns the frames' lengths and how the stream ended.
fn pieces(stream: &[u8], sizes: &[usize], limits: ScannerLimits) -> (Vec<usize>, End) {
    let mut scanner = Scanner::new(limits);
    let mut buf: Vec<u8> = Vec::new();
    let mut frames = Vec::new();
    let mut fed = 0;
    let mut i = 0;
    while fed < stream.len() {
        let n = sizes[i % sizes.len()].min(stream.len() - fed);
        i += 1;
        buf.extend_from_slice(&stream[fed..fed + n]);
        fed += n;
        loop {
            match scanner.advance(&buf) {
                Ok(Some(len)) => {
                    assert!(len <= buf.len(), "frame length {len} past the buffer");
                    check_frame(&buf[..len], limits);
                    frames.push(len);
                    buf.drain(..len);
                }
                Ok(None) => break,
                Err(e) => return (frames, End::Error(e)),
            }
        }
    }
    (frames, End::NeedMore(buf.len()))
}

/// Scans the whole stream at once.
fn whole(stream: &[u8], limits: ScannerLimits) -> (Vec<usize>, End) {
    let mut scanner = Scanner::new(limits);
    let mut frames = Vec::new();
    let mut rest = stream;
    loop {
        match scanner.advance(rest) {
            Ok(Some(len)) => {
                assert!(len <= rest.len());
                frames.push(len);
                rest = &rest[len..];
            }
            Ok(None) => return (frames, End::NeedMore(rest.len())),
            Err(e) => return (frames, End::Error(e)),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let limits = ScannerLimits {
        max_bytes: 1 + usize::from(data[0]) * 16,
        max_depth: 1 + usize::from(data[1] % 16),
    };
    let n = 1 + usize::from(data[2] % 8);
    if data.len() < 3 + n {
        return;
    }
    let sizes: Vec<usize> = data[3..3 + n]
        .iter()
        .map(|&b| usize::from(b % 64))
        .collect();
    let stream = &data[3 + n..];
    // A list of only empty pieces would never deliver anything.
    let sizes = if sizes.iter().all(|&s| s == 0) {
        vec![1]
    } else {
        sizes
    };
    let a = pieces(stream, &sizes, limits);
    let b = whole(stream, limits);
    assert_eq!(a, b, "pieces and whole stream disagree");
});
