"""The Python package against the command line it wraps (run by ctest: `make test`)."""

import json
import os
import threading
import tomllib

import pytest

import einsim
from einsim import _toml


def test_version_and_data():
    assert einsim.__version__.count(".") == 2
    assert os.path.isdir(os.path.join(einsim.data_dir(), "configs"))


def test_run_is_the_cli_json():
    r = einsim.run("llama-3-70b", "h100", "decode", batch=16, context="32k", tp=4)
    assert r["tp"] == 4
    assert r["model"] == "Llama-3-70B"
    assert r["totals"]["step_s"] > 0
    assert len(r["einsums"]) > 10
    # The same call through the raw command line gives the same document.
    raw = json.loads(einsim.cli("run", "--model", "llama-3-70b", "--arch", "h100", "--phase", "decode", "--batch", "16",
                                "--context", "32k", "--tp", "4", "--format", "json"))
    assert raw["totals"]["step_s"] == pytest.approx(r["totals"]["step_s"])


def test_the_systemc_engine_runs_again_and_again(tmp_path):
    # SystemC elaborates once per process: each engine call gets a child process of its own.
    trace = tmp_path / "t.json"
    first = einsim.run("llama-3-8b", "h100", "decode", layers=2, tp=2, engine="systemc", trace=str(trace))
    second = einsim.run("llama-3-8b", "h100", "decode", layers=2, tp=2, engine="systemc")
    assert first["engine"]["name"] == "systemc"
    assert second["totals"]["step_s"] == pytest.approx(first["totals"]["step_s"])
    t = json.loads(trace.read_text())
    names = {e["args"]["name"] for e in t["traceEvents"] if e["ph"] == "M" and e["name"] == "process_name"}
    assert names == {"gpu0 (rank 0)", "gpu1 (rank 1)"}
    with pytest.raises(einsim.Error) as e:
        einsim.run("llama-3-8b", "h100", "decode", engine="systemc", tiles=0)
    assert "--tiles" in str(e.value)


def test_flags_from_keywords():
    assert einsim._args({"tp": 4, "prefix_caching": True, "quiet": False, "runtime": None}) == ["--tp", "4", "--prefix-caching"]
    assert einsim._args({"sets": ["a.b=1", "c=2"]}) == ["--set", "a.b=1", "--set", "c=2"]
    assert einsim._args({"seq": ["1K", "4K"]}) == ["--seq", "1K,4K"]


def test_errors_are_located(tmp_path):
    with pytest.raises(einsim.Error) as e:
        einsim.run("llama-3-70b", "no-such-arch", "decode")
    assert e.value.file == "no-such-arch"
    assert "no shipped architecture of that name" in e.value.message
    bad = tmp_path / "bad.toml"
    bad.write_text("version = 1\n[cascade]\nname = \"x\"\ninputs = [\"A\"\n")
    with pytest.raises(einsim.Error) as e:
        einsim.describe(str(bad))
    assert e.value.file.endswith("bad.toml")
    assert e.value.line >= 4
    assert e.value.column > 0
    assert str(e.value).startswith(f"{e.value.file}:{e.value.line}:{e.value.column}: error: ")
    with pytest.raises(einsim.Error):
        einsim.cli("no-such-command")


def test_presets_and_describe():
    names = {p["name"] for p in einsim.presets()}
    assert {"h100", "fusemax", "rtx4090-host"} <= names
    d = einsim.describe("h100")
    assert "tiers" in json.dumps(d)


def test_sweep_from_a_dict_and_its_pareto_front(tmp_path):
    spec = {
        "sweep": {"name": "py", "arch": "h100", "model": "llama-3-8b", "phase": "decode", "mode": "mapped",
                  "constraints": ["memory_fit"], "objectives": ["latency", "energy_per_token"]},
        "parameters": {"batch": [1, 8, 64], "tp": [1, 2]},
    }
    db = tmp_path / "py.db"
    pts = einsim.sweep(spec, db)
    assert len(pts) == 6
    assert {p["batch"] for p in pts} == {1, 8, 64}
    assert all(p["status"] == "ok" for p in pts)
    front = einsim.pareto(db)
    assert front  # at least one point on the front
    assert len(einsim.points(db, status="ok")) == 6


def test_study_and_analysis():
    s = einsim.study_fusemax(models=["bert-base"], seq=["1K"], reading="artifact")
    assert s["kind"] == "study-fusemax"
    assert len(s["points"]) == 1
    a = einsim.analyze("long-context")
    assert a


def test_threads_run_while_einsim_works():
    # The interpreter lock is released during a call: this thread keeps counting while another
    # runs the whole FuseMax study (about 0.5 s). With the lock held it would barely count.
    done = []
    worker = threading.Thread(target=lambda: done.append(einsim.study_fusemax()["kind"]))
    n = 0
    worker.start()
    while worker.is_alive():
        n += 1
    worker.join()
    assert done == ["study-fusemax"]
    assert n > 100_000
    # Calls from several threads are serialised and give the same answers.
    results = []
    threads = [threading.Thread(target=lambda: results.append(einsim.run("llama-3-8b", "h100", "decode", batch=8, context="4k")["totals"]["step_s"]))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3
    assert results[0] == pytest.approx(results[1]) == pytest.approx(results[2])


def test_frame_when_pandas_is_there():
    pandas = pytest.importorskip("pandas")
    r = einsim.run("llama-3-8b", "h100", "decode", batch=8, context="4k")
    f = einsim.frame(r, "einsums")
    assert isinstance(f, pandas.DataFrame)
    assert len(f) == len(r["einsums"])
    assert f["compute_s"].sum() > 0
    # Sweep points and serving percentiles as frames too.
    pts = einsim.frame(einsim.sweep({"sweep": {"name": "frame", "arch": "h100", "model": "llama-3-8b", "phase": "decode"},
                                     "parameters": {"batch": [1, 8]}}))
    assert list(pts["batch"].sort_values()) == [1, 8]
    served = einsim.serve("llama-3-8b", "h100", duration=10)
    pc = einsim.frame(einsim.percentiles(served))
    assert {"metric", "p50_s", "p99_s"} <= set(pc.columns)
    assert (pc["p99_s"] >= pc["p50_s"]).all()


def test_toml_writer_round_trips():
    doc = {"version": 1, "sweep": {"name": "a \"b\"", "objectives": ["latency"], "flag": True},
           "parameters": {"batch": {"log": [1, 256], "factor": 2}, "tp": [1, 2]}}
    assert tomllib.loads(_toml.dumps(doc)) == doc
    with pytest.raises(TypeError):
        _toml.dumps({"x": {"y": object()}})


def test_the_example_notebook_runs(tmp_path, monkeypatch, capsys):
    """Every code cell of python/examples/einsim.ipynb, in order, in a scratch folder (no
    Jupyter needed; matplotlib draws off screen when it is installed)."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)
    path = os.path.join(os.path.dirname(__file__), "..", "examples", "einsim.ipynb")
    with open(path, encoding="utf-8") as f:
        nb = json.load(f)
    cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in cells), "commit the notebook without outputs"
    scope: dict = {}
    for c in cells:
        exec(compile("".join(c["source"]), path, "exec"), scope)  # noqa: S102 (our own notebook)
    assert scope["r"]["tp"] == 4
    assert len(scope["points"]) == 27
    assert scope["front"]["front"]
    assert "h1000" in capsys.readouterr().out


def test_serving_percentiles_as_rows():
    r = einsim.serve("llama-3-8b", "h100", trace="code", duration=30)
    rows = einsim.percentiles(r)
    assert [x["metric"] for x in rows] == ["ttft", "tpot", "e2e", "queueing"]
    for x in rows:
        assert x["p50_s"] <= x["p90_s"] <= x["p99_s"]
    assert rows[0]["p99_s"] == r["ttft"]["p99_s"]


def test_configs_built_in_python():
    # A cascade built as a dict is the same cascade as the shipped file.
    cascade = {"cascade": {"name": "pedagogical-1pass", "inputs": ["A", "B"],
                           "einsums": ["Y = A[k] * B[k]", "X = A[k]", "Z = Y * X"],
                           "ranks": {"K": "k"}, "params": {"k": 16}}}
    built, shipped = einsim.describe(cascade), einsim.describe("pedagogical-1pass")
    assert built["einsums"] == shipped["einsums"]
    assert len(built["einsums"]) == 3
    # A model and an architecture from dicts that inherit presets.
    small = {"inherits": "llama-3-8b", "model": {"num_hidden_layers": 2}}
    fast = {"inherits": "h100", "arch": {"tiers": {"hbm": {"read_bandwidth": "6.7 TB/s", "write_bandwidth": "6.7 TB/s"}}}}
    base = einsim.run(small, "h100", "decode", batch=1)
    quick = einsim.run(small, fast, "decode", batch=1)
    assert base["layers"] == 2
    assert quick["totals"]["step_s"] < base["totals"]["step_s"]
    with pytest.raises(einsim.Error) as e:
        einsim.run({"model": {"num_hidden_layers": "two"}}, "h100", "decode")
    assert e.value.file.endswith("model.toml") and e.value.line > 0
