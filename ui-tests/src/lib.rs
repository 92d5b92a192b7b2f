//! Only tests/ui.rs matters here.
