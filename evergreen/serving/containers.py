"""Container images of the bento on a machine without Docker Hub: the set-up and the build.

``../shared/reference/containers.md`` is the recipe; this module is its one implementation
(``evergreen bento prepare`` and ``evergreen bento containerize`` call it, and so do the
container test and the deployment asset):

- ``base_image``: Debian bookworm from ``debootstrap --variant=minbase`` off the mirror apt
  already uses, apt's caches, docs and locales removed, then python3.11 and the project's own
  ``uv`` (BentoML's Dockerfile would ``pip install`` uv, which cannot reach PyPI from a build);
- ``wheels``: the serving closure's pinned wheels, downloaded on the host for the image's
  platform (pip inside a build fails TLS verification here);
- ``containerize``: ``bentoml containerize`` of a bento with podman (host network, the wheels
  mounted read-only), tagged as the bento, unless that image exists.

Both inputs are cached OUTSIDE the project (``EVERGREEN_CONTAINER_CACHE``, default
``/var/tmp/evergreen-containers``), keyed by what makes them: the base image's tag carries a hash
of its recipe, the wheels folder a hash of the pinned requirements. Unchanged inputs, no work.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from evergreen.settings import EvergreenSettings

CODE_LABEL = "evergreen.code_version"  # on each bento image: the bento code it was built from
DEFAULT_CACHE = Path("/var/tmp/evergreen-containers")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
# The image's python: Debian's 3.11 (the lock's Python), no recommends.
PYTHON_CONTAINERFILE = """\
FROM {debian}
RUN apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-venv \\
    ca-certificates && rm -rf /var/lib/apt/lists/* /usr/share/doc /usr/share/man \\
    && ln -sf /usr/bin/python3.11 /usr/local/bin/python
COPY uv /usr/local/bin/uv
"""
# Not needed at run time, 125 MB of the minbase root: apt's caches and lists, docs, locales.
ROOTFS_TRIM = ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man")
ROOTFS_TRIM_LOCALES = "usr/share/locale"
WHEEL_PLATFORMS = tuple(
    f"{tag}_x86_64"
    for tag in (
        "manylinux2014",
        "manylinux_2_17",
        "manylinux_2_24",
        "manylinux_2_27",
        "manylinux_2_28",
        "manylinux_2_31",
        "manylinux_2_34",
        "manylinux_2_35",
    )
)


class ContainerSetupError(RuntimeError):
    """A set-up or build step failed; the message holds the end of its output."""


@dataclass(frozen=True)
class BuiltImage:
    """A bento's image in the engine's store."""

    tag: str
    built: bool  # False: it existed already
    seconds: float
    size_bytes: int


def cache_dir() -> Path:
    """Where base-image inputs and wheels are kept between runs (outside any clone)."""
    return Path(os.environ.get("EVERGREEN_CONTAINER_CACHE") or DEFAULT_CACHE)


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def _run(cmd: Sequence[str], what: str, timeout_s: float = 1800, **kwargs) -> str:
    try:
        done = subprocess.run(
            list(cmd),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout_s,
            **kwargs,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ContainerSetupError(f"{what} failed: {error}") from None
    if done.returncode != 0:
        tail = "\n".join(done.stdout.strip().splitlines()[-20:])
        raise ContainerSetupError(f"{what} failed (exit {done.returncode}):\n{tail}")
    return done.stdout


def image_exists(tag: str, engine: str = "podman") -> bool:
    """Whether the engine's store holds ``tag``."""
    return subprocess.run([engine, "image", "exists", tag], capture_output=True).returncode == 0


def image_label(tag: str, label: str, engine: str = "podman") -> str:
    """One label of an image ('' when it lacks it or does not exist)."""
    cmd = [engine, "image", "inspect", "--format", f'{{{{index .Labels "{label}"}}}}', tag]
    done = subprocess.run(cmd, capture_output=True, text=True)
    value = done.stdout.strip() if done.returncode == 0 else ""
    return "" if value == "<no value>" else value


def bento_code_version(settings: EvergreenSettings, bento_tag: str) -> str:
    """The code version the bento was built from (its ``code_version`` label)."""
    import yaml

    from evergreen.models.bentoml_home import bento_store_dir

    name, _, version = bento_tag.partition(":")
    info = yaml.safe_load((bento_store_dir(settings) / name / version / "bento.yaml").read_text())
    return str((info.get("labels") or {}).get("code_version", ""))


def image_size(tag: str, engine: str = "podman") -> int:
    """The image's size in bytes, as the engine reports it."""
    return int(_run([engine, "image", "inspect", "--format", "{{.Size}}", tag], "inspect"))


def apt_mirror() -> str:
    """The Debian mirror apt uses on this machine (deb822 or one-line sources)."""
    sources = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*.sources")]
    for path in sources:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = line.split()
            if line.startswith("URIs:") and len(words) > 1 and "security" not in words[1]:
                return words[1]
            if words[:1] == ["deb"] and len(words) > 2 and "security" not in line:
                return words[2] if not words[1].startswith("[") else words[3]
    return DEFAULT_MIRROR


def uv_binary() -> Path:
    """The project's own uv (copied into the base image)."""
    found = Path(sys.executable).with_name("uv")
    if not found.exists():
        found = Path(shutil.which("uv") or "")
    if not found.is_file():
        raise ContainerSetupError("no uv binary next to this Python (make install puts it there)")
    return found


def base_image(engine: str = "podman", mirror: str | None = None) -> str:
    """The local python3.11 base image, built unless its recipe's tag exists; its tag."""
    mirror = mirror or apt_mirror()
    uv = uv_binary()
    uv_hash = hashlib.sha256(uv.read_bytes()).hexdigest()
    recipe = PYTHON_CONTAINERFILE + "".join(ROOTFS_TRIM) + ROOTFS_TRIM_LOCALES
    key = _key(SUITE, mirror, recipe, uv_hash)
    tag = f"localhost/evergreen-python311:{key}"
    if image_exists(tag, engine):
        return tag
    debian = f"localhost/evergreen-debian:{SUITE}-{_key(SUITE, mirror, recipe)}"
    with tempfile.TemporaryDirectory(prefix="evergreen-base-", dir=_scratch()) as tmp:
        work = Path(tmp)
        if not image_exists(debian, engine):
            rootfs = work / "rootfs"
            _run(["debootstrap", "--variant=minbase", SUITE, rootfs, mirror], "debootstrap")
            for trimmed in ROOTFS_TRIM:
                _empty(rootfs / trimmed)
            _trim_locales(rootfs / ROOTFS_TRIM_LOCALES)
            tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
            _run([engine, "import", "-", debian], "podman import", stdin=tar.stdout)
            tar.wait()
            shutil.rmtree(rootfs, ignore_errors=True)
        shutil.copy2(uv, work / "uv")
        (work / "Containerfile").write_text(PYTHON_CONTAINERFILE.format(debian=debian))
        build = [engine, "build", "--network", "host", "-t", tag, "-f", "Containerfile", "."]
        _run(build, "the base image's build", cwd=work)
    return tag


def _scratch() -> Path:
    path = cache_dir() / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _empty(folder: Path) -> None:
    if folder.is_dir():
        for child in folder.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()


def _trim_locales(folder: Path) -> None:
    """Every translation except English (nothing here reads the others)."""
    if folder.is_dir():
        for child in folder.iterdir():
            if child.is_dir() and not child.name.startswith(("en", "locale")):
                shutil.rmtree(child)


def wheels(requirements: Sequence[str]) -> Path:
    """The pinned requirements as wheels for the image's platform (CPython 3.11, manylinux
    x86_64), downloaded once per distinct set; the folder."""
    folder = cache_dir() / f"wheels-{_key(*sorted(requirements))}"
    if (folder / ".complete").exists():
        return folder
    partial = folder.with_name(folder.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    listing = partial / "requirements.txt"
    listing.write_text("\n".join(requirements) + "\n")
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    cmd += ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp"]
    cmd += ["--abi", "cp311", "--abi", "abi3", "--abi", "none"]
    cmd += [arg for platform in WHEEL_PLATFORMS for arg in ("--platform", platform)]
    cmd += ["-d", str(partial), "-r", str(listing)]
    _run(cmd, "pip download of the serving wheels")
    (partial / ".complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder


def prepare(engine: str = "podman") -> dict[str, str]:
    """Base image and wheels (each reused when its inputs are unchanged); the settings that
    make ``evergreen bento build`` use them, as environment variables."""
    from evergreen.serving.bento import serving_requirements

    return {
        "EVERGREEN_CONTAINER_BASE_IMAGE": base_image(engine),
        "EVERGREEN_CONTAINER_WHEELS_DIR": str(wheels(serving_requirements())),
    }


def containerize_command(
    settings: EvergreenSettings, bento_tag: str, engine: str, opts: Sequence[str] = ()
) -> list[str]:
    """``bentoml containerize`` of the bento, tagged as the bento; with podman, on the host
    network and with the configured wheels folder mounted read-only."""
    cmd = [sys.executable, "-m", "bentoml", "containerize", bento_tag, "--image-tag", bento_tag]
    cmd += ["--label", f"{CODE_LABEL}={bento_code_version(settings, bento_tag)}"]
    options = list(opts)
    if engine == "podman":
        cmd += ["--backend", "podman"]
        if not any(o.startswith("network=") for o in options):
            options.append("network=host")
        wheels_dir = settings.container_wheels_dir
        if wheels_dir and not any(o.startswith("volume=") for o in options):
            options.append(f"volume={wheels_dir}:{wheels_dir}:ro")
    return cmd + [arg for option in options for arg in ("--opt", option)]


def container_command(bento_tag: str, settings: EvergreenSettings) -> str:
    """The shell line that builds the bento's image (what ``containerize`` runs)."""
    import shlex

    cmd = containerize_command(settings, bento_tag, settings.container_engine)
    return f"BENTOML_HOME={settings.bentoml_home} " + " ".join(shlex.quote(c) for c in cmd)


def containerize(
    settings: EvergreenSettings,
    bento_tag: str,
    engine: str | None = None,
    opts: Sequence[str] = (),
    rebuild: bool = False,
) -> BuiltImage:
    """The bento's image, built with ``bentoml containerize`` unless an image of that tag
    built from the same bento code exists (a model version rebuilt from other code gets a new
    image: the tag alone would not say)."""
    from evergreen.models.bentoml_home import bentoml_env

    engine = engine or settings.container_engine
    began = time.monotonic()
    current = image_label(bento_tag, CODE_LABEL, engine) == bento_code_version(settings, bento_tag)
    if rebuild or not current:
        env = {**os.environ, **bentoml_env(settings)}
        # BentoML resolves the bento's Dockerfile template against the working directory
        # and refuses a path outside it: run from the temporary folder's parent.
        _run(
            containerize_command(settings, bento_tag, engine, opts),
            f"bentoml containerize {bento_tag}",
            cwd=tempfile.gettempdir(),
            env=env,
        )
        built = True
    else:
        built = False
    return BuiltImage(bento_tag, built, time.monotonic() - began, image_size(bento_tag, engine))
