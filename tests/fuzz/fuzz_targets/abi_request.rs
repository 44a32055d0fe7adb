//! The module's raw ABI with the example snapshot loaded: the first byte
//! picks the function (check, batch, explain, permissions, list, load), the
//! rest is its input as the host would write it into the input buffer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use policy_wasm::abi;

fuzz_target!(|data: &[u8]| {
    portcullis_fuzz::load_example_into_abi();
    let Some((&which, input)) = data.split_first() else {
        return;
    };
    let len = input.len() as u32;
    let buffer = abi::pc_input(len);
    // SAFETY: pc_input returned a buffer of at least `len` bytes.
    unsafe { std::ptr::copy_nonoverlapping(input.as_ptr(), buffer, input.len()) };
    let _ = match which % 6 {
        0 => abi::pc_check(len),
        1 => abi::pc_check_batch(len),
        2 => abi::pc_explain(len),
        3 => abi::pc_permissions(len),
        4 => abi::pc_list(len),
        // A bad snapshot must leave the loaded one serving.
        _ => {
            if abi::pc_load(len) != 0 {
                assert!(
                    abi::pc_revision() >= 0,
                    "a refused load unloaded the engine"
                );
            }
            portcullis_fuzz::reload_example_into_abi();
            0
        }
    };
    let n = abi::pc_result_len();
    assert!(n >= 0);
});
