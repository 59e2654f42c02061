/* tree.h — the small document tree the GPUXfile converter reads: scalars, lists and mappings with
 * the line each came from, built from YAML (libyaml) or JSON (cJSON). Private to src/spec/. */
#ifndef GPUX_SPEC_TREE_H
#define GPUX_SPEC_TREE_H

#include "core/internal.h"

typedef struct cJSON cJSON;

typedef enum { GPUX__SN_SCALAR = 0, GPUX__SN_LIST = 1, GPUX__SN_MAP = 2 } gpux__snode_kind;

typedef struct gpux__snode gpux__snode;
struct gpux__snode {
  int kind;                     /* gpux__snode_kind */
  int line;                     /* 1-based; 0 when unknown (JSON) */
  const char *str;              /* scalar text */
  int plain;                    /* scalar written without quotes (may be a number, bool, null) */
  int n;                        /* list items / mapping pairs */
  gpux__snode **items;          /* list items, or mapping values */
  const char **keys;            /* mapping keys */
  int *key_lines;
};

/* Parses YAML text (first document). Errors: GPUX_E_PARSE "FILE:LINE: <libyaml's problem>". */
int gpux__tree_from_yaml(gpux__arena *a, const char *text, size_t len, const char *file,
                         gpux__snode **root);
int gpux__tree_from_json(gpux__arena *a, const cJSON *json, gpux__snode **root);

/* Mapping lookup: the value (NULL when absent); *line = the key's line when found. */
gpux__snode *gpux__tree_get(const gpux__snode *map, const char *key, int *line);
/* A plain scalar that means null ("", "~", "null"). */
int gpux__tree_is_null(const gpux__snode *n);

#endif
