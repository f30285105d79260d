#!/usr/bin/env python3
"""Fails when a file includes, or a CMake target links, a layer it may not use.

The layers and what each may use are the table between the `layers: begin`
and `layers: end` markers in ARCHITECTURE.md: the one place they are written.

  check_layers.py --source DIR [--links DIR]   # the real tree
  check_layers.py --self-test                  # proves the check can fail

--links is the build tree's `layers/` folder: one `<target>.links` file per
project target, listing its direct link libraries (written at configure time
by the top-level CMakeLists.txt).
"""
import argparse
import os
import pathlib
import re
import sys
import tempfile

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^">]+)[">]', re.M)
SOURCES = (".h", ".hh", ".hpp", ".hxx", ".cc", ".cpp", ".cxx", ".ipp", ".inc", ".inl")


def resolve(include, including, source):
    """The project path an include names: as written (rooted at the
    repository), or relative to the including file when it exists there."""
    relative = os.path.normpath(os.path.join(os.path.dirname(including), include))
    if not include.startswith(".") and (source / include).exists():
        return include
    if (source / relative).exists() and not relative.startswith(".."):
        return relative
    return os.path.normpath(include)


def read_table(source):
    text = (source / "ARCHITECTURE.md").read_text()
    body = text.split("<!-- layers: begin -->")[1].split("<!-- layers: end -->")[0]
    layers = {}
    for line in body.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name, folder, targets, uses = cells
        layers[name] = {
            "folder": folder,
            "targets": [t.strip() for t in targets.split(",") if t.strip()],
            "uses": {u.strip() for u in uses.split(",") if u.strip()} | {name},
        }
    return layers


def layer_of(path, layers):
    """The layer of the deepest folder in the table that holds `path`."""
    best, depth = None, -1
    for name, layer in layers.items():
        folder = layer["folder"]
        if (path == folder or path.startswith(folder + "/")) and folder.count("/") > depth:
            best, depth = name, folder.count("/")
    return best


def check_includes(source, layers):
    problems = []
    for name, layer in layers.items():
        root = source / layer["folder"]
        for path in sorted(root.rglob("*")):
            if path.suffix not in SOURCES:
                continue
            rel = path.relative_to(source).as_posix()
            if layer_of(rel, layers) != name:
                continue  # a deeper layer's file
            for match in INCLUDE.finditer(path.read_text(errors="replace")):
                target = layer_of(resolve(match.group(1), rel, source), layers)
                if target is not None and target not in layer["uses"]:
                    line = path.read_text(errors="replace")[: match.start()].count("\n") + 1
                    problems.append(f"{rel}:{line}: {name} includes {match.group(1)} ({target}), "
                                    f"which {name} may not use")
    return problems


def check_links(links_dir, layers):
    layer_by_target = {t: name for name, l in layers.items() for t in l["targets"]}
    links = {}
    for path in links_dir.glob("*.links"):
        links[path.stem] = [l.strip() for l in path.read_text().split("\n") if l.strip()]
    missing = sorted(t for t in layer_by_target if t not in links)
    problems = [f"{t}: no link list in {links_dir} (re-run cmake)" for t in missing]
    for target, deps in sorted(links.items()):
        mine = layer_by_target.get(target)
        if mine is None:
            continue
        # Transitive: a layer must not reach a forbidden one through another.
        seen, stack = set(), list(deps)
        while stack:
            dep = stack.pop()
            if dep in seen:
                continue
            seen.add(dep)
            stack.extend(links.get(dep, []))
            other = layer_by_target.get(dep)
            if other is not None and other not in layers[mine]["uses"]:
                problems.append(f"{target} ({mine}) links {dep} ({other}), which {mine} may not use")
    return problems


def run(source, links_dir):
    layers = read_table(source)
    problems = check_includes(source, layers)
    if links_dir is not None:
        problems += check_links(links_dir, layers)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} layering problem(s); the allowed dependencies are in ARCHITECTURE.md")
        return 1
    print(f"layering OK: {len(layers)} layers, includes" + (" and links" if links_dir else ""))
    return 0


def self_test(real_source):
    """lb linking the data path, and lb including a runtime header, must fail."""
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        (root / "ARCHITECTURE.md").write_text((real_source / "ARCHITECTURE.md").read_text())
        (root / "lb").mkdir()
        (root / "lb" / "bad.cc").write_text('#include "proxy/runtime/gateway.h"\n')
        (root / "proxy" / "runtime").mkdir(parents=True)
        (root / "proxy" / "runtime" / "gateway.h").write_text("")
        (root / "lb" / "angle.hpp").write_text("#include <proxy/runtime/gateway.h>\n")
        (root / "lb" / "relative.cpp").write_text('#include "../proxy/runtime/gateway.h"\n')
        links = root / "links"
        links.mkdir()
        for name, layer in read_table(root).items():
            for t in layer["targets"]:
                (links / f"{t}.links").write_text("")
        (links / "meshgate_lb.links").write_text("meshgate_model\nmeshgate_proxy\n")
        layers = read_table(root)
        inc = check_includes(root, layers)
        lnk = check_links(links, layers)
    caught = {f for f in ("lb/bad.cc:1", "lb/angle.hpp:1", "lb/relative.cpp:1") if any(f in p for p in inc)}
    ok = len(caught) == 3 and any("meshgate_lb (lb) links meshgate_proxy" in p for p in lnk)
    print("self-test:", "the check catches bad includes (quoted, angled, relative) and a bad link" if ok else "FAILED",
          inc, lnk)
    return 0 if ok else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default=str(pathlib.Path(__file__).resolve().parent.parent))
    parser.add_argument("--links")
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    source = pathlib.Path(args.source)
    if args.self_test:
        return self_test(source)
    return run(source, pathlib.Path(args.links) if args.links else None)


if __name__ == "__main__":
    sys.exit(main())
