"""Exporter: watch -> sanitize -> write -> commit -> push.

Read in this order:
    cli.py        `kubedr export`: flags -> ExportOptions -> exporter_for() -> Exporter; --explain
    pipeline.py   the Exporter: every part made with its collaborators; reconcile, run, stop, fenced
    observer.py   which served types are watched (kubeapi's discovery) and one kubedr.listwatch loop per type
    events.py     what the observer hands on: an object's change, or a finished (re)list
    selection.py  per object: does it belong in the repo (chosen namespaces, the cluster-scoped objects they use)
    scope.py      the scope as data: flags over the policy's `export:` section, filters, ignore rules, the scope file
    scoping.py    the scope at run time (Scoper): reads the policy, applies a new scope, reacts to others' commits
    recorder.py   sanitize, seal Secrets, canonical YAML: blobs of the next commit
    committer.py  group commit: what arrived since the last commit goes into the next one (NextCommit: extra
                  files and re-list holds)
    gitstore.py   the local clone (bare, no work tree): commit, fetch, push, repair after a crash
    gittree.py    trees and commit objects through libgit2; one pack for big batches
    treewalk.py   what a branch's trees hold, read as data; the entries kubedr refuses to read
    replay.py     unpushed commits made again on a remote tip that moved
    pusher.py     pushes in the background with backoff; the clone buffers while the remote is away
    follow.py     commits others push: brought in, then the cluster's state written back
    fence.py      the writer role: push only as the branch's writer, under its epoch
    coverage.py   what is watched and exported, what is not and why
    diskspace.py  whether a full disk is why a write failed
"""
