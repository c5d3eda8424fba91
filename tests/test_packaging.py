"""The built wheel is complete: every data file the package opens ships inside it, and the
installed wheel works outside the checkout.

``test_data_files_*`` build the wheel (no dependencies, no build isolation: a few seconds) and run
in ``make test``. ``test_wheel_smoke_outside_checkout`` (marker ``wheel``; ``make test-wheel``,
called by ``.ci/run``) installs it into a fresh venv in a temporary folder and runs the CLI there.
That venv sees the test environment's third-party packages through a ``.pth`` path entry (so no
torch is reinstalled), but not the checkout: ``circuits`` is imported from the wheel's files, which
the test asserts.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from circuits.core.resources import DATA_DIRS, DATA_FILES, PACKAGE_DIR, data_dir, data_path

REPO = PACKAGE_DIR.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    env = {**os.environ, "PIP_NO_INDEX": "1"}
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)],
        check=True,
        env=env,
        cwd=build,
        capture_output=True,
        text=True,
    )
    (found,) = out.glob("emotion_circuits-*.whl")
    return found


def test_every_registered_data_file_exists_in_the_checkout():
    for name, rel in DATA_FILES.items():
        assert data_path(name).is_file(), (name, rel)
    for name in DATA_DIRS:
        assert data_dir(name).is_dir()
    with pytest.raises(KeyError, match="no shipped data file 'nope'"):
        data_path("nope")


def test_data_files_are_all_in_the_wheel(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [rel for rel in DATA_FILES.values() if f"circuits/{rel}" not in names]
    assert not missing, f"not in {wheel.name}: {missing}"
    # every file under the data folders is registered, so nothing the package ships goes unchecked
    on_disk = {
        p.relative_to(PACKAGE_DIR).as_posix()
        for folder in ["data", *DATA_DIRS.values()]
        for p in (PACKAGE_DIR / folder).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert on_disk <= set(DATA_FILES.values()), sorted(on_disk - set(DATA_FILES.values()))


def test_no_module_locates_data_files_by_itself():
    """Only ``circuits/core/resources.py`` builds paths from ``__file__``: data goes through its helpers."""
    offenders = []
    for py in PACKAGE_DIR.rglob("*.py"):
        if py.relative_to(PACKAGE_DIR).as_posix() == "core/resources.py":
            continue
        text = py.read_text(encoding="utf-8")
        if re.search(r"Path\(__file__\)|os\.path\.dirname\(__file__\)|\"sev_data\"|'sev_data'", text):
            offenders.append(py.relative_to(PACKAGE_DIR).as_posix())
    assert not offenders


def test_sev_data_link_points_at_the_packaged_splits():
    link = REPO / "sev_data"
    assert (link / "sev.jsonl").resolve() == data_path("sev_train").resolve()
    assert (link / "sev_test.jsonl").resolve() == data_path("sev_test").resolve()


@pytest.mark.wheel
def test_wheel_smoke_outside_checkout(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    py = env_dir / "bin" / "python"
    site = Path(
        subprocess.run(
            [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(HF_HUB_OFFLINE="1", PIP_NO_INDEX="1", TOKENIZERS_PARALLELISM="false")
    subprocess.run(
        [py, "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
        check=True,
        env=env,
        cwd=tmp_path,
        capture_output=True,
    )

    def run(*cmd: str | Path) -> subprocess.CompletedProcess:
        done = subprocess.run([str(c) for c in cmd], env=env, cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, f"{cmd}: exit {done.returncode}\n{done.stdout}\n{done.stderr[-3000:]}"
        return done

    where = run(
        py,
        "-c",
        "import circuits, circuits.core.resources as r; print(circuits.__file__); "
        "m = circuits.load_model('toy'); print(m.fingerprint, r.data_path('sev_train'))",
    )
    module_file, info = where.stdout.strip().splitlines()[-2:]
    assert Path(module_file).resolve().is_relative_to(env_dir.resolve()), module_file
    assert not Path(module_file).resolve().is_relative_to(REPO.resolve())
    from circuits.core.model import load_model

    assert info.split()[0] == load_model("toy").fingerprint  # the wheel ships the same toy weights
    assert Path(info.split()[1]).resolve().is_relative_to(env_dir.resolve())
    emo = env_dir / "bin" / "emocircuits"
    validated = run(emo, "sev", "validate")
    assert validated.stdout.count("OK ") == 2 and "160 scenarios" in validated.stdout
    run(emo, "discover", "--model", "toy", "--limit", "8", "--out", tmp_path / "run")
    assert (tmp_path / "run" / "summary.json").is_file()
    assert sorted(p.name for p in (tmp_path / "run" / "circuits").glob("*.json") if "graph" not in p.name)
