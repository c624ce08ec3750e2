"""The docs site (mkdocs.yml, docs/): it builds with `mkdocs build --strict` (broken internal
links and anchors fail), the generated pages match the program (scripts/gen_docs.py --check),
every kiln flag the docs mention exists in the program's --help, and every metric name they
mention is exported by a running `kiln serve`."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from metrics_util import METRIC_NAME, exported_metrics, is_exported

DOCS = REPO / "docs"


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
                          capture_output=True, text=True, timeout=300, env=env)


def test_site_builds_strict(tmp_path):
    pytest.importorskip("mkdocs")
    r = mkdocs_build(REPO / "mkdocs.yml", tmp_path / "site")
    assert r.returncode == 0, r.stdout + r.stderr
    for page in ("index.html", "quickstart/index.html", "cli/index.html", "cpp_api/index.html",
                 "python_api/index.html", "CONFORMANCE/index.html", "PRECISION/index.html", "SERVER/index.html",
                 "from_onnxruntime/index.html", "from_tensorrt/index.html", "from_triton/index.html", "deploy/index.html"):
        assert (tmp_path / "site" / page).is_file(), page


def test_strict_build_fails_on_a_broken_link(tmp_path):
    """The same configuration over two pages, one linking to a missing anchor, fails."""
    pytest.importorskip("mkdocs")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\n[server](SERVER.md#no-such-section)\n")
    (docs / "SERVER.md").write_text("# Server\n\n## Metrics\n")
    config = tmp_path / "mkdocs.yml"
    text = (REPO / "mkdocs.yml").read_text().replace("docs_dir: docs", f"docs_dir: {docs}")
    config.write_text(text[: text.index("nav:")])
    r = mkdocs_build(config, tmp_path / "site")
    assert r.returncode != 0 and "no-such-section" in r.stdout + r.stderr


def test_generated_pages_are_current(kiln_exe):
    """docs/cli.md, cpp_api.md and python_api.md equal what scripts/gen_docs.py makes now."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import gen_docs
    finally:
        sys.path.pop(0)
    for path, text in gen_docs.pages(kiln_exe).items():
        assert path.read_text() == text, f"{path.name} is stale: run python scripts/gen_docs.py"


# --- flags -------------------------------------------------------------------

def help_flags(kiln_exe: str, *sub: str) -> set[str]:
    out = subprocess.run([kiln_exe, *sub, "--help"], capture_output=True, text=True, timeout=60).stdout
    flags = set()
    for line in out.splitlines():
        if re.match(r"\s+-", line):
            first = line.split()[0]
            flags.update(f for f in first.split(",") if f.startswith("-"))
    return flags


def subcommand_names(kiln_exe: str) -> list[str]:
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import gen_docs
    finally:
        sys.path.pop(0)
    return gen_docs.subcommands(gen_docs.help_text(kiln_exe))


def code_texts(markdown: str) -> list[str]:
    """Inline code spans and fenced code blocks; a block line that is indented or follows a
    line ending in a backslash continues the previous command."""
    texts = []
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", markdown, re.S | re.M)
    for block in blocks:
        command = ""
        for line in block.splitlines():
            if command and (line.startswith((" ", "\t")) or command.endswith("\\")):
                command = command.rstrip("\\") + " " + line.strip()
            else:
                if command:
                    texts.append(command)
                command = line
        if command:
            texts.append(command)
    outside = re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)
    texts += re.findall(r"`([^`\n]+)`", outside)
    return texts


def kiln_invocations(text: str, subcommands: list[str]):
    """(subcommand or None, [flags]) for each `kiln ...` command in a piece of code."""
    tokens = text.split()
    for i, tok in enumerate(tokens):
        if tok not in ("kiln", "$ kiln") and not tok.endswith("/kiln"):
            continue
        sub, flags = None, []
        for t in tokens[i + 1:]:
            if t in ("|", "||", "&&", ";", "#") or t.startswith("#"):
                break
            t = t.strip("[](),")
            if re.fullmatch(r"--?[A-Za-z][\w-]*(=.*)?", t):
                flags.append(t.split("=", 1)[0])
            elif sub is None and not flags and t in subcommands:
                sub = t
        yield sub, flags


OTHER_PROGRAM_FLAGS = {
    "--keep-serving": "examples/serve_examples.py",
    "--plan-only": "tools/gpu_bench/main.cc",
    "--no-optimize": "tools/gpu_bench/main.cc",
    "--half": "bench/precision_bench.py",
    "--models": "bench/precision_bench.py",
    "--levels": "examples/train_digits.py",
    "--calib-count": "examples/python/calibrate_images.py",
}


def test_docs_flags_exist(kiln_exe):
    subs = subcommand_names(kiln_exe)
    global_flags = help_flags(kiln_exe)
    per_sub = {s: help_flags(kiln_exe, s) | global_flags for s in subs}
    unknown, checked = [], 0
    for page in sorted(DOCS.glob("*.md")) + [REPO / "README.md"]:
        for text in code_texts(page.read_text()):
            for sub, flags in kiln_invocations(text, subs):
                known = per_sub[sub] if sub else global_flags
                for flag in flags:
                    checked += 1
                    if flag not in known:
                        unknown.append(f"{page.name}: kiln {sub or ''} {flag}  (in: {text.strip()[:100]})")
    # A flag quoted alone (`--exit-timeout-secs`) must be one of some kiln command; the
    # "coming from" pages quote other tools' flags alone by design and are left out.
    # Flags of the project's other programs that the docs quote, each checked in its source.
    every_flag = set().union(*per_sub.values())
    for flag, source in OTHER_PROGRAM_FLAGS.items():
        assert f'"{flag}"' in (REPO / source).read_text(), f"{source} has no {flag}"
        every_flag.add(flag)
    for page in sorted(DOCS.glob("*.md")):
        if page.name.startswith("from_"):
            continue
        outside = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
        for span in re.findall(r"`(--?[A-Za-z][\w-]*)(?:[ =][^`]*)?`", outside):
            if span.startswith("-D"):  # CMake cache definitions
                continue
            checked += 1
            if span not in every_flag:
                unknown.append(f"{page.name}: `{span}` is no flag of any kiln command")
    assert checked > 50, f"only {checked} flags found: the scan is broken"
    assert not unknown, "flags the program does not have:\n" + "\n".join(unknown)


def test_flag_scan_catches_a_wrong_flag(kiln_exe):
    subs = subcommand_names(kiln_exe)
    found = list(kiln_invocations("kiln build m.onnx -o m.plan --no-such-flag", subs))
    assert found == [("build", ["-o", "--no-such-flag"])]
    assert "--no-such-flag" not in help_flags(kiln_exe, "build")


# --- metrics -----------------------------------------------------------------

def test_docs_metric_names_are_exported():
    exported = exported_metrics()
    mentioned = {}
    for page in sorted(DOCS.glob("*.md")):
        for name in METRIC_NAME.findall(page.read_text()):
            mentioned.setdefault(name, page.name)
    assert len(mentioned) >= 10, mentioned
    missing = [f"{name} ({page})" for name, page in sorted(mentioned.items()) if not is_exported(name, exported)]
    assert not missing, "metric names in the docs that kiln serve does not export: " + ", ".join(missing)


# --- the quick start's code runs as written ------------------------------------

def python_blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(), re.S | re.M)


def test_quickstart_python_runs(tmp_path):
    """The quick start's Python blocks: the session (run from the checkout, the plan written to a
    temporary folder) and the tritonclient request against a kiln serve of examples/model_repository."""
    pytest.importorskip("tritonclient.http")
    from server_util import KilnServer

    session_block, client_block = python_blocks(DOCS / "quickstart.md")
    session_block = session_block.replace('"tiny_cnn.plan"', repr(str(tmp_path / "tiny_cnn.plan")))
    session_block = session_block.replace('"examples/', '"' + str(REPO / "examples") + "/")
    scope: dict = {}
    exec(compile(session_block, "quickstart.md", "exec"), scope)
    assert scope["logits"].shape == (2, 10) and scope["again"].shape == (2, 10)
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "examples" / "model_repository", repo)
    server = KilnServer(repo)
    try:
        scope = {}
        exec(compile(client_block.replace("localhost:8000", server.http_url), "quickstart.md", "exec"), scope)
        assert scope["result"].as_numpy("logits").shape == (1, 10)
    finally:
        server.stop()
