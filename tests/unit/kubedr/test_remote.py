from kubedr.remote import redact, scrub


def test_redact_hides_only_the_password() -> None:
    assert redact("https://kubedr:tok3n@git.example.com/dr/config.git") == \
        "https://kubedr:***@git.example.com/dr/config.git"
    assert redact("https://git.example.com/dr/config.git") == "https://git.example.com/dr/config.git"
    assert redact("ssh://git@git.example.com/dr/config.git") == "ssh://git@git.example.com/dr/config.git"
    assert redact("git@git.example.com:dr/config.git") == "git@git.example.com:dr/config.git"
    assert redact("/srv/git/config.git") == "/srv/git/config.git"


def test_scrub_removes_the_password_from_git_messages() -> None:
    url = "https://kubedr:tok3n@127.0.0.1:8443/config.git"
    msg = f"fatal: unable to access '{url}/': SSL certificate problem; password tok3n"
    assert "tok3n" not in scrub(msg, url)
    assert "https://kubedr:***@127.0.0.1:8443/config.git" in scrub(msg, url)
    assert scrub("nothing to hide", "/srv/config.git") == "nothing to hide"


def test_scrub_finds_any_url_password_without_being_told() -> None:
    msg = "fatal: unable to access 'https://kubedr:tok3n@127.0.0.1:8443/config.git/': Could not resolve host"
    assert scrub(msg) == "fatal: unable to access 'https://kubedr:***@127.0.0.1:8443/config.git/': Could not resolve host"


def test_status_never_shows_the_token_of_an_unreachable_repo() -> None:
    from kubedr.commands.status import RepoHead, head_row

    url = "https://kubedr:tok3n@127.0.0.1:1/config.git"
    row = head_row(url, "main", RepoHead(error=f"git fetch: fatal: unable to access '{url}/': refused"))
    assert row.problem and "tok3n" not in row.detail and "kubedr:***@127.0.0.1:1" in row.detail


def test_status_shows_the_export_scope_in_words_not_json() -> None:
    from kubedr.commands.status import scope_text

    scope = {"namespaces": [], "exclude_namespaces": ["kube-system", "kubedr-system"], "label_selector": None}
    assert scope_text(scope) == "namespaces: all; exclude_namespaces: kube-system,kubedr-system"
    assert scope_text({"namespaces": ["shop", "payments"]}) == "namespaces: shop,payments"


def test_identity_is_one_for_every_spelling_of_a_remote(tmp_path) -> None:
    from kubedr.remote import identity

    same = ["https://kubedr:tok3n@Git.Example.com/dr/config.git", "https://git.example.com:443/dr/config/",
            "ssh://git@git.example.com/dr/config.git", "ssh://git@git.example.com:22/dr/config",
            "git@git.example.com:dr/config.git", "git://git.example.com/dr/config.git"]
    assert {identity(u) for u in same} == {"git.example.com/dr/config"}
    others = ["https://git.example.com/dr/other.git", "https://git.example.com:8443/dr/config.git",
              "https://mirror.example.com/dr/config.git"]
    assert len({identity(u) for u in others} | {"git.example.com/dr/config"}) == 4
    repo = tmp_path / "repo.git"
    repo.mkdir()
    (tmp_path / "link.git").symlink_to(repo)
    assert identity(str(repo)) == identity(f"file://{repo}/") == identity(str(tmp_path / "link.git"))
    assert identity(str(repo)) != identity(str(tmp_path / "repo"))  # a checkout beside a bare repo is another repo


def test_is_ssh_knows_the_urls_git_reaches_over_ssh(tmp_path, monkeypatch) -> None:
    from kubedr.remote import is_ssh

    monkeypatch.chdir(tmp_path)
    assert all(is_ssh(u) for u in ["ssh://git@git.example.com/dr/config.git", "git+ssh://h/r", "SSH://h:2222/r",
                                   "git@git.example.com:dr/config.git", "host:repo"])
    (tmp_path / "a:b").mkdir()
    assert not any(is_ssh(u) for u in ["https://kubedr:tok@git.example.com/r.git", "git://h/r", "file:///srv/r.git",
                                       "/srv/config.git", "config.git", "a:b"])  # a path with a colon is a path
