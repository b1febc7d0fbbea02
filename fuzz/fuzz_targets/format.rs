//! Every integration's parse through the registry's dispatch: the first byte picks the kind.
//! The input format is `sluice::fuzzing::format`'s.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzzing::format(data));
