"""The Dockerfile, checked without a Docker engine: what it copies, builds, runs and exposes."""

from __future__ import annotations

import asyncio
import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
import yaml
from gateway_harness import running_gateway

from metadata_gateway.config import Settings, load_settings
from metadata_gateway.local_ivs import LocalIvs

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
RUNTIME_LOCK = ROOT / "requirements" / "runtime.lock"
DEV_LOCK = ROOT / "requirements" / "dev.lock"
DOCKERIGNORE = ROOT / ".dockerignore"
DEPLOYMENT = ROOT / "deploy" / "k8s" / "base" / "deployment.yaml"
GATEWAY_CONFIG = ROOT / "deploy" / "k8s" / "base" / "gateway.toml"

Instruction = tuple[str, str]


def instructions() -> list[Instruction]:
    """The Dockerfile as (KEYWORD, arguments), continuation lines joined, comments dropped."""
    found: list[Instruction] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        keyword, _, rest = (pending + text).partition(" ")
        found.append((keyword.upper(), rest.strip()))
        pending = ""
    return found


def stages() -> dict[str, list[Instruction]]:
    """Instructions by stage name, the build arguments' defaults under ""."""
    result: dict[str, list[Instruction]] = {"": []}
    current = ""
    for keyword, rest in instructions():
        if keyword == "FROM":
            current = rest.split()[-1]
            result[current] = []
        result[current].append((keyword, rest))
    return result


def final_stage() -> list[Instruction]:
    """The instructions of the image that ships."""
    return list(stages().values())[-1]


def args_of(stage: list[Instruction], keyword: str) -> list[str]:
    """The arguments of every `keyword` instruction of `stage`."""
    return [rest for key, rest in stage if key == keyword]


def image_env() -> dict[str, str]:
    """The environment the final image sets."""
    env: dict[str, str] = {}
    for rest in args_of(final_stage(), "ENV"):
        for word in shlex.split(rest):
            name, _, value = word.partition("=")
            env[name] = value
    return env


def ignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` (relative, POSIX) out of the build context."""
    parts = PurePosixPath(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for line in DOCKERIGNORE.read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        candidates = {pattern, pattern.removeprefix("**/")}
        if any(fnmatch.fnmatchcase(p, c) for p in prefixes for c in candidates):
            result = not negated
    return result


def copied_files() -> list[tuple[Path, PurePosixPath]]:
    """(file in the repository, path in the build stage) for each file the COPYs bring in."""
    build = stages()["build"]
    (workdir,) = args_of(build, "WORKDIR")
    pairs: list[tuple[Path, PurePosixPath]] = []
    for rest in args_of(build, "COPY"):
        *sources, dest = rest.split()
        target = PurePosixPath(workdir) / dest
        for source in sources:
            origin = ROOT / source
            files = sorted(origin.rglob("*")) if origin.is_dir() else [origin]
            for file in files:
                if file.is_file():
                    inner = file.relative_to(origin) if origin.is_dir() else file.name
                    pairs.append((file, target / inner))
    return pairs


def test_every_copied_file_exists_and_is_in_the_build_context() -> None:
    """Each COPY source exists, and .dockerignore does not hide it from `docker build`."""
    for stage in stages().values():
        for rest in args_of(stage, "COPY"):
            if rest.startswith("--from"):
                continue
            *sources, _ = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such file"
                assert not ignored(source.rstrip("/")), f"COPY {source}: excluded by .dockerignore"


def test_the_copied_files_build_the_whole_package(tmp_path: Path) -> None:
    """`pip install .` on exactly the copied files ships every one of them and the command."""
    assert ["--no-deps", "."] in pip_installs(stages()["build"])
    (workdir,) = args_of(stages()["build"], "WORKDIR")
    context = tmp_path / "context"
    package: set[str] = set()
    for file, inside in copied_files():
        relative = file.relative_to(ROOT).as_posix()
        if ignored(relative):
            continue
        target = context / inside.relative_to(workdir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, target)
        if relative.startswith("metadata_gateway/") and not file.name.startswith("."):
            package.add(relative)
    # The same PEP 517 build that `pip install .` runs, without installing the dependencies.
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"),
            *("--wheel-dir", str(tmp_path / "wheels"), str(context)),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "wheels").glob("metadata_gateway-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (entry_points,) = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    assert "metadata_gateway/openapi.json" in package
    assert package - names == set(), "files of the package that the image would not have"
    assert "metadata-gateway = metadata_gateway.cli:main" in scripts


def test_image_python_is_the_one_ci_tests() -> None:
    """Both stages use the Python minor version the tests run on, which the project allows."""
    (default,) = (rest for key, rest in stages()[""] if key == "ARG")
    image = default.partition("=")[2]
    version = re.fullmatch(r"python:(\d+)\.(\d+)-slim(-\w+)?", image)
    assert version is not None, image
    assert (int(version.group(1)), int(version.group(2))) == sys.version_info[:2]
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == f">={version.group(1)}.{version.group(2)}"
    bases = [rest.split()[0] for key, rest in instructions() if key == "FROM"]
    assert bases == ["${PYTHON_IMAGE}"] * len(bases)
    assert len(bases) == 2  # build and runtime: no compiler or pip cache in the shipped image


def test_runs_as_the_non_root_user_kubernetes_expects() -> None:
    """The image's numeric USER is not root and equals the Deployment's runAsUser/runAsGroup."""
    (user,) = args_of(final_stage(), "USER")
    uid, _, gid = user.partition(":")
    assert int(uid) != 0
    pod = yaml.safe_load(DEPLOYMENT.read_text())["spec"]["template"]["spec"]["securityContext"]
    assert (int(uid), int(gid)) == (pod["runAsUser"], pod["runAsGroup"])


def test_listens_on_all_interfaces_in_a_container() -> None:
    """The image sets MG_HOST=0.0.0.0, and neither the ConfigMap nor the Deployment undo it."""
    assert image_env()["MG_HOST"] == "0.0.0.0"
    assert load_settings(environ=image_env()).host == "0.0.0.0"
    container = yaml.safe_load(DEPLOYMENT.read_text())["spec"]["template"]["spec"]["containers"][0]
    assert "MG_HOST" not in {item["name"] for item in container.get("env", [])}
    assert tomllib.loads(GATEWAY_CONFIG.read_text()).get("host", "0.0.0.0") == "0.0.0.0"


def test_exposes_the_default_port() -> None:
    """EXPOSE names the port the gateway listens on by default."""
    assert args_of(final_stage(), "EXPOSE") == [str(Settings().port)]


def test_sigterm_reaches_the_gateway() -> None:
    """The gateway is PID 1 (exec-form ENTRYPOINT) and the stop signal is SIGTERM, its drain cue."""
    (entrypoint,) = args_of(final_stage(), "ENTRYPOINT")
    assert json.loads(entrypoint) == ["metadata-gateway"]
    assert json.loads(args_of(final_stage(), "CMD")[0]) == ["serve"]
    assert args_of(final_stage(), "STOPSIGNAL") in ([], ["SIGTERM"])


def healthcheck_command() -> list[str]:
    """The HEALTHCHECK's command, exec form."""
    (healthcheck,) = args_of(final_stage(), "HEALTHCHECK")
    options, _, command = healthcheck.partition(" CMD ")
    assert all(option.startswith("--") for option in options.split())
    argv: list[str] = json.loads(command)
    return argv


async def test_healthcheck_passes_on_a_gateway_and_fails_without_one(local_ivs: LocalIvs) -> None:
    """The HEALTHCHECK command exits 0 against /healthz of a running gateway, 1 once it is gone."""
    argv = healthcheck_command()
    assert "/healthz" in argv[-1]
    assert argv[0] == "python"
    argv[0] = sys.executable
    async with running_gateway(local_ivs) as gateway:
        port = str(urlsplit(gateway.url).port)
        healthy = await asyncio.create_subprocess_exec(*argv, env={"MG_PORT": port})
        assert await healthy.wait() == 0
    unhealthy = await asyncio.create_subprocess_exec(
        *argv, env={"MG_PORT": port}, stderr=asyncio.subprocess.DEVNULL
    )
    assert await unhealthy.wait() != 0


def pins(lock: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """A hashed requirements lock as {name: (version, hashes)}."""
    found: dict[str, tuple[str, frozenset[str]]] = {}
    for entry in re.split(r"\n(?=[a-z0-9])", lock.read_text()):
        match = re.match(r"([a-z0-9][a-z0-9._-]*)==(\S+)", entry)
        if match is None:
            continue
        hashes = frozenset(re.findall(r"--hash=(sha256:[0-9a-f]{64})", entry))
        assert hashes, f"{match.group(1)} has no hash in {lock.name}"
        found[match.group(1)] = (match.group(2), hashes)
    return found


def pip_installs(stage: list[Instruction]) -> list[list[str]]:
    """The argument lists of each `pip install` that `stage` runs."""
    return [
        run.split()[run.split().index("install") + 1 :]
        for run in args_of(stage, "RUN")
        if re.search(r"\bpip install\b", run)
    ]


def test_the_image_installs_exactly_the_runtime_lock() -> None:
    """The build installs the dependencies only from the hashed runtime lock, and the project
    without resolving anything else, so every build gets the same set."""
    installs = pip_installs(stages()["build"])
    assert installs == [
        ["--require-hashes", "--no-deps", "-r", "requirements/runtime.lock"],
        ["--no-deps", "."],
    ]
    assert not any("pip install" in run for run in args_of(final_stage(), "RUN"))
    copied = {file.relative_to(ROOT).as_posix() for file, _ in copied_files()}
    assert "requirements/runtime.lock" in copied


def test_the_runtime_lock_is_the_tested_set() -> None:
    """Every package of the runtime lock is in the dev lock the tests run on, at the same
    version with the same hashes, and the lock names every runtime and `distributed` package."""
    runtime, dev = pins(RUNTIME_LOCK), pins(DEV_LOCK)
    assert runtime
    for name, pin in runtime.items():
        assert dev.get(name) == pin, f"{name}: runtime lock differs from the tested dev lock"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["distributed"]]
    for requirement in wanted:
        name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in runtime, f"{name} is not in the runtime lock"


@pytest.mark.timeout(300)
def test_the_runtime_lock_installs_a_working_gateway(tmp_path: Path) -> None:
    """A venv built as the image builds it (the lock with hashes, then the project alone) is
    complete: pip finds nothing missing and the command runs."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    for args in pip_installs(stages()["build"]):
        subprocess.run([*pip, *args], cwd=ROOT, check=True, timeout=240, capture_output=True)
    check = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout
    command = subprocess.run(
        [str(venv / "bin" / "metadata-gateway"), "serve", "--help"], capture_output=True, text=True
    )
    assert command.returncode == 0, command.stderr
    assert "--redis-url" in command.stdout
