"""Snapshot job: etcd snapshot + kubeadm files -> bundle -> age -> object store; restore."""
