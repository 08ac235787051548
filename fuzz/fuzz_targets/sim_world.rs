#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| keyshard_sim::fuzzing::world(data));
