// TEMPORARY STUB (lead) — replaced by H1's sampling.rs at merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    NotTraceable,
    Sampling,
    ServiceForced,
    ClientForced,
}
pub struct Decide<'a> {
    pub sampling: &'a crate::config::observability::Sampling,
    pub parent: Option<bool>,
    pub client_trace_id: bool,
    pub force_trace: bool,
    pub request_id: Option<&'a [u8]>,
    pub draw: u64,
}
pub struct Decision {
    pub sampled: bool,
    pub reason: Reason,
}
pub fn decide(_i: &Decide) -> Decision {
    Decision {
        sampled: false,
        reason: Reason::NotTraceable,
    }
}
pub fn pack_reason(_r: &mut [u8], _x: Reason) {}
pub fn packed_reason(_r: &[u8]) -> Reason {
    Reason::NotTraceable
}
