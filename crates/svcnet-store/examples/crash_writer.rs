//! The writer `tests/store.rs` kills with SIGKILL: creates objects in the store at the given
//! path forever, printing `ack <i> <revision>` after each committed write.

fn main() {
    let path = std::env::args().nth(1).expect("usage: crash_writer STORE_FILE");
    let store = svcnet_store::Store::open(std::path::Path::new(&path), 1000).expect("opening the store");
    for i in 0u64.. {
        let key = svcnet_store::Key::new("services", "default", &format!("s{i}"));
        let stored = store.create(&key, format!("value-{i}").as_bytes()).expect("writing");
        println!("ack {i} {}", stored.revision);
    }
}
