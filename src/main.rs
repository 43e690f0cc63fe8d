//! The `cpis-hub` binary: everything lives in the library; see `cpis_hub::cli`.

fn main() {
    std::process::exit(cpis_hub::cli::main());
}
