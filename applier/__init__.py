"""Applier: fetch -> decode/unseal -> plan -> server-side apply -> record.

Read in this order:
    fetch.py      which commit, which paths changed (git ls-remote / watchdog on a local checkout)
    decode.py     file -> object: repo contract, unseal, kubernetes-validate, namespace/image/storage maps
    standby.py    hold by the rules of kubedr.holds (the primary's value in an annotation); switchover; the mode
    holding.py    which rule holds a kind here: the repo policy's, the built-in table, a CRD's scale subresource
    takeover.py   after a switchover: follow every workload until Available, the RTO, what is not and why
    readiness.py  when a workload is Available (kstatus) and why one is not (Pods, Events), as tables
    order.py      the apply order as one table (deletions reversed)
    apply.py      server-side apply as field manager `kubedr` (force), concurrent within a stage
    inventory.py  what kubedr applied (on the secondary) and the prune guard
    sources.py    a source's name and its records on the secondary (a kubedr before sources' moved to them)
    owners.py     which source owns an object: another source's is never changed, held or pruned
    status.py     the kubedr-status record on the secondary; read_status() for `kubedr status`
    round.py      one round end to end, and the loop of rounds
    diff.py       `kubedr diff`
    state.py      kubedr's state ConfigMaps in kubedr-system (requests go through the base client, kubedr.kubeapi)
    cli.py        `kubedr apply | diff | switchover | sync`
"""
