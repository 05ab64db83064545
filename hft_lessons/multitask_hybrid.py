"""The outline's hybrid, whole: one frozen backbone, a shared delta trained on every task, a small adapter per
task.

``build_hybrid(backbone, ["sst2", "conll2003", "squad"], HybridDesign("hybrid", "pfeiffer"))`` returns a
:class:`MultiTaskHybridModel`: the shared delta (a delta recipe from :mod:`hft_lessons.methods`, e.g. LoRA on
every projection + BitFit) is applied once with :func:`hft_lessons.delta.apply`; every adapter place of the
task-adapter recipe (a Pfeiffer or Houlsby bottleneck, :class:`hft_lessons.delta.Bottleneck`) holds one
bottleneck *per task* in a :class:`TaskAdapters` switch, and only the bottleneck of the task being run is in
the forward path; each task has its own head. ``MultiTask`` (its samplers, collator, loss and evaluation)
trains it with ``training.train``.

The parts save apart (:func:`save_parts`): ``shared/`` is a plain :func:`hft_lessons.delta.save` folder, and
``tasks/<name>/`` holds one task's adapter and head, so one task ships without the others. :func:`load_parts`
puts them on one loaded backbone; :func:`run_request` answers a request for any task, switching adapters per
request. ``delta.merge(model)`` folds the shared LoRA into the backbone's weights while the task adapters stay
switchable.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from . import delta
from .delta.adapter import ADAPTER_PLACES
from .delta.arch import detect, slots
from .delta.base import LinearWrapper
from .files import atomic_write
from .multitask import MultiTask, MultiTaskModel
from .tasks.base import TaskModel

__all__ = [
    "ADAPTER_RECIPES",
    "HybridDesign",
    "DESIGNS",
    "TaskAdapters",
    "MultiTaskHybridModel",
    "build_hybrid",
    "backbone_fingerprint",
    "shared_hash",
    "save_shared",
    "save_task_part",
    "save_parts",
    "load_task_part",
    "load_parts",
    "stored_parameters",
    "run_request",
    "build_from_args",
]

ADAPTER_RECIPES = ("pfeiffer", "adapter")  # the methods.RECIPES whose one config is a bottleneck adapter
MANIFEST = "hybrid.json"
TASK_CONFIG, TASK_WEIGHTS = "task_config.json", "task_weights.safetensors"
FORMAT = "hft-multitask-hybrid/1"


@dataclass(frozen=True)
class HybridDesign:
    """Which parts are shared and which are per task: a shared delta recipe and a per-task adapter recipe.

    ``shared``: a delta recipe of :data:`hft_lessons.methods.RECIPES` (``"hybrid"`` = LoRA on every
    projection + BitFit, ``"lora"``, ``"bitfit"``, ...) trained on every task, or None (nothing shared but
    the frozen backbone). ``task_adapter``: ``"pfeiffer"`` or ``"adapter"`` (Houlsby), one bottleneck per
    task, or None (heads only). Heads are always per task.
    """

    shared: str | None = "hybrid"
    task_adapter: str | None = "pfeiffer"

    def __post_init__(self) -> None:
        from .methods import RECIPES

        allowed = [n for n, r in RECIPES.items() if r.configs() and n != "unipelt"]
        if self.shared is not None and self.shared not in allowed:
            raise ValueError(f"unknown shared delta {self.shared!r}; allowed: {', '.join(allowed)} or None")
        if self.task_adapter is not None and self.task_adapter not in ADAPTER_RECIPES:
            raise ValueError(f"unknown task adapter {self.task_adapter!r}; allowed: "
                             f"{', '.join(ADAPTER_RECIPES)} or None")
        if self.shared is None and self.task_adapter is None:
            raise ValueError("a design needs a shared delta, a task adapter, or both")

    def shared_configs(self) -> list[delta.DeltaConfig]:
        """Fresh configs of the shared delta (empty when nothing is shared)."""
        from .methods import RECIPES

        return RECIPES[self.shared].configs() if self.shared else []

    def adapter_config(self) -> delta.AdapterConfig | None:
        """The per-task bottleneck's config (variant and width), or None."""
        from .methods import RECIPES

        return RECIPES[self.task_adapter].configs()[0] if self.task_adapter else None  # type: ignore[return-value]


# the designs the chapter compares, by name
DESIGNS = {
    # shared LoRA + BitFit, a Pfeiffer adapter and a head per task
    "hybrid": HybridDesign("hybrid", "pfeiffer"),
    "shared": HybridDesign("hybrid", None),  # chapter 9's design with the hybrid delta: shared LoRA + BitFit
    # nothing shared but the backbone: adapters and heads per task
    "adapters": HybridDesign(None, "pfeiffer"),
}


class TaskAdapters(LinearWrapper):
    """A projection followed by the *active* task's bottleneck: ``adapters[active](base(x))``, or
    ``base(x)``."""

    method: ClassVar[str] = "task_adapter"

    def __init__(self, base: nn.Module) -> None:
        super().__init__(base)
        self.adapters = nn.ModuleDict()
        self.active: str | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project, then run the active task's adapter (no adapter for that task: the projection alone)."""
        y = self.base(x)
        return self.adapters[self.active](y) if self.active in self.adapters else y


def _switches(backbone: nn.Module) -> Iterator[tuple[str, TaskAdapters]]:
    return ((n, m) for n, m in backbone.named_modules() if isinstance(m, TaskAdapters))


@contextmanager
def _adapters_detached(backbone: nn.Module) -> Iterator[None]:
    """Take the TaskAdapters switches out of the module tree for a while, so names are those of a plain
    delta."""
    arch = detect(backbone)
    taken = []
    for role in arch.roles:
        for parent, attribute in slots(backbone, arch, role):
            module = getattr(parent, attribute)
            if isinstance(module, TaskAdapters):
                setattr(parent, attribute, module.base)
                taken.append((parent, attribute, module))
    try:
        yield
    finally:
        for parent, attribute, module in reversed(taken):
            module.base = getattr(parent, attribute)  # a merge/unmerge in between may have swapped it
            setattr(parent, attribute, module)


def backbone_fingerprint(backbone: nn.Module) -> str:
    """A short hash of the backbone's shape and word embeddings (no delta method changes them)."""
    config = getattr(backbone, "config", None)
    shape = [getattr(config, k, None) for k in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                                                "intermediate_size", "vocab_size")]
    embedding = next(m for m in backbone.modules() if isinstance(m, nn.Embedding))
    digest = hashlib.sha256(json.dumps(shape).encode())
    digest.update(embedding.weight.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


class MultiTaskHybridModel(MultiTaskModel):
    """A MultiTaskModel whose forward switches the task adapters to the batch's task before encoding."""

    def __init__(self, backbone: nn.Module, heads: Mapping[str, nn.Module], design: HybridDesign) -> None:
        super().__init__(backbone, heads)
        self.design = design
        self.fingerprint = backbone_fingerprint(backbone)
        self.shared_id: str | None = None  # the hash of the shared delta the task parts were trained with

    def select(self, task: int | str | torch.Tensor | None) -> str:
        """Put ``task``'s adapter in the forward path of every switch; return the task's name."""
        name = self.task_name(task)
        for _, switch in _switches(self.backbone):
            switch.active = name
        return name

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, task: int | str | torch.Tensor | None = None,
                **_: Any) -> Any:
        """The chosen task's output, through that task's adapters."""
        return super().forward(input_ids, attention_mask, token_type_ids, task=self.select(task))

    def for_task(self, task: int | str) -> TaskModel:
        """A single-task view whose forward selects this task's adapters (for evaluation and inference)."""
        name = self.task_name(task)
        return _TaskView(self, name)

    def task_parameters(self, task: str) -> dict[str, nn.Parameter]:
        """One task's own parameters (its adapters and head), by name in the model."""
        name = self.task_name(task)
        found = {f"backbone.{path}.adapters.{name}.{n}": p for path, s in _switches(self.backbone)
                 if name in s.adapters for n, p in s.adapters[name].named_parameters()}
        found.update({f"head.{name}.{n}": p for n, p in self.head[name].named_parameters()})
        return found

    def shared_parameters(self) -> dict[str, nn.Parameter]:
        """The shared delta's parameters (what every task trains), by name in the model."""
        with _adapters_detached(self.backbone):
            names = ({id(p): n for n, p in delta.delta_parameters(self.backbone).items()}
                     if self.design.shared else {})
        return {f"backbone.{n}": p for n, p in self.backbone.named_parameters() if id(p) in names}

    def add_task_adapter(self, task: str) -> None:
        """Put a fresh bottleneck for ``task`` at every place of the design's adapter variant."""
        config = self.design.adapter_config()
        if config is None:
            return
        arch = detect(self.backbone)
        for role in ADAPTER_PLACES[config.variant]:
            for parent, attribute in slots(self.backbone, arch, role):
                switch = getattr(parent, attribute)
                if not isinstance(switch, TaskAdapters):
                    switch = TaskAdapters(switch)
                    setattr(parent, attribute, switch)
                size = config.size_for(switch.out_features)
                switch.adapters[task] = delta.Bottleneck(switch.out_features, size, config.activation,
                                                         **switch.factory)

    def save_parts(self, directory: str | os.PathLike[str]) -> Path:
        """The command line's save: :func:`save_parts`."""
        return save_parts(self, directory)


class _TaskView(TaskModel):
    """One task of a MultiTaskHybridModel as a TaskModel: its head, and its adapters switched on per call."""

    def __init__(self, model: MultiTaskHybridModel, task: str) -> None:
        super().__init__(model.backbone, model.head[task], task)
        object.__setattr__(self, "_owner", model)  # not a submodule: parameters stay counted once

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, **_: Any) -> torch.Tensor:
        """Select this task's adapters, then run backbone and head."""
        self._owner.select(self.task_name)
        return super().forward(input_ids, attention_mask, token_type_ids)


def build_hybrid(backbone: nn.Module, tasks: Sequence[str] | MultiTask, design: HybridDesign | str = "hybrid",
                 dropout: float = 0.1) -> MultiTaskHybridModel:
    """Frozen ``backbone`` + the design's shared delta + a head (and adapter, if any) per task; only those
    train."""
    if isinstance(design, str):
        if design not in DESIGNS:
            raise ValueError(f"unknown design {design!r}; allowed: {', '.join(DESIGNS)} or a HybridDesign")
        design = DESIGNS[design]
    task = tasks if isinstance(tasks, MultiTask) else MultiTask(list(tasks))
    model = MultiTaskHybridModel(backbone, task.make_head(backbone.config.hidden_size, dropout), design)
    if design.shared:
        delta.apply(model, design.shared_configs())  # freezes the backbone; the heads stay trainable
    else:
        backbone.requires_grad_(False)
    for name in model.task_names:
        model.add_task_adapter(name)  # new modules: trainable
    return model.to(next(backbone.parameters()).device)


# --- saving and loading the parts ---------------------------------------------------------------------------


def shared_hash(model: MultiTaskHybridModel) -> str | None:
    """A short hash of the shared delta's values (None when nothing is shared); task parts record it."""
    if not model.design.shared:
        return None
    digest = hashlib.sha256()
    with _adapters_detached(model.backbone):  # names as in the shared delta's own file
        for name, p in sorted(delta.delta_parameters(model.backbone).items()):
            digest.update(name.encode())
            digest.update(p.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def save_shared(model: MultiTaskHybridModel, directory: str | os.PathLike[str]) -> Path:
    """Write the shared delta as a plain ``delta.save`` folder (no heads, no task adapters) plus the
    manifest."""
    folder = Path(directory)
    if model.design.shared:
        with _adapters_detached(model.backbone):
            delta.save(model.backbone, folder)  # refuses a merged model in one line
        model.shared_id = shared_hash(model)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"format": FORMAT, "shared": model.design.shared, "task_adapter": model.design.task_adapter,
                "tasks": list(model.task_names), "backbone": _backbone_name(model.backbone),
                "backbone_fingerprint": model.fingerprint, "shared_id": model.shared_id}
    atomic_write(folder / MANIFEST, lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=2) + "\n"))
    return folder


def _backbone_name(backbone: nn.Module) -> str:
    from .backbone import backbone_label

    return backbone_label(getattr(getattr(backbone, "config", None), "name_or_path", "") or "unnamed")


def _know_shared_id(model: MultiTaskHybridModel) -> None:
    """Set ``model.shared_id`` from the shared delta's values if it is not known yet (not possible once
    merged)."""
    if model.shared_id is None and model.design.shared:
        if delta.is_merged(model):
            raise ValueError("the shared delta of this merged model has no recorded hash; unmerge it "
                             "(delta.unmerge) to save or load task parts, or save them before merging")
        model.shared_id = shared_hash(model)


def save_task_part(model: MultiTaskHybridModel, task: str, directory: str | os.PathLike[str]) -> Path:
    """Write one task's adapter and head (and what they need: backbone and shared-delta ids) to
    ``directory``."""
    name = model.task_name(task)
    _know_shared_id(model)
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    prefix = f".adapters.{name}."
    tensors = {n.replace(prefix, ".adapter."): p.detach().to("cpu", copy=True).contiguous()
               for n, p in model.task_parameters(name).items()}
    tensors.update({f"head.{name}.{n}": t.detach().to("cpu", copy=True).contiguous()
                    for n, t in model.head[name].state_dict().items()})  # buffers too, if a head has any
    meta = {"format": FORMAT, "task": name, "head": type(model.head[name]).__name__,
            "task_adapter": model.design.task_adapter, "shared": model.design.shared,
            "backbone": _backbone_name(model.backbone), "backbone_fingerprint": model.fingerprint,
            "shared_id": model.shared_id}
    atomic_write(folder / TASK_WEIGHTS, lambda tmp: save_file(tensors, tmp, metadata={"format": FORMAT}))
    atomic_write(folder / TASK_CONFIG, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2) + "\n"))
    return folder


def save_parts(model: MultiTaskHybridModel, directory: str | os.PathLike[str]) -> Path:
    """``directory/shared`` (the shared delta) and ``directory/tasks/<name>`` for every task, each on its
    own."""
    folder = Path(directory)
    save_shared(model, folder / "shared")
    for name in model.task_names:
        save_task_part(model, name, folder / "tasks" / name)
    return folder


def _read_json(folder: Path, file: str, what: str) -> dict[str, Any]:
    if not (folder / file).is_file():
        raise ValueError(f"{str(folder)!r} is not a saved {what}: it has no {file}")
    meta = json.loads((folder / file).read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"unknown {what} format {meta.get('format')!r} in {str(folder)!r}; "
                         f"this version reads {FORMAT!r}")
    return meta


def load_task_part(model: MultiTaskHybridModel, directory: str | os.PathLike[str]) -> MultiTaskHybridModel:
    """Load one task's adapter and head into ``model``; a task it lacks or another backbone: one ValueError
    line."""
    folder = Path(directory)
    meta = _read_json(folder, TASK_CONFIG, "task part")
    name = meta["task"]
    if name not in model.task_names:
        raise ValueError(f"the part in {str(folder)!r} is for task {name!r}, which this model does not have; "
                         f"it has: {', '.join(model.task_names)}")
    if meta["backbone_fingerprint"] != model.fingerprint:
        raise ValueError(f"the {name} part was trained on backbone {meta['backbone']} "
                         f"({meta['backbone_fingerprint']}), not on this model's "
                         f"{_backbone_name(model.backbone)} "
                         f"({model.fingerprint}); load it onto the backbone it was trained on")
    if (meta["task_adapter"], meta["shared"]) != (model.design.task_adapter, model.design.shared):
        raise ValueError(f"the {name} part has task adapter {meta['task_adapter']!r} and shared delta "
                         f"{meta['shared']!r}; this model has {model.design.task_adapter!r} and "
                         f"{model.design.shared!r}")
    _know_shared_id(model)
    if meta["shared_id"] != model.shared_id:
        raise ValueError(f"the {name} part was trained with shared delta {meta['shared_id']}, "
                         f"but this model has {model.shared_id}; load the shared delta it was trained with")
    prefix = f".adapters.{name}."
    targets = {n.replace(prefix, ".adapter."): p for n, p in model.task_parameters(name).items()}
    targets.update({f"head.{name}.{n}": t for n, t in model.head[name].state_dict(keep_vars=True).items()})
    saved = load_file(str(folder / TASK_WEIGHTS))
    if set(saved) != set(targets) or any(saved[n].shape != targets[n].shape for n in saved):
        wrong = sorted(set(saved) ^ set(targets)) or [n for n in saved if saved[n].shape != targets[n].shape]
        raise ValueError(f"the {name} part does not fit this model: {len(wrong)} tensor(s) differ, "
                         f"e.g. {wrong[0]}")
    with torch.no_grad():
        for n, tensor in saved.items():
            targets[n].copy_(tensor)
    return model


def load_parts(directory: str | os.PathLike[str], tasks: Sequence[str] | None = None,
               backbone: nn.Module | None = None, device: torch.device | str | None = None,
               model_name: str | None = None) -> tuple[Any, MultiTaskHybridModel]:
    """``(tokenizer, model)``: one backbone with the shared delta of ``directory/shared`` and the parts of
    ``tasks``.

    ``tasks`` defaults to every ``directory/tasks/<name>`` present, so a folder shipped with one task loads
    that one. The backbone is ``model_name`` (default: the profile's), or pass ``backbone`` to reuse one
    already loaded (then the tokenizer returned is None).
    """
    from .backbone import load_backbone

    folder = Path(directory)
    manifest = _read_json(folder / "shared", MANIFEST, "multi-task hybrid")
    present = sorted(p.name for p in (folder / "tasks").iterdir() if (p / TASK_CONFIG).is_file()) \
        if (folder / "tasks").is_dir() else []
    names = list(tasks) if tasks is not None else [n for n in manifest["tasks"] if n in present]
    missing = [n for n in names if n not in present]
    if not names or missing:
        raise ValueError(f"no saved part for task(s) {', '.join(missing) or '(none given)'} "
                         f"in {str(folder)!r}; "
                         f"it has: {', '.join(present) or 'none'}")
    tokenizer = None
    if backbone is None:
        tokenizer, backbone = load_backbone(model_name, verbose=False)
    fingerprint = backbone_fingerprint(backbone)
    if fingerprint != manifest["backbone_fingerprint"]:
        raise ValueError(f"the parts in {str(folder)!r} were trained on backbone {manifest['backbone']} "
                         f"({manifest['backbone_fingerprint']}), not on {_backbone_name(backbone)} "
                         f"({fingerprint})")
    design = HybridDesign(manifest["shared"], manifest["task_adapter"])
    model = MultiTaskHybridModel(backbone, MultiTask(names).make_head(backbone.config.hidden_size), design)
    if design.shared:
        delta.load(model.backbone, folder / "shared")
        model.shared_id = shared_hash(model)
    else:
        backbone.requires_grad_(False)
    for name in names:
        model.add_task_adapter(name)
        load_task_part(model, folder / "tasks" / name)
    model.eval()
    return tokenizer, model.to(device or next(backbone.parameters()).device)


def _stored_numel(folder: Path) -> int:
    return sum(t.numel() for f in folder.glob("*.safetensors") for t in load_file(str(f)).values())


def stored_parameters(directory: str | os.PathLike[str]) -> dict[str, int]:
    """Numbers stored in a saved-parts folder: ``shared``, each task's part, and the ``total``."""
    folder = Path(directory)
    counts = {"shared": _stored_numel(folder / "shared")}
    for part in sorted((folder / "tasks").iterdir()):
        counts[part.name] = _stored_numel(part)
    counts["total"] = sum(counts.values())
    return counts


# --- serving ------------------------------------------------------------------------------------------------


def run_request(model: MultiTaskHybridModel, tokenizer: Any, task: str,
                request: Mapping[str, Any] | str) -> Any:
    """Answer one request with ``task``'s adapter and head: SST-2 ``text``, CoNLL ``text``, SQuAD
    ``question``+``context``."""
    from .inference import answer, classify, tag_entities

    view = model.for_task(task)
    if isinstance(request, str):
        request = {"text": request}
    if view.task_name == "sst2":
        return classify(view, tokenizer, request["text"])[0]
    if view.task_name == "conll2003":
        return tag_entities(view, tokenizer, request["text"])
    if "question" not in request or "context" not in request:
        raise ValueError("a squad request needs 'question' and 'context'")
    return answer(view, tokenizer, request["question"], request["context"])


# --- the command line ---------------------------------------------------------------------------------------


def build_from_args(task: MultiTask, backbone: nn.Module, args: argparse.Namespace) -> MultiTaskHybridModel:
    """The ``multitask --task-adapter`` model: ``--method`` is the shared delta (``head``: none shared)."""
    shared = None if args.method == "head" else args.method
    return build_hybrid(backbone, task, HybridDesign(shared, args.task_adapter))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hft_lessons.multitask_hybrid PARTS --task T --text ...``: load saved parts, answer one
    request."""
    from .runtime import quiet_libraries

    parser = argparse.ArgumentParser(prog="python -m hft_lessons.multitask_hybrid",
                                     description="answer a request with saved multi-task hybrid parts")
    parser.add_argument("parts", help="a folder with shared/ and tasks/<task>/ (a multitask run's model/)")
    parser.add_argument("--task", required=True, help="the task to run: one of the saved parts")
    parser.add_argument("--text", help="sst2 or conll2003: the sentence")
    parser.add_argument("--question", help="squad: the question")
    parser.add_argument("--context", help="squad: the passage")
    parser.add_argument("--model", default=None, help="the backbone (default: the profile's)")
    args = parser.parse_args(argv)
    quiet_libraries()
    request = {k: v for k, v in vars(args).items() if k in ("text", "question", "context") and v is not None}
    try:
        tokenizer, model = load_parts(args.parts, tasks=[args.task], model_name=args.model)
        result = run_request(model, tokenizer, args.task, request)
    except (ValueError, KeyError) as err:
        message = f"missing {err} for task {args.task!r}" if isinstance(err, KeyError) else str(err)
        print(f"error: {message}", file=sys.stderr)
        return 2
    print(json.dumps({"task": args.task, "request": request, "answer": result}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
