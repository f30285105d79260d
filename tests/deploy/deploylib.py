"""Parsers shared by the deployment checks: Kubernetes manifests, the
Dockerfile, meshgate's durations and IP:PORT addresses.

Everything here is static: no Docker engine or cluster is needed.
"""

import glob
import json
import os
import re
import shlex

import yaml


# --- Kubernetes manifests ---------------------------------------------------

class _StrictLoader(yaml.SafeLoader):
    """safe_load, but a key repeated in one mapping is an error (PyYAML keeps
    the last silently; kubectl's strict decoding rejects or warns)."""


def _mapping_without_duplicates(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, "duplicate key %r" % (key,), key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def load_manifests(k8s_dir):
    """Every document of every *.yaml in k8s_dir, as (file name, object).
    Same as yaml.safe_load_all, except that duplicate keys are errors."""
    docs = []
    for path in sorted(glob.glob(os.path.join(k8s_dir, "*.yaml"))):
        with open(path, encoding="utf-8") as f:
            for doc in yaml.load_all(f, Loader=_StrictLoader):
                if doc is not None:
                    docs.append((os.path.basename(path), doc))
    return docs


# docker/k8s/serve-*.yaml deploy `meshgatectl serve`; the other files the gateway.
SERVE_PREFIX = "serve-"


def gateway_manifests(k8s_dir):
    return [(source, doc) for source, doc in load_manifests(k8s_dir) if not source.startswith(SERVE_PREFIX)]


def serve_manifests(k8s_dir):
    return [(source, doc) for source, doc in load_manifests(k8s_dir) if source.startswith(SERVE_PREFIX)]


# What a client following a cluster reads (issue 14): the gateway watching
# its own cluster and `meshgatectl serve` both get exactly get/list/watch on
# each (apiGroup, resource), nothing else.
API_READS = {
    ("", "services"), ("", "pods"), ("", "namespaces"),
    ("discovery.k8s.io", "endpointslices"),
    ("networking.istio.io", "serviceentries"), ("networking.istio.io", "workloadentries"),
    ("networking.istio.io", "destinationrules"), ("networking.istio.io", "gateways"),
    ("security.istio.io", "authorizationpolicies"),
}
READ_VERBS = ["get", "list", "watch"]


def of_kind(docs, kind):
    return [doc for _, doc in docs if isinstance(doc, dict) and doc.get("kind") == kind]


# --- Dockerfile ---------------------------------------------------------------

class Instruction:
    def __init__(self, keyword, args, line):
        self.keyword = keyword  # upper case: RUN, COPY, ...
        self.args = args        # the rest of the instruction, continuations joined
        self.line = line        # 1-based line where it starts

    def exec_form(self):
        """The JSON array of an exec-form instruction, or None (shell form)."""
        text = self.args.strip()
        if not text.startswith("["):
            return None
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None

    def __repr__(self):
        return "%s %s (line %d)" % (self.keyword, self.args, self.line)


class Stage:
    def __init__(self, base, name, line):
        self.base = base
        self.name = name
        self.line = line
        self.instructions = []

    def all(self, keyword):
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword):
        found = self.all(keyword)
        return found[-1] if found else None


def parse_dockerfile(text):
    """Splits a Dockerfile into stages of instructions.

    Follows the Dockerfile rules that matter here: comment lines (also inside
    a continued instruction) are dropped, a trailing backslash continues the
    instruction, keywords are case-insensitive.
    """
    logical = []  # (line number, text)
    buffer, start = None, 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#"):
            continue  # comments and parser directives
        if buffer is None:
            if not stripped:
                continue
            buffer, start = "", number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        buffer += stripped
        logical.append((start, buffer))
        buffer = None
    if buffer is not None and buffer.strip():
        logical.append((start, buffer))

    stages = []
    for line, entry in logical:
        keyword, _, args = entry.partition(" ")
        keyword = keyword.upper()
        args = args.strip()
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            base = words[0] if words else ""
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(Stage(base, name, line))
        elif stages:
            stages[-1].instructions.append(Instruction(keyword, args, line))
    return stages


def stage_named(stages, name):
    for index, stage in enumerate(stages):
        if stage.name == name or str(index) == name:
            return stage
    return None


def shell_commands(run_args):
    """A shell-form RUN split into simple commands (word lists) at && ; || |."""
    lexer = shlex.shlex(run_args, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands, current = [], []
    for token in lexer:
        if token in ("&&", ";", "||", "|", "&"):
            if current:
                commands.append(current)
            current = []
        else:
            current.append(token)
    if current:
        commands.append(current)
    return commands


def strip_env(words):
    """Drops leading VAR=value assignments from a command's words."""
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        words = words[1:]
    return words


def apt_installed_packages(stage):
    """Package names passed to apt-get/apt install in the stage's RUN steps."""
    packages = []
    for run in stage.all("RUN"):
        for words in shell_commands(run.args):
            words = strip_env(words)  # DEBIAN_FRONTEND=... apt-get ...
            if len(words) >= 2 and words[0] in ("apt-get", "apt") and "install" in words[1:]:
                after = words[words.index("install") + 1:]
                packages += [w for w in after if not w.startswith("-")]
    return packages


def script_invocations(stage, script):
    """(instruction, words after the script, env assignments) for every
    command in the stage's RUN steps that runs `script` (a repo path)."""
    found = []
    for run in stage.all("RUN"):
        for words in shell_commands(run.args):
            env = {}
            while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
                key, _, value = words[0].partition("=")
                env[key] = value
                words = words[1:]
            for i, word in enumerate(words):
                if os.path.normpath(word) == os.path.normpath(script):
                    found.append((run, words[i + 1:], env))
                    break
    return found


def exposed_ports(stage):
    ports = set()
    for expose in stage.all("EXPOSE"):
        for word in expose.args.split():
            number = word.split("/")[0]
            if number.isdigit():
                ports.add(int(number))
    return ports


def healthcheck_command(stage):
    """The HEALTHCHECK's CMD as a word list, None if none, [] for NONE."""
    check = stage.last("HEALTHCHECK")
    if check is None:
        return None
    text = check.args
    if text.strip().upper() == "NONE":
        return []
    # Options (--interval=...) come before CMD.
    match = re.search(r"(?:^|\s)CMD\s+(.*)$", text, re.IGNORECASE)
    if not match:
        return []
    command = Instruction("CMD", match.group(1), check.line)
    return command.exec_form() or shlex.split(command.args)


def command_words(instruction):
    if instruction is None:
        return []
    return instruction.exec_form() or shlex.split(instruction.args)


# --- meshgate values ----------------------------------------------------------

_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text):
    """meshgate's (Go-style) durations, e.g. 5s, 250ms, 1h30m, 1.5s -> seconds."""
    text = str(text).strip()
    if not text:
        raise ValueError("empty duration")
    total, rest = 0.0, text
    while rest:
        match = re.match(r"^(\d+(?:\.\d*)?|\.\d+)([a-z\u00b5]+)", rest)
        if not match or match.group(2) not in _DURATION_UNITS:
            raise ValueError("invalid duration %r" % text)
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        rest = rest[match.end():]
    return total


def parse_address(text):
    """meshgate's "IP:PORT" (IPv6 as [::1]:PORT) -> (host, port); None for off."""
    text = str(text).strip()
    if text == "off":
        return None
    match = re.match(r"^\[([^\]]+)\]:(\d+)$", text) or re.match(r"^([^:\[\]]+):(\d+)$", text)
    if not match:
        raise ValueError("not IP:PORT: %r" % text)
    return match.group(1), int(match.group(2))


def run_tests(module_globals, meshgate_help):
    """The command line of both checkers: REPO_ROOT [--meshgate BINARY] [unittest args].

    Sets the module's ROOT and MESHGATE, then runs its tests."""
    import argparse
    import sys
    import unittest
    parser = argparse.ArgumentParser(description=module_globals["__doc__"].splitlines()[0])
    parser.add_argument("root", help="repository root")
    parser.add_argument("--meshgate", help=meshgate_help)
    parser.add_argument("--meshgatectl", help="the built meshgatectl: `serve --check` on serve.yaml")
    args, rest = parser.parse_known_args()
    module_globals["ROOT"] = os.path.abspath(args.root)
    module_globals["MESHGATE"] = args.meshgate
    module_globals["MESHGATECTL"] = args.meshgatectl
    unittest.main(module=module_globals["__name__"], argv=[sys.argv[0]] + rest, verbosity=2)
