/* names.c — "did you mean": how close a mistyped name (a GPUXfile key, a dtype, an image) is to
 * the names that exist, so that errors can suggest the one meant. */
#include "core/internal.h"
#include <ctype.h>

int gpux__edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 64 || lb > 64) return 99;
  int row[65];
  for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
  for (size_t i = 1; i <= la; i++) {
    int prev = row[0];
    row[0] = (int)i;
    for (size_t j = 1; j <= lb; j++) {
      int cur = row[j];
      int cost = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
      int v = prev + cost;
      if (row[j] + 1 < v) v = row[j] + 1;
      if (row[j - 1] + 1 < v) v = row[j - 1] + 1;
      row[j] = v;
      prev = cur;
    }
  }
  return row[lb];
}

const char *gpux__closest_name(const char *word, const char *const *names) {
  const char *best = NULL;
  int best_d = 99;
  for (int i = 0; names[i]; i++) {
    int d = gpux__edit_distance(word, names[i]);
    if (d < best_d) { best_d = d; best = names[i]; }
  }
  /* a third of the word's letters, at most 3: "modle" -> "model", but not "x" -> "y" */
  int lim = (int)strlen(word) / 3 + 1;
  if (lim > 3) lim = 3;
  return best_d <= lim ? best : NULL;
}
