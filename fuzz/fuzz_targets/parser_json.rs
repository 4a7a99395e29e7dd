//! The json parsers of conf/parsers.conf (json, docker) and one with `Types`, `Time_Keep`
//! and `Skip_Empty_Values Off`.
//!
//! Input: `[selector, text...]`.
#![no_main]

#[allow(dead_code)]
mod parsers;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use logrouter::parser::Parser;

fn fixture() -> &'static [Parser] {
    static F: OnceLock<Vec<Parser>> = OnceLock::new();
    F.get_or_init(|| {
        let mut p = parsers::from_default_file("json");
        p.push(parsers::from_pairs(&[
            ("Name", "typed"),
            ("Format", "json"),
            ("Time_Key", "ts"),
            ("Time_Format", "%Y-%m-%dT%H:%M:%S.%L%z"),
            ("Time_Keep", "On"),
            ("Types", "n:integer f:float b:bool h:hex s:string"),
            ("Skip_Empty_Values", "Off"),
        ]));
        p
    })
}

fuzz_target!(|data: &[u8]| {
    parsers::run(fixture(), data);
});
