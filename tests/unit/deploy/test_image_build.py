"""scripts/image's pure parts: the host's Debian mirrors, the wheel platforms the image accepts, the spec."""

from __future__ import annotations

import pytest

from image import build as image

INDEXTARGETS = """\
http://deb.debian.org/debian/ bookworm
http://deb.debian.org/debian/ bookworm-updates
http://deb.debian.org/debian-security/ bookworm-security
https://deb.nodesource.com/node_20.x/ nodistro
"""


def test_sources_come_from_the_hosts_debian_mirrors_for_the_image_suite() -> None:
    assert image.host_sources("bookworm", INDEXTARGETS, "bookworm") == [
        "deb http://deb.debian.org/debian/ bookworm bookworm-updates main",
        "deb http://deb.debian.org/debian-security/ bookworm-security main",
    ]
    # a trixie host builds a bookworm image from the same mirrors; other repositories are never used
    trixie = INDEXTARGETS.replace("bookworm", "trixie").replace("http://deb.debian.org", "http://mirror.test")
    assert image.host_sources("bookworm", trixie, "trixie") == [
        "deb http://mirror.test/debian/ bookworm bookworm-updates main",
        "deb http://mirror.test/debian-security/ bookworm-security main",
    ]


def test_a_host_without_a_debian_mirror_is_a_clear_error() -> None:
    with pytest.raises(image.BuildError, match="no Debian archive for 'bookworm'"):
        image.host_sources("bookworm", "https://deb.nodesource.com/node_20.x/ nodistro\n", "bookworm")


def test_wheel_platforms_stop_at_the_images_glibc() -> None:
    platforms = image.wheel_platforms(image.Target((3, 11), (2, 36), "x86_64"))
    assert platforms[0] == "manylinux_2_36_x86_64" and "manylinux_2_37_x86_64" not in platforms
    assert {"manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"} <= set(platforms)
    old = image.wheel_platforms(image.Target((3, 11), (2, 12), "aarch64"))
    assert "manylinux2014_aarch64" not in old and "manylinux2010_aarch64" in old


def test_the_user_setup_makes_the_specs_user_and_workdir() -> None:
    spec = image.load_spec()
    script = image.user_setup(spec)
    assert f"useradd --uid {spec['user']['uid']} --gid {spec['user']['gid']}" in script
    assert f"--home-dir {spec['env']['HOME']}" in script and script.endswith(spec["workdir"])


def test_the_spec_names_the_suites_python_and_glibc_for_the_wheels() -> None:
    target = image.spec_target(image.load_spec())
    assert target.python == (3, 11) and target.glibc == (2, 36)    # Debian bookworm's
