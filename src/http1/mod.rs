//! HTTP/1.1 codec (sans-IO). Filled in by the codec work.
