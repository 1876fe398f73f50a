//! FNV-1a, 32 bit (Go's `hash/fnv.New32a`), the hash behind every kubelet checkpoint checksum.

use std::fmt;

const OFFSET_BASIS: u32 = 0x811c_9dc5;
const PRIME: u32 = 0x0100_0193;

/// Streaming FNV-1a-32 hasher. Implements [`fmt::Write`] so renderers can write straight
/// into it without building the whole text first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv1a32(u32);

impl Default for Fnv1a32 {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv1a32 {
    pub fn new() -> Self {
        Fnv1a32(OFFSET_BASIS)
    }

    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u32::from(b);
            self.0 = self.0.wrapping_mul(PRIME);
        }
    }

    pub fn finish(&self) -> u32 {
        self.0
    }
}

impl fmt::Write for Fnv1a32 {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.update(s.as_bytes());
        Ok(())
    }
}

/// FNV-1a-32 of `bytes`.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h = Fnv1a32::new();
    h.update(bytes);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write;

    #[test]
    fn known_vectors() {
        // Reference values of the FNV specification.
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn streaming_equals_one_shot() {
        let mut h = Fnv1a32::new();
        write!(h, "foo").unwrap();
        h.write_str("bar").unwrap();
        assert_eq!(h.finish(), fnv1a32(b"foobar"));
    }
}
