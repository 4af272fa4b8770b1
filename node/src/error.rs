//! Errors across N-API: every core error becomes a JS `Error` whose `code` is the core's
//! stable `ERR_SHMAP_*` code, and a panic becomes `ERR_SHMAP_PANIC` instead of unwinding
//! into Node.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Result of an entry point: the error's status string becomes the thrown error's `code`.
pub type Result<T> = napi::Result<T, &'static str>;

/// Runs an entry point's body, mapping its error to a coded JS error and catching panics.
pub fn guard<T>(f: impl FnOnce() -> shmap::Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(napi::Error::new(e.code(), e.to_string())),
        Err(payload) => Err(napi::Error::new(
            "ERR_SHMAP_PANIC",
            format!("shmap panicked (a bug): {}", panic_message(&*payload)),
        )),
    }
}

/// An argument the JS layer should never have passed.
pub fn invalid(what: &str) -> shmap::Error {
    shmap::Error::InvalidArgument(what.to_owned())
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "unknown panic"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_errors_keep_their_code() {
        let e = guard::<()>(|| Err(shmap::Error::Closed)).unwrap_err();
        assert_eq!(e.status, "ERR_SHMAP_CLOSED");
        assert_eq!(e.reason, "map handle is closed");
    }

    #[test]
    fn panics_become_errors() {
        let e = guard::<()>(|| panic!("boom")).unwrap_err();
        assert_eq!(e.status, "ERR_SHMAP_PANIC");
        assert!(e.reason.contains("boom"), "{}", e.reason);
    }
}
