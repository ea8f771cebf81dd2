//! Prints the next slots of an expression: `cargo run -p cron-core --example next -- EXPR [TZ]`.
#![allow(clippy::unwrap_used)]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let s = cron_core::Schedule::parse(&args[1], args.get(2).map(|s| s.as_str()));
    let s = match s {
        Ok(s) => s,
        Err(e) => {
            println!("error: {e}");
            return;
        }
    };
    let mut t = chrono::DateTime::parse_from_rfc3339("2026-11-26T20:31:10Z")
        .unwrap()
        .to_utc();
    for _ in 0..5 {
        match s.next_after(t) {
            Some(n) => {
                println!("{n}");
                t = n;
            }
            None => {
                println!("none");
                break;
            }
        }
    }
}
