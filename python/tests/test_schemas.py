"""The shipped JSON Schemas (configs/schemas) against outputs and configs they were not made from.

scripts/gen-schemas.py infers the output schemas from one set of commands; here other
commands' outputs must validate against them, every shipped preset against its config
schema, and the config schemas must be what the loaders read today.
"""

import json
import pathlib
import tomllib

import jsonschema
import pytest

import einsim

SCHEMAS = pathlib.Path(einsim.data_dir()) / "configs" / "schemas"
CONFIGS = pathlib.Path(einsim.data_dir()) / "configs"


def schema(name: str) -> dict:
    s = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(s)
    return s


def check(name: str, *args: str) -> object:
    out = json.loads(einsim.cli(*args, "--format", "json"))
    jsonschema.validate(out, schema(f"output-{name}"), cls=jsonschema.Draft202012Validator)
    return out


SWEEP = """version = 1
[sweep]
name = "held-out"
arch = "a100"
model = "llama-2-7b"
phase = "prefill"
prompt = 512
[parameters]
batch = [1, 4]
"""

SERVE = """version = 1
[sweep]
mode = "serve"
arch = "h100"
model = "llama-3-8b"
trace = "code"
request_rate = 4
duration = "30 s"
ttft_slo = "1 s"
tpot_slo = "30 ms"
[parameters]
tp = [1]
instances = [1, 2]
"""


def test_outputs_validate(tmp_path):
    check("list", "list")
    check("list", "list", "archs")
    check("describe-model", "describe", "qwen3-235b-a22b")
    check("describe-model", "describe", "jamba-1.5-mini")
    check("describe-cascade", "describe", "attention-3pass")
    check("describe-arch", "describe", "tpu-v5e")
    check("describe-arch", "describe", "mi300x")
    check("run", "run", "--arch", "h200", "--model", "llama-3-70b", "--phase", "decode", "--batch", "64", "--context", "8k", "--tp", "8")
    check("run", "run", "--arch", "b200", "--model", "gpt-oss-120b", "--phase", "prefill", "--prompt", "1k", "--tp", "2", "--ep", "4")
    check("run", "run", "--arch", "h100", "--model", "llama-3-8b", "--phase", "decode", "--quant", "int4")
    check("run", "run", "--arch", "h100", "--model", "llama-3-8b", "--phase", "prefill", "--prompt", "512", "--layers", "2", "--tp", "2", "--pp", "2",
          "--engine", "systemc", "--tiles", "4")
    check("place", "place", "--model", "qwen3-32b", "--arch", "a100", "--phase", "decode", "--batch", "8")
    check("serve", "serve", "--model", "llama-3-8b", "--arch", "a100", "--duration", "15", "--spec-k", "3", "--spec-accept", "0.7")
    check("simulate", "simulate", "flash-stream")
    check("validate", "validate", str(pathlib.Path(einsim.data_dir()) / "measured" / "h200-2026-11-27" / "torch_bench.csv"), "--arch", "h200")
    for kind in ("flash", "kv-compression", "long-context", "offload"):
        check(f"analyze-{kind}", "analyze", kind)
    spec, db = tmp_path / "s.toml", tmp_path / "s.db"
    spec.write_text(SWEEP)
    einsim.cli("sweep", str(spec), "--db", str(db))
    check("pareto", "pareto", "--db", str(db))
    check("export", "export", "--db", str(db))
    check("merge", "merge", str(db), "-o", str(tmp_path / "m.db"))
    serve_spec, serve_db = tmp_path / "v.toml", tmp_path / "v.db"
    serve_spec.write_text(SERVE)
    check("plan", "plan", str(serve_spec), "--db", str(serve_db), "--attainment", "0.5")


def test_errors_validate(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("version = 1\n[model]\nname = 3\n")
    with pytest.raises(einsim.Error):
        einsim.cli("describe", str(bad), "--format", "json")
    code, out, _ = einsim._einsim.cli(["describe", str(bad), "--format", "json"])
    assert code == 1
    jsonschema.validate(json.loads(out), schema("output-error"), cls=jsonschema.Draft202012Validator)
    # A document that breaks the run schema is caught (the schemas are not vacuous).
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"totals": "fast"}, schema("output-run"), cls=jsonschema.Draft202012Validator)


CONFIG_KINDS = {
    "arch": "arch", "model": "models", "runtime": "runtimes", "cascade": "workloads", "sweep": "sweeps", "contention": "scenarios",
}


def test_shipped_configs_validate_and_schemas_are_current():
    kinds = sorted(p.name.removeprefix("config-").removesuffix(".schema.json") for p in SCHEMAS.glob("config-*.schema.json"))
    assert kinds == sorted(list(CONFIG_KINDS) + ["flash", "kv-compression", "long-context", "offload", "power"])
    for kind in kinds:
        # What the loaders read today: regenerate with scripts/gen-schemas.py when this fails.
        assert einsim.cli("schema", "config", kind) == (SCHEMAS / f"config-{kind}.schema.json").read_text(), kind
        s = schema(f"config-{kind}")
        files = sorted((CONFIGS / CONFIG_KINDS[kind]).glob("*.toml")) if kind in CONFIG_KINDS else [CONFIGS / "analyses" / f"{kind}.toml"]
        assert files, kind
        for f in files:
            jsonschema.validate(tomllib.loads(f.read_text()), s, cls=jsonschema.Draft202012Validator)
    # Editors complete keys from the properties: an architecture's tiers, by name.
    arch = schema("config-arch")
    tier = arch["properties"]["arch"]["properties"]["tiers"]["additionalProperties"]["properties"]
    assert {"capacity", "read_bandwidth", "kind"} <= set(tier)
    assert "hbm" in tier["kind"]["enum"]
    # A wrong type is caught.
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"version": 1, "arch": {"tiers": {"hbm": {"capacity": 80}}}}, arch, cls=jsonschema.Draft202012Validator)
