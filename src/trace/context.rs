// TEMPORARY STUB (lead) — replaced by H1's context.rs at merge.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Formats {
    pub w3c: bool,
    pub b3: bool,
    pub b3_single: bool,
}
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Incoming {
    pub trace_id: u128,
    pub short_id: bool,
    pub span_id: u64,
    pub parent_id: u64,
    pub sampled: Option<bool>,
    pub debug: bool,
    pub formats: Formats,
}
#[derive(Default)]
pub struct Extractor;
impl Extractor {
    pub fn observe(&mut self, _n: &[u8], _v: &[u8]) -> bool {
        false
    }
    pub fn finish(self) -> Extracted {
        Extracted {
            context: None,
            sampled_only: None,
        }
    }
}
pub struct Extracted {
    pub context: Option<Incoming>,
    pub sampled_only: Option<bool>,
}
#[derive(Clone, Copy, Debug)]
pub struct Outgoing {
    pub trace_id: u128,
    pub short_id: bool,
    pub span_id: u64,
    pub parent_id: u64,
    pub sampled: bool,
    pub debug: bool,
}
pub const MAX_LINES: usize = 320;
pub fn write_lines(_c: &Outgoing, _f: Formats, _o: &mut [u8]) -> usize {
    0
}
pub fn trace_id_hex(_id: u128, _s: bool, _o: &mut [u8; 32]) -> &str {
    ""
}
pub fn span_id_hex(_id: u64, _o: &mut [u8; 16]) -> &str {
    ""
}
pub fn new_trace_id(r: &mut fastrand::Rng) -> u128 {
    r.u128(1..)
}
pub fn new_span_id(r: &mut fastrand::Rng) -> u64 {
    r.u64(1..)
}
