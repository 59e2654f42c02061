/* test-webgpu-parity.c — backend parity (like ggml's test-backend-ops): every op the WebGPU
 * backend runs, on random inputs of several shapes and attribute settings, compared with the CPU
 * backend (rtol 1e-3, atol 1e-4), and checked to have run on the GPU rather than fallen back.
 * The common ops again in float16 and bfloat16 (both backends compute in float32 and round each
 * result; tolerance one unit in the last place of the type), and Cast to both on edge values,
 * bit for bit.
 * Each case is a one-node model built in memory; parameters that decide shapes (shapes, axes,
 * starts, pads...) are initializers, as in real models. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "gpux/gpux.h"
#include "onnx-writer.h"

#define MAX_IN 9

typedef struct {
  const char *name;
  int type;                     /* 1 float, 2 int, 7 ints, 6 floats (AttributeProto types) */
  int64_t i;
  float f;
  int n;
  int64_t ints[8];
  float floats[8];
  const char *s;                /* 3: string */
} attr;

typedef struct {
  int ndim;                     /* -1: input absent */
  int64_t dims[6];
  int dtype;                    /* 0: float32 random input */
  int n_vals;                   /* > 0: an initializer with these values */
  int64_t vals[16];
  float lo, hi;                 /* range of random float inputs (default -2..2) */
} operand;

typedef struct {
  const char *op;
  const char *domain;           /* of the op, when not the default (opset 1 of it imported) */
  int opset;
  operand in[MAX_IN];
  int n_in;
  attr attrs[6];
  int n_attrs;
  int n_out;                    /* outputs compared (default 1) */
  int dtype;                    /* of float inputs, float initializers and outputs (0: float32) */
  int out_dtype;                /* of the outputs, when not dtype (Cast) */
  const float *edge;            /* values for input 0 (repeated), instead of random ones */
  int n_edge;
} op_case;

static uint32_t rng = 12345;
static float frand(float lo, float hi) {
  rng = rng * 1664525u + 1013904223u;
  return lo + (hi - lo) * (float)(rng >> 8) / 16777216.0f;
}

static void write_attr(pbw *n, const attr *a) {
  pbw at = {0};
  pbw_str(&at, 1, a->name);
  switch (a->type) {
  case 1: pbw_key(&at, 2, 5); pbw_bytes(&at, &a->f, 4); break;
  case 2: pbw_int(&at, 3, a->i); break;
  case 3: pbw_str(&at, 4, a->s); break;
  case 6: for (int k = 0; k < a->n; k++) { pbw_key(&at, 7, 5); pbw_bytes(&at, &a->floats[k], 4); } break;
  case 7: for (int k = 0; k < a->n; k++) pbw_int(&at, 8, a->ints[k]); break;
  }
  pbw_int(&at, 20, a->type);
  pbw_msg(n, 5, &at);
}

/* float32 -> float16 / bfloat16 bits, round to nearest even. */
static uint16_t to16(int dtype, float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000, a = x & 0x7fffffff;
  if (dtype == GPUX_DT_BFLOAT16)
    return (uint16_t)(a > 0x7f800000 ? (x >> 16) | 0x40 : (x + 0x7fff + ((x >> 16) & 1)) >> 16);
  if (a >= 0x7f800000) return (uint16_t)(sign | 0x7c00 | (a > 0x7f800000 ? 0x200 : 0));
  if (a >= 0x477ff000) return (uint16_t)(sign | 0x7c00);
  if (a < 0x38800000) { /* subnormal */
    float m = fabsf(f) * 16777216.0f;
    return (uint16_t)(sign | (uint32_t)nearbyintf(m));
  }
  return (uint16_t)(sign | (((a + 0xfff + ((a >> 13) & 1)) >> 13) - (112 << 10)));
}

static void set_float(gpux_tensor *t, int64_t k, float v) {
  if (t->dtype == GPUX_DT_FLOAT) ((float *)t->data)[k] = v;
  else ((uint16_t *)t->data)[k] = to16(t->dtype, v);
}

/* A tensor value_info with a type but no shape (outputs: shapes come from inference). */
static void untyped_output(pbw *g, const char *name, int dtype) {
  pbw tt = {0}, tp = {0}, vi = {0};
  pbw_int(&tt, 1, dtype);
  pbw_msg(&tp, 1, &tt);
  pbw_str(&vi, 1, name);
  pbw_msg(&vi, 2, &tp);
  pbw_msg(g, 12, &vi);
}

static gpux_model *build(const op_case *c, gpux_tensor *inputs, int *n_inputs) {
  pbw g = {0}, n = {0}, m = {0};
  char names[MAX_IN][8];
  int fdt = c->dtype ? c->dtype : GPUX_DT_FLOAT;
  *n_inputs = 0;
  for (int i = 0; i < c->n_in; i++) {
    const operand *o = &c->in[i];
    snprintf(names[i], sizeof names[i], "x%d", i);
    pbw_str(&n, 1, o->ndim < 0 ? "" : names[i]);
  }
  int n_out = c->n_out ? c->n_out : 1;
  for (int k = 0; k < n_out; k++) pbw_str(&n, 2, k == 0 ? "y0" : k == 1 ? "y1" : "y2");
  pbw_str(&n, 3, "n");
  pbw_str(&n, 4, c->op);
  for (int a = 0; a < c->n_attrs; a++) write_attr(&n, &c->attrs[a]);
  if (c->domain) pbw_str(&n, 7, c->domain);
  pbw_msg(&g, 1, &n);
  pbw_str(&g, 2, c->op);
  for (int i = 0; i < c->n_in; i++) {
    const operand *o = &c->in[i];
    if (o->ndim < 0) continue;
    if (o->n_vals) { /* an initializer */
      int dt = o->dtype ? o->dtype : GPUX_DT_INT64;
      if (dt == GPUX_DT_FLOAT && fdt != GPUX_DT_FLOAT) {
        uint16_t h[16];
        for (int k = 0; k < o->n_vals; k++) h[k] = to16(fdt, (float)o->vals[k]);
        pbw_tensor(&g, 5, names[i], fdt, o->ndim, o->dims, h, (size_t)o->n_vals * 2);
      } else if (dt == GPUX_DT_FLOAT) {
        float f[16];
        for (int k = 0; k < o->n_vals; k++) f[k] = (float)o->vals[k];
        pbw_tensor(&g, 5, names[i], dt, o->ndim, o->dims, f, (size_t)o->n_vals * 4);
      } else if (dt == GPUX_DT_UINT8 || dt == GPUX_DT_INT8 || dt == GPUX_DT_INT32) {
        int32_t w[16];
        uint8_t u[16];
        for (int k = 0; k < o->n_vals; k++) w[k] = (int32_t)o->vals[k], u[k] = (uint8_t)o->vals[k];
        if (dt == GPUX_DT_INT32) pbw_tensor(&g, 5, names[i], dt, o->ndim, o->dims, w, (size_t)o->n_vals * 4);
        else pbw_tensor(&g, 5, names[i], dt, o->ndim, o->dims, u, (size_t)o->n_vals);
      } else {
        pbw_tensor(&g, 5, names[i], dt, o->ndim, o->dims, o->vals, (size_t)o->n_vals * 8);
      }
      continue;
    }
    int dt = o->dtype ? o->dtype : fdt; /* the case's float type, or random integers */
    pbw_value_info(&g, 11, names[i], dt, o->ndim, o->dims, NULL);
    gpux_tensor *t = &inputs[(*n_inputs)++];
    assert_int_equal(gpux_tensor_init(t, dt, o->ndim, o->dims), 0);
    float lo = o->lo || o->hi ? o->lo : -2.0f, hi = o->lo || o->hi ? o->hi : 2.0f;
    for (int64_t k = 0; k < gpux_tensor_count(t); k++) {
      if (dt == fdt) set_float(t, k, c->n_edge && i == 0 ? c->edge[k % c->n_edge] : frand(lo, hi));
      else if (dt == GPUX_DT_INT64) ((int64_t *)t->data)[k] = (int64_t)frand(-300.0f, 300.0f);
      else if (dt == GPUX_DT_INT32) ((int32_t *)t->data)[k] = (int32_t)frand(-300.0f, 300.0f);
      else if (dt == GPUX_DT_BOOL) ((uint8_t *)t->data)[k] = frand(0.0f, 1.0f) < 0.8f; /* one in five false */
      else if (dt == GPUX_DT_INT16 || dt == GPUX_DT_UINT16) ((uint16_t *)t->data)[k] = (uint16_t)frand(0.0f, 65536.0f);
      else ((uint8_t *)t->data)[k] = (uint8_t)frand(0.0f, 256.0f);
    }
  }
  for (int k = 0; k < n_out; k++) untyped_output(&g, k == 0 ? "y0" : k == 1 ? "y1" : "y2", c->out_dtype ? c->out_dtype : fdt);
  pbw os = {0};
  pbw_int(&m, 1, 8);
  pbw_str(&os, 1, "");
  pbw_int(&os, 2, c->opset ? c->opset : 17);
  pbw_msg(&m, 8, &os);
  if (c->domain) {
    pbw od = {0};
    pbw_str(&od, 1, c->domain);
    pbw_int(&od, 2, 1);
    pbw_msg(&m, 8, &od);
  }
  pbw_msg(&m, 7, &g);
  gpux_model *model = NULL;
  if (gpux_model_load_buffer(m.data, m.len, c->op, &model)) fail_msg("%s: %s", c->op, gpux_last_error());
  free(m.data);
  return model;
}

static int run_case(const op_case *c, int idx) {
  gpux_tensor inputs[MAX_IN], cpu_out[3], gpu_out[3];
  int n_inputs, n_out = c->n_out ? c->n_out : 1, bad = 0;
  memset(inputs, 0, sizeof inputs);
  gpux_model *m = build(c, inputs, &n_inputs);
  gpux_session *cs = NULL, *gs = NULL;
  gpux_session_options co = {.backend = GPUX_BACKEND_CPU}, go = {.backend = GPUX_BACKEND_WEBGPU};
  if (gpux_session_create(m, &co, &cs)) fail_msg("%s: %s", c->op, gpux_last_error());
  if (gpux_session_create(m, &go, &gs)) fail_msg("%s: %s", c->op, gpux_last_error());
  if (gpux_session_run(cs, inputs, n_inputs, cpu_out, n_out)) fail_msg("case %d %s on the CPU: %s", idx, c->op, gpux_last_error());
  if (gpux_session_run(gs, inputs, n_inputs, gpu_out, n_out)) fail_msg("case %d %s on WebGPU: %s", idx, c->op, gpux_last_error());
  const char *why = NULL, *dev = gpux_session_node_device(gs, 0, &why);
  if (!dev || strcmp(dev, "webgpu")) {
    print_error("case %d %s: ran on %s (%s)\n", idx, c->op, dev ? dev : "?", why ? why : "");
    bad = 1;
  }
  /* float16: one unit in the last place (2^-10 relative); bfloat16: 2^-7; Cast: exact */
  double rtol = c->dtype == GPUX_DT_FLOAT16 ? 2e-3 : c->dtype == GPUX_DT_BFLOAT16 ? 1.6e-2 : 1e-3;
  double atol = c->dtype == GPUX_DT_FLOAT16 ? 1e-3 : c->dtype == GPUX_DT_BFLOAT16 ? 1e-2 : 1e-4;
  if (c->n_edge) rtol = atol = 0;
  for (int k = 0; k < n_out; k++) {
    gpux_compare_report r;
    if (gpu_out[k].dtype != cpu_out[k].dtype) {
      print_error("case %d %s output %d: %s on WebGPU, %s on the CPU\n", idx, c->op, k, gpux_dtype_name(gpu_out[k].dtype),
                  gpux_dtype_name(cpu_out[k].dtype));
      bad = 1;
    } else if (gpux_tensor_compare(&gpu_out[k], &cpu_out[k], rtol, atol, &r)) {
      print_error("case %d %s output %d: %s\n", idx, c->op, k, r.message);
      bad = 1;
    }
    gpux_tensor_free(&gpu_out[k]);
    gpux_tensor_free(&cpu_out[k]);
  }
  for (int i = 0; i < n_inputs; i++) gpux_tensor_free(&inputs[i]);
  gpux_session_free(cs);
  gpux_session_free(gs);
  gpux_model_free(m);
  return bad;
}

/* shorthands */
#define T(...) {.ndim = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), .dims = {__VA_ARGS__}}
#define TR(lo_, hi_, ...) {.ndim = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), .dims = {__VA_ARGS__}, .lo = lo_, .hi = hi_}
#define SCALAR {.ndim = 0}
#define ABSENT {.ndim = -1}
#define INTS(...) {.ndim = 1, .dims = {(int64_t)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t))}, \
                   .n_vals = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), .vals = {__VA_ARGS__}}
#define AI(n_, v) {.name = n_, .type = 2, .i = v}
#define AF(n_, v) {.name = n_, .type = 1, .f = v}
#define AS(n_, v) {.name = n_, .type = 3, .s = v}
#define AIS(n_, ...) {.name = n_, .type = 7, .n = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), .ints = {__VA_ARGS__}}

static const char *const unary_ops[] = {"Relu", "Sigmoid", "Tanh", "Exp", "Erf", "Abs", "Neg", "Floor", "Ceil",
                                        "Sin", "Cos", "Softplus", "Softsign", "HardSwish", "Elu", "Selu",
                                        "Celu", "Mish", "Sign", "Round", "Atan", "Sinh"};

static void test_unary(void **state) {
  (void)state;
  int bad = 0, idx = 0;
  const operand shapes[] = {T(7), T(2, 3, 5), T(1, 3, 33, 65), SCALAR};
  for (size_t o = 0; o < sizeof unary_ops / sizeof *unary_ops; o++)
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
      op_case c = {.op = unary_ops[o], .n_in = 1, .in = {shapes[s]}};
      bad |= run_case(&c, idx++);
    }
  const op_case more[] = {
    {.op = "Log", .n_in = 1, .in = {TR(0.01f, 5.0f, 4, 50)}},
    {.op = "Sqrt", .n_in = 1, .in = {TR(0.0f, 5.0f, 4, 50)}},
    {.op = "Reciprocal", .n_in = 1, .in = {TR(0.5f, 5.0f, 4, 50)}},
    {.op = "LeakyRelu", .n_in = 1, .in = {T(3, 40)}, .attrs = {AF("alpha", 0.2f)}, .n_attrs = 1},
    {.op = "HardSigmoid", .n_in = 1, .in = {T(3, 40)}, .attrs = {AF("alpha", 0.3f), AF("beta", 0.4f)}, .n_attrs = 2},
    {.op = "Gelu", .opset = 20, .n_in = 1, .in = {T(3, 40)}},
    {.op = "Gelu", .opset = 20, .n_in = 1, .in = {T(3, 40)}, .attrs = {AS("approximate", "tanh")}, .n_attrs = 1},
    {.op = "Clip", .n_in = 3, .in = {T(3, 40), {.ndim = 0, .dtype = GPUX_DT_FLOAT, .n_vals = 1, .vals = {-1}},
                                     {.ndim = 0, .dtype = GPUX_DT_FLOAT, .n_vals = 1, .vals = {1}}}},
    {.op = "Clip", .n_in = 2, .in = {T(3, 40), SCALAR}},
    {.op = "Identity", .n_in = 1, .in = {T(3, 4)}},
  };
  for (size_t k = 0; k < sizeof more / sizeof *more; k++) bad |= run_case(&more[k], idx++);
  assert_int_equal(bad, 0);
}

static void test_binary(void **state) {
  (void)state;
  static const char *const ops[] = {"Add", "Sub", "Mul", "Max", "Min", "PRelu"};
  const operand pairs[][2] = {
    {T(2, 3, 4), T(2, 3, 4)}, {T(2, 3, 4), T(4)}, {T(2, 1, 4), T(1, 3, 1)},
    {T(5), SCALAR}, {T(1000), T(1000)}, {T(3, 1, 5, 1), T(7, 1, 1)},
  };
  int bad = 0, idx = 0;
  for (size_t o = 0; o < sizeof ops / sizeof *ops; o++)
    for (size_t p = 0; p < sizeof pairs / sizeof *pairs; p++) {
      if (!strcmp(ops[o], "PRelu") && p == 2) continue; /* slope broadcasts one way only */
      if (!strcmp(ops[o], "PRelu") && p == 5) continue;
      op_case c = {.op = ops[o], .n_in = 2, .in = {pairs[p][0], pairs[p][1]}};
      bad |= run_case(&c, idx++);
    }
  const op_case more[] = {
    {.op = "Div", .n_in = 2, .in = {T(4, 9), TR(0.5f, 3.0f, 9)}},
    {.op = "Pow", .n_in = 2, .in = {TR(0.1f, 3.0f, 4, 9), TR(-2.0f, 2.0f, 9)}},
    {.op = "Sum", .n_in = 3, .in = {T(4, 9), T(9), T(4, 1)}},
    {.op = "Mean", .n_in = 2, .in = {T(4, 9), T(4, 9)}},
    {.op = "Max", .n_in = 4, .in = {T(2, 5), T(5), SCALAR, T(2, 1)}},
  };
  for (size_t k = 0; k < sizeof more / sizeof *more; k++) bad |= run_case(&more[k], idx++);
  assert_int_equal(bad, 0);
}

static void test_matmul_gemm(void **state) {
  (void)state;
  const op_case cases[] = {
    {.op = "MatMul", .n_in = 2, .in = {T(3, 4), T(4, 5)}},
    {.op = "MatMul", .n_in = 2, .in = {T(2, 3, 17, 9), T(9, 33)}},
    {.op = "MatMul", .n_in = 2, .in = {T(70, 130), T(130, 65)}},
    {.op = "MatMul", .n_in = 2, .in = {T(5), T(5, 3)}},
    {.op = "MatMul", .n_in = 2, .in = {T(2, 6, 5), T(5)}},
    {.op = "MatMul", .n_in = 2, .in = {T(2, 1, 4, 8), T(3, 8, 6)}},
    {.op = "MatMul", .n_in = 2, .in = {T(1, 256), T(256, 100)}},
    /* deep K over few outputs: split-K on GPU kernels (parts added by a second kernel) */
    {.op = "MatMul", .n_in = 2, .in = {T(4, 1030), T(1030, 8)}},
    {.op = "MatMul", .n_in = 2, .in = {T(2, 3, 520), T(520, 20)}},
    {.op = "Gemm", .n_in = 3, .in = {T(8, 12), T(12, 20), T(20)}},
    {.op = "Gemm", .n_in = 3, .in = {T(12, 8), T(20, 12), T(8, 1)},
     .attrs = {AI("transA", 1), AI("transB", 1), AF("alpha", 0.5f), AF("beta", 2.0f)}, .n_attrs = 4},
    {.op = "Gemm", .n_in = 2, .in = {T(65, 33), T(33, 70)}},
    {.op = "Gemm", .n_in = 3, .in = {T(3, 5), T(5, 4), SCALAR}},
    /* gpux.FusedMatMul (the rewrite's MatMul + bias + activation); the deep ones split K, where
     * the reduction kernel runs the epilogue */
    {.op = "FusedMatMul", .domain = "gpux", .n_in = 3, .in = {T(2, 5, 24), T(24, 40), T(40)},
     .attrs = {AS("activation", "Gelu")}, .n_attrs = 1},
    {.op = "FusedMatMul", .domain = "gpux", .n_in = 3, .in = {T(9, 24), T(40, 24), T(40)},
     .attrs = {AS("activation", "Gelu"), AS("approximate", "tanh"), AI("transB", 1)}, .n_attrs = 3},
    {.op = "FusedMatMul", .domain = "gpux", .n_in = 3, .in = {T(3, 33), T(33, 17), T(17)},
     .attrs = {AS("activation", "Relu")}, .n_attrs = 1},
    {.op = "FusedMatMul", .domain = "gpux", .n_in = 3, .in = {T(70, 20), T(20, 65), T(65)}},
    {.op = "FusedMatMul", .domain = "gpux", .n_in = 3, .in = {T(4, 1030), T(1030, 8), T(8)},
     .attrs = {AS("activation", "Gelu")}, .n_attrs = 1},
    {.op = "FusedMatMul", .domain = "gpux", .n_in = 3, .in = {T(2, 3, 520), T(20, 520), T(20)},
     .attrs = {AS("activation", "Gelu"), AS("approximate", "tanh"), AI("transB", 1)}, .n_attrs = 3},
    /* with a residual (input 3), also without a bias, also split */
    {.op = "FusedMatMul", .domain = "gpux", .n_in = 4, .in = {T(2, 5, 24), T(24, 40), T(40), T(2, 5, 40)},
     .attrs = {AS("activation", "Gelu")}, .n_attrs = 1},
    {.op = "FusedMatMul", .domain = "gpux", .n_in = 4, .in = {T(9, 24), T(24, 40), ABSENT, T(9, 40)}},
    {.op = "FusedMatMul", .domain = "gpux", .n_in = 4, .in = {T(4, 1030), T(1030, 8), T(8), T(4, 8)}},
    {.op = "FusedMatMul", .domain = "gpux", .n_in = 3, .in = {T(3, 32), T(32, 32), T(32)},
     .attrs = {AS("activation", "Tanh")}, .n_attrs = 1},
  };
  int bad = 0;
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) bad |= run_case(&cases[k], (int)k);
  assert_int_equal(bad, 0);
}

static void test_conv_pool(void **state) {
  (void)state;
  const op_case cases[] = {
    {.op = "Conv", .n_in = 3, .in = {T(1, 3, 9, 9), T(16, 3, 3, 3), T(16)}, .attrs = {AIS("pads", 1, 1, 1, 1)}, .n_attrs = 1},
    {.op = "Conv", .n_in = 2, .in = {T(2, 3, 10, 11), T(20, 3, 3, 3)}, .attrs = {AIS("strides", 2, 2)}, .n_attrs = 1},
    {.op = "Conv", .n_in = 2, .in = {T(1, 4, 8, 8), T(32, 2, 3, 3)}, .attrs = {AI("group", 2), AIS("pads", 1, 0, 1, 2)}, .n_attrs = 2},
    {.op = "Conv", .n_in = 3, .in = {T(1, 8, 7, 7), T(8, 1, 3, 3), T(8)}, .attrs = {AI("group", 8), AIS("pads", 1, 1, 1, 1)}, .n_attrs = 2},
    {.op = "Conv", .n_in = 2, .in = {T(2, 32, 5, 5), T(64, 32, 1, 1)}},
    {.op = "Conv", .n_in = 3, .in = {T(1, 64, 5, 5), T(32, 64, 3, 3), T(32)}, .attrs = {AIS("pads", 1, 1, 1, 1)}, .n_attrs = 1},
    {.op = "Conv", .n_in = 2, .in = {T(1, 2, 12, 12), T(18, 2, 3, 3)}, .attrs = {AIS("dilations", 2, 2), AS("auto_pad", "SAME_UPPER")}, .n_attrs = 2},
    {.op = "Conv", .n_in = 2, .in = {T(1, 3, 20), T(17, 3, 5)}, .attrs = {AIS("strides", 3)}, .n_attrs = 1},
    {.op = "Conv", .n_in = 2, .in = {T(1, 2, 5, 6, 7), T(4, 2, 2, 3, 2)}},
    /* gpux.FusedConv with a residual (input 5, added before the activation): pointwise, 3x3 and
     * depthwise, as ResNet/MobileNet shortcuts fuse */
    {.op = "FusedConv", .domain = "gpux", .n_in = 6, .in = {T(2, 32, 5, 5), T(64, 32, 1, 1), T(64), ABSENT, ABSENT, T(2, 64, 5, 5)},
     .attrs = {AS("activation", "Relu")}, .n_attrs = 1},
    {.op = "FusedConv", .domain = "gpux", .n_in = 6, .in = {T(1, 64, 5, 5), T(32, 64, 3, 3), T(32), ABSENT, ABSENT, T(1, 32, 5, 5)},
     .attrs = {AS("activation", "Relu"), AIS("pads", 1, 1, 1, 1)}, .n_attrs = 2},
    {.op = "FusedConv", .domain = "gpux", .n_in = 6, .in = {T(1, 8, 7, 7), T(8, 1, 3, 3), T(8), ABSENT, ABSENT, T(1, 8, 7, 7)},
     .attrs = {AI("group", 8), AIS("pads", 1, 1, 1, 1)}, .n_attrs = 2},
    {.op = "ConvTranspose", .n_in = 3, .in = {T(1, 4, 5, 5), T(4, 3, 3, 3), T(3)}, .attrs = {AIS("strides", 2, 2)}, .n_attrs = 1},
    {.op = "ConvTranspose", .n_in = 2, .in = {T(1, 4, 5, 6), T(4, 2, 3, 2)},
     .attrs = {AI("group", 2), AIS("strides", 2, 3), AIS("pads", 1, 0, 1, 1), AIS("output_padding", 1, 0)}, .n_attrs = 4},
    {.op = "MaxPool", .n_in = 1, .in = {T(1, 3, 9, 9)}, .attrs = {AIS("kernel_shape", 3, 3), AIS("strides", 2, 2), AIS("pads", 1, 1, 1, 1)}, .n_attrs = 3},
    {.op = "MaxPool", .n_in = 1, .in = {T(2, 2, 8, 7)}, .attrs = {AIS("kernel_shape", 2, 2), AI("ceil_mode", 1), AIS("strides", 2, 2)}, .n_attrs = 3, .n_out = 2},
    {.op = "AveragePool", .n_in = 1, .in = {T(1, 3, 9, 9)}, .attrs = {AIS("kernel_shape", 3, 3), AIS("pads", 1, 1, 1, 1)}, .n_attrs = 2},
    {.op = "AveragePool", .n_in = 1, .in = {T(1, 3, 9, 9)}, .attrs = {AIS("kernel_shape", 3, 3), AIS("pads", 1, 1, 1, 1), AI("count_include_pad", 1)}, .n_attrs = 3},
    {.op = "LpPool", .n_in = 1, .in = {T(1, 3, 8, 8)}, .attrs = {AIS("kernel_shape", 2, 2), AI("p", 3)}, .n_attrs = 2},
    {.op = "GlobalAveragePool", .n_in = 1, .in = {T(2, 5, 7, 7)}},
    {.op = "GlobalMaxPool", .n_in = 1, .in = {T(2, 5, 300)}},
  };
  int bad = 0;
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) bad |= run_case(&cases[k], (int)k);
  assert_int_equal(bad, 0);
}

/* shorthands for 8-bit operands: random bytes, and one-value initializers */
#define TB(dt_, ...) {.ndim = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), .dims = {__VA_ARGS__}, .dtype = dt_}
#define ZP(dt_, v) {.ndim = 0, .dtype = dt_, .n_vals = 1, .vals = {v}}
#define ZPV(dt_, n_, ...) {.ndim = 1, .dims = {n_}, .dtype = dt_, .n_vals = n_, .vals = {__VA_ARGS__}}
#define SR(lo_, hi_) {.ndim = 0, .lo = lo_, .hi = hi_}
#define TBS(dt_) {.ndim = 0, .dtype = dt_}
#define U8 GPUX_DT_UINT8
#define I8 GPUX_DT_INT8

static void test_quant(void **state) {
  (void)state;
  const op_case cases[] = {
    {.op = "DynamicQuantizeLinear", .n_in = 1, .in = {TR(-3.0f, 5.0f, 2, 3, 17, 9)}, .n_out = 3},
    {.op = "DynamicQuantizeLinear", .n_in = 1, .in = {TR(0.5f, 2.0f, 1000)}, .n_out = 3},
    {.op = "ConvInteger", .n_in = 4, .in = {TB(U8, 1, 3, 9, 11), TB(I8, 8, 3, 3, 3), ZP(U8, 131), ZP(I8, -2)}, .attrs = {AIS("pads", 1, 0, 2, 1), AIS("strides", 2, 1)}, .n_attrs = 2},
    {.op = "ConvInteger", .n_in = 4, .in = {TB(I8, 2, 4, 7, 7), TB(U8, 6, 2, 2, 3), TBS(I8), ZPV(U8, 6, 1, 2, 3, 250, 128, 0)}, .attrs = {AI("group", 2), AIS("dilations", 2, 1)}, .n_attrs = 2},
    {.op = "ConvInteger", .n_in = 2, .in = {TB(U8, 1, 3, 70), TB(U8, 9, 3, 4)}, .attrs = {AIS("strides", 3)}, .n_attrs = 1},
    /* 16 and more output channels per group: the GEMM form on GPUs */
    {.op = "ConvInteger", .n_in = 4, .in = {TB(U8, 2, 8, 9, 10), TB(U8, 32, 8, 3, 3), ZP(U8, 7), ZP(U8, 129)}, .attrs = {AIS("pads", 1, 1, 0, 2), AIS("strides", 1, 2)}, .n_attrs = 2},
    {.op = "ConvInteger", .n_in = 3, .in = {TB(I8, 1, 4, 6, 6), TB(I8, 32, 2, 1, 1), TBS(I8)}, .attrs = {AI("group", 2)}, .n_attrs = 1},
    {.op = "MatMulInteger", .n_in = 4, .in = {TB(U8, 2, 5, 33), TB(I8, 33, 7), ZPV(U8, 5, 1, 100, 128, 255, 0), ZP(I8, 3)}},
    {.op = "MatMulInteger", .n_in = 4, .in = {TB(I8, 3, 1, 4, 9), TB(U8, 2, 9, 6), TBS(I8), ZPV(U8, 6, 0, 1, 2, 3, 4, 200)}},
    {.op = "MatMulInteger", .n_in = 2, .in = {TB(U8, 70), TB(U8, 70, 5)}},
    {.op = "QLinearConv", .n_in = 9,
     .in = {TB(U8, 1, 3, 8, 9), SR(0.01f, 0.03f), ZP(U8, 120), TB(I8, 4, 3, 3, 3), TR(0.001f, 0.004f, 4), ZPV(I8, 4, 0, 0, 0, 0),
            SR(0.05f, 0.1f), ZP(U8, 100), ZPV(GPUX_DT_INT32, 4, -500, 20, 3000, 7)},
     .attrs = {AIS("pads", 1, 1, 1, 1)}, .n_attrs = 1},
    {.op = "QLinearConv", .n_in = 9,
     .in = {TB(U8, 1, 3, 8, 9), SR(0.01f, 0.03f), ZP(U8, 120), TB(I8, 16, 3, 3, 3), TR(0.001f, 0.004f, 16), ZP(I8, 0),
            SR(0.05f, 0.1f), ZP(U8, 100), ZPV(GPUX_DT_INT32, 16, -500, 20, 3000, 7, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, -11)},
     .attrs = {AIS("pads", 1, 1, 1, 1), AIS("strides", 2, 2)}, .n_attrs = 2},
    {.op = "QLinearMatMul", .n_in = 8,
     .in = {TB(I8, 2, 3, 16), SR(0.01f, 0.03f), ZP(I8, -5), TB(U8, 16, 4), SR(0.01f, 0.02f), ZP(U8, 128), SR(0.3f, 0.5f), ZP(I8, 10)}},
  };
  int bad = 0;
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) bad |= run_case(&cases[k], (int)k);
  assert_int_equal(bad, 0);
}

static void test_norm_reduce(void **state) {
  (void)state;
  const op_case cases[] = {
    {.op = "Softmax", .n_in = 1, .in = {T(3, 4, 50)}},
    {.op = "Softmax", .n_in = 1, .in = {T(3, 4, 5)}, .attrs = {AI("axis", 1)}, .n_attrs = 1},
    {.op = "LogSoftmax", .n_in = 1, .in = {T(2, 1000)}},
    {.op = "LayerNormalization", .n_in = 3, .in = {T(2, 5, 64), T(64), T(64)}},
    {.op = "LayerNormalization", .n_in = 2, .in = {T(2, 5, 6), T(5, 6)}, .attrs = {AI("axis", 1), AF("epsilon", 1e-3f)}, .n_attrs = 2},
    {.op = "BatchNormalization", .n_in = 5, .in = {T(2, 3, 4, 5), T(3), T(3), T(3), TR(0.5f, 2.0f, 3)}},
    {.op = "InstanceNormalization", .n_in = 3, .in = {T(2, 3, 6, 7), T(3), T(3)}},
    {.op = "ReduceMean", .n_in = 1, .in = {T(3, 4, 5)}, .attrs = {AIS("axes", 1)}, .n_attrs = 1},
    {.op = "ReduceMax", .n_in = 1, .in = {T(3, 4, 5)}, .attrs = {AIS("axes", 0, 2), AI("keepdims", 0)}, .n_attrs = 2},
    {.op = "ReduceSum", .n_in = 2, .in = {T(3, 4, 500), INTS(-1)}},
    {.op = "ReduceSum", .n_in = 1, .in = {T(3, 4, 5)}},
    {.op = "ReduceL2", .n_in = 1, .in = {T(6, 7)}, .attrs = {AIS("axes", 1)}, .n_attrs = 1},
    {.op = "ReduceLogSumExp", .n_in = 1, .in = {T(6, 7)}, .attrs = {AIS("axes", 0)}, .n_attrs = 1},
    {.op = "ArgMax", .n_in = 1, .in = {T(5, 7)}, .attrs = {AI("axis", 1)}, .n_attrs = 1},
    {.op = "CumSum", .n_in = 2, .in = {T(3, 40), {.ndim = 0, .n_vals = 1, .vals = {1}}}, .attrs = {AI("reverse", 1)}, .n_attrs = 1},
    {.op = "NegativeLogLikelihoodLoss", .n_in = 2, .in = {T(3, 5, 4), {.ndim = 2, .dims = {3, 4}, .n_vals = 12, .vals = {0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1}}}},
    {.op = "Attention", .opset = 23, .n_in = 3, .in = {T(2, 4, 6, 8), T(2, 2, 9, 8), T(2, 2, 9, 5)}, .attrs = {AI("is_causal", 1)}, .n_attrs = 1},
    {.op = "Attention", .opset = 23, .n_in = 4, .in = {T(1, 5, 12), T(1, 7, 12), T(1, 7, 6), T(5, 7)},
     .attrs = {AI("q_num_heads", 2), AI("kv_num_heads", 2)}, .n_attrs = 2},
  };
  int bad = 0;
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) bad |= run_case(&cases[k], (int)k);
  assert_int_equal(bad, 0);
}

/* Attention at the shapes of BERT-base (seq 128, additive mask), ViT-B/16 (197 tokens), GPT-2
 * (causal prompt; one-token steps over a KV cache with a boolean mask) and smaller odd ones: the
 * fused kernels (tiled, one row per workgroup, and the software form) against the CPU kernel. */
static void test_attention(void **state) {
  (void)state;
#define BOOLS(...) {.ndim = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), .dims = {__VA_ARGS__}, .dtype = GPUX_DT_BOOL}
  const op_case cases[] = {
    {.op = "Attention", .opset = 23, .n_in = 4, .in = {T(1, 12, 128, 64), T(1, 12, 128, 64), T(1, 12, 128, 64), T(1, 1, 1, 128)}},
    {.op = "Attention", .opset = 23, .n_in = 3, .in = {T(1, 12, 197, 64), T(1, 12, 197, 64), T(1, 12, 197, 64)}},
    {.op = "Attention", .opset = 23, .n_in = 3, .in = {T(1, 12, 40, 64), T(1, 12, 40, 64), T(1, 12, 40, 64)},
     .attrs = {AI("is_causal", 1)}, .n_attrs = 1},
    {.op = "Attention", .opset = 23, .n_in = 6,
     .in = {T(1, 12, 1, 64), T(1, 12, 1, 64), T(1, 12, 1, 64), ABSENT, T(1, 12, 299, 64), T(1, 12, 299, 64)},
     .attrs = {AI("is_causal", 1)}, .n_attrs = 1, .n_out = 3},
    {.op = "Attention", .opset = 23, .n_in = 6,
     .in = {T(2, 4, 1, 32), T(2, 4, 1, 32), T(2, 4, 1, 32), BOOLS(2, 1, 1, 300), T(2, 4, 299, 32), T(2, 4, 299, 32)}, .n_out = 3},
    /* 3-D, grouped-query heads, a past, a block of rows that ends inside the tile */
    {.op = "Attention", .opset = 23, .n_in = 6,
     .in = {T(2, 5, 64), T(2, 5, 32), T(2, 5, 32), ABSENT, T(2, 2, 7, 16), T(2, 2, 7, 16)},
     .attrs = {AI("q_num_heads", 4), AI("kv_num_heads", 2), AI("is_causal", 1)}, .n_attrs = 3, .n_out = 3},
    {.op = "Attention", .opset = 23, .n_in = 4, .in = {T(1, 2, 12), T(1, 70, 12), T(1, 70, 20), T(2, 60)},
     .attrs = {AI("q_num_heads", 1), AI("kv_num_heads", 1)}, .n_attrs = 2},
    {.op = "Attention", .opset = 23, .n_in = 3, .in = {T(2, 3, 37, 8), T(2, 3, 45, 8), T(2, 3, 45, 24)},
     .attrs = {AI("is_causal", 1), AI("left_window_size", 5), AF("scale", 0.3f)}, .n_attrs = 3},
    {.op = "Attention", .opset = 23, .n_in = 4, .in = {T(1, 2, 33, 128), T(1, 2, 50, 128), T(1, 2, 50, 128), BOOLS(33, 50)}},
  };
#undef BOOLS
  int bad = 0;
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) bad |= run_case(&cases[k], (int)k);
  assert_int_equal(bad, 0);
}

static void test_data_movement(void **state) {
  (void)state;
  const op_case cases[] = {
    {.op = "Transpose", .n_in = 1, .in = {T(2, 3, 4, 5)}, .attrs = {AIS("perm", 0, 2, 3, 1)}, .n_attrs = 1},
    {.op = "Transpose", .n_in = 1, .in = {T(33, 65)}},
    /* moving only axes of length 1 (an alias on the GPU), and a move of a longer axis past one */
    {.op = "Transpose", .n_in = 1, .in = {T(1, 1, 4, 8)}, .attrs = {AIS("perm", 0, 2, 1, 3)}, .n_attrs = 1},
    {.op = "Transpose", .n_in = 1, .in = {T(2, 1, 3, 1)}, .attrs = {AIS("perm", 1, 0, 3, 2)}, .n_attrs = 1},
    {.op = "Transpose", .n_in = 1, .in = {T(1, 3, 1, 4)}, .attrs = {AIS("perm", 0, 3, 2, 1)}, .n_attrs = 1},
    {.op = "Concat", .n_in = 3, .in = {T(2, 3, 4), T(2, 1, 4), T(2, 5, 4)}, .attrs = {AI("axis", 1)}, .n_attrs = 1},
    {.op = "Slice", .n_in = 5, .in = {T(6, 7, 8), INTS(1, -1), INTS(5, 1000), INTS(0, 2), INTS(2, -3)}},
    {.op = "Gather", .n_in = 2, .in = {T(5, 6, 3), {.ndim = 2, .dims = {2, 2}, .n_vals = 4, .vals = {0, 4, -1, 2}}}, .attrs = {AI("axis", 1)}, .n_attrs = 1},
    {.op = "Reshape", .n_in = 2, .in = {T(2, 3, 4), INTS(4, -1)}},
    {.op = "Expand", .n_in = 2, .in = {T(3, 1), INTS(2, 3, 6)}},
    {.op = "Pad", .n_in = 2, .in = {T(3, 4), INTS(1, 2, 0, 1)}, .attrs = {AS("mode", "reflect")}, .n_attrs = 1},
    {.op = "Pad", .n_in = 3, .in = {T(3, 4), INTS(0, 1, 2, 0), {.ndim = 0, .dtype = GPUX_DT_FLOAT, .n_vals = 1, .vals = {7}}}},
    {.op = "Tile", .n_in = 2, .in = {T(2, 3), INTS(3, 2)}},
    {.op = "Split", .n_in = 2, .in = {T(4, 9), INTS(2, 7)}, .attrs = {AI("axis", 1)}, .n_attrs = 1, .n_out = 2},
    {.op = "Split", .n_in = 2, .in = {T(2, 6, 5), INTS(1, 2, 3)}, .attrs = {AI("axis", 1)}, .n_attrs = 1, .n_out = 3},
    {.op = "Split", .n_in = 2, .in = {T(1, 1, 12), INTS(4, 4, 4)}, .attrs = {AI("axis", 2)}, .n_attrs = 1, .n_out = 3},
    {.op = "DepthToSpace", .n_in = 1, .in = {T(1, 8, 3, 4)}, .attrs = {AI("blocksize", 2)}, .n_attrs = 1},
    {.op = "ScatterElements", .opset = 18, .n_in = 3, .in = {T(4, 5), {.ndim = 2, .dims = {2, 2}, .n_vals = 4, .vals = {1, 3, -1, 0}}, T(2, 2)},
     .attrs = {AI("axis", 1), AS("reduction", "add")}, .n_attrs = 2},
    {.op = "Resize", .opset = 18, .n_in = 3, .in = {T(1, 2, 5, 6), ABSENT, {.ndim = 1, .dims = {4}, .dtype = GPUX_DT_FLOAT, .n_vals = 4, .vals = {1, 1, 2, 3}}},
     .attrs = {AS("mode", "linear")}, .n_attrs = 1},
    {.op = "Resize", .opset = 18, .n_in = 4, .in = {T(2, 3, 7, 9), ABSENT, ABSENT, INTS(2, 3, 4, 13)},
     .attrs = {AS("mode", "cubic"), AS("coordinate_transformation_mode", "align_corners")}, .n_attrs = 2},
    {.op = "Resize", .opset = 18, .n_in = 4, .in = {T(1, 1, 6, 4), ABSENT, ABSENT, INTS(1, 1, 9, 10)},
     .attrs = {AS("mode", "nearest"), AS("nearest_mode", "floor")}, .n_attrs = 2},
  };
  int bad = 0;
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) bad |= run_case(&cases[k], (int)k);
  assert_int_equal(bad, 0);
}

/* The common ops of float16 models, and the elementwise ones in bfloat16. */
static void test_float16(void **state) {
  (void)state;
  const int H = GPUX_DT_FLOAT16, B = GPUX_DT_BFLOAT16;
  const op_case cases[] = {
    {.dtype = H, .op = "Relu", .n_in = 1, .in = {T(3, 40)}},
    {.dtype = H, .op = "Sigmoid", .n_in = 1, .in = {T(3, 40)}},
    {.dtype = H, .op = "Tanh", .n_in = 1, .in = {T(3, 40)}},
    {.dtype = H, .op = "Erf", .n_in = 1, .in = {T(3, 40)}},
    {.dtype = H, .op = "Exp", .n_in = 1, .in = {T(3, 40)}},
    {.dtype = H, .op = "HardSwish", .n_in = 1, .in = {T(3, 40)}},
    {.dtype = H, .op = "Gelu", .opset = 20, .n_in = 1, .in = {T(3, 40)}},
    {.dtype = H, .op = "Add", .n_in = 2, .in = {T(2, 3, 4), T(4)}},
    {.dtype = H, .op = "Mul", .n_in = 2, .in = {T(2, 1, 4), T(1, 3, 1)}},
    {.dtype = H, .op = "Sub", .n_in = 2, .in = {T(5), SCALAR}},
    {.dtype = H, .op = "Div", .n_in = 2, .in = {T(4, 9), TR(0.5f, 3.0f, 9)}},
    {.dtype = H, .op = "Max", .n_in = 2, .in = {T(4, 9), T(9)}},
    {.dtype = H, .op = "Clip", .n_in = 3, .in = {T(3, 40), {.ndim = 0, .dtype = GPUX_DT_FLOAT, .n_vals = 1, .vals = {-1}},
                                                 {.ndim = 0, .dtype = GPUX_DT_FLOAT, .n_vals = 1, .vals = {1}}}},
    {.dtype = H, .op = "MatMul", .n_in = 2, .in = {T(2, 3, 17, 9), T(9, 33)}},
    {.dtype = H, .op = "MatMul", .n_in = 2, .in = {T(70, 130), T(130, 65)}},
    {.dtype = H, .op = "Gemm", .n_in = 3, .in = {T(8, 12), T(20, 12), T(20)}, .attrs = {AI("transB", 1)}, .n_attrs = 1},
    {.dtype = H, .op = "Conv", .n_in = 3, .in = {T(1, 3, 9, 9), T(16, 3, 3, 3), T(16)}, .attrs = {AIS("pads", 1, 1, 1, 1)}, .n_attrs = 1},
    {.dtype = H, .op = "Conv", .n_in = 3, .in = {T(1, 8, 7, 7), T(8, 1, 3, 3), T(8)}, .attrs = {AI("group", 8), AIS("pads", 1, 1, 1, 1)}, .n_attrs = 2},
    {.dtype = H, .op = "ConvTranspose", .n_in = 2, .in = {T(1, 4, 5, 5), T(4, 3, 3, 3)}, .attrs = {AIS("strides", 2, 2)}, .n_attrs = 1},
    {.dtype = H, .op = "MaxPool", .n_in = 1, .in = {T(1, 3, 9, 9)}, .attrs = {AIS("kernel_shape", 3, 3), AIS("strides", 2, 2)}, .n_attrs = 2},
    {.dtype = H, .op = "AveragePool", .n_in = 1, .in = {T(1, 3, 9, 9)}, .attrs = {AIS("kernel_shape", 3, 3), AIS("pads", 1, 1, 1, 1)}, .n_attrs = 2},
    {.dtype = H, .op = "GlobalAveragePool", .n_in = 1, .in = {T(2, 5, 7, 7)}},
    {.dtype = H, .op = "Softmax", .n_in = 1, .in = {T(3, 4, 50)}},
    {.dtype = H, .op = "LogSoftmax", .n_in = 1, .in = {T(2, 300)}},
    {.dtype = H, .op = "LayerNormalization", .n_in = 3, .in = {T(2, 5, 64), T(64), T(64)}},
    {.dtype = H, .op = "BatchNormalization", .n_in = 5, .in = {T(2, 3, 4, 5), T(3), T(3), T(3), TR(0.5f, 2.0f, 3)}},
    {.dtype = H, .op = "ReduceMean", .n_in = 1, .in = {T(3, 4, 5)}, .attrs = {AIS("axes", 1)}, .n_attrs = 1},
    {.dtype = H, .op = "ReduceSum", .n_in = 2, .in = {T(3, 4, 500), INTS(-1)}},
    {.dtype = H, .op = "ReduceMax", .n_in = 1, .in = {T(3, 4, 5)}, .attrs = {AIS("axes", 0, 2), AI("keepdims", 0)}, .n_attrs = 2},
    {.dtype = H, .op = "Transpose", .n_in = 1, .in = {T(2, 3, 4, 5)}, .attrs = {AIS("perm", 0, 2, 3, 1)}, .n_attrs = 1},
    {.dtype = H, .op = "Concat", .n_in = 2, .in = {T(2, 3, 4), T(2, 1, 4)}, .attrs = {AI("axis", 1)}, .n_attrs = 1},
    {.dtype = H, .op = "Slice", .n_in = 5, .in = {T(6, 7, 8), INTS(1, -1), INTS(5, 1000), INTS(0, 2), INTS(2, -3)}},
    {.dtype = H, .op = "Gather", .n_in = 2, .in = {T(5, 6, 3), {.ndim = 2, .dims = {2, 2}, .n_vals = 4, .vals = {0, 4, -1, 2}}}, .attrs = {AI("axis", 1)}, .n_attrs = 1},
    {.dtype = H, .op = "Reshape", .n_in = 2, .in = {T(2, 3, 4), INTS(4, -1)}},
    {.dtype = H, .op = "Pad", .n_in = 3, .in = {T(3, 4), INTS(0, 1, 2, 0), {.ndim = 0, .dtype = GPUX_DT_FLOAT, .n_vals = 1, .vals = {7}}}},
    {.dtype = H, .op = "Resize", .opset = 18, .n_in = 3, .in = {T(1, 2, 5, 6), ABSENT, {.ndim = 1, .dims = {4}, .dtype = GPUX_DT_FLOAT, .n_vals = 4, .vals = {1, 1, 2, 3}}},
     .attrs = {AS("mode", "linear")}, .n_attrs = 1},
    {.dtype = B, .op = "Add", .n_in = 2, .in = {T(2, 3, 4), T(4)}},
    {.dtype = B, .op = "Mul", .n_in = 2, .in = {T(2, 3, 4), T(2, 3, 4)}},
    {.dtype = B, .op = "Relu", .n_in = 1, .in = {T(3, 40)}},
    {.dtype = B, .op = "Sigmoid", .n_in = 1, .in = {T(3, 40)}},
    {.dtype = B, .op = "Softmax", .n_in = 1, .in = {T(3, 50)}},
    {.dtype = B, .op = "MatMul", .n_in = 2, .in = {T(3, 17, 9), T(9, 33)}},
  };
  int bad = 0;
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) bad |= run_case(&cases[k], (int)k);
  assert_int_equal(bad, 0);
}

/* Cast to float16 and bfloat16 on values that test the rounding: ties to even, the largest
 * finite values and overflow, subnormals and underflow, infinities, NaN and signed zero. Both
 * backends must agree bit for bit (the CPU's conversion is the reference). */
static void test_cast16(void **state) {
  (void)state;
  static const float edge[] = {
    1.0f, 1.00048828125f /* 1 + 2^-11: tie, to 1 */, 1.00146484375f /* 1 + 3*2^-11: tie, up */, 0.1f, -1.0f / 3,
    65504.0f, 65519.99f, 65520.0f /* tie: to infinity */, -70000.0f, 6.1035156e-05f /* 2^-14 */, 6.0e-05f,
    5.9604645e-08f /* 2^-24 */, 2.9802322e-08f /* 2^-25: tie, to 0 */, 3.0e-08f, -1.0e-09f, 1.0e-30f,
    INFINITY, -INFINITY, NAN, -0.0f, 3.3895314e38f /* bfloat16 overflows */, 1.0078125f /* 1 + 2^-7 */,
    1.00390625f /* 1 + 2^-8: bfloat16 tie, to 1 */, 1.01171875f /* 1 + 3*2^-8: tie, up */, 12345.678f, -2.5e-3f,
  };
  static const float to_int[] = {1.5f, -2.5f, 0.1f, 1000.7f, -65504.0f, 12345.678f, -0.0f, 3.99f};
  const int n = (int)(sizeof edge / sizeof *edge);
  const op_case cases[] = {
    {.op = "Cast", .n_in = 1, .in = {T(2, 26)}, .attrs = {AI("to", GPUX_DT_FLOAT16)}, .n_attrs = 1, .out_dtype = GPUX_DT_FLOAT16, .edge = edge, .n_edge = n},
    {.op = "Cast", .n_in = 1, .in = {T(26)}, .attrs = {AI("to", GPUX_DT_BFLOAT16)}, .n_attrs = 1, .out_dtype = GPUX_DT_BFLOAT16, .edge = edge, .n_edge = n},
    {.dtype = GPUX_DT_FLOAT16, .op = "Cast", .n_in = 1, .in = {T(26)}, .attrs = {AI("to", GPUX_DT_BFLOAT16)}, .n_attrs = 1,
     .out_dtype = GPUX_DT_BFLOAT16, .edge = edge, .n_edge = n},
    {.dtype = GPUX_DT_FLOAT16, .op = "Cast", .n_in = 1, .in = {T(26)}, .attrs = {AI("to", GPUX_DT_FLOAT)}, .n_attrs = 1,
     .out_dtype = GPUX_DT_FLOAT, .edge = edge, .n_edge = n},
    {.dtype = GPUX_DT_BFLOAT16, .op = "Cast", .n_in = 1, .in = {T(26)}, .attrs = {AI("to", GPUX_DT_FLOAT16)}, .n_attrs = 1,
     .out_dtype = GPUX_DT_FLOAT16, .edge = edge, .n_edge = n},
    {.dtype = GPUX_DT_FLOAT16, .op = "Cast", .n_in = 1, .in = {T(8)}, .attrs = {AI("to", GPUX_DT_INT32)}, .n_attrs = 1,
     .out_dtype = GPUX_DT_INT32, .edge = to_int, .n_edge = 8},
  };
  int bad = 0;
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) bad |= run_case(&cases[k], (int)k);
  assert_int_equal(bad, 0);
}

/* Integer arithmetic: int8/uint8/int16/uint16 wrap to their type as on the CPU, and int64 (held
 * as i32 on the GPU) stays exact: a run whose result leaves the 32-bit range is computed on the
 * CPU (the kernel's overflow flag), and the next run of the same session is on the GPU again. */
static void set_ints(gpux_tensor *t, const int64_t *v) {
  for (int64_t k = 0; k < gpux_tensor_count(t); k++) {
    switch (t->dtype) {
    case GPUX_DT_INT64: ((int64_t *)t->data)[k] = v[k]; break;
    case GPUX_DT_INT32: ((int32_t *)t->data)[k] = (int32_t)v[k]; break;
    case GPUX_DT_INT16: case GPUX_DT_UINT16: ((uint16_t *)t->data)[k] = (uint16_t)v[k]; break;
    default: ((uint8_t *)t->data)[k] = (uint8_t)v[k]; break;
    }
  }
}

static int64_t get_int(const gpux_tensor *t, int64_t k) {
  switch (t->dtype) {
  case GPUX_DT_INT64: return ((const int64_t *)t->data)[k];
  case GPUX_DT_INT32: return ((const int32_t *)t->data)[k];
  case GPUX_DT_INT16: return ((const int16_t *)t->data)[k];
  case GPUX_DT_UINT16: return ((const uint16_t *)t->data)[k];
  case GPUX_DT_INT8: return ((const int8_t *)t->data)[k];
  default: return ((const uint8_t *)t->data)[k];
  }
}

typedef struct {
  const char *op;
  int dtype;
  const char *dir;              /* BitShift's direction */
  int64_t a[4], b[4], want[4];  /* four elements, three runs use them in turn (see below) */
} int_case;

static void test_integers(void **state) {
  (void)state;
  const int_case cases[] = {
    {"Add", GPUX_DT_INT8, NULL, {127, -128, 5, -7}, {1, -1, 6, 3}, {-128, 127, 11, -4}},
    {"Mul", GPUX_DT_UINT8, NULL, {200, 16, 3, 255}, {2, 16, 7, 255}, {144, 0, 21, 1}},
    {"Sub", GPUX_DT_INT16, NULL, {-32768, 100, 0, 5}, {1, -200, 32767, 5}, {32767, 300, -32767, 0}},
    {"Mul", GPUX_DT_UINT16, NULL, {65535, 256, 3, 1000}, {65535, 256, 5, 1000}, {1, 0, 15, 16960}},
    {"Div", GPUX_DT_INT8, NULL, {-128, 7, -7, 9}, {-1, -2, 2, 0}, {-128, -3, -3, 0}},
    {"Mod", GPUX_DT_INT16, NULL, {-7, 7, -7, 5}, {3, -3, -3, 0}, {2, -2, -1, 0}},
    {"BitShift", GPUX_DT_UINT8, "LEFT", {1, 255, 3, 1}, {7, 1, 2, 8}, {128, 254, 12, 0}},
    {"BitShift", GPUX_DT_INT8, "RIGHT", {-128, -1, 64, 5}, {7, 9, 3, -1}, {-1, -1, 8, 0}},
    {"BitwiseAnd", GPUX_DT_INT16, NULL, {-1, 0x0ff0, -32768, 7}, {0x1234, 0x00ff, -1, 2}, {0x1234, 0x00f0, -32768, 2}},
    /* int64: first fits in 32 bits; the inputs scaled up leave it; then small again */
    {"Add", GPUX_DT_INT64, NULL, {2147483000, -5, 7, 0}, {1000, -2147483645, 1, 0}, {2147484000, -2147483650, 8, 0}},
    {"Sub", GPUX_DT_INT64, NULL, {-2147483000, 5, 7, 1}, {1000, -2147483645, 1, 1}, {-2147484000, 2147483650, 6, 0}},
    {"Mul", GPUX_DT_INT64, NULL, {70000, -1, 3, -2147483647}, {70000, 2147483647, -5, 1}, {4900000000, -2147483647, -15, -2147483647}},
    {"BitShift", GPUX_DT_INT64, "LEFT", {1, 3, -1, 0}, {40, 30, 31, 63}, {1099511627776, 3221225472, -2147483648, 0}},
    /* an input beyond 32 bits: that run on the CPU too */
    {"Max", GPUX_DT_INT64, NULL, {5000000000, -2, 3, 4}, {1, -6000000000, 5, -4}, {5000000000, -2, 5, 4}},
  };
  int bad = 0;
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    const int_case *ic = &cases[c];
    op_case oc = {.op = ic->op, .n_in = 2, .in = {{.ndim = 1, .dims = {4}, .dtype = ic->dtype}, {.ndim = 1, .dims = {4}, .dtype = ic->dtype}},
                  .out_dtype = ic->dtype, .opset = 18};
    if (ic->dir) oc.attrs[0] = (attr){.name = "direction", .type = 3, .s = ic->dir}, oc.n_attrs = 1;
    gpux_tensor in[MAX_IN];
    int n_in;
    memset(in, 0, sizeof in);
    gpux_model *m = build(&oc, in, &n_in);
    gpux_session *gs = NULL;
    gpux_session_options go = {.backend = GPUX_BACKEND_WEBGPU};
    if (gpux_session_create(m, &go, &gs)) fail_msg("%s: %s", ic->op, gpux_last_error());
    /* int64 runs three times: the first two elements' results beyond 32 bits in the middle run
       only (the other runs take elements 2 and 3 in every slot); narrow types run once */
    int runs = ic->dtype == GPUX_DT_INT64 ? 3 : 1;
    for (int r = 0; r < runs; r++) {
      int64_t a[4], b[4], want[4];
      for (int k = 0; k < 4; k++) {
        int src = runs == 1 || r == 1 ? k : 2 + (k & 1);
        a[k] = ic->a[src], b[k] = ic->b[src], want[k] = ic->want[src];
      }
      set_ints(&in[0], a);
      set_ints(&in[1], b);
      gpux_tensor out;
      memset(&out, 0, sizeof out);
      if (gpux_session_run(gs, in, 2, &out, 1)) fail_msg("integer case %zu %s run %d: %s", c, ic->op, r, gpux_last_error());
      for (int k = 0; k < 4; k++)
        if (out.dtype != ic->dtype || get_int(&out, k) != want[k]) {
          print_error("integer case %zu %s %s run %d element %d: %lld, want %lld\n", c, ic->op, gpux_dtype_name(ic->dtype), r, k,
                      (long long)get_int(&out, k), (long long)want[k]);
          bad = 1;
        }
      gpux_tensor_free(&out);
      /* the run with results beyond 32 bits was computed on the CPU, the others on the GPU */
      const char *why = NULL, *dev = gpux_session_node_device(gs, 0, &why);
      const char *want_dev = runs == 3 && r == 1 ? "cpu" : "webgpu";
      if (!dev || strcmp(dev, want_dev)) {
        print_error("integer case %zu %s %s run %d: ran on %s (%s)\n", c, ic->op, gpux_dtype_name(ic->dtype), r, dev ? dev : "?",
                    why ? why : "");
        bad = 1;
      }
    }
    for (int i = 0; i < n_in; i++) gpux_tensor_free(&in[i]);
    gpux_session_free(gs);
    gpux_model_free(m);
  }
  /* broadcast forms (the kernel walks coordinates) on random small values */
  static const char *const ops[] = {"Add", "Sub", "Mul", "Max", "BitwiseXor"};
  static const int types[] = {GPUX_DT_INT64, GPUX_DT_INT8, GPUX_DT_UINT16};
  for (size_t o = 0; o < sizeof ops / sizeof *ops; o++)
    for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
      op_case c = {.op = ops[o], .n_in = 2, .out_dtype = types[t], .opset = 18,
                   .in = {{.ndim = 3, .dims = {2, 1, 5}, .dtype = types[t]}, {.ndim = 2, .dims = {3, 1}, .dtype = types[t]}}};
      bad |= run_case(&c, (int)(o * 3 + t));
    }
  assert_int_equal(bad, 0);
}

/* The backend's device is created once per process; a session held across the tests keeps it. */
static gpux_session *holder;
static gpux_model *holder_model;

static int setup(void **state) {
  (void)state;
  op_case c = {.op = "Relu", .n_in = 1, .in = {T(1)}};
  gpux_tensor in[MAX_IN];
  int n;
  holder_model = build(&c, in, &n);
  gpux_tensor_free(&in[0]);
  gpux_session_options go = {.backend = GPUX_BACKEND_WEBGPU};
  if (gpux_session_create(holder_model, &go, &holder)) {
    fprintf(stderr, "no WebGPU device: %s\n", gpux_last_error());
    return -1;
  }
  return 0;
}

static int teardown(void **state) {
  (void)state;
  gpux_session_free(holder);
  gpux_model_free(holder_model);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_unary),      cmocka_unit_test(test_binary),       cmocka_unit_test(test_matmul_gemm),
    cmocka_unit_test(test_conv_pool),  cmocka_unit_test(test_norm_reduce),  cmocka_unit_test(test_data_movement),
    cmocka_unit_test(test_quant),      cmocka_unit_test(test_float16),      cmocka_unit_test(test_cast16),
    cmocka_unit_test(test_integers),   cmocka_unit_test(test_attention),
  };
  /* GPUX_PARITY_TESTS=PATTERN runs only the tests whose names match (while working on an op) */
  if (getenv("GPUX_PARITY_TESTS")) cmocka_set_test_filter(getenv("GPUX_PARITY_TESTS"));
  /* the kernels' software-adapter forms (the default on lavapipe) and their GPU forms */
  int rc = cmocka_run_group_tests_name("default kernels", tests, setup, teardown);
  setenv("GPUX_WEBGPU_KERNELS", "gpu", 1);
  rc |= cmocka_run_group_tests_name("GPU kernels", tests, setup, teardown);
  setenv("GPUX_WEBGPU_KERNELS", "software", 1);
  rc |= cmocka_run_group_tests_name("software kernels", tests, setup, teardown);
  return rc;
}
