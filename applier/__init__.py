"""Applier: fetch -> decode/unseal -> plan -> server-side apply -> record.

Read in this order:
    cli.py        `kubedr apply | diff | switchover | images`: flags -> ApplyOptions -> engine_for() -> Engine
    policy.py     the operator's Settings, and the repo policy's apply section that fills what they leave open
    round.py      the Engine: one round end to end, and the loop of rounds
    fetch.py      which commit, which paths changed (git ls-remote / watchdog on a local checkout / a webhook)
    routing.py    the Git host's webhook reaches the replica that leads (its pod is labelled while it leads)
    history.py    how the branch head relates to what this secondary applied (rollback, rewrite, re-point: held)
    trust.py      only signed history is applied, or what a signed commit acknowledges
    role.py       each cluster's record of its role; nothing is applied while this cluster writes the branch
    decode.py     file -> object: repo contract, unseal, kubernetes-validate, namespace/image/storage maps
    order.py      the apply order as one table (deletions reversed)
    apply.py      server-side apply as field manager `kubedr` (force), concurrent within a stage
    recreate.py   an object whose immutable fields changed is deleted and created again, as on the primary
    fieldset.py   a field manager's managedFields set and the values it holds (used by drift)
    inventory.py  what kubedr applied (on the secondary) and the prune guard
    standby.py    hold by the rules of kubedr.holds (the primary's value in an annotation); switchover; the mode
    holding.py    which rule holds a kind here: the repo policy's, the built-in table, a CRD's scale subresource
    serving.py    the workloads behind webhooks and aggregated APIs stay up in standby
    takeover.py   after a switchover: follow every workload until Available, the RTO, what is not and why
    readiness.py  when a workload is Available (kstatus) and why one is not (Pods, Events), as tables
    images.py     every image the repo's workloads need at switchover, and whether a registry has it
    drift.py      what changed on the secondary behind kubedr's back (one kubedr.listwatch loop per kind): healed
                  or reported; strays
    sources.py    a source's name and its records on the secondary (a kubedr before sources' moved to them)
    owners.py     which source owns an object: another source's is never changed, held or pruned
    status.py     the kubedr-status record on the secondary; read_status() for `kubedr status`
    state.py      kubedr's state ConfigMaps in kubedr-system (requests go through the base client, kubedr.kubeapi)
    diff.py       `kubedr diff`
"""
