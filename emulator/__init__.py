"""Kubernetes API emulator: wire-faithful enough for kubectl and the kubernetes client."""
