//! The regex parsers of conf/parsers.conf (nginx, apache, apache2, apache_error, cri, the
//! syslog ones; some run on the one-pass field matcher, the others on the regex crate) and a
//! regex parser with `Types`, plus `TimeFormat::parse` on its own.
//!
//! Input: `[selector, text...]`: the selector picks the parser (or, with the high bit set, a
//! time format to parse the text with).
#![no_main]

#[allow(dead_code)]
mod parsers;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use logrouter::parser::Parser;
use logrouter::parser::time::TimeFormat;

struct Fixture {
    parsers: Vec<Parser>,
    times: Vec<TimeFormat>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mut parsers = parsers::from_default_file("regex");
        for p in &parsers {
            p.prepare().expect("a default parser prepares");
        }
        parsers.push(parsers::from_pairs(&[
            ("Name", "typed"),
            ("Format", "regex"),
            (
                "Regex",
                r"^(?<time>[^ ]+) (?<n>\S+) (?<f>\S+) (?<b>\S+) (?<h>\S+)(?: (?<rest>.*))?$",
            ),
            ("Time_Key", "time"),
            ("Time_Format", "%s.%L"),
            ("Time_Offset", "-07:00"),
            ("Types", "n:integer f:float b:bool h:hex"),
            ("Skip_Empty_Values", "Off"),
        ]));
        let times = [
            "%d/%b/%Y:%H:%M:%S %z",
            "%Y-%m-%dT%H:%M:%S.%L%z",
            "%Y-%m-%dT%H:%M:%S%z",
            "%b %d %H:%M:%S",
            "%s",
            "%s.%L",
            "%a %b %d %H:%M:%S.%L %Y",
            "%Y-%m-%d %H:%M:%S.%L %Z",
        ]
        .iter()
        .map(|f| TimeFormat::new(f).expect("a fixed time format"))
        .collect();
        Fixture { parsers, times }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, text)) = data.split_first() else {
        return;
    };
    let f = fixture();
    if sel & 0x80 != 0 {
        let t = &f.times[usize::from(sel & 0x7f) % f.times.len()];
        let _ = t.parse(text, i64::from(sel & 0x7f) * 900 - 43_200);
        return;
    }
    let p = &f.parsers[usize::from(sel) % f.parsers.len()];
    let mut arena = bytes::BytesMut::new();
    parsers::parse(p, text, &mut arena);
});
