/* tensorproto.c — decoding ONNX TensorProto (raw_data, typed fields, external data files,
 * sub-byte packing), SparseTensorProto, SequenceProto and OptionalProto into gpux_tensor. */
#include "onnx/onnx.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* TensorProto field numbers */
enum {
  TP_DIMS = 1, TP_DATA_TYPE = 2, TP_FLOAT_DATA = 4, TP_INT32_DATA = 5, TP_STRING_DATA = 6,
  TP_INT64_DATA = 7, TP_NAME = 8, TP_RAW_DATA = 9, TP_DOUBLE_DATA = 10, TP_UINT64_DATA = 11,
  TP_EXTERNAL_DATA = 13, TP_DATA_LOCATION = 14
};

/* elements packed into one byte in raw_data / int32_data: 2 for 4-bit types, 4 for 2-bit */
static int per_byte(int dtype) {
  switch (dtype) {
  case GPUX_DT_INT4: case GPUX_DT_UINT4: case GPUX_DT_FLOAT4E2M1: return 2;
  case GPUX_DT_INT2: case GPUX_DT_UINT2: return 4;
  }
  return 1;
}

static void unpack_subbyte(int dtype, const uint8_t *packed, uint8_t *out, int64_t count) {
  int k = per_byte(dtype), bits = 8 / k;
  for (int64_t i = 0; i < count; i++) {
    unsigned v = (packed[i / k] >> ((i % k) * bits)) & ((1u << bits) - 1);
    if (dtype == GPUX_DT_INT4 || dtype == GPUX_DT_INT2) /* sign-extend */
      out[i] = (uint8_t)(int8_t)((int8_t)(v << (8 - bits)) >> (8 - bits));
    else
      out[i] = (uint8_t)v;
  }
}

typedef struct {
  const uint8_t *data;
  size_t len;
} span;

/* 1 when `file` (a resolved path) is inside the folder `dir` resolves to. */
static int resolves_inside(const char *dir, const char *file) {
  char real[PATH_MAX];
  if (!realpath(dir, real)) return 0;
  size_t n = strlen(real);
  return !strncmp(file, real, n) && (file[n] == '/' || (n == 1 && real[0] == '/'));
}

/* An external data file may be reached through symlinks only when it resolves inside the model's
 * folder, or next to the model file's own target (an image's run folder links every layer to its
 * blob in one folder). Checked on the opened descriptor, so the file cannot be swapped after. */
static int external_allowed(const gpux_model *m, int fd, char *real, size_t len) {
  char link[64];
  real[0] = 0;
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, real, len - 1);
  if (n <= 0) return 0;
  real[n] = 0;
  if (resolves_inside(m->dir, real)) return 1;
  char model_real[PATH_MAX];
  if (!m->path || !realpath(m->path, model_real)) return 0;
  char *slash = strrchr(model_real, '/');
  if (!slash) return 0;
  *slash = 0;
  return resolves_inside(model_real[0] ? model_real : "/", real);
}

/* Maps an external data file of the model (cached per model), returns its bytes. */
static int map_external(gpux_model *m, const char *location, span *file) {
  if (!m || !m->dir) return gpux__error(GPUX_E_MODEL, "external data '%s' needs the model's folder", location);
  if (location[0] == '/' || strstr(location, ".."))
    return gpux__error(GPUX_E_MODEL, "external data location '%s' must be a relative path inside the model's folder", location);
  char path[4096], real[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", m->dir, location);
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block the open */
  if (fd < 0) return gpux__error(GPUX_E_NOTFOUND, "external data file %s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) < 0) { close(fd); return gpux__error(GPUX_E_IO, "%s: %s", path, strerror(errno)); }
  if (!S_ISREG(st.st_mode)) { close(fd); return gpux__error(GPUX_E_MODEL, "external data file %s is not a regular file", path); }
  if (!external_allowed(m, fd, real, sizeof real)) {
    close(fd);
    return gpux__error(GPUX_E_MODEL, "external data file %s resolves to %s, outside the model's folder", path, real);
  }
  void *p = st.st_size ? gpux__model_map(fd, (size_t)st.st_size) : NULL;
  close(fd);
  if (st.st_size && p == MAP_FAILED) return gpux__error(GPUX_E_IO, "%s: mmap: %s", path, strerror(errno));
  void **maps = gpux__realloc(m->ext_maps, (size_t)(m->n_ext_maps + 1) * sizeof *maps);
  size_t *sizes = maps ? gpux__realloc(m->ext_sizes, (size_t)(m->n_ext_maps + 1) * sizeof *sizes) : NULL;
  if (maps) m->ext_maps = maps;
  if (!maps || !sizes) { if (p) munmap(p, (size_t)st.st_size); return GPUX_E_NOMEM; }
  m->ext_sizes = sizes;
  m->ext_maps[m->n_ext_maps] = p;
  m->ext_sizes[m->n_ext_maps++] = (size_t)st.st_size;
  file->data = p;
  file->len = (size_t)st.st_size;
  return 0;
}

static int read_external(gpux_model *m, span entries[], int n_entries, span *out) {
  char location[1024] = "";
  int64_t offset = 0, length = -1;
  for (int i = 0; i < n_entries; i++) {
    gpux__pb r = gpux__pb_init(entries[i].data, entries[i].len);
    gpux__pb_field f;
    span key = {0}, val = {0};
    int rc;
    while ((rc = gpux__pb_next(&r, &f)) > 0) {
      if (f.field == 1 && f.wire == PB_LEN) key = (span){f.data, f.len};
      if (f.field == 2 && f.wire == PB_LEN) val = (span){f.data, f.len};
    }
    if (rc < 0) return rc;
    char v[1024];
    snprintf(v, sizeof v, "%.*s", (int)val.len, (const char *)val.data);
    if (key.len == 8 && !memcmp(key.data, "location", 8)) snprintf(location, sizeof location, "%s", v);
    else if (key.len == 6 && !memcmp(key.data, "offset", 6)) offset = strtoll(v, NULL, 10);
    else if (key.len == 6 && !memcmp(key.data, "length", 6)) length = strtoll(v, NULL, 10);
  }
  if (!location[0]) return gpux__error(GPUX_E_MODEL, "external data without a location");
  span file = {0};
  int rc = map_external(m, location, &file);
  if (rc) return rc;
  if (offset < 0 || (size_t)offset > file.len) return gpux__error(GPUX_E_MODEL, "external data '%s': offset %lld beyond its %zu bytes", location, (long long)offset, file.len);
  if (length < 0) length = (int64_t)(file.len - (size_t)offset);
  if ((size_t)length > file.len - (size_t)offset)
    return gpux__error(GPUX_E_MODEL, "external data '%s': offset %lld + length %lld beyond its %zu bytes",
                       location, (long long)offset, (long long)length, file.len);
  out->data = file.data + offset;
  out->len = (size_t)length;
  return 0;
}

/* The one typed field that may carry the values of a data type (onnx.proto's TensorProto). */
static int typed_field_for(int dtype) {
  switch (dtype) {
  case GPUX_DT_FLOAT: case GPUX_DT_COMPLEX64: return TP_FLOAT_DATA;
  case GPUX_DT_DOUBLE: case GPUX_DT_COMPLEX128: return TP_DOUBLE_DATA;
  case GPUX_DT_INT64: return TP_INT64_DATA;
  case GPUX_DT_UINT32: case GPUX_DT_UINT64: return TP_UINT64_DATA;
  case GPUX_DT_STRING: return TP_STRING_DATA;
  }
  return TP_INT32_DATA; /* int32 and every type of 16 bits or fewer */
}

static const char *typed_field_name(int field) {
  switch (field) {
  case TP_FLOAT_DATA: return "float_data";
  case TP_INT32_DATA: return "int32_data";
  case TP_STRING_DATA: return "string_data";
  case TP_INT64_DATA: return "int64_data";
  case TP_DOUBLE_DATA: return "double_data";
  case TP_UINT64_DATA: return "uint64_data";
  }
  return "?";
}

/* How many values one occurrence of a typed field holds (a packed run or a single value), after
 * checking its wire type and that a packed run is whole; a negative error code otherwise. */
static int64_t count_typed_values(const gpux__pb_field *f) {
  const char *fname = typed_field_name((int)f->field);
  if (f->field == TP_STRING_DATA) {
    if (f->wire != PB_LEN) return gpux__error(GPUX_E_PARSE, "string_data with wire type %d", f->wire);
    return 1;
  }
  size_t width = f->field == TP_FLOAT_DATA ? 4 : f->field == TP_DOUBLE_DATA ? 8 : 0;
  int single = width == 4 ? PB_I32 : width == 8 ? PB_I64 : PB_VARINT;
  if (f->wire == single) return 1;
  if (f->wire != PB_LEN) return gpux__error(GPUX_E_PARSE, "%s with wire type %d", fname, f->wire);
  if (width) {
    if (f->len % width) return gpux__error(GPUX_E_PARSE, "truncated %s (%zu bytes)", fname, f->len);
    return (int64_t)(f->len / width);
  }
  int64_t n = 0; /* varints: one value per byte without the continuation bit */
  for (size_t i = 0; i < f->len; i++) n += !(f->data[i] & 0x80);
  if (f->len && (f->data[f->len - 1] & 0x80)) return gpux__error(GPUX_E_PARSE, "truncated varint in %s", fname);
  return n;
}

/* Decodes a TensorProto. Everything is checked before anything is allocated or written: each
 * typed field must be the one the data type uses, and the number of values (or raw bytes) really
 * present must match the declared dims, so declared sizes never allocate more than the input
 * holds and values are always written at the width of the data type. */
const void *gpux__tensor_raw(const uint8_t *data, size_t len, size_t *n) {
  gpux__pb r = gpux__pb_init(data, len);
  gpux__pb_field f;
  const void *raw = NULL;
  while (gpux__pb_next(&r, &f) > 0)
    if (f.field == TP_RAW_DATA && f.wire == PB_LEN) raw = f.data, *n = f.len;
  return raw;
}

int gpux__tensor_from_pb(const uint8_t *data, size_t len, gpux_model *model, int borrow,
                         gpux_tensor *out, const char **name, size_t *name_len) {
  memset(out, 0, sizeof *out);
  gpux__pb r = gpux__pb_init(data, len);
  gpux__pb_field f;
  int rc, dtype = 0, ndim = 0, external = 0, n_ext = 0, has_raw = 0;
  int64_t dims[GPUX_MAX_DIMS];
  span raw = {0}, ext[8];
  unsigned typed_seen = 0;            /* bit per typed field number present */
  int64_t n_values = 0;               /* values in all typed fields together */
  const char *nm = "";
  size_t nm_len = 0;
  if (name) { *name = ""; *name_len = 0; }
  while ((rc = gpux__pb_next(&r, &f)) > 0) {
    switch (f.field) {
    case TP_DIMS:
      if (f.wire == PB_LEN) {
        gpux__pb s = gpux__pb_sub(&f);
        uint64_t v;
        while (s.p < s.end) {
          if (gpux__pb_varint(&s, &v)) return GPUX_E_PARSE;
          if (ndim >= GPUX_MAX_DIMS) return gpux__error(GPUX_E_UNSUPPORTED, "tensor rank above %d", GPUX_MAX_DIMS);
          dims[ndim++] = (int64_t)v;
        }
      } else {
        if (ndim >= GPUX_MAX_DIMS) return gpux__error(GPUX_E_UNSUPPORTED, "tensor rank above %d", GPUX_MAX_DIMS);
        dims[ndim++] = (int64_t)f.u;
      }
      break;
    case TP_DATA_TYPE: dtype = f.u > INT32_MAX ? -1 : (int)f.u; break;
    case TP_NAME:
      if (f.wire == PB_LEN) { nm = (const char *)f.data; nm_len = f.len; }
      if (name) { *name = nm; *name_len = nm_len; }
      break;
    case TP_RAW_DATA: raw = (span){f.data, f.len}; has_raw = 1; break;
    case TP_DATA_LOCATION: external = f.u == 1; break;
    case TP_EXTERNAL_DATA:
      if (n_ext < 8) ext[n_ext++] = (span){f.data, f.len};
      break;
    case TP_STRING_DATA: case TP_FLOAT_DATA: case TP_INT32_DATA: case TP_INT64_DATA:
    case TP_DOUBLE_DATA: case TP_UINT64_DATA: {
      int64_t n = count_typed_values(&f);
      if (n < 0) return (int)n;
      typed_seen |= 1u << f.field;
      n_values += n;
      break;
    }
    }
  }
  if (rc < 0) return rc;
  for (int i = 0; i < ndim; i++)
    if (dims[i] < 0) return gpux__error(GPUX_E_MODEL, "negative dimension %lld", (long long)dims[i]);
  size_t esize = gpux_dtype_size(dtype);
  if (!esize || dtype == GPUX_DT_UNDEFINED)
    return gpux__error(GPUX_E_UNSUPPORTED_DTYPE, "tensor data type %d is not supported", dtype);
  int typed_field = typed_field_for(dtype);
  for (int fld = TP_FLOAT_DATA; fld <= TP_UINT64_DATA; fld++)
    if ((typed_seen >> fld & 1) && fld != typed_field)
      return gpux__error(GPUX_E_MODEL, "tensor '%.*s': %s does not belong to a %s tensor (its values go in %s)",
                         (int)nm_len, nm, typed_field_name(fld), gpux_dtype_name(dtype), typed_field_name(typed_field));
  if (typed_seen && (has_raw || external))
    return gpux__error(GPUX_E_MODEL, "tensor '%.*s' has both %s and %s", (int)nm_len, nm,
                       external ? "external data" : "raw_data", typed_field_name(typed_field));
  int64_t count = 1;
  for (int i = 0; i < ndim; i++) {
    if (dims[i] && count > INT64_MAX / 16 / dims[i])
      return gpux__error(GPUX_E_MODEL, "tensor '%.*s' of %s is too large", (int)nm_len, nm, gpux_dtype_name(dtype));
    count *= dims[i];
  }
  int sub = per_byte(dtype);
  if (external && (rc = read_external(model, ext, n_ext, &raw))) return rc;
  if (has_raw || external) {
    size_t want = sub > 1 ? (size_t)((count + sub - 1) / sub) : (size_t)count * esize;
    if (dtype == GPUX_DT_STRING) return gpux__error(GPUX_E_MODEL, "string tensor in raw_data");
    if (raw.len != want)
      return gpux__error(GPUX_E_MODEL, "tensor of %s has %zu bytes of data, expected %zu", gpux_dtype_name(dtype), raw.len, want);
    if (sub == 1 && borrow && ((uintptr_t)raw.data % esize) == 0 && want > 0)
      return gpux__tensor_init_view(out, dtype, ndim, dims, (void *)raw.data); /* points into the mapped file */
    if (sub == 1 && want > 0) { /* a copy: every byte written below, no zeroing first */
      if ((rc = gpux__tensor_init_view(out, dtype, ndim, dims, NULL))) return rc;
      if (!(out->data = gpux__malloc_large(out->nbytes))) return GPUX_E_NOMEM;
      out->owns_data = 1;
    } else if ((rc = gpux_tensor_init(out, dtype, ndim, dims))) {
      return rc;
    }
    if (sub > 1) {
      unpack_subbyte(dtype, raw.data, out->data, count);
    } else if (want) {
      memcpy(out->data, raw.data, want);
    }
    /* a copy is what the model reads from now on: the file's pages behind it can go */
    if (out->data != raw.data) gpux__model_release(model, raw.data, raw.len);
    return 0;
  }
  /* typed values: as many as the dims declare (complex: two per element; 4- and 2-bit types:
   * one int32_data entry per packed byte) */
  int64_t expect = dtype == GPUX_DT_COMPLEX64 || dtype == GPUX_DT_COMPLEX128 ? count * 2
                   : sub > 1 ? (count + sub - 1) / sub : count;
  if (!typed_seen && count != 0)
    return gpux__error(GPUX_E_MODEL, "tensor '%.*s' of %lld elements has no data", (int)nm_len, nm, (long long)count);
  if (n_values != expect)
    return gpux__error(GPUX_E_MODEL, "tensor '%.*s' has %lld values in %s, expected %lld", (int)nm_len, nm,
                       (long long)n_values, typed_field_name(typed_field), (long long)expect);
  if ((rc = gpux_tensor_init(out, dtype, ndim, dims))) return rc;
  /* second pass: every value has a slot of the data type's width (checked above) */
  r = gpux__pb_init(data, len);
  int64_t i = 0, limit = sub > 1 ? count : expect; /* index of the next element (or float of a complex) */
  while ((rc = gpux__pb_next(&r, &f)) > 0) {
    if (f.field != (uint32_t)typed_field) continue;
    if (typed_field == TP_STRING_DATA) {
      if (i >= limit) { rc = gpux__error(GPUX_E_MODEL, "more strings than elements"); goto fail; }
      char *s = gpux__strndup((const char *)f.data, f.len);
      if (!s) { rc = GPUX_E_NOMEM; goto fail; }
      ((char **)out->data)[i++] = s;
      continue;
    }
    /* each occurrence is either one scalar or a packed run of them */
    gpux__pb s = f.wire == PB_LEN ? gpux__pb_sub(&f) : gpux__pb_init(NULL, 0);
    int single = f.wire != PB_LEN;
    for (;;) {
      uint64_t v;
      if (single) { v = f.u; }
      else if (s.p >= s.end) break;
      else if (typed_field == TP_FLOAT_DATA) {
        uint32_t b; memcpy(&b, s.p, 4); s.p += 4; v = b; /* whole runs: checked by count_typed_values */
      } else if (typed_field == TP_DOUBLE_DATA) {
        memcpy(&v, s.p, 8); s.p += 8;
      } else if (gpux__pb_varint(&s, &v)) { rc = GPUX_E_PARSE; goto fail; }
      if (i >= limit) { rc = gpux__error(GPUX_E_MODEL, "more values than the tensor's %lld elements", (long long)count); goto fail; }
      if (sub > 1) { /* one int32_data entry holds one packed byte */
        uint8_t b = (uint8_t)v, tmp[4];
        unpack_subbyte(dtype, &b, tmp, sub);
        for (int j = 0; j < sub && i < count; j++, i++) ((uint8_t *)out->data)[i] = tmp[j];
      } else {
        switch (typed_field) {
        case TP_FLOAT_DATA: { float x; uint32_t b = (uint32_t)v; memcpy(&x, &b, 4); ((float *)out->data)[i] = x; break; }
        case TP_DOUBLE_DATA: { double x; memcpy(&x, &v, 8); ((double *)out->data)[i] = x; break; }
        case TP_INT64_DATA: ((int64_t *)out->data)[i] = (int64_t)v; break;
        case TP_UINT64_DATA:
          if (dtype == GPUX_DT_UINT32) ((uint32_t *)out->data)[i] = (uint32_t)v;
          else ((uint64_t *)out->data)[i] = v;
          break;
        case TP_INT32_DATA:
          switch (esize) { /* int32, (u)int16, float16 bits, (u)int8, bool, float8 bits */
          case 4: ((int32_t *)out->data)[i] = (int32_t)v; break;
          case 2: ((uint16_t *)out->data)[i] = (uint16_t)v; break;
          default: ((uint8_t *)out->data)[i] = (uint8_t)v; break;
          }
          break;
        }
        i++;
      }
      if (single) break;
    }
  }
  if (rc < 0) goto fail;
  if (i != limit) {
    rc = gpux__error(GPUX_E_MODEL, "tensor has %lld values, expected %lld", (long long)i, (long long)limit);
    goto fail;
  }
  return 0;
fail:
  gpux_tensor_free(out);
  return rc;
}

#define SPARSE_MAX_DENSE_BYTES ((int64_t)1 << 30)

/* SparseTensorProto → dense tensor. values must be a rank-1 numeric tensor [NNZ]; indices an
 * int64 tensor of [NNZ] linear indices or [NNZ, rank] coordinates, each inside dims. All of it is
 * checked before the dense tensor is allocated. */
int gpux__sparse_from_pb(const uint8_t *data, size_t len, gpux_model *model, gpux_tensor *out) {
  gpux__pb r = gpux__pb_init(data, len);
  gpux__pb_field f;
  int rc, ndim = 0, have_values = 0, have_indices = 0;
  int64_t dims[GPUX_MAX_DIMS];
  gpux_tensor values = {0}, indices = {0};
  memset(out, 0, sizeof *out);
  while ((rc = gpux__pb_next(&r, &f)) > 0) {
    if (f.field == 1 && f.wire == PB_LEN) {
      gpux_tensor_free(&values);
      if ((rc = gpux__tensor_from_pb(f.data, f.len, model, 0, &values, NULL, NULL))) goto done;
      have_values = 1;
    } else if (f.field == 2 && f.wire == PB_LEN) {
      gpux_tensor_free(&indices);
      if ((rc = gpux__tensor_from_pb(f.data, f.len, model, 0, &indices, NULL, NULL))) goto done;
      have_indices = 1;
    } else if (f.field == 3) {
      gpux__pb s = f.wire == PB_LEN ? gpux__pb_sub(&f) : gpux__pb_init(NULL, 0);
      uint64_t v = f.u;
      if (f.wire == PB_LEN && !f.len) continue;
      do {
        if (f.wire == PB_LEN && gpux__pb_varint(&s, &v)) { rc = GPUX_E_PARSE; goto done; }
        if (ndim >= GPUX_MAX_DIMS) { rc = gpux__error(GPUX_E_UNSUPPORTED, "sparse rank too high"); goto done; }
        if (v > INT64_MAX) { rc = gpux__error(GPUX_E_MODEL, "sparse tensor: negative dimension"); goto done; }
        dims[ndim++] = (int64_t)v;
      } while (f.wire == PB_LEN && s.p < s.end);
    }
  }
  if (rc < 0) goto done;
  rc = GPUX_E_MODEL;
  if (!have_values) { gpux__error(rc, "sparse tensor without values"); goto done; }
  if (!ndim) { gpux__error(rc, "sparse tensor without dims"); goto done; }
  if (values.ndim != 1) { gpux__error(rc, "sparse tensor: values must have rank 1, not %d", values.ndim); goto done; }
  if (values.dtype == GPUX_DT_STRING) { gpux__error(GPUX_E_UNSUPPORTED, "sparse tensors of strings are not supported"); rc = GPUX_E_UNSUPPORTED; goto done; }
  int64_t nnz = values.dims[0];
  if (nnz && !have_indices) { gpux__error(rc, "sparse tensor with %lld values has no indices", (long long)nnz); goto done; }
  int coo = have_indices && indices.ndim == 2; /* [nnz, rank] coordinates, else [nnz] flat indices */
  if (have_indices) {
    if (indices.dtype != GPUX_DT_INT64) { gpux__error(rc, "sparse tensor: indices must be int64, not %s", gpux_dtype_name(indices.dtype)); goto done; }
    if ((indices.ndim != 1 && indices.ndim != 2) || indices.dims[0] != nnz || (coo && indices.dims[1] != ndim)) {
      char a[96], b[96];
      gpux__error(rc, "sparse tensor: indices %s do not match values %s and rank %d",
                  gpux_tensor_describe(&indices, a, sizeof a), gpux_tensor_describe(&values, b, sizeof b), ndim);
      goto done;
    }
  }
  int64_t total = 1;
  for (int d = 0; d < ndim; d++) {
    if (dims[d] && total > INT64_MAX / 16 / dims[d]) { gpux__error(rc, "sparse tensor is too large"); goto done; }
    total *= dims[d];
  }
  /* a few bytes may declare any dense size: densified tensors are capped */
  if (total > SPARSE_MAX_DENSE_BYTES / (int64_t)gpux_dtype_size(values.dtype)) {
    gpux__error(rc, "sparse tensor of %lld elements densifies to more than %lld bytes", (long long)total,
                (long long)SPARSE_MAX_DENSE_BYTES);
    goto done;
  }
  const int64_t *idx = indices.data;
  for (int64_t i = 0; i < nnz; i++) { /* every index inside dims before anything is allocated */
    if (coo) {
      for (int d = 0; d < ndim; d++)
        if (idx[i * ndim + d] < 0 || idx[i * ndim + d] >= dims[d]) {
          gpux__error(rc, "sparse index %lld of dimension %d out of range [0, %lld)", (long long)idx[i * ndim + d], d, (long long)dims[d]);
          goto done;
        }
    } else if (idx[i] < 0 || idx[i] >= total) {
      gpux__error(rc, "sparse index %lld out of range [0, %lld)", (long long)idx[i], (long long)total);
      goto done;
    }
  }
  if ((rc = gpux_tensor_init(out, values.dtype, ndim, dims))) goto done;
  size_t es = gpux_dtype_size(out->dtype);
  /* with values, every dim is positive (a coordinate fits in each), so the strides fit: their
   * product is `total`; without, a zero dim may hide dims whose product overflows */
  int64_t strides[GPUX_MAX_DIMS] = {0};
  if (nnz) gpux__strides(ndim, dims, strides);
  for (int64_t i = 0; i < nnz; i++) {
    int64_t flat = 0;
    if (coo) for (int d = 0; d < ndim; d++) flat += idx[i * ndim + d] * strides[d];
    else flat = idx[i];
    memcpy((char *)out->data + flat * es, (char *)values.data + i * es, es);
  }
done:
  gpux_tensor_free(&values);
  gpux_tensor_free(&indices);
  return rc < 0 ? rc : 0;
}

/* Sequence/Optional element kinds (SequenceProto.DataType) */
enum { ELEM_TENSOR = 1, ELEM_SPARSE = 2, ELEM_SEQUENCE = 3, ELEM_MAP = 4, ELEM_OPTIONAL = 5 };

static int append_item(gpux_tensor *seq, gpux_tensor *item) {
  gpux_tensor *items = gpux__realloc(seq->items, (size_t)(seq->n_items + 1) * sizeof *items);
  if (!items) return GPUX_E_NOMEM;
  seq->items = items;
  seq->items[seq->n_items++] = *item;
  if (item->kind == GPUX_KIND_TENSOR) seq->dtype = item->dtype;
  return 0;
}

int gpux__sequence_from_pb(const uint8_t *data, size_t len, gpux_tensor *out) {
  gpux__pb r = gpux__pb_init(data, len);
  gpux__pb_field f;
  int rc;
  memset(out, 0, sizeof *out);
  out->kind = GPUX_KIND_SEQUENCE;
  while ((rc = gpux__pb_next(&r, &f)) > 0) {
    gpux_tensor item;
    int got = 0;
    if (f.field == 3 && f.wire == PB_LEN) { rc = gpux__tensor_from_pb(f.data, f.len, NULL, 0, &item, NULL, NULL); got = 1; }
    else if (f.field == 5 && f.wire == PB_LEN) { rc = gpux__sequence_from_pb(f.data, f.len, &item); got = 1; }
    else if (f.field == 7 && f.wire == PB_LEN) { rc = gpux__optional_from_pb(f.data, f.len, &item); got = 1; }
    else if ((f.field == 4 || f.field == 6) && f.wire == PB_LEN) { rc = gpux__error(GPUX_E_UNSUPPORTED, "sequences of sparse tensors or maps are not supported"); }
    if (rc < 0) { gpux_tensor_free(out); return rc; }
    if (got && (rc = append_item(out, &item))) { gpux_tensor_free(&item); gpux_tensor_free(out); return rc; }
  }
  if (rc < 0) gpux_tensor_free(out);
  return rc < 0 ? rc : 0;
}

int gpux__optional_from_pb(const uint8_t *data, size_t len, gpux_tensor *out) {
  gpux__pb r = gpux__pb_init(data, len);
  gpux__pb_field f;
  int rc;
  memset(out, 0, sizeof *out);
  out->kind = GPUX_KIND_NONE;
  while ((rc = gpux__pb_next(&r, &f)) > 0) {
    if (f.wire != PB_LEN || (f.field != 3 && f.field != 5 && f.field != 7)) continue;
    gpux_tensor_free(out);
    if (f.field == 3) rc = gpux__tensor_from_pb(f.data, f.len, NULL, 0, out, NULL, NULL);
    else if (f.field == 5) rc = gpux__sequence_from_pb(f.data, f.len, out);
    else if (f.field == 7) rc = gpux__optional_from_pb(f.data, f.len, out);
    else continue;
    if (rc < 0) return rc;
  }
  if (rc < 0) gpux_tensor_free(out); /* a corrupt field after a decoded element */
  return rc < 0 ? rc : 0;
}

int gpux_tensor_load_pb(const char *path, int kind, gpux_tensor *out) {
  memset(out, 0, sizeof *out);
  FILE *fp = fopen(path, "rb");
  if (!fp) return gpux__error(GPUX_E_NOTFOUND, "%s: %s", path, strerror(errno));
  fseek(fp, 0, SEEK_END);
  long size = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  uint8_t *buf = size > 0 ? gpux__malloc((size_t)size) : NULL;
  if (size > 0 && (!buf || fread(buf, 1, (size_t)size, fp) != (size_t)size)) {
    fclose(fp);
    free(buf);
    return buf ? gpux__error(GPUX_E_IO, "%s: read failed", path) : GPUX_E_NOMEM;
  }
  fclose(fp);
  int rc;
  if (kind == GPUX_KIND_SEQUENCE) rc = gpux__sequence_from_pb(buf, (size_t)size, out);
  else if (kind == GPUX_KIND_NONE) rc = gpux__optional_from_pb(buf, (size_t)size, out);
  else rc = gpux__tensor_from_pb(buf, (size_t)size, NULL, 0, out, NULL, NULL);
  free(buf);
  if (rc) return gpux__error_prefix(rc, "%s: ", path);
  return 0;
}
