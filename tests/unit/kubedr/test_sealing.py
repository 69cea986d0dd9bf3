"""Sealing Secrets with age: round trip, stable ciphertext, per-key diffs, clear errors."""

from __future__ import annotations

import base64
import copy
import difflib
import os
import stat
from pathlib import Path

import pyrage
import pytest

from kubedr import contract, sealing
from kubedr.sanitize import sanitize
from kubedr.sealing import Sealer, SealingError, UnsealError, is_sealed, unseal
from tests.conftest import load_fixture

DIGEST_KEY = bytes(range(32))


def secret() -> dict:
    """The captured Opaque Secret, sanitized as the exporter would write it."""
    items = load_fixture("objects/namespaced-secret.json")["items"]
    return sanitize(copy.deepcopy(next(i for i in items if i["metadata"]["name"] == "db-credentials")))


@pytest.fixture
def keys() -> tuple[pyrage.x25519.Identity, pyrage.x25519.Identity]:
    return pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()


def test_sealing_round_trip_for_each_recipient(keys) -> None:
    applier, breakglass = keys
    plain = secret()
    sealed = Sealer([str(applier.to_public()), str(breakglass.to_public())], DIGEST_KEY).seal(plain)
    assert is_sealed(sealed) and not is_sealed(plain)
    assert "data" not in sealed and sorted(sealed["sealed"]["values"]) == ["password", "username"]
    assert sealed["metadata"] == plain["metadata"] and sealed["type"] == "Opaque"
    for ident in keys:
        assert unseal(sealed, [ident]) == plain
    back = contract.load(contract.dump(sealed), "fixtures/Secret/db-credentials.yaml")
    assert unseal(back, [applier]) == plain


def test_sealing_values_are_armored_age_of_the_raw_value(keys) -> None:
    sealed = Sealer([str(keys[0].to_public())], DIGEST_KEY).seal(secret())
    armor = sealed["sealed"]["values"]["password"]["age"]
    assert armor.startswith("-----BEGIN AGE ENCRYPTED FILE-----\n") and armor.endswith("-----END AGE ENCRYPTED FILE-----\n")
    assert pyrage.decrypt(armor.encode(), [keys[0]]) == b"not-a-real-password"
    text = contract.dump(sealed).decode()
    assert "not-a-real-password" not in text and "bm90LWEtcmVhbC1wYXNzd29yZA" not in text
    assert "      age: |\n        -----BEGIN AGE ENCRYPTED FILE-----\n" in text


def test_sealing_string_data_is_sealed_like_data(keys) -> None:
    s = secret()
    s["stringData"] = {"token": "t0k3n", "username": "override"}
    sealed = Sealer([str(keys[0].to_public())], DIGEST_KEY).seal(s)
    assert "stringData" not in sealed
    out = unseal(sealed, [keys[0]])
    assert base64.b64decode(out["data"]["token"]) == b"t0k3n"
    assert base64.b64decode(out["data"]["username"]) == b"override"


def test_sealing_unchanged_secret_gives_identical_bytes(keys) -> None:
    sealer = Sealer([str(keys[0].to_public())], DIGEST_KEY)
    first = contract.dump(sealer.seal(secret()))
    previous = contract.load(first, "fixtures/Secret/db-credentials.yaml")
    again = Sealer([str(keys[0].to_public())], DIGEST_KEY).seal(secret(), previous)  # a restarted exporter
    assert contract.dump(again) == first
    assert contract.dump(sealer.seal(secret())) != first  # without the previous file: fresh ciphertext


def _block(lines: list[str], key: str) -> range:
    """Line numbers of one key's entry under sealed.values."""
    first = lines.index(f"    {key}:")
    last = next((i for i in range(first + 1, len(lines)) if not lines[i].startswith("      ")), len(lines))
    return range(first + 1, last)


def test_sealing_changing_one_key_changes_only_its_lines(keys) -> None:
    sealer = Sealer([str(keys[0].to_public())], DIGEST_KEY)
    first = contract.dump(sealer.seal(secret()))
    changed = secret()
    changed["data"]["password"] = base64.b64encode(b"rotated-password-value").decode()
    second = contract.dump(sealer.seal(changed, contract.load(first, "-")))
    before, after = first.decode().splitlines(), second.decode().splitlines()
    ops = [op for op in difflib.SequenceMatcher(a=before, b=after, autojunk=False).get_opcodes() if op[0] != "equal"]
    assert ops, "the password changed, so its lines must change"
    in_before, in_after = _block(before, "password"), _block(after, "password")
    for _tag, i1, i2, j1, j2 in ops:
        assert all(i in in_before for i in range(i1, i2)) and all(j in in_after for j in range(j1, j2)), ops
    assert [before[i] for i in _block(before, "username")] == [after[j] for j in _block(after, "username")]


def test_sealing_new_recipients_re_encrypt(keys) -> None:
    a, b = keys
    first = Sealer([str(a.to_public())], DIGEST_KEY).seal(secret())
    second = Sealer([str(a.to_public()), str(b.to_public())], DIGEST_KEY).seal(secret(), first)
    assert second["sealed"]["values"]["password"]["age"] != first["sealed"]["values"]["password"]["age"]
    assert unseal(second, [b]) == secret()


def test_sealing_digest_is_keyed_and_bound_to_the_secret(keys) -> None:
    sealer = Sealer([str(keys[0].to_public())], DIGEST_KEY)
    other = Sealer([str(keys[0].to_public())], b"\x01" * 32)
    s = secret()
    assert sealer.digest(s, "password", b"x") != other.digest(s, "password", b"x")
    assert sealer.digest(s, "password", b"x") != sealer.digest(s, "username", b"x")
    moved = copy.deepcopy(s)
    moved["metadata"]["name"] = "other"
    assert sealer.digest(s, "password", b"x") != sealer.digest(moved, "password", b"x")
    import hashlib
    assert hashlib.sha256(b"x").hexdigest() not in sealer.digest(s, "password", b"x")


def test_sealing_wrong_identity_is_a_clear_error(keys) -> None:
    sealed = Sealer([str(keys[0].to_public())], DIGEST_KEY).seal(secret())
    with pytest.raises(UnsealError) as info:
        unseal(sealed, [keys[1]])
    message = str(info.value)
    assert message.startswith("Secret fixtures/db-credentials: cannot unseal key 'password'") and "\n" not in message
    with pytest.raises(UnsealError, match="no identity"):
        unseal(sealed, [])


def test_sealing_refuses_bad_input(keys) -> None:
    with pytest.raises(SealingError, match="not an age X25519 recipient"):
        Sealer(["age1notakey"], DIGEST_KEY)
    with pytest.raises(SealingError, match="at least one"):
        Sealer([], DIGEST_KEY)
    sealer = Sealer([str(keys[0].to_public())], DIGEST_KEY)
    with pytest.raises(SealingError, match="only Secrets"):
        sealer.seal({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "n"}})
    bad = secret()
    bad["data"]["password"] = "not base64!"
    with pytest.raises(SealingError, match="data.password is not base64"):
        sealer.seal(bad)
    sealed = sealer.seal(secret())
    with pytest.raises(SealingError, match="already sealed"):
        sealer.seal(sealed)
    sealed["sealed"]["format"] = "kubedr.io/age/v9"
    with pytest.raises(UnsealError, match="unknown sealed format"):
        unseal(sealed, [keys[0]])


def test_sealing_plain_objects_pass_through_unseal() -> None:
    assert unseal(secret(), []) == secret()


def test_sealing_load_recipients_and_identities(tmp_path: Path, keys) -> None:
    a, b = keys
    rfile = tmp_path / "recipients.txt"
    rfile.write_text(f"# applier\n{a.to_public()}\n\n{b.to_public()}  \n")
    assert sealing.load_recipients([str(a.to_public())], [str(rfile)]) == sorted({str(a.to_public()),
                                                                                  str(b.to_public())})
    rfile.write_text("age1bogus\n")
    with pytest.raises(SealingError, match=r"recipients.txt:1: not an age X25519 recipient"):
        sealing.load_recipients([], [str(rfile)])
    ifile = tmp_path / "key.txt"
    ifile.write_text(f"# created: now\n# public key: {a.to_public()}\n{a}\n")
    [ident] = sealing.load_identities(str(ifile))
    assert str(ident.to_public()) == str(a.to_public())
    ifile.write_text("# nothing\n")
    with pytest.raises(SealingError, match="no identity"):
        sealing.load_identities(str(ifile))
    with pytest.raises(SealingError, match="missing.txt"):
        sealing.load_identities(str(tmp_path / "missing.txt"))


def test_sealing_digest_key_file_created_0600_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "digest.key"
    key = sealing.load_digest_key(str(path), create=True)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and len(key) == 32
    assert sealing.load_digest_key(str(path)) == key
    assert sealing.load_digest_key(str(path), create=True) == key
    path.write_text("short\n")
    with pytest.raises(SealingError, match="digest key"):
        sealing.load_digest_key(str(path))
    with pytest.raises(SealingError, match="digest key"):
        sealing.load_digest_key(str(tmp_path / "absent"))


def test_sealing_digest_binds_the_namespace(keys) -> None:
    sealer = Sealer([str(keys[0].to_public())], DIGEST_KEY)
    s, elsewhere = secret(), secret()
    elsewhere["metadata"]["namespace"] = "other"
    assert sealer.digest(s, "password", b"x") != sealer.digest(elsewhere, "password", b"x")


def test_sealing_a_value_without_ciphertext_is_a_clear_error(keys) -> None:
    sealed = Sealer([str(keys[0].to_public())], DIGEST_KEY).seal(secret())
    for broken in ({"hmac": "hmac-sha256:00"}, "just text"):
        sealed["sealed"]["values"]["password"] = broken
        with pytest.raises(UnsealError, match=r"sealed.values.password has no age ciphertext"):
            unseal(sealed, [keys[0]])


def test_sealing_reseal_refuses_what_it_cannot_reseal(keys) -> None:
    a, b = keys
    sealed = Sealer([str(a.to_public())], DIGEST_KEY).seal(secret())
    with pytest.raises(SealingError, match="not sealed"):
        sealing.reseal(secret(), [a], [str(b.to_public())])
    with pytest.raises(SealingError, match="at least one age recipient"):
        sealing.reseal(sealed, [a], [])
    sealed["sealed"]["format"] = "kubedr.io/age/v9"
    with pytest.raises(UnsealError, match="unknown sealed format"):
        sealing.reseal(sealed, [a], [str(b.to_public())])


def test_sealing_digest_key_readable_by_others_is_warned_about(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "digest.key"
    path.write_text("ab" * 16 + "\n")  # 32 hex characters: the shortest key taken
    path.chmod(0o600)
    assert sealing.load_digest_key(str(path)) == bytes.fromhex("ab" * 16) and not caplog.records
    path.chmod(0o640)
    sealing.load_digest_key(str(path))
    assert any("readable by group/others" in r.getMessage() for r in caplog.records)
