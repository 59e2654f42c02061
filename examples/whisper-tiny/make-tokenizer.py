#!/usr/bin/env python3
"""make-tokenizer.py — writes tokenizer.json for the tiny untrained Whisper in this folder: the
byte-level BPE of examples/tiny-gpt (ids 0-255 the bytes, 256-298 merges, 299 <|endoftext|>) with
Whisper's special tokens added after it, as a Whisper tokenizer.json has them:
300 <|startoftranscript|>, 301 <|en|>, 302 <|de|>, 303 <|translate|>, 304 <|transcribe|>,
305 <|notimestamps|>.
    python3 make-tokenizer.py > tokenizer.json
"""
import json, os

here = os.path.dirname(os.path.abspath(__file__))
tok = json.load(open(os.path.join(here, "..", "tiny-gpt", "tokenizer.json"), encoding="utf-8"))
for i, content in enumerate(["<|startoftranscript|>", "<|en|>", "<|de|>", "<|translate|>", "<|transcribe|>",
                             "<|notimestamps|>"], start=300):
    tok["added_tokens"].append({"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
                                "normalized": False, "special": True})
print(json.dumps(tok, ensure_ascii=False))
