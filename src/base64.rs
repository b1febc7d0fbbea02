//! Base64 in the two alphabets sluice needs, without a crate: the standard one with padding
//! (`serve --record` bodies, SNS signatures, webhook signatures) and the URL-safe one without
//! padding (the status page's session ids and CSRF tokens).

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn encode(data: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

fn decode(s: &str, alphabet: &[u8; 64]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let v = alphabet.iter().position(|&b| b == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Standard base64 with padding.
pub fn encode_base64(data: &[u8]) -> String {
    encode(data, STANDARD, true)
}

/// Reads standard base64, padded or not.
pub fn decode_base64(s: &str) -> Option<Vec<u8>> {
    decode(s.trim_end_matches('='), STANDARD)
}

/// URL-safe base64 without padding.
pub fn encode_base64url(data: &[u8]) -> String {
    encode(data, URL_SAFE, false)
}

/// Reads exactly what [`encode_base64url`] writes (one text per value); `None` for anything
/// else.
pub fn decode_base64url(s: &str) -> Option<Vec<u8>> {
    let out = decode(s, URL_SAFE)?;
    (encode_base64url(&out) == s).then_some(out)
}
