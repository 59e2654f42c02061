/* batcher.c — one worker thread per served app: it takes jobs from the app's bounded queue and
 * runs them one at a time (session runs are never concurrent for one app). Tensor jobs whose
 * inputs share everything but the leading batch dimension are joined into one run of at most
 * max_batch rows when they arrive within delay_ms of the first; the outputs are split back by
 * rows, in order, to their requests. Generation requests for a model whose generations can share
 * steps (gpux__gen_batchable) run together when max_batch > 1 (continuous batching): each joins
 * the running ones as it arrives (after its prompt runs alone) and every decode step advances all
 * of them in one run; each answer goes out as soon as its own generation ends. A request that
 * times out is taken off the queue, or, when already running, abandoned to the worker, which frees
 * it. */
#include "serve/serve.h"
#include <errno.h>
#include <time.h>

gpux__job *gpux__job_new(int kind) {
  gpux__job *j = gpux__calloc(1, sizeof *j);
  if (!j) return NULL;
  j->kind = kind;
  j->refs = 1;
  return j;
}

static void job_free(gpux__job *j) {
  gpux__named_tensors_free(&j->in);
  gpux__named_tensors_free(&j->out);
  for (int i = 0; i < j->n_owned; i++) free(j->owned[i]);
  free(j->owned);
  free(j->app_in);
  free(j->json);
  free(j->pieces);
  free(j);
}

int gpux__job_own(gpux__job *j, void *p) {
  void **ow = gpux__realloc(j->owned, sizeof *ow * (size_t)(j->n_owned + 1));
  if (!ow) { free(p); return -1; }
  j->owned = ow;
  j->owned[j->n_owned++] = p;
  return 0;
}

void gpux__job_release(gpux__slot *s, gpux__job *j) {
  if (!j) return;
  pthread_mutex_lock(&s->mu);
  int last = --j->refs == 0;
  pthread_mutex_unlock(&s->mu);
  if (last) job_free(j);
}

static void fail_job(gpux__job *j, int rc) {
  j->rc = rc;
  snprintf(j->err, sizeof j->err, "%s", gpux_last_error());
}

/* A run that failed on the device (lost, out of memory) is counted for /health; the sessions
 * recover by themselves (a new device, or the CPU for backend auto). */
static void note_run(gpux__slot *s, int rc) {
  if (rc != GPUX_E_DEVICE) return;
  pthread_mutex_lock(&s->mu);
  s->n_device_err++;
  snprintf(s->last_device_err, sizeof s->last_device_err, "%s", gpux_last_error());
  pthread_mutex_unlock(&s->mu);
}

/* A streamed generation's piece of text: kept for the response's reader, who is woken. Stops
 * the generation when the client went away. */
static int job_piece(void *ctx, const char *text, int64_t token) {
  gpux__job *j = ctx;
  gpux__slot *s = j->slot;
  (void)token;
  size_t n = strlen(text) + 1;
  pthread_mutex_lock(&s->mu);
  int stop = j->abandoned;
  if (!stop && j->pieces_len + n > j->pieces_cap) {
    size_t cap = j->pieces_cap ? j->pieces_cap * 2 : 1024;
    while (cap < j->pieces_len + n) cap *= 2;
    char *p = gpux__realloc(j->pieces, cap);
    if (p) { j->pieces = p; j->pieces_cap = cap; }
    else stop = 1;
  }
  if (!stop) {
    memcpy(j->pieces + j->pieces_len, text, n);
    j->pieces_len += n;
    pthread_cond_broadcast(&s->cv_done);
  }
  pthread_mutex_unlock(&s->mu);
  return stop;
}

/* Can b join a batch led by a? Same input names, dtypes and trailing dimensions. */
static int compatible(const gpux__job *a, const gpux__job *b) {
  if (b->kind != GPUX__JOB_TENSORS || !b->rows || a->in.n != b->in.n) return 0;
  for (int i = 0; i < a->in.n; i++) {
    const gpux_tensor *x = &a->in.t[i], *y = &b->in.t[i];
    if (strcmp(a->in.names[i], b->in.names[i]) || x->dtype != y->dtype || x->ndim != y->ndim) return 0;
    for (int d = 1; d < x->ndim; d++)
      if (x->dims[d] != y->dims[d]) return 0;
  }
  return 1;
}

/* Runs one tensor job alone. */
static void run_one(gpux__slot *s, gpux__job *j) {
  double ms;
  j->t_start = gpux__now_ms();
  int rc = gpux__app_infer(s->app, &j->in, &j->out, &ms);
  j->t_end = gpux__now_ms();
  note_run(s, rc);
  if (rc) fail_job(j, rc);
}

/* Runs k compatible jobs as one batch: inputs concatenated along dim 0, outputs split back.
 * Falls back to one run each when an output does not lead with the batch's rows. */
static void run_batch(gpux__slot *s, gpux__job **jobs, int k) {
  gpux__named_tensors in = {0}, out = {0};
  int64_t total = 0;
  for (int b = 0; b < k; b++) total += jobs[b]->rows;
  int n = jobs[0]->in.n, rc = 0;
  in.t = gpux__calloc((size_t)n, sizeof *in.t);
  in.names = gpux__calloc((size_t)n, sizeof *in.names);
  if (!in.t || !in.names) rc = GPUX_E_NOMEM;
  else in.n = n;
  for (int i = 0; i < n && !rc; i++) {
    const gpux_tensor *first = &jobs[0]->in.t[i];
    int64_t dims[GPUX_MAX_DIMS];
    memcpy(dims, first->dims, sizeof dims);
    dims[0] = total;
    in.names[i] = jobs[0]->in.names[i];   /* borrowed: cleared before the free below */
    if ((rc = gpux_tensor_init(&in.t[i], first->dtype, first->ndim, dims))) break;
    size_t off = 0;
    for (int b = 0; b < k; b++) {
      memcpy((char *)in.t[i].data + off, jobs[b]->in.t[i].data, jobs[b]->in.t[i].nbytes);
      off += jobs[b]->in.t[i].nbytes;
    }
  }
  double t0 = gpux__now_ms(), ms;
  if (!rc) rc = gpux__app_infer(s->app, &in, &out, &ms);
  double t1 = gpux__now_ms();
  note_run(s, rc);
  int split_ok = !rc;
  for (int o = 0; o < out.n && split_ok; o++) {
    const gpux_tensor *t = &out.t[o];
    if (t->kind != GPUX_KIND_TENSOR || t->ndim < 1 || t->dims[0] != total || t->dtype == GPUX_DT_STRING) split_ok = 0;
  }
  if (in.names) memset(in.names, 0, sizeof *in.names * (size_t)n);
  gpux__named_tensors_free(&in);
  if (rc || !split_ok) {
    char err[1024];
    snprintf(err, sizeof err, "%s", rc ? gpux_last_error() : "");
    gpux__named_tensors_free(&out);
    for (int b = 0; b < k; b++) {
      if (rc) { jobs[b]->rc = rc; snprintf(jobs[b]->err, sizeof jobs[b]->err, "%s", err); jobs[b]->t_start = t0; jobs[b]->t_end = t1; }
      else run_one(s, jobs[b]);
    }
    return;
  }
  int64_t row = 0;
  for (int b = 0; b < k; b++) {
    gpux__job *j = jobs[b];
    j->t_start = t0;
    j->t_end = t1;
    j->out.t = gpux__calloc((size_t)out.n, sizeof *j->out.t);
    j->out.names = gpux__calloc((size_t)out.n, sizeof *j->out.names);
    if (!j->out.t || !j->out.names) { j->rc = GPUX_E_NOMEM; snprintf(j->err, sizeof j->err, "out of memory"); continue; }
    for (int o = 0; o < out.n; o++) {
      const gpux_tensor *t = &out.t[o];
      int64_t dims[GPUX_MAX_DIMS];
      memcpy(dims, t->dims, sizeof dims);
      dims[0] = j->rows;
      gpux_tensor *dst = &j->out.t[o];
      if (gpux_tensor_init(dst, t->dtype, t->ndim, dims) || !(j->out.names[o] = gpux__strdup(out.names[o]))) {
        j->out.n = o + 1;
        j->rc = GPUX_E_NOMEM;
        snprintf(j->err, sizeof j->err, "out of memory");
        break;
      }
      size_t row_bytes = t->nbytes / (size_t)total;
      memcpy(dst->data, (const char *)t->data + row_bytes * (size_t)row, dst->nbytes);
      j->out.n = o + 1;
    }
    row += j->rows;
  }
  gpux__named_tensors_free(&out);
}

static void add_ms(struct timespec *ts, double ms);
static void unlink_job(gpux__slot *s, gpux__job *j);

/* The bookkeeping of a job the worker is done with: its times, done, the worker's reference
 * dropped, waiters woken. */
static void finish_job(gpux__slot *s, gpux__job *j) {
  j->t_end = gpux__now_ms();
  pthread_mutex_lock(&s->mu);
  gpux__hist_observe(&s->h_queue, gpux__dur_buckets, GPUX__DUR_BUCKETS, (j->t_start - j->t_enq) / 1e3);
  gpux__hist_observe(&s->h_compute, gpux__dur_buckets, GPUX__DUR_BUCKETS, (j->t_end - j->t_start) / 1e3);
  if (!j->timed_out && s->running_live > 0) s->running_live--;
  j->done = 1;
  int last = --j->refs == 0;
  pthread_cond_broadcast(&s->cv_done);
  pthread_mutex_unlock(&s->mu);
  if (last) job_free(j);
}

/* A batch of generations being run, and the jobs they belong to. */
typedef struct {
  gpux__slot *s;
  gpux__gen_batch *b;
  gpux__job **running;          /* (max_batch) */
  int n;
} gen_jobs;

/* Finishes j and forgets it (it may be freed). */
static void gen_finish(gen_jobs *g, gpux__job *j) {
  for (int i = 0; i < g->n; i++)
    if (g->running[i] == j) {
      g->running[i] = g->running[--g->n];
      break;
    }
  finish_job(g->s, j);
}

/* Starts generation job j; one that fails to start is finished with its error. */
static void gen_start(gen_jobs *g, gpux__job *j) {
  gpux__slot *s = g->s;
  j->t_start = gpux__now_ms();
  j->slot = s;
  if (j->stream) {
    j->gen.on_token = job_piece;
    j->gen.ctx = j;
  }
  gpux_app_cancel(s->app, 0); /* someone waits again: a run cancelled for lack of waiters is over */
  g->running[g->n++] = j;
  int rc = gpux__gen_batch_add(g->b, j->app_in, j->n_app_in, &j->gen, j);
  if (rc) {
    note_run(s, rc);
    fail_job(j, rc);
    gen_finish(g, j);
  }
}

/* Hands the finished generations their answers. */
static void gen_drain(gen_jobs *g) {
  void *tag;
  int rc;
  char *json;
  while (gpux__gen_batch_take(g->b, &tag, &rc, &json)) {
    gpux__job *j = tag;
    j->json = json;
    note_run(g->s, rc);
    if (rc) fail_job(j, rc);
    gen_finish(g, j);
  }
}

/* Continuous batching: runs `first` and every generation job that arrives while it runs (up to
 * max_batch at once) as one batch, a decode step for all at a time, until none is left. The first
 * job waits up to delay_ms from its arrival for company. Called without s->mu; returns -1 without
 * running anything when the batch cannot be made. */
static int run_generations(gpux__slot *s, gpux__job *first) {
  gen_jobs g = {.s = s};
  if (gpux__gen_batch_new(s->app, s->max_batch, &g.b)) return -1;
  gpux__job **taken = gpux__calloc((size_t)s->max_batch + 1, sizeof *taken);
  gpux__job **gone = gpux__calloc((size_t)s->max_batch + 1, sizeof *gone);
  g.running = gpux__calloc((size_t)s->max_batch + 1, sizeof *g.running);
  if (!taken || !gone || !g.running) {
    free(taken);
    free(gone);
    free(g.running);
    gpux__gen_batch_free(g.b);
    return -1;
  }
  pthread_mutex_lock(&s->mu);
  double deadline = first->t_enq + s->delay_ms;
  for (;;) { /* company for the first: queued generation jobs, or the delay's end */
    int waiting = 0;
    for (gpux__job *c = s->head; c; c = c->next) waiting += c->kind == GPUX__JOB_GENERATE;
    double now = gpux__now_ms();
    if (waiting + 1 >= s->max_batch || now >= deadline || s->stopping) break;
    struct timespec ts;
    add_ms(&ts, deadline - now);
    pthread_cond_timedwait(&s->cv_work, &s->mu, &ts);
  }
  pthread_mutex_unlock(&s->mu);
  gen_start(&g, first);
  uint64_t steps0 = 0, shared0 = 0;
  for (;;) {
    /* the generation jobs queued now join, as many as there is room for */
    int k = 0;
    pthread_mutex_lock(&s->mu);
    for (gpux__job *c = s->head, *nx; c && g.n + k < s->max_batch; c = nx) {
      nx = c->next;
      if (c->kind != GPUX__JOB_GENERATE) continue;
      unlink_job(s, c);
      c->running = 1;
      s->running_live++;
      taken[k++] = c;
    }
    /* a request nobody waits for any more (timed out, client gone) stops */
    int n_gone = 0;
    for (int i = 0; i < g.n; i++)
      if (g.running[i]->refs == 1 || g.running[i]->abandoned) gone[n_gone++] = g.running[i];
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < n_gone; i++) gpux__gen_batch_cancel(g.b, gone[i]);
    for (int i = 0; i < k; i++) gen_start(&g, taken[i]);
    gen_drain(&g);
    if (!gpux__gen_batch_size(g.b)) {
      pthread_mutex_lock(&s->mu);
      int more = 0;
      for (gpux__job *c = s->head; c; c = c->next) more |= c->kind == GPUX__JOB_GENERATE;
      pthread_mutex_unlock(&s->mu);
      if (!more) break;
      continue;
    }
    int rc = gpux__gen_batch_step(g.b);
    if (rc) note_run(s, rc);
    uint64_t steps, shared;
    gpux__gen_batch_counts(g.b, &steps, &shared);
    pthread_mutex_lock(&s->mu);
    s->n_gen_steps += steps - steps0;
    s->n_gen_shared_steps += shared - shared0;
    pthread_mutex_unlock(&s->mu);
    steps0 = steps;
    shared0 = shared;
    gen_drain(&g);
  }
  gpux__gen_batch_free(g.b);
  free(taken);
  free(gone);
  free(g.running);
  return 0;
}

static void add_ms(struct timespec *ts, double ms) {
  clock_gettime(CLOCK_REALTIME, ts);
  long long ns = ts->tv_nsec + (long long)(ms * 1e6);
  ts->tv_sec += (time_t)(ns / 1000000000LL);
  ts->tv_nsec = (long)(ns % 1000000000LL);
}

static void unlink_job(gpux__slot *s, gpux__job *j) {
  gpux__job **p = &s->head, *prev = NULL;
  while (*p && *p != j) { prev = *p; p = &(*p)->next; }
  if (!*p) return;
  *p = j->next;
  if (s->tail == j) s->tail = prev;
  j->next = NULL;
  s->queued--;
}

static void *worker_main(void *arg) {
  gpux__slot *s = arg;
  gpux__job **batch = gpux__calloc((size_t)s->max_batch + 1, sizeof *batch);
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (!s->head && !s->stopping) pthread_cond_wait(&s->cv_work, &s->mu);
    if (!s->head) break;
    gpux__job *first = s->head;
    unlink_job(s, first);
    int k = 0;
    batch[k++] = first;
    /* a new run: not cancelled until every request in it has passed its deadline */
    gpux_app_cancel(s->app, 0);
    first->running = 1;
    s->running_live = 1;
    int64_t rows = first->rows;
    if (batch && s->batchable && first->kind == GPUX__JOB_TENSORS && first->rows && rows < s->max_batch) {
      double deadline = first->t_enq + s->delay_ms;
      for (;;) {
        for (gpux__job *c = s->head, *nx; c && rows < s->max_batch; c = nx) {
          nx = c->next;
          if (compatible(first, c) && rows + c->rows <= s->max_batch && k < s->max_batch) {
            unlink_job(s, c);
            batch[k++] = c;
            c->running = 1;
            s->running_live++;
            rows += c->rows;
          }
        }
        double now = gpux__now_ms();
        if (rows >= s->max_batch || now >= deadline || s->stopping) break;
        struct timespec ts;
        add_ms(&ts, deadline - now);
        pthread_cond_timedwait(&s->cv_work, &s->mu, &ts);
      }
    }
    pthread_mutex_unlock(&s->mu);
    if (first->kind == GPUX__JOB_GENERATE && s->gen_batching && !run_generations(s, first)) {
      pthread_mutex_lock(&s->mu);
      s->running_live = 0;
      pthread_cond_broadcast(&s->cv_done);
      continue;
    }
    if (first->kind == GPUX__JOB_GENERATE) {
      first->t_start = gpux__now_ms();
      first->slot = s;
      if (first->stream) {
        first->gen.on_token = job_piece;
        first->gen.ctx = first;
      }
      int rc = gpux_app_generate(s->app, first->app_in, first->n_app_in, &first->gen, &first->json, NULL);
      first->t_end = gpux__now_ms();
      note_run(s, rc);
      if (rc) fail_job(first, rc);
    } else if (first->kind == GPUX__JOB_APP) {
      first->t_start = gpux__now_ms();
      int rc = gpux_app_run(s->app, first->app_in, first->n_app_in, &first->json, NULL);
      first->t_end = gpux__now_ms();
      note_run(s, rc);
      if (rc) fail_job(first, rc);
    } else if (k == 1) {
      run_one(s, first);
    } else {
      run_batch(s, batch, k);
    }
    pthread_mutex_lock(&s->mu);
    s->running_live = 0;
    gpux__hist_observe(&s->h_batch, gpux__batch_buckets, GPUX__BATCH_BUCKETS, (double)(rows ? rows : 1));
    s->n_batches++;
    s->n_batched_requests += (uint64_t)k;
    for (int b = 0; b < k; b++) {
      gpux__hist_observe(&s->h_queue, gpux__dur_buckets, GPUX__DUR_BUCKETS, (batch[b]->t_start - batch[b]->t_enq) / 1e3);
      gpux__hist_observe(&s->h_compute, gpux__dur_buckets, GPUX__DUR_BUCKETS, (batch[b]->t_end - batch[b]->t_start) / 1e3);
    }
    for (int b = 0; b < k; b++) {
      batch[b]->done = 1;
      if (--batch[b]->refs == 0) {
        pthread_mutex_unlock(&s->mu);
        job_free(batch[b]);
        pthread_mutex_lock(&s->mu);
      }
    }
    pthread_cond_broadcast(&s->cv_done);
  }
  pthread_mutex_unlock(&s->mu);
  free(batch);
  return NULL;
}

int gpux__slot_start_worker(gpux__slot *s) {
  if (pthread_create(&s->worker, NULL, worker_main, s)) return gpux__error(GPUX_E_INTERNAL, "cannot start a worker thread");
  s->has_worker = 1;
  return 0;
}

void gpux__slot_stop_worker(gpux__slot *s) {
  if (!s->has_worker) return;
  pthread_mutex_lock(&s->mu);
  s->stopping = 1;
  pthread_cond_broadcast(&s->cv_work);
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->worker, NULL);
  s->has_worker = 0;
}

/* Puts j at the end of the queue (the worker takes a reference); 503 when full. Under s->mu. */
static int queue_locked(gpux__slot *s, gpux__job *j) {
  if (s->queued >= s->max_queue || s->stopping) return 503;
  j->t_enq = gpux__now_ms();
  j->refs++;
  if (s->tail) s->tail->next = j;
  else s->head = j;
  s->tail = j;
  s->queued++;
  pthread_cond_signal(&s->cv_work);
  return 0;
}

int gpux__slot_enqueue(gpux__slot *s, gpux__job *j) {
  pthread_mutex_lock(&s->mu);
  int rc = queue_locked(s, j);
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int gpux__slot_submit(gpux__slot *s, gpux__job *j) {
  pthread_mutex_lock(&s->mu);
  if (queue_locked(s, j)) {
    pthread_mutex_unlock(&s->mu);
    return 503;
  }
  struct timespec ts;
  add_ms(&ts, s->timeout_s * 1e3);
  int status = 0;
  while (!j->done) {
    if (pthread_cond_timedwait(&s->cv_done, &s->mu, &ts) == ETIMEDOUT && !j->done) {
      /* still queued: take it off (the worker's reference goes with it); running: the worker
       * drops its reference when done, and once no request of the run waits for it any more
       * the run is cancelled at its next node, so the worker is free for the next requests */
      gpux__job *p = s->head;
      while (p && p != j) p = p->next;
      if (p) { unlink_job(s, j); j->refs--; }
      else if (j->running) {
        j->timed_out = 1;
        if (--s->running_live == 0) gpux_app_cancel(s->app, 1);
      }
      status = 504;
      break;
    }
  }
  pthread_mutex_unlock(&s->mu);
  return status;
}
