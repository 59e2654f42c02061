/* test-tensorproto.c — TensorProto and SparseTensorProto decoding against hostile input: typed
 * fields that do not belong to the data type, value counts that disagree with the dims, declared
 * sizes far beyond the bytes present, and sparse tensors with bad indices or missing parts. Each
 * must be a one-line error (and, under ASan, no out-of-bounds write); valid tensors still decode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <unistd.h>
#include "gpux/gpux.h"
#include "onnx/onnx.h"
#include "onnx-writer.h"

enum { F_DIMS = 1, F_TYPE = 2, F_FLOAT = 4, F_INT32 = 5, F_STRING = 6, F_INT64 = 7, F_NAME = 8,
       F_RAW = 9, F_DOUBLE = 10, F_UINT64 = 11 };

static void head(pbw *t, const char *name, int dtype, int ndim, const int64_t *dims) {
  for (int i = 0; i < ndim; i++) pbw_int(t, F_DIMS, dims[i]);
  pbw_int(t, F_TYPE, dtype);
  if (name) pbw_str(t, F_NAME, name);
}

/* packed varints (int32_data, int64_data, uint64_data) */
static void packed_varints(pbw *t, int field, const uint64_t *v, int n) {
  pbw p = {0};
  for (int i = 0; i < n; i++) pbw_varint(&p, v[i]);
  pbw_msg(t, field, &p);
}

static int decode(pbw *t, gpux_tensor *out) {
  int rc = gpux__tensor_from_pb(t->data, t->len, NULL, 0, out, NULL, NULL);
  free(t->data);
  memset(t, 0, sizeof *t);
  return rc;
}

static void expect_error(pbw *t, const char *needle) {
  gpux_tensor out;
  int rc = decode(t, &out);
  assert_true(rc < 0);
  assert_non_null(strstr(gpux_last_error(), needle));
  assert_null(strchr(gpux_last_error(), '\n'));
  assert_null(out.data);
}

/* The probe's remote heap overflow: a STRING tensor carrying 8-byte int64 values used to land
 * them in char* slots that were later freed. */
static void test_field_not_of_dtype(void **state) {
  (void)state;
  pbw t = {0};
  int64_t d1[] = {1}, d4[] = {4};
  uint64_t v[4] = {0x4141414141414141ull, 2, 3, 4};
  head(&t, "s", GPUX_DT_STRING, 1, d4);
  packed_varints(&t, F_INT64, v, 4);
  expect_error(&t, "int64_data does not belong to a string tensor");
  /* every typed field against a type that does not use it */
  head(&t, "f", GPUX_DT_FLOAT, 1, d1);
  packed_varints(&t, F_INT64, v, 1);
  expect_error(&t, "int64_data");
  head(&t, "u8", GPUX_DT_UINT8, 1, d4);
  double dv[4] = {1, 2, 3, 4};
  pbw_len(&t, F_DOUBLE, dv, sizeof dv);
  expect_error(&t, "double_data does not belong to a uint8 tensor");
  head(&t, "i16", GPUX_DT_INT16, 1, d1);
  float fv = 1;
  pbw_len(&t, F_FLOAT, &fv, 4);
  expect_error(&t, "float_data");
  head(&t, "b", GPUX_DT_BOOL, 1, d1);
  packed_varints(&t, F_UINT64, v, 1);
  expect_error(&t, "uint64_data");
  head(&t, "i32", GPUX_DT_INT32, 1, d1);
  pbw_str(&t, F_STRING, "x");
  expect_error(&t, "string_data does not belong to a int32 tensor");
  head(&t, "i64", GPUX_DT_INT64, 1, d1);
  packed_varints(&t, F_INT32, v, 1);
  expect_error(&t, "int32_data");
  /* the right field next to a wrong one is still refused */
  head(&t, "mix", GPUX_DT_INT64, 1, d1);
  packed_varints(&t, F_INT64, v, 1);
  pbw_str(&t, F_STRING, "x");
  expect_error(&t, "string_data does not belong");
  /* raw_data and typed values together */
  head(&t, "both", GPUX_DT_FLOAT, 1, d1);
  pbw_len(&t, F_RAW, &fv, 4);
  pbw_len(&t, F_FLOAT, &fv, 4);
  expect_error(&t, "has both raw_data and float_data");
}

/* Counts that disagree with the dims are refused before anything is written. */
static void test_counts(void **state) {
  (void)state;
  pbw t = {0};
  int64_t d2[] = {2}, big[] = {1000000000, 1000};
  uint64_t v[3] = {1, 2, 3};
  head(&t, "i32", GPUX_DT_INT32, 1, d2);
  packed_varints(&t, F_INT32, v, 3);
  expect_error(&t, "has 3 values in int32_data, expected 2");
  head(&t, "u8", GPUX_DT_UINT8, 1, d2);
  for (int i = 0; i < 3; i++) pbw_int(&t, F_INT32, 7); /* unpacked, one past the end */
  expect_error(&t, "expected 2");
  head(&t, "s", GPUX_DT_STRING, 1, d2);
  for (int i = 0; i < 3; i++) pbw_str(&t, F_STRING, "abc");
  expect_error(&t, "has 3 values in string_data, expected 2");
  head(&t, "s", GPUX_DT_STRING, 1, d2);
  expect_error(&t, "has no data");
  /* 10^12 elements declared, 3 present: an error, not a 4 TB allocation */
  head(&t, "huge", GPUX_DT_FLOAT, 2, big);
  float fv[3] = {1, 2, 3};
  pbw_len(&t, F_FLOAT, fv, sizeof fv);
  expect_error(&t, "has 3 values in float_data, expected 1000000000000");
  head(&t, "huge", GPUX_DT_FLOAT, 2, big);
  pbw_len(&t, F_RAW, fv, sizeof fv);
  expect_error(&t, "has 12 bytes of data");
  /* a packed float run that is not a whole number of floats, a varint run cut short */
  head(&t, "cut", GPUX_DT_FLOAT, 1, d2);
  pbw_len(&t, F_FLOAT, fv, 5);
  expect_error(&t, "truncated float_data");
  head(&t, "cut", GPUX_DT_INT64, 1, d2);
  uint8_t cut[] = {0x01, 0x80};
  pbw_len(&t, F_INT64, cut, sizeof cut);
  expect_error(&t, "truncated varint in int64_data");
  /* a float sent with a varint wire type */
  head(&t, "wire", GPUX_DT_FLOAT, 0, NULL);
  pbw_int(&t, F_FLOAT, 1);
  expect_error(&t, "float_data with wire type 0");
  /* int4 through int32_data: one entry per packed byte, so 3 elements take 2 entries */
  int64_t d3[] = {3};
  head(&t, "i4", GPUX_DT_INT4, 1, d3);
  packed_varints(&t, F_INT32, v, 3);
  expect_error(&t, "has 3 values in int32_data, expected 2");
}

static void test_valid(void **state) {
  (void)state;
  pbw t = {0};
  gpux_tensor out;
  int64_t d2[] = {2}, d3[] = {3};
  uint64_t v[3] = {5, (uint64_t)-7, 0xffffffffull};
  head(&t, "i64", GPUX_DT_INT64, 1, d2);
  packed_varints(&t, F_INT64, v, 2);
  assert_int_equal(decode(&t, &out), 0);
  assert_int_equal(((int64_t *)out.data)[0], 5);
  assert_int_equal(((int64_t *)out.data)[1], -7);
  gpux_tensor_free(&out);
  head(&t, "u32", GPUX_DT_UINT32, 1, d2);
  pbw_int(&t, F_UINT64, 1);
  pbw_int(&t, F_UINT64, 0xffffffff);
  assert_int_equal(decode(&t, &out), 0);
  assert_int_equal(((uint32_t *)out.data)[1], 0xffffffffu);
  gpux_tensor_free(&out);
  head(&t, "s", GPUX_DT_STRING, 1, d2);
  pbw_str(&t, F_STRING, "hello");
  pbw_str(&t, F_STRING, "");
  assert_int_equal(decode(&t, &out), 0);
  assert_string_equal(((char **)out.data)[0], "hello");
  assert_string_equal(((char **)out.data)[1], "");
  gpux_tensor_free(&out);
  head(&t, "c64", GPUX_DT_COMPLEX64, 1, d2);
  float c[4] = {1, 2, 3, 4};
  pbw_len(&t, F_FLOAT, c, sizeof c);
  assert_int_equal(decode(&t, &out), 0);
  assert_true(((float *)out.data)[3] == 4);
  gpux_tensor_free(&out);
  head(&t, "d", GPUX_DT_DOUBLE, 1, d2);
  double dv[2] = {0.5, -2};
  pbw_key(&t, F_DOUBLE, 1); /* unpacked fixed64 */
  pbw_bytes(&t, &dv[0], 8);
  pbw_key(&t, F_DOUBLE, 1);
  pbw_bytes(&t, &dv[1], 8);
  assert_int_equal(decode(&t, &out), 0);
  assert_true(((double *)out.data)[1] == -2);
  gpux_tensor_free(&out);
  uint64_t packed[2] = {0x9f, 0x07}; /* int4 nibbles: -1, -7 | 7 */
  head(&t, "i4", GPUX_DT_INT4, 1, d3);
  packed_varints(&t, F_INT32, packed, 2);
  assert_int_equal(decode(&t, &out), 0);
  assert_int_equal(((int8_t *)out.data)[0], -1);
  assert_int_equal(((int8_t *)out.data)[1], -7);
  assert_int_equal(((int8_t *)out.data)[2], 7);
  gpux_tensor_free(&out);
  head(&t, "empty", GPUX_DT_FLOAT, 1, (int64_t[]){0});
  assert_int_equal(decode(&t, &out), 0);
  assert_int_equal(out.dims[0], 0);
  gpux_tensor_free(&out);
}

/* the same hostile STRING tensor through the public file reader (gpux run --input x.pb) */
static void test_load_pb_file(void **state) {
  (void)state;
  char path[] = "/tmp/gpux-tp-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  pbw t = {0};
  int64_t d[] = {8};
  uint64_t v[8];
  for (int i = 0; i < 8; i++) v[i] = 0x4242424242424242ull + (uint64_t)i;
  head(&t, "x", GPUX_DT_STRING, 1, d);
  packed_varints(&t, F_UINT64, v, 8);
  assert_int_equal(write(fd, t.data, t.len), (ssize_t)t.len);
  close(fd);
  free(t.data);
  gpux_tensor out;
  assert_int_equal(gpux_tensor_load_pb(path, -1, &out), GPUX_E_MODEL);
  assert_non_null(strstr(gpux_last_error(), "uint64_data does not belong to a string tensor"));
  unlink(path);
}

/* ---- SparseTensorProto ---- */

static void sparse_values(pbw *sp, int dtype, int n, const float *vals) {
  pbw t = {0};
  int64_t d[] = {n};
  head(&t, "sp", dtype, 1, d);
  if (dtype == GPUX_DT_STRING) for (int i = 0; i < n; i++) pbw_str(&t, F_STRING, "s");
  else pbw_len(&t, F_RAW, vals, (size_t)n * 4);
  pbw_msg(sp, 1, &t);
}

static void sparse_indices(pbw *sp, int dtype, int ndim, const int64_t *dims, const int64_t *idx) {
  pbw t = {0};
  head(&t, NULL, dtype, ndim, dims);
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= dims[i];
  if (dtype == GPUX_DT_INT64) pbw_len(&t, F_RAW, idx, (size_t)n * 8);
  else { int32_t v[16]; for (int64_t i = 0; i < n; i++) v[i] = (int32_t)idx[i]; pbw_len(&t, F_RAW, v, (size_t)n * 4); }
  pbw_msg(sp, 2, &t);
}

static void sparse_dims(pbw *sp, int n, const int64_t *dims) {
  for (int i = 0; i < n; i++) pbw_int(sp, 3, dims[i]);
}

static void expect_sparse_error(pbw *sp, const char *needle) {
  gpux_tensor out;
  int rc = gpux__sparse_from_pb(sp->data, sp->len, NULL, &out);
  free(sp->data);
  memset(sp, 0, sizeof *sp);
  assert_true(rc < 0);
  assert_non_null(strstr(gpux_last_error(), needle));
  assert_null(out.data);
}

static void test_sparse(void **state) {
  (void)state;
  pbw sp = {0};
  float vals[2] = {1.5f, -2};
  int64_t dims[] = {2, 3}, coo_shape[] = {2, 2}, flat_shape[] = {2}, three[] = {3};
  int64_t coo[] = {0, 1, 1, 2}, flat[] = {1, 5};
  /* valid: coordinates and flat indices give the same dense tensor */
  for (int k = 0; k < 2; k++) {
    sparse_values(&sp, GPUX_DT_FLOAT, 2, vals);
    if (k) sparse_indices(&sp, GPUX_DT_INT64, 1, flat_shape, flat);
    else sparse_indices(&sp, GPUX_DT_INT64, 2, coo_shape, coo);
    sparse_dims(&sp, 2, dims);
    gpux_tensor out;
    assert_int_equal(gpux__sparse_from_pb(sp.data, sp.len, NULL, &out), 0);
    free(sp.data);
    memset(&sp, 0, sizeof sp);
    float want[6] = {0, 1.5f, 0, 0, 0, -2};
    assert_memory_equal(out.data, want, sizeof want);
    gpux_tensor_free(&out);
  }
  /* no values (used to memcpy from NULL) */
  sparse_indices(&sp, GPUX_DT_INT64, 1, flat_shape, flat);
  sparse_dims(&sp, 2, dims);
  expect_sparse_error(&sp, "without values");
  /* values but no indices */
  sparse_values(&sp, GPUX_DT_FLOAT, 2, vals);
  sparse_dims(&sp, 2, dims);
  expect_sparse_error(&sp, "has no indices");
  /* fewer indices than values (used to read past the indices) */
  sparse_values(&sp, GPUX_DT_FLOAT, 2, vals);
  sparse_indices(&sp, GPUX_DT_INT64, 1, (int64_t[]){1}, flat);
  sparse_dims(&sp, 2, dims);
  expect_sparse_error(&sp, "do not match values");
  /* coordinates of another rank than dims */
  sparse_values(&sp, GPUX_DT_FLOAT, 2, vals);
  sparse_indices(&sp, GPUX_DT_INT64, 2, (int64_t[]){2, 3}, (int64_t[]){0, 0, 0, 0, 0, 0});
  sparse_dims(&sp, 2, dims);
  expect_sparse_error(&sp, "rank 2");
  /* a coordinate outside its dimension whose flat index would still fit */
  sparse_values(&sp, GPUX_DT_FLOAT, 2, vals);
  sparse_indices(&sp, GPUX_DT_INT64, 2, coo_shape, (int64_t[]){0, 5, 0, 0});
  sparse_dims(&sp, 2, dims);
  expect_sparse_error(&sp, "of dimension 1 out of range");
  /* a huge coordinate (signed overflow in the flat index) */
  sparse_values(&sp, GPUX_DT_FLOAT, 2, vals);
  sparse_indices(&sp, GPUX_DT_INT64, 2, coo_shape, (int64_t[]){INT64_MAX, INT64_MAX, 0, 0});
  sparse_dims(&sp, 2, dims);
  expect_sparse_error(&sp, "out of range");
  /* negative flat index */
  sparse_values(&sp, GPUX_DT_FLOAT, 2, vals);
  sparse_indices(&sp, GPUX_DT_INT64, 1, flat_shape, (int64_t[]){-1, 0});
  sparse_dims(&sp, 2, dims);
  expect_sparse_error(&sp, "sparse index -1 out of range");
  /* int32 indices */
  sparse_values(&sp, GPUX_DT_FLOAT, 2, vals);
  sparse_indices(&sp, GPUX_DT_INT32, 1, flat_shape, flat);
  sparse_dims(&sp, 2, dims);
  expect_sparse_error(&sp, "indices must be int64");
  /* string values (used to free the same strings twice) */
  sparse_values(&sp, GPUX_DT_STRING, 3, NULL);
  sparse_indices(&sp, GPUX_DT_INT64, 1, three, (int64_t[]){0, 1, 2});
  sparse_dims(&sp, 1, three);
  expect_sparse_error(&sp, "strings are not supported");
  /* values of rank 2 */
  pbw t = {0};
  head(&t, "v", GPUX_DT_FLOAT, 2, (int64_t[]){1, 2});
  pbw_len(&t, F_RAW, vals, sizeof vals);
  pbw_msg(&sp, 1, &t);
  sparse_indices(&sp, GPUX_DT_INT64, 1, flat_shape, flat);
  sparse_dims(&sp, 2, dims);
  expect_sparse_error(&sp, "values must have rank 1");
  /* 2^40 dense elements from a few bytes: refused before allocating */
  sparse_values(&sp, GPUX_DT_FLOAT, 2, vals);
  sparse_indices(&sp, GPUX_DT_INT64, 1, flat_shape, flat);
  sparse_dims(&sp, 2, (int64_t[]){(int64_t)1 << 20, (int64_t)1 << 20});
  expect_sparse_error(&sp, "densifies to more than 1073741824 bytes");
  /* no dims */
  sparse_values(&sp, GPUX_DT_FLOAT, 2, vals);
  sparse_indices(&sp, GPUX_DT_INT64, 1, flat_shape, flat);
  expect_sparse_error(&sp, "without dims");
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_field_not_of_dtype), cmocka_unit_test(test_counts),
    cmocka_unit_test(test_valid),              cmocka_unit_test(test_load_pb_file),
    cmocka_unit_test(test_sparse),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
