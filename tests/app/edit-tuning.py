#!/usr/bin/env python3
"""edit-tuning.py — rewrites the GEMM tuning layer (gpux-tuning.json) of an image in a gpux store:
the document is changed by a Python expression over `doc` (a dict), or replaced by raw text; the
layer blob, the manifest and the tag are rewritten with correct digests, as a registry or a
person editing the image could.

    edit-tuning.py GPUX_HOME REF 'EXPR'        # EXPR edits `doc` in place
    edit-tuning.py GPUX_HOME REF --raw TEXT    # the layer becomes TEXT
"""
import json, sys
from image_store import Store

home, ref = sys.argv[1:3]
TUNING = 'application/vnd.gpux.tuning.v1+json'
store = Store(home)
entry = store.entry(ref)
manifest = json.loads(store.blob(entry['digest']))
layer = next(l for l in manifest['layers'] if l['mediaType'] == TUNING)
if sys.argv[3] == '--raw':
    data = sys.argv[4].encode()
else:
    doc = json.loads(store.blob(layer['digest']))
    exec(sys.argv[3], {'doc': doc})
    data = json.dumps(doc).encode()
layer['digest'], layer['size'] = store.put(data)
entry['digest'], entry['size'] = store.put(json.dumps(manifest).encode())
store.save_index()
