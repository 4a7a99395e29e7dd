//! A Forward connection's bytes: the scanner splits them into frames (as
//! src/input/forward/conn.rs `process` does), each frame is opened and its entries read in
//! small steps, and the result is compared with `decode` in one go.
//!
//! Input: `[piece, step, stream...]`; the stream's bytes arrive `piece` at a time and entries
//! are read `step` bytes at a time. The raw input is also decoded as one frame, without the
//! scanner, so that malformed frames the scanner would refuse reach `open` too.
#![no_main]

#[allow(dead_code)]
mod common;

use libfuzzer_sys::fuzz_target;

const MAX_SIZE: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let piece = 1 + usize::from(data[0]);
    let step = usize::from(data[1]) * 4;
    let stream = &data[2..];
    common::connection(stream, MAX_SIZE, piece, step);
    common::frame(&bytes::Bytes::copy_from_slice(stream), MAX_SIZE, step);
});
