//! Where WebSocket frames begin and end in a byte stream (RFC 6455 §5.2),
//! so that a tunnel that copies bytes untouched can still end a
//! connection properly: a close frame may only go between two frames.
//!
//! The tunnel does not parse messages, unmask payloads or re-frame
//! anything (a WebSocket library would, at a cost per message): it only
//! follows the frame headers to know where the next one starts.

/// Follows the frames of one direction of a WebSocket connection.
#[derive(Clone, Debug, Default)]
pub(crate) struct FrameBoundaries {
    /// Bytes of the current frame's header read so far (at most 14).
    header: [u8; 14],
    header_len: usize,
    /// Payload bytes of the current frame still to come, once its header
    /// is complete.
    payload_left: u64,
}

impl FrameBoundaries {
    /// Whether the bytes seen so far end exactly at the end of a frame.
    pub(crate) fn at_boundary(&self) -> bool {
        self.header_len == 0 && self.payload_left == 0
    }

    /// Follows `bytes` and returns how many of them complete the frame in
    /// progress (`0` at a boundary; `bytes.len()` if it goes on past them).
    /// The rest, if any, belongs to later frames and is not followed.
    pub(crate) fn until_boundary(&mut self, bytes: &[u8]) -> usize {
        if self.at_boundary() {
            return 0;
        }
        let mut taken = 0;
        while let Some(rest) = bytes.get(taken..).filter(|r| !r.is_empty()) {
            taken += self.step(rest);
            if self.at_boundary() {
                return taken;
            }
        }
        taken
    }

    /// Follows all of `bytes`.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let n = self.step(bytes);
            bytes = bytes.get(n..).unwrap_or_default();
        }
    }

    /// Consumes what belongs to the current frame's header or payload
    /// from the front of `bytes` (at least one byte of a non-empty slice).
    fn step(&mut self, bytes: &[u8]) -> usize {
        if self.payload_left > 0 {
            let n = usize::try_from(self.payload_left)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            self.payload_left -= n as u64;
            return n;
        }
        let mut taken = 0;
        for &b in bytes {
            // A header is whole by 14 bytes, so there is always room.
            if let Some(slot) = self.header.get_mut(self.header_len) {
                *slot = b;
            }
            self.header_len += 1;
            taken += 1;
            if let Some(payload) = self.header_complete() {
                self.header_len = 0;
                self.payload_left = payload;
                break;
            }
        }
        taken
    }

    /// The payload length, once the header read so far is whole.
    fn header_complete(&self) -> Option<u64> {
        let h = self.header.get(..self.header_len)?;
        let second = *h.get(1)?;
        let masked = second & 0x80 != 0;
        let (extended, short) = match second & 0x7f {
            126 => (2, None),
            127 => (8, None),
            n => (0, Some(u64::from(n))),
        };
        let needed = 2 + extended + if masked { 4 } else { 0 };
        if h.len() < needed {
            return None;
        }
        Some(match short {
            Some(n) => n,
            None => h
                .get(2..2 + extended)?
                .iter()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
        })
    }
}

/// A close frame (RFC 6455 §5.5.1) with `code` and `reason` (cut to the
/// 123 bytes a control frame leaves it, at a character boundary),
/// masked with `mask` when it goes from the gateway to the upstream — a
/// client's frames are masked — and unmasked to the client.
pub(crate) fn close_frame(code: u16, reason: &str, mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut cut = reason.len().min(123);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut payload = Vec::with_capacity(2 + cut);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(reason.as_bytes().get(..cut).unwrap_or_default());
    let mut frame = Vec::with_capacity(6 + payload.len());
    frame.push(0x88); // FIN, opcode close
    let len = payload.len() as u8; // ≤ 125
    match mask {
        Some(key) => {
            frame.push(0x80 | len);
            frame.extend_from_slice(&key);
            frame.extend(payload.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
        }
        None => {
            frame.push(len);
            frame.extend_from_slice(&payload);
        }
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload_len: usize, masked: bool) -> Vec<u8> {
        let mut f = vec![0x82];
        let m = if masked { 0x80 } else { 0 };
        match payload_len {
            n if n < 126 => f.push(m | n as u8),
            n if n <= 0xffff => {
                f.push(m | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(m | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if masked {
            f.extend_from_slice(&[1, 2, 3, 4]);
        }
        f.extend(std::iter::repeat_n(7u8, payload_len));
        f
    }

    #[test]
    fn boundaries_are_found_however_the_bytes_are_cut() {
        for masked in [false, true] {
            let mut wire = Vec::new();
            let mut ends = Vec::new();
            for len in [0, 5, 125, 126, 300, 65_535, 65_536, 70_000] {
                wire.extend(frame(len, masked));
                ends.push(wire.len());
            }
            for chunk in [1, 2, 3, 7, 13, 1000, 4096, wire.len()] {
                let mut f = FrameBoundaries::default();
                let mut seen = Vec::new();
                let mut at = 0;
                for piece in wire.chunks(chunk) {
                    f.feed(piece);
                    at += piece.len();
                    if f.at_boundary() {
                        seen.push(at);
                    }
                }
                let expected: Vec<usize> = ends
                    .iter()
                    .copied()
                    .filter(|e| e % chunk == 0 || *e == wire.len())
                    .collect();
                assert_eq!(seen, expected, "masked {masked}, chunks of {chunk}");
            }
        }
    }

    #[test]
    fn until_boundary_stops_at_the_end_of_the_frame_in_progress() {
        let mut wire = frame(300, false);
        let first = wire.len();
        wire.extend(frame(10, false));
        let mut f = FrameBoundaries::default();
        f.feed(&wire[..100]);
        assert!(!f.at_boundary());
        assert_eq!(f.until_boundary(&wire[100..]), first - 100);
        assert!(f.at_boundary());
        assert_eq!(f.until_boundary(&wire[first..]), 0);
    }

    #[test]
    fn close_frames_carry_code_and_reason_masked_or_not() {
        let plain = close_frame(1008, "access revoked", None);
        assert_eq!(&plain[..4], &[0x88, 16, 0x03, 0xf0]);
        assert_eq!(&plain[4..], b"access revoked");
        let key = [9, 8, 7, 6];
        let masked = close_frame(1008, "access revoked", Some(key));
        assert_eq!(&masked[..2], &[0x88, 0x80 | 16]);
        assert_eq!(&masked[2..6], &key);
        let unmasked: Vec<u8> = masked[6..]
            .iter()
            .zip(key.iter().cycle())
            .map(|(b, k)| b ^ k)
            .collect();
        assert_eq!(unmasked, plain[2..]);
        let long = close_frame(1008, &"é".repeat(100), None);
        assert!(long.len() - 2 <= 125);
        assert!(std::str::from_utf8(&long[4..]).is_ok());
        let mut f = FrameBoundaries::default();
        f.feed(&long);
        assert!(f.at_boundary());
    }
}
