//! The `leasebox` binary: everything lives in the library; `cli::main` is the one exit funnel.

fn main() {
    std::process::exit(leasebox::cli::main());
}
