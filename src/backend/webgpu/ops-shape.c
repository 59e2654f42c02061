/* ops-shape.c — WGSL kernels that move data: Reshape/Flatten/Squeeze/Unsqueeze as aliases (no
 * copy; Transpose too when it moves only axes of length 1), Transpose/Expand/Slice/Split/
 * DepthToSpace/SpaceToDepth as strided copies (a Split of up to four outputs in one pass),
 * Concat (up to four inputs in one pass), Gather/GatherElements, Tile, Pad and Trilu as index
 * maps. Parameters that decide shapes
 * (starts, pads, repeats, perm...) must be known when planning; they are baked into the shader.
 * Data may be float32 or integers held as i32. */
#include "backend/webgpu/wg.h"
#include <stdio.h>

static int data_type(wg_build *b, int slot, int *type) {
  const gpux_tensor *t = gpux__wg_in(b, slot);
  if (!t) return gpux__wg_decline(b, "input %d is missing", slot);
  switch (t->dtype) {
  case GPUX_DT_FLOAT: case GPUX_DT_FLOAT16: case GPUX_DT_BFLOAT16: *type = WG_F32; return 0;
  case GPUX_DT_BOOL: case GPUX_DT_INT8: case GPUX_DT_UINT8: case GPUX_DT_INT16: case GPUX_DT_UINT16:
  case GPUX_DT_INT32: case GPUX_DT_INT64: *type = WG_I32; return 0;
  }
  return gpux__wg_decline(b, "%s data (the GPU path holds floats and integers)", gpux_dtype_name(t->dtype));
}

static int op_alias(wg_build *b) {
  int type, rc = data_type(b, 0, &type);
  if (rc) return rc;
  return gpux__wg_alias(b, 0, 0);
}

/* out (viewed as view_dims) = in read at base + sum(coord * strides) */
static int strided_copy(wg_build *b, int in, int out, int view_ndim, const int64_t *view_dims, const int64_t *strides,
                        int64_t base) {
  int type, rc = data_type(b, in, &type);
  if (rc) return rc;
  wg_ew e;
  memset(&e, 0, sizeof e);
  e.n = 1;
  e.in[0] = in;
  e.type[0] = type;
  e.custom = 1;
  e.view_ndim = view_ndim;
  for (int d = 0; d < view_ndim; d++) e.view_dims[d] = view_dims[d], e.strides[0][d] = strides[d];
  e.base[0] = base;
  e.expr = "a0";
  e.out = out;
  e.out_type = type;
  return gpux__wg_ew2(b, &e);
}

static int op_transpose(wg_build *b) {
  const gpux_tensor *x = gpux__wg_in(b, 0), *y = gpux__wg_out(b, 0);
  if (!x || !y) return gpux__wg_decline(b, "missing input");
  int r = x->ndim;
  int64_t st[GPUX_MAX_DIMS], ost[GPUX_MAX_DIMS];
  int perm[GPUX_MAX_DIMS];
  gpux__wg_strides(x, st);
  const gpux__attr *pa = gpux__node_attr(gpux__wg_node(b), "perm");
  for (int d = 0; d < r; d++) {
    int64_t p = pa && pa->n == r ? pa->ints[d] : r - 1 - d;
    if (p < 0) p += r;
    if (p < 0 || p >= r) return gpux__wg_decline(b, "bad perm");
    ost[d] = st[p];
    perm[d] = (int)p;
  }
  /* A permutation that keeps the axes longer than 1 in their order moves only axes of length 1
   * (a decoder step's [batch, 1, heads, head_dim] -> [batch, heads, 1, head_dim]): the elements
   * stay where they are, so the output is the input under another shape, like a Reshape. */
  int last = -1, same = 1;
  for (int d = 0; d < r && same; d++) {
    if (x->dims[perm[d]] == 1) continue;
    if (perm[d] < last) same = 0;
    last = perm[d];
  }
  if (same) return op_alias(b);
  return strided_copy(b, 0, 0, r, y->dims, ost, 0);
}

static int op_expand(wg_build *b) {
  const gpux_tensor *x = gpux__wg_in(b, 0), *y = gpux__wg_out(b, 0);
  if (!x || !y) return gpux__wg_decline(b, "missing input");
  int64_t st[GPUX_MAX_DIMS];
  gpux__wg_bcast_strides(x, y, st);
  return strided_copy(b, 0, 0, y->ndim, y->dims, st, 0);
}

/* Reads a 1-D integer input known when planning; -1 when absent. */
static int const_ints(wg_build *b, int slot, int64_t *vals, int cap) {
  const gpux_tensor *t = gpux__wg_in(b, slot);
  if (!t) return -1;
  if (gpux__wg_need_const(b, slot)) return GPUX_E_UNSUPPORTED;
  int64_t n = gpux_tensor_count(t);
  if (n > cap) return gpux__wg_decline(b, "input %d has too many values", slot);
  for (int64_t i = 0; i < n; i++) vals[i] = gpux__load_i64(t->dtype, t->data, i);
  return (int)n;
}

static int attr_ints(wg_build *b, const char *name, int64_t *vals, int cap) {
  const gpux__attr *a = gpux__node_attr(gpux__wg_node(b), name);
  if (!a || a->type != GPUX_ATTR_INTS) return -1;
  if (a->n > cap) return gpux__wg_decline(b, "attribute %s has too many values", name);
  for (int i = 0; i < a->n; i++) vals[i] = a->ints[i];
  return a->n;
}

static int op_slice(wg_build *b) {
  const gpux_tensor *x = gpux__wg_in(b, 0), *y = gpux__wg_out(b, 0);
  if (!x || !y) return gpux__wg_decline(b, "missing input");
  int r = x->ndim;
  int64_t starts[GPUX_MAX_DIMS], ends[GPUX_MAX_DIMS], axes[GPUX_MAX_DIMS], steps[GPUX_MAX_DIMS];
  int ns, ne, na, nst;
  if (gpux__wg_opset(b) >= 10) {
    ns = const_ints(b, 1, starts, GPUX_MAX_DIMS);
    ne = const_ints(b, 2, ends, GPUX_MAX_DIMS);
    na = const_ints(b, 3, axes, GPUX_MAX_DIMS);
    nst = const_ints(b, 4, steps, GPUX_MAX_DIMS);
  } else {
    ns = attr_ints(b, "starts", starts, GPUX_MAX_DIMS);
    ne = attr_ints(b, "ends", ends, GPUX_MAX_DIMS);
    na = attr_ints(b, "axes", axes, GPUX_MAX_DIMS);
    nst = -1;
  }
  if (ns == GPUX_E_UNSUPPORTED || ne == GPUX_E_UNSUPPORTED || na == GPUX_E_UNSUPPORTED || nst == GPUX_E_UNSUPPORTED)
    return GPUX_E_UNSUPPORTED;
  if (ns < 0 || ne != ns || (na >= 0 && na != ns) || (nst >= 0 && nst != ns)) return gpux__wg_decline(b, "bad slice parameters");
  int64_t st[GPUX_MAX_DIMS], ost[GPUX_MAX_DIMS], base = 0;
  gpux__wg_strides(x, st);
  for (int d = 0; d < r; d++) ost[d] = st[d];
  for (int i = 0; i < ns; i++) {
    int64_t ax = na >= 0 ? axes[i] : i;
    if (ax < 0) ax += r;
    if (ax < 0 || ax >= r) return gpux__wg_decline(b, "bad axis");
    int64_t dim = x->dims[ax], step = nst >= 0 ? steps[i] : 1, s = starts[i], e = ends[i];
    if (step == 0) return gpux__wg_decline(b, "slice step 0");
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    if (step > 0) {
      s = s < 0 ? 0 : s > dim ? dim : s;
      e = e < 0 ? 0 : e > dim ? dim : e;
    } else {
      s = s < 0 ? 0 : s > dim - 1 ? dim - 1 : s;
      e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
    }
    int64_t len = step > 0 ? (e - s + step - 1) / step : (s - e + (-step) - 1) / (-step);
    if (len < 0) len = 0;
    if (len != y->dims[ax]) return gpux__wg_decline(b, "slice length disagrees with shape inference");
    if (len > 0) base += s * st[ax];
    ost[ax] = st[ax] * step;
  }
  return strided_copy(b, 0, 0, r, y->dims, ost, base);
}

static void kernel_head(wg_build *b, wg_str *s, int64_t total, uint32_t *gx, uint32_t *gy);

/* The one-pass kernel of Split and Concat: a tensor `whole` (binding bw, `total` elements viewed as
 * [outer, A, inner]) and n parts (bindings bp) that each hold `lens[k]` of the axis in turn. With
 * `scatter`, each element of the whole is written to its part (Split), else each element of the
 * whole is read from its part (Concat). Declines with `mismatch` when the lengths do not add up
 * to A. */
static int axis_ranges_pass(wg_build *b, int64_t total, int64_t inner, int64_t A, int n, const int64_t *lens, int bw,
                            const int *bp, int scatter, const char *mismatch) {
  wg_str s = {0};
  uint32_t gx, gy;
  kernel_head(b, &s, total, &gx, &gy);
  gpux__wg_cat(&s, "  let inner = i %% %lluu;\n  let t = i / %lluu;\n  let a = t %% %lluu;\n  let outer = t / %lluu;\n",
               (unsigned long long)inner, (unsigned long long)inner, (unsigned long long)A, (unsigned long long)A);
  int64_t start = 0;
  for (int k = 0; k < n; k++) {
    gpux__wg_cat(&s, k ? "  else " : "  ");
    if (k < n - 1) gpux__wg_cat(&s, "if (a < %lluu) ", (unsigned long long)(start + lens[k]));
    if (scatter)
      gpux__wg_cat(&s, "{ b%d[(outer * %lluu + a - %lluu) * %lluu + inner] = b%d[i]; }\n", bp[k],
                   (unsigned long long)lens[k], (unsigned long long)start, (unsigned long long)inner, bw);
    else
      gpux__wg_cat(&s, "{ b%d[i] = b%d[(outer * %lluu + a - %lluu) * %lluu + inner]; }\n", bw, bp[k],
                   (unsigned long long)lens[k], (unsigned long long)start, (unsigned long long)inner);
    start += lens[k];
  }
  gpux__wg_cat(&s, "}\n");
  if (start != A) {
    gpux__wg_str_free(&s);
    return gpux__wg_decline(b, mismatch);
  }
  int rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  return rc;
}

/* Split of up to four outputs as one dispatch: each input element, viewed as [outer, axis, inner],
 * goes to the output whose range of the axis holds it (a decoder's fused query/key/value
 * projection split in one pass instead of three). 1 when it does not apply. */
static int split_one_pass(wg_build *b, const gpux_tensor *x, int ax) {
  const gpux__node *n = gpux__wg_node(b);
  int n_out = gpux__wg_n_out(b), type, rc;
  if (n_out < 2 || n_out > 4) return 1;
  for (int k = 0; k < n_out; k++)
    if (n->out[k] < 0 || !gpux__wg_out(b, k)) return 1;
  int64_t total = gpux_tensor_count(x), inner = 1, A = x->dims[ax];
  if (!total) return 1;
  for (int d = ax + 1; d < x->ndim; d++) inner *= x->dims[d];
  if ((rc = data_type(b, 0, &type))) return rc;
  int bx = gpux__wg_bind_in(b, 0, type), by[4];
  if (bx < 0) return GPUX_E_UNSUPPORTED;
  for (int k = 0; k < n_out; k++)
    if ((by[k] = gpux__wg_bind_out(b, k, type)) < 0) return GPUX_E_UNSUPPORTED;
  int64_t lens[4];
  for (int k = 0; k < n_out; k++) lens[k] = gpux__wg_out(b, k)->dims[ax];
  return axis_ranges_pass(b, total, inner, A, n_out, lens, bx, by, 1, "split sizes do not add up to the axis");
}

static int op_split(wg_build *b) {
  const gpux_tensor *x = gpux__wg_in(b, 0);
  if (!x) return gpux__wg_decline(b, "missing input");
  const gpux__attr *aa = gpux__node_attr(gpux__wg_node(b), "axis");
  int64_t ax = aa ? aa->i : 0;
  if (ax < 0) ax += x->ndim;
  if (ax < 0 || ax >= x->ndim) return gpux__wg_decline(b, "bad axis");
  int64_t st[GPUX_MAX_DIMS], off = 0;
  gpux__wg_strides(x, st);
  int rc = split_one_pass(b, x, (int)ax);
  if (rc <= 0) return rc;
  for (int k = 0; k < gpux__wg_n_out(b); k++) {
    const gpux_tensor *y = gpux__wg_out(b, k);
    const gpux__node *n = gpux__wg_node(b);
    if (n->out[k] < 0) { /* unused output: its size still shifts the next ones */
      return gpux__wg_decline(b, "an omitted Split output");
    }
    rc = strided_copy(b, 0, k, y->ndim, y->dims, st, off * st[ax]);
    if (rc) return rc;
    off += y->dims[ax];
  }
  return 0;
}

static int op_depth_space(wg_build *b) {
  const gpux_tensor *x = gpux__wg_in(b, 0), *y = gpux__wg_out(b, 0);
  if (!x || !y || x->ndim != 4) return gpux__wg_decline(b, "not 4-D");
  const gpux__attr *ba = gpux__node_attr(gpux__wg_node(b), "blocksize");
  int64_t bs = ba ? ba->i : 0;
  if (bs <= 0) return gpux__wg_decline(b, "bad blocksize");
  int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
  int64_t vd[6], vs[6];
  if (!strcmp(gpux__wg_node(b)->op_type, "DepthToSpace")) {
    const char *mode = "DCR";
    const gpux__attr *ma = gpux__node_attr(gpux__wg_node(b), "mode");
    if (ma && ma->s) mode = ma->s;
    int64_t Co = C / (bs * bs);
    /* output viewed as [N, Co, H, bs1, W, bs2] */
    int64_t v[6] = {N, Co, H, bs, W, bs};
    memcpy(vd, v, sizeof v);
    int64_t hw = H * W;
    if (!strcmp(mode, "DCR")) { /* input channel = (bs1 * bs + bs2) * Co + c */
      int64_t s[6] = {C * hw, hw, W, bs * Co * hw, 1, Co * hw};
      memcpy(vs, s, sizeof s);
    } else { /* CRD: input channel = c * bs * bs + bs1 * bs + bs2 */
      int64_t s[6] = {C * hw, bs * bs * hw, W, bs * hw, 1, hw};
      memcpy(vs, s, sizeof s);
    }
  } else {
    int64_t Ho = H / bs, Wo = W / bs;
    const gpux__attr *ma = gpux__node_attr(gpux__wg_node(b), "mode");
    if (ma && ma->s && !strcmp(ma->s, "CRD")) {
      /* output channel = c * bs * bs + bs1 * bs + bs2: viewed as [N, C, bs1, bs2, Ho, Wo] */
      int64_t v[6] = {N, C, bs, bs, Ho, Wo};
      int64_t s[6] = {C * H * W, H * W, W, 1, bs * W, bs};
      memcpy(vd, v, sizeof v);
      memcpy(vs, s, sizeof s);
    } else {
      /* output channel = (bs1 * bs + bs2) * C + c: viewed as [N, bs1, bs2, C, Ho, Wo]; input h = ho*bs + bs1 */
      int64_t v[6] = {N, bs, bs, C, Ho, Wo};
      int64_t s[6] = {C * H * W, W, 1, H * W, bs * W, bs};
      memcpy(vd, v, sizeof v);
      memcpy(vs, s, sizeof s);
    }
  }
  return strided_copy(b, 0, 0, 6, vd, vs, 0);
}

/* ---- index maps: out[i] = ok ? X[src] : fill, with src/ok computed from the output coordinates ---- */

/* Emits "let cD = ..." (i32) for the coordinates of flat index i in dims. */
static void coords(wg_str *s, int r, const int64_t *dims, const char *idx, const char *name) {
  if (r == 0) return;
  gpux__wg_cat(s, "  var r_%s = %s;\n", name, idx);
  for (int d = r - 1; d >= 1; d--)
    gpux__wg_cat(s, "  let %s%d = i32(r_%s %% %lluu); r_%s = r_%s / %lluu;\n", name, d, name, (unsigned long long)dims[d], name, name,
                 (unsigned long long)dims[d]);
  gpux__wg_cat(s, "  let %s0 = i32(r_%s);\n", name, name);
}

static void kernel_head(wg_build *b, wg_str *s, int64_t total, uint32_t *gx, uint32_t *gy) {
  gpux__wg_grid(b, (uint64_t)(total + 255) / 256, gx, gy);
  gpux__wg_decls(b, s);
  gpux__wg_cat(s, "@compute @workgroup_size(256)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, "
                  "@builtin(local_invocation_index) li: u32) {\n"
                  "  let i = (wid.y * %uu + wid.x) * 256u + li;\n  if (i >= %lluu) { return; }\n",
               *gx, (unsigned long long)total);
}

/* Concat of up to four non-empty inputs as one dispatch: each output element, viewed as [outer,
 * axis, inner], reads the input whose range of the axis holds it (a decoder's cache and its new
 * position in one pass instead of two). 1 when it does not apply. */
static int concat_one_pass(wg_build *b, const gpux_tensor *y, int ax) {
  int slot[4], n = 0, type = -1, rc;
  for (int k = 0; k < gpux__wg_n_in(b); k++) {
    const gpux_tensor *x = gpux__wg_in(b, k);
    if (!x || !gpux_tensor_count(x)) continue;
    int t;
    if ((rc = data_type(b, k, &t))) return rc;
    if (n == 4 || (type >= 0 && t != type)) return 1;
    type = t;
    slot[n++] = k;
  }
  int64_t total = gpux_tensor_count(y), inner = 1, A = y->dims[ax];
  if (n < 2 || !total) return 1;
  for (int d = ax + 1; d < y->ndim; d++) inner *= y->dims[d];
  int bx[4], by;
  for (int k = 0; k < n; k++)
    if ((bx[k] = gpux__wg_bind_in(b, slot[k], type)) < 0) return GPUX_E_UNSUPPORTED;
  if ((by = gpux__wg_bind_out(b, 0, type)) < 0) return GPUX_E_UNSUPPORTED;
  int64_t lens[4];
  for (int k = 0; k < n; k++) lens[k] = gpux__wg_in(b, slot[k])->dims[ax];
  return axis_ranges_pass(b, total, inner, A, n, lens, by, bx, 0, "concatenated sizes do not add up to the axis");
}

static int op_concat(wg_build *b) {
  const gpux_tensor *y = gpux__wg_out(b, 0);
  if (!y) return gpux__wg_decline(b, "missing output");
  int r = y->ndim, type, rc;
  const gpux__attr *aa = gpux__node_attr(gpux__wg_node(b), "axis");
  int64_t ax = aa ? aa->i : 0;
  if (ax < 0) ax += r;
  if (ax < 0 || ax >= r) return gpux__wg_decline(b, "bad axis");
  if ((rc = concat_one_pass(b, y, (int)ax)) <= 0) return rc;
  int64_t ost[GPUX_MAX_DIMS], off = 0;
  gpux__wg_strides(y, ost);
  for (int k = 0; k < gpux__wg_n_in(b); k++) {
    const gpux_tensor *x = gpux__wg_in(b, k);
    if (!x) continue;
    if ((rc = data_type(b, k, &type))) return rc;
    int64_t total = gpux_tensor_count(x);
    if (!total) continue;
    int bx = gpux__wg_bind_in(b, k, type), by = gpux__wg_bind_out(b, 0, type);
    if (bx < 0 || by < 0) return GPUX_E_UNSUPPORTED;
    wg_str s = {0};
    uint32_t gx, gy;
    kernel_head(b, &s, total, &gx, &gy);
    coords(&s, r, x->dims, "i", "c");
    gpux__wg_cat(&s, "  b%d[%lldi", by, (long long)(off * ost[ax])); /* typed literals: see gpux__wg_ew2 */
    for (int d = 0; d < r; d++) gpux__wg_cat(&s, " + c%d * %lldi", d, (long long)ost[d]);
    gpux__wg_cat(&s, "] = b%d[i];\n}\n", bx);
    rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
    gpux__wg_str_free(&s);
    if (rc) return rc;
    off += x->dims[ax];
  }
  return 0;
}

static int op_gather(wg_build *b) {
  const gpux_tensor *x = gpux__wg_in(b, 0), *ix = gpux__wg_in(b, 1), *y = gpux__wg_out(b, 0);
  if (!x || !ix || !y) return gpux__wg_decline(b, "missing input");
  int type, rc = data_type(b, 0, &type);
  if (rc) return rc;
  const gpux__attr *aa = gpux__node_attr(gpux__wg_node(b), "axis");
  int64_t ax = aa ? aa->i : 0;
  if (ax < 0) ax += x->ndim;
  if (ax < 0 || ax >= x->ndim) return gpux__wg_decline(b, "bad axis");
  int64_t inner = 1, dimA = x->dims[ax], q = gpux_tensor_count(ix), total = gpux_tensor_count(y);
  for (int d = (int)ax + 1; d < x->ndim; d++) inner *= x->dims[d];
  if (!total) return 0;
  int bx = gpux__wg_bind_in(b, 0, type), bi = gpux__wg_bind_in(b, 1, WG_I32), by = gpux__wg_bind_out(b, 0, type);
  if (bx < 0 || bi < 0 || by < 0) return GPUX_E_UNSUPPORTED;
  wg_str s = {0};
  uint32_t gx, gy;
  kernel_head(b, &s, total, &gx, &gy);
  gpux__wg_cat(&s, "  let inner = i %% %lluu;\n  let t = i / %lluu;\n  let qi = t %% %lluu;\n  let outer = t / %lluu;\n",
               (unsigned long long)inner, (unsigned long long)inner, (unsigned long long)q, (unsigned long long)q);
  gpux__wg_cat(&s, "  var k = b%d[qi];\n  if (k < 0) { k = k + %lldi; }\n  k = clamp(k, 0i, %lldi);\n", bi, (long long)dimA,
               (long long)(dimA - 1));
  gpux__wg_cat(&s, "  b%d[i] = b%d[(outer * %lluu + u32(k)) * %lluu + inner];\n}\n", by, bx, (unsigned long long)dimA,
               (unsigned long long)inner);
  rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  return rc;
}

static int op_gather_elements(wg_build *b) {
  const gpux_tensor *x = gpux__wg_in(b, 0), *ix = gpux__wg_in(b, 1), *y = gpux__wg_out(b, 0);
  if (!x || !ix || !y || x->ndim != ix->ndim) return gpux__wg_decline(b, "missing input");
  int type, rc = data_type(b, 0, &type);
  if (rc) return rc;
  int r = x->ndim;
  const gpux__attr *aa = gpux__node_attr(gpux__wg_node(b), "axis");
  int64_t ax = aa ? aa->i : 0;
  if (ax < 0) ax += r;
  if (ax < 0 || ax >= r) return gpux__wg_decline(b, "bad axis");
  int64_t total = gpux_tensor_count(y), st[GPUX_MAX_DIMS];
  if (!total) return 0;
  gpux__wg_strides(x, st);
  int bx = gpux__wg_bind_in(b, 0, type), bi = gpux__wg_bind_in(b, 1, WG_I32), by = gpux__wg_bind_out(b, 0, type);
  if (bx < 0 || bi < 0 || by < 0) return GPUX_E_UNSUPPORTED;
  wg_str s = {0};
  uint32_t gx, gy;
  kernel_head(b, &s, total, &gx, &gy);
  coords(&s, r, ix->dims, "i", "c");
  gpux__wg_cat(&s, "  var k = b%d[i];\n  if (k < 0) { k = k + %lldi; }\n  k = clamp(k, 0i, %lldi);\n", bi, (long long)x->dims[ax],
               (long long)(x->dims[ax] - 1));
  gpux__wg_cat(&s, "  b%d[i] = b%d[u32(0", by, bx);
  for (int d = 0; d < r; d++) {
    if (d == ax) gpux__wg_cat(&s, " + k * %lldi", (long long)st[d]);
    else gpux__wg_cat(&s, " + c%d * %lldi", d, (long long)st[d]);
  }
  gpux__wg_cat(&s, ")];\n}\n");
  rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  return rc;
}

static int op_tile(wg_build *b) {
  const gpux_tensor *x = gpux__wg_in(b, 0), *y = gpux__wg_out(b, 0);
  if (!x || !y || x->ndim != y->ndim) return gpux__wg_decline(b, "missing input");
  int type, rc = data_type(b, 0, &type);
  if (rc) return rc;
  int r = x->ndim;
  int64_t total = gpux_tensor_count(y), st[GPUX_MAX_DIMS];
  if (!total) return 0;
  gpux__wg_strides(x, st);
  int bx = gpux__wg_bind_in(b, 0, type), by = gpux__wg_bind_out(b, 0, type);
  if (bx < 0 || by < 0) return GPUX_E_UNSUPPORTED;
  wg_str s = {0};
  uint32_t gx, gy;
  kernel_head(b, &s, total, &gx, &gy);
  coords(&s, r, y->dims, "i", "c");
  gpux__wg_cat(&s, "  b%d[i] = b%d[u32(0", by, bx);
  for (int d = 0; d < r; d++) gpux__wg_cat(&s, " + (c%d %% %lld) * %lld", d, (long long)x->dims[d], (long long)st[d]);
  gpux__wg_cat(&s, ")];\n}\n");
  rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  return rc;
}

static int op_pad(wg_build *b) {
  const gpux_tensor *x = gpux__wg_in(b, 0), *y = gpux__wg_out(b, 0);
  if (!x || !y) return gpux__wg_decline(b, "missing input");
  int type, rc = data_type(b, 0, &type);
  if (rc) return rc;
  int r = x->ndim;
  int64_t pads[2 * GPUX_MAX_DIMS], axes[GPUX_MAX_DIMS], begin[GPUX_MAX_DIMS] = {0};
  int np, na = -1;
  const char *mode = "constant";
  const gpux__attr *ma = gpux__node_attr(gpux__wg_node(b), "mode");
  if (ma && ma->s) mode = ma->s;
  double fill = 0;
  int fill_input = 0; /* the pad value is read from input 2 at run time */
  if (gpux__wg_opset(b) >= 11) {
    np = const_ints(b, 1, pads, 2 * GPUX_MAX_DIMS);
    const gpux_tensor *cv = gpux__wg_in(b, 2);
    if (cv && gpux_tensor_count(cv) > 0) {
      if (gpux__wg_is_const(b, 2)) fill = gpux_tensor_get_f64(cv, 0);
      else fill_input = 1;
    }
    na = const_ints(b, 3, axes, GPUX_MAX_DIMS);
  } else {
    np = attr_ints(b, gpux__node_attr(gpux__wg_node(b), "paddings") ? "paddings" : "pads", pads, 2 * GPUX_MAX_DIMS);
    const gpux__attr *va = gpux__node_attr(gpux__wg_node(b), "value");
    if (va) fill = va->f;
  }
  if (np == GPUX_E_UNSUPPORTED || na == GPUX_E_UNSUPPORTED) return GPUX_E_UNSUPPORTED;
  int n_ax = na >= 0 ? na : r;
  if (np != 2 * n_ax) return gpux__wg_decline(b, "bad pads");
  for (int i = 0; i < n_ax; i++) {
    int64_t a = na >= 0 ? axes[i] : i;
    if (a < 0) a += r;
    if (a < 0 || a >= r) return gpux__wg_decline(b, "bad axis");
    begin[a] = pads[i];
  }
  int64_t total = gpux_tensor_count(y), st[GPUX_MAX_DIMS];
  if (!total) return 0;
  if (!gpux_tensor_count(x) && strcmp(mode, "constant")) return gpux__wg_decline(b, "%s padding of an empty tensor", mode);
  gpux__wg_strides(x, st);
  int bx = gpux_tensor_count(x) ? gpux__wg_bind_in(b, 0, type) : -2, by = gpux__wg_bind_out(b, 0, type);
  int bv = fill_input ? gpux__wg_bind_in(b, 2, type) : -2;
  if (bx == -1 || by < 0 || bv == -1) return GPUX_E_UNSUPPORTED;
  wg_str s = {0};
  uint32_t gx, gy;
  kernel_head(b, &s, total, &gx, &gy);
  coords(&s, r, y->dims, "i", "c");
  gpux__wg_cat(&s, "  var ok = true;\n  var src = 0;\n");
  for (int d = 0; d < r; d++) {
    int64_t n = x->dims[d];
    gpux__wg_cat(&s, "  {\n    var k = c%d - %lldi;\n", d, (long long)begin[d]);
    if (!strcmp(mode, "constant")) gpux__wg_cat(&s, "    if (k < 0 || k >= %lldi) { ok = false; }\n", (long long)n);
    else if (!strcmp(mode, "edge")) gpux__wg_cat(&s, "    k = clamp(k, 0i, %lldi);\n", (long long)(n - 1));
    else if (!strcmp(mode, "wrap")) gpux__wg_cat(&s, "    k = ((k %% %lld) + %lld) %% %lld;\n", (long long)n, (long long)n, (long long)n);
    else if (!strcmp(mode, "reflect")) {
      if (n == 1) gpux__wg_cat(&s, "    k = 0;\n");
      else
        gpux__wg_cat(&s, "    let per = %lld;\n    var m = ((k %% per) + per) %% per;\n    if (m >= %lld) { m = per - m; }\n    k = m;\n",
                     (long long)(2 * (n - 1)), (long long)n);
    } else {
      gpux__wg_str_free(&s);
      return gpux__wg_decline(b, "Pad mode '%s'", mode);
    }
    gpux__wg_cat(&s, "    src = src + k * %lldi;\n  }\n", (long long)st[d]);
  }
  char fb[48];
  const char *fv = type == WG_F32 ? gpux__wg_float(fb, (float)fill) : (snprintf(fb, sizeof fb, "%lld", (long long)fill), fb);
  if (bv >= 0) snprintf(fb, sizeof fb, "b%d[0]", bv), fv = fb;
  if (bx >= 0) gpux__wg_cat(&s, "  if (ok) { b%d[i] = b%d[u32(src)]; } else { b%d[i] = %s; }\n}\n", by, bx, by, fv);
  else gpux__wg_cat(&s, "  b%d[i] = %s;\n}\n", by, fv);
  rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  return rc;
}

static int op_trilu(wg_build *b) {
  const gpux_tensor *x = gpux__wg_in(b, 0), *y = gpux__wg_out(b, 0);
  if (!x || !y || x->ndim < 2) return gpux__wg_decline(b, "Trilu needs 2-D");
  int type, rc = data_type(b, 0, &type);
  if (rc) return rc;
  int64_t k = 0;
  if (gpux__wg_in(b, 1)) {
    int64_t kv[1];
    int nk = const_ints(b, 1, kv, 1);
    if (nk < 0) return GPUX_E_UNSUPPORTED;
    if (nk == 1) k = kv[0];
  }
  const gpux__attr *ua = gpux__node_attr(gpux__wg_node(b), "upper");
  int upper = ua ? (int)ua->i : 1;
  int64_t total = gpux_tensor_count(y), R = x->dims[x->ndim - 2], C = x->dims[x->ndim - 1];
  if (!total) return 0;
  int bx = gpux__wg_bind_in(b, 0, type), by = gpux__wg_bind_out(b, 0, type);
  if (bx < 0 || by < 0) return GPUX_E_UNSUPPORTED;
  wg_str s = {0};
  uint32_t gx, gy;
  kernel_head(b, &s, total, &gx, &gy);
  gpux__wg_cat(&s, "  let col = i32(i %% %lluu);\n  let row = i32((i / %lluu) %% %lluu);\n", (unsigned long long)C,
               (unsigned long long)C, (unsigned long long)R);
  if (k > (1 << 30)) k = 1 << 30; /* beyond any matrix: keeps i32 literals valid */
  if (k < -(1 << 30)) k = -(1 << 30);
  gpux__wg_cat(&s, "  let keep = col - row %s %lld;\n", upper ? ">=" : "<=", (long long)k);
  gpux__wg_cat(&s, "  b%d[i] = select(%s, b%d[i], keep);\n}\n", by, type == WG_F32 ? "0.0" : "0", bx);
  rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  return rc;
}

/* CumSum / CumProd: one thread per line along the axis, in order. */
static int op_scan(wg_build *b) {
  const gpux_tensor *x = gpux__wg_in(b, 0), *y = gpux__wg_out(b, 0);
  if (!x || !y || x->ndim < 1) return gpux__wg_decline(b, "missing input");
  int type;
  if (gpux__wg_is_f32(x->dtype)) type = WG_F32;
  else if (x->dtype == GPUX_DT_INT32) type = WG_I32;
  else return gpux__wg_decline(b, "scan of %s", gpux_dtype_name(x->dtype));
  int64_t av[1];
  int na = const_ints(b, 1, av, 1);
  if (na == GPUX_E_UNSUPPORTED) return na;
  if (na != 1) return gpux__wg_decline(b, "axis not known");
  int64_t ax = av[0] < 0 ? av[0] + x->ndim : av[0];
  if (ax < 0 || ax >= x->ndim) return gpux__wg_decline(b, "bad axis");
  const gpux__node *n = gpux__wg_node(b);
  const gpux__attr *ea = gpux__node_attr(n, "exclusive"), *ra = gpux__node_attr(n, "reverse");
  int excl = ea && ea->i, rev = ra && ra->i, prod = !strcmp(n->op_type, "CumProd");
  int64_t len = x->dims[ax], inner = 1, total = gpux_tensor_count(x);
  for (int d = (int)ax + 1; d < x->ndim; d++) inner *= x->dims[d];
  int64_t lines = len ? total / len : 0;
  if (!lines) return 0;
  int bx = gpux__wg_bind_in(b, 0, type), by = gpux__wg_bind_out(b, 0, type);
  if (bx < 0 || by < 0) return GPUX_E_UNSUPPORTED;
  typedef unsigned long long ull;
  wg_str s = {0};
  uint32_t gx, gy;
  kernel_head(b, &s, lines, &gx, &gy);
  const char *init = type == WG_F32 ? (prod ? "1.0" : "0.0") : (prod ? "1" : "0"), *op = prod ? "*" : "+";
  gpux__wg_cat(&s, "  let base = (i / %lluu) * %lluu + i %% %lluu;\n  var acc = %s;\n", (ull)inner, (ull)(inner * len), (ull)inner, init);
  gpux__wg_cat(&s, "  for (var t = 0u; t < %lluu; t = t + 1u) {\n", (ull)len);
  if (rev) gpux__wg_cat(&s, "    let k = base + (%lluu - t) * %lluu;\n", (ull)(len - 1), (ull)inner);
  else gpux__wg_cat(&s, "    let k = base + t * %lluu;\n", (ull)inner);
  if (excl) gpux__wg_cat(&s, "    let v = b%d[k];\n    b%d[k] = acc;\n    acc = acc %s v;\n  }\n}\n", bx, by, op);
  else gpux__wg_cat(&s, "    acc = acc %s b%d[k];\n    b%d[k] = acc;\n  }\n}\n", op, bx, by);
  int rc = gpux__wg_dispatch(b, &s, gx, gy, 1);
  gpux__wg_str_free(&s);
  return rc;
}

/* ScatterElements / ScatterND: the output is a copy of the data, then one invocation applies the
 * updates in order (the order decides which of duplicate indices wins; floats have no atomics). */
static int op_scatter(wg_build *b) {
  const gpux__node *n = gpux__wg_node(b);
  const gpux_tensor *x = gpux__wg_in(b, 0), *ix = gpux__wg_in(b, 1), *up = gpux__wg_in(b, 2), *y = gpux__wg_out(b, 0);
  if (!x || !ix || !up || !y) return gpux__wg_decline(b, "missing input");
  int type, rc = data_type(b, 0, &type);
  if (rc) return rc;
  if (up->dtype != x->dtype) return gpux__wg_decline(b, "updates of another type");
  const gpux__attr *ra = gpux__node_attr(n, "reduction");
  const char *red = ra && ra->s ? ra->s : "none";
  char upd[64];
  if (!strcmp(red, "none")) snprintf(upd, sizeof upd, "u");
  else if (!strcmp(red, "add")) snprintf(upd, sizeof upd, "o + u");
  else if (!strcmp(red, "mul")) snprintf(upd, sizeof upd, "o * u");
  else if (!strcmp(red, "max")) snprintf(upd, sizeof upd, "max(o, u)");
  else if (!strcmp(red, "min")) snprintf(upd, sizeof upd, "min(o, u)");
  else return gpux__wg_decline(b, "reduction '%s'", red);
  typedef unsigned long long ull;
  int64_t total = gpux_tensor_count(y), nup = gpux_tensor_count(up), st[GPUX_MAX_DIMS];
  if (!total) return 0;
  gpux__wg_strides(x, st);
  /* the copy */
  int64_t ident[GPUX_MAX_DIMS];
  gpux__wg_strides(y, ident);
  if ((rc = strided_copy(b, 0, 0, y->ndim, y->dims, ident, 0))) return rc;
  if (!nup) return 0;
  int bi = gpux__wg_bind_in(b, 1, WG_I32), bu = gpux__wg_bind_in(b, 2, type), by = gpux__wg_bind_out(b, 0, type);
  if (bi < 0 || bu < 0 || by < 0) return GPUX_E_UNSUPPORTED;
  wg_str s = {0};
  gpux__wg_decls(b, &s);
  gpux__wg_cat(&s, "@compute @workgroup_size(1)\nfn main() {\n  for (var e = 0u; e < %lluu; e = e + 1u) {\n", (ull)nup);
  if (!strcmp(n->op_type, "ScatterElements") || !strcmp(n->op_type, "Scatter")) {
    const gpux__attr *aa = gpux__node_attr(n, "axis");
    int64_t ax = aa ? aa->i : 0;
    if (ax < 0) ax += x->ndim;
    if (ax < 0 || ax >= x->ndim || ix->ndim != x->ndim) { gpux__wg_str_free(&s); return gpux__wg_decline(b, "bad axis"); }
    coords(&s, ix->ndim, ix->dims, "e", "c");
    gpux__wg_cat(&s, "    var k = b%d[e];\n    if (k < 0) { k = k + %lldi; }\n    let t = u32(0", bi, (long long)x->dims[ax]);
    for (int d = 0; d < x->ndim; d++) {
      if (d == ax) gpux__wg_cat(&s, " + k * %lldi", (long long)st[d]);
      else gpux__wg_cat(&s, " + c%d * %lldi", d, (long long)st[d]);
    }
    gpux__wg_cat(&s, ");\n");
  } else { /* ScatterND: indices [..., q], updates [..., data dims q..] */
    int q = (int)ix->dims[ix->ndim - 1];
    if (q < 1 || q > x->ndim) { gpux__wg_str_free(&s); return gpux__wg_decline(b, "bad index depth"); }
    int64_t slice = 1;
    for (int d = q; d < x->ndim; d++) slice *= x->dims[d];
    gpux__wg_cat(&s, "    let row = e / %lluu;\n    let inner = e %% %lluu;\n    var t = inner;\n", (ull)slice, (ull)slice);
    for (int d = 0; d < q; d++)
      gpux__wg_cat(&s, "    { var k = b%d[row * %du + %du]; if (k < 0) { k = k + %lldi; } t = t + u32(k) * %lluu; }\n", bi, q, d,
                   (long long)x->dims[d], (ull)st[d]);
  }
  gpux__wg_cat(&s, "    let o = b%d[t];\n    let u = b%d[e];\n    b%d[t] = %s;\n  }\n}\n", by, bu, by, upd);
  rc = gpux__wg_dispatch(b, &s, 1, 1, 1);
  gpux__wg_str_free(&s);
  return rc;
}

const wg_op gpux__wg_ops_shape[] = {
  {"CumSum", op_scan},       {"CumProd", op_scan},
  {"ScatterElements", op_scatter}, {"ScatterND", op_scatter}, {"Scatter", op_scatter},
  {"Reshape", op_alias},     {"Flatten", op_alias},     {"Squeeze", op_alias},    {"Unsqueeze", op_alias},
  {"Transpose", op_transpose}, {"Expand", op_expand},   {"Slice", op_slice},      {"Split", op_split},
  {"DepthToSpace", op_depth_space}, {"SpaceToDepth", op_depth_space},
  {"Concat", op_concat},     {"Gather", op_gather},     {"GatherElements", op_gather_elements},
  {"Tile", op_tile},         {"Pad", op_pad},           {"Trilu", op_trilu},
  {0},
};
