/* tokenizer.c — text tokenizers for language models: WordPiece (BERT's BasicTokenizer and
 * WordpieceTokenizer, from vocab.txt, a vocab.json or a tokenizer.json) and byte-level BPE (GPT-2
 * style, from a Hugging Face tokenizer.json), with the special-token template, truncation and
 * padding that turn a text (or a pair) into input_ids / attention_mask / token_type_ids. */
#include "prepost/prepost-impl.h"
#include <cjson/cJSON.h>
#include <stdio.h>

/* ---- a string -> int64 hash map (open addressing) ---- */

typedef struct {
  char *key;                     /* NUL-terminated copy; NULL = empty slot */
  size_t klen;
  int64_t val;
} hslot;

typedef struct {
  hslot *slots;
  size_t cap, n;                 /* cap: a power of two */
} hmap;

static uint64_t hash_bytes(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}

static void hmap_free(hmap *m) {
  for (size_t i = 0; i < m->cap; i++) free(m->slots[i].key);
  free(m->slots);
  memset(m, 0, sizeof *m);
}

static hslot *hmap_find(const hmap *m, const char *k, size_t klen) {
  if (!m->cap) return NULL;
  size_t i = (size_t)hash_bytes(k, klen) & (m->cap - 1);
  for (;;) {
    hslot *s = &m->slots[i];
    if (!s->key || (s->klen == klen && memcmp(s->key, k, klen) == 0)) return s;
    i = (i + 1) & (m->cap - 1);
  }
}

static int hmap_grow(hmap *m) {
  size_t cap = m->cap ? m->cap * 2 : 1024;
  hslot *old = m->slots;
  size_t ocap = m->cap;
  m->slots = gpux__calloc(cap, sizeof *m->slots);
  if (!m->slots) {
    m->slots = old;
    return GPUX_E_NOMEM;
  }
  m->cap = cap;
  for (size_t i = 0; i < ocap; i++)
    if (old[i].key) *hmap_find(m, old[i].key, old[i].klen) = old[i];
  free(old);
  return 0;
}

/* Sets k -> v (a later value for the same key replaces the earlier, as a Python dict does). */
static int hmap_put(hmap *m, const char *k, size_t klen, int64_t v) {
  if ((m->n + 1) * 2 > m->cap && hmap_grow(m)) return GPUX_E_NOMEM;
  hslot *s = hmap_find(m, k, klen);
  if (!s->key) {
    s->key = gpux__strndup(k, klen);
    if (!s->key) return GPUX_E_NOMEM;
    s->klen = klen;
    m->n++;
  }
  s->val = v;
  return 0;
}

static int64_t hmap_get(const hmap *m, const char *k, size_t klen) {
  hslot *s = hmap_find(m, k, klen);
  return s && s->key ? s->val : -1;
}

/* ---- the tokenizer ---- */

/* One part of a special-token template: a special token, or the sequence A (0) or B (1). */
typedef struct {
  int seq;                       /* -1: special token `id`; 0: A; 1: B */
  int64_t id;
  int type_id;
} tpl_part;

typedef struct {
  int n;
  tpl_part p[8];
} tpl;

typedef struct {
  char *text;
  size_t len;
  int64_t id;
  int special;
} added_token;

struct gpux__tokenizer {
  int kind;                      /* gpux__tokenizer_kind */
  int64_t n_vocab;
  char **vocab;                  /* (n_vocab) id -> token; NULL for unused ids */
  hmap ids;                      /* token -> id */
  /* WordPiece */
  gpux__wordpiece_options wp;
  int clean_text;                /* drop control characters, map white space to ' ' */
  int word_start_prefix;         /* vocab marks word starts with U+2581, not continuations */
  char cont_prefix[16];          /* "##" (continuation) or "\xe2\x96\x81" (word start) */
  int64_t unk_id, pad_id;
  /* byte-level BPE */
  hmap merges;                   /* "left right" -> rank */
  uint32_t byte_cp[256];         /* GPT-2 bytes_to_unicode */
  int16_t cp_byte[324];          /* its inverse (code points < 324), -1 elsewhere */
  int add_prefix_space;
  /* both */
  int n_added;
  added_token *added;            /* matched verbatim in the text, longest first */
  tpl single, pair;
};

void gpux__wordpiece_options_default(gpux__wordpiece_options *o) {
  o->lowercase = 1;
  o->strip_accents = -1;
  o->split_cjk = 1;
  o->max_chars_per_word = 100;
}

void gpux__encode_options_default(gpux__encode_options *o) {
  memset(o, 0, sizeof *o);
  o->add_special_tokens = 1;
  o->truncation = 1;
}

void gpux__tokenizer_free(gpux__tokenizer *t) {
  if (!t) return;
  for (int64_t i = 0; i < t->n_vocab; i++) free(t->vocab[i]);
  free(t->vocab);
  hmap_free(&t->ids);
  hmap_free(&t->merges);
  for (int i = 0; i < t->n_added; i++) free(t->added[i].text);
  free(t->added);
  free(t);
}

int gpux__tokenizer_kind_of(const gpux__tokenizer *t) { return t->kind; }
int64_t gpux__tokenizer_vocab_size(const gpux__tokenizer *t) { return t->n_vocab; }

int64_t gpux__tokenizer_token_id(const gpux__tokenizer *t, const char *token) {
  return hmap_get(&t->ids, token, strlen(token));
}

const char *gpux__tokenizer_id_token(const gpux__tokenizer *t, int64_t id) {
  return id >= 0 && id < t->n_vocab ? t->vocab[id] : NULL;
}

static gpux__tokenizer *tok_new(int kind) {
  gpux__tokenizer *t = gpux__calloc(1, sizeof *t);
  if (!t) return NULL;
  t->kind = kind;
  gpux__wordpiece_options_default(&t->wp);
  t->clean_text = 1;
  t->unk_id = t->pad_id = -1;
  strcpy(t->cont_prefix, "##");
  return t;
}

/* Records token <-> id; the id table grows as needed. */
static int vocab_set(gpux__tokenizer *t, const char *tok, size_t len, int64_t id, int64_t *cap) {
  if (id < 0 || id > 50000000)
    return gpux__error(GPUX_E_PARSE, "token id %lld is out of range", (long long)id);
  if (id >= *cap) {
    int64_t nc = *cap ? *cap : 1024;
    while (nc <= id) nc *= 2;
    char **p = gpux__realloc(t->vocab, sizeof(char *) * (size_t)nc);
    if (!p) return GPUX_E_NOMEM;
    memset(p + *cap, 0, sizeof(char *) * (size_t)(nc - *cap));
    t->vocab = p;
    *cap = nc;
  }
  if (id >= t->n_vocab) t->n_vocab = id + 1;
  if (!t->vocab[id]) { /* the first token given an id names it */
    t->vocab[id] = gpux__strndup(tok, len);
    if (!t->vocab[id]) return GPUX_E_NOMEM;
  }
  return hmap_put(&t->ids, tok, len, id);
}

static int add_token(gpux__tokenizer *t, const char *text, int64_t id, int special) {
  if (!text[0]) return 0;
  for (int i = 0; i < t->n_added; i++)
    if (strcmp(t->added[i].text, text) == 0) return 0;
  added_token *p = gpux__realloc(t->added, sizeof *p * (size_t)(t->n_added + 1));
  if (!p) return GPUX_E_NOMEM;
  t->added = p;
  added_token *a = &t->added[t->n_added];
  a->text = gpux__strdup(text);
  if (!a->text) return GPUX_E_NOMEM;
  a->len = strlen(text);
  a->id = id;
  a->special = special;
  t->n_added++;
  return 0;
}

static void tpl_bert(gpux__tokenizer *t, int64_t cls, int64_t sep) {
  t->single = (tpl){3, {{-1, cls, 0}, {0, 0, 0}, {-1, sep, 0}}};
  t->pair = (tpl){5, {{-1, cls, 0}, {0, 0, 0}, {-1, sep, 0}, {1, 0, 1}, {-1, sep, 1}}};
}

/* ---- loading WordPiece vocabularies ---- */

static int json_error(const char *name, const char *what) {
  return gpux__error(GPUX_E_PARSE, "%s: %s", name ? name : "vocabulary", what);
}

/* Finishes a WordPiece tokenizer: the continuation convention, the special tokens. */
static int wordpiece_finish(gpux__tokenizer *t, const char *name) {
  int64_t hash = 0, bar = 0;
  for (int64_t i = 0; i < t->n_vocab; i++) {
    const char *v = t->vocab[i];
    if (!v) continue;
    if (strncmp(v, "##", 2) == 0 && v[2]) hash++;
    else if (strncmp(v, "\xe2\x96\x81", 3) == 0) bar++;
  }
  if (!hash && bar * 10 > t->n_vocab) {
    t->word_start_prefix = 1;
    strcpy(t->cont_prefix, "\xe2\x96\x81");
  }
  const char *need[] = {"[UNK]", "[CLS]", "[SEP]"};
  int64_t id[3];
  for (int i = 0; i < 3; i++) {
    id[i] = gpux__tokenizer_token_id(t, need[i]);
    if (id[i] < 0 && t->unk_id >= 0 && i == 0) id[i] = t->unk_id;
    if (id[i] < 0)
      return gpux__error(GPUX_E_PARSE, "%s: the vocabulary has no %s token", name ? name : "vocabulary",
                         need[i]);
  }
  t->unk_id = id[0];
  if (t->pad_id < 0) t->pad_id = gpux__tokenizer_token_id(t, "[PAD]");
  if (t->pad_id < 0) t->pad_id = 0;
  if (!t->single.n) tpl_bert(t, id[1], id[2]);
  const char *specials[] = {"[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"};
  for (size_t i = 0; i < GPUX__ARRAY_LEN(specials); i++) {
    int64_t sid = gpux__tokenizer_token_id(t, specials[i]);
    int rc = sid >= 0 ? add_token(t, specials[i], sid, 1) : 0;
    if (rc) return rc;
  }
  return 0;
}

int gpux__wordpiece_load_buffer(const void *bytes, size_t len, const char *name,
                                const gpux__wordpiece_options *o, gpux__tokenizer **out) {
  *out = NULL;
  gpux__tokenizer *t = tok_new(GPUX__TOK_WORDPIECE);
  if (!t) return GPUX_E_NOMEM;
  if (o) t->wp = *o;
  const char *s = bytes;
  size_t i = 0;
  if (len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) i = 3;
  size_t first = i;
  while (first < len && (s[first] == ' ' || s[first] == '\n' || s[first] == '\r' || s[first] == '\t')) first++;
  int64_t cap = 0;
  int rc = 0;
  /* JSON: '{' or '[' then '"' or the closing bracket ("[PAD]" starts many a vocab.txt) */
  size_t second = first + 1;
  while (second < len && (s[second] == ' ' || s[second] == '\n' || s[second] == '\r' || s[second] == '\t'))
    second++;
  int is_json = first < len && (s[first] == '{' || s[first] == '[') && second < len &&
                (s[second] == '"' || s[second] == (s[first] == '{' ? '}' : ']'));
  if (is_json) {
    cJSON *j = cJSON_ParseWithLength(s + i, len - i);
    if (!j) {
      rc = json_error(name, "malformed JSON vocabulary");
      goto done;
    }
    if (cJSON_IsArray(j)) {
      int64_t id = 0;
      for (cJSON *e = j->child; e && !rc; e = e->next, id++) {
        if (!cJSON_IsString(e)) rc = json_error(name, "vocabulary array holds a non-string");
        else rc = vocab_set(t, e->valuestring, strlen(e->valuestring), id, &cap);
      }
    } else {
      cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "model");
      if (v) v = cJSON_GetObjectItemCaseSensitive(v, "vocab"); /* tolerate a tokenizer.json */
      if (!v) v = j;
      for (cJSON *e = v->child; e && !rc; e = e->next) {
        if (!cJSON_IsNumber(e) || !e->string) rc = json_error(name, "vocabulary object maps a token to a non-number");
        else rc = vocab_set(t, e->string, strlen(e->string), (int64_t)e->valuedouble, &cap);
      }
    }
    cJSON_Delete(j);
  } else {
    int64_t id = 0;
    while (i < len && !rc) {
      const char *nl = memchr(s + i, '\n', len - i);
      size_t end = nl ? (size_t)(nl - s) : len, e = end;
      if (e > i && s[e - 1] == '\r') e--;
      if (memchr(s + i, 0, e - i)) {
        rc = gpux__error(GPUX_E_PARSE, "%s: NUL byte on line %lld", name ? name : "vocab.txt",
                         (long long)id + 1);
        break;
      }
      rc = vocab_set(t, s + i, e - i, id++, &cap);
      i = end + 1;
    }
  }
  if (!rc && t->n_vocab == 0) rc = gpux__error(GPUX_E_PARSE, "%s: empty vocabulary", name ? name : "vocabulary");
  if (!rc) rc = wordpiece_finish(t, name);
done:
  if (rc) {
    gpux__tokenizer_free(t);
    return rc;
  }
  *out = t;
  return 0;
}

int gpux__wordpiece_load(const char *path, const gpux__wordpiece_options *o, gpux__tokenizer **out) {
  *out = NULL;
  char *data;
  size_t len;
  int rc = gpux__pp_read_file(path, &data, &len);
  if (rc) return rc;
  const char *base = strrchr(path, '/');
  rc = gpux__wordpiece_load_buffer(data, len, base ? base + 1 : path, o, out);
  free(data);
  return rc;
}

/* ---- loading tokenizer.json ---- */

static void gpt2_byte_map(gpux__tokenizer *t) {
  int n = 0;
  for (int i = 0; i < 324; i++) t->cp_byte[i] = -1;
  for (int b = 0; b < 256; b++) {
    int keep = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    t->byte_cp[b] = keep ? (uint32_t)b : (uint32_t)(256 + n++);
    t->cp_byte[t->byte_cp[b]] = (int16_t)b;
  }
}

static const cJSON *jget(const cJSON *o, const char *k) {
  return o ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

static int jbool(const cJSON *o, const char *k, int dflt) {
  const cJSON *v = jget(o, k);
  if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
  return dflt;
}

/* Finds a component of `type` in o or in o's "pretokenizers"/"processors"/"normalizers" list. */
static const cJSON *find_typed(const cJSON *o, const char *type) {
  if (!cJSON_IsObject(o)) return NULL;
  const cJSON *ty = jget(o, "type");
  if (cJSON_IsString(ty) && strcmp(ty->valuestring, type) == 0) return o;
  const char *lists[] = {"pretokenizers", "processors", "normalizers"};
  for (int i = 0; i < 3; i++) {
    const cJSON *l = jget(o, lists[i]);
    const cJSON *e;
    cJSON_ArrayForEach(e, l) {
      const cJSON *r = find_typed(e, type);
      if (r) return r;
    }
  }
  return NULL;
}

static int64_t special_id(const gpux__tokenizer *t, const cJSON *pair) {
  /* ["</s>", 2] as RobertaProcessing and BertProcessing write them */
  const cJSON *id = cJSON_GetArrayItem(pair, 1), *tok = cJSON_GetArrayItem(pair, 0);
  if (cJSON_IsNumber(id)) return (int64_t)id->valuedouble;
  if (cJSON_IsString(tok)) return gpux__tokenizer_token_id(t, tok->valuestring);
  return -1;
}

static int parse_template_list(const gpux__tokenizer *t, const cJSON *list, const cJSON *specials,
                               tpl *out, const char *name) {
  out->n = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, list) {
    if (out->n == (int)GPUX__ARRAY_LEN(out->p))
      return gpux__error(GPUX_E_UNSUPPORTED, "%s: post_processor template is too long", name);
    const cJSON *sp = jget(e, "SpecialToken"), *sq = jget(e, "Sequence");
    tpl_part *p = &out->p[out->n];
    const cJSON *body = sp ? sp : sq;
    const cJSON *tid = jget(body, "type_id"), *id = jget(body, "id");
    if (!body || !cJSON_IsString(id))
      return gpux__error(GPUX_E_PARSE, "%s: malformed post_processor template", name);
    p->type_id = cJSON_IsNumber(tid) ? (int)tid->valuedouble : 0;
    if (sq) {
      p->seq = strcmp(id->valuestring, "B") == 0 ? 1 : 0;
      out->n++;
      continue;
    }
    p->seq = -1;
    const cJSON *def = jget(specials, id->valuestring), *ids = jget(def, "ids");
    int nids = cJSON_GetArraySize(ids);
    if (nids == 1 && cJSON_IsNumber(cJSON_GetArrayItem(ids, 0)))
      p->id = (int64_t)cJSON_GetArrayItem(ids, 0)->valuedouble;
    else if (nids == 0) p->id = gpux__tokenizer_token_id(t, id->valuestring);
    else return gpux__error(GPUX_E_UNSUPPORTED, "%s: special token %s of several ids", name, id->valuestring);
    if (p->id < 0)
      return gpux__error(GPUX_E_PARSE, "%s: special token %s is not in the vocabulary", name,
                         id->valuestring);
    out->n++;
  }
  return 0;
}

static int parse_post_processor(gpux__tokenizer *t, const cJSON *pp, const char *name) {
  const cJSON *tp = find_typed(pp, "TemplateProcessing");
  if (tp) {
    int rc = parse_template_list(t, jget(tp, "single"), jget(tp, "special_tokens"), &t->single, name);
    if (!rc) rc = parse_template_list(t, jget(tp, "pair"), jget(tp, "special_tokens"), &t->pair, name);
    return rc;
  }
  const cJSON *rb = find_typed(pp, "RobertaProcessing"), *bp = find_typed(pp, "BertProcessing");
  const cJSON *p = rb ? rb : bp;
  if (!p) return 0;
  int64_t cls = special_id(t, jget(p, "cls")), sep = special_id(t, jget(p, "sep"));
  if (cls < 0 || sep < 0) return gpux__error(GPUX_E_PARSE, "%s: post_processor cls/sep are malformed", name);
  if (bp && !rb) tpl_bert(t, cls, sep);
  else { /* <s> A </s> / <s> A </s> </s> B </s>, all type 0 */
    t->single = (tpl){3, {{-1, cls, 0}, {0, 0, 0}, {-1, sep, 0}}};
    t->pair = (tpl){6, {{-1, cls, 0}, {0, 0, 0}, {-1, sep, 0}, {-1, sep, 0}, {1, 0, 0}, {-1, sep, 0}}};
  }
  return 0;
}

int gpux__tokenizer_json_load_buffer(const void *bytes, size_t len, const char *name,
                                     gpux__tokenizer **out) {
  *out = NULL;
  if (!name) name = "tokenizer.json";
  cJSON *j = cJSON_ParseWithLength(bytes, len);
  if (!j) return gpux__error(GPUX_E_PARSE, "%s: malformed JSON", name);
  gpux__tokenizer *t = NULL;
  int rc = 0;
  int64_t cap = 0;
  const cJSON *model = jget(j, "model"), *type = jget(model, "type"), *vocab = jget(model, "vocab");
  if (!cJSON_IsObject(model) || !cJSON_IsObject(vocab)) {
    rc = gpux__error(GPUX_E_PARSE, "%s: no model.vocab object", name);
    goto done;
  }
  const char *ty = cJSON_IsString(type) ? type->valuestring : (jget(model, "merges") ? "BPE" : "");
  int is_bpe = strcmp(ty, "BPE") == 0, is_wp = strcmp(ty, "WordPiece") == 0;
  if (!is_bpe && !is_wp) {
    rc = gpux__error(GPUX_E_UNSUPPORTED, "%s: tokenizer model \"%s\" is not supported (WordPiece and BPE are)",
                     name, ty);
    goto done;
  }
  t = tok_new(is_bpe ? GPUX__TOK_BPE : GPUX__TOK_WORDPIECE);
  if (!t) {
    rc = GPUX_E_NOMEM;
    goto done;
  }
  for (const cJSON *e = vocab->child; e && !rc; e = e->next) {
    if (!cJSON_IsNumber(e)) rc = gpux__error(GPUX_E_PARSE, "%s: model.vocab maps \"%s\" to a non-number", name, e->string);
    else rc = vocab_set(t, e->string, strlen(e->string), (int64_t)e->valuedouble, &cap);
  }
  const cJSON *e;
  cJSON_ArrayForEach(e, jget(j, "added_tokens")) {
    const cJSON *c = jget(e, "content"), *id = jget(e, "id");
    if (rc) break;
    if (!cJSON_IsString(c) || !cJSON_IsNumber(id)) {
      rc = gpux__error(GPUX_E_PARSE, "%s: malformed added_tokens entry", name);
      break;
    }
    int64_t iid = (int64_t)id->valuedouble;
    if (hmap_get(&t->ids, c->valuestring, strlen(c->valuestring)) < 0)
      rc = vocab_set(t, c->valuestring, strlen(c->valuestring), iid, &cap);
    if (!rc) rc = add_token(t, c->valuestring, iid, jbool(e, "special", 0));
  }
  if (rc) goto done;
  const cJSON *unk = jget(model, "unk_token");
  if (cJSON_IsString(unk)) t->unk_id = gpux__tokenizer_token_id(t, unk->valuestring);
  const cJSON *pad = jget(jget(j, "padding"), "pad_id");
  if (cJSON_IsNumber(pad)) t->pad_id = (int64_t)pad->valuedouble;
  if (is_wp) {
    const cJSON *cp = jget(model, "continuing_subword_prefix"), *mx = jget(model, "max_input_chars_per_word");
    if (cJSON_IsString(cp) && strcmp(cp->valuestring, "##") != 0) {
      rc = gpux__error(GPUX_E_UNSUPPORTED, "%s: WordPiece continuing_subword_prefix \"%s\" (only \"##\")",
                       name, cp->valuestring);
      goto done;
    }
    if (cJSON_IsNumber(mx)) t->wp.max_chars_per_word = (int)mx->valuedouble;
    const cJSON *norm = jget(j, "normalizer"), *bn = find_typed(norm, "BertNormalizer");
    if (bn) {
      t->clean_text = jbool(bn, "clean_text", 1);
      t->wp.split_cjk = jbool(bn, "handle_chinese_chars", 1);
      t->wp.lowercase = jbool(bn, "lowercase", 1);
      const cJSON *sa = jget(bn, "strip_accents");
      t->wp.strip_accents = cJSON_IsBool(sa) ? cJSON_IsTrue(sa) : -1;
    } else {
      t->clean_text = 0;
      t->wp.split_cjk = 0;
      t->wp.lowercase = find_typed(norm, "Lowercase") != NULL;
      t->wp.strip_accents = find_typed(norm, "StripAccents") != NULL;
    }
  } else {
    const cJSON *pre = jget(j, "pre_tokenizer"), *bl = find_typed(pre, "ByteLevel");
    if (!bl) bl = find_typed(jget(j, "decoder"), "ByteLevel");
    if (!bl) {
      rc = gpux__error(GPUX_E_UNSUPPORTED, "%s: only byte-level BPE is supported (no ByteLevel pre_tokenizer)",
                       name);
      goto done;
    }
    if (!jbool(bl, "use_regex", 1)) {
      rc = gpux__error(GPUX_E_UNSUPPORTED, "%s: ByteLevel without its regex is not supported", name);
      goto done;
    }
    t->add_prefix_space = jbool(find_typed(pre, "ByteLevel"), "add_prefix_space", 0);
    gpt2_byte_map(t);
    int64_t rank = 0;
    char buf[1024];
    cJSON_ArrayForEach(e, jget(model, "merges")) {
      const char *a = NULL, *b = NULL;
      if (cJSON_IsString(e)) {
        const char *sp = strchr(e->valuestring, ' ');
        if (!sp) {
          rc = gpux__error(GPUX_E_PARSE, "%s: merge \"%s\" has no space", name, e->valuestring);
          break;
        }
        snprintf(buf, sizeof buf, "%s", e->valuestring);
      } else if (cJSON_GetArraySize(e) == 2 && cJSON_IsString(e->child) && cJSON_IsString(e->child->next)) {
        a = e->child->valuestring;
        b = e->child->next->valuestring;
        snprintf(buf, sizeof buf, "%s %s", a, b);
      } else {
        rc = gpux__error(GPUX_E_PARSE, "%s: malformed merge #%lld", name, (long long)rank);
        break;
      }
      if (hmap_get(&t->merges, buf, strlen(buf)) < 0 && (rc = hmap_put(&t->merges, buf, strlen(buf), rank)))
        break;
      rank++;
    }
    if (rc) goto done;
    if (t->pad_id < 0) t->pad_id = gpux__tokenizer_token_id(t, "<pad>");
    if (t->pad_id < 0) t->pad_id = 0;
  }
  if ((rc = parse_post_processor(t, jget(j, "post_processor"), name))) goto done;
  if (is_wp) rc = wordpiece_finish(t, name);
done:
  cJSON_Delete(j);
  if (rc) {
    gpux__tokenizer_free(t);
    return rc;
  }
  *out = t;
  return 0;
}

int gpux__tokenizer_load(const char *path, gpux__tokenizer **out) {
  *out = NULL;
  char *data;
  size_t len;
  int rc = gpux__pp_read_file(path, &data, &len);
  if (rc) return rc;
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  /* by content, not name (image-store blobs have none): a JSON object with a "model" key */
  size_t i = 0;
  while (i < len && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t')) i++;
  int is_tokenizer_json = 0;
  if (i < len && data[i] == '{' && strstr(data, "\"model\"")) { /* a vocab.json may hold "model" */
    cJSON *j = cJSON_ParseWithLength(data, len);
    is_tokenizer_json = cJSON_IsObject(jget(j, "model"));
    cJSON_Delete(j);
  }
  if (is_tokenizer_json) rc = gpux__tokenizer_json_load_buffer(data, len, base, out);
  else rc = gpux__wordpiece_load_buffer(data, len, base, NULL, out);
  free(data);
  return rc;
}

/* ---- an id list ---- */

typedef struct {
  int64_t *v;
  int64_t n, cap;
} idvec;

static int idvec_push(idvec *a, int64_t id) {
  if (a->n == a->cap) {
    int64_t nc = a->cap ? a->cap * 2 : 64;
    int64_t *p = gpux__realloc(a->v, sizeof(int64_t) * (size_t)nc);
    if (!p) return GPUX_E_NOMEM;
    a->v = p;
    a->cap = nc;
  }
  a->v[a->n++] = id;
  return 0;
}

/* ---- WordPiece: BERT's BasicTokenizer, then greedy longest-match-first ---- */

static int is_bert_punct(uint32_t cp) {
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
      (cp >= 123 && cp <= 126))
    return 1;
  return (gpux__uni_flags(cp) & GPUX__UNI_PUNCT) != 0;
}

static int is_bert_space(uint32_t cp) {
  return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' ||
         (gpux__uni_flags(cp) & GPUX__UNI_SPACE_SEP);
}

static int is_bert_control(uint32_t cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return 0;
  return (gpux__uni_flags(cp) & GPUX__UNI_OTHER) != 0;
}

/* Word pieces of one word (code points w[0..n)), appended to ids. */
static int wordpiece_word(const gpux__tokenizer *t, const uint32_t *w, int n, idvec *ids, gpux__pp_buf *key) {
  if (n > t->wp.max_chars_per_word) return idvec_push(ids, t->unk_id);
  int64_t mark = ids->n;
  int start = 0;
  size_t plen = strlen(t->cont_prefix);
  while (start < n) {
    int end = n;
    int64_t found = -1;
    while (start < end) {
      key->len = 0;
      int prefixed = t->word_start_prefix ? start == 0 : start > 0;
      if (prefixed && gpux__pp_buf_put(key, t->cont_prefix, plen)) return GPUX_E_NOMEM;
      for (int k = start; k < end; k++)
        if (gpux__pp_buf_put_cp(key, w[k])) return GPUX_E_NOMEM;
      found = hmap_get(&t->ids, key->data, key->len);
      if (found >= 0) break;
      end--;
    }
    if (found < 0) {
      ids->n = mark;
      return idvec_push(ids, t->unk_id);
    }
    if (idvec_push(ids, found)) return GPUX_E_NOMEM;
    start = end;
  }
  return 0;
}

/* One stretch of text without added tokens. */
static int wordpiece_text(const gpux__tokenizer *t, const char *s, size_t len, idvec *ids) {
  /* code points after cleaning, lower-casing, accent stripping; words split at spaces and
   * punctuation, CJK ideographs alone */
  uint32_t *cps = gpux__malloc(sizeof(uint32_t) * (len * 4 + 8));
  if (!cps) return GPUX_E_NOMEM;
  int strip = t->wp.strip_accents < 0 ? t->wp.lowercase : t->wp.strip_accents;
  size_t n = 0, i = 0;
  int rc = 0;
  gpux__pp_buf key = {0};
  while (i < len) {
    uint32_t cp = gpux__utf8_next(s, len, &i);
    if (t->clean_text) {
      if (cp == 0 || cp == 0xfffd || is_bert_control(cp)) continue;
      if (is_bert_space(cp)) cp = ' ';
    }
    uint32_t low[3], dec[4];
    int nl = 1;
    low[0] = cp;
    if (t->wp.lowercase) nl = gpux__uni_lower(cp, low);
    for (int a = 0; a < nl; a++) {
      int nd = 1;
      dec[0] = low[a];
      if (strip) nd = gpux__uni_nfd(low[a], dec);
      for (int b = 0; b < nd; b++) {
        if (strip && (gpux__uni_flags(dec[b]) & GPUX__UNI_MARK_NONSPACING)) continue;
        cps[n++] = dec[b];
      }
    }
  }
  /* split: a word is a run of non-space, non-punctuation, non-CJK characters */
  size_t k = 0;
  while (k < n && !rc) {
    uint32_t cp = cps[k];
    if (cp == ' ' || (!t->clean_text && is_bert_space(cp))) {
      k++;
      continue;
    }
    if (is_bert_punct(cp) || (t->wp.split_cjk && gpux__uni_is_cjk(cp))) {
      rc = wordpiece_word(t, cps + k, 1, ids, &key);
      k++;
      continue;
    }
    size_t e = k;
    while (e < n && cps[e] != ' ' && !(!t->clean_text && is_bert_space(cps[e])) &&
           !is_bert_punct(cps[e]) && !(t->wp.split_cjk && gpux__uni_is_cjk(cps[e])))
      e++;
    size_t wl = e - k;
    rc = wordpiece_word(t, cps + k, wl > INT32_MAX ? INT32_MAX : (int)wl, ids, &key);
    k = e;
  }
  free(key.data);
  free(cps);
  return rc;
}

/* ---- byte-level BPE ---- */

/* The GPT-2 pre-tokenization regex, by hand, over code points c[0..n):
 * 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * Returns the length of the match at position i (always >= 1). */
static size_t gpt2_match(const uint32_t *c, size_t n, size_t i) {
#define IS_L(x) (gpux__uni_flags(x) & GPUX__UNI_LETTER)
#define IS_N(x) (gpux__uni_flags(x) & GPUX__UNI_NUMBER)
#define IS_S(x) (gpux__uni_flags(x) & GPUX__UNI_WHITE_SPACE)
#define IS_O(x) (!IS_L(x) && !IS_N(x) && !IS_S(x))
  if (c[i] == '\'' && i + 1 < n) {
    uint32_t a = c[i + 1], b = i + 2 < n ? c[i + 2] : 0;
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  }
  size_t j = i;
  int sp = c[i] == ' ' && i + 1 < n;
  uint32_t first = sp ? c[i + 1] : c[i];
  if (IS_L(first)) {
    j = i + (sp ? 1 : 0);
    while (j < n && IS_L(c[j])) j++;
    return j - i;
  }
  if (IS_N(first)) {
    j = i + (sp ? 1 : 0);
    while (j < n && IS_N(c[j])) j++;
    return j - i;
  }
  if (IS_O(first) && (sp || !IS_S(c[i]))) {
    j = i + (sp ? 1 : 0);
    while (j < n && IS_O(c[j])) j++;
    return j - i;
  }
  /* white space: all of it at the end of the text, else all but the last character */
  j = i;
  while (j < n && IS_S(c[j])) j++;
  if (j == n || j - i == 1) return j - i;
  return j - i - 1;
#undef IS_L
#undef IS_N
#undef IS_S
#undef IS_O
}

/* BPE merges on one pre-token, with a min-heap of candidate pairs ordered by (rank, position):
 * O(n log n) in the pre-token's length, and the same result as GPT-2's loop (lowest rank first,
 * leftmost first) for merge lists where a merged symbol comes after the merges that make it. */
typedef struct {
  int64_t rank;
  size_t left, right;            /* symbol indexes */
  size_t llen, rlen;             /* their byte lengths when the pair was pushed */
} bpe_pair;

typedef struct {
  bpe_pair *v;
  size_t n, cap;
} bpe_heap;

static int pair_less(const bpe_pair *a, const bpe_pair *b) {
  return a->rank != b->rank ? a->rank < b->rank : a->left < b->left;
}

static int heap_push(bpe_heap *h, bpe_pair p) {
  if (h->n == h->cap) {
    size_t nc = h->cap ? h->cap * 2 : 64;
    bpe_pair *v = gpux__realloc(h->v, sizeof *v * nc);
    if (!v) return GPUX_E_NOMEM;
    h->v = v;
    h->cap = nc;
  }
  size_t i = h->n++;
  h->v[i] = p;
  while (i > 0 && pair_less(&h->v[i], &h->v[(i - 1) / 2])) {
    bpe_pair t = h->v[i];
    h->v[i] = h->v[(i - 1) / 2];
    h->v[(i - 1) / 2] = t;
    i = (i - 1) / 2;
  }
  return 0;
}

static bpe_pair heap_pop(bpe_heap *h) {
  bpe_pair top = h->v[0];
  h->v[0] = h->v[--h->n];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < h->n && pair_less(&h->v[l], &h->v[m])) m = l;
    if (r < h->n && pair_less(&h->v[r], &h->v[m])) m = r;
    if (m == i) break;
    bpe_pair t = h->v[i];
    h->v[i] = h->v[m];
    h->v[m] = t;
    i = m;
  }
  return top;
}

typedef struct {
  size_t start, len;             /* bytes of the symbol in the pre-token's UTF-8 string */
  size_t prev, next;             /* the live neighbours; SIZE_MAX at the ends */
  int alive;
} bpe_sym;

/* Pushes the pair (a, next of a) when the merges know it. */
static int push_pair(const gpux__tokenizer *t, const char *w, const bpe_sym *sym, size_t a, bpe_heap *h,
                     gpux__pp_buf *key) {
  size_t b = sym[a].next;
  if (b == SIZE_MAX) return 0;
  key->len = 0;
  if (gpux__pp_buf_put(key, w + sym[a].start, sym[a].len) || gpux__pp_buf_putc(key, ' ') ||
      gpux__pp_buf_put(key, w + sym[b].start, sym[b].len))
    return GPUX_E_NOMEM;
  int64_t r = hmap_get(&t->merges, key->data, key->len);
  if (r < 0) return 0;
  return heap_push(h, (bpe_pair){r, a, b, sym[a].len, sym[b].len});
}

static int bpe_word(const gpux__tokenizer *t, const char *w, size_t wl, idvec *ids, gpux__pp_buf *key) {
  size_t n = 0, i = 0;
  bpe_sym *sym = gpux__malloc(sizeof *sym * (wl + 1));
  if (!sym) return GPUX_E_NOMEM;
  while (i < wl) {
    size_t s = i;
    gpux__utf8_next(w, wl, &i);
    sym[n] = (bpe_sym){s, i - s, n ? n - 1 : SIZE_MAX, n + 1, 1};
    n++;
  }
  if (n) sym[n - 1].next = SIZE_MAX;
  bpe_heap h = {0};
  int rc = 0;
  for (size_t k = 0; k + 1 < n && !rc; k++) rc = push_pair(t, w, sym, k, &h, key);
  while (h.n && !rc) {
    bpe_pair p = heap_pop(&h);
    bpe_sym *a = &sym[p.left];
    /* stale when either side was merged since it was pushed */
    if (!a->alive || a->next != p.right || a->len != p.llen || sym[p.right].len != p.rlen) continue;
    bpe_sym *b = &sym[p.right];
    a->len += b->len;
    a->next = b->next;
    if (b->next != SIZE_MAX) sym[b->next].prev = p.left;
    b->alive = 0;
    /* the new pairs around the merged symbol */
    if (a->prev != SIZE_MAX) rc = push_pair(t, w, sym, a->prev, &h, key);
    if (!rc) rc = push_pair(t, w, sym, p.left, &h, key);
  }
  for (size_t k = 0; k < n && !rc; k++) {
    if (!sym[k].alive) continue;
    int64_t id = hmap_get(&t->ids, w + sym[k].start, sym[k].len);
    if (id < 0) id = t->unk_id;
    if (id < 0)
      rc = gpux__error(GPUX_E_INVALID, "BPE piece \"%.*s\" is not in the vocabulary", (int)sym[k].len,
                       w + sym[k].start);
    else rc = idvec_push(ids, id);
  }
  free(h.v);
  free(sym);
  return rc;
}

/* One stretch of text: each gets the prefix space when asked for, as Hugging Face's ByteLevel
 * pre-tokenizer does. */
static int bpe_text(const gpux__tokenizer *t, const char *s, size_t len, idvec *ids) {
  /* code points c[k] and where each starts in the text (off[n] = the end), so that a pre-token's
   * bytes are the text's own: bytes of malformed UTF-8 (classified as U+FFFD) survive as such */
  int prefix = t->add_prefix_space && s[0] != ' ';
  uint32_t *c = gpux__malloc(sizeof(uint32_t) * (len + 2));
  size_t *off = gpux__malloc(sizeof(size_t) * (len + 3));
  if (!c || !off) {
    free(c);
    free(off);
    return GPUX_E_NOMEM;
  }
  size_t n = 0, i = 0;
  if (prefix) c[n] = ' ', off[n++] = 0;
  while (i < len) {
    off[n] = i;
    c[n++] = gpux__utf8_next(s, len, &i);
  }
  off[n] = len;
  gpux__pp_buf word = {0}, key = {0};
  int rc = 0;
  for (size_t k = 0; k < n && !rc;) {
    size_t m = gpt2_match(c, n, k);
    /* the pre-token's bytes, each mapped to its GPT-2 code point */
    word.len = 0;
    size_t from = off[k];
    if (prefix && k == 0) {
      rc = gpux__pp_buf_put_cp(&word, t->byte_cp[' ']);
      from = 0;
    }
    for (size_t q = from; q < off[k + m] && !rc; q++) rc = gpux__pp_buf_put_cp(&word, t->byte_cp[(unsigned char)s[q]]);
    if (!rc) rc = bpe_word(t, word.data, word.len, ids, &key);
    k += m;
  }
  free(word.data);
  free(key.data);
  free(c);
  free(off);
  return rc;
}

/* ---- both ---- */

/* Tokenizes a stretch of text that holds no added token. */
static int tokenize_segment(const gpux__tokenizer *t, const char *s, size_t len, idvec *ids) {
  if (len == 0) return 0;
  if (t->kind == GPUX__TOK_WORDPIECE) return wordpiece_text(t, s, len, ids);
  return bpe_text(t, s, len, ids);
}

/* Splits text at added tokens (longest match first) and tokenizes the stretches between. */
static int tokenize_all(const gpux__tokenizer *t, const char *s, size_t len, idvec *ids) {
  size_t seg = 0;
  for (size_t i = 0; i < len; i++) {
    const added_token *hit = NULL;
    for (int k = 0; k < t->n_added; k++) {
      const added_token *a = &t->added[k];
      if (a->len <= len - i && memcmp(s + i, a->text, a->len) == 0 && (!hit || a->len > hit->len)) hit = a;
    }
    if (!hit) continue;
    int rc = tokenize_segment(t, s + seg, i - seg, ids);
    if (!rc) rc = idvec_push(ids, hit->id);
    if (rc) return rc;
    seg = i + hit->len;
    i = seg - 1;
  }
  return tokenize_segment(t, s + seg, len - seg, ids);
}

int gpux__tokenizer_tokenize(const gpux__tokenizer *t, const char *text, int64_t **ids, int64_t *n) {
  *ids = NULL;
  *n = 0;
  if (!text) return gpux__error(GPUX_E_INVALID, "no text to tokenize");
  idvec v = {0};
  int rc = tokenize_all(t, text, strlen(text), &v);
  if (rc) {
    free(v.v);
    return rc;
  }
  *ids = v.v;
  *n = v.n;
  return 0;
}

static int is_special_id(const gpux__tokenizer *t, int64_t id) {
  for (int i = 0; i < t->n_added; i++)
    if (t->added[i].id == id && t->added[i].special) return 1;
  for (int i = 0; i < t->single.n; i++)
    if (t->single.p[i].seq < 0 && t->single.p[i].id == id) return 1;
  return id == t->pad_id && t->kind == GPUX__TOK_WORDPIECE;
}

int gpux__tokenizer_is_special(const gpux__tokenizer *t, int64_t id) { return is_special_id(t, id); }

int gpux__tokenizer_decode(const gpux__tokenizer *t, const int64_t *ids, int64_t n, int skip_special,
                           char **text) {
  *text = NULL;
  gpux__pp_buf b = {0};
  int rc = 0;
  size_t plen = strlen(t->cont_prefix);
  for (int64_t i = 0; i < n && !rc; i++) {
    const char *tok = gpux__tokenizer_id_token(t, ids[i]);
    if (!tok) {
      rc = gpux__error(GPUX_E_INVALID, "token id %lld is outside the vocabulary of %lld", (long long)ids[i],
                       (long long)t->n_vocab);
      break;
    }
    if (skip_special && is_special_id(t, ids[i])) continue;
    if (t->kind == GPUX__TOK_BPE) {
      int added = 0;
      for (int k = 0; k < t->n_added; k++)
        if (t->added[k].id == ids[i]) added = 1;
      if (added) {
        rc = gpux__pp_buf_put(&b, tok, strlen(tok));
        continue;
      }
      size_t q = 0, tl = strlen(tok);
      while (q < tl && !rc) {
        uint32_t cp = gpux__utf8_next(tok, tl, &q);
        if (cp < 324 && t->cp_byte[cp] >= 0) rc = gpux__pp_buf_putc(&b, (char)t->cp_byte[cp]);
        else rc = gpux__pp_buf_put_cp(&b, cp);
      }
      continue;
    }
    int cont;
    if (t->word_start_prefix) {
      cont = strncmp(tok, t->cont_prefix, plen) != 0;
      if (!cont) tok += plen;
      if (tok[0] == '[') cont = 0; /* [UNK] and friends start a word */
    } else {
      cont = strncmp(tok, t->cont_prefix, plen) == 0;
      if (cont) tok += plen;
    }
    if (b.len && !cont) rc = gpux__pp_buf_putc(&b, ' ');
    if (!rc) rc = gpux__pp_buf_put(&b, tok, strlen(tok));
  }
  if (!rc && !gpux__pp_buf_cstr(&b)) rc = GPUX_E_NOMEM;
  if (rc) {
    free(b.data);
    return rc;
  }
  *text = b.data;
  return 0;
}

void gpux__encoding_free(gpux__encoding *e) {
  if (!e) return;
  free(e->input_ids);
  free(e->attention_mask);
  free(e->token_type_ids);
  memset(e, 0, sizeof *e);
}

int gpux__tokenizer_encode(const gpux__tokenizer *t, const char *text, const char *text_pair,
                           const gpux__encode_options *o, gpux__encoding *out) {
  memset(out, 0, sizeof *out);
  gpux__encode_options dflt;
  if (!o) {
    gpux__encode_options_default(&dflt);
    o = &dflt;
  }
  if (o->max_length < 0 || (o->padding == GPUX__PAD_MAX_LENGTH && o->max_length == 0))
    return gpux__error(GPUX_E_INVALID, "padding to max_length needs a positive max_length, not %lld",
                       (long long)o->max_length);
  idvec a = {0}, b = {0};
  int rc = 0;
  if (!text) return gpux__error(GPUX_E_INVALID, "no text to encode");
  if ((rc = tokenize_all(t, text, strlen(text), &a))) goto done;
  if (text_pair && (rc = tokenize_all(t, text_pair, strlen(text_pair), &b))) goto done;
  const tpl *tp = text_pair ? &t->pair : &t->single;
  int use_tpl = o->add_special_tokens && tp->n > 0;
  int64_t n_special = 0;
  if (use_tpl)
    for (int i = 0; i < tp->n; i++) n_special += tp->p[i].seq < 0;
  /* truncation, longest first, keeping the special tokens */
  if (o->max_length && a.n + b.n + n_special > o->max_length) {
    if (!o->truncation) {
      rc = gpux__error(GPUX_E_INVALID, "text of %lld tokens is longer than max_length %lld",
                       (long long)(a.n + b.n + n_special), (long long)o->max_length);
      goto done;
    }
    int64_t room = o->max_length - n_special;
    if (room < 0) room = 0;
    while (a.n + b.n > room) {
      if (a.n > b.n) a.n--; /* ties shorten the pair, as transformers does */
      else b.n--;
    }
  }
  int64_t n = a.n + b.n + n_special;
  int64_t total = o->padding == GPUX__PAD_MAX_LENGTH && o->max_length > n ? o->max_length : n;
  size_t bytes = sizeof(int64_t) * (size_t)(total ? total : 1);
  out->input_ids = gpux__malloc(bytes);
  out->attention_mask = gpux__malloc(bytes);
  out->token_type_ids = gpux__malloc(bytes);
  if (!out->input_ids || !out->attention_mask || !out->token_type_ids) {
    rc = GPUX_E_NOMEM;
    goto done;
  }
  int64_t k = 0;
  if (use_tpl) {
    for (int i = 0; i < tp->n; i++) {
      const tpl_part *p = &tp->p[i];
      if (p->seq < 0) {
        out->input_ids[k] = p->id;
        out->token_type_ids[k++] = p->type_id;
        continue;
      }
      const idvec *s = p->seq == 0 ? &a : &b;
      for (int64_t q = 0; q < s->n; q++) {
        out->input_ids[k] = s->v[q];
        out->token_type_ids[k++] = p->type_id;
      }
    }
  } else {
    for (int64_t q = 0; q < a.n; q++) out->input_ids[k] = a.v[q], out->token_type_ids[k++] = 0;
    for (int64_t q = 0; q < b.n; q++) out->input_ids[k] = b.v[q], out->token_type_ids[k++] = 1;
  }
  for (int64_t q = 0; q < total; q++) {
    out->attention_mask[q] = q < k;
    if (q >= k) out->input_ids[q] = t->pad_id, out->token_type_ids[q] = 0;
  }
  out->n = total;
done:
  free(a.v);
  free(b.v);
  if (rc) gpux__encoding_free(out);
  return rc;
}

int gpux__encoding_to_tensors(const gpux__encoding *e, gpux_tensor *input_ids,
                              gpux_tensor *attention_mask, gpux_tensor *token_type_ids) {
  gpux_tensor *outs[3] = {input_ids, attention_mask, token_type_ids};
  const int64_t *src[3] = {e->input_ids, e->attention_mask, e->token_type_ids};
  int64_t dims[2] = {1, e->n};
  for (int i = 0; i < 3; i++)
    if (outs[i]) memset(outs[i], 0, sizeof *outs[i]);
  for (int i = 0; i < 3; i++) {
    if (!outs[i]) continue;
    int rc = gpux_tensor_init(outs[i], GPUX_DT_INT64, 2, dims);
    if (rc) {
      for (int k = 0; k < i; k++)
        if (outs[k]) gpux_tensor_free(outs[k]);
      return rc;
    }
    if (e->n) memcpy(outs[i]->data, src[i], sizeof(int64_t) * (size_t)e->n);
  }
  return 0;
}
