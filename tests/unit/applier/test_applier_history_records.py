"""The history part of the applier's record: the newest commit per repo and branch, a hold, an acceptance."""

from __future__ import annotations

from kubedr.applier.history import KEEP_NEWEST, REWRITE, ROLLBACK, Held, key, remember
from kubedr.applier.status import ACCEPTED_KEY, Status


def test_newest_is_kept_per_repo_and_branch_however_the_url_is_spelled() -> None:
    newest = remember({}, "https://git.example.com/dr/config.git", "main", "a" * 40)
    newest = remember(newest, "git@git.example.com:dr/config", "main", "b" * 40)  # the same repo: replaced
    newest = remember(newest, "git@git.example.com:dr/config", "staging", "c" * 40)
    assert newest == {key("ssh://git.example.com/dr/config", "main"): "b" * 40,
                      key("ssh://git.example.com/dr/config", "staging"): "c" * 40}
    for i in range(KEEP_NEWEST + 5):
        newest = remember(newest, f"https://git.example.com/dr/r{i}.git", "main", f"{i:040}")
    assert len(newest) == KEEP_NEWEST and list(newest)[-1] == key("https://git.example.com/dr/r20", "main")


def test_a_hold_round_trips_through_the_record_and_says_what_releases_it() -> None:
    held = Held("c4" * 20, "c6" * 20, "c5" * 20, ROLLBACK, 1700000000.0, gate=True, repo="ssh://h/r", branch="main")
    data = Status(held=held.to_data()).to_data()
    back = Held.from_data(Status.from_data(data).held)
    assert back == held
    assert held.line() == (f"held: branch main of ssh://h/r moved back from {'c5' * 6} to {'c6' * 6} (rollback): "
                           f"nothing of it is applied until a person acknowledges {'c4' * 6} "
                           f"(kubedr trust ack {'c4' * 6} --repo REPO --signing-key KEY)")
    open_gate = Held("d" * 40, "d" * 40, "e" * 40, REWRITE, 0.0, gate=False, repo="r", branch="main")
    assert "rewritten history" in open_gate.line() and "kubedr trust accept dddddddddddd" in open_gate.line()
    assert Held.from_data({}) is None and Held.from_data({"commit": "x"}) is None


def test_the_applier_reads_an_acceptance_but_never_writes_one() -> None:
    st = Status.from_data({"commit": "a" * 40, ACCEPTED_KEY: '{"commit": "b", "held": "b", "newest": "a"}',
                           "newest": "not json"})
    assert st.accepted == {"commit": "b", "held": "b", "newest": "a"} and st.newest == {}
    assert ACCEPTED_KEY not in st.to_data()
