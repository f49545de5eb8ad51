# Parses Prometheus text exposition (stdin) with the reference parser
# (prometheus_client.parser) and prints every sample as one JSON line:
# {"family": .., "type": .., "name": .., "labels": {..}, "value": ..}.
# Used by tests/metrics.rs: a parse error fails the test.
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        print(json.dumps({
            "family": family.name,
            "type": family.type,
            "name": s.name,
            "labels": s.labels,
            "value": s.value,
        }))
