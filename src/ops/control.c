/* control.c — control flow and container ops: If, Loop, Scan (their bodies run through the
 * executor's run_subgraph), sequences (SequenceEmpty/Construct/Insert/At/Erase/Length/Map,
 * SplitToSequence, ConcatFromSequence) and optionals (Optional, OptionalHasElement,
 * OptionalGetElement). These decide shapes from data, so shape-only mode does not apply. */
#include "ops/op.h"

#define NEEDS_DATA()                                                                  \
  do {                                                                                \
    if (k->shape_only) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "runs on the host"); \
  } while (0)

/* Moves a value into output i (or drops it when the output is omitted). */
static void move_out(gpux__kctx *k, int i, gpux_tensor *v) {
  if (i < k->n_out && k->out[i]) {
    gpux_tensor_free(k->out[i]);
    *k->out[i] = *v;
  } else {
    gpux_tensor_free(v);
  }
  memset(v, 0, sizeof *v);
}

/* A shallow view of t (no ownership), for passing caller-owned values into a body. */
static gpux_tensor view_of(const gpux_tensor *t) {
  gpux_tensor v = *t;
  v.owns_data = 0;
  v.n_items = t->n_items;
  return v;
}

static int scalar_bool(const gpux_tensor *t) {
  return t && t->data && gpux_tensor_count(t) > 0 && gpux__load_f64(t->dtype, t->data, 0) != 0;
}

/* ---- If ---- */

static int op_if(gpux__kctx *k) {
  NEEDS_DATA();
  const gpux_tensor *cond = IN(0);
  if (!cond || cond->kind != GPUX_KIND_TENSOR || gpux_tensor_count(cond) != 1)
    return gpux__kerr(k, GPUX_E_INVALID, "cond must be a one-element tensor");
  const gpux__graph *branch = gpux__attr_graph(k, scalar_bool(cond) ? "then_branch" : "else_branch");
  if (!branch) return gpux__kerr(k, GPUX_E_MODEL, "missing then_branch/else_branch");
  if (branch->n_outputs != k->n_out)
    return gpux__kerr(k, GPUX_E_MODEL, "branch has %d outputs, node has %d", branch->n_outputs, k->n_out);
  gpux_tensor few[8]; /* most Ifs have a few outputs: no allocation per run for them */
  gpux_tensor *outs = k->n_out <= 8 ? few : gpux__calloc((size_t)k->n_out + 1, sizeof *outs);
  if (!outs) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  memset(outs, 0, (size_t)k->n_out * sizeof *outs);
  int rc = k->run_subgraph(k, branch, NULL, 0, outs, k->n_out);
  for (int i = 0; i < k->n_out; i++) {
    if (!rc) move_out(k, i, &outs[i]);
    else gpux_tensor_free(&outs[i]);
  }
  if (outs != few) free(outs);
  return rc;
}

/* Stacks per-iteration tensors [iters] of equal shape into one [iters, ...shape] tensor, or
 * concatenates along `axis` with optional reversed order (Scan outputs). */
static int stack_outputs(gpux__kctx *k, gpux_tensor *parts, int n, int axis, int reverse, gpux_tensor *out) {
  memset(out, 0, sizeof *out);
  if (n == 0) return gpux_tensor_init(out, GPUX_DT_FLOAT, 1, (int64_t[]){0});
  const gpux_tensor *p0 = &parts[0];
  if (p0->kind != GPUX_KIND_TENSOR) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "scan outputs must be tensors");
  if (p0->ndim + 1 > GPUX_MAX_DIMS) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "rank too high");
  for (int i = 1; i < n; i++) {
    int same = parts[i].ndim == p0->ndim && parts[i].dtype == p0->dtype;
    for (int d = 0; same && d < p0->ndim; d++) same = parts[i].dims[d] == p0->dims[d];
    if (!same) return gpux__kerr(k, GPUX_E_SHAPE, "iteration %d produced a differently shaped scan output", i);
  }
  int64_t dims[GPUX_MAX_DIMS];
  int nd = p0->ndim + 1;
  if (axis < 0 || axis > p0->ndim) return gpux__kerr(k, GPUX_E_INVALID, "scan output axis %d out of range", axis);
  for (int d = 0, s = 0; d < nd; d++) dims[d] = d == axis ? n : p0->dims[s++];
  int rc = gpux_tensor_init(out, p0->dtype, nd, dims);
  if (rc) return gpux__kerr(k, rc, "%s", gpux_last_error());
  size_t es = gpux_dtype_size(p0->dtype);
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; d++) outer *= p0->dims[d];
  for (int d = axis; d < p0->ndim; d++) inner *= p0->dims[d];
  for (int i = 0; i < n; i++) {
    const gpux_tensor *src = &parts[reverse ? n - 1 - i : i];
    for (int64_t o = 0; o < outer; o++) {
      char *dst = (char *)out->data + ((o * n + i) * inner) * (int64_t)es;
      const char *from = (const char *)src->data + o * inner * (int64_t)es;
      if (p0->dtype == GPUX_DT_STRING) {
        for (int64_t e = 0; e < inner; e++) {
          const char *s = ((char *const *)from)[e];
          ((char **)dst)[e] = gpux__strdup(s ? s : "");
        }
      } else {
        memcpy(dst, from, (size_t)inner * es);
      }
    }
  }
  return 0;
}

/* ---- Loop ---- */

static int op_loop(gpux__kctx *k) {
  NEEDS_DATA();
  const gpux__graph *body = gpux__attr_graph(k, "body");
  if (!body) return gpux__kerr(k, GPUX_E_MODEL, "missing body");
  const gpux_tensor *max_trip = IN(0), *cond0 = IN(1);
  int n_carried = k->n_in - 2;
  if (n_carried < 0) n_carried = 0;
  int n_scan = body->n_outputs - 1 - n_carried;
  if (body->n_inputs != n_carried + 2 || n_scan < 0)
    return gpux__kerr(k, GPUX_E_MODEL, "body takes %d inputs and gives %d outputs for %d loop-carried values",
                      body->n_inputs, body->n_outputs, n_carried);
  int64_t trips = INT64_MAX;
  if (max_trip && max_trip->kind == GPUX_KIND_TENSOR && max_trip->data && gpux_tensor_count(max_trip) > 0)
    trips = gpux__load_i64(max_trip->dtype, max_trip->data, 0);
  int cond = cond0 && cond0->kind == GPUX_KIND_TENSOR && cond0->data ? scalar_bool(cond0) : 1;
  int rc = 0;
  /* state: the loop-carried values, owned here after the first iteration */
  gpux_tensor *state = gpux__calloc((size_t)n_carried + 1, sizeof *state);
  gpux_tensor *body_in = gpux__calloc((size_t)n_carried + 2, sizeof *body_in);
  gpux_tensor *body_out = gpux__calloc((size_t)body->n_outputs + 1, sizeof *body_out);
  gpux_tensor **scans = gpux__calloc((size_t)n_scan + 1, sizeof *scans);
  int n_iters = 0, cap_iters = 0;
  if (!state || !body_in || !body_out || !scans) { rc = gpux__kerr(k, GPUX_E_NOMEM, "out of memory"); goto done; }
  for (int i = 0; i < n_carried; i++) {
    const gpux_tensor *v = IN(2 + i);
    if (v) { if ((rc = gpux_tensor_copy(&state[i], v))) { gpux__kerr(k, rc, "%s", gpux_last_error()); goto done; } }
    else state[i].kind = GPUX_KIND_NONE;
  }
  int64_t iter_val = 0;
  uint8_t cond_val = 1;
  for (int64_t it = 0; it < trips && cond; it++) {
    iter_val = it;
    cond_val = 1;
    body_in[0] = (gpux_tensor){.kind = GPUX_KIND_TENSOR, .dtype = GPUX_DT_INT64, .ndim = 0, .data = &iter_val, .nbytes = 8};
    body_in[1] = (gpux_tensor){.kind = GPUX_KIND_TENSOR, .dtype = GPUX_DT_BOOL, .ndim = 0, .data = &cond_val, .nbytes = 1};
    for (int i = 0; i < n_carried; i++) body_in[2 + i] = view_of(&state[i]);
    if ((rc = k->run_subgraph(k, body, body_in, n_carried + 2, body_out, body->n_outputs))) goto done;
    cond = scalar_bool(&body_out[0]);
    gpux_tensor_free(&body_out[0]);
    for (int i = 0; i < n_carried; i++) {
      gpux_tensor_free(&state[i]);
      state[i] = body_out[1 + i];
      memset(&body_out[1 + i], 0, sizeof body_out[1 + i]);
    }
    if (n_scan) {
      if (n_iters == cap_iters) {
        cap_iters = cap_iters ? cap_iters * 2 : 8;
        for (int s = 0; s < n_scan; s++) {
          gpux_tensor *ns = gpux__realloc(scans[s], (size_t)cap_iters * sizeof *ns);
          if (!ns) { rc = gpux__kerr(k, GPUX_E_NOMEM, "out of memory"); goto done; }
          scans[s] = ns;
        }
      }
      for (int s = 0; s < n_scan; s++) {
        scans[s][n_iters] = body_out[1 + n_carried + s];
        memset(&body_out[1 + n_carried + s], 0, sizeof(gpux_tensor));
      }
    }
    n_iters++;
  }
  for (int i = 0; i < n_carried; i++) move_out(k, i, &state[i]);
  for (int s = 0; s < n_scan; s++) {
    gpux_tensor stacked;
    if (n_iters && scans[s][0].kind == GPUX_KIND_SEQUENCE) {
      /* a scan output of sequences: make a sequence of the per-iteration values (opset 13+) */
      rc = gpux__kerr(k, GPUX_E_UNSUPPORTED, "scan outputs of sequences are not supported");
      goto done;
    }
    if ((rc = stack_outputs(k, scans[s], n_iters, 0, 0, &stacked))) goto done;
    move_out(k, n_carried + s, &stacked);
  }
done:
  for (int s = 0; s < n_scan; s++) {
    for (int i = 0; scans && scans[s] && i < n_iters; i++) gpux_tensor_free(&scans[s][i]);
    if (scans) free(scans[s]);
  }
  if (state) for (int i = 0; i < n_carried; i++) gpux_tensor_free(&state[i]);
  if (body_out) for (int i = 0; i < body->n_outputs; i++) gpux_tensor_free(&body_out[i]);
  free(scans);
  free(state);
  free(body_in);
  free(body_out);
  return rc;
}

/* ---- Scan (opset 9+; opset 8 adds a batch axis and sequence_lens) ---- */

/* Slice `index` along `axis` of t into a new tensor. */
static int take_slice(const gpux_tensor *t, int axis, int64_t index, gpux_tensor *out) {
  int64_t dims[GPUX_MAX_DIMS];
  int nd = 0;
  for (int d = 0; d < t->ndim; d++) if (d != axis) dims[nd++] = t->dims[d];
  int rc = gpux_tensor_init(out, t->dtype, nd, dims);
  if (rc) return rc;
  size_t es = gpux_dtype_size(t->dtype);
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; d++) outer *= t->dims[d];
  for (int d = axis + 1; d < t->ndim; d++) inner *= t->dims[d];
  for (int64_t o = 0; o < outer; o++)
    memcpy((char *)out->data + o * inner * (int64_t)es,
           (const char *)t->data + ((o * t->dims[axis] + index) * inner) * (int64_t)es, (size_t)inner * es);
  return 0;
}

static int scan_run(gpux__kctx *k, const gpux__graph *body, int n_state, int n_scan_in,
                    const gpux_tensor *const *states_in, const gpux_tensor *const *scan_in,
                    const int64_t *in_axes, const int64_t *in_dirs, const int64_t *out_axes,
                    const int64_t *out_dirs, gpux_tensor *final_states, gpux_tensor *scan_out) {
  int n_scan_out = body->n_outputs - n_state, rc = 0;
  int64_t steps = -1;
  for (int j = 0; j < n_scan_in; j++) {
    int axis = (int)(in_axes ? in_axes[j] : 0);
    if (axis < 0) axis += scan_in[j]->ndim;
    if (axis < 0 || axis >= scan_in[j]->ndim) return gpux__kerr(k, GPUX_E_INVALID, "scan_input_axes[%d] out of range", j);
    int64_t len = scan_in[j]->dims[axis];
    if (steps >= 0 && len != steps) return gpux__kerr(k, GPUX_E_SHAPE, "scan inputs disagree on the sequence length");
    steps = len;
  }
  if (steps < 0) steps = 0;
  gpux_tensor *body_in = gpux__calloc((size_t)(n_state + n_scan_in) + 1, sizeof *body_in);
  gpux_tensor *body_out = gpux__calloc((size_t)body->n_outputs + 1, sizeof *body_out);
  gpux_tensor *parts = gpux__calloc((size_t)(steps * n_scan_out) + 1, sizeof *parts);
  if (!body_in || !body_out || !parts) { rc = gpux__kerr(k, GPUX_E_NOMEM, "out of memory"); goto done; }
  for (int i = 0; i < n_state; i++)
    if ((rc = gpux_tensor_copy(&final_states[i], states_in[i]))) goto done;
  for (int64_t t = 0; t < steps; t++) {
    for (int i = 0; i < n_state; i++) body_in[i] = view_of(&final_states[i]);
    for (int j = 0; j < n_scan_in; j++) {
      int axis = (int)(in_axes ? in_axes[j] : 0);
      if (axis < 0) axis += scan_in[j]->ndim;
      int64_t idx = in_dirs && in_dirs[j] ? steps - 1 - t : t;
      if ((rc = take_slice(scan_in[j], axis, idx, &body_in[n_state + j]))) goto done;
    }
    rc = k->run_subgraph(k, body, body_in, n_state + n_scan_in, body_out, body->n_outputs);
    for (int j = 0; j < n_scan_in; j++) gpux_tensor_free(&body_in[n_state + j]);
    if (rc) goto done;
    for (int i = 0; i < n_state; i++) {
      gpux_tensor_free(&final_states[i]);
      final_states[i] = body_out[i];
      memset(&body_out[i], 0, sizeof body_out[i]);
    }
    for (int s = 0; s < n_scan_out; s++) {
      parts[s * steps + t] = body_out[n_state + s];
      memset(&body_out[n_state + s], 0, sizeof body_out[0]);
    }
  }
  for (int s = 0; s < n_scan_out; s++) {
    int rank = steps ? parts[s * steps].ndim + 1 : 1;
    int axis = (int)(out_axes ? out_axes[s] : 0);
    if (axis < 0) axis += rank;
    if ((rc = stack_outputs(k, &parts[s * steps], (int)steps, axis, out_dirs ? (int)out_dirs[s] : 0, &scan_out[s]))) goto done;
  }
done:
  if (parts) for (int64_t i = 0; i < steps * n_scan_out; i++) gpux_tensor_free(&parts[i]);
  if (body_out) for (int i = 0; i < body->n_outputs; i++) gpux_tensor_free(&body_out[i]);
  free(parts);
  free(body_in);
  free(body_out);
  if (rc && !k->status) gpux__kerr(k, rc, "%s", gpux_last_error());
  return rc;
}

static int op_scan(gpux__kctx *k) {
  NEEDS_DATA();
  const gpux__graph *body = gpux__attr_graph(k, "body");
  if (!body) return gpux__kerr(k, GPUX_E_MODEL, "missing body");
  int n_scan_in = (int)gpux__attr_int(k, "num_scan_inputs", 0);
  int opset8 = k->opset < 9;
  int first = opset8 ? 1 : 0; /* opset 8: optional sequence_lens first */
  int n_state = k->n_in - first - n_scan_in;
  int n_scan_out = body->n_outputs - n_state;
  if (n_state < 0 || n_scan_out < 0) return gpux__kerr(k, GPUX_E_MODEL, "num_scan_inputs does not match the inputs");
  if (body->n_inputs != n_state + n_scan_in)
    return gpux__kerr(k, GPUX_E_MODEL, "the body takes %d inputs, not %d states and %d scan inputs", body->n_inputs,
                      n_state, n_scan_in);
  const int64_t *in_axes = NULL, *in_dirs = NULL, *out_axes = NULL, *out_dirs = NULL;
  /* each list, when given, has one entry per scan input or output */
  if ((gpux__attr_ints(k, "scan_input_axes", &in_axes) < n_scan_in && in_axes) ||
      (gpux__attr_ints(k, opset8 ? "directions" : "scan_input_directions", &in_dirs) < n_scan_in && in_dirs) ||
      (gpux__attr_ints(k, "scan_output_axes", &out_axes) < n_scan_out && out_axes) ||
      (gpux__attr_ints(k, "scan_output_directions", &out_dirs) < n_scan_out && out_dirs))
    return gpux__kerr(k, GPUX_E_MODEL, "a scan axes or directions attribute has fewer entries than scan values");
  const gpux_tensor *states[64], *scans[64];
  if (n_state > 64 || n_scan_in > 64 || n_scan_out > 64) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "too many scan values");
  for (int i = first; i < k->n_in; i++) /* states and scan inputs are not optional (an empty name) */
    if (!IN(i)) return gpux__kerr(k, GPUX_E_MODEL, "input %d (a %s) is missing", i, i < first + n_state ? "state" : "scan input");
  gpux_tensor final_states[64], scan_out[64];
  memset(final_states, 0, sizeof final_states);
  memset(scan_out, 0, sizeof scan_out);
  int rc = 0;
  if (!opset8) {
    for (int i = 0; i < n_state; i++) states[i] = IN(i);
    for (int j = 0; j < n_scan_in; j++) scans[j] = IN(n_state + j);
    if ((rc = scan_run(k, body, n_state, n_scan_in, states, scans, in_axes, in_dirs, out_axes, out_dirs, final_states, scan_out)))
      goto done;
    for (int i = 0; i < n_state; i++) move_out(k, i, &final_states[i]);
    for (int s = 0; s < n_scan_out; s++) move_out(k, n_state + s, &scan_out[s]);
    return 0;
  }
  /* opset 8: axis 0 of every input is the batch; scan along axis 1 (of the full tensor) */
  if (IN(0)) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "Scan-8 sequence_lens is not supported");
  int64_t batch = n_state ? IN(first)->dims[0] : IN(first + n_state)->dims[0];
  gpux_tensor *per_state = gpux__calloc((size_t)(batch * (n_state + n_scan_out)) + 1, sizeof *per_state);
  if (!per_state) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  for (int64_t b = 0; b < batch && !rc; b++) {
    gpux_tensor st_b[64], sc_b[64];
    for (int i = 0; i < n_state && !rc; i++) { rc = take_slice(IN(first + i), 0, b, &st_b[i]); states[i] = &st_b[i]; }
    for (int j = 0; j < n_scan_in && !rc; j++) { rc = take_slice(IN(first + n_state + j), 0, b, &sc_b[j]); scans[j] = &sc_b[j]; }
    if (!rc) rc = scan_run(k, body, n_state, n_scan_in, states, scans, NULL, in_dirs, NULL, NULL,
                           &per_state[b * (n_state + n_scan_out)], &per_state[b * (n_state + n_scan_out) + n_state]);
    for (int i = 0; i < n_state; i++) gpux_tensor_free(&st_b[i]);
    for (int j = 0; j < n_scan_in; j++) gpux_tensor_free(&sc_b[j]);
  }
  for (int o = 0; o < n_state + n_scan_out && !rc; o++) {
    gpux_tensor *parts = gpux__calloc((size_t)batch + 1, sizeof *parts);
    if (!parts) { rc = GPUX_E_NOMEM; break; }
    for (int64_t b = 0; b < batch; b++) parts[b] = per_state[b * (n_state + n_scan_out) + o];
    gpux_tensor stacked;
    rc = stack_outputs(k, parts, (int)batch, 0, 0, &stacked);
    free(parts);
    if (!rc) move_out(k, o, &stacked);
  }
  for (int64_t i = 0; i < batch * (n_state + n_scan_out); i++) gpux_tensor_free(&per_state[i]);
  free(per_state);
done:
  for (int i = 0; i < 64; i++) { gpux_tensor_free(&final_states[i]); gpux_tensor_free(&scan_out[i]); }
  return rc;
}

/* ---- sequences ---- */

static gpux_tensor *seq_out(gpux__kctx *k, int i, int dtype) {
  gpux_tensor *o = k->out[i];
  gpux_tensor_free(o);
  o->kind = GPUX_KIND_SEQUENCE;
  o->dtype = dtype;
  return o;
}

static int seq_append_copy(gpux__kctx *k, gpux_tensor *seq, const gpux_tensor *t) {
  gpux_tensor *items = gpux__realloc(seq->items, (size_t)(seq->n_items + 1) * sizeof *items);
  if (!items) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  seq->items = items;
  int rc = gpux_tensor_copy(&seq->items[seq->n_items], t);
  if (rc) return gpux__kerr(k, rc, "%s", gpux_last_error());
  seq->n_items++;
  return 0;
}

static const gpux_tensor *seq_in(gpux__kctx *k, int i) {
  const gpux_tensor *s = IN(i);
  if (!s || s->kind != GPUX_KIND_SEQUENCE) {
    gpux__kerr(k, GPUX_E_INVALID, "input %d must be a sequence", i);
    return NULL;
  }
  return s;
}

static int seq_position(gpux__kctx *k, const gpux_tensor *pos, int n, int allow_end, int dflt, int *out) {
  int64_t p = dflt;
  if (pos && pos->data && gpux_tensor_count(pos) > 0) p = gpux__load_i64(pos->dtype, pos->data, 0);
  int64_t hi = allow_end ? n : n - 1;
  if (p < -n || p > hi) return gpux__kerr(k, GPUX_E_INVALID, "position %lld out of range for %d items", (long long)p, n);
  *out = (int)(p < 0 ? p + n : p);
  return 0;
}

static int op_sequence_empty(gpux__kctx *k) {
  NEEDS_DATA();
  seq_out(k, 0, (int)gpux__attr_int(k, "dtype", GPUX_DT_FLOAT));
  return 0;
}

static int op_sequence_construct(gpux__kctx *k) {
  NEEDS_DATA();
  gpux_tensor *o = seq_out(k, 0, IN(0) ? IN(0)->dtype : GPUX_DT_FLOAT);
  for (int i = 0; i < k->n_in; i++) {
    int rc = seq_append_copy(k, o, IN(i));
    if (rc) return rc;
  }
  return 0;
}

static int op_sequence_insert(gpux__kctx *k) {
  NEEDS_DATA();
  const gpux_tensor *s = seq_in(k, 0), *t = IN(1);
  if (!s) return k->status;
  int pos, rc;
  if ((rc = seq_position(k, IN(2), s->n_items, 1, s->n_items, &pos))) return rc;
  gpux_tensor *o = seq_out(k, 0, t->dtype);
  for (int i = 0; i <= s->n_items; i++) {
    if (i == pos && (rc = seq_append_copy(k, o, t))) return rc;
    if (i < s->n_items && (rc = seq_append_copy(k, o, &s->items[i]))) return rc;
  }
  return 0;
}

static int op_sequence_erase(gpux__kctx *k) {
  NEEDS_DATA();
  const gpux_tensor *s = seq_in(k, 0);
  if (!s) return k->status;
  int pos, rc;
  if ((rc = seq_position(k, IN(1), s->n_items, 0, -1, &pos))) return rc;
  gpux_tensor *o = seq_out(k, 0, s->dtype);
  for (int i = 0; i < s->n_items; i++)
    if (i != pos && (rc = seq_append_copy(k, o, &s->items[i]))) return rc;
  return 0;
}

static int op_sequence_at(gpux__kctx *k) {
  NEEDS_DATA();
  const gpux_tensor *s = seq_in(k, 0);
  if (!s) return k->status;
  int pos, rc;
  if ((rc = seq_position(k, IN(1), s->n_items, 0, 0, &pos))) return rc;
  return gpux__out_copy(k, 0, &s->items[pos]);
}

static int op_sequence_length(gpux__kctx *k) {
  NEEDS_DATA();
  const gpux_tensor *s = seq_in(k, 0);
  if (!s) return k->status;
  gpux_tensor *o = gpux__out(k, 0, GPUX_DT_INT64, 0, NULL);
  if (!o) return k->status;
  *(int64_t *)o->data = s->n_items;
  return 0;
}

static int op_concat_from_sequence(gpux__kctx *k) {
  NEEDS_DATA();
  const gpux_tensor *s = seq_in(k, 0);
  if (!s) return k->status;
  if (s->n_items == 0) return gpux__kerr(k, GPUX_E_INVALID, "empty sequence");
  int new_axis = (int)gpux__attr_int(k, "new_axis", 0);
  const gpux_tensor *t0 = &s->items[0];
  int rank = t0->ndim + (new_axis ? 1 : 0), axis, rc;
  if ((rc = gpux__axis(k, gpux__attr_int(k, "axis", 0), rank, &axis))) return rc;
  if (new_axis) {
    gpux_tensor stacked;
    if ((rc = stack_outputs(k, s->items, s->n_items, axis, 0, &stacked))) return rc;
    gpux_tensor *o = k->out[0];
    gpux_tensor_free(o);
    *o = stacked;
    return 0;
  }
  int64_t dims[GPUX_MAX_DIMS], total = 0;
  for (int i = 0; i < s->n_items; i++) {
    const gpux_tensor *t = &s->items[i];
    if (t->ndim != t0->ndim || t->dtype != t0->dtype) return gpux__kerr(k, GPUX_E_SHAPE, "item %d has another rank or dtype", i);
    for (int d = 0; d < t0->ndim; d++)
      if (d != axis && t->dims[d] != t0->dims[d]) return gpux__kerr(k, GPUX_E_SHAPE, "item %d differs in dimension %d", i, d);
    total += t->dims[axis];
  }
  memcpy(dims, t0->dims, sizeof dims);
  dims[axis] = total;
  gpux_tensor *o = gpux__out(k, 0, t0->dtype, t0->ndim, dims);
  if (!o) return k->status;
  size_t es = gpux_dtype_size(t0->dtype);
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; d++) outer *= dims[d];
  for (int d = axis + 1; d < t0->ndim; d++) inner *= dims[d];
  int64_t off = 0;
  for (int i = 0; i < s->n_items; i++) {
    const gpux_tensor *t = &s->items[i];
    int64_t run = t->dims[axis] * inner;
    for (int64_t q = 0; q < outer; q++) {
      char *dst = (char *)o->data + (q * total * inner + off) * (int64_t)es;
      const char *src = (const char *)t->data + q * run * (int64_t)es;
      if (t0->dtype == GPUX_DT_STRING)
        for (int64_t e = 0; e < run; e++) ((char **)dst)[e] = gpux__strdup(((char *const *)src)[e] ? ((char *const *)src)[e] : "");
      else
        memcpy(dst, src, (size_t)run * es);
    }
    off += run;
  }
  return 0;
}

static int op_split_to_sequence(gpux__kctx *k) {
  NEEDS_DATA();
  const gpux_tensor *x = IN(0), *split = IN(1);
  int axis, rc;
  if ((rc = gpux__axis(k, gpux__attr_int(k, "axis", 0), x->ndim, &axis))) return rc;
  int keepdims = (int)gpux__attr_int(k, "keepdims", 1);
  int64_t len = x->dims[axis];
  int64_t sizes[4096];
  int n = 0;
  if (split && (gpux_tensor_count(split) > 0 || split->ndim == 0)) {
    if (split->ndim == 0) {
      int64_t chunk = gpux__load_i64(split->dtype, split->data, 0);
      if (chunk <= 0) return gpux__kerr(k, GPUX_E_INVALID, "split must be positive");
      for (int64_t at = 0; at < len && n < 4096; at += chunk) sizes[n++] = GPUX__MIN(chunk, len - at);
    } else {
      if ((n = gpux__read_ints(k, split, sizes, 4096)) < 0) return n;
      int64_t sum = 0;
      for (int i = 0; i < n; i++) sum += sizes[i];
      if (sum != len) return gpux__kerr(k, GPUX_E_SHAPE, "split sizes add to %lld, dimension is %lld", (long long)sum, (long long)len);
    }
    keepdims = 1;
  } else {
    if (len > 4096) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "too many pieces");
    for (int64_t i = 0; i < len; i++) sizes[n++] = 1;
  }
  gpux_tensor *o = seq_out(k, 0, x->dtype);
  size_t es = gpux_dtype_size(x->dtype);
  int64_t outer = 1, inner = 1, off = 0;
  for (int d = 0; d < axis; d++) outer *= x->dims[d];
  for (int d = axis + 1; d < x->ndim; d++) inner *= x->dims[d];
  for (int i = 0; i < n; i++) {
    int64_t dims[GPUX_MAX_DIMS];
    int nd = 0;
    for (int d = 0; d < x->ndim; d++) {
      if (d == axis && !keepdims) continue;
      dims[nd++] = d == axis ? sizes[i] : x->dims[d];
    }
    gpux_tensor piece;
    if ((rc = gpux_tensor_init(&piece, x->dtype, nd, dims))) return gpux__kerr(k, rc, "%s", gpux_last_error());
    for (int64_t q = 0; q < outer; q++) {
      const char *src = (const char *)x->data + ((q * len + off) * inner) * (int64_t)es;
      char *dst = (char *)piece.data + q * sizes[i] * inner * (int64_t)es;
      if (x->dtype == GPUX_DT_STRING)
        for (int64_t e = 0; e < sizes[i] * inner; e++) ((char **)dst)[e] = gpux__strdup(((char *const *)src)[e] ? ((char *const *)src)[e] : "");
      else
        memcpy(dst, src, (size_t)(sizes[i] * inner) * es);
    }
    off += sizes[i];
    rc = seq_append_copy(k, o, &piece);
    gpux_tensor_free(&piece);
    if (rc) return rc;
  }
  return 0;
}

static int op_sequence_map(gpux__kctx *k) {
  NEEDS_DATA();
  const gpux__graph *body = gpux__attr_graph(k, "body");
  const gpux_tensor *s = seq_in(k, 0);
  if (!s) return k->status;
  if (!body || body->n_inputs != k->n_in || body->n_outputs != k->n_out)
    return gpux__kerr(k, GPUX_E_MODEL, "body does not match the node's inputs and outputs");
  int n = s->n_items, rc = 0;
  for (int o = 0; o < k->n_out; o++) seq_out(k, o, GPUX_DT_FLOAT);
  gpux_tensor *bin = gpux__calloc((size_t)k->n_in + 1, sizeof *bin);
  gpux_tensor *bout = gpux__calloc((size_t)k->n_out + 1, sizeof *bout);
  if (!bin || !bout) { free(bin); free(bout); return gpux__kerr(k, GPUX_E_NOMEM, "out of memory"); }
  for (int i = 0; i < n && !rc; i++) {
    for (int j = 0; j < k->n_in; j++) {
      const gpux_tensor *v = IN(j);
      if (v->kind == GPUX_KIND_SEQUENCE) {
        if (v->n_items != n) { rc = gpux__kerr(k, GPUX_E_SHAPE, "input sequences differ in length"); break; }
        bin[j] = view_of(&v->items[i]);
      } else {
        bin[j] = view_of(v);
      }
    }
    if (rc || (rc = k->run_subgraph(k, body, bin, k->n_in, bout, k->n_out))) break;
    for (int o = 0; o < k->n_out && !rc; o++) {
      k->out[o]->dtype = bout[o].dtype;
      rc = seq_append_copy(k, k->out[o], &bout[o]);
    }
    for (int o = 0; o < k->n_out; o++) gpux_tensor_free(&bout[o]);
  }
  free(bin);
  free(bout);
  return rc;
}

/* ---- optionals ---- */

static int op_optional(gpux__kctx *k) {
  NEEDS_DATA();
  const gpux_tensor *x = IN(0);
  if (x) return gpux__out_copy(k, 0, x);
  gpux_tensor *o = k->out[0];
  gpux_tensor_free(o);
  o->kind = GPUX_KIND_NONE;
  return 0;
}

static int op_optional_has_element(gpux__kctx *k) {
  NEEDS_DATA();
  const gpux_tensor *x = IN(0);
  gpux_tensor *o = gpux__out(k, 0, GPUX_DT_BOOL, 0, NULL);
  if (!o) return k->status;
  *(uint8_t *)o->data = x && x->kind != GPUX_KIND_NONE;
  return 0;
}

static int op_optional_get_element(gpux__kctx *k) {
  NEEDS_DATA();
  const gpux_tensor *x = IN(0);
  if (!x || x->kind == GPUX_KIND_NONE) return gpux__kerr(k, GPUX_E_INVALID, "the optional is empty");
  return gpux__out_copy(k, 0, x);
}

const gpux__op_def gpux__ops_control[] = {
  {"", "If", op_if},
  {"", "Loop", op_loop},
  {"", "Scan", op_scan},
  {"", "SequenceEmpty", op_sequence_empty},
  {"", "SequenceConstruct", op_sequence_construct},
  {"", "SequenceInsert", op_sequence_insert},
  {"", "SequenceErase", op_sequence_erase},
  {"", "SequenceAt", op_sequence_at},
  {"", "SequenceLength", op_sequence_length},
  {"", "SequenceMap", op_sequence_map},
  {"", "ConcatFromSequence", op_concat_from_sequence},
  {"", "SplitToSequence", op_split_to_sequence},
  {"", "Optional", op_optional},
  {"", "OptionalHasElement", op_optional_has_element},
  {"", "OptionalGetElement", op_optional_get_element},
  {0},
};
