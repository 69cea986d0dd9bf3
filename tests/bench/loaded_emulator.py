"""An emulator process that also drives its own load through the in-process API (no HTTP client in the way).

Reads commands on stdin, answers on stdout:
  seed N            -> create ConfigMaps cm-0..cm-N-1 in namespace bench; prints "seeded"
  load N RATE [FILE] -> N updates (round robin over the seeded objects) paced at RATE/s, in bursts of 50;
                       prints "loaded <start> <end>" (time.monotonic(), comparable across processes on Linux);
                       FILE gets the time each update was made, one per line
"""

from __future__ import annotations

import sys
import time

from kubedr.emulator.server import Emulator

NS = "bench"


def _cm(name: str, value: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NS,
                                                                  "labels": {"app": "bench"}},
            "data": {"value": value, "settings.yaml": "mode: bench\nreplicas: 3\nfeature: on\n"}}


def main() -> None:
    kubeconfig, history = sys.argv[1], int(sys.argv[2])
    emu = Emulator(history=history, controllers=False).start()
    emu.write_kubeconfig(kubeconfig)
    api = emu.api
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    seeded = 0
    for line in sys.stdin:
        cmd, *args = line.split()
        if cmd == "seed":
            seeded = int(args[0])
            for i in range(seeded):
                api.create(_cm(f"cm-{i}", "0"))
            print("seeded", flush=True)
        elif cmd == "load":
            n, rate = int(args[0]), float(args[1])
            written: list[float] = []
            start = time.monotonic()
            for i in range(n):
                if i % 50 == 0 and (ahead := start + i / rate - time.monotonic()) > 0:
                    time.sleep(ahead)  # pacing the load generator
                api.update(_cm(f"cm-{i % seeded}", f"load-{i}"))
                written.append(time.monotonic())
            if len(args) > 2:
                with open(args[2], "w") as fh:
                    fh.write("".join(f"{t}\n" for t in written))
            print("loaded", start, time.monotonic(), flush=True)
    emu.stop()


if __name__ == "__main__":
    main()
