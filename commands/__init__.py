"""The command layer: one module per `kubedr` subcommand family; the only place that wires stages together."""
