"""Restore on the node that took the snapshot needs no --name when its etcd member is not named like the node."""

from __future__ import annotations

from snapshot_harness import fake_kubeadm_root, kubedr, listed


def test_restore_defaults_to_the_member_recorded_for_this_node(etcd_factory, age_keys, tmp_path):
    etcd = etcd_factory(name="etcd-vm-1")  # kubeadm names members after hosts; this one was renamed
    etcd.ctl("put", "/registry/configmaps/shop/a", "1")
    root, store = tmp_path / "node", tmp_path / "store"
    fake_kubeadm_root(root)
    kubedr("save", "--store", str(store), "--endpoints", etcd.client_url, "--root", str(root), "--node", "vm",
           "-r", age_keys.recipient)
    [m] = listed(str(store))
    assert m["node"] == "vm" and m["snapshot"]["member"]["name"] == "etcd-vm-1"

    base = ["restore", "--store", str(store), "-i", str(age_keys.identity)]
    out = kubedr(*base, "--node", "vm", "--data-dir", str(tmp_path / "restored"))
    assert "preflight ok: member etcd-vm-1 of etcd-vm-1" in out.stdout and "--name=etcd-vm-1" in out.stdout
    assert (tmp_path / "restored/member/snap/db").is_file()

    other = kubedr(*base, "--node", "vm-2", "--data-dir", str(tmp_path / "elsewhere"), check=False)
    errors = [line for line in other.stderr.splitlines() if "ERROR" in line]
    assert other.returncode == 1 and len(errors) == 1 and "alias vm-2: not an etcd member" in errors[0]
    assert not (tmp_path / "elsewhere").exists()
