#!/usr/bin/env python3
"""Checks docker/Dockerfile builds meshgate the way developers do and ships a
runtime stage with nothing but the binary's libraries.

    check_dockerfile.py REPO_ROOT [--meshgate BUILT_BINARY]

The build stage must run scripts/install-deps.sh then scripts/build.sh (the
two steps README.md documents), the runtime stage must install no -dev
packages or compilers. With --meshgate (and dpkg on the host), every shared
library the binary links must come from a package the runtime stage installs.
Checks return lists of problems; the tests also run them on broken copies.
"""

import os
import posixpath
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploylib  # noqa: E402

INSTALL = "scripts/install-deps.sh"
BUILD = "scripts/build.sh"
BINARY = "/usr/local/bin/meshgate"
REQUIRED_BUILD_ARGS = ("-DCMAKE_BUILD_TYPE=Release", "-DMESHGATE_BUILD_TESTS=OFF", "-DMESHGATE_BUILD_BENCH=OFF")
BUILD_TOOLS = re.compile(
    r"^(gcc|g\+\+|cpp|c\+\+|cc|clang|clang\+\+|llvm|lld|build-essential|cmake|ninja-build|make|"
    r"ccache|pkg-config|pkgconf|binutils|libtool|autoconf|automake|git|googletest)(-[0-9.]+)?$")
# In every Debian image, or pulled in by libstdc++6: need not be listed.
BASE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6"}
DEBIAN_12 = {"debian:bookworm", "debian:12"}


def global_args(text):
    """{name: default} of the ARG lines before the first FROM."""
    args = {}
    for line in text.splitlines():
        words = line.split()
        if words and words[0].upper() == "FROM":
            break
        if len(words) == 2 and words[0].upper() == "ARG":
            name, _, default = words[1].partition("=")
            args[name] = default
    return args


def resolve_alias(text, stages, stage):
    """`FROM ${ARG} AS alias` with no instructions picks a stage by a build
    argument (docker/Dockerfile's BINARIES=build|prebuilt); the check follows
    the argument's default, the stage a plain `docker build` uses."""
    match = re.match(r"^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$", stage.base) if stage else None
    if match is None or stage.instructions:
        return stage
    return deploylib.stage_named(stages, global_args(text).get(match.group(1), ""))


def stages_of(text):
    stages = deploylib.parse_dockerfile(text)
    runtime = stages[-1] if stages else None
    build, copy = None, None
    if runtime is not None:
        for instruction in runtime.all("COPY"):
            match = re.match(r"^--from=(\S+)\s+(.*)$", instruction.args)
            words = match.group(2).split() if match else []
            if match and words and words[-1] == BINARY:
                build = resolve_alias(text, stages, deploylib.stage_named(stages, match.group(1)))
                copy = words
    return stages, build, runtime, copy


def check_build_stage(text, repo_files):
    """repo_files: {repo path: text} for README.md and scripts/build.sh."""
    p = []
    stages, build, runtime, copy = stages_of(text)
    if len(stages) < 2:
        return ["Dockerfile: want a multi-stage build (build + runtime), found %d stage(s)" % len(stages)]
    if build is None:
        return ["Dockerfile: the runtime stage does not COPY --from=<build stage> ... %s" % BINARY]
    if build.base not in DEBIAN_12:
        p.append("Dockerfile: build stage FROM %s, want debian:bookworm (install-deps.sh targets Debian 12)"
                 % build.base)
    if runtime.base.rsplit("-slim", 1)[0] not in DEBIAN_12 or not runtime.base.endswith("-slim"):
        p.append("Dockerfile: runtime stage FROM %s, want debian:bookworm-slim (same release as the build)"
                 % runtime.base)

    installs = deploylib.script_invocations(build, INSTALL)
    builds = deploylib.script_invocations(build, BUILD)
    if not installs:
        p.append("Dockerfile: build stage does not run %s" % INSTALL)
    if not builds:
        p.append("Dockerfile: build stage does not run %s" % BUILD)
    if installs and builds and builds[0][0].line < installs[0][0].line:
        p.append("Dockerfile: %s runs before %s" % (BUILD, INSTALL))
    for run in build.all("RUN"):
        for words in map(deploylib.strip_env, deploylib.shell_commands(run.args)):
            if words and words[0] == "cmake":
                p.append("Dockerfile line %d: runs cmake directly; the image must build with %s" % (run.line, BUILD))
            if words[:1] in (["apt-get"], ["apt"]) and "install" in words:
                p.append("Dockerfile line %d: installs packages itself; they belong in %s" % (run.line, INSTALL))

    # Layer caching: only the scripts are in the image when the apt step runs.
    if installs:
        for instruction in build.instructions:
            if instruction.line >= installs[0][0].line:
                break
            if instruction.keyword in ("COPY", "ADD"):
                sources = [w for w in instruction.args.split() if not w.startswith("--")][:-1]
                if any(not posixpath.normpath(s).startswith("scripts") for s in sources):
                    p.append("Dockerfile line %d: copies %s before %s runs, so every source edit re-runs apt"
                             % (instruction.line, " ".join(sources), INSTALL))

    script = repo_files.get(BUILD, "")
    if builds:
        _, args, env = builds[0]
        for arg in REQUIRED_BUILD_ARGS:
            if arg not in args:
                p.append("Dockerfile: %s is not given %s" % (BUILD, arg))
        if args and '"$@"' not in script:
            p.append("%s does not pass its arguments on to cmake" % BUILD)
        # Where the binary lands, as build.sh computes it (it cd's to the repo
        # root, which is the build stage's WORKDIR).
        build_dir = env.get("BUILD_DIR")
        for instruction in build.all("ENV"):
            match = re.match(r"^BUILD_DIR[= ]\s*(\S+)", instruction.args)
            if match and build_dir is None:
                build_dir = match.group(1)
        if build_dir is not None and "BUILD_DIR" not in script:
            p.append("Dockerfile sets BUILD_DIR but %s ignores it" % BUILD)
        workdir = build.last("WORKDIR")
        binary = posixpath.join(workdir.args if workdir else "/", build_dir or "build", "meshgate")
        if copy is not None and posixpath.normpath(copy[-2]) != posixpath.normpath(binary):
            p.append("Dockerfile: copies %s from the build stage, but %s puts the binary at %s"
                     % (copy[-2], BUILD, binary))

    # Shipped binaries are stripped in the build stage (the symbol tables were
    # 40% of them: meshgate 7.8 -> 4.5 MB); every COPY --from=<build> of a
    # binary must be stripped after the build script ran.
    if builds and runtime is not None:
        stripped = set()
        for run in build.all("RUN"):
            if run.line < builds[0][0].line:
                continue
            for words in map(deploylib.strip_env, deploylib.shell_commands(run.args)):
                if words[:1] == ["strip"] or (words[:1] == ["install"] and ("-s" in words or "--strip" in words)):
                    stripped.update(posixpath.normpath(w) for w in words[1:] if not w.startswith("-"))
        for instruction in runtime.all("COPY"):
            match = re.match(r"^--from=(\S+)\s+(\S+)\s+\S+$", instruction.args)
            if match and resolve_alias(text, stages, deploylib.stage_named(stages, match.group(1))) is build \
                    and posixpath.normpath(match.group(2)) not in stripped:
                p.append("Dockerfile line %d: copies %s unstripped (strip it in the build stage)"
                         % (instruction.line, match.group(2)))

    readme = repo_files.get("README.md", "")
    for step in ("./" + INSTALL, "./" + BUILD):
        if step not in readme:
            p.append("README.md does not name %s as a build step" % step)
    return p


def check_runtime_stage(text):
    p = []
    _, _, runtime, _ = stages_of(text)
    if runtime is None:
        return ["Dockerfile: no stages"]
    packages = deploylib.apt_installed_packages(runtime)
    for package in packages:
        name = package.split("=")[0].split(":")[0]
        if name.endswith("-dev") or BUILD_TOOLS.match(name):
            p.append("Dockerfile: runtime stage installs %s (a development package or build tool)" % name)
    for run in runtime.all("RUN"):
        if INSTALL in run.args or BUILD in run.args:
            p.append("Dockerfile line %d: the runtime stage runs the build scripts" % run.line)
        for words in map(deploylib.strip_env, deploylib.shell_commands(run.args)):
            if words[:1] in (["apt-get"], ["apt"]) and "install" in words and "--no-install-recommends" not in words:
                p.append("Dockerfile line %d: apt install without --no-install-recommends" % run.line)
        if "apt-get update" in run.args and "/var/lib/apt/lists" not in run.args:
            p.append("Dockerfile line %d: apt lists are left in the image" % run.line)
        # Official debian images clean /var/cache/apt through an apt hook
        # (docker-clean); other bases (debootstrap + podman import) have none,
        # and the downloaded .debs stayed in the image (191 MB, not 106 MB).
        if re.search(r"\bapt(-get)?\s.*\binstall\b", run.args) and "/var/cache/apt" not in run.args:
            p.append("Dockerfile line %d: installs packages but does not remove /var/cache/apt itself "
                     "(only official base images have an apt hook that does)" % run.line)
    if "ca-certificates" not in packages:
        p.append("Dockerfile: runtime stage does not install ca-certificates")
    for instruction in runtime.all("COPY") + runtime.all("ADD"):
        if not instruction.args.startswith("--from="):
            p.append("Dockerfile line %d: the runtime stage copies from the build context (%s)"
                     % (instruction.line, instruction.args))
    return p


def linked_packages(binary):
    """{soname: Debian package} for the libraries the binary links directly."""
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                        subprocess.run(["readelf", "-d", binary], capture_output=True, text=True,
                                       check=True).stdout)
    paths = {}
    for line in subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout.splitlines():
        match = re.match(r"^\s*(\S+)\s+=>\s+(/\S+)", line)
        if match:
            paths[match.group(1)] = match.group(2)
    result = {}
    for soname in needed:
        path = paths.get(soname)
        if path is None:
            result[soname] = None
            continue
        candidates = [path, os.path.realpath(path)]
        candidates += ["/usr" + c for c in candidates if not c.startswith("/usr/")]
        candidates += [c[len("/usr"):] for c in candidates if c.startswith("/usr/")]
        package = None
        for candidate in candidates:
            run = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
            if run.returncode == 0:
                package = run.stdout.split(":")[0].strip()
                break
        result[soname] = package
    return result


def check_runtime_covers(text, linked):
    """linked: {soname: package}; each package must be installed at runtime."""
    p = []
    _, _, runtime, _ = stages_of(text)
    installed = {x.split("=")[0].split(":")[0] for x in deploylib.apt_installed_packages(runtime)} if runtime else set()
    for soname, package in sorted(linked.items()):
        if package is None:
            p.append("meshgate links %s, which no Debian package provides on this host" % soname)
        elif package not in installed and package not in BASE_PACKAGES:
            p.append("meshgate links %s (package %s), which the runtime stage does not install" % (soname, package))
    return p


# --- tests ----------------------------------------------------------------------

ROOT = None
MESHGATE = None


def read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


class Dockerfile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.text = read("docker", "Dockerfile")
        cls.repo = {"README.md": read("README.md"), BUILD: read(*BUILD.split("/"))}

    def edit(self, old, new, count=1):
        self.assertIn(old, self.text)
        return self.text.replace(old, new, count)

    def build_problems(self, text=None, repo=None):
        return check_build_stage(self.text if text is None else text, self.repo if repo is None else repo)

    def assertMentions(self, problems, fragment):
        self.assertTrue(any(fragment in x for x in problems),
                        "expected a problem mentioning %r, got %r" % (fragment, problems))

    # The real files.

    def test_build_stage(self):
        self.assertEqual(self.build_problems(), [])

    def test_runtime_stage(self):
        self.assertEqual(check_runtime_stage(self.text), [])

    def test_scripts_exist(self):
        for script in (INSTALL, BUILD):
            self.assertTrue(os.path.isfile(os.path.join(ROOT, script)), script)

    def test_runtime_packages_cover_linked_libraries(self):
        if not MESHGATE or not os.access(MESHGATE, os.X_OK):
            self.skipTest("no meshgate binary (pass --meshgate)")
        if not all(shutil.which(tool) for tool in ("readelf", "ldd", "dpkg")):
            self.skipTest("needs readelf, ldd and dpkg")
        linked = linked_packages(MESHGATE)
        self.assertTrue(linked)
        self.assertEqual(check_runtime_covers(self.text, linked), [])

    def test_runtime_packages_exist_in_debian_12(self):
        try:
            with open("/etc/debian_version", encoding="utf-8") as f:
                release = f.read()
        except OSError:
            release = ""
        if not release.startswith("12") or not shutil.which("apt-cache"):
            self.skipTest("needs a Debian 12 host with apt-cache")
        _, _, runtime, _ = stages_of(self.text)
        wanted = [x.split("=")[0] for x in deploylib.apt_installed_packages(runtime)]
        run = subprocess.run(["apt-cache", "show", "--no-all-versions"] + wanted, capture_output=True, text=True)
        known = set(re.findall(r"^Package: (\S+)$", run.stdout, re.MULTILINE))
        if not known:
            self.skipTest("apt-cache has no package lists here")
        self.assertEqual(sorted(set(wanted) - known), [], "not Debian 12 packages")

    # Broken copies.

    def test_missing_install_step(self):
        text = self.edit("RUN bash scripts/install-deps.sh", "RUN true")
        self.assertMentions(self.build_problems(text), "does not run scripts/install-deps.sh")

    def test_cmake_instead_of_build_script(self):
        text = self.edit("bash scripts/build.sh", "cmake -S . -B /build -G Ninja")
        problems = self.build_problems(text)
        self.assertMentions(problems, "does not run scripts/build.sh")
        self.assertMentions(problems, "runs cmake directly")

    def test_tests_left_on(self):
        text = self.edit("-DMESHGATE_BUILD_TESTS=OFF", "-DMESHGATE_BUILD_TESTS=ON")
        self.assertMentions(self.build_problems(text), "not given -DMESHGATE_BUILD_TESTS=OFF")

    def test_build_script_ignores_args(self):
        repo = dict(self.repo)
        repo[BUILD] = repo[BUILD].replace('"$@"', "")
        self.assertMentions(self.build_problems(repo=repo), "does not pass its arguments")

    def test_binary_copied_from_wrong_path(self):
        text = self.edit("COPY --from=binaries /build/meshgate", "COPY --from=binaries /src/build/meshgate")
        self.assertMentions(self.build_problems(text), "puts the binary at /build/meshgate")

    def test_source_copied_before_apt(self):
        text = self.edit("COPY scripts/install-deps.sh scripts/", "COPY . .")
        self.assertMentions(self.build_problems(text), "every source edit re-runs apt")

    def test_build_stage_not_bookworm(self):
        text = self.edit("FROM debian:bookworm AS build", "FROM ubuntu:22.04 AS build")
        self.assertMentions(self.build_problems(text), "build stage FROM ubuntu:22.04")

    def test_single_stage(self):
        text = self.text[:self.text.index("FROM scratch AS prebuilt")]
        self.assertMentions(self.build_problems(text), "multi-stage")

    def test_readme_without_build_steps(self):
        repo = dict(self.repo)
        repo["README.md"] = repo["README.md"].replace("./scripts/build.sh", "cmake --build build")
        self.assertMentions(self.build_problems(repo=repo), "does not name ./scripts/build.sh")

    def test_unstripped_binary(self):
        text = self.edit("RUN strip --strip-unneeded /build/meshgate /build/meshgatectl",
                         "RUN strip --strip-unneeded /build/meshgatectl")
        problems = self.build_problems(text)
        self.assertMentions(problems, "copies /build/meshgate unstripped")
        self.assertFalse(any("meshgatectl unstripped" in x for x in problems), problems)

    def test_strip_before_build_does_not_count(self):
        text = self.edit("RUN strip --strip-unneeded /build/meshgate /build/meshgatectl\n", "")
        text = text.replace("COPY control control/\n", "COPY control control/\nRUN strip /build/meshgate /build/meshgatectl\n", 1)
        self.assertMentions(self.build_problems(text), "copies /build/meshgate unstripped")

    def test_binaries_default_to_the_source_build(self):
        # A plain `docker build` (no --build-arg) compiles from source.
        self.assertEqual(global_args(self.text).get("BINARIES"), "build")
        text = self.edit("ARG BINARIES=build", "ARG BINARIES=prebuilt")
        self.assertMentions(self.build_problems(text), "does not run scripts/install-deps.sh")

    def test_prebuilt_stage_copies_the_staged_binaries(self):
        stages = deploylib.parse_dockerfile(self.text)
        prebuilt = deploylib.stage_named(stages, "prebuilt")
        self.assertIsNotNone(prebuilt)
        self.assertEqual([c.args for c in prebuilt.all("COPY")],
                         [".image-bin/meshgate .image-bin/meshgatectl /build/"])

    def test_apt_cache_left_to_the_base_image(self):
        text = self.edit(" /var/cache/apt/*", "")
        self.assertMentions(check_runtime_stage(text), "does not remove /var/cache/apt itself")

    def test_dev_package_at_runtime(self):
        text = self.edit("libyaml-0-2 \\", "libyaml-0-2 libyaml-dev \\")
        self.assertMentions(check_runtime_stage(text), "installs libyaml-dev")

    def test_compiler_at_runtime(self):
        text = self.edit("ca-certificates \\", "ca-certificates g++ cmake \\")
        problems = check_runtime_stage(text)
        self.assertMentions(problems, "installs g++")
        self.assertMentions(problems, "installs cmake")

    def test_install_script_at_runtime(self):
        text = self.edit("COPY --from=binaries", "RUN bash scripts/install-deps.sh\nCOPY --from=binaries")
        self.assertMentions(check_runtime_stage(text), "runs the build scripts")

    def test_missing_runtime_library(self):
        text = self.edit("      libprometheus-cpp-core1.0 \\\n", "")
        linked = {"libprometheus-cpp-core.so.1.0": "libprometheus-cpp-core1.0", "libc.so.6": "libc6"}
        self.assertEqual(check_runtime_covers(self.text, linked), [])
        self.assertMentions(check_runtime_covers(text, linked), "package libprometheus-cpp-core1.0")


class Parser(unittest.TestCase):
    def test_continuations_and_comments(self):
        stages = deploylib.parse_dockerfile(
            "# syntax=docker/dockerfile:1\nFROM a AS b\nRUN x \\\n  # note\n  && y\nfrom c\nuser 7\n")
        self.assertEqual([(s.base, s.name) for s in stages], [("a", "b"), ("c", None)])
        self.assertEqual(stages[0].instructions[0].args.split(), ["x", "&&", "y"])
        self.assertEqual(stages[1].last("USER").args, "7")

    def test_apt_packages(self):
        stage = deploylib.parse_dockerfile(
            "FROM x\nRUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y -q a b=1 && rm z\n")[0]
        self.assertEqual(deploylib.apt_installed_packages(stage), ["a", "b=1"])


if __name__ == "__main__":
    deploylib.run_tests(globals(), "built meshgate binary, to check its libraries are installed")
