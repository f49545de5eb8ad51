// TEMPORARY STUB (lead) — replaced by H2's sink.rs at merge.
use super::span::SpanBatch;
#[derive(Debug, Default)]
pub struct SpanSinks {
    b: SpanBatch,
}
impl SpanSinks {
    pub fn batch(&mut self, _t: usize) -> Option<&mut SpanBatch> {
        Some(&mut self.b)
    }
    pub fn pushed(&mut self, _t: usize) {}
}
