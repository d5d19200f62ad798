"""Problem sources: field mapping on files in the real datasets' schemas, seeded sampling, filters, errors, loaders."""

from __future__ import annotations

import gzip
import hashlib
import json
import random

import pytest

from distill_ray.pinned import PinnedFile, fetch_pinned
from distill_ray.problems.public_sets import load_math500, load_mbppplus, load_mbppplus_raw
from distill_ray.problems.schema import (
    DEFAULT_CODE_INSTRUCTION,
    DEFAULT_MATH_INSTRUCTION,
    SEED_CODE_SOURCE,
    SEED_MATH_SOURCE,
    FieldMapping,
    ProblemSourceConfig,
    ProblemSourceError,
    parse_source_config,
)
from distill_ray.problems.sources import load_problems, read_source
from distill_ray.verify.code_spec import build_test_spec


def local_copy(seed_source: ProblemSourceConfig, kind: str, path, **changes) -> ProblemSourceConfig:
    """The seed default's mapping and filters, pointed at a local file."""
    data = seed_source.model_dump(by_alias=True, exclude={"dataset", "config", "revision", "streaming"})
    data.update(kind=kind, path=str(path), **changes)
    return ProblemSourceConfig.model_validate(data)


# --- mapping -------------------------------------------------------------------------------------------------------


def test_seed_math_mapping_reads_numinamath_schema_and_filters(tmp_path, schemas):
    path = schemas.write_jsonl(tmp_path / "numina.jsonl", schemas.numina_rows(30))
    problems = load_problems(local_copy(SEED_MATH_SOURCE, "jsonl", path, n=100), "math")
    # 30 valid rows; the proof, "notfound", MCQ, synthetic and invalid rows are all filtered out.
    assert len(problems) == 30
    texts = " ".join(p["prompt"] for p in problems)
    for removed in ("Prove that", "primes p", "Which option", "7 cats", "ill-posed"):
        assert removed not in texts
    by_id = {p["id"]: p for p in problems}
    first = by_id["0"]  # no id field in NuminaMath: the row position is the id
    assert first["answer"] == "4"
    assert first["prompt"] == (
        "A jar holds 1 red and 3 blue beads. How many beads are in the jar in total?\n\n" + DEFAULT_MATH_INSTRUCTION
    )
    assert first["domain"] == "math" and first["tests"] == "" and first["split"] == "train"
    assert first["source"] == str(path)

    loaded = read_source(local_copy(SEED_MATH_SOURCE, "jsonl", path, n=100), "math")
    assert loaded.stats["rows_read"] == 35 and loaded.stats["filtered_out"] == 5


def test_seed_code_mapping_reads_opencoder_schema(tmp_path, schemas):
    path = schemas.write_parquet(tmp_path / "edu" / "train-00000-of-00001.parquet", schemas.opencoder_rows())
    source = local_copy(SEED_CODE_SOURCE, "parquet", path, n=50, filters={"reference_must_pass": False})
    problems = load_problems(source, "code")
    assert len(problems) == 9
    p = {q["id"]: q for q in problems}["1003"]  # seq_id is the id
    spec = json.loads(p["tests"])
    assert spec == {
        "format": "assert",
        "entry_point": "add_offset_3",
        "setup": "",
        "asserts": ["assert add_offset_3([1, 2], 0) == [4, 5]", "assert add_offset_3([], 5) == []"],
    }
    # The prompt states the signature the tests call (taken from the reference), then the final-format instruction.
    assert p["prompt"] == (
        "Write a python function that adds k plus 3 to every element of a list of integers.\n\n"
        "Your code must define the function `def add_offset_3(nums, k)`, which the tests call.\n\n"
        + DEFAULT_CODE_INSTRUCTION
    )
    assert p["answer"] == "" and p["domain"] == "code"
    loaded = read_source(source, "code")
    assert loaded.references["1003"].startswith("def add_offset_3(nums, k):")


def test_pytest_style_set_with_nested_fields(tmp_path, schemas, fake_checker):
    # KodCode-V1's shape: pytest tests importing from `solution`, the function name nested in test_info.
    rows = [
        {
            "question_id": "K_1",
            "question": "Return the number of vowels in a string.",
            "solution": "def count_vowels(s):\n    return sum(c in 'aeiou' for c in s.lower())\n",
            "test": "from solution import count_vowels\n\ndef test_basic():\n    assert count_vowels('Hello') == 2\n",
            "test_info": [{"function_name": "count_vowels", "parameter_list": "(s)"}],
        }
    ]
    path = schemas.write_jsonl(tmp_path / "kod.jsonl", rows)
    mapping = FieldMapping(
        id="question_id",
        problem="question",
        tests="test",
        test_format="pytest",
        entry_point="test_info.0.function_name",
        reference_solution="solution",
    )
    source = ProblemSourceConfig(
        kind="jsonl", path=str(path), mapping=mapping, n=1, filters={"reference_must_pass": True}
    )
    (p,) = load_problems(source, "code", reference_checker=fake_checker_for_pytest)
    assert json.loads(p["tests"]) == {
        "format": "pytest",
        "test_code": "pass\n\ndef test_basic():\n    assert count_vowels('Hello') == 2\n",
    }
    assert "`def count_vowels(s)`" in p["prompt"]
    from distill_ray import verify

    assert verify.check_code("```python\n" + rows[0]["solution"] + "```", p["tests"]).verdict == "pass"


def fake_checker_for_pytest(response, tests_json):
    code = response.split("```python\n", 1)[1].rsplit("```", 1)[0]
    namespace: dict = {}
    exec(code, namespace)
    exec(json.loads(tests_json)["test_code"], namespace)
    for name in [k for k in namespace if k.startswith("test_")]:
        namespace[name]()
    return type("V", (), {"verdict": "pass"})()


def test_instruction_is_configurable(tmp_path, schemas):
    path = schemas.write_jsonl(tmp_path / "numina.jsonl", schemas.numina_rows(3))
    source = local_copy(SEED_MATH_SOURCE, "jsonl", path, n=3, instruction="Answer inside \\boxed{} please.")
    assert all(p["prompt"].endswith("\n\nAnswer inside \\boxed{} please.") for p in load_problems(source, "math"))


def test_last_boxed_extracts_answer_from_a_solution_field(tmp_path, schemas):
    rows = [
        {"q": "What is 2+2?", "sol": "We add: $\\boxed{4}$."},
        {"q": "Half of one?", "sol": "It is \\boxed{\\frac{1}{2}}"},
    ]
    path = schemas.write_jsonl(tmp_path / "cot.jsonl", rows)
    mapping = FieldMapping(problem="q", answer="sol", answer_extract="last_boxed")
    problems = load_problems(ProblemSourceConfig(kind="jsonl", path=str(path), mapping=mapping, n=5), "math")
    assert sorted(p["answer"] for p in problems) == ["4", "\\frac{1}{2}"]


def test_hugging_face_local_copies_match_the_file_reader(tmp_path, schemas):
    datasets = pytest.importorskip("datasets")
    rows = schemas.numina_rows(20)
    ref = load_problems(
        local_copy(SEED_MATH_SOURCE, "jsonl", schemas.write_jsonl(tmp_path / "r.jsonl", rows), n=8), "math"
    )

    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    saved = load_problems(local_copy(SEED_MATH_SOURCE, "huggingface", tmp_path / "saved", n=8), "math")
    # A folder of data files, as a local clone of the hub repository would hold, read through the streaming path.
    schemas.write_parquet(tmp_path / "clone" / "data" / "train-00000-of-00001.parquet", rows)
    streamed = load_problems(
        local_copy(SEED_MATH_SOURCE, "huggingface", tmp_path / "clone", n=8, streaming=True), "math"
    )
    key = [(p["id"], p["prompt"], p["answer"]) for p in ref]
    assert [(p["id"], p["prompt"], p["answer"]) for p in saved] == key
    assert [(p["id"], p["prompt"], p["answer"]) for p in streamed] == key


def test_hub_reads_are_pinned_streamed_and_cached_for_offline_use(tmp_path, schemas, monkeypatch):
    datasets = pytest.importorskip("datasets")
    rows = schemas.opencoder_rows()
    calls = []

    def fake_load_dataset(path, name=None, **kwargs):
        calls.append((path, name, kwargs))
        return datasets.Dataset.from_list(rows).to_iterable_dataset()

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    source = SEED_CODE_SOURCE.model_copy(update={"n": 4, "filters": SEED_CODE_SOURCE.filters.model_copy()})
    first = read_source(source, "code", cache_dir=str(tmp_path / "cache"))
    assert calls[0][0] == "OpenCoder-LLM/opc-sft-stage2" and calls[0][1] == "educational_instruct"
    assert calls[0][2]["revision"] == "7d28f40d579edd7c24402d17d0c7639f991e6f8d"
    assert calls[0][2]["streaming"] is True and calls[0][2]["split"] == "train"
    assert first.source == "hf:OpenCoder-LLM/opc-sft-stage2/educational_instruct:train@7d28f40d579e"
    assert len(first.problems) == 8  # pool = n * oversample (2.0)

    def offline(*args, **kwargs):
        raise AssertionError("the cached pool must be used; no hub access")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    again = read_source(source, "code", cache_dir=str(tmp_path / "cache"))
    assert again.problems == first.problems and again.references == first.references
    assert again.stats["cached"].endswith(".jsonl")


# --- sampling ------------------------------------------------------------------------------------------------------


def test_seeded_sampling_is_repeatable_nested_and_order_independent(tmp_path, schemas):
    rows = schemas.numina_rows(60)
    for i, row in enumerate(rows):
        row["uid"] = f"nm-{i}"
    path = schemas.write_jsonl(tmp_path / "a.jsonl", rows)
    shuffled = rows[:]
    random.Random(7).shuffle(shuffled)
    path_shuffled = schemas.write_jsonl(tmp_path / "b.jsonl", shuffled)

    def ids(p, n, seed):
        source = local_copy(
            SEED_MATH_SOURCE,
            "jsonl",
            p,
            n=n,
            seed=seed,
            mapping={"id": "uid", "problem": "problem", "answer": "answer"},
        )
        return [q["id"] for q in load_problems(source, "math")]

    first = ids(path, 10, 3)
    assert len(first) == 10 and len(set(first)) == 10
    assert ids(path, 10, 3) == first  # repeatable
    assert ids(path_shuffled, 10, 3) == first  # independent of row order
    assert ids(path, 25, 3)[:10] == first  # nested: a smaller n is a prefix
    assert ids(path, 10, 4) != first  # the seed matters
    assert sorted(ids(path, 60, 3)) == sorted(f"nm-{i}" for i in range(60))  # n >= rows: every valid row


def test_field_filters_in_not_in_and_ranges(tmp_path, schemas):
    rows = [
        {"q": f"Problem number {i} about sums.", "a": str(i), "level": i % 5, "src": "amc" if i % 2 else "k12"}
        for i in range(20)
    ]
    path = schemas.write_jsonl(tmp_path / "f.jsonl", rows)
    config = {
        "kind": "jsonl",
        "path": str(path),
        "n": 100,
        "mapping": {"problem": "q", "answer": "a"},
        "filters": {"fields": [{"field": "src", "in": ["amc"]}, {"field": "level", "min": 2, "max": 3}]},
    }
    problems = load_problems(parse_source_config(config), "math")
    assert sorted(int(p["answer"]) for p in problems) == [i for i in range(20) if i % 2 and 2 <= i % 5 <= 3]


# --- verifiability filters -----------------------------------------------------------------------------------------


def test_failing_reference_solution_is_dropped(tmp_path, schemas, fake_checker):
    path = schemas.write_jsonl(tmp_path / "edu.jsonl", schemas.opencoder_rows())
    source = local_copy(SEED_CODE_SOURCE, "jsonl", path, n=50)
    problems = load_problems(source, "code", reference_checker=fake_checker)
    ids = {p["id"] for p in problems}
    assert len(problems) == 8 and "2000" not in ids  # count_above's reference is off by one


def test_reference_check_with_the_real_sandbox(tmp_path, schemas):

    rows = schemas.opencoder_rows()[-3:]  # two good references and the failing one
    path = schemas.write_jsonl(tmp_path / "edu.jsonl", rows)
    problems = load_problems(local_copy(SEED_CODE_SOURCE, "jsonl", path, n=10), "code")  # default checker
    assert sorted(p["id"] for p in problems) == ["1007", "1008"]


def test_unparseable_math_answer_is_dropped(tmp_path, schemas):
    rows = [
        schemas.numina_row("Compute one half of one.", "\\frac{1}{"),
        schemas.numina_row("Compute 6 times 7.", "42"),
    ]
    path = schemas.write_jsonl(tmp_path / "m.jsonl", rows)
    problems = load_problems(local_copy(SEED_MATH_SOURCE, "jsonl", path, n=5), "math")
    assert [p["answer"] for p in problems] == ["42"]
    unfiltered = load_problems(
        local_copy(SEED_MATH_SOURCE, "jsonl", path, n=5, filters={"answer_parseable": False}), "math"
    )
    assert len(unfiltered) == 2


# --- errors --------------------------------------------------------------------------------------------------------


def test_mapping_field_absent_from_the_data_is_an_error_naming_it(tmp_path, schemas):
    rows = schemas.numina_rows(3)
    mapping = {"problem": "question", "answer": "answer"}
    for kind, path in (
        ("jsonl", schemas.write_jsonl(tmp_path / "m.jsonl", rows)),
        ("parquet", schemas.write_parquet(tmp_path / "m.parquet", rows)),
    ):
        source = ProblemSourceConfig(kind=kind, name="numina-local", path=str(path), mapping=mapping, n=2)
        with pytest.raises(ProblemSourceError) as err:
            load_problems(source, "math")
        message = str(err.value)
        assert "'numina-local'" in message and "mapping.problem" in message and "'question'" in message
        assert "not in the data" in message
    bad_filter = ProblemSourceConfig(
        kind="jsonl",
        path=str(tmp_path / "m.jsonl"),
        mapping={"problem": "problem", "answer": "answer"},
        filters={"fields": [{"field": "difficulty", "min": 3}]},
        n=2,
    )
    with pytest.raises(ProblemSourceError, match=r"filters\.fields\[0\]\.field names field 'difficulty'"):
        load_problems(bad_filter, "math")


def test_unknown_keys_and_missing_roles_are_errors(tmp_path):
    with pytest.raises(ProblemSourceError) as err:
        parse_source_config(
            {"kind": "jsonl", "name": "m", "path": "x.jsonl", "n": 3, "mapping": {"problm": "q", "answer": "a"}},
            where="sweeps/seed.yaml",
        )
    message = str(err.value)
    assert message.startswith("sweeps/seed.yaml: problem source 'm'")
    assert "mapping.problm: unknown key" in message and "mapping.problem: Field required" in message
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        ProblemSourceConfig.model_validate({"kind": "builtin", "n": 3, "sead": 1})
    with pytest.raises(ValueError, match="revision is required"):
        ProblemSourceConfig(kind="huggingface", dataset="owner/set", mapping={"problem": "p", "answer": "a"}, n=1)
    with pytest.raises(ValueError, match="no operator"):
        parse_source_config({"kind": "builtin", "n": 1, "filters": {"fields": [{"field": "x"}]}})
    code_without_tests = ProblemSourceConfig(kind="jsonl", path="x.jsonl", mapping={"problem": "p"}, n=1)
    with pytest.raises(ProblemSourceError, match="mapping.tests is required for code"):
        code_without_tests.check("code")
    with pytest.raises(ProblemSourceError, match="mapping.answer is required for math"):
        code_without_tests.check("math")


def test_rows_with_unusable_tests_are_counted_and_all_bad_is_an_error(tmp_path, schemas):
    rows = schemas.opencoder_rows()[:3]
    rows[1]["testcase"] = ["assert add_offset_2([1], 0 ==", "x = 1"]  # syntax error
    path = schemas.write_jsonl(tmp_path / "edu.jsonl", rows)
    loaded = read_source(local_copy(SEED_CODE_SOURCE, "jsonl", path, n=5), "code")
    assert len(loaded.problems) == 2 and loaded.stats["invalid"] == {"bad_tests": 1}
    assert "does not parse" in loaded.stats["invalid_examples"]["bad_tests"]
    for row in rows:
        row["testcase"] = []
    schemas.write_jsonl(path, rows)
    with pytest.raises(ProblemSourceError, match="no row maps to a valid code problem.*no assert statements"):
        read_source(local_copy(SEED_CODE_SOURCE, "jsonl", path, n=5), "code")


# --- test specs ----------------------------------------------------------------------------------------------------

SPEC_CASES = [
    (
        ["assert f(1) == 2", "assert f(2) == 3"],
        "assert",
        "f",
        {"format": "assert", "entry_point": "f", "setup": "", "asserts": ["assert f(1) == 2", "assert f(2) == 3"]},
    ),
    (  # a block with an import, entry point inferred past builtins and module functions
        "import math\nassert math.isclose(area(2), 12.56, rel_tol=0.01)\nassert set(area_all([1])) == {3.14}",
        "assert",
        "",
        {
            "format": "assert",
            "entry_point": "area",
            "setup": "import math",
            "asserts": ["assert math.isclose(area(2), 12.56, rel_tol=0.01)", "assert set(area_all([1])) == {3.14}"],
        },
    ),
    (
        "from solution import g\n\ndef test_g():\n    assert g() == 1",
        "pytest",
        "",
        {"format": "pytest", "test_code": "pass\n\ndef test_g():\n    assert g() == 1\n"},
    ),
    (
        '{"inputs": ["1 2\\n", "3 4\\n"], "outputs": ["3\\n", "7\\n"]}',
        "stdio",
        "",
        {"format": "stdio", "cases": [{"stdin": "1 2\n", "stdout": "3\n"}, {"stdin": "3 4\n", "stdout": "7\n"}]},
    ),
    (
        [{"input": "5", "output": "25"}],
        "stdio",
        "",
        {"format": "stdio", "cases": [{"stdin": "5", "stdout": "25"}]},
    ),
    (
        {"fn_name": "sq", "inputs": [[2], [3]], "outputs": [4, 9]},
        "call",
        "",
        {"format": "call", "entry_point": "sq", "inputs": [[2], [3]], "outputs": [4, 9], "atol": 0},
    ),
    (
        '{"format": "call", "entry_point": "h", "inputs": [[1]], "outputs": [1], "atol": 0}',
        "spec",
        "",
        {"format": "call", "entry_point": "h", "inputs": [[1]], "outputs": [1], "atol": 0},
    ),
]


@pytest.mark.parametrize(("value", "fmt", "entry", "expected"), SPEC_CASES)
def test_test_specs(value, fmt, entry, expected):
    assert build_test_spec(value, fmt, entry) == expected


@pytest.mark.parametrize(
    ("value", "fmt", "message"),
    [
        ([], "assert", "no assert statements"),
        (["print(1)"], "assert", "no assert statements"),
        (["assert len([1]) == 1"], "assert", "no entry point"),
        ("def test(:\n", "pytest", "does not parse"),
        ({"inputs": [1], "outputs": []}, "stdio", "equally long"),
        ({"inputs": [[1]], "outputs": [1]}, "call", "need an entry point"),
        ({"format": "unknown"}, "spec", "not a test spec"),
    ],
)
def test_bad_test_specs(value, fmt, message):
    with pytest.raises(ValueError, match=message):
        build_test_spec(value, fmt)


# --- defaults and built-ins ----------------------------------------------------------------------------------------


def test_seed_defaults_are_pinned_and_match_the_builtin_instructions():
    for source, domain in ((SEED_MATH_SOURCE, "math"), (SEED_CODE_SOURCE, "code")):
        source.check(domain)
        assert source.kind == "huggingface" and len(source.revision) == 40 and source.n == 40_000
        assert ProblemSourceConfig.model_validate(source.model_dump(by_alias=True)) == source  # round-trips
    from distill_ray import builtin_problems as builtin

    assert builtin.MATH_INSTRUCTION == DEFAULT_MATH_INSTRUCTION
    assert builtin.CODE_INSTRUCTION == DEFAULT_CODE_INSTRUCTION


def test_builtin_kind_uses_make_problems():
    from distill_ray import builtin_problems as builtin

    source = ProblemSourceConfig(kind="builtin", n=12, seed=5)
    problems = load_problems(source, "math")
    assert problems == builtin.make_problems("math", "train", 12, 5)
    with pytest.raises(ValueError, match="not allowed for kind 'builtin'"):
        ProblemSourceConfig(kind="builtin", n=3, path="x.jsonl")


# --- benchmarks ----------------------------------------------------------------------------------------------------


def test_math500_and_mbppplus_loaders_on_schema_files(tmp_path, schemas):
    m = schemas.write_jsonl(
        tmp_path / "math500.jsonl",
        [schemas.math500_row("test/algebra/1.json", "Solve $2x = 6$ for $x$.", "3")],
    )
    (p,) = load_math500(str(m))
    assert p == {
        "id": "test/algebra/1.json",
        "domain": "math",
        "prompt": "Solve $2x = 6$ for $x$.\n\n" + DEFAULT_MATH_INSTRUCTION,
        "answer": "3",
        "tests": "",
        "source": str(m),
        "split": "math500",
    }
    row = schemas.mbppplus_row(
        82,
        "Write a function to find the volume of a cube.",
        "cube_volume",
        ["assert math.isclose(cube_volume(2), 8.0, rel_tol=0.001)", "assert cube_volume(1) == 1"],
        setup="import math",
    )
    b = tmp_path / "MbppPlus.jsonl.gz"
    b.write_bytes(gzip.compress((json.dumps(row) + "\n").encode()))
    (q,) = load_mbppplus(str(b))
    assert q["id"] == "Mbpp/82" and q["split"] == "mbppplus"
    assert q["prompt"] == (
        "Write a function to find the volume of a cube.\nassert math.isclose(cube_volume(2), 8.0, rel_tol=0.001)"
        "\n\n" + DEFAULT_CODE_INSTRUCTION
    )
    assert json.loads(q["tests"]) == {
        "format": "assert",
        "entry_point": "cube_volume",
        "setup": "import math",
        "asserts": ["assert math.isclose(cube_volume(2), 8.0, rel_tol=0.001)", "assert cube_volume(1) == 1"],
    }
    assert load_mbppplus_raw(str(b)) == [row]


def test_benchmark_loader_errors_name_file_line_and_field(tmp_path, schemas):
    good = schemas.math500_row("a", "One plus one?", "2")
    bad = {k: v for k, v in schemas.math500_row("b", "Two plus two?", "4").items() if k != "answer"}
    path = schemas.write_jsonl(tmp_path / "m.jsonl", [good, bad])
    with pytest.raises(ProblemSourceError, match=r"m\.jsonl:2: missing field 'answer'"):
        load_math500(str(path))
    with pytest.raises(ProblemSourceError, match="no such file"):
        load_mbppplus(str(tmp_path / "absent.jsonl"))


def test_real_benchmark_files(shared_benchmarks):
    math500 = load_math500(str(shared_benchmarks / "math500.jsonl"))
    mbpp = load_mbppplus(str(shared_benchmarks / "MbppPlus-v0.2.0.jsonl.gz"))
    assert len(math500) == 500 and len({p["id"] for p in math500}) == 500
    assert len(mbpp) == 378
    specs = [json.loads(p["tests"]) for p in mbpp]
    assert all(s["format"] == "assert" and s["entry_point"] and s["asserts"] for s in specs)
    assert sum(s["setup"] == "import math" for s in specs) == 10  # the float tasks carry their import
    raw = load_mbppplus_raw(str(shared_benchmarks / "MbppPlus-v0.2.0.jsonl.gz"))
    assert all(s["entry_point"] == r["entry_point"] for s, r in zip(specs, raw, strict=True))


def test_pinned_download_is_verified_and_cached(tmp_path):
    payload = b'{"x": 1}\n'
    pinned = PinnedFile(
        url="https://example.invalid/f.jsonl", sha256=hashlib.sha256(payload).hexdigest(), filename="f.jsonl"
    )
    fetched = []

    def fake_download(url, dest):
        fetched.append(url)
        dest.write_bytes(payload)

    path = fetch_pinned(pinned, tmp_path, download=fake_download)
    assert path.read_bytes() == payload and fetched == [pinned.url]
    assert fetch_pinned(pinned, tmp_path, download=fake_download) == path and len(fetched) == 1  # cached

    wrong = PinnedFile(url=pinned.url, sha256="0" * 64, filename="g.jsonl")
    with pytest.raises(ValueError, match="does not match the pin"):
        fetch_pinned(wrong, tmp_path, download=fake_download)
    assert not (tmp_path / "g.jsonl").exists() and not list(tmp_path.glob(".g.jsonl.*"))  # nothing unverified kept
