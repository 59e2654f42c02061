#!/usr/bin/env python3
"""check-layers.py — holds gpux's layering rule (docs/layers.md): a file includes and calls only
files of its own layer or of a lower one, and the gpux command (cli/) only the public API.

    check-layers.py [--pending FILE] ROOT [OBJECT.o ...]

ROOT is the source tree. It reads every #include "..." in ROOT/src and ROOT/cli; given the
compiled objects of src/ and cli/ (their paths end in <source path>.o, as CMake names them), it
also reads which file calls which through the symbol tables (`nm`), and checks that:
  - no file includes or calls upward, nor into a sibling layer of the same rank;
  - cli/ includes only gpux/gpux.h and its own headers, and calls only the public API;
  - no two .c files call each other in a circle, and no headers include each other in a circle;
  - every non-static name is gpux__ (internal) or a gpux_ name declared in include/gpux/gpux.h,
    and so is every type a header or source file declares (typedef or struct tag).
Each violation is one line on stdout; the exit status is 1 when there is any, else 0.
FILE lists violations, one line each as printed, that a change under way removes: they are
printed as pending and do not fail, but a listed line that no longer occurs fails, so the list
only shrinks.
"""
import os
import re
import subprocess
import sys

# The layers, lowest first; a file may use its own layer and any of a lower rank. Layers of the
# same rank are siblings and may not use each other. The key is a path under src/ ("backend/cpu"
# is the folder, "backend" the files directly in src/backend, i.e. the backend interface).
LAYERS = [
    ("core", 0),
    ("graph", 1),
    ("onnx", 2),
    ("ops", 3),
    ("backend", 4),
    ("backend/cpu", 5), ("backend/webgpu", 5),
    ("runtime", 6),
    ("prepost", 7), ("store", 7),
    ("spec", 8), ("registry", 8),
    ("app", 9),
    ("serve", 10),
]
RANK = dict(LAYERS)
PUBLIC_HEADER = "include/gpux/gpux.h"
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer_of(rel):
    """The layer of a path relative to ROOT: 'cli', 'public', a LAYERS key, or None."""
    if rel.startswith("cli/"):
        return "cli"
    if rel == PUBLIC_HEADER:
        return "public"
    if not rel.startswith("src/"):
        return None
    parts = rel[4:].split("/")
    if len(parts) > 2 and "/".join(parts[:2]) in RANK:
        return "/".join(parts[:2])
    return parts[0] if parts[0] in RANK else None


def may_use(user, used, verb):
    """None when a file of layer `user` may `verb` one of layer `used`, else why not."""
    if used == "public" or user == used:
        return None
    if user == "cli":
        return "cli may %s only the public API (gpux/gpux.h)" % verb
    if used == "cli":
        return "%s may not %s cli" % (user, verb)
    if user is None or used is None:
        return None
    if RANK[used] > RANK[user]:
        return "%s may not %s %s" % (user, verb, used)
    if RANK[used] == RANK[user]:
        return "%s may not %s %s (sibling layers)" % (user, verb, used)
    return None


def source_files(root):
    out = []
    for top in ("src", "cli"):
        for d, _, files in os.walk(os.path.join(root, top)):
            for f in files:
                if f.endswith((".c", ".h")):
                    out.append(os.path.relpath(os.path.join(d, f), root))
    return sorted(out)


def resolve(root, rel, name):
    """The ROOT-relative path an #include "name" in rel reads, or None."""
    for base in (os.path.dirname(rel), "src", "include"):
        p = os.path.normpath(os.path.join(base, name))
        if os.path.isfile(os.path.join(root, p)):
            return p
    return None


def cycles(graph):
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            pushed = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    pushed = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if pushed:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def check_includes(root, files, errors):
    graph = {}
    for rel in files:
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
            text = f.read()
        for name in INCLUDE_RE.findall(text):
            target = resolve(root, rel, name)
            if target is None:
                errors.append('%s includes "%s", which is not in the source tree' % (rel, name))
                continue
            why = may_use(layer_of(rel), layer_of(target), "include")
            if why:
                errors.append("%s includes %s: %s" % (rel, name, why))
            if rel.endswith(".h") and target.endswith(".h"):
                graph.setdefault(rel, set()).add(target)
    for comp in cycles(graph):
        errors.append("headers include each other in a circle: %s" % ", ".join(comp))


def public_names(root):
    path = os.path.join(root, PUBLIC_HEADER)
    with open(path, encoding="utf-8") as f:
        return set(re.findall(r"\b(gpux_[A-Za-z0-9_]+)\s*\(", f.read()))


TYPE_RE = re.compile(r"(?:\bstruct\s+(gpux_[A-Za-z0-9_]+)\s*\{|\}\s*(gpux_[A-Za-z0-9_]+)\s*;"
                     r"|\btypedef\b[^;{]*?\b(gpux_[A-Za-z0-9_]+)\s*;"
                     r"|\btypedef\b[^;{(]*\(\s*\*\s*(gpux_[A-Za-z0-9_]+)\s*\))")


def check_types(root, files, errors):
    """Types declared outside the public header carry the internal prefix too."""
    with open(os.path.join(root, PUBLIC_HEADER), encoding="utf-8") as f:
        public = set(re.findall(r"\b(gpux_[A-Za-z0-9_]+)\b", f.read()))
    for rel in files:
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
            text = f.read()
        seen = set()
        for m in TYPE_RE.finditer(text):
            name = next(g for g in m.groups() if g)
            if name.startswith("gpux__") or name in public or name in seen:
                continue
            seen.add(name)
            errors.append("%s declares the type %s, which is not in %s: internal names start with gpux__"
                          % (rel, name, PUBLIC_HEADER))


def read_symbols(objects):
    """{object: ({defined global symbol: nm kind}, {undefined symbols})}, from one nm run."""
    out = subprocess.run(["nm", "-P", "-g", "-A"] + objects, check=True, capture_output=True,
                         text=True).stdout
    table = {obj: ({}, set()) for obj in objects}
    for line in out.splitlines():
        obj, _, rest = line.rpartition(": ")
        fields = rest.split()
        if obj not in table or len(fields) < 2:
            continue
        (name, kind), (defined, undefined) = fields[:2], table[obj]
        if kind == "U":
            undefined.add(name)
        elif (kind.isupper() and kind != "N") or kind == "i":  # i: GNU indirect function
            defined[name] = kind
    return table


def check_calls(root, files, objects, errors):
    by_suffix = {"/" + rel + ".o": rel for rel in files if rel.endswith(".c")}
    defined_in, kind_of, uses = {}, {}, {}
    symbols = read_symbols(objects)
    for obj in objects:
        norm = obj.replace(os.sep, "/")
        rel = next((r for s, r in by_suffix.items() if norm.endswith(s)), None)
        if rel is None:
            errors.append("%s: object of no source file under src/ or cli/" % obj)
            continue
        defined, undefined = symbols[obj]
        uses[rel] = undefined
        for name in defined:
            if name in defined_in and defined_in[name] != rel:
                errors.append("%s defines %s, as %s does" % (rel, name, defined_in[name]))
            defined_in[name] = rel
            kind_of[name] = defined[name]
    public = public_names(root)
    for name, rel in sorted(defined_in.items()):
        if rel.startswith("cli/") or name.startswith("gpux__") or name in public:
            continue
        if name.startswith("gpux_"):
            errors.append("%s defines %s, which is not in %s: internal names start with gpux__"
                          % (rel, name, PUBLIC_HEADER))
        else:
            errors.append("%s defines %s: make it static, or name it gpux__%s" % (rel, name, name))
    graph = {}
    for rel, undefined in sorted(uses.items()):
        for name in sorted(undefined):
            target = defined_in.get(name)
            if target is None or target == rel:
                continue
            user, used = layer_of(rel), layer_of(target)
            if user == "cli" and name in public:
                used = "public"
            why = may_use(user, used, "call into")
            if why:
                errors.append("%s calls %s (%s): %s" % (rel, name, target, why))
            # A reference to data only (a family's op table listed in a registry) is how a
            # table collects its entries, not a call: it does not count towards a circle.
            if kind_of[name] in "TWi":
                graph.setdefault(rel, set()).add(target)
    for comp in cycles(graph):
        errors.append("source files call each other in a circle: %s" % ", ".join(comp))


def read_pending(path):
    with open(path, encoding="utf-8") as f:
        return [l.strip() for l in f if l.strip() and not l.lstrip().startswith("#")]


def main(argv):
    args = argv[1:]
    pending = []
    if len(args) >= 2 and args[0] == "--pending":
        pending, pending_path, args = read_pending(args[1]), args[1], args[2:]
    if not args:
        sys.stderr.write("usage: check-layers.py [--pending FILE] ROOT [OBJECT.o ...]\n")
        return 2
    root, objects = args[0], [o for a in args[1:] for o in a.split(";") if o]
    files = source_files(root)
    errors = []
    for rel in files:
        if layer_of(rel) is None:
            errors.append("%s is in no layer (see LAYERS in %s)" % (rel, os.path.basename(argv[0])))
    check_includes(root, files, errors)
    check_types(root, files, errors)
    if objects:
        check_calls(root, files, objects, errors)
    failed = n_pending = 0
    for e in errors:
        if e in pending:
            print("pending: " + e)
            n_pending += 1
        else:
            print(e)
            failed += 1
    for p in pending:
        if p not in errors:
            print("%s: no longer occurs, remove it from the list: %s" % (pending_path, p))
            failed += 1
    print("check-layers: %d files, %d objects, %d violations (%d pending)"
          % (len(files), len(objects), failed, n_pending))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
