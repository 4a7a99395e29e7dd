//! The ltsv parser, plain and with `Time_Key`, `Types` and `Skip_Empty_Values Off`.
//!
//! Input: `[selector, text...]`.
#![no_main]

#[allow(dead_code)]
mod parsers;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use logrouter::parser::Parser;

static PARSERS: OnceLock<Vec<Parser>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    parsers::run(
        PARSERS.get_or_init(|| parsers::plain_and_typed("ltsv")),
        data,
    );
});
