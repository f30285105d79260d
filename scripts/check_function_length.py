#!/usr/bin/env python3
"""Fails when a function body in the given folders is longer than --max lines.

A function is a brace block opened at namespace or class scope after a
parameter list: `...) {`, `...) const {`, `...) override {`, a constructor's
initialiser list, and so on. Lambdas and nested blocks count towards the
function they sit in. Comments and string literals are blanked first, so a
brace inside either does not count. Length is the number of lines from the
opening brace to the closing one, both included.
"""
import argparse
import pathlib
import re
import sys

CONTROL = re.compile(r"\b(if|for|while|switch|catch|do|else|try)\s*(\(|$)")
SCOPE = re.compile(r"\b(namespace|class|struct|union|enum)\b[^;()]*$")


def blank(text):
    """Replaces comments and string/char literals by spaces, keeping newlines."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == 'R' and text.startswith('R"', i):
            m = re.match(r'R"([^(]*)\(', text[i:])
            if not m:
                out.append(c); i += 1; continue
            end = ")" + m.group(1) + '"'
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c in "\"'":
            # A digit separator (1'000) is not a char literal.
            if c == "'" and i > 0 and text[i - 1].isalnum() and i + 1 < n and text[i + 1].isalnum():
                out.append(c); i += 1; continue
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(c + " " * (j - i - 2) + (c if j - i >= 2 else ""))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


INIT_BRACE = re.compile(r"\)\s*(noexcept\s*)?:\s*\S.*[\w>]\s*$")  # S::S() : a_{1}, b_{
LAMBDA = re.compile(r"\[[^\]]*\]\s*(\([^)]*\))?\s*(mutable|constexpr|noexcept|->[^{]*|\s)*$")


def classify(h, inside_function):
    """The kind of block a `{` opens after head `h`."""
    if inside_function:
        return "block"
    if INIT_BRACE.search(h):
        return "init"  # a member's brace initialiser, inside a constructor's head
    if SCOPE.search(h) or h.endswith('extern "C"') or h == "":
        return "scope"
    if re.search(r"\)\s*try$", h) or LAMBDA.search(h):
        return "function"
    if ")" in h and not CONTROL.search(h) and not h.endswith("="):
        return "function"
    if re.search(r"\)\s*(const|noexcept|override|final|mutable|->[^{]*)*\s*$", h) or ":" in h:
        return "function" if "(" in h else "scope"
    return "block"


def functions(path):
    text = blank(path.read_text(encoding="utf-8", errors="replace"))
    text = re.sub(r"^\s*#.*$", "", text, flags=re.M)  # preprocessor lines
    stack = []  # (kind, start_line, name, head before the brace)
    head = ""   # text since the last ; { or } at this level
    line = 1
    for c in text:
        if c == "\n":
            line += 1
            head += " "
            continue
        if c == "{":
            h = head.strip()
            kind = classify(h, any(k == "function" for k, _, _, _ in stack))
            stack.append((kind, line, re.sub(r"\s+", " ", h)[-90:], head))
            head = ""
        elif c == "}":
            if stack:
                kind, start, name, saved = stack.pop()
                if kind == "function":
                    yield name, start, line
                # After a member's brace initialiser the constructor's head goes on.
                head = saved + "{}" if kind == "init" else ""
            else:
                head = ""
        elif c == ";":
            head = ""
        else:
            head += c


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("roots", nargs="+")
    parser.add_argument("--max", type=int, default=80)
    args = parser.parse_args()
    long_ones = []
    for root in args.roots:
        for path in sorted(pathlib.Path(root).rglob("*")):
            if path.suffix not in (".cc", ".h", ".cpp", ".hpp"):
                continue
            for name, start, end in functions(path):
                length = end - start + 1
                if length > args.max:
                    long_ones.append((length, f"{path}:{start}", name))
    for length, where, name in sorted(long_ones, reverse=True):
        print(f"{where}: {length} lines: {name}")
    if long_ones:
        print(f"{len(long_ones)} function(s) over {args.max} lines")
        return 1
    print(f"no function over {args.max} lines in {' '.join(args.roots)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
