//! CompressedPackedForward: `[tag, bin, {"compressed": "gzip"}]`.
//!
//! The fuzz input is used twice: as the gzip payload itself (reaching the inflater with
//! arbitrary, mostly invalid, gzip), and gzip-compressed as the payload (reaching the decoding
//! of the inflated entries). Both frames go through the scanner and the stepped entry reads as
//! a connection's would, with a small limit on the inflated size.
//!
//! Input: `[step, flags, payload...]`; flags bit 0 sends the option as `nil`-free
//! `{"compressed":"gzip"}` (else no option, relying on gzip's magic bytes), bit 1 sends the
//! payload as str instead of bin.
#![no_main]

#[allow(dead_code)]
mod common;

use std::io::Write;

use libfuzzer_sys::fuzz_target;

/// Both the frame limit and the inflated-size limit (one setting, `Buffer_Max_Size`, as in the
/// connection); small, so that inflation bombs are refused quickly.
const MAX_SIZE: usize = 16 * 1024;

fn frame_with(payload: &[u8], flags: u8) -> Vec<u8> {
    let option = flags & 1 == 0;
    let mut f = vec![if option { 0x93 } else { 0x92 }];
    logrouter::msgpack::write_str(&mut f, b"fuzz.gzip");
    let n = payload.len() as u32;
    if flags & 2 == 0 {
        f.push(0xc6);
    } else {
        f.push(0xdb);
    }
    f.extend_from_slice(&n.to_be_bytes());
    f.extend_from_slice(payload);
    if option {
        f.push(0x81);
        logrouter::msgpack::write_str(&mut f, b"compressed");
        logrouter::msgpack::write_str(&mut f, b"gzip");
    }
    f
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let step = usize::from(data[0]) * 8;
    let flags = data[1];
    let payload = &data[2..];

    // The input as the gzip payload.
    let f = frame_with(payload, flags);
    assert_eq!(common::connection(&f, MAX_SIZE, f.len(), step), 1);

    // The input gzip-compressed, in one or two members.
    let mut gz = Vec::new();
    let split = if flags & 4 == 0 {
        payload.len()
    } else {
        payload.len() / 2
    };
    for part in [&payload[..split], &payload[split..]] {
        if part.is_empty() && !gz.is_empty() {
            continue;
        }
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(part).unwrap();
        gz.extend_from_slice(&e.finish().unwrap());
    }
    let f = frame_with(&gz, flags);
    assert_eq!(common::connection(&f, MAX_SIZE, 4096, step), 1);
});
