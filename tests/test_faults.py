"""Faults of issue 27: each gets one line (no traceback), a non-zero exit, no half-written output folder, an
untouched data folder, and no run that succeeds on the wrong inputs. Test data is tiny and made in
tmp_path."""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hft_lessons import cli, data

try:
    from hft_lessons import checkpoint
except ImportError:  # the code before issue 27 (these tests were first run against it, and failed)
    checkpoint = None
from hft_lessons.backbone import load_backbone, packaged_minilm_path, tiny_bert_config
from hft_lessons.cli import main

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HFT_PROFILE": "smoke", "OMP_NUM_THREADS": "1"}
ENV.pop("HFT_DATA_DIR", None)
BASE = ["--profile", "smoke", "--no-progress", "--max-train", "32", "--max-eval", "16"]
SST2 = ["finetune", "--task", "sst2", *BASE]


def run_process(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m hft_lessons args`` in a fresh process, for what only a process shows (start-up time)."""
    return subprocess.run([sys.executable, "-m", "hft_lessons", *args], capture_output=True, text=True,
                          env=ENV, timeout=timeout)


def run(args: list[str]) -> subprocess.CompletedProcess:
    """The command run in this process (torch is loaded once), with ENV; its exit status and both streams."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, redirect_stdout(out), redirect_stderr(err):
        for key, value in ENV.items():
            mp.setenv(key, value)
        mp.delenv("HFT_DATA_DIR", raising=False)
        mp.setattr(cli, "_CREATED", [], raising=False)
        try:
            code = main(args)
        except SystemExit as exit_info:
            code = exit_info.code if isinstance(exit_info.code, int) else 1
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


@pytest.fixture
def smoke(monkeypatch):
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("HFT_DATA_DIR", raising=False)
    monkeypatch.setattr(cli, "_CREATED", [], raising=False)


def one_line_failure(argv: list[str], capsys) -> str:
    """Run the command in-process; require a non-zero exit and exactly one stderr line, and return it."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code not in (0, None)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def files_of(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def data_folder(tmp_path: Path, name: str = "sst2", rows: dict | None = None, read_only: bool = True) -> Path:
    """A data folder with one task, saved with save_to_disk (the samples, or ``rows`` per split)."""
    from datasets import Dataset, DatasetDict

    root = tmp_path / "data"
    ds = (data.load_samples(name) if rows is None
          else DatasetDict({k: Dataset.from_dict(v) for k, v in rows.items()}))
    ds.save_to_disk(str(root / name))
    if read_only:
        for p in [root, *root.rglob("*")]:
            p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return root


def bert_folder(tmp_path: Path, tokenizer: bool = True, weights: str = "full") -> Path:
    """A tiny random BERT saved like a Hub checkpoint; optionally without tokenizer or with broken weights."""
    from transformers import AutoTokenizer, BertModel

    folder = tmp_path / "bert"
    torch.manual_seed(0)
    BertModel(tiny_bert_config(30522)).save_pretrained(str(folder))
    if tokenizer:
        AutoTokenizer.from_pretrained(str(packaged_minilm_path())).save_pretrained(str(folder))
    file = folder / "model.safetensors"
    if weights == "missing":
        file.unlink()
    elif weights == "truncated":
        file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    return folder


# 1. a named data folder without the task --------------------------------------------------------------------

def test_1_data_dir_without_the_task_is_refused(tmp_path, smoke, capsys, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    line = one_line_failure([*SST2, "--method", "lora", "--data-dir", str(empty),
                             "--output-dir", str(tmp_path / "out")], capsys)
    assert f"has no sst2 data: looked for the save_to_disk folder '{empty / 'sst2'}'" in line
    assert not (tmp_path / "out").exists() and list(empty.iterdir()) == []
    monkeypatch.setenv("HFT_DATA_DIR", str(empty))
    with pytest.raises(ValueError, match="^HFT_DATA_DIR .* has no conll2003 data"):
        data.load_task("conll2003")


# 2. a BERT folder without tokenizer files -------------------------------------------------------------------

def test_2_bert_folder_without_tokenizer_is_refused(tmp_path, smoke, capsys):
    folder = bert_folder(tmp_path, tokenizer=False)
    with pytest.raises(ValueError, match="has no tokenizer .*every word would be \\[UNK\\]"):
        load_backbone(str(folder), verbose=False)
    line = one_line_failure([*SST2, "--method", "lora", "--model", str(folder),
                             "--output-dir", str(tmp_path / "out")], capsys)
    assert "has no tokenizer" in line and not (tmp_path / "out").exists()


def test_2_bert_folder_with_tokenizer_loads_its_vocabulary(tmp_path):
    tokenizer, model = load_backbone(str(bert_folder(tmp_path)), verbose=False)
    assert len(tokenizer) == model.config.vocab_size == 30522


# 3. NaN / inf loss ------------------------------------------------------------------------------------------

def test_3_nan_loss_stops_the_run_with_one_line(tmp_path, smoke, capsys):
    out = tmp_path / "out"
    line = one_line_failure([*SST2, "--method", "full", "--lr", "1e9", "--output-dir", str(out)], capsys)
    assert "the training loss became nan at step" in line and "try a lower learning rate" in line
    assert not out.exists(), "a stopped run leaves no output folder behind"


def test_3_inf_lr_is_refused_and_metrics_are_valid_json(tmp_path, capsys):
    line = one_line_failure([*SST2, "--method", "full", "--lr", "inf"], capsys)
    assert line == "error: argument --lr: expected a positive finite number, got 'inf'"
    checkpoint.write_json_atomic(tmp_path / "m.json", {"lr": float("inf"), "loss": [float("nan"), 1.0]})
    assert json.loads((tmp_path / "m.json").read_text()) == {"lr": None, "loss": [None, 1.0]}


# 4. --resume checks the checkpoint against the command ------------------------------------------------------

@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    """A finished LoRA run with a checkpoint (made once for the module)."""
    out = tmp_path_factory.mktemp("lora") / "run"
    proc = run([*SST2, "--method", "lora", "--checkpoint-every", "1", "--output-dir", str(out)])
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.parametrize("change, fields", [
    (["--seed", "1"], "seed 0 -> 1"),
    (["--lr", "0.01"], "lr 0.002 -> 0.01"),
    (["--method", "full"], "method 'lora' -> 'full'"),
])
def test_4_resume_refuses_a_different_configuration(lora_run, smoke, capsys, change, fields):
    argv = [*SST2, "--method", "lora", "--resume", "--output-dir", str(lora_run)]
    if change[0] == "--method":
        argv[argv.index("lora")] = "full"
    else:
        argv += change
    before = files_of(lora_run)
    line = one_line_failure(argv, capsys)
    assert "--resume: this command differs from the checkpoint in:" in line and fields in line
    assert files_of(lora_run) == before


def test_4_resume_into_another_task_names_the_task(lora_run, smoke, capsys):
    argv = ["finetune", "--task", "conll2003", *BASE, "--method", "lora", "--resume",
            "--output-dir", str(lora_run)]
    line = one_line_failure(argv, capsys)
    assert "task 'sst2' -> 'conll2003'" in line


def test_4_library_resume_refuses_a_different_training_config(lora_run):
    saved = checkpoint.Checkpointer(lora_run).load()[0]["config"]
    with pytest.raises(ValueError, match="seed 0 -> 3"):
        checkpoint.Checkpointer(lora_run).load({**saved, "seed": 3})


# 5. a reused --output-dir -----------------------------------------------------------------------------------

def test_5_output_dir_with_another_run_is_refused_unless_overwrite(lora_run, tmp_path, smoke, capsys):
    import shutil

    out = tmp_path / "reuse"
    shutil.copytree(lora_run, out)
    line = one_line_failure([*SST2, "--method", "full", "--output-dir", str(out)], capsys)
    assert "already holds files (checkpoint, metrics.json, model, run_config.json)" in line
    assert "pass --overwrite" in line
    proc = run([*SST2, "--method", "full", "--overwrite", "--output-dir", str(out)])
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (out / "model").iterdir()) == ["weights.safetensors"]  # no stale LoRA files
    assert json.loads((out / "metrics.json").read_text())["method"] == "full"


# 6. the backbone that ran is recorded -----------------------------------------------------------------------

@pytest.mark.skipif(packaged_minilm_path() is None, reason="needs the packaged MiniLM")
def test_6_metrics_record_the_backbone_and_the_run_config(tmp_path):
    out = tmp_path / "out"
    proc = run([*SST2, "--method", "head", "--model", "bert-base-uncased", "--max-train", "8",
                "--max-eval", "8", "--output-dir", str(out)])
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["backbone"] == "all-MiniLM-L6-v2 (packaged)"
            and metrics["model_requested"] == "bert-base-uncased")
    config = metrics["run_config"]
    for key in ("method", "task", "seed", "lr", "backbone", "processes", "code_version"):
        assert key in config
    assert config == json.loads((out / "run_config.json").read_text())


# 7. a save failure after training ---------------------------------------------------------------------------

def test_7_save_failure_keeps_the_trained_weights_and_the_metrics(tmp_path, smoke, capsys, monkeypatch):
    real = cli._save_weights
    calls = []

    def failing_once(model, folder):
        calls.append(folder)
        if len(calls) == 1:
            raise PermissionError(13, "Permission denied", str(folder))
        real(model, folder)

    monkeypatch.setattr(cli, "_save_weights", failing_once)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main([*SST2, "--method", "lora", "--output-dir", str(out)])
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "could not save the weights to" in err[0] and "they were saved to" in err[0]
    rescued = calls[1]
    assert (rescued / "delta_weights.safetensors").is_file() and str(rescued) in err[0]
    metrics = json.loads(captured.out.strip().splitlines()[-1])
    assert json.loads((out / "metrics.json").read_text()) == metrics and "accuracy" in metrics


def test_7_a_file_named_model_is_refused_before_anything_loads(tmp_path, smoke, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model").write_text("not a folder")
    line = one_line_failure([*SST2, "--method", "lora", "--output-dir", str(out)], capsys)
    assert "already holds files (model)" in line


# 8. checkpoints are one unit --------------------------------------------------------------------------------

CKPT = [*SST2, "--method", "full", "--max-train", "64", "--batch-size", "16", "--epochs", "2",
        "--checkpoint-every", "2"]


def run_forked(argv: list[str], crash: str | None = None, log: Path | None = None) -> int:
    """Run the command in a forked child of this process (no import cost); return its exit code.

    With ``crash``, the child dies (os._exit(137), like kill -9) at that point of a checkpoint save; its
    output goes to ``log`` (or nowhere).
    """
    import multiprocessing

    def child() -> None:
        for key, value in ENV.items():
            os.environ[key] = value
        os.environ.pop("HFT_DATA_DIR", None)
        if crash:
            os.environ[checkpoint.CRASH_ENV] = crash
        torch.set_num_threads(1)
        sys.stdout = sys.stderr = open(log or os.devnull, "w")  # noqa: SIM115 - the child's whole life
        sys.exit(main(argv))

    proc = multiprocessing.get_context("fork").Process(target=child)
    proc.start()
    proc.join(600)
    return proc.exitcode


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    assert run_forked([*CKPT, "--output-dir", str(out)]) == 0
    return load_file(str(out / "model" / "weights.safetensors"))


# where the kill lands (n-th time a save of the 4, at steps 2, 4, 6, 8, gets there; the first save has
# nothing to rename away) -> the step the resumed run must start from
KILL_POINTS = {"between_renames:1": 4, "after_state:2": 2, "after_rng:3": 4, "after_swap:2": 4}
REPEAT = int(os.environ.get("HFT_KILL_REPEAT", "1"))  # HFT_KILL_REPEAT=20: each kill point 20 times


@pytest.mark.slow
@pytest.mark.parametrize("point", [p for p in KILL_POINTS for _ in range(REPEAT)])
def test_8_kill_between_checkpoint_files_then_resume_is_exact(uninterrupted, tmp_path, point):
    out = tmp_path / "run"
    assert run_forked([*CKPT, "--output-dir", str(out)], crash=point) == 137
    leftovers = sorted(p.name for p in out.iterdir())
    log = tmp_path / "resumed.log"
    assert run_forked([*CKPT, "--resume", "--output-dir", str(out)], log=log) == 0, leftovers
    assert f"resumed from step {KILL_POINTS[point]} " in log.read_text()
    weights = load_file(str(out / "model" / "weights.safetensors"))
    assert weights.keys() == uninterrupted.keys()
    assert all(torch.equal(weights[k], uninterrupted[k]) for k in weights)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint", "metrics.json", "model", "run_config.json"]
    state = torch.load(out / "checkpoint" / "state.pt", weights_only=False)
    assert state["step"] == 8  # the last checkpoint of the resumed run, after all 8 steps


def test_8_recover_finishes_or_undoes_an_interrupted_swap(tmp_path):
    def folder(name: str, step: int, done: bool) -> None:
        (tmp_path / name).mkdir()
        (tmp_path / name / "state.pt").write_text(str(step))
        if done:
            (tmp_path / name / "COMPLETE").touch()

    folder(".checkpoint.old", 2, True)
    folder(".checkpoint.tmp", 4, True)  # killed between the renames: the new one is whole
    checkpoint.recover(tmp_path)
    assert (tmp_path / "checkpoint" / "state.pt").read_text() == "4"
    folder(".checkpoint.tmp", 6, False)  # killed while writing: the old one stays
    (tmp_path / "checkpoint" / "state.pt.tmp123").write_text("junk of the older format")
    checkpoint.recover(tmp_path)
    assert (tmp_path / "checkpoint" / "state.pt").read_text() == "4"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["COMPLETE", "checkpoint", "state.pt"]


# 9. the data folder is never written ------------------------------------------------------------------------

def test_9_read_only_data_folder_works_and_stays_unchanged(tmp_path, smoke, capsys):
    root = data_folder(tmp_path)
    before = files_of(root)
    assert main(
        [*SST2, "--method", "lora", "--data-dir", str(root), "--output-dir", str(tmp_path / "out")]
    ) == 0
    assert "local data folder" in capsys.readouterr().out
    assert files_of(root) == before


# 10. one line instead of a traceback ------------------------------------------------------------------------

CONLL_ROW = {"id": ["0"], "tokens": [["EU", "rejects"]], "pos_tags": [[22, 42]], "chunk_tags": [[11, 21]],
             "ner_tags": [[3, 0]]}
SST2_ROWS = {"sentence": ["good", "bad"], "label": [0, 7], "idx": [0, 1]}


@pytest.mark.parametrize("case, message", [
    ("wrong_columns", "is not sst2 data: split 'train' lacks the column(s) sentence, label, idx"),
    ("label_out_of_range", "split 'train' has label values from 0 to 7; sst2 labels must be in 0..1"),
    ("missing_weights", "has no weights (model.safetensors or pytorch_model.bin)"),
    ("truncated_weights", "cannot load the model in"),
    ("output_under_a_file", "cannot be created:"),
    ("junk_checkpoint", "records no run configuration"),
    ("max_length_over_positions", "--max-length 600 exceeds the model's 512 positions; use at most 512"),
    ("max_length_under_qa_stride", "leaves no room for squad's context"),
    ("batch_not_divisible", "--batch-size 3 cannot be split over 2 processes; use a multiple of 2"),
])
def test_10_faults_are_one_line(tmp_path, smoke, capsys, monkeypatch, case, message):
    out, argv = tmp_path / "out", [*SST2, "--method", "lora"]
    root = None
    if case == "wrong_columns":
        # another task's data
        root = data_folder(tmp_path, rows={"train": CONLL_ROW, "validation": CONLL_ROW})
        argv += ["--data-dir", str(root)]
    elif case == "label_out_of_range":
        root = data_folder(tmp_path, rows={"train": SST2_ROWS, "validation": SST2_ROWS})
        argv += ["--data-dir", str(root)]
    elif case in ("missing_weights", "truncated_weights"):
        argv += ["--model", str(bert_folder(tmp_path, weights=case.split("_")[0]))]
    elif case == "output_under_a_file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "out"
    elif case == "junk_checkpoint":
        (out / "checkpoint").mkdir(parents=True)
        (out / "checkpoint" / "state.pt").write_bytes(b"\x00junk")
        argv += ["--resume"]
    elif case == "max_length_over_positions":
        argv += ["--max-length", "600"]
    elif case == "max_length_under_qa_stride":
        argv = ["finetune", "--task", "squad", *BASE, "--method", "lora", "--max-length", "40"]
    elif case == "batch_not_divisible":
        monkeypatch.setenv("WORLD_SIZE", "2")
        argv += ["--batch-size", "3"]
    before = files_of(root) if root else None
    existed = out.exists()
    line = one_line_failure([*argv, "--output-dir", str(out)], capsys)
    assert message in line, line
    if root is not None:
        assert files_of(root) == before
    if not existed:
        assert not out.exists(), "a failed command leaves no output folder"


def test_10_junk_checkpoint_is_one_line_in_the_library(tmp_path):
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "state.pt").write_bytes(b"\x00junk")
    with pytest.raises(ValueError, match="is not a readable checkpoint"):
        checkpoint.Checkpointer(tmp_path).load()


# 11. a failed delta.load changes nothing --------------------------------------------------------------------

def test_11_failed_delta_load_leaves_the_model_unchanged(tmp_path):
    from transformers import BertModel

    from hft_lessons import delta
    from hft_lessons.tasks import get_task

    torch.manual_seed(0)
    saved = delta.apply(get_task("sst2").build_model(BertModel(tiny_bert_config(1000))), "lora")
    delta.save(saved, tmp_path / "d")
    wide = tiny_bert_config(1000)
    wide.hidden_size, wide.intermediate_size = 128, 256
    model = get_task("sst2").build_model(BertModel(wide)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ids = torch.randint(0, 1000, (2, 7))
    out_before = model(ids)
    with pytest.raises(ValueError, match="saved shape \\(8, 64\\) != model shape \\(8, 128\\)"):
        delta.load(model, tmp_path / "d")
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in after)
    assert delta.applied_configs(model) == [] and torch.equal(model(ids), out_before)
    fresh = get_task("sst2").build_model(BertModel(tiny_bert_config(1000)))
    delta.load(fresh, tmp_path / "d")  # the right delta still loads afterwards, exactly
    assert all(torch.equal(a, b) for a, b in zip(delta.delta_parameters(fresh).values(),
                                                  delta.delta_parameters(saved).values(), strict=True))


# 12. a reachable but broken Hub -----------------------------------------------------------------------------

@pytest.fixture
def silent_server(monkeypatch):
    """A loopback server that accepts connections and never answers; HF_ENDPOINT points at it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HFT_DATA_DIR"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
    monkeypatch.setattr(data, "_PROBED", {}, raising=False)
    yield
    stop.set()
    thread.join(2)
    for s in held:
        s.close()
    server.close()


def test_12_hub_that_never_answers_falls_back_within_ten_seconds(silent_server, capsys):
    start = time.perf_counter()
    ds = data.load_task("sst2")
    assert time.perf_counter() - start < 10
    assert "Hub unreachable" in capsys.readouterr().out and len(ds["train"]) == 262
    if packaged_minilm_path() is not None:
        start = time.perf_counter()
        tokenizer, model = load_backbone("bert-base-uncased")
        assert time.perf_counter() - start < 15  # the probe's answer is remembered: no second wait
        assert "packaged all-MiniLM-L6-v2" in capsys.readouterr().out and model.config.hidden_size == 384


# 13. smaller faults -----------------------------------------------------------------------------------------

def test_13_saved_files_get_the_users_usual_permissions(lora_run):
    old = os.umask(0o022)
    os.umask(old)
    expected = 0o666 & ~old
    for f in ("metrics.json", "model/delta_config.json", "model/delta_weights.safetensors",
              "checkpoint/state.pt"):
        assert stat.S_IMODE((lora_run / f).stat().st_mode) == expected, f


@pytest.fixture(scope="module")
def tiny_models():
    from hft_lessons.tasks import get_task

    tokenizer, backbone = load_backbone("tiny-random-bert", verbose=False)
    torch.manual_seed(0)
    return tokenizer, {n: get_task(n).build_model(backbone) for n in ("conll2003", "squad")}


def test_13_emoji_sentence_is_not_called_too_long(tiny_models):
    from hft_lessons.inference import tag_entities

    tokenizer, models = tiny_models
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        entities = tag_entities(models["conll2003"], tokenizer, "I ❤️ Paris 🙂 and 👍 Berlin ✨ so much ❤️")
    assert all(isinstance(e, tuple) for e in entities)


@pytest.mark.parametrize("kwargs, message", [
    ({"max_length": -5}, "max_length must be an integer >= 8, got -5"),
    ({"n_best": 0}, "n_best must be an integer >= 1, got 0"),
    ({"stride": -1}, "stride must be an integer >= 0, got -1"),
    ({"max_answer_length": 0}, "max_answer_length must be an integer >= 1, got 0"),
])
def test_13_answer_names_the_bad_argument(tiny_models, kwargs, message):
    from hft_lessons.inference import answer

    tokenizer, models = tiny_models
    with pytest.raises(ValueError) as err:
        answer(models["squad"], tokenizer, "Who?", "Ann wrote it.", **kwargs)
    assert str(err.value) == message


@pytest.mark.parametrize("argv", [["finetune", "--task", "sst3", "--method", "lora"],
                                  ["finetune", "--task", "sst2", "--method", "lorax"],
                                  ["multitask", "--tasks", "sst2", "--method", "lora", "--epochs", "0"]])
def test_13_argument_errors_are_fast(argv):
    start = time.perf_counter()
    proc = run_process(argv, timeout=60)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert elapsed < 3, f"an argument error took {elapsed:.1f} s (heavy imports before parsing?)"
    assert "torch" not in subprocess.run(
        [sys.executable, "-c", "import sys, hft_lessons.cli; print(sorted(sys.modules))"],
        capture_output=True, text=True, env=ENV,
    ).stdout


def test_13_method_choices_are_the_methods():
    from hft_lessons.methods import METHOD_NAMES

    assert cli.METHOD_CHOICES == METHOD_NAMES


def test_multitask_shares_the_output_dir_rules(lora_run, smoke, capsys):
    line = one_line_failure(["multitask", "--tasks", "sst2,conll2003", *BASE, "--method", "lora",
                             "--output-dir", str(lora_run)], capsys)
    assert "already holds files" in line and "--overwrite" in line
