#!/usr/bin/env python3
"""make-tokenizer.py — writes tokenizer.json: a byte-level BPE tokenizer (the GPT-2 scheme) with a
300-token vocabulary for the tiny untrained decoder in this folder: ids 0-255 are the bytes (id =
byte value), 256-298 are merges learnt from the sentences below, 299 is <|endoftext|>.
    python3 make-tokenizer.py > tokenizer.json
"""
import json, re
from collections import Counter

def bytes_to_unicode():
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cps, n = {}, 0
    for b in range(256):
        if b in keep:
            cps[b] = chr(b)
        else:
            cps[b] = chr(256 + n)
            n += 1
    return cps

TEXT = """the cat sat on the mat and the dog ran in the park . once upon a time there was a
small robot that wanted to see the sea . it rolled out of the city and into the green fields ,
where the wind was warm and the sun was bright . at the end of the day it reached the shore"""

def main():
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    words = Counter()
    for w in re.findall(r" ?[a-z]+| ?[^a-z\s]+", TEXT.replace("\n", " ")):
        words[tuple(b2u[b] for b in w.encode())] += 1
    merges = []
    while len(vocab) < 299:
        pairs = Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        merges.append(f"{a} {b}")
        vocab[a + b] = len(vocab)
        new = Counter()
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(a + b); i += 2
                else:
                    out.append(w[i]); i += 1
            new[tuple(out)] += c
        words = new
    vocab["<|endoftext|>"] = 299
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    tok = {"version": "1.0", "truncation": None, "padding": None,
           "added_tokens": [{"id": 299, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                             "rstrip": False, "normalized": True, "special": True}],
           "normalizer": None, "pre_tokenizer": byte_level, "post_processor": byte_level, "decoder": byte_level,
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                     "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
                     "vocab": vocab, "merges": merges}}
    print(json.dumps(tok, ensure_ascii=False))

main()
