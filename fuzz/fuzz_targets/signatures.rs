//! Signed bodies: SNS envelopes and their `SigningCertURL`, signing certificates' DER, webhook
//! HMAC signatures; the first byte picks which. The input format is
//! `sluice::fuzzing::signatures`'.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzzing::signatures(data));
