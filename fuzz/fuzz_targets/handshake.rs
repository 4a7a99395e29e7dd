//! The forward handshake's PING check (src/input/forward/handshake.rs): any bytes where the
//! PING should be are refused or accepted, never a panic or an out-of-bounds read.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    logrouter::input::forward::handshake::fuzz_check_ping(data);
});
