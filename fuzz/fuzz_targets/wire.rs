//! The events topic's record decoder, and the round trip of every record it reads.
//! The input format is `sluice::fuzzing::wire`'s.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzzing::wire(data));
