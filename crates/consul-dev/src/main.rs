//! The `consul-dev` binary.
fn main() {
    eprintln!("error: consul-dev is not implemented yet");
    std::process::exit(2);
}
