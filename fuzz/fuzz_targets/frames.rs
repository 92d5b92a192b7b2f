//! Untrusted bytes into everything that decodes input from other
//! processes: frame splitting, the envelope, error trees, the opening
//! exchange. Nothing may panic, overflow the stack or allocate on a
//! peer's word.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tractor::__private::decode_untrusted(data);
});
