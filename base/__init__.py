"""kubedr: disaster protection for Kubernetes between two regions."""

__version__ = "0.1.0"
