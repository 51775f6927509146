"""einsim from Python: the simulator's commands as functions returning plain Python objects.

Every function runs the same code as the ``einsim`` command line, in-process, and returns its
``--format json`` output parsed: dicts and lists with the keys docs/FORMATS.md documents.
Keyword arguments are the command's flags (``context="32k"`` is ``--context 32k``, ``tp=4`` is
``--tp 4``, ``prefix_caching=True`` is ``--prefix-caching``; ``sets=[...]`` repeats ``--set``).
Bad input raises :class:`einsim.Error`, which carries the file, line, column and message of
the command line's located error. The interpreter lock is released while einsim works.

    >>> import einsim
    >>> r = einsim.run("llama-3-70b", "h100", "decode", batch=16, context="32k", tp=4)
    >>> r["totals"]["time_s"]

docs/PYTHON.md describes the package; python/examples/einsim.ipynb is a worked notebook.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile
from typing import Any, Iterable, Mapping, Sequence

from . import _einsim
from ._toml import dumps as _toml_dumps

__version__ = _einsim.__version__

__all__ = [
    "Error", "cli", "run", "place", "serve", "describe", "presets", "analyze", "study_fusemax", "sweep", "points",
    "pareto", "plan", "validate", "frame", "percentiles", "data_dir",
]


class Error(Exception):
    """A located error from einsim: ``file:line:col: error: message``, as the command line prints it."""

    def __init__(self, message: str, file: str = "", line: int = 0, column: int = 0):
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        where = file
        if line:
            where += f":{line}:{column}"
        super().__init__(f"{where}: error: {message}" if where else message)


def _find_data() -> None:
    """Points einsim at its presets: share/einsim above this package (the build tree's or an
    installed prefix's), unless EINSIM_DATA_DIR names them."""
    if os.environ.get("EINSIM_DATA_DIR"):
        return
    here = pathlib.Path(__file__).resolve().parent
    for parent in here.parents:
        candidate = parent / "share" / "einsim"
        if (candidate / "configs").is_dir():
            _einsim.set_data_dir(str(candidate))
            return


_find_data()


def data_dir() -> str:
    """The folder einsim reads its presets and data from (share/einsim)."""
    try:
        return _einsim.data_dir()
    except ValueError as e:
        raise Error(str(e)) from None


def _flag(key: str) -> str:
    return "--" + key.rstrip("_").replace("_", "-")


def _args(kw: Mapping[str, Any]) -> list[str]:
    """Keyword arguments as command-line flags."""
    out: list[str] = []
    for key, value in kw.items():
        if value is None or value is False:
            continue
        if key == "sets":
            if isinstance(value, str):
                value = [value]
            for s in value:
                out += ["--set", str(s)]
            continue
        if value is True:
            out.append(_flag(key))
        elif isinstance(value, (list, tuple)):
            out += [_flag(key), ",".join(str(v) for v in value)]
        else:
            out += [_flag(key), str(value)]
    return out


def _raise(code: int, out: str, err: str) -> None:
    try:
        e = json.loads(out)["error"]
        raise Error(e["message"], e.get("file", ""), int(e.get("line", 0)), int(e.get("column", 0)))
    except (ValueError, KeyError, TypeError):
        pass
    message = err.strip().splitlines()[0] if err.strip() else f"einsim exited with {code}"
    raise Error(message.removeprefix("einsim: error: "))


_CHILD = (
    "import json, sys\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "import einsim\n"
    "sys.stdout.write(json.dumps(einsim._einsim.cli(json.loads(sys.argv[2]))))\n"
)


def _simulates(args: Sequence[str]) -> bool:
    """Whether the command runs the SystemC engine, which elaborates once per process."""
    if args and args[0] == "simulate":
        return True
    return any(a == "--engine" and b == "systemc" for a, b in zip(args, args[1:])) or "--engine=systemc" in args


def _call(args: Sequence[str]) -> tuple[int, str, str]:
    """Runs the command in this process, or in a child Python process when it simulates on
    the SystemC engine (SystemC's kernel elaborates once per process: each such call gets a
    fresh one, so they can be repeated)."""
    args = [str(a) for a in args]
    if not _simulates(args):
        return _einsim.cli(args)
    env = dict(os.environ)
    try:
        env["EINSIM_DATA_DIR"] = _einsim.data_dir()
    except ValueError:
        pass
    package_parent = str(pathlib.Path(__file__).resolve().parent.parent)
    child = subprocess.run([sys.executable, "-c", _CHILD, package_parent, json.dumps(args)], capture_output=True, text=True, env=env)
    if child.returncode != 0:
        raise Error(f"the engine's child process failed ({child.returncode}): {child.stderr.strip()[-2000:]}")
    code, out, err = json.loads(child.stdout)
    return int(code), out, err


def cli(*args: str) -> str:
    """Runs ``einsim ARGS...`` and returns its standard output; raises Error when it fails."""
    code, out, err = _call(args)
    if code != 0:
        _raise(code, out, err)
    return out


def _json(args: Sequence[str]) -> Any:
    code, out, err = _call(list(args) + ["--format", "json"])
    if code != 0:
        _raise(code, out, err)
    return json.loads(out)


Config = "str | os.PathLike | Mapping[str, Any]"


def _with_configs(command: str, configs: Mapping[str, Any], rest: Sequence[str]) -> Any:
    """Runs ``einsim COMMAND --KEY CONFIG ... REST`` (a key "" is the positional argument) with
    each config a preset name, a file, or a dict shaped like the config's TOML, written to a
    temporary file named after its key; returns the JSON."""
    with tempfile.TemporaryDirectory(prefix="einsim-") as tmp:
        args = [command]
        for key, config in configs.items():
            path = _spec_file(config, tmp, f"{key or 'target'}.toml")
            args += [path] if not key else [_flag(key), path]
        return _json(args + list(rest))


def run(model: Config, arch: Config, phase: str, **kw: Any) -> dict:
    """``einsim run``: one prefill or decode step mapped onto an architecture (time, traffic,
    energy, memory; per block and per Einsum under "blocks" and "einsums"). ``model`` and
    ``arch`` are preset names, files, or dicts shaped like their TOML
    ({"model": {...}}, {"inherits": "h100", "arch": {...}})."""
    return _with_configs("run", {"model": model, "arch": arch}, ["--phase", phase, *_args(kw)])


def place(model: Config, arch: Config, **kw: Any) -> dict:
    """``einsim place``: the TP x PP x EP splits of a model over an architecture's devices."""
    return _with_configs("place", {"model": model, "arch": arch}, _args(kw))


def serve(model: Config, arch: Config, **kw: Any) -> dict:
    """``einsim serve``: a request trace served on simulated servers (latency percentiles,
    throughput, goodput, KV use)."""
    return _with_configs("serve", {"model": model, "arch": arch}, _args(kw))


def describe(target: Config, **kw: Any) -> dict:
    """``einsim describe``: a cascade, a model (with ``phase=``) or an architecture: a preset
    name, a file, or a dict shaped like its TOML (a cascade built in Python:
    {"cascade": {...}, "ranks": {...}, "tensors": {...}, "einsums": [...]})."""
    return _with_configs("describe", {"": target}, _args(kw))


def presets(kind: str | None = None) -> list:
    """``einsim list``: the shipped presets (name, kind, what it is, file)."""
    return _json(["list"] + ([kind] if kind else []))


def analyze(kind: str, scenario: str | None = None, **kw: Any) -> dict:
    """``einsim analyze KIND [SCENARIO]``: long-context, kv-compression, offload, power, flash."""
    return _json(["analyze", kind] + ([scenario] if scenario else []) + _args(kw))


def study_fusemax(**kw: Any) -> dict:
    """``einsim study fusemax``: the FuseMax paper's evaluation (``reading="artifact"``,
    ``pareto=True`` for the area-latency sweep)."""
    return _json(["study", "fusemax", *_args(kw)])


def validate(*measurements: str, **kw: Any) -> dict:
    """``einsim validate``: predictions against measured kernels, the error per class."""
    return _json(["validate", *measurements, *_args(kw)])


def _spec_file(spec: str | os.PathLike | Mapping[str, Any], folder: str, name: str = "spec.toml") -> str:
    """The file of a config: itself, or a dict written to ``folder/name`` as TOML."""
    if isinstance(spec, Mapping):
        body = dict(spec)
        body.setdefault("version", 1)
        path = os.path.join(folder, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(_toml_dumps(body))
        return path
    return os.fspath(spec)


def sweep(spec: str | os.PathLike | Mapping[str, Any], db: str | os.PathLike | None = None, **kw: Any) -> list:
    """``einsim sweep``: evaluates a sweep (a spec file, a shipped name, or a dict shaped like
    a spec's TOML: {"sweep": {...}, "parameters": {...}}) into ``db`` (a temporary database
    when None) and returns its points (``points(db)``)."""
    with tempfile.TemporaryDirectory(prefix="einsim-") as tmp:
        path = _spec_file(spec, tmp)
        target = os.fspath(db) if db is not None else os.path.join(tmp, "sweep.db")
        cli("sweep", path, "--db", target, *_args(kw))
        return points(target)


def points(db: str | os.PathLike, status: str | None = None) -> list:
    """``einsim export``: a sweep database's points, one dict per point."""
    return _json(["export", "--db", os.fspath(db)] + (["--status", status] if status else []))


def pareto(db: str | os.PathLike, objectives: Iterable[str] | None = None, **kw: Any) -> Any:
    """``einsim pareto``: the Pareto front of a sweep database."""
    extra = ["--objectives", ",".join(objectives)] if objectives else []
    return _json(["pareto", "--db", os.fspath(db), *extra, *_args(kw)])


def plan(spec: str | os.PathLike | None = None, **kw: Any) -> Any:
    """``einsim plan``: the cheapest serving configuration meeting the SLOs, and the runner-ups."""
    return _json(["plan"] + ([os.fspath(spec)] if spec else []) + _args(kw))


def percentiles(served: Mapping[str, Any]) -> list:
    """A serve() result's latency percentiles as rows: one per metric (ttft, tpot, e2e,
    queueing) with its mean_s, p50_s, p90_s and p99_s; ``frame(percentiles(r))`` tabulates them."""
    return [{"metric": m, **served[m]} for m in ("ttft", "tpot", "e2e", "queueing") if isinstance(served.get(m), Mapping)]


def frame(rows: Any, key: str | None = None):
    """A pandas DataFrame of a list of dicts (or of ``rows[key]``: ``frame(r, "einsums")``).
    Needs pandas (Debian: python3-pandas)."""
    try:
        import pandas  # noqa: PLC0415 (optional dependency)
    except ImportError as e:  # pragma: no cover (depends on the machine)
        raise ImportError("einsim.frame needs pandas (Debian: apt install python3-pandas)") from e
    data = rows[key] if key is not None else rows
    return pandas.DataFrame(data)
