#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| keyshard_core::fuzzing::ecdsa_node(data));
