//! The `cronnode` binary.
fn main() {
    eprintln!("error: cronnode is not implemented yet");
    std::process::exit(2);
}
