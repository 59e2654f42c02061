/* model.c — reading an ONNX ModelProto into the graph IR: opset imports, graphs (nested If/Loop/
 * Scan bodies with outer-scope references), nodes, attributes, initializers (memory-mapped, not
 * copied) and declared input/output types. Field numbers are those of onnx.proto (IR version up
 * to 14); unknown fields are skipped, so newer files still load. */
#include "onnx/onnx.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ModelProto */
enum { MP_IR_VERSION = 1, MP_PRODUCER = 2, MP_GRAPH = 7, MP_OPSET_IMPORT = 8, MP_FUNCTIONS = 25 };
/* GraphProto */
enum { GP_NODE = 1, GP_NAME = 2, GP_INITIALIZER = 5, GP_INPUT = 11, GP_OUTPUT = 12,
       GP_VALUE_INFO = 13, GP_SPARSE_INITIALIZER = 15 };
/* NodeProto */
enum { NP_INPUT = 1, NP_OUTPUT = 2, NP_NAME = 3, NP_OP_TYPE = 4, NP_ATTRIBUTE = 5, NP_DOMAIN = 7 };
/* AttributeProto */
enum { AP_NAME = 1, AP_F = 2, AP_I = 3, AP_S = 4, AP_T = 5, AP_G = 6, AP_FLOATS = 7, AP_INTS = 8,
       AP_STRINGS = 9, AP_TENSORS = 10, AP_GRAPHS = 11, AP_TP = 14, AP_TYPE_PROTOS = 15,
       AP_TYPE = 20, AP_SPARSE_TENSOR = 22, AP_SPARSE_TENSORS = 23 };

typedef struct {
  gpux_model *m;
  int depth;
} loader;

static int parse_graph(loader *L, const uint8_t *data, size_t len, gpux__graph *parent, gpux__graph **out);

static char *arena_str(gpux_model *m, const gpux__pb_field *f) {
  return gpux__arena_strndup(&m->arena, (const char *)f->data, f->len);
}

/* TypeProto → kind, dtype, shape. Sequence/optional types nest: at most MAX_TYPE_DEPTH deep. */
#define MAX_TYPE_DEPTH 16
static int parse_type(gpux_model *m, const uint8_t *data, size_t len, gpux_value_info *info, int depth) {
  if (depth > MAX_TYPE_DEPTH) return gpux__error(GPUX_E_UNSUPPORTED, "types nested deeper than %d", MAX_TYPE_DEPTH);
  gpux__pb r = gpux__pb_init(data, len);
  gpux__pb_field f;
  int rc;
  while ((rc = gpux__pb_next(&r, &f)) > 0) {
    if (f.wire != PB_LEN) continue;
    if (f.field == 1) { /* tensor_type { elem_type = 1; shape = 2 } */
      info->kind = GPUX_KIND_TENSOR;
      gpux__pb t = gpux__pb_sub(&f);
      gpux__pb_field tf;
      while ((rc = gpux__pb_next(&t, &tf)) > 0) {
        if (tf.field == 1 && tf.wire == PB_VARINT) info->dtype = (int)tf.u;
        if (tf.field == 2 && tf.wire == PB_LEN) {
          info->ndim = 0;
          gpux__pb s = gpux__pb_sub(&tf);
          gpux__pb_field df;
          while ((rc = gpux__pb_next(&s, &df)) > 0) {
            if (df.field != 1 || df.wire != PB_LEN) continue;
            if (info->ndim >= GPUX_MAX_DIMS) return gpux__error(GPUX_E_UNSUPPORTED, "rank above %d", GPUX_MAX_DIMS);
            int d = info->ndim++;
            info->dims[d] = -1;
            info->dim_names[d] = NULL;
            gpux__pb dd = gpux__pb_sub(&df);
            gpux__pb_field v;
            while ((rc = gpux__pb_next(&dd, &v)) > 0) {
              if (v.field == 1 && v.wire == PB_VARINT) info->dims[d] = (int64_t)v.u;
              if (v.field == 2 && v.wire == PB_LEN) info->dim_names[d] = arena_str(m, &v);
            }
            if (rc < 0) return rc;
          }
          if (rc < 0) return rc;
        }
      }
      if (rc < 0) return rc;
    } else if (f.field == 4 || f.field == 9) { /* sequence_type / optional_type { elem_type = 1 } */
      gpux_value_info inner = {.ndim = -1};
      gpux__pb t = gpux__pb_sub(&f);
      gpux__pb_field tf;
      while ((rc = gpux__pb_next(&t, &tf)) > 0)
        if (tf.field == 1 && tf.wire == PB_LEN && (rc = parse_type(m, tf.data, tf.len, &inner, depth + 1))) return rc;
      if (rc < 0) return rc;
      if (f.field == 4) {
        info->kind = GPUX_KIND_SEQUENCE;
        info->dtype = inner.dtype;
      } else { /* an optional is described by its element, marked as possibly absent */
        *info = inner;
        info->optional = 1;
        info->kind = inner.kind == GPUX_KIND_SEQUENCE ? GPUX_KIND_SEQUENCE : GPUX_KIND_TENSOR;
        info->dtype = inner.dtype;
      }
    } else if (f.field == 5) {
      return gpux__error(GPUX_E_UNSUPPORTED, "map types are not supported");
    }
  }
  return rc < 0 ? rc : 0;
}

/* ValueInfoProto → name + type */
static int parse_value_info(gpux_model *m, const gpux__pb_field *vf, const char **name, gpux_value_info *info) {
  gpux__pb r = gpux__pb_sub(vf);
  gpux__pb_field f;
  int rc;
  *name = "";
  memset(info, 0, sizeof *info);
  info->ndim = -1;
  while ((rc = gpux__pb_next(&r, &f)) > 0) {
    if (f.field == 1 && f.wire == PB_LEN && !(*name = arena_str(m, &f))) return GPUX_E_NOMEM;
    if (f.field == 2 && f.wire == PB_LEN && (rc = parse_type(m, f.data, f.len, info, 0))) return rc;
  }
  if (rc < 0) return rc;
  info->name = *name;
  return 0;
}

static int store_tensor(loader *L, const gpux__pb_field *f, gpux_tensor *t, int sparse) {
  int rc = sparse ? gpux__sparse_from_pb(f->data, f->len, L->m, t)
                  : gpux__tensor_from_pb(f->data, f->len, L->m, 1, t, NULL, NULL);
  return rc;
}

static const char *attr_kind_name(int type) {
  switch (type) {
  case GPUX_ATTR_FLOATS: return "floats";
  case GPUX_ATTR_INTS: return "ints";
  case GPUX_ATTR_STRINGS: return "strings";
  case GPUX_ATTR_TENSORS: return "tensors";
  case GPUX_ATTR_SPARSE_TENSORS: return "sparse_tensors";
  case GPUX_ATTR_GRAPHS: return "graphs";
  }
  return "?";
}

/* The list kind a repeated AttributeProto field carries, or 0. */
static int list_kind(uint32_t field) {
  switch (field) {
  case AP_FLOATS: return GPUX_ATTR_FLOATS;
  case AP_INTS: return GPUX_ATTR_INTS;
  case AP_STRINGS: return GPUX_ATTR_STRINGS;
  case AP_TENSORS: return GPUX_ATTR_TENSORS;
  case AP_SPARSE_TENSORS: return GPUX_ATTR_SPARSE_TENSORS;
  case AP_GRAPHS: return GPUX_ATTR_GRAPHS;
  }
  return 0;
}

/* Values in one occurrence of floats/ints (packed or single); other lists: one per occurrence. */
static int64_t list_values(const gpux__pb_field *f) {
  if (f->field != AP_FLOATS && f->field != AP_INTS) return 1;
  if (f->wire != PB_LEN) return 1;
  if (f->field == AP_FLOATS) {
    if (f->len % 4) return gpux__error(GPUX_E_PARSE, "truncated floats attribute");
    return (int64_t)(f->len / 4);
  }
  int64_t n = 0;
  for (size_t i = 0; i < f->len; i++) n += !(f->data[i] & 0x80);
  if (f->len && (f->data[f->len - 1] & 0x80)) return gpux__error(GPUX_E_PARSE, "truncated ints attribute");
  return n;
}

/* Reads an AttributeProto. A first pass counts the values of the one list kind it may carry, so
 * lists are allocated once (not grown per value) and a list of another kind than the declared
 * type is an error instead of a count that does not match its array. */
static int parse_attribute(loader *L, gpux__graph *g, const gpux__pb_field *af, gpux__attr *a) {
  gpux_model *m = L->m;
  gpux__pb r = gpux__pb_sub(af);
  gpux__pb_field f;
  int rc, inferred = 0, kind = 0, declared = 0;
  int64_t count = 0;
  const char *name = "";
  size_t name_len = 0;
  memset(a, 0, sizeof *a);
  a->name = "";
  while ((rc = gpux__pb_next(&r, &f)) > 0) {
    if (f.field == AP_NAME && f.wire == PB_LEN) { name = (const char *)f.data; name_len = f.len; }
    if (f.field == AP_TYPE) declared = f.u > INT32_MAX ? -1 : (int)f.u;
    int k = list_kind(f.field);
    if (!k) continue;
    if (kind && k != kind)
      return gpux__error(GPUX_E_MODEL, "attribute '%.*s' carries both %s and %s", (int)name_len, name,
                         attr_kind_name(kind), attr_kind_name(k));
    kind = k;
    int64_t n = list_values(&f);
    if (n < 0) return (int)n;
    count += n;
  }
  if (rc < 0) return rc;
  int declared_list = declared == GPUX_ATTR_FLOATS || declared == GPUX_ATTR_INTS || declared == GPUX_ATTR_STRINGS ||
                      declared == GPUX_ATTR_TENSORS || declared == GPUX_ATTR_SPARSE_TENSORS || declared == GPUX_ATTR_GRAPHS;
  if (kind && declared && declared != kind)
    return gpux__error(GPUX_E_MODEL, "attribute '%.*s' is declared as type %d but carries %s", (int)name_len, name,
                       declared, attr_kind_name(kind));
  if (declared_list && !kind) kind = declared; /* an empty list */
  if (count > INT32_MAX) return gpux__error(GPUX_E_MODEL, "attribute '%.*s' has too many values", (int)name_len, name);
  size_t esize = kind == GPUX_ATTR_FLOATS ? sizeof(float) : kind == GPUX_ATTR_INTS ? sizeof(int64_t)
               : kind == GPUX_ATTR_STRINGS ? sizeof(char *) : kind == GPUX_ATTR_GRAPHS ? sizeof(gpux__graph *)
               : sizeof(gpux_tensor);
  void *list = count ? gpux__arena_alloc(&m->arena, (size_t)count * esize) : NULL;
  if (count && !list) return GPUX_E_NOMEM;
  if (list) memset(list, 0, (size_t)count * esize);
  switch (kind) {
  case GPUX_ATTR_FLOATS: a->floats = list; break;
  case GPUX_ATTR_INTS: a->ints = list; break;
  case GPUX_ATTR_STRINGS: a->strings = list; break;
  case GPUX_ATTR_GRAPHS: a->graphs = list; break;
  case GPUX_ATTR_TENSORS: case GPUX_ATTR_SPARSE_TENSORS: a->tensors = list; break;
  }
  r = gpux__pb_sub(af);
  while ((rc = gpux__pb_next(&r, &f)) > 0) {
    switch (f.field) {
    case AP_NAME: if (!(a->name = arena_str(m, &f))) return GPUX_E_NOMEM; break;
    case AP_TYPE: a->type = (int)f.u; break;
    case AP_F: { uint32_t b = (uint32_t)f.u; memcpy(&a->f, &b, 4); inferred = GPUX_ATTR_FLOAT; break; }
    case AP_I: a->i = (int64_t)f.u; inferred = GPUX_ATTR_INT; break;
    case AP_S:
      if (!(a->s = arena_str(m, &f))) return GPUX_E_NOMEM;
      a->s_len = f.len;
      inferred = GPUX_ATTR_STRING;
      break;
    case AP_T: case AP_SPARSE_TENSOR:
      if (a->t) gpux_tensor_free(a->t); /* a repeated optional field: the last one counts */
      else if (!(a->t = gpux__arena_alloc(&m->arena, sizeof *a->t))) return GPUX_E_NOMEM;
      if ((rc = store_tensor(L, &f, a->t, f.field == AP_SPARSE_TENSOR))) { a->t = NULL; return rc; }
      inferred = f.field == AP_T ? GPUX_ATTR_TENSOR : GPUX_ATTR_SPARSE_TENSOR;
      break;
    case AP_G:
      if ((rc = parse_graph(L, f.data, f.len, g, &a->g))) return rc;
      inferred = GPUX_ATTR_GRAPH;
      break;
    case AP_FLOATS: case AP_INTS: {
      int is_f = f.field == AP_FLOATS;
      gpux__pb s = f.wire == PB_LEN ? gpux__pb_sub(&f) : gpux__pb_init(NULL, 0);
      int single = f.wire != PB_LEN;
      inferred = is_f ? GPUX_ATTR_FLOATS : GPUX_ATTR_INTS;
      while (single || s.p < s.end) {
        uint64_t v = f.u;
        if (!single) {
          if (is_f) { uint32_t b; memcpy(&b, s.p, 4); s.p += 4; v = b; } /* whole: checked by list_values */
          else if (gpux__pb_varint(&s, &v)) return GPUX_E_PARSE;
        }
        if (a->n >= count) return gpux__error(GPUX_E_INTERNAL, "attribute values miscounted");
        if (is_f) { uint32_t b = (uint32_t)v; memcpy(&a->floats[a->n], &b, 4); }
        else a->ints[a->n] = (int64_t)v;
        a->n++;
        if (single) break;
      }
      break;
    }
    case AP_STRINGS:
      if (!(a->strings[a->n] = arena_str(m, &f))) return GPUX_E_NOMEM;
      a->n++;
      inferred = GPUX_ATTR_STRINGS;
      break;
    case AP_TENSORS: case AP_SPARSE_TENSORS:
      if ((rc = store_tensor(L, &f, &a->tensors[a->n], f.field == AP_SPARSE_TENSORS))) return rc;
      a->n++;
      inferred = f.field == AP_TENSORS ? GPUX_ATTR_TENSORS : GPUX_ATTR_SPARSE_TENSORS;
      break;
    case AP_GRAPHS:
      if ((rc = parse_graph(L, f.data, f.len, g, &a->graphs[a->n]))) return rc;
      a->n++;
      inferred = GPUX_ATTR_GRAPHS;
      break;
    case AP_TP: {
      gpux_value_info info = {.ndim = -1};
      if ((rc = parse_type(m, f.data, f.len, &info, 0))) return rc;
      a->tp_kind = info.kind;
      a->tp_dtype = info.dtype;
      inferred = GPUX_ATTR_TYPE_PROTO;
      break;
    }
    }
  }
  if (rc < 0) return rc;
  if (!a->type) a->type = inferred; /* very old files omit the type */
  /* a single tensor or graph declared but absent would be dereferenced by the ops */
  if ((a->type == GPUX_ATTR_TENSOR || a->type == GPUX_ATTR_SPARSE_TENSOR) && !a->t)
    return gpux__error(GPUX_E_MODEL, "attribute '%s' is declared a tensor but has none", a->name);
  if (a->type == GPUX_ATTR_GRAPH && !a->g)
    return gpux__error(GPUX_E_MODEL, "attribute '%s' is declared a graph but has none", a->name);
  if (a->type == GPUX_ATTR_SPARSE_TENSOR) a->type = GPUX_ATTR_TENSOR;
  return 0;
}

static int defined_in_chain(const gpux__graph *g, const char *name) {
  for (; g; g = g->parent) {
    int id = gpux__graph_find(g, name);
    if (id >= 0 && g->values[id].producer != -2 && g->values[id].producer != -4) return 1;
  }
  return 0;
}

/* A value of g for `name`, capturing it from an enclosing graph when defined there; -1 if none. */
static int capture(gpux__graph *g, const char *name) {
  int id = gpux__graph_find(g, name);
  if (id >= 0) return id;
  if (!g->parent || !defined_in_chain(g->parent, name)) return -1;
  int outer = capture(g->parent, name);
  if (outer < 0) return outer;
  int v = gpux__graph_add_value(g, name);
  if (v >= 0) g->values[v].outer = outer;
  return v;
}

/* The value a node input names: in this graph, else captured from an enclosing graph, else a
 * value still to be produced (an error if no node produces it). */
static int resolve_input(gpux__graph *g, const char *name) {
  int id = capture(g, name);
  if (id >= 0 && g->values[id].producer == -4) {
    /* named only by value_info so far: a value of an enclosing graph (subgraphs may declare the
     * types of what they capture), else one a later node of this graph produces */
    if (g->parent && defined_in_chain(g->parent, name)) {
      int outer = capture(g->parent, name);
      if (outer < 0) return outer;
      g->values[id].outer = outer;
      g->values[id].producer = -1;
    } else {
      g->values[id].producer = -2;
    }
  }
  if (id != -1) return id;
  int v = gpux__graph_add_value(g, name);
  if (v >= 0) g->values[v].producer = -2;
  return v;
}

static int parse_node(loader *L, gpux__graph *g, const gpux__pb_field *nf, gpux__node *n) {
  gpux_model *m = L->m;
  gpux__pb r = gpux__pb_sub(nf);
  gpux__pb_field f;
  int rc;
  memset(n, 0, sizeof *n);
  n->name = n->op_type = n->domain = "";
  /* first the scalar fields and counts */
  while ((rc = gpux__pb_next(&r, &f)) > 0) {
    if (f.wire != PB_LEN) continue;
    if (f.field == NP_INPUT) n->n_in++;
    else if (f.field == NP_OUTPUT) n->n_out++;
    else if (f.field == NP_ATTRIBUTE) n->n_attrs++;
    else if (f.field == NP_NAME) n->name = arena_str(m, &f);
    else if (f.field == NP_OP_TYPE) n->op_type = arena_str(m, &f);
    else if (f.field == NP_DOMAIN) n->domain = arena_str(m, &f);
  }
  if (rc < 0) return rc;
  if (!n->name || !n->op_type || !n->domain) return GPUX_E_NOMEM;
  if (!n->op_type[0]) return gpux__error(GPUX_E_MODEL, "a node has no op_type");
  n->in = gpux__arena_alloc(&m->arena, sizeof(int) * (size_t)(n->n_in + 1));
  n->out = gpux__arena_alloc(&m->arena, sizeof(int) * (size_t)(n->n_out + 1));
  n->attrs = gpux__arena_alloc(&m->arena, sizeof(gpux__attr) * (size_t)(n->n_attrs + 1));
  if (!n->in || !n->out || !n->attrs) return GPUX_E_NOMEM;
  /* attributes first: subgraphs see the values defined before this node */
  int ni = 0, no = 0, na = 0;
  r = gpux__pb_sub(nf);
  while ((rc = gpux__pb_next(&r, &f)) > 0) {
    if (f.wire != PB_LEN) continue;
    if (f.field == NP_ATTRIBUTE && (rc = parse_attribute(L, g, &f, &n->attrs[na++]))) return rc;
    if (f.field == NP_INPUT) {
      char *name = arena_str(m, &f);
      if (!name) return GPUX_E_NOMEM;
      n->in[ni] = name[0] ? resolve_input(g, name) : -1;
      if (n->in[ni++] < -1) return GPUX_E_NOMEM;
    }
  }
  if (rc < 0) return rc;
  r = gpux__pb_sub(nf);
  while ((rc = gpux__pb_next(&r, &f)) > 0) {
    if (f.field != NP_OUTPUT || f.wire != PB_LEN) continue;
    char *name = arena_str(m, &f);
    if (!name) return GPUX_E_NOMEM;
    if (!name[0]) { n->out[no++] = -1; continue; }
    int id = gpux__graph_find(g, name);
    if (id >= 0 && g->values[id].producer != -2 && g->values[id].producer != -4)
      return gpux__error(GPUX_E_MODEL, "node '%s' (%s): output '%s' is already defined", n->name, n->op_type, name);
    if (id < 0 && (id = gpux__graph_add_value(g, name)) < 0) return id;
    g->values[id].producer = -3; /* produced by a node: finalize sets the index */
    n->out[no++] = id;
  }
  if (rc < 0) return rc;
  /* the node's opset is its domain's version in the model */
  const char *dom = n->domain[0] ? n->domain : "";
  n->opset = (int)gpux_model_opset(m, dom);
  return 0;
}

static int parse_graph(loader *L, const uint8_t *data, size_t len, gpux__graph *parent, gpux__graph **out) {
  gpux_model *m = L->m;
  if (++L->depth > 64) return gpux__error(GPUX_E_MODEL, "graphs nested more than 64 deep");
  gpux__graph *g = gpux__arena_alloc(&m->arena, sizeof *g);
  gpux__graph **all = g ? gpux__realloc(m->graphs, (size_t)(m->n_graphs + 1) * sizeof *all) : NULL;
  if (!all) return GPUX_E_NOMEM;
  m->graphs = all;
  m->graphs[m->n_graphs++] = g;
  g->model = m;
  g->parent = parent;
  g->name = "";
  int rc, n_nodes = 0, n_in = 0, n_out = 0;
  gpux__pb r = gpux__pb_init(data, len);
  gpux__pb_field f;
  const uint8_t *copied_pb = NULL; /* the last initializer copied */
  size_t copied_len = 0;
  /* pass 1: name, initializers, declared inputs/outputs/value_info, counts */
  while ((rc = gpux__pb_next(&r, &f)) > 0) {
    if (f.wire != PB_LEN) continue;
    switch (f.field) {
    case GP_NODE: n_nodes++; break;
    case GP_NAME: if (!(g->name = arena_str(m, &f))) return GPUX_E_NOMEM; break;
    case GP_INPUT: n_in++; break;
    case GP_OUTPUT: n_out++; break;
    case GP_INITIALIZER: case GP_SPARSE_INITIALIZER: {
      gpux_tensor t;
      const char *name = NULL;
      size_t name_len = 0;
      if (f.field == GP_INITIALIZER) {
        rc = gpux__tensor_from_pb(f.data, f.len, m, 1, &t, &name, &name_len);
      } else { /* SparseTensorProto: values (field 1) carry the name */
        rc = gpux__sparse_from_pb(f.data, f.len, m, &t);
        gpux__pb s = gpux__pb_sub(&f);
        gpux__pb_field sf;
        while (!rc && gpux__pb_next(&s, &sf) > 0)
          if (sf.field == 1 && sf.wire == PB_LEN) {
            gpux_tensor tmp;
            if (!gpux__tensor_from_pb(sf.data, sf.len, m, 1, &tmp, &name, &name_len)) gpux_tensor_free(&tmp);
          }
      }
      if (rc) return gpux__error_prefix(rc, "initializer '%.*s': ", (int)name_len, name ? name : "");
      char *nm = gpux__arena_strndup(&m->arena, name ? name : "", name_len);
      int id = nm ? gpux__graph_add_value(g, nm) : GPUX_E_NOMEM;
      if (id < 0) { gpux_tensor_free(&t); return id; }
      gpux_tensor_free(&g->values[id].init);
      g->values[id].init = t;
      g->values[id].is_const = 1;
      if (f.field == GP_INITIALIZER && t.owns_data && t.data && t.dtype != GPUX_DT_STRING) {
        g->values[id].pb = f.data, g->values[id].pb_len = f.len; /* the copy can be made again */
        /* reading this one mapped the end of the copy before it back (a large folio of the page
         * cache is mapped whole): the file's pages under that copy go again */
        if (copied_pb) gpux__model_release(m, copied_pb, copied_len);
        copied_pb = f.data, copied_len = f.len;
      }
      break;
    }
    }
  }
  if (rc < 0) return rc;
  g->inputs = gpux__arena_alloc(&m->arena, sizeof(int) * (size_t)(n_in + 1));
  g->outputs = gpux__arena_alloc(&m->arena, sizeof(int) * (size_t)(n_out + 1));
  g->nodes = gpux__calloc((size_t)n_nodes + 1, sizeof *g->nodes);
  if (!g->inputs || !g->outputs || !g->nodes) return GPUX_E_NOMEM;
  /* pass 2: inputs and value types */
  r = gpux__pb_init(data, len);
  while ((rc = gpux__pb_next(&r, &f)) > 0) {
    if (f.wire != PB_LEN || (f.field != GP_INPUT && f.field != GP_OUTPUT && f.field != GP_VALUE_INFO)) continue;
    const char *name;
    gpux_value_info info;
    if ((rc = parse_value_info(m, &f, &name, &info))) return rc;
    if (f.field == GP_OUTPUT) continue; /* outputs after the nodes */
    int is_new = gpux__graph_find(g, name) < 0;
    int id = gpux__graph_add_value(g, name);
    if (id < 0) return id;
    gpux__value *v = &g->values[id];
    /* value_info only describes a value (exporters write it for intermediates, outputs and
     * captured values): -4 until a node produces it or it turns out to be captured */
    if (is_new && f.field == GP_VALUE_INFO) v->producer = -4;
    if (!v->has_info || f.field == GP_INPUT) { v->info = info; v->has_info = 1; }
    if (f.field == GP_INPUT && !v->is_const) {
      v->is_graph_input = 1;
      g->inputs[g->n_inputs++] = id;
    }
  }
  if (rc < 0) return rc;
  /* pass 3: nodes */
  r = gpux__pb_init(data, len);
  while ((rc = gpux__pb_next(&r, &f)) > 0) {
    if (f.field != GP_NODE || f.wire != PB_LEN) continue;
    gpux__node *n = &g->nodes[g->n_nodes];
    if ((rc = parse_node(L, g, &f, n))) {
      if (n->op_type && n->op_type[0])
        return gpux__error_prefix(rc, "node %d '%s' (%s): ", g->n_nodes, n->name ? n->name : "", n->op_type);
      return gpux__error_prefix(rc, "node %d: ", g->n_nodes);
    }
    g->n_nodes++;
  }
  if (rc < 0) return rc;
  /* pass 4: outputs */
  r = gpux__pb_init(data, len);
  while ((rc = gpux__pb_next(&r, &f)) > 0) {
    if (f.field != GP_OUTPUT || f.wire != PB_LEN) continue;
    const char *name;
    gpux_value_info info;
    if ((rc = parse_value_info(m, &f, &name, &info))) return rc;
    int id = resolve_input(g, name);
    if (id < 0) return id;
    if (!g->values[id].has_info || info.dtype) { g->values[id].info = info; g->values[id].has_info = 1; }
    g->outputs[g->n_outputs++] = id;
  }
  if (rc < 0) return rc;
  for (int v = 0; v < g->n_values; v++)
    if (g->values[v].producer == -4) g->values[v].producer = -1; /* described, never used */
  for (int v = 0; v < g->n_values && g->parent; v++) {
    /* used here, produced by no node of this graph: a value that a later node of an enclosing
     * graph produces (ONNX asks for topological order; the float16 converter, for one, appends
     * its input Casts after the If that uses them, and ONNX Runtime sorts) */
    gpux__value *val = &g->values[v];
    if (val->producer != -2 || val->is_graph_input || val->is_const || val->outer >= 0) continue;
    int outer = resolve_input(g->parent, val->name);
    if (outer < 0) return outer;
    g->values[v].outer = outer;
    g->values[v].producer = -1;
  }
  for (int v = 0; v < g->n_values; v++)
    if (g->values[v].producer == -2 && !g->values[v].is_graph_input && !g->values[v].is_const && g->values[v].outer < 0)
      return gpux__error(GPUX_E_MODEL, "graph '%s': value '%s' is used but never defined", g->name, g->values[v].name);
  if ((rc = gpux__graph_finalize(g))) return rc;
  L->depth--;
  *out = g;
  return 0;
}

int64_t gpux_model_opset(const gpux_model *m, const char *domain) {
  if (!domain || !strcmp(domain, "ai.onnx")) domain = "";
  for (int i = 0; i < m->n_opsets; i++) {
    const char *d = m->opsets[i].domain;
    if (!strcmp(d, "ai.onnx")) d = "";
    if (!strcmp(d, domain)) return m->opsets[i].version;
  }
  return domain[0] ? 1 : 0;
}

static int parse_model(gpux_model *m, const uint8_t *data, size_t len) {
  gpux__pb r = gpux__pb_init(data, len);
  gpux__pb_field f;
  int rc, n_ops = 0;
  const uint8_t *graph = NULL;
  size_t graph_len = 0;
  while ((rc = gpux__pb_next(&r, &f)) > 0) {
    if (f.field == MP_IR_VERSION && f.wire == PB_VARINT) m->ir_version = (int64_t)f.u;
    else if (f.field == MP_GRAPH && f.wire == PB_LEN) { graph = f.data; graph_len = f.len; }
    else if (f.field == MP_OPSET_IMPORT && f.wire == PB_LEN) n_ops++;
  }
  if (rc < 0) return rc;
  if (!graph) return gpux__error(GPUX_E_PARSE, "no graph (not an ONNX model, or truncated)");
  if (m->ir_version < 1 || m->ir_version > 64)
    return gpux__error(GPUX_E_PARSE, "IR version %lld is not that of an ONNX model", (long long)m->ir_version);
  m->opsets = gpux__arena_alloc(&m->arena, sizeof *m->opsets * (size_t)(n_ops + 1));
  if (!m->opsets) return GPUX_E_NOMEM;
  r = gpux__pb_init(data, len);
  while ((rc = gpux__pb_next(&r, &f)) > 0) {
    if (f.field != MP_OPSET_IMPORT || f.wire != PB_LEN) continue;
    gpux__opset_entry *e = &m->opsets[m->n_opsets++];
    e->domain = "";
    gpux__pb s = gpux__pb_sub(&f);
    gpux__pb_field of;
    while ((rc = gpux__pb_next(&s, &of)) > 0) {
      if (of.field == 1 && of.wire == PB_LEN && !(e->domain = arena_str(m, &of))) return GPUX_E_NOMEM;
      if (of.field == 2 && of.wire == PB_VARINT) e->version = (int64_t)of.u;
    }
    if (rc < 0) return rc;
  }
  if (rc < 0) return rc;
  loader L = {m, 0};
  return parse_graph(&L, graph, graph_len, NULL, &m->graph);
}

static int model_new(const char *path, gpux_model **out) {
  gpux_model *m = gpux__calloc(1, sizeof *m);
  if (!m) return GPUX_E_NOMEM;
  m->path = gpux__strdup(path);
  const char *slash = strrchr(path, '/');
  m->dir = slash ? gpux__strndup(path, (size_t)(slash - path)) : gpux__strdup(".");
  pthread_mutex_init(&m->lock, NULL);
  if (!m->path || !m->dir) { gpux_model_free(m); return GPUX_E_NOMEM; }
  *out = m;
  return 0;
}

int gpux__onnx_load_buffer(const void *data, size_t size, const char *name, gpux_model **out) {
  gpux_model *m;
  *out = NULL;
  int rc = model_new(name ? name : "<buffer>", &m);
  if (rc) return rc;
  /* keep a private copy: initializers may point into it */
  m->map = gpux__malloc(size);
  if (!m->map) { gpux_model_free(m); return GPUX_E_NOMEM; }
  memcpy(m->map, data, size);
  m->map_size = 0; /* malloc'ed, not mapped */
  if ((rc = parse_model(m, m->map, size))) {
    gpux__error_prefix(rc, "%s: ", m->path);
    gpux_model_free(m);
    return rc;
  }
  *out = m;
  return 0;
}

int gpux__onnx_load(const char *path, gpux_model **out) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return gpux__error(errno == ENOENT ? GPUX_E_NOTFOUND : GPUX_E_IO, "%s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return gpux__error(GPUX_E_IO, "%s: not a regular file", path);
  }
  if (st.st_size == 0) { close(fd); return gpux__error(GPUX_E_PARSE, "%s: empty file", path); }
  void *p = gpux__model_map(fd, (size_t)st.st_size);
  close(fd);
  if (p == MAP_FAILED) return gpux__error(GPUX_E_IO, "%s: mmap: %s", path, strerror(errno));
  gpux_model *m;
  int rc = model_new(path, &m);
  if (rc) { munmap(p, (size_t)st.st_size); return rc; }
  m->map = p;
  m->map_size = (size_t)st.st_size;
  if ((rc = parse_model(m, p, (size_t)st.st_size))) {
    gpux__error_prefix(rc, "%s: ", path);
    gpux_model_free(m);
    return rc;
  }
  /* the file's pages under the copies again: reading the data around them (the next tensor's
   * header, a large folio of the page cache) maps some of them back */
  for (int i = 0; i < m->n_graphs; i++)
    for (int v = 0; v < m->graphs[i]->n_values; v++)
      if (m->graphs[i]->values[v].pb) gpux__model_release(m, m->graphs[i]->values[v].pb, m->graphs[i]->values[v].pb_len);
  *out = m;
  return 0;
}

void gpux_model_free(gpux_model *m) {
  if (!m) return;
  for (int i = 0; i < m->n_graphs; i++) {
    gpux__graph *g = m->graphs[i];
    for (int v = 0; v < g->n_values; v++) gpux_tensor_free(&g->values[v].init);
    for (int n = 0; n < g->n_nodes; n++)
      for (int a = 0; a < g->nodes[n].n_attrs; a++) {
        gpux__attr *at = &g->nodes[n].attrs[a];
        if (at->t) gpux_tensor_free(at->t);
        if (at->tensors) for (int j = 0; j < at->n; j++) gpux_tensor_free(&at->tensors[j]);
      }
    free(g->values);
    free(g->nodes);
    free(g->hash);
    free(g->dead_start);
    free(g->dead_after);
  }
  free(m->graphs);
  for (int i = 0; i < m->n_ext_maps; i++)
    if (m->ext_maps[i]) munmap(m->ext_maps[i], m->ext_sizes[i]);
  free(m->ext_maps);
  free(m->ext_sizes);
  if (m->map) {
    if (m->map_size) munmap(m->map, m->map_size);
    else free(m->map);
  }
  gpux__arena_free(&m->arena);
  free(m->path);
  free(m->dir);
  pthread_mutex_destroy(&m->lock);
  free(m);
}

/* ---- model queries ---- */

int gpux_model_input_count(const gpux_model *m) { return m->graph->n_inputs; }
int gpux_model_output_count(const gpux_model *m) { return m->graph->n_outputs; }

static int value_info(const gpux__graph *g, int id, gpux_value_info *info) {
  const gpux__value *v = &g->values[id];
  *info = v->info;
  info->name = v->name;
  if (!v->has_info) { info->ndim = -1; info->dtype = 0; info->kind = 0; }
  return 0;
}

int gpux_model_input_info(const gpux_model *m, int i, gpux_value_info *info) {
  if (i < 0 || i >= m->graph->n_inputs) return gpux__error(GPUX_E_INVALID, "input index %d out of range", i);
  return value_info(m->graph, m->graph->inputs[i], info);
}

int gpux_model_output_info(const gpux_model *m, int i, gpux_value_info *info) {
  if (i < 0 || i >= m->graph->n_outputs) return gpux__error(GPUX_E_INVALID, "output index %d out of range", i);
  return value_info(m->graph, m->graph->outputs[i], info);
}

int gpux_model_node_count(const gpux_model *m) { return m->graph->n_nodes; }

const char *gpux_model_node_op(const gpux_model *m, int i) {
  if (i < 0 || i >= m->graph->n_nodes) return NULL;
  return m->graph->nodes[i].op_type;
}

const char *gpux_model_node_name(const gpux_model *m, int i) {
  if (i < 0 || i >= m->graph->n_nodes) return NULL;
  return m->graph->nodes[i].name ? m->graph->nodes[i].name : "";
}

int64_t gpux_model_ir_version(const gpux_model *m) { return m->ir_version; }
