//! Linker setup for a Node.js addon.
fn main() {
    napi_build::setup();
}
