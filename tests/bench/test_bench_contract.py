"""Benchmark: canonical YAML for 10,000 typical objects (goal: well under a few seconds)."""

from __future__ import annotations

import copy
import time

import pytest

from kubedr import contract
from kubedr.sanitize import sanitize
from tests.conftest import load_fixture


@pytest.mark.bench
def test_bench_contract_dump_10k() -> None:
    kinds = ["namespaced-deployment.json", "namespaced-service.json", "namespaced-configmap.json",
             "namespaced-statefulset.json", "namespaced-role.json"]
    base = [sanitize(o) for f in kinds for o in load_fixture(f"objects/{f}")["items"]]
    base = [o for o in base if o]
    objs = []
    for i in range(10_000):
        obj = copy.deepcopy(base[i % len(base)])
        obj["metadata"]["name"] = f"obj-{i}"
        objs.append(obj)
    start = time.perf_counter()
    total = sum(len(contract.dump(o)) for o in objs)
    dump_s = time.perf_counter() - start
    start = time.perf_counter()
    for o in objs:
        contract.load(contract.dump(o), contract.ref_of(o).path)
    round_trip_s = time.perf_counter() - start
    print(f"\ncontract.dump: 10,000 objects ({total / 1e6:.1f} MB) in {dump_s:.2f} s "
          f"({dump_s * 100:.1f} µs/object); dump+load {round_trip_s:.2f} s")
    assert dump_s < 3.0


@pytest.mark.bench
def test_bench_sanitize_10k() -> None:
    raw = [o for f in ["namespaced-deployment.json", "namespaced-service.json", "namespaced-pod.json",
                       "namespaced-statefulset.json", "namespaced-persistentvolumeclaim.json"]
           for o in load_fixture(f"objects/{f}")["items"]]
    objs = [raw[i % len(raw)] for i in range(10_000)]
    start = time.perf_counter()
    exported = sum(1 for o in objs if sanitize(o) is not None)
    took = time.perf_counter() - start
    print(f"\nsanitize: 10,000 raw objects (managedFields included, {exported} exported) in {took:.2f} s")
    assert took < 5.0
