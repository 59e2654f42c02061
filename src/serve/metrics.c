/* metrics.c — GET /metrics in the Prometheus text exposition format (version 0.0.4): request
 * counts by model and outcome, request/queue/compute duration histograms, the batch-size
 * histogram, in-flight requests, model load time and readiness, HTTP answers by status class,
 * and the process's resident memory. */
#include "serve/serve.h"
#include <stdarg.h>
#include <stdio.h>

const double gpux__dur_buckets[GPUX__DUR_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                     0.1,    0.25,  0.5,    1,     2.5,  5,    10};
const double gpux__batch_buckets[GPUX__BATCH_BUCKETS] = {1, 2, 4, 8, 16, 32, 64, 128};

void gpux__hist_observe(gpux__hist *h, const double *bounds, int n_bounds, double v) {
  int b = 0;
  while (b < n_bounds && v > bounds[b]) b++;
  h->counts[b]++;
  h->sum += v;
  h->n++;
}

typedef struct {
  char *data;
  size_t len, cap;
} sbuf;

static void GPUX__PRINTF(2, 3) put(sbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || !b->data) return;
  if (b->len + (size_t)n + 1 > b->cap) {
    size_t cap = b->cap * 2 + (size_t)n + 1;
    char *p = realloc(b->data, cap);
    if (!p) { free(b->data); b->data = NULL; return; }
    b->data = p;
    b->cap = cap;
  }
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

static void hist(sbuf *b, const char *metric, const char *model, const gpux__hist *h, const double *bounds, int nb) {
  uint64_t cum = 0;
  for (int i = 0; i < nb; i++) {
    cum += h->counts[i];
    put(b, "%s_bucket{model=\"%s\",le=\"%g\"} %llu\n", metric, model, bounds[i], (unsigned long long)cum);
  }
  cum += h->counts[nb];
  put(b, "%s_bucket{model=\"%s\",le=\"+Inf\"} %llu\n", metric, model, (unsigned long long)cum);
  put(b, "%s_sum{model=\"%s\"} %.9g\n", metric, model, h->sum);
  put(b, "%s_count{model=\"%s\"} %llu\n", metric, model, (unsigned long long)h->n);
}

static long resident_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, rss = 0;
  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
    fclose(f);
  }
  return rss * 4096;
}

char *gpux__metrics_text(gpux__metrics *m, gpux__slot *slots, int n) {
  sbuf b = {malloc(8192), 0, 8192};
  pthread_mutex_lock(&m->mu);
  put(&b, "# HELP gpux_requests_total Inference requests answered, by model and outcome.\n"
          "# TYPE gpux_requests_total counter\n");
  static const char *outcomes[] = {"success", "client_error", "server_error", "rejected", "timeout"};
  for (int i = 0; i < n; i++) {
    const uint64_t v[5] = {slots[i].n_ok, slots[i].n_client_err, slots[i].n_server_err, slots[i].n_rejected, slots[i].n_timeout};
    for (int k = 0; k < 5; k++)
      put(&b, "gpux_requests_total{model=\"%s\",outcome=\"%s\"} %llu\n", slots[i].name, outcomes[k], (unsigned long long)v[k]);
  }
  put(&b, "# HELP gpux_request_duration_seconds Time from a request's arrival to its answer.\n"
          "# TYPE gpux_request_duration_seconds histogram\n");
  for (int i = 0; i < n; i++) hist(&b, "gpux_request_duration_seconds", slots[i].name, &slots[i].h_request, gpux__dur_buckets, GPUX__DUR_BUCKETS);
  put(&b, "# HELP gpux_http_responses_total HTTP responses by status class.\n# TYPE gpux_http_responses_total counter\n");
  for (int c = 1; c <= 5; c++) put(&b, "gpux_http_responses_total{code=\"%dxx\"} %llu\n", c, (unsigned long long)m->http_by_code[c]);
  put(&b, "# HELP gpux_inflight_requests Requests being answered now.\n# TYPE gpux_inflight_requests gauge\n"
          "gpux_inflight_requests %d\n", m->inflight);
  put(&b, "# HELP gpux_uptime_seconds Time since the server started.\n# TYPE gpux_uptime_seconds gauge\n"
          "gpux_uptime_seconds %.3f\n", (gpux__now_ms() - m->t_start) / 1e3);
  pthread_mutex_unlock(&m->mu);

  put(&b, "# HELP gpux_queue_duration_seconds Time a request waited in its model's queue.\n"
          "# TYPE gpux_queue_duration_seconds histogram\n");
  for (int i = 0; i < n; i++) {
    pthread_mutex_lock(&slots[i].mu);
    gpux__hist h = slots[i].h_queue;
    pthread_mutex_unlock(&slots[i].mu);
    hist(&b, "gpux_queue_duration_seconds", slots[i].name, &h, gpux__dur_buckets, GPUX__DUR_BUCKETS);
  }
  put(&b, "# HELP gpux_compute_duration_seconds Time in the model (the batch's run for batched requests).\n"
          "# TYPE gpux_compute_duration_seconds histogram\n");
  for (int i = 0; i < n; i++) {
    pthread_mutex_lock(&slots[i].mu);
    gpux__hist h = slots[i].h_compute;
    pthread_mutex_unlock(&slots[i].mu);
    hist(&b, "gpux_compute_duration_seconds", slots[i].name, &h, gpux__dur_buckets, GPUX__DUR_BUCKETS);
  }
  put(&b, "# HELP gpux_batch_size Rows per model run.\n# TYPE gpux_batch_size histogram\n");
  for (int i = 0; i < n; i++) {
    pthread_mutex_lock(&slots[i].mu);
    gpux__hist h = slots[i].h_batch;
    int q = slots[i].queued;
    pthread_mutex_unlock(&slots[i].mu);
    hist(&b, "gpux_batch_size", slots[i].name, &h, gpux__batch_buckets, GPUX__BATCH_BUCKETS);
    (void)q;
  }
  for (int k = 0; k < 2; k++) {
    put(&b, k ? "# HELP gpux_generate_shared_steps_total Those decode steps that advanced more than one request.\n"
                "# TYPE gpux_generate_shared_steps_total counter\n"
              : "# HELP gpux_generate_steps_total Decode steps of generation requests sharing steps (continuous batching).\n"
                "# TYPE gpux_generate_steps_total counter\n");
    for (int i = 0; i < n; i++) {
      pthread_mutex_lock(&slots[i].mu);
      uint64_t v = k ? slots[i].n_gen_shared_steps : slots[i].n_gen_steps;
      pthread_mutex_unlock(&slots[i].mu);
      put(&b, "%s{model=\"%s\"} %llu\n", k ? "gpux_generate_shared_steps_total" : "gpux_generate_steps_total", slots[i].name,
          (unsigned long long)v);
    }
  }
  put(&b, "# HELP gpux_queue_length Requests waiting for their model.\n# TYPE gpux_queue_length gauge\n");
  for (int i = 0; i < n; i++) {
    pthread_mutex_lock(&slots[i].mu);
    int q = slots[i].queued;
    pthread_mutex_unlock(&slots[i].mu);
    put(&b, "gpux_queue_length{model=\"%s\"} %d\n", slots[i].name, q);
  }
  put(&b, "# HELP gpux_model_ready Whether the model is loaded and warmed up.\n# TYPE gpux_model_ready gauge\n");
  for (int i = 0; i < n; i++) put(&b, "gpux_model_ready{model=\"%s\"} %d\n", slots[i].name, slots[i].ready);
  put(&b, "# HELP gpux_model_load_seconds Time to load and warm up the model.\n# TYPE gpux_model_load_seconds gauge\n");
  for (int i = 0; i < n; i++)
    if (slots[i].ready) put(&b, "gpux_model_load_seconds{model=\"%s\"} %.6f\n", slots[i].name, slots[i].load_s);
  put(&b, "# HELP gpux_model_device_memory_bytes Device memory the model's plans hold (0 on the CPU).\n"
          "# TYPE gpux_model_device_memory_bytes gauge\n");
  for (int i = 0; i < n; i++) {
    if (!slots[i].ready) continue;
    uint64_t bytes = 0;
    for (int k = 0; k < slots[i].app->n_models; k++) {
      gpux_run_stats st;
      gpux_session_stats(slots[i].app->sessions[k], &st);
      bytes += st.device_memory;
    }
    put(&b, "gpux_model_device_memory_bytes{model=\"%s\"} %llu\n", slots[i].name, (unsigned long long)bytes);
  }
  put(&b, "# HELP process_resident_memory_bytes Resident memory of the server process.\n"
          "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %ld\n", resident_bytes());
  return b.data;
}
