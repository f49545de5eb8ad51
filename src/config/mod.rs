//! Configuration: native YAML with precise errors. Filled in by the config work.
