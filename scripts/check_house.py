#!/usr/bin/env python3
"""The house rules that a compiler does not check, checked on src/ and shaders/:

- rooms: no Rust file over 500 lines before its `#[cfg(test)]` module, no WGSL file over 500;
- cycles: no two modules import each other, directly or through others.

The import graph is of file-level modules. Edges come from `use` paths and inline
`crate::`/`super::` paths; a path that names an item a module re-exports (`pub use`,
`pub(crate) use`) is followed to where the item lives. Exits 1, naming each breach, if any.
Usage: scripts/check_house.py [SRC] [SHADERS]"""
import os, re, sys
from itertools import chain

args = [a for a in sys.argv[1:] if not a.startswith('-')]
root = args[0] if args else 'src'
shaders = args[1] if len(args) > 1 else 'shaders'
LIMIT = 500
mods = {}  # module path tuple -> file
for dp, _, fs in os.walk(root):
    for f in fs:
        if not f.endswith('.rs'): continue
        p = os.path.join(dp, f)
        rel = os.path.relpath(p, root)[:-3].split(os.sep)
        if rel[-1] in ('mod', 'lib', 'main'): rel = rel[:-1]
        mods[tuple(rel)] = p

def strip_tests(text):
    """The text without its `#[cfg(test)] mod name { ... }` blocks (braces matched naively)."""
    while m := re.search(r'^#\[cfg\(test\)\]\s*mod\s+\w+\s*\{', text, re.M):
        depth, i = 1, m.end()
        while depth and i < len(text):
            depth += {'{': 1, '}': -1}.get(text[i], 0)
            i += 1
        text = text[:m.start()] + text[i:]
    return text

src = {m: strip_tests(open(p).read()) for m, p in mods.items()}
breaches = []
for m, p in sorted(mods.items()):
    n = src[m].count('\n')
    if n > LIMIT:
        breaches.append(f'room: {p} has {n} lines outside its tests (limit {LIMIT})')
if os.path.isdir(shaders):
    for f in sorted(os.listdir(shaders)):
        if f.endswith('.wgsl'):
            n = open(os.path.join(shaders, f)).read().count('\n')
            if n > LIMIT:
                breaches.append(f'room: {shaders}/{f} has {n} lines (limit {LIMIT})')
# re-exports: module -> {name: target path tuple}
reexp = {}
use_re = re.compile(r'^\s*(pub(?:\([a-z]+\))?\s+)?use\s+([^;]+);', re.M)

def expand(tree):
    # expand a use tree like a::{b, c::{d, e as f}} into (path list, alias)
    tree = re.sub(r'\s+', '', tree)
    out = []
    def rec(prefix, t):
        if t.startswith('{') and t.endswith('}'):
            depth = 0; cur = ''
            for ch in t[1:-1] + ',':
                if ch == ',' and depth == 0:
                    if cur: rec(prefix, cur)
                    cur = ''
                    continue
                depth += ch == '{'; depth -= ch == '}'; cur += ch
            return
        i = t.find('::{')
        if i >= 0 and t.endswith('}'):
            rec(prefix + t[:i].split('::'), t[i + 2:]); return
        alias = None
        if 'as' in t and re.search(r'as[A-Za-z_]', t):
            t, alias = re.split(r'as(?=[A-Za-z_])', t, 1)[0], None
        out.append((prefix + t.split('::'), alias))
    rec([], tree)
    return out

def absolute(m, path):
    if path[0] == 'crate': return path[1:]
    if path[0] == 'self': return list(m) + path[1:]
    if path[0] == 'super':
        base = list(m)
        while path and path[0] == 'super':
            base = base[:-1]; path = path[1:]
        return base + path
    if tuple(list(m) + path[:1]) in mods: return list(m) + path
    return None  # external crate

for m, text in src.items():
    for pub, tree in use_re.findall(text):
        if not pub: continue
        for path, _ in expand(tree):
            a = absolute(m, path)
            if a is None: continue
            reexp.setdefault(m, {})[path[-1]] = tuple(a)

def resolve(a, depth=0):
    """The module file a path lands in, following re-exports."""
    a = list(a)
    for k in range(len(a), -1, -1):
        if tuple(a[:k]) in mods:
            mod = tuple(a[:k]); rest = a[k:]
            if rest and mod in reexp and rest[0] in reexp[mod] and depth < 10:
                tgt = reexp[mod][rest[0]]
                if tgt != tuple(a):
                    return resolve(list(tgt) + rest[1:], depth + 1)
            return mod
    return ()

edges = {m: set() for m in mods}
path_re = re.compile(r'\b((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+)')
for m, text in src.items():
    paths = []
    for pub, tree in use_re.findall(text):
        paths += [p for p, _ in expand(tree)]
    body = use_re.sub('', text)
    body = re.sub(r'//[^\n]*', '', body)
    paths += [p.split('::') for p in path_re.findall(body)]
    for path in paths:
        a = absolute(m, path)
        if a is None: continue
        t = resolve(a)
        if t != m and t != ():
            # a parent's `mod child;` is not an import; a child naming its parent's re-export
            # of itself resolves to itself and is dropped above
            edges[m].add(t)

# strongly connected components (Tarjan)
index = {}; low = {}; stack = []; on = set(); sccs = []; n = [0]
sys.setrecursionlimit(10000)
def strong(v):
    index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
    for w in edges[v]:
        if w not in mods: continue
        if w not in index:
            strong(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: sccs.append(comp)
for v in mods:
    if v not in index: strong(v)
name = lambda m: '::'.join(m) or 'crate'
if '-v' in sys.argv:
    for m in sorted(edges): print(name(m), '->', ', '.join(sorted(name(t) for t in edges[m])))
for c in sccs:
    breaches.append('cycle: ' + ' <-> '.join(sorted(name(m) for m in c)) + ''.join(
        f'\n    {name(m)} -> {name(t)}' for m in c for t in sorted(edges[m]) if t in c))
for b in breaches:
    print(b)
print(f'check_house: {len(mods)} Rust modules, {len(breaches)} breaches')
sys.exit(1 if breaches else 0)
