#!/usr/bin/env python3
"""node-times.py — gpux's per-node times beside ORT's, convolution by convolution.

  GPUX_PROFILE_NODES=1 gpux bench --backend cpu --threads 1 --runs 20 --profile CASE 2>gpux.txt
  PEER_PROFILE_KEEP=ort.json node bench/peer.mjs --threads 1 --runs 20 --profile CASE
  python3 bench/node-times.py gpux.txt[,gpux2.txt...] ort.json[,ort2.json...] [TOP]

Each node's median over the timed runs of a round (one file), the least of those over the rounds
(interleave the rounds: on a shared machine the time of a layer that reads from memory swings). Convolutions (gpux's Conv, FusedConv, ConvNHWC and ExpandDepthwise,
which pairs with two of ORT's; ORT's Conv and FusedConv) are paired in the order they run, which a chain of layers keeps, and checked by
output shape (channels and spatial size); the rest is summed per op type. Each pair also gets its segment: the
convolution and the nodes after it up to the next one (ORT's activations, squeeze-excitation's Mul and
pools, layout reorders; gpux's fold into its convolutions), which compares what a layer costs in all.
Prints the pairs where gpux's segment loses most first, then totals."""
import json, statistics, sys
from collections import defaultdict

CONVS_G = {'Conv', 'FusedConv', 'ConvNHWC', 'ExpandDepthwise'}
CONVS_O = {'Conv', 'FusedConv'}


def gpux_nodes(path):
    t = defaultdict(list); meta = {}
    for line in open(path):
        f = line.split()
        if len(f) != 6 or f[0] != 'node': continue
        i = int(f[1]); t[i].append(float(f[4])); meta[i] = (f[2], f[3], f[5])
    return [(meta[i][0], meta[i][1], meta[i][2], statistics.median(t[i])) for i in sorted(t)]


def ort_nodes(path):
    ev = [e for e in json.load(open(path)) if e.get('cat') == 'Node' and e['name'].endswith('_kernel_time')]
    runs = sorted(e['ts'] for e in json.load(open(path)) if e.get('name') == 'model_run')
    t = defaultdict(list); first = {}; meta = {}
    for e in ev:
        k = e['name'][:-len('_kernel_time')]
        t[k].append(e['dur'] / 1000)
        if runs and e['ts'] >= runs[-1]: first.setdefault(k, e['ts'])
        shp = e['args'].get('output_type_shape', [{}])[0]
        dims = next(iter(shp.values()), []) if shp else []
        meta[k] = (e['args'].get('op_name', '?'), 'x'.join(map(str, dims)) or '-')
    order = sorted(t, key=lambda k: first.get(k, 1e30))
    return [(k, meta[k][0], meta[k][1], statistics.median(t[k])) for k in order]


def chw(shape):  # channels and spatial size, layout aside (gpux's ConvNHWC is 1xHxWxC)
    d = [int(x) for x in shape.split('x')] if shape != '-' else []
    return tuple(sorted(d[1:])) if len(d) == 4 else tuple(d)


def segments(nodes, convs):  # per convolution, its time and that of the nodes up to the next one
    out = []
    for n in nodes:
        if n[1] in convs: out.append(0.0)
        if out: out[-1] += n[3]
    return out


def best(rounds):  # per node (by name), the least of the rounds' medians, in the first round's order
    by_name = [{n[0]: n[3] for n in r} for r in rounds]
    return [r[:3] + (min(m[r[0]] for m in by_name if r[0] in m),) for r in rounds[0]]


def main():
    g = best([gpux_nodes(f) for f in sys.argv[1].split(',')])
    o = best([ort_nodes(f) for f in sys.argv[2].split(',')])
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 25
    gc = [n for n in g if n[1] in CONVS_G]; oc = [n for n in o if n[1] in CONVS_O]
    gs, os_ = segments(g, CONVS_G), segments(o, CONVS_O)
    # a gpux.ExpandDepthwise is two of ORT's convolutions (the expansion and the depthwise one):
    # ORT's pair, and its two segments, against the one node
    oc2, os2, j = [], [], 0
    for a in gc:
        if a[1] == 'ExpandDepthwise' and j + 1 < len(oc):
            b = oc[j + 1]
            oc2.append((oc[j][0] + '+' + b[0], b[1], b[2], oc[j][3] + b[3])); os2.append(os_[j] + os_[j + 1]); j += 2
        elif j < len(oc):
            oc2.append(oc[j]); os2.append(os_[j]); j += 1
    oc, os_ = oc2, os2
    pairs = []
    for i, (a, b) in enumerate(zip(gc, oc)):
        pairs.append((gs[i] - os_[i], a, b, chw(a[2]) == chw(b[2]), gs[i], os_[i]))
    if len(gc) != len(oc): print(f'# convolutions: gpux {len(gc)}, ORT {len(oc)}: pairs past the first mismatch are suspect')
    print(f'{"gpux node":24} {"ORT node":34} {"shape":18} {"gpux":>7} {"ORT":>7} {"seg g":>7} {"seg O":>7} {"diff":>7}')
    for d, a, b, ok, sg, so in sorted(pairs, key=lambda p: -p[0])[:top]:
        print(f'{a[0][:24]:24} {b[0][:34]:34} {a[2]:18} {a[3]:7.3f} {b[3]:7.3f} {sg:7.3f} {so:7.3f} {d:+7.3f}'
              f'{"" if ok else " shape? " + b[2]}')
    print(f'convolutions: gpux {sum(n[3] for n in gc):.3f} ORT {sum(n[3] for n in oc):.3f} ms')
    rest = defaultdict(lambda: [0.0, 0.0])
    for n in g:
        if n[1] not in CONVS_G: rest[n[1]][0] += n[3]
    for n in o:
        if n[1] not in CONVS_O: rest[n[1]][1] += n[3]
    for k, (a, b) in sorted(rest.items(), key=lambda kv: -max(kv[1])):
        print(f'  {k:28} gpux {a:7.3f} ORT {b:7.3f}')
    print(f'total: gpux {sum(n[3] for n in g):.3f} ORT {sum(n[3] for n in o):.3f} ms (medians summed)')


if __name__ == '__main__':
    main()
