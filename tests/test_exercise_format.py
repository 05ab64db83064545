"""Every chapter's exercises follow issue 22's format: numbered exercises, a scaffold, a checker from
``hft_lessons.exercises`` and a hidden solution that runs it; prose solutions in closed ``<details>``
blocks."""

import ast
import importlib
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
ALL_CHAPTERS = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))  # notebooks/drafts/ is not a chapter

# The chapters covered: every published one.
CHAPTERS = ALL_CHAPTERS

# (chapter, check) pairs known to fail, each run as a strict xfail: as soon as the chapter is fixed the test
# XPASSes, fails, and the entry must be removed.
KNOWN_GAPS: set[tuple[str, str]] = set()

SOLUTION_TITLE = "#@title Solution"
SOLUTION_TAGS = {"hide-input", "nbval-check-output"}
MIN_EXERCISES = 3


def _markdown(nb: nbformat.NotebookNode) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "markdown"]


def _without_hidden(text: str) -> str:
    """Markdown without fenced blocks and <details> blocks: what is left is the exercises' own text."""
    text = re.sub(r"(?ms)^(`{3,}|:{3,}).*?^\1[ \t]*$", "", text)
    return re.sub(r"(?s)<details>.*?</details>", "", text)


def exercise_numbers(nb: nbformat.NotebookNode) -> list[int]:
    """The numbers of the top-level numbered items under "## Exercises" (up to the next level-2 heading)."""
    text = "\n".join(_markdown(nb))
    match = re.search(r"(?m)^## Exercises[ \t]*$", text)
    if match is None:
        return []
    section = re.split(r"(?m)^## ", text[match.end():])[0]
    return [int(n) for n in re.findall(r"(?m)^(\d+)\.[ \t]", _without_hidden(section))]


def exercise_problems(nb: nbformat.NotebookNode) -> list[str]:
    """What is wrong with the "## Exercises" section: missing, fewer than three, or numbered out of order."""
    numbers = exercise_numbers(nb)
    if not any(re.search(r"(?m)^## Exercises[ \t]*$", s) for s in _markdown(nb)):
        return ['no "## Exercises" section']
    problems = []
    if len(numbers) < MIN_EXERCISES:
        problems.append(f"{len(numbers)} numbered exercises, at least {MIN_EXERCISES} needed")
    if numbers != list(range(1, len(numbers) + 1)):
        problems.append(f"exercises numbered {numbers}, expected 1, 2, 3, ...")
    return problems


def _code(cell: nbformat.NotebookNode) -> str:
    """A code cell's source with IPython's magics and shell lines commented out, so that ast parses it."""
    return "\n".join("# " + line if line.lstrip().startswith(("%", "!")) else line
                     for line in cell.source.splitlines())


def checker_imports(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """(module, name) for every ``from hft_lessons.exercises[.topic] import name`` in the notebook."""
    found = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            for node in ast.walk(ast.parse(_code(cell))):
                module = getattr(node, "module", None) or ""
                if isinstance(node, ast.ImportFrom) and module.startswith("hft_lessons.exercises"):
                    found += [(node.module, alias.name) for alias in node.names]
    return found


def import_problems(nb: nbformat.NotebookNode) -> list[str]:
    """Checker imports that do not resolve: a missing module or a name the module lacks."""
    problems = []
    for module, name in checker_imports(nb):
        try:
            if not hasattr(importlib.import_module(module), name):
                problems.append(f"{module} has no {name}")
        except ImportError as error:
            problems.append(f"{module} does not import: {error}")
    return problems


def _calls(source: str, names: set[str]) -> set[str]:
    """Which of ``names`` the source calls."""
    return {n.func.id for n in ast.walk(ast.parse(source))
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in names}


def _defs(source: str) -> set[str]:
    return {n.name for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef)}


def solution_problems(nb: nbformat.NotebookNode) -> list[str]:
    """What is wrong with the coding exercises: each hidden solution, its checker cell and its scaffold."""
    cells = nb.cells
    checkers = {name for _, name in checker_imports(nb)}
    solutions = [i for i, c in enumerate(cells)
                 if c.cell_type == "code" and c.source.startswith(SOLUTION_TITLE)]
    if not solutions:
        return [f'no code cell starts with "{SOLUTION_TITLE}"']
    problems = []
    for i in solutions:
        cell, where = cells[i], f"solution cell {i}"
        meta = cell.metadata
        if meta.get("cellView") != "form":
            problems.append(f'{where}: metadata cellView is {meta.get("cellView")!r}, not "form" (Colab)')
        if meta.get("jupyter", {}).get("source_hidden") is not True:
            problems.append(f"{where}: metadata jupyter.source_hidden is not true (JupyterLab)")
        missing = SOLUTION_TAGS - set(meta.get("tags", []))
        if missing:
            problems.append(f"{where}: tags lack {sorted(missing)} (hide-input hides it in the book)")
        called = _calls(_code(cell), checkers)
        if not called:
            problems.append(f"{where}: calls no checker imported from hft_lessons.exercises")
            continue
        # the checker cell: the last code cell before the solution that calls the same checker
        before = [j for j in range(i) if cells[j].cell_type == "code" and _calls(_code(cells[j]), called)
                  and not cells[j].source.startswith(SOLUTION_TITLE)]
        if not before:
            problems.append(f"{where}: no checker cell before it calls {sorted(called)}")
            continue
        checker = before[-1]
        scaffold = next((j for j in range(checker - 1, -1, -1) if cells[j].cell_type == "code"), None)
        if scaffold is None or "NotImplementedError" not in cells[scaffold].source:
            problems.append(f"{where}: the code cell before its checker cell {checker} is not a scaffold "
                            "(no NotImplementedError)")
        elif not _defs(_code(cells[scaffold])) <= _defs(_code(cell)):
            missing = sorted(_defs(_code(cells[scaffold])) - _defs(_code(cell)))
            problems.append(f"{where}: does not redefine the scaffold's {missing}")
    return problems


def prose_problems(nb: nbformat.NotebookNode) -> list[str]:
    """Prose solutions shown by default: {admonition} Solution fences, or <details> blocks left open or
    without the blank lines that let the inner markdown render."""
    problems = []
    for i, text in enumerate(c.source if c.cell_type == "markdown" else "" for c in nb.cells):
        for title in re.findall(r"(?m)^(?:`{3,}|:{3,})[ \t]*\{admonition\}[ \t]*(Solution.*)$", text):
            problems.append(f"markdown cell {i}: {{admonition}} {title.strip()!r}; use a <details> block")
        opened, closed = len(re.findall(r"<details\b", text)), text.count("</details>")
        if opened != closed:
            problems.append(f"markdown cell {i}: {opened} <details> but {closed} </details>")
        if re.search(r"<details\b[^>]*\bopen\b", text):
            problems.append(f"markdown cell {i}: a <details open> block is shown by default")
        for block in re.findall(r"(?s)<details\b.*?</details>", text):
            blank_after = re.search(r"</summary>[ \t]*\n[ \t]*\n", block)
            if not blank_after or not re.search(r"\n[ \t]*\n</details>$", block):
                problems.append(f"markdown cell {i}: <details> needs a blank line after </summary> and "
                                "before </details>, or its markdown is not rendered")
    return problems


CHECKS = {"exercises": exercise_problems, "solutions": solution_problems, "imports": import_problems,
          "prose_solutions": prose_problems}


def _cases() -> list:
    return [pytest.param(chapter, check, id=f"{chapter}-{check}",
                         marks=[pytest.mark.xfail(strict=True, reason="a known gap: see KNOWN_GAPS")]
                         if (chapter, check) in KNOWN_GAPS else [])
            for chapter in CHAPTERS for check in CHECKS]


@pytest.mark.parametrize(("chapter", "check"), _cases())
def test_a_chapter_follows_the_exercise_format(chapter, check):
    nb = nbformat.read(NOTEBOOKS / f"{chapter}.ipynb", as_version=4)
    assert CHECKS[check](nb) == []


def test_the_lists_name_real_chapters():
    assert set(CHAPTERS) <= set(ALL_CHAPTERS), sorted(set(CHAPTERS) - set(ALL_CHAPTERS))
    assert {c for c, _ in KNOWN_GAPS} <= set(CHAPTERS) and {k for _, k in KNOWN_GAPS} <= set(CHECKS)


# The checks themselves, on small notebooks built here.
def _nb(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    return nb


MD, CODE = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
SCAFFOLD = ('def f(x):\n    """Double x."""\n    # 1. multiply\n'
            '    raise NotImplementedError("your code here")')
CHECKER = "from hft_lessons.exercises import check_sgd_momentum\n\npassed = check_sgd_momentum(f)"
SOLUTION = f"{SOLUTION_TITLE} (run to check; double-click to show)\ndef f(x):\n    return 2 * x\n\n\n" \
           "passed = check_sgd_momentum(f)"
HIDDEN = {"cellView": "form", "jupyter": {"source_hidden": True},
          "tags": ["hide-input", "nbval-check-output"]}
DETAILS = "<details>\n<summary>Solution</summary>\n\nIt is $x^2$.\n\n</details>"


def _good() -> nbformat.NotebookNode:
    return _nb(MD("## Summary\n\n1. not an exercise\n\n## Exercises\n\n1. First."),
               MD(f"2. Second.\n\n{DETAILS}"),
               MD("3. Write `f`.\n\n```python\n4. not an exercise either\n```"), CODE(SCAFFOLD),
               CODE(CHECKER, metadata={"tags": ["nbval-ignore-output"]}), CODE(SOLUTION, metadata=HIDDEN),
               MD("## Next"))


def test_a_notebook_in_the_format_passes_every_check():
    nb = _good()
    assert exercise_numbers(nb) == [1, 2, 3]
    assert {name: check(nb) for name, check in CHECKS.items()} == dict.fromkeys(CHECKS, [])


def test_the_checks_find_what_breaks_the_format():
    nb = _good()
    nb.cells[1].source = "3. Second."
    assert exercise_problems(nb) == ["exercises numbered [1, 3, 3], expected 1, 2, 3, ..."]
    nb.cells[2].source = "Write `f`."
    assert exercise_problems(nb)[0] == "2 numbered exercises, at least 3 needed"
    assert exercise_problems(_nb(MD("## Summary"))) == ['no "## Exercises" section']

    nb = _good()
    nb.cells[5].metadata = {"tags": ["nbval-check-output"]}
    assert solution_problems(nb) == [
        'solution cell 5: metadata cellView is None, not "form" (Colab)',
        "solution cell 5: metadata jupyter.source_hidden is not true (JupyterLab)",
        "solution cell 5: tags lack ['hide-input'] (hide-input hides it in the book)"]
    nb = _good()
    nb.cells[3].source = "def f(x):\n    ..."
    assert solution_problems(nb) == ["solution cell 5: the code cell before its checker cell 4 is not a "
                                     "scaffold (no NotImplementedError)"]
    nb = _good()
    nb.cells[5].source = nb.cells[5].source.replace("passed = check_sgd_momentum(f)", "print(f(2))")
    assert solution_problems(nb) == ["solution cell 5: calls no checker imported from hft_lessons.exercises"]
    nb.cells[5].source = SOLUTION.replace("def f(", "def g(")
    assert solution_problems(nb) == ["solution cell 5: does not redefine the scaffold's ['f']"]
    assert solution_problems(_nb(CODE(SCAFFOLD))) == ['no code cell starts with "#@title Solution"']

    nb = _good()
    nb.cells[4].source = "from hft_lessons.exercises.optim import check_nothing\n" \
                         "from hft_lessons.exercises.nowhere import check_x"
    assert import_problems(nb)[0] == "hft_lessons.exercises.optim has no check_nothing"
    assert import_problems(nb)[1].startswith("hft_lessons.exercises.nowhere does not import: ")

    nb = _good()
    nb.cells[1].source = ("```{admonition} Solution to 2\n:class: dropdown\nIt is 4.\n```\n\n"
                          "<details>\n<summary>Hint</summary>\nno blank line\n</details>\n\n<details open>"
                          "\n<summary>Solution</summary>\n\nshown\n\n</details>\n<details>")
    assert prose_problems(nb) == [
        "markdown cell 1: {admonition} 'Solution to 2'; use a <details> block",
        "markdown cell 1: 3 <details> but 2 </details>",
        "markdown cell 1: a <details open> block is shown by default",
        "markdown cell 1: <details> needs a blank line after </summary> and before </details>, or its "
        "markdown is not rendered"]
