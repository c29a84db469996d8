//! The `shippy` command: runs the whole system or any one part of it.

fn main() {}
