//! Cross-process wake-up round trip: written in the next commit.

fn main() {}
