//! Envoy's `OutlierDetection` (a cluster's `outlier_detection`) onto
//! `config::OutlierDetection`.
//!
//! Design: every field maps one to one, by the same name, with Envoy's defaults (the
//! model's `Default`); bounds on percents and durations are Envoy's validation rules,
//! checked before the mapping runs. A `consecutive_*` threshold of 0 is accepted and
//! never fires, as in Envoy (Istio writes it; the native format refuses it and points
//! to `enforcing_*: 0`), and `max_ejection_time` follows Envoy's rule (not set: the larger of 300 s and `base_ejection_time`; set: not below
//! `base_ejection_time`). `monitors` and `detect_degraded_hosts` are refused by name.

use super::cursor::Msg;
use crate::config::balance::OutlierDetection;
use crate::config::decode_balance::{
    finish_outlier, outlier_count, OUTLIER_COUNTS, OUTLIER_KEYS, OUTLIER_PERCENTS,
};
use crate::config::error::Diagnostics;

pub(crate) fn outlier_detection(
    o: &Msg<'_, '_>,
    diag: &mut Diagnostics,
) -> Option<OutlierDetection> {
    // The same field names as the native format's.
    o.only(diag, OUTLIER_KEYS);
    let mut out = OutlierDetection::default();
    let mut ok = true;
    for key in OUTLIER_COUNTS.iter().chain(OUTLIER_PERCENTS) {
        let Some(value) = o.wrapped_uint(key) else {
            continue;
        };
        // A `consecutive_*` of 0 never fires in Envoy, and Istio writes exactly that
        // (with `enforcing_*: 0`): accepted, and it never fires here either.
        if let Some(slot) = outlier_count(&mut out, key) {
            *slot = u32::try_from(value).unwrap_or(u32::MAX);
        }
    }
    if let Some(d) = o.duration("interval") {
        out.interval = d;
    }
    if let Some(d) = o.duration("base_ejection_time") {
        out.base_ejection_time = d;
    }
    let explicit_max = o.duration("max_ejection_time");
    if let Some(d) = explicit_max {
        out.max_ejection_time = d;
    }
    if let Some(d) = o.duration("max_ejection_time_jitter") {
        out.max_ejection_time_jitter = d;
    }
    out.split_external_local_origin_errors = o.bool("split_external_local_origin_errors");
    if let Some(b) = o.wrapped_bool("successful_active_health_check_uneject_host") {
        out.successful_active_health_check_uneject_host = b;
    }
    if let Some(b) = o.wrapped_bool("always_eject_one_host") {
        out.always_eject_one_host = b;
    }
    if let Err(message) = finish_outlier(&mut out, explicit_max.is_some()) {
        o.error(diag, "max_ejection_time", message);
        ok = false;
    }
    ok.then_some(out)
}
