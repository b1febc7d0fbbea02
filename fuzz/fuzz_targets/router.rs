//! One HTTP request (method, URI, headers, body) through the real router, without a socket.
//! The input format is `sluice::fuzzing::router`'s.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzzing::router(data));
