//! Finds where one top-level msgpack value ends in a stream that arrives in pieces.
//!
//! The scanner keeps its place (offset and the count of values still owed by each open container)
//! between calls, so each byte of a frame is looked at once however many reads deliver it; a
//! string or binary payload is skipped by length, never read. Limits are enforced while scanning:
//! a declared length that would carry the frame past the size limit fails at once, before any of
//! its bytes are buffered.

use super::{DecodeError, header};

/// Bounds on one top-level value.
#[derive(Debug, Clone, Copy)]
pub struct ScannerLimits {
    /// Largest frame, in bytes.
    pub max_bytes: usize,
    /// Deepest nesting of arrays and maps.
    pub max_depth: usize,
}

/// Resumable scanner for one top-level value at a time.
#[derive(Debug)]
pub struct Scanner {
    limits: ScannerLimits,
    /// Offset of the next header to read; may run past the buffered bytes while a payload is owed.
    pos: u64,
    /// Values still owed by each open container, innermost last.
    open: Vec<u64>,
    /// The top-level value's last header has been read.
    complete: bool,
}

impl Scanner {
    pub fn new(limits: ScannerLimits) -> Self {
        Scanner {
            limits,
            pos: 0,
            open: Vec::new(),
            complete: false,
        }
    }

    /// Continues scanning `buf`, which holds the current frame's bytes from offset 0 (the same
    /// bytes as last time, plus any that arrived since). Returns the frame's length once it is
    /// complete, after which the scanner is ready for the next frame at offset 0 of the buffer
    /// that follows it.
    pub fn advance(&mut self, buf: &[u8]) -> Result<Option<usize>, DecodeError> {
        loop {
            if self.pos > buf.len() as u64 {
                return Ok(None);
            }
            if self.complete {
                let len = self.pos as usize;
                self.reset();
                return Ok(Some(len));
            }
            let Some((h, hlen)) = header(&buf[self.pos as usize..])? else {
                return Ok(None);
            };
            let end = self.pos + hlen as u64 + h.payload_len();
            if end > self.limits.max_bytes as u64 {
                return Err(DecodeError::TooLarge {
                    declared: end,
                    limit: self.limits.max_bytes,
                });
            }
            self.pos = end;
            let children = h.children();
            if children > 0 {
                if self.open.len() >= self.limits.max_depth {
                    return Err(DecodeError::TooDeep(self.limits.max_depth));
                }
                self.open.push(children);
                continue;
            }
            // A value finished: it may finish the containers that held it.
            loop {
                match self.open.last_mut() {
                    None => {
                        self.complete = true;
                        break;
                    }
                    Some(owed) => {
                        *owed -= 1;
                        if *owed > 0 {
                            break;
                        }
                        self.open.pop();
                    }
                }
            }
        }
    }

    /// Bytes of the current frame already accounted for (for diagnostics).
    pub fn scanned(&self) -> u64 {
        self.pos
    }

    fn reset(&mut self) {
        self.pos = 0;
        self.open.clear();
        self.complete = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanner() -> Scanner {
        Scanner::new(ScannerLimits {
            max_bytes: 1 << 20,
            max_depth: 8,
        })
    }

    // ["tag.a", 1441588984, {"k":"v"}]
    const MESSAGE: &[u8] = &[
        0x93, 0xa5, b't', b'a', b'g', b'.', b'a', 0xce, 0x55, 0xec, 0xe6, 0xf8, 0x81, 0xa1, b'k',
        0xa1, b'v',
    ];

    #[test]
    fn finds_a_whole_frame() {
        let mut s = scanner();
        assert_eq!(s.advance(MESSAGE).unwrap(), Some(MESSAGE.len()));
    }

    #[test]
    fn resumes_across_every_split_point() {
        for cut in 0..MESSAGE.len() {
            let mut s = scanner();
            assert_eq!(s.advance(&MESSAGE[..cut]).unwrap(), None, "cut at {cut}");
            assert_eq!(s.advance(MESSAGE).unwrap(), Some(MESSAGE.len()));
        }
    }

    #[test]
    fn stops_at_the_first_of_several_frames() {
        let mut two = MESSAGE.to_vec();
        two.extend_from_slice(MESSAGE);
        let mut s = scanner();
        assert_eq!(s.advance(&two).unwrap(), Some(MESSAGE.len()));
        assert_eq!(
            s.advance(&two[MESSAGE.len()..]).unwrap(),
            Some(MESSAGE.len())
        );
    }

    #[test]
    fn scalars_and_empty_containers_are_frames() {
        assert_eq!(scanner().advance(&[0xc0]).unwrap(), Some(1));
        assert_eq!(scanner().advance(&[0x90]).unwrap(), Some(1));
        assert_eq!(scanner().advance(&[0x92, 0x80, 0x90]).unwrap(), Some(3));
    }

    #[test]
    fn refuses_a_declared_length_past_the_limit_before_it_arrives() {
        let mut s = Scanner::new(ScannerLimits {
            max_bytes: 1000,
            max_depth: 8,
        });
        // bin32 of 1 GiB, with no payload sent
        let err = s.advance(&[0x92, 0xa1, b't', 0xc6, 0x40, 0, 0, 0]);
        assert!(matches!(err, Err(DecodeError::TooLarge { .. })));
    }

    #[test]
    fn refuses_deep_nesting_and_invalid_markers() {
        let deep = vec![0x91; 20];
        assert_eq!(scanner().advance(&deep), Err(DecodeError::TooDeep(8)));
        assert_eq!(
            scanner().advance(&[0x92, 0xc1]),
            Err(DecodeError::InvalidMarker(0xc1))
        );
    }

    #[test]
    fn a_huge_declared_count_waits_without_allocating() {
        let mut s = scanner();
        assert_eq!(
            s.advance(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0]).unwrap(),
            None
        );
    }
}
