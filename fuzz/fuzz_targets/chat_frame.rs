#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    opsdeck_fuzz::chat_frame(data);
});
