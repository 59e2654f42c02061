#!/usr/bin/env python3
"""edit-tuning.py — rewrites the GEMM tuning layer (gpux-tuning.json) of an image in a gpux store:
the document is changed by a Python expression over `doc` (a dict), or replaced by raw text; the
layer blob, the manifest and the tag are rewritten with correct digests, as a registry or a
person editing the image could.

    edit-tuning.py GPUX_HOME REF 'EXPR'        # EXPR edits `doc` in place
    edit-tuning.py GPUX_HOME REF --raw TEXT    # the layer becomes TEXT
"""
import hashlib, json, os, sys

home, ref = sys.argv[1:3]
TUNING = 'application/vnd.gpux.tuning.v1+json'
def norm(r):
    return r if ':' in r.rsplit('/', 1)[-1] else r + ':latest'
def put(data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(home, 'blobs', 'sha256', d), 'wb') as f:
        f.write(data)
    return 'sha256:' + d, len(data)
def blob(digest):
    with open(os.path.join(home, 'blobs', 'sha256', digest[7:]), 'rb') as f:
        return f.read()

index_path = os.path.join(home, 'index.json')
index = json.load(open(index_path))
entry = next(m for m in index['manifests']
             if m['annotations']['org.opencontainers.image.ref.name'] == norm(ref))
manifest = json.loads(blob(entry['digest']))
layer = next(l for l in manifest['layers'] if l['mediaType'] == TUNING)
if sys.argv[3] == '--raw':
    data = sys.argv[4].encode()
else:
    doc = json.loads(blob(layer['digest']))
    exec(sys.argv[3], {'doc': doc})
    data = json.dumps(doc).encode()
layer['digest'], layer['size'] = put(data)
entry['digest'], entry['size'] = put(json.dumps(manifest).encode())
json.dump(index, open(index_path, 'w'))
