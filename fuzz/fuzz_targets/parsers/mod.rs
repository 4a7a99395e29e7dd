//! What the parser targets share: building parsers and checking what they produce.

use bytes::BytesMut;
use logrouter::config::loader::Loader;
use logrouter::config::{Location, Section, SectionKind};
use logrouter::parser::Parser;
use logrouter::record::{Event, EventTime, RecordBuilder};

/// The repository's default parsers file, `format` ones only.
pub fn from_default_file(format: &str) -> Vec<Parser> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../conf/parsers.conf");
    let mut loader = Loader::new();
    loader
        .load_file(std::path::Path::new(path))
        .expect("conf/parsers.conf loads");
    let parsers: Vec<Parser> = loader
        .sections
        .iter()
        .filter(|s| s.kind == SectionKind::Parser)
        .filter(|s| {
            s.str("format")
                .is_some_and(|f| f.eq_ignore_ascii_case(format))
        })
        .map(|s| Parser::from_section(s).expect("a default parser builds"))
        .collect();
    assert!(
        !parsers.is_empty(),
        "no {format} parser in conf/parsers.conf"
    );
    parsers
}

/// A parser from `Key value` pairs.
pub fn from_pairs(pairs: &[(&str, &str)]) -> Parser {
    let mut s = Section::new(SectionKind::Parser, Location::command_line());
    for (k, v) in pairs {
        s.push(*k, *v, Location::command_line());
    }
    let p = Parser::from_section(&s).expect("the fixed parser builds");
    p.prepare().expect("the fixed parser prepares");
    p
}

/// Parses `text` and checks the record is a well-formed map whose fields all read back.
pub fn parse(p: &Parser, text: &[u8], arena: &mut BytesMut) -> Option<Option<EventTime>> {
    let mut b = RecordBuilder::new(arena);
    let r = p.parse(text, &mut b);
    if r.is_some() {
        let n = b.len();
        let record = b.finish();
        let event = Event::new(EventTime::from_nanos(0), record).expect("a parsed record decodes");
        let mut fields = event.fields();
        let mut seen = 0;
        while let Some(f) = fields.next_raw() {
            f.expect("a parsed record's field decodes");
            seen += 1;
        }
        assert_eq!(seen, n, "field count");
    }
    r
}

/// A `format` parser as written plainly, and one with `Time_Key`, `Types` and
/// `Skip_Empty_Values Off`.
pub fn plain_and_typed(format: &str) -> Vec<Parser> {
    vec![
        from_pairs(&[("Name", "plain"), ("Format", format)]),
        from_pairs(&[
            ("Name", "typed"),
            ("Format", format),
            ("Time_Key", "time"),
            ("Time_Format", "%Y-%m-%dT%H:%M:%S.%L%z"),
            ("Types", "n:integer f:float b:bool h:hex"),
            ("Skip_Empty_Values", "Off"),
        ]),
    ]
}

/// The targets' input, `[selector, text...]`: `text` parsed by the parser `selector` picks.
pub fn run(parsers: &[Parser], data: &[u8]) {
    let Some((&sel, text)) = data.split_first() else {
        return;
    };
    let mut arena = BytesMut::new();
    parse(&parsers[usize::from(sel) % parsers.len()], text, &mut arena);
}
