"""`kubedr diff`: what apply would change, per object, as a unified diff (live vs. what apply would produce).

The "after" side is the server's own answer to a dry-run server-side apply, so defaulting, merging with
fields other managers own and admission all show exactly as a real apply would leave them. Secret values never
show: as `kubectl diff` does, each is `***`, or `*** (before)` / `*** (after)` where it changes.
"""

from __future__ import annotations

import copy
import difflib
from typing import Any

from kubedr import contract
from kubedr.applier.apply import Action, ServerSideApplier
from kubedr.applier.decode import SECRET_FIELDS, Decoder, map_ref
from kubedr.applier.inventory import Inventory, guard
from kubedr.applier.policy import POLICY_PATH
from kubedr.applier.round import Engine
from kubedr.applier.standby import hold
from kubedr.applier.status import load as load_status
from kubedr.contract import ObjectRef
from kubedr.remote import identity, redact

VOLATILE_META = ("managedFields", "resourceVersion", "generation", "uid", "creationTimestamp", "selfLink")
MASK, MASK_BEFORE, MASK_AFTER = "***", "*** (before)", "*** (after)"  # kubectl diff's words
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"  # kubectl apply copies the whole Secret there


def normalize(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """Drop what changes on every write (managedFields, resourceVersion, ...) and status."""
    if obj is None:
        return None
    out = dict(obj)
    out.pop("status", None)
    meta = dict(out.get("metadata") or {})
    for key in VOLATILE_META:
        meta.pop(key, None)
    out["metadata"] = meta
    return out


def _mask_pair(before: dict[str, Any], after: dict[str, Any]) -> None:
    """Replace every value of two maps (in place): equal ones by ***, changed ones by *** (before)/(after)."""
    for key in before:
        if key in after and before[key] != after[key]:
            before[key], after[key] = MASK_BEFORE, MASK_AFTER
        else:
            before[key] = MASK
            if key in after:
                after[key] = MASK
    for key in after.keys() - before.keys():
        after[key] = MASK


def _map(obj: Any, key: str) -> dict[str, Any]:
    """obj[key] when it is a map (changed in place by the caller), else a throwaway empty one."""
    found = obj.get(key) if isinstance(obj, dict) else None
    return found if isinstance(found, dict) else {}


def masked(live: dict[str, Any] | None, after: dict[str, Any] | None) -> tuple[dict[str, Any] | None,
                                                                              dict[str, Any] | None]:
    """Copies of two sides of a Secret's diff with its values masked (other kinds as they are)."""
    if not any(o is not None and o.get("kind") == "Secret" and o.get("apiVersion") == "v1" for o in (live, after)):
        return live, after
    before, now = copy.deepcopy(live), copy.deepcopy(after)
    for field in SECRET_FIELDS:
        _mask_pair(_map(before, field), _map(now, field))
    notes = [_map(_map(side, "metadata"), "annotations") for side in (before, now)]
    copies = [{LAST_APPLIED: n[LAST_APPLIED]} if LAST_APPLIED in n else {} for n in notes]
    _mask_pair(*copies)
    for note, copied in zip(notes, copies, strict=True):
        note.update(copied)
    return before, now


def unified(path: str, live: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    """A unified diff of two objects' canonical YAML (Secret values masked); empty when equal."""
    live, after = masked(live, after)
    a = contract.dump(live).decode().splitlines(keepends=True) if live is not None else []
    b = contract.dump(after).decode().splitlines(keepends=True) if after is not None else []
    return "".join(difflib.unified_diff(a, b, f"live/{path}", f"repo/{path}"))


def foreign_records(engine: Engine, target: str) -> str | None:
    """Why this cluster's records (status, inventory) belong to another repo, so a plan against them is wrong."""
    status = load_status(engine.cluster, engine.records)
    if status is None or not status.commit or not status.repo or identity(status.repo) == identity(engine.settings.repo):
        return None
    if engine.source.reach(status.commit, target):
        return None  # the same history under another name
    return (f"this cluster's records are of {redact(status.repo)} ({status.branch or '?'}) at {status.commit[:12]}, "
            f"which {redact(engine.settings.repo)} does not have: refusing to plan against them (every object "
            f"they name would show as a prune)")


def diff(engine: Engine, prune: bool = False) -> tuple[list[str], list[str]]:
    """(per-object diffs, one-line errors) between the secondary and the tree apply would apply now."""
    head = engine.target()
    if head is None:
        return [], [f"{engine.settings.repo}: no commits on {engine.settings.branch}"]
    target, held = engine.preview(head)  # what apply would apply: never past a hold or an untrusted commit
    if target is None:
        return [], held
    foreign = foreign_records(engine, target)
    if foreign:
        return [], [foreign]
    engine.settings = engine._effective(target)
    s = engine.settings
    prune = prune or bool(s.prune)
    if engine.validator is None and s.validate:
        from kubedr.applier.decode import Validator
        engine.validator = Validator(engine.cluster.version())
    mode = engine.mode()
    tree = engine.source.tree(target)
    objects = engine.source.objects(target)
    applier = ServerSideApplier(engine.applier.cluster, s.concurrency, dry_run=True, source=s.source)
    decoder = Decoder(s.maps, engine.validator, s.identities, finish=lambda o: hold(o, mode), source=s.source)
    path_ref = {path: map_ref(ref, s.maps) for path, ref in objects.refs.items()}
    paths, refused = engine.owners.claim(sorted(objects.refs), path_ref, say=False)  # another source's: what apply refuses
    desired = set(path_ref.values())
    errors = [f"{path}: {reason}" for path, reason in objects.problems]
    errors += [f"{r.path}: {r.reason()}" for r in refused]
    blobs = dict(zip(paths, engine.source.read_blobs([tree[p] for p in paths]), strict=True))

    def one(path: str) -> str:
        obj = decoder.decode(path, blobs[path])
        sent = copy.deepcopy(obj)
        done = applier.apply_recreating(obj, s.recreate)
        ref = contract.ref_of(obj)
        live = applier.get_live(ref, obj["apiVersion"])
        if done.action is not Action.APPLIED:  # an immutable field changed: the server cannot show the result
            text = unified(path, normalize(live), normalize(sent))  # the manifest sent can
            return f"# {done.action} {ref} (immutable field changed)\n{text}" if text else ""
        return unified(path, normalize(live), normalize(done.live))

    out: list[str] = []
    try:
        for o in applier.run_stage(paths, one):
            if o.error:
                errors.append(f"{o.item}: {o.error}")
            elif o.result:
                out.append(o.result)
        if prune:
            out += _prunes(engine, applier, desired)
    finally:
        applier.close()
    return out, held + errors


def _prunes(engine: Engine, applier: ServerSideApplier, desired: set[ObjectRef]) -> list[str]:
    """Each deletion labelled as a prune with its reason, and the guard's verdict when it would refuse them."""
    s = engine.settings
    inventory = Inventory(engine.cluster, engine.records).load()
    why = "--prune" if "prune" in s.explicit else f"prune: true in {POLICY_PATH}"
    out = []
    for ref in sorted(inventory.refs - desired):
        live = applier.get_live(ref)
        if live is not None:
            out.append(f"# prune {ref.display}: kubedr applied it and its file left the repo ({why})\n"
                       + unified(ref.path, normalize(live), None))
    verdict = guard(len(out), len(inventory.refs), s.force_prune, s.prune_max_fraction, s.prune_max_objects)
    if out and not verdict.allowed:
        out.append(f"# apply would refuse these {len(out)} prunes: {verdict.reason}\n")
    return out
