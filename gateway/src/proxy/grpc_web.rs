//! Where gRPC-Web messages begin and end in a response body, so that a
//! call whose access is revoked can be ended the gRPC-Web way: a trailer
//! frame may only go between two messages.
//!
//! A message is a 5-byte header (a flag byte, a 4-byte big-endian length)
//! and its payload. In `application/grpc-web-text` the same bytes are
//! base64, which servers flush a message at a time — padding included, so
//! the body is concatenated base64 strings, not one — and a boundary is
//! where both the messages and the base64 groups end. The body is passed
//! on untouched; only lengths are followed.

/// Follows the messages of one gRPC-Web response body.
#[derive(Clone, Debug, Default)]
pub(crate) struct MessageBoundaries {
    text: bool,
    /// Base64 characters of the group in progress (text only).
    group: [u8; 4],
    group_len: usize,
    /// Header bytes of the message in progress.
    header: [u8; 5],
    header_len: usize,
    /// Payload bytes of the message in progress still to come.
    payload_left: u64,
}

impl MessageBoundaries {
    /// A follower for a binary (`text: false`) or base64 body.
    pub(crate) fn new(text: bool) -> Self {
        MessageBoundaries {
            text,
            ..Default::default()
        }
    }

    /// Whether the bytes seen so far end exactly at the end of a message.
    pub(crate) fn at_boundary(&self) -> bool {
        self.group_len == 0 && self.header_len == 0 && self.payload_left == 0
    }

    /// Follows `bytes`, stopping where a message ends if `stop` — then the
    /// count of bytes taken is returned (the rest belongs to later
    /// messages and is not followed). Without `stop`, all are taken.
    fn follow(&mut self, bytes: &[u8], stop: bool) -> usize {
        for (i, &b) in bytes.iter().enumerate() {
            if self.text {
                if b.is_ascii_whitespace() {
                    continue;
                }
                if let Some(slot) = self.group.get_mut(self.group_len) {
                    *slot = b;
                }
                self.group_len += 1;
                if self.group_len < 4 {
                    continue;
                }
                self.group_len = 0;
                let group = self.group;
                for decoded in decode_group(&group).into_iter().flatten() {
                    self.step(decoded);
                }
            } else {
                self.step(b);
            }
            if stop && self.at_boundary() {
                return i + 1;
            }
        }
        bytes.len()
    }

    /// Follows all of `bytes`.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        self.follow(bytes, false);
    }

    /// Follows `bytes` up to the end of the message in progress and says
    /// how many of them belong to it (`0` at a boundary; `bytes.len()` if
    /// it goes on past them).
    pub(crate) fn until_boundary(&mut self, bytes: &[u8]) -> usize {
        if self.at_boundary() {
            return 0;
        }
        self.follow(bytes, true)
    }

    /// One decoded byte of the body.
    fn step(&mut self, b: u8) {
        if self.payload_left > 0 {
            self.payload_left -= 1;
            return;
        }
        if let Some(slot) = self.header.get_mut(self.header_len) {
            *slot = b;
        }
        self.header_len += 1;
        if self.header_len == 5 {
            self.header_len = 0;
            let [_, a, b, c, d] = self.header;
            self.payload_left = u64::from(u32::from_be_bytes([a, b, c, d]));
        }
    }
}

/// The bytes a base64 group of four characters stands for (one to three;
/// `=` padding shortens it). Characters outside the alphabet count as
/// zero bits: the follower only needs lengths, and a body that is not
/// base64 is the client's to reject.
fn decode_group(group: &[u8; 4]) -> [Option<u8>; 3] {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => 0,
        }
    };
    let padding = group.iter().rev().take_while(|&&c| c == b'=').count();
    let bits = group.iter().fold(0u32, |acc, &c| {
        (acc << 6) | if c == b'=' { 0 } else { value(c) }
    });
    let bytes = [(bits >> 16) as u8, (bits >> 8) as u8, bits as u8];
    let n = 3usize.saturating_sub(padding);
    [
        (n > 0).then_some(bytes[0]),
        (n > 1).then_some(bytes[1]),
        (n > 2).then_some(bytes[2]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn message(flag: u8, payload: &[u8]) -> Vec<u8> {
        let mut m = vec![flag];
        m.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        m.extend_from_slice(payload);
        m
    }

    #[test]
    fn boundaries_however_the_bytes_are_cut() {
        let mut body = message(0, b"hello");
        body.extend(message(0, &[7u8; 300]));
        body.extend(message(0, b""));
        let ends = [10, 315, 320];
        for text in [false, true] {
            let wire = if text {
                // Each message its own padded base64 string, as servers flush.
                let mut w = Vec::new();
                let mut at = 0;
                for end in ends {
                    w.extend(
                        base64::engine::general_purpose::STANDARD
                            .encode(&body[at..end])
                            .into_bytes(),
                    );
                    at = end;
                }
                w
            } else {
                body.clone()
            };
            for chunk in [1, 2, 3, 7, 64, wire.len()] {
                let mut f = MessageBoundaries::new(text);
                let mut boundaries = 0;
                for piece in wire.chunks(chunk) {
                    let mut rest = piece;
                    while !rest.is_empty() {
                        if f.at_boundary() {
                            f.feed(&rest[..1]);
                            rest = &rest[1..];
                            continue;
                        }
                        let n = f.until_boundary(rest);
                        rest = &rest[n..];
                        if f.at_boundary() {
                            boundaries += 1;
                        }
                    }
                }
                assert!(f.at_boundary(), "text {text}, chunk {chunk}");
                assert_eq!(boundaries, 3, "text {text}, chunk {chunk}");
            }
        }
    }

    #[test]
    fn mid_message_is_not_a_boundary() {
        let body = message(0, b"abcdef");
        let mut f = MessageBoundaries::new(false);
        f.feed(&body[..4]);
        assert!(!f.at_boundary());
        assert_eq!(f.until_boundary(&body[4..]), body.len() - 4);
        assert!(f.at_boundary());
    }
}
