//! The config loader on a file's text, the formats' own settings included.
//! The input format is `sluice::fuzzing::config`'s.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzzing::config(data));
