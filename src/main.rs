//! The `cpis-hub` binary: everything lives in the library; see the library.

fn main() {
    std::process::exit(cpis_hub::main());
}
