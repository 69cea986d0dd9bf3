"""Kubernetes API emulator: wire-faithful enough for kubectl and the kubernetes client.

Not emulated (details in emulator/README.md): RBAC enforcement and admission; validation of built-in specs
beyond names, immutable fields and time formats; validation, pruning and conversion of custom resources;
more than one version per built-in kind; protobuf/CBOR responses and aggregated discovery; a scheduler
and node controllers (Nodes are plain stored objects; one pretend kubelet runs every Pod), and the
controllers beyond namespace, workload, endpoint and event ones; persistence.
"""
