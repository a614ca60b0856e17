"""Every example in README.md and docs/ is checked (the conventions: docs/commands.md, "Examples in
these documents"): a ```toml block validates as a whole flash.toml, or, with a leading `# fragment` comment,
parses and fits the schema with no key required; a ```python block compiles; every `flash ...`
command of a ```sh (or `$ flash ...` of a ```console) block parses with the CLI's own click parser;
every inline `flash <command> ...` names a command and options it takes; every relative link and its
#anchor exist. Each test lists every problem it finds, with the document's file:line."""

from __future__ import annotations

import copy
import json
import re
import shlex
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
from click.testing import CliRunner

from flash_pipeline.cli import cli

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FRAGMENT = "# fragment"


@dataclass(frozen=True)
class Block:
    document: Path
    line: int  # of the block's first content line, 1-based
    language: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def blocks(document: Path) -> Iterator[Block]:
    lines = document.read_text().splitlines()
    start, language = -1, ""
    for number, line in enumerate(lines):
        if not line.startswith("```"):
            continue
        if start < 0:
            start, language = number, line[3:].strip()
        else:
            yield Block(document, start + 2, language, "\n".join(lines[start + 1 : number]) + "\n")
            start = -1
    assert start < 0, f"{document}: a code block opened at line {start + 1} is never closed"


def prose(document: Path) -> Iterator[tuple[int, str]]:
    """The lines outside code blocks, numbered from 1."""
    fenced = False
    for number, line in enumerate(document.read_text().splitlines(), 1):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            yield number, line


def all_blocks(*languages: str) -> list[Block]:
    return [block for document in DOCUMENTS for block in blocks(document) if block.language in languages]


# --- toml -------------------------------------------------------------------------------------


def _relaxed(schema: Any) -> Any:
    """The schema with nothing required: what a fragment must fit."""
    if isinstance(schema, dict):
        return {
            key: _relaxed(value) for key, value in schema.items() if not (key == "required" and isinstance(value, list))
        }
    if isinstance(schema, list):
        return [_relaxed(item) for item in schema]
    return schema


SCHEMA = json.loads((ROOT / "schemas" / "flash.schema.json").read_text())
FRAGMENT_SCHEMA = _relaxed(copy.deepcopy(SCHEMA))


def is_fragment(text: str) -> bool:
    """A `# fragment` line among the block's leading comments (a `#:schema` directive stays first)."""
    for line in text.splitlines():
        if not line.startswith("#"):
            return False
        if line.startswith(FRAGMENT):
            return True
    return False


def check_fragment(text: str) -> list[str]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        return [f"not TOML: {error}"]
    validator = jsonschema.Draft202012Validator(FRAGMENT_SCHEMA)
    return [
        f"{'.'.join(str(part) for part in error.absolute_path) or '(top)'}: {error.message}"
        for error in sorted(validator.iter_errors(data), key=str)
    ]


def _handlers(config: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(module:function, kind) of every handler and init hook a config names, kind in plain/ws/batch/init."""
    tables = [config.get("defaults", {}), *config.get("endpoints", {}).values()]
    for environment in config.get("environments", {}).values():
        tables += [environment.get("defaults", {}), *environment.get("endpoints", {}).values()]
    for table in tables:
        if isinstance(table.get("init"), str):
            yield table["init"], "init"
        for route, target in table.get("routes", {}).items():
            handler = target if isinstance(target, str) else target.get("handler", "")
            batched = isinstance(target, dict) and "batch" in target
            yield handler, "ws" if route.startswith("WS ") else "batch" if batched else "plain"


_STUBS = {
    "plain": "def {name}(*args: object, **kwargs: object) -> dict:\n    return {{}}\n",
    "ws": "async def {name}(ws, *args: object, **kwargs: object) -> None:\n    return None\n",
    "batch": "def {name}(items: list[dict]) -> list[dict]:\n    return items\n",
    "init": "def {name}() -> None:\n    return None\n",
}


def write_app(folder: Path, text: str) -> None:
    """flash.toml with a stub module for every handler and init hook it names."""
    (folder / "flash.toml").write_text(text)
    config = tomllib.loads(text)
    source = folder / config.get("app", {}).get("source", ".")
    modules: dict[str, list[str]] = {}
    for handler, kind in _handlers(config):
        module, _, name = handler.partition(":")
        if module and name:
            modules.setdefault(module, []).append(_STUBS[kind].format(name=name))
    for module, stubs in modules.items():
        parts = module.split(".")
        for depth in range(1, len(parts)):
            package = source.joinpath(*parts[:depth])
            package.mkdir(parents=True, exist_ok=True)
            (package / "__init__.py").touch()
        path = source.joinpath(*parts[:-1], parts[-1] + ".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n\n".join(dict.fromkeys(stubs)))


def check_config(text: str, folder: Path) -> list[str]:
    try:
        write_app(folder, text)
    except tomllib.TOMLDecodeError as error:
        return [f"not TOML: {error}"]
    result = CliRunner().invoke(cli, ["validate", "-c", str(folder / "flash.toml")], standalone_mode=False)
    code = result.return_value if result.exception is None else getattr(result.exception, "exit_code", 1)
    if code == 0:
        return []
    return [f"flash validate exits {code}: {result.output.strip() or result.exception!r}"]


def test_every_toml_block_is_a_valid_config_or_a_fragment_that_fits_the_schema(tmp_path: Path) -> None:
    problems, seen = [], 0
    for number, block in enumerate(all_blocks("toml")):
        seen += 1
        if is_fragment(block.text):
            found = check_fragment(block.text)
        else:
            folder = tmp_path / str(number)
            folder.mkdir()
            found = check_config(block.text, folder)
        problems += [f"{block.where}: {problem}" for problem in found]
    assert seen, "no ```toml block found: the extractor is broken"
    assert not problems, "\n".join(problems)


# --- python -----------------------------------------------------------------------------------


def test_every_python_block_compiles() -> None:
    problems = []
    python = all_blocks("python")
    for block in python:
        try:
            compile(block.text, block.where, "exec")
        except SyntaxError as error:
            problems.append(f"{block.where}: {error}")
    assert python
    assert not problems, "\n".join(problems)


# --- commands ---------------------------------------------------------------------------------


def command_lines(block: Block) -> Iterator[tuple[int, str]]:
    """Each shell line of a block (continuations joined), with its line number; console: `$ ` lines."""
    pending, first = "", 0
    for offset, line in enumerate(block.text.splitlines()):
        if block.language == "console":
            if not line.startswith("$ "):
                continue
            line = line[2:]
        if not pending:
            first = block.line + offset
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield first, pending + line
        pending = ""


def flash_commands(line: str) -> Iterator[list[str]]:
    """The argument lists of every `flash` command on a shell line (after &&, |, ;)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words: list[str] = []
    for token in [*lexer, ";"]:
        if token and set(token) <= set("();<>|&"):
            if words and words[0] == "flash":
                yield words[1:]
            words = []
        elif not (words and words[-1] in {">", "<"}):
            words.append(token)


def check_command(args: list[str]) -> str | None:
    """None when click's own parser accepts the command line, else why not."""
    if not args or args[0] not in cli.commands:
        return f"no command {args[0] if args else '(none)'!r}"
    command = cli.commands[args[0]]
    parent = click.Context(cli, info_name="flash")
    try:
        command.make_context(args[0], args[1:], parent=parent)
    except click.exceptions.Exit:  # --help
        return None
    except click.ClickException as error:
        return error.format_message()
    return None


def test_every_flash_command_in_a_shell_block_parses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # `import [DIR]` must exist: the current folder does
    monkeypatch.delenv("FLASH_TARGET", raising=False)
    monkeypatch.delenv("FLASH_ENV", raising=False)
    problems, seen = [], 0
    for block in all_blocks("sh", "console"):
        for number, line in command_lines(block):
            for args in flash_commands(line):
                seen += 1
                why = check_command(args)
                if why:
                    problems.append(f"{block.document.relative_to(ROOT)}:{number}: flash {shlex.join(args)}: {why}")
    assert seen > 10, seen
    assert not problems, "\n".join(problems)


def inline_commands() -> Iterator[tuple[Path, int, str]]:
    """Every `flash <command> ...` code span outside code blocks (the commands table's synopses too)."""
    for document in DOCUMENTS:
        for number, line in prose(document):
            for span in re.findall(r"`(flash [^`]*)`", line):
                if not span.startswith(("flash …", "flash ...")) and not span.split()[1].endswith(":"):
                    yield document, number, span


def check_synopsis(span: str) -> list[str]:
    """A synopsis like `flash plan [-c FILE]... [--env NAME]`: a real command, and options it takes."""
    name = span.split()[1]
    command = cli.commands.get(name)
    if command is None:
        return [f"no command {name!r}"]
    known = {opt for param in command.params for opt in param.opts + param.secondary_opts}
    options = re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", span)
    return [f"flash {name} has no option {option}" for option in options if option not in known]


def test_every_inline_flash_command_names_a_command_and_its_options() -> None:
    problems, spans = [], list(inline_commands())
    for document, number, span in spans:
        problems += [f"{document.relative_to(ROOT)}:{number}: `{span}`: {why}" for why in check_synopsis(span)]
    assert len(spans) > len(cli.commands), len(spans)
    assert not problems, "\n".join(problems)


def test_each_row_of_the_commands_table_lists_every_option_of_its_command() -> None:
    problems = []
    for number, line in prose(ROOT / "README.md"):
        if line.startswith("| `flash "):
            synopsis = line.split(" | ")[0].strip("| `")
            command = cli.commands[synopsis.split()[1]]
            for param in command.params:
                opts = param.opts + param.secondary_opts
                if getattr(param, "hidden", False):  # a deprecated spelling, kept working
                    continue
                if opts[0].startswith("-") and not any(
                    re.search(rf"(?<![\w-]){opt}(?![\w-])", synopsis) for opt in opts
                ):
                    problems.append(
                        f"README.md:{number}: flash {command.name} takes {'/'.join(opts)}, the table leaves it out"
                    )
    assert not problems, "\n".join(problems)


# --- links ------------------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(document: Path) -> set[str]:
    found: set[str] = set()
    for _, line in prose(document):
        heading = re.match(r"#{1,6} (.+)", line)
        if heading:
            name = slug(heading.group(1))
            count = sum(1 for anchor in found if anchor == name or re.fullmatch(re.escape(name) + r"-\d+", anchor))
            found.add(name if not count else f"{name}-{count}")
    return found


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def check_link(document: Path, target: str) -> str | None:
    if re.match(r"[a-z]+:", target):
        return None  # https:, mailto:
    path, _, anchor = target.partition("#")
    file = (document.parent / path).resolve() if path else document
    if not file.exists():
        return f"{target}: no file {path}"
    if anchor and (file.suffix != ".md" or anchor not in anchors(file)):
        return f"{target}: no heading #{anchor} in {file.relative_to(ROOT)}"
    return None


def test_every_relative_link_and_anchor_exists() -> None:
    problems, seen = [], 0
    for document in DOCUMENTS:
        for number, line in prose(document):
            for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
                seen += 1
                why = check_link(document, target)
                if why:
                    problems.append(f"{document.relative_to(ROOT)}:{number}: {why}")
    assert seen > 20, seen
    assert not problems, "\n".join(problems)


# --- the checks can fail ----------------------------------------------------------------------


def test_the_checks_refuse_what_is_wrong(tmp_path: Path) -> None:
    assert check_fragment("# fragment\n[endpoints.api]\nwokers = [0, 1]\n")  # a misspelt key
    assert check_fragment("# fragment\n[endpoints.api]\nworkers = 3\n")  # a value of the wrong shape
    assert not check_fragment("# fragment\n[endpoints.api]\nworkers = [0, 1]\n")
    assert is_fragment("#:schema ./s.json\n# fragment: the rest follows\n[app]\n")
    assert not is_fragment('[app]\nname = "x"  # fragment\n')
    assert check_config('[app]\nname = "x"\n', tmp_path)  # too short a name, no endpoints
    assert "--no-such-option" in (check_command(["deploy", "--no-such-option"]) or "")
    assert check_command(["plan", "--format", "yaml"])
    assert check_command(["call"])  # its arguments are required
    assert check_command(["launch"]) == "no command 'launch'"
    assert check_synopsis("flash status [--nope NAME]") == ["flash status has no option --nope"]
    assert check_synopsis("flash launch") == ["no command 'launch'"]
    assert check_command(["deploy", "-c", "a.toml", "--target", "local", "--detach"]) is None
    assert list(flash_commands("pip install . && flash deploy --target local  # a comment")) == [
        ["deploy", "--target", "local"]
    ]
    assert list(flash_commands("flash schema > flash.schema.json")) == [["schema"]]
    readme = ROOT / "README.md"
    assert check_link(readme, "docs/local.md#developing-with-flash-dev") is None
    assert check_link(readme, "docs/local.md#no-such-heading")
    assert check_link(readme, "docs/nowhere.md")
    assert slug("What will this cost?") == "what-will-this-cost"
    assert slug("flash.toml reference") == "flashtoml-reference"
