"""Open the built book in headless Chromium with the network off and check what a reader sees.

    jupyter-book build . -W && python tools/check_book_chromium.py [--html _build/html] [--shots DIR]

Checks, one line each (PASS/FAIL), then details under a failing one:
- maths: every formula Sphinx emitted (``.math``) is typeset by MathJax (holds an ``mjx-container``), and no
  visible prose text still shows TeX delimiters (``$$``, ``\\(``, ``\\[``, ``\\begin{``);
- solutions: every ``<details>`` in a page's article is closed, every dropdown admonition's body is hidden,
  and every ``hide-input`` cell's code is inside a closed toggle;
- navigation: the left sidebar lists the pages in ``_toc.yml``'s order, and numbered files (``NN_name``) come
  in ascending number order within each folder;
- markers: no code cell shows ``NBVAL_``;
- width: no code cell is wider than the column (the ``<pre>``'s ``scrollWidth > clientWidth`` with every
  toggle opened); wide outputs and wide code blocks in prose are reported but do not fail;
- network: no page asked for anything outside the book's folder (the browser runs offline, so such a
  request means a page depends on the internet).
Screenshots of a few pages go to ``--shots`` (default ``_build/chromium_check``). Exits 1 when a check fails,
2 when the book is not built, and 0 with one "skipped" line when no Chromium is installed.

Chromium is driven over its DevTools pipe (``--remote-debugging-pipe``): only the standard library is needed.
"""

from __future__ import annotations

import argparse
import base64
import glob
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome", "chrome-headless-shell",
            "chromium-headless-shell", "headless_shell")
SHOT_PAGES = ("book/intro", "book/maths", "notebooks/04_finetuning", "notebooks/06_delta_tuning")
NUMBERED = re.compile(r"^(\d+)_")
LOCAL = ("file:", "data:", "blob:", "about:")
NEEDED = ("Script", "Stylesheet", "Font", "XHR", "Fetch")  # what a page needs to work; an Image only shows


def find_chromium() -> str | None:
    """The Chromium to use: $CHROMIUM, a browser on PATH, or one that playwright downloaded; None if none."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    for name in BROWSERS:
        if path := shutil.which(name):
            return path
    cache = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH", Path.home() / ".cache" / "ms-playwright"))
    for pattern in ("chromium_headless_shell-*/chrome-linux/headless_shell",
                    "chromium-*/chrome-linux/chrome"):
        found = sorted(glob.glob(str(cache / pattern)))
        if found:
            return found[-1]
    return None


def toc_order(toc: dict) -> list[str]:
    """The documents of a jupyter-book ``_toc.yml`` (already parsed) in reading order, the root first."""
    order = [toc["root"]] if toc.get("root") else []

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                order.append(entry["file"])
            for key in ("chapters", "sections"):
                walk(entry.get(key, []))

    walk(toc.get("parts", []))
    walk(toc.get("chapters", []))
    walk(toc.get("sections", []))
    return [re.sub(r"\.(md|ipynb|rst)$", "", doc) for doc in order]


def doc_of(href: str, html_root: str) -> str | None:
    """The document (``book/intro``) a sidebar link's absolute URL points to; None if outside the book."""
    href = href.split("#")[0].split("?")[0]
    root = html_root.rstrip("/") + "/"
    if not href.startswith(root) or not href.endswith(".html"):
        return None
    return href[len(root):-len(".html")]


def order_problems(sidebar: list[str], toc_docs: list[str]) -> list[str]:
    """Where the sidebar's pages differ from ``_toc.yml``'s order (the root may be absent); [] if none."""
    expected = [d for d in toc_docs if d in sidebar or d != toc_docs[0]]
    if sidebar == expected:
        return []
    problems = [f"missing from the sidebar: {d}" for d in expected if d not in sidebar]
    problems += [f"in the sidebar but not in _toc.yml: {d}" for d in sidebar if d not in expected]
    common = [d for d in sidebar if d in expected]
    want = [d for d in expected if d in sidebar]
    for i, (got, exp) in enumerate(zip(common, want, strict=False)):
        if got != exp:
            problems.append(f"position {i + 1}: the sidebar has {got}, _toc.yml has {exp}")
            break
    return problems


def numbering_problems(docs: list[str]) -> list[str]:
    """Numbered files (``NN_name``) that come after a higher number of the same folder; [] if none."""
    last: dict[str, tuple[int, str]] = {}
    problems = []
    for doc in docs:
        folder, _, name = doc.rpartition("/")
        m = NUMBERED.match(name)
        if not m:
            continue
        n = int(m.group(1))
        if folder in last and n < last[folder][0]:
            problems.append(f"{doc} comes after {last[folder][1]}")
        if folder not in last or n > last[folder][0]:
            last[folder] = (n, doc)
    return problems


class Chromium:
    """A headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4 of the browser)."""

    def __init__(self, exe: str, width: int = 1440, height: int = 900) -> None:
        self.profile = tempfile.mkdtemp(prefix="hft-chromium-")
        to_browser_r, self._out = os.pipe()
        self._in, from_browser_w = os.pipe()

        def wire_pipes() -> None:  # runs in the child before exec: the protocol wants fds 3 and 4
            a, b = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        args = [
            exe, "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--allow-file-access-from-files", "--hide-scrollbars",
            "--proxy-server=http://127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",  # no network
            f"--window-size={width},{height}", f"--user-data-dir={self.profile}", "about:blank",
        ]
        self.proc = subprocess.Popen(
            args, preexec_fn=wire_pipes, close_fds=False, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next = 0
        self._replies: dict[int, dict] = {}
        self.events: queue.Queue[dict] = queue.Queue()
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.width, self.height = width, height

    def _read(self) -> None:
        buf = b""
        while chunk := os.read(self._in, 1 << 16):
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cond:
                        self._replies[msg["id"]] = msg
                        self._cond.notify_all()
                else:
                    self.events.put(msg)
        with self._cond:
            self._replies[-1] = {"error": {"message": "the browser closed its pipe"}}
            self._cond.notify_all()

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 60) -> dict:
        """Send one protocol command and wait for its result (raises RuntimeError on an error reply)."""
        self._next += 1
        msg = {"id": self._next, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._out, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._next not in self._replies and -1 not in self._replies:
                if not self._cond.wait(deadline - time.monotonic()):
                    raise RuntimeError(f"{method}: no answer from Chromium in {timeout:.0f} s")
            reply = self._replies.pop(self._next, None) or self._replies[-1]
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def close(self) -> None:
        """Close the browser and remove its profile folder."""
        try:
            self.send("Browser.close", timeout=5)
        except (RuntimeError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    """One tab, offline, that records every request it makes."""

    def __init__(self, browser: Chromium) -> None:
        self.b = browser
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.s = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Network"):
            self.cmd(f"{domain}.enable")
        self.cmd("Network.emulateNetworkConditions",
                 {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        self.cmd("Emulation.setDeviceMetricsOverride",
                 {"width": browser.width, "height": browser.height, "deviceScaleFactor": 1, "mobile": False})
        self.requests: list[tuple[str, str]] = []  # (resource type, url)

    def cmd(self, method: str, params: dict | None = None, timeout: float = 60) -> dict:
        return self.b.send(method, params, session=self.s, timeout=timeout)

    def _drain(self, until: str | None = None, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if until is None:
                left = 0
            try:
                ev = self.b.events.get(timeout=max(left, 0.001))
            except queue.Empty:
                return
            if ev.get("sessionId") != self.s:
                continue
            if ev["method"] == "Network.requestWillBeSent":
                self.requests.append((ev["params"].get("type", "Other"), ev["params"]["request"]["url"]))
            if until and ev["method"] == until:
                return

    def goto(self, url: str) -> None:
        """Load a page and wait for its load event."""
        while not self.b.events.empty():
            self.b.events.get()
        self.requests = []
        self.cmd("Page.navigate", {"url": url})
        self._drain(until="Page.loadEventFired")

    def js(self, expression: str, timeout: float = 60):
        """Evaluate (and await) a JavaScript expression; its JSON value."""
        r = self.cmd("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                          "returnByValue": True, "timeout": timeout * 1000}, timeout=timeout)
        if "exceptionDetails" in r:
            raise RuntimeError(f"page script failed: {r['exceptionDetails'].get('text')}")
        self._drain()
        return r["result"].get("value")

    def screenshot(self, path: Path) -> None:
        """A PNG of the viewport."""
        data = self.cmd("Page.captureScreenshot", {"format": "png"})["data"]
        path.write_bytes(base64.b64decode(data))


# Waits for MathJax (at most 15 s), then measures what the reader sees. Returns one JSON object per page.
INSPECT = r"""
(async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const ready = () => window.MathJax && MathJax.startup && MathJax.startup.promise;
  const hasMath = !!document.querySelector(".math");
  for (let i = 0; hasMath && i < 150 && !ready(); i++) await sleep(100);
  if (ready()) await MathJax.startup.promise;
  await sleep(200);
  const main = document.querySelector("main") || document.body;
  const visible = (el) => !!el && el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true});
  const snip = (t) => t.replace(/\s+/g, " ").trim().slice(0, 70);
  const out = {title: document.title};
  const maths = [...main.querySelectorAll(".math")];
  out.math = maths.length;
  out.mathTypeset = maths.filter((m) => m.querySelector("mjx-container")).length;
  out.mathjax = !!(window.MathJax && MathJax.version);
  const raw = [];
  const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
  const skip = "pre, code, script, style, mjx-container, .highlight, textarea, .math";
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || el.closest(skip) || !visible(el)) continue;
    if (/\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{|\\frac\{/.test(n.textContent)) raw.push(snip(n.textContent));
  }
  out.rawTex = raw;
  const details = [...main.querySelectorAll("details")];
  out.details = details.length;
  out.openDetails = details.filter((d) => d.open)
    .map((d) => snip(d.querySelector("summary")?.innerText || ""));
  const drops = [...main.querySelectorAll(".admonition.dropdown, .dropdown.admonition")];
  out.dropdowns = drops.length;
  out.openDropdowns = drops.filter((d) => [...d.children].some(
      (c) => !c.matches(".admonition-title, button, .toggle-button") && visible(c)))
    .map((d) => snip(d.querySelector(".admonition-title")?.innerText || ""));
  const hidden = [...main.querySelectorAll(".tag_hide-input")];
  out.hideInput = hidden.length;
  out.shownHideInput = hidden.filter((c) => {
      const input = c.querySelector(".cell_input");
      return !input || visible(input) || !input.closest("details");
    }).map((c) => snip(c.querySelector(".cell_input")?.innerText || "(no input)"));
  const cells = [...main.querySelectorAll(".cell_input pre")];
  out.cells = cells.length;
  out.nbval = cells.filter((p) => p.textContent.includes("NBVAL_")).length;
  const sidebar = [...document.querySelectorAll(
    "nav.bd-docs-nav a.reference.internal, .bd-sidebar-primary nav a.reference.internal")];
  out.sidebar = [...new Set(sidebar.map((a) => a.href.split("#")[0]))];
  return out;
})()
"""

# Opens every toggle, then measures widths (hidden code has no width until shown).
WIDTHS = r"""
(async () => {
  const main = document.querySelector("main") || document.body;
  main.querySelectorAll("details").forEach((d) => { d.open = true; });
  main.querySelectorAll(".toggle-hidden").forEach((e) => e.classList.remove("toggle-hidden"));
  main.querySelectorAll(".dropdown").forEach((e) => e.classList.add("toggle-shown"));
  await new Promise((r) => setTimeout(r, 200));
  const wide = (p) => p.scrollWidth > p.clientWidth + 1;
  const longest = (p) => Math.max(0, ...p.textContent.split("\n").map((l) => l.length));
  const first = (p) => p.textContent.split("\n").find((l) => l.trim()) || "";
  const measure = (sel) => {
    const pres = [...main.querySelectorAll(sel)].filter((p) => p.clientWidth > 0);
    const w = pres.filter(wide);
    w.sort((a, b) => b.scrollWidth - a.scrollWidth);
    return {n: pres.length, wide: w.length, column: Math.max(0, ...pres.map((p) => p.clientWidth)),
            widestFitting: Math.max(0, ...pres.filter((p) => !wide(p)).map(longest)),
            narrowestWide: Math.min(1000, ...w.map(longest)),
            examples: w.slice(0, 3).map(
              (p) => `${longest(p)} chars, ${p.scrollWidth}px: ${first(p).trim().slice(0, 50)}`)};
  };
  const probe = main.querySelector(".cell_input pre");
  let charPx = 0;
  if (probe) {
    const span = document.createElement("span");
    span.textContent = "0".repeat(100);
    probe.appendChild(span);
    charPx = span.getBoundingClientRect().width / 100;
    span.remove();
  }
  return {charPx, code: measure(".cell_input pre"), outputs: measure(".cell_output pre"),
          prose: measure("div.highlight pre:not(.cell_input pre):not(.cell_output pre)")};
})()
"""


def check(html: Path, toc_path: Path, shots: Path, exe: str, width: int = 1440) -> bool:
    """Run every check over the built book; print one line per check; True when all pass."""
    import yaml

    toc_docs = toc_order(yaml.safe_load(toc_path.read_text()))
    pages = [d for d in toc_docs if (html / f"{d}.html").exists()]
    missing = [d for d in toc_docs if d not in pages]
    shots.mkdir(parents=True, exist_ok=True)
    html_root = html.resolve().as_uri()
    browser = Chromium(exe, width=width)
    results: dict[str, dict] = {}
    try:
        page = Page(browser)
        for doc in pages:
            start = time.monotonic()
            page.goto(f"{html_root}/{doc}.html")
            info = page.js(INSPECT)
            if doc in SHOT_PAGES:
                page.screenshot(shots / f"{doc.replace('/', '__')}.png")
                if page.js("!!document.getElementById('exercises')"):
                    page.js("document.getElementById('exercises').scrollIntoView(); true")
                    page.screenshot(shots / f"{doc.replace('/', '__')}__exercises.png")
            info["widths"] = page.js(WIDTHS)
            info["requests"] = [(t, u) for t, u in page.requests if not u.startswith(LOCAL)]
            results[doc] = info
            print(f"  {doc}: {time.monotonic() - start:.1f} s", file=sys.stderr, flush=True)
    finally:
        browser.close()

    ok = True

    def report(passed: bool, line: str, details: list[str]) -> None:
        nonlocal ok
        ok &= passed
        print(f"{'PASS' if passed else 'FAIL'} {line}")
        for d in details[:40] if not passed else []:
            print(f"     {d}")
        if not passed and len(details) > 40:
            print(f"     ... and {len(details) - 40} more")

    report(not missing, f"pages: {len(pages)} of the {len(toc_docs)} in _toc.yml are built",
           [f"not built: {d}" for d in missing])
    n_math = sum(r["math"] for r in results.values())
    typeset = sum(r["mathTypeset"] for r in results.values())
    raw = [f"{d}: {t!r}" for d, r in results.items() for t in r["rawTex"]]
    untyped = [f"{d}: {r['math'] - r['mathTypeset']} of {r['math']} formulas not typeset"
               + ("" if r["mathjax"] else " (MathJax did not load)")
               for d, r in results.items() if r["mathTypeset"] < r["math"]]
    report(typeset == n_math and not raw and n_math > 0,
           f"maths: {typeset} of {n_math} formulas typeset by MathJax offline; "
           f"{len(raw)} raw TeX in visible text",
           untyped + raw)
    opened = [f"{d}: <details> open: {s!r}" for d, r in results.items() for s in r["openDetails"]]
    opened += [f"{d}: dropdown shown: {s!r}" for d, r in results.items() for s in r["openDropdowns"]]
    opened += [f"{d}: hide-input cell shown: {s!r}" for d, r in results.items() for s in r["shownHideInput"]]
    n_details = sum(r["details"] for r in results.values())
    n_drop = sum(r["dropdowns"] for r in results.values())
    n_hide = sum(r["hideInput"] for r in results.values())
    report(not opened, f"solutions: {n_details} <details>, {n_drop} dropdowns, {n_hide} hide-input cells; "
           f"{len(opened)} shown by default", opened)
    sidebars = {d: [doc_of(h, html_root) for h in r["sidebar"]] for d, r in results.items()}
    nav_problems = []
    for d, side in sidebars.items():
        nav_problems += [f"{d}: {p}" for p in order_problems([s for s in side if s], toc_docs)]
    first_sidebar = [s for s in next(iter(sidebars.values()), []) if s]
    report(not nav_problems and bool(first_sidebar),
           f"navigation: the sidebar lists {len(first_sidebar)} pages in _toc.yml's order on "
           f"{len(sidebars) - len({p.split(':')[0] for p in nav_problems})} of {len(sidebars)} pages",
           nav_problems)
    numbering = numbering_problems(first_sidebar or toc_docs)
    report(not numbering, f"numbering: numbered files come in ascending order in the sidebar "
           f"({len(numbering)} out of order)", numbering)
    n_cells = sum(r["cells"] for r in results.values())
    nbval = [f"{d}: {r['nbval']} of {r['cells']} code cells" for d, r in results.items() if r["nbval"]]
    n_nbval = sum(r["nbval"] for r in results.values())
    report(not nbval, f"markers: {n_nbval} of {n_cells} code cells show NBVAL_", nbval)
    wide = [(d, r["widths"]["code"]) for d, r in results.items() if r["widths"]["code"]["wide"]]
    column = max((r["widths"]["code"]["column"] for r in results.values()), default=0)
    char_px = max((r["widths"]["charPx"] for r in results.values()), default=0)
    chars = f", {int(column // char_px)} characters" if char_px else ""
    fits = max((r["widths"]["code"]["widestFitting"] for r in results.values()), default=0)
    n_wide = sum(w["wide"] for _, w in wide)
    report(not wide, f"width: {n_wide} of {n_cells} code cells wider than the column "
           f"({column}px{chars} in a {width}px window; the longest line that fits has {fits} characters)",
           [f"{d}: {w['wide']} of {w['n']} code cells (lines of {w['narrowestWide']}+ characters); widest "
            f"{w['examples'][0]}" for d, w in wide])
    for kind in ("outputs", "prose"):
        n = sum(r["widths"][kind]["n"] for r in results.values())
        w = {d: r["widths"][kind]["wide"] for d, r in results.items() if r["widths"][kind]["wide"]}
        print(f"INFO width of {kind}: {sum(w.values())} of {n} wider than the column"
              + (": " + ", ".join(f"{d} {k}" for d, k in w.items()) if w else ""))
    net = sorted({(t, u) for r in results.values() for t, u in r["requests"]})
    needed = [f"{t}: {u}" for t, u in net if t in NEEDED]
    report(not needed, f"network: {len(needed)} scripts, styles or fonts asked from outside the book's "
           "folder (the browser is offline)", needed)
    shown = sorted({f"{t}: {u}" for t, u in net if t not in NEEDED})
    print(f"INFO network: {len(shown)} other outside addresses (broken offline): "
          f"{', '.join(shown) or 'none'}")
    print(f"INFO screenshots: {shots}")
    return ok


def main(argv: list[str] | None = None) -> int:
    """Parse the options, find Chromium, run the checks; the exit status."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--html", default=str(ROOT / "_build" / "html"), help="the built book's html folder")
    p.add_argument("--toc", default=str(ROOT / "_toc.yml"))
    p.add_argument("--width", type=int, default=1440,
                   help="window width in pixels (default 1440: from there up the column is at its widest)")
    p.add_argument("--shots", default=str(ROOT / "_build" / "chromium_check"), help="folder for screenshots")
    args = p.parse_args(argv)
    exe = find_chromium()
    if exe is None:
        print("skipped: no Chromium found (install chromium, or set $CHROMIUM to a Chromium binary)")
        return 0
    html = Path(args.html)
    if not (html / "index.html").exists():
        print(f"--html {args.html}: no index.html there; build the book first (jupyter-book build .)")
        return 2
    return 0 if check(html, Path(args.toc), Path(args.shots), exe, args.width) else 1


if __name__ == "__main__":
    sys.exit(main())
