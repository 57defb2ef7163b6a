"""Reading the deploy files the way their tools do, and the code's own facts to hold them against.

The deploy files (Dockerfile, deploy/compose.yaml, deploy/k8s, docs/deploy.md) name commands, ports,
paths and environment variables of tocsin; everything here that describes tocsin is read from the code
(the Typer app, the serve command's defaults, the FastAPI app, the spec models), never copied.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import shlex
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import typer.main
import yaml

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "tocsin"
DEPLOY = ROOT / "deploy"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
K8S = DEPLOY / "k8s"
OVERLAYS = sorted(p.parent for p in (K8S / "overlays").glob("*/kustomization.yaml"))
DEPLOY_SPEC = DEPLOY / "specs" / "transactions-kafka.yaml"
DOC = ROOT / "docs" / "deploy.md"
README = ROOT / "README.md"
README_SECTIONS = ("## Run the full stack locally", "## Run it on Kubernetes")
KUBERNETES_VERSION = "1.32.0"
"""Validated against this Kubernetes version's schemas (kubernetes-validate ships them offline)."""

TOCSIN_VAR = re.compile(r"\bTOCSIN_[A-Z0-9_]+\b")


# --- the code's facts ---------------------------------------------------------------------------

def console_script() -> str:
    """The console script that runs the Typer app ``tocsin.cli.main:app`` (pyproject's [project.scripts])."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    names = [name for name, target in scripts.items() if target == "tocsin.cli.main:app"]
    assert len(names) == 1, scripts
    return names[0]


def cli() -> Any:
    """The Typer app as a click command (Typer's own click: compared by behaviour, not by class)."""
    from tocsin.cli.main import app

    return typer.main.get_command(app)


def _is_group(command: Any) -> bool:
    return hasattr(command, "list_commands") and hasattr(command, "get_command")


def resolve(argv: list[str], help_: bool = False) -> tuple[Any, Any, list[str]]:
    """The (sub)command ``tocsin ARGV…`` names, its parent context and the words left for it; an unknown
    subcommand raises ``ValueError``. With ``help_``, a group is a fine place to stop (``tocsin bench --help``)."""
    command = cli()
    context = command.context_class(command, info_name="tocsin")
    args = list(argv)
    while _is_group(command):
        if not args and help_:
            return command, context, ["tocsin"]
        if not args:
            raise ValueError(f"`tocsin {' '.join(argv)}`: no subcommand")
        name = args.pop(0)
        sub = command.get_command(context, name)
        if sub is None:
            raise ValueError(f"`tocsin {' '.join(argv)}`: no subcommand {name!r} (there are {command.list_commands(context)})")
        if not _is_group(sub):
            return sub, context, [name, *args]
        command, context = sub, sub.context_class(sub, info_name=name, parent=context)
    return command, context, args


def check_command_line(argv: list[str]) -> Any:
    """Parse ``argv`` (the words after ``tocsin``) with the real CLI, without running it: an unknown
    subcommand or option, a missing argument or a bad value raises (ValueError or the CLI's UsageError)."""
    if "--help" in argv:  # help stops parsing where it stands: what precedes it must name a (sub)command
        command, _, _ = resolve(argv[: argv.index("--help")], help_=True)
        return command
    command, parent, words = resolve(argv)
    command.make_context(words[0], words[1:], parent=parent)
    return command


def option_default(path: list[str], option: str) -> Any:
    """The default of ``--option`` of ``tocsin PATH…`` (e.g. ``["serve"]``), from the Typer app."""
    command, _, _ = resolve(path)
    for param in command.params:
        if f"--{option}" in getattr(param, "opts", ()):
            return param.default
    raise KeyError(f"tocsin {' '.join(path)} has no --{option}")


def option_value(argv: list[str], option: str, default: Any = None) -> Any:
    """The value given to ``--option`` in ``argv`` (``--option value`` or ``--option=value``)."""
    for i, word in enumerate(argv):
        if word == f"--{option}" and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith(f"--{option}="):
            return word.split("=", 1)[1]
    return default


def serve_port(argv: list[str]) -> int:
    """The port ``tocsin serve`` binds with these arguments (its --port, else the CLI's default)."""
    return int(option_value(argv, "port", option_default(["serve"], "port")))


@functools.cache
def environment_read_by_code() -> frozenset[str]:
    """Every ``TOCSIN_*`` variable the code reads: the spec overrides (``EnvironmentOverrides``, pydantic-settings
    with a prefix) and every literal name passed to ``os.environ.get``/``os.getenv``/``os.environ[…]``."""
    from tocsin.spec.environment import EnvironmentOverrides

    prefix = EnvironmentOverrides.model_config["env_prefix"]
    names = {f"{prefix}{name}".upper() for name in EnvironmentOverrides.model_fields}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            literal = None
            if isinstance(node, ast.Call) and node.args and _is_environ_read(node.func):
                literal = node.args[0]
            elif isinstance(node, ast.Subscript) and _is_environ(node.value):
                literal = node.slice
            if isinstance(literal, ast.Constant) and isinstance(literal.value, str) and literal.value.startswith("TOCSIN_"):
                names.add(literal.value)
    return frozenset(names)


def _is_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (isinstance(node, ast.Name) and node.id == "environ")


def _is_environ_read(func: ast.AST) -> bool:
    if isinstance(func, ast.Attribute) and func.attr in ("get", "pop", "setdefault") and _is_environ(func.value):
        return True
    return isinstance(func, ast.Attribute) and func.attr == "getenv"


def app_for_probes(tmp_path: Path, monkeypatch: Any) -> Any:
    """The FastAPI app ``tocsin serve`` builds from the deploy spec (auth on), with the store and
    checkpoints in ``tmp_path``."""
    from tocsin.api import AuthConfig, KeyStore, create_app
    from tocsin.spec import load_spec

    monkeypatch.setenv("TOCSIN_STORE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("TOCSIN_CHECKPOINT_URL", str(tmp_path / "checkpoints"))
    return create_app(load_spec(DEPLOY_SPEC), AuthConfig(enabled=True, keys=KeyStore(tmp_path / "keys.json")))


def route_exists(app: Any, method: str, path: str) -> bool:
    from starlette.routing import Match

    scope = {"type": "http", "method": method, "path": path, "root_path": "", "query_string": b"", "headers": []}
    return any(route.matches(scope)[0] == Match.FULL for route in app.routes)


# --- Dockerfile ---------------------------------------------------------------------------------

@dataclass
class Instruction:
    keyword: str
    value: str
    stage: int

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form instruction (after any --flags such as HEALTHCHECK's)."""
        text = self.value[self.value.index("["):] if "[" in self.value else ""
        return json.loads(text) if text else shlex.split(self.value)


def dockerfile() -> list[Instruction]:
    """The Dockerfile's instructions (continuations joined, comments dropped), each with its stage index."""
    logical, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if current and line.lstrip().startswith("#"):
            continue
        current += line.rstrip("\\").strip() + " " if line.rstrip().endswith("\\") else line.strip()
        if not line.rstrip().endswith("\\"):
            logical.append(current.strip())
            current = ""
    instructions, stage = [], -1
    for text in logical:
        keyword, _, value = text.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(keyword.upper(), value.strip(), stage))
    return instructions


def healthcheck_command(instructions: list[Instruction]) -> list[str]:
    """The command of the image's HEALTHCHECK (``HEALTHCHECK [--options] CMD …``)."""
    (check,) = [i for i in instructions if i.keyword == "HEALTHCHECK"]
    options, keyword, command = check.value.partition(" CMD ")
    assert keyword, f"HEALTHCHECK without CMD: {check.value}"
    return Instruction("CMD", command.strip(), check.stage).exec_form()


def urls_in(words: list[str]) -> list[tuple[str, int, str]]:
    """(host, port, path) of every http:// URL in a command."""
    found = []
    for match in re.finditer(r"http://([^/:'\"]+):(\d+)(/[^'\"\s)]*)", " ".join(words)):
        found.append((match.group(1), int(match.group(2)), match.group(3)))
    return found


def dockerignore_patterns() -> list[str]:
    return [line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")]


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves ``path`` out: Docker's rules (the last matching pattern wins,
    ``!`` re-includes, a pattern matching a directory covers what is inside, ``**`` spans directories)."""
    excluded = False
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _dockerignore_regex(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not negate
    return excluded


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


# --- Compose ------------------------------------------------------------------------------------

def env_file(path: Path) -> dict[str, str]:
    """KEY=value lines (comments and blank lines skipped), as Compose and kustomize read them."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


_INTERPOLATION = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


@dataclass
class Interpolation:
    """Compose's variable interpolation with values from an env file; records every reference."""

    env: dict[str, str]
    used: dict[str, set[str]] = field(default_factory=dict)  # name -> operators used ('' for a bare reference)
    problems: list[str] = field(default_factory=list)

    def text(self, value: str) -> str:
        return _INTERPOLATION.sub(self._replace, value)

    def _replace(self, match: re.Match[str]) -> str:
        if match.group(1):
            return "$"
        name, operator, argument = match.group(2) or match.group(5), match.group(3) or "", match.group(4) or ""
        self.used.setdefault(name, set()).add(operator)
        value = self.env.get(name)
        if operator == ":-":
            return value if value else argument
        if operator == "-":
            return value if value is not None else argument
        if operator in (":?", "?") and not value:
            self.problems.append(f"${{{name}{operator}{argument}}} is required but not set")
            return ""
        if value is None:
            self.problems.append(f"${name} is not set and has no default: Compose would substitute an empty string")
            return ""
        return value

    def tree(self, node: Any) -> Any:
        if isinstance(node, dict):
            return {key: self.tree(value) for key, value in node.items()}
        if isinstance(node, list):
            return [self.tree(item) for item in node]
        return self.text(node) if isinstance(node, str) else node


def compose_raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def compose(env: dict[str, str] | None = None) -> tuple[dict[str, Any], Interpolation]:
    """deploy/compose.yaml as Compose sees it with deploy/.env.example as its .env: YAML (anchors and merge
    keys resolved), then every string interpolated."""
    interpolation = Interpolation(env_file(ENV_EXAMPLE) if env is None else env)
    return interpolation.tree(compose_raw()), interpolation


def compose_schema() -> dict[str, Any]:
    """The Compose Specification's JSON schema, as vendored (with its licence, Apache-2.0) by check-jsonschema
    from compose-spec/compose-spec's schema/compose-spec.json."""
    import importlib.resources

    return json.loads((importlib.resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json").read_text())


def tocsin_services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the image built from the Dockerfile."""
    return {name: svc for name, svc in config["services"].items() if "build" in svc and svc["build"].get("dockerfile") == "Dockerfile"}


def compose_command(service: dict[str, Any], entrypoint: list[str]) -> list[str]:
    command = service.get("command", [])
    command = shlex.split(command) if isinstance(command, str) else [str(word) for word in command]
    first = service.get("entrypoint", entrypoint)
    return (shlex.split(first) if isinstance(first, str) else list(first)) + command


# --- Kubernetes ---------------------------------------------------------------------------------

def kustomize(directory: Path) -> str:
    """`kubectl kustomize DIR`: the rendered manifests as YAML (offline)."""
    result = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"kubectl kustomize {directory.relative_to(ROOT)} failed:\n{result.stderr}"
    return result.stdout


def find(manifests: list[dict[str, Any]], kind: str, name_prefix: str = "") -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] == kind and m["metadata"]["name"].startswith(name_prefix)]


def one(manifests: list[dict[str, Any]], kind: str, name_prefix: str = "") -> dict[str, Any]:
    found = find(manifests, kind, name_prefix)
    assert len(found) == 1, f"expected one {kind} {name_prefix!r}, found {[m['metadata']['name'] for m in found]}"
    return found[0]


def tocsin_containers(manifests: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, container) for every container running the tocsin image."""
    for manifest in manifests:
        pod = manifest.get("spec", {}).get("template", {}).get("spec")
        if not pod:
            continue
        for container in pod.get("containers", []):
            image = container["image"].split("@")[0].rsplit(":", 1)[0]
            if image.rsplit("/", 1)[-1] == "tocsin":
                yield manifest, container


def container_command(container: dict[str, Any], entrypoint: list[str]) -> list[str]:
    return list(container.get("command", entrypoint)) + list(container.get("args", []))


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


# --- docs ---------------------------------------------------------------------------------------

def readme_sections() -> str:
    """The README's two deployment sections (the rest of the README is not about deploying)."""
    text = README.read_text()
    parts = []
    for heading in README_SECTIONS:
        assert heading in text, f"README.md has no section {heading!r}"
        body = text.split(heading, 1)[1]
        parts.append(heading + body.split("\n## ", 1)[0])
    return "\n".join(parts)


def shell_lines(markdown: str) -> Iterator[str]:
    """The command lines of a Markdown text's fenced code blocks (continuations joined, comments dropped)."""
    for block in re.findall(r"```(?:bash|sh|shell|console)?\n(.*?)```", markdown, flags=re.S):
        line = ""
        for raw in block.splitlines():
            line += raw.rstrip()
            if line.endswith("\\"):
                line = line[:-1] + " "
                continue
            if line.strip():
                yield line.strip()
            line = ""


def tocsin_invocations(line: str, image: str = "tocsin") -> list[list[str]]:
    """The `tocsin …` command lines in a shell line: the program itself (`tocsin …`, `.venv/bin/tocsin …`,
    `… exec SERVICE tocsin …`, `kubectl exec … -- tocsin …`) and `docker run … IMAGE:TAG …` of the image,
    whose entry point is tocsin."""
    found = []
    for segment in re.split(r"\s*(?:&&|\|\||;|\|)\s*", line):
        try:
            words = shlex.split(segment, comments=True)
        except ValueError:
            continue
        for i, word in enumerate(words):
            program = word == "tocsin" or word.endswith("/tocsin")
            if program and (i == 0 or words[i - 1] == "--" or (i >= 2 and words[i - 2] == "exec")):
                found.append(words[i + 1 :])
                break
            if words[:2] == ["docker", "run"] and re.fullmatch(rf"(?:[^\s:/]+(?::\d+)?/)*{image}:[\w.-]+", word):
                found.append(words[i + 1 :])
                break
    return found


def environment_names(text: str) -> set[str]:
    return set(TOCSIN_VAR.findall(text))


def deploy_texts() -> dict[str, str]:
    """Every deploy file, by path relative to the repository: what drift tests read."""
    files = [DOCKERFILE, DOCKERIGNORE, DOC, *sorted(p for p in DEPLOY.rglob("*") if p.is_file())]
    texts = {str(p.relative_to(ROOT)): p.read_text() for p in files if p.suffix != ".json" or p.parent.name != "grafana"}
    texts["README.md (deployment sections)"] = readme_sections()
    return texts


def pod_writable_paths(pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
    """Mount paths of the container's writable volumes (emptyDir, PVC)."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    writable = []
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if not mount.get("readOnly") and ("emptyDir" in volume or "persistentVolumeClaim" in volume):
            writable.append(mount["mountPath"])
    return writable


def under(path: str | Path, directories: list[str]) -> bool:
    return any(Path(path) == Path(d) or Path(d) in Path(path).parents for d in directories)
