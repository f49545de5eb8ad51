"""Parses Prometheus text exposition on stdin with the Python client's own parser (the
one Prometheus tooling uses) and prints one JSON object per sample: family, type, sample
name, labels, value. Any syntax error raises, so the test sees a failure."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        print(json.dumps({
            "family": family.name,
            "type": family.type,
            "name": sample.name,
            "labels": sample.labels,
            "value": sample.value,
        }))
