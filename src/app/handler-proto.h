/* handler-proto.h — the framed protocol between gpux and a handler's worker process (handler.c
 * on gpux's side; handler-worker.c for shared libraries and handler-runner.py for Python on the
 * worker's). Shared by gpux's library and the native worker executable, so it is header-only.
 *
 * The two ends hold a SOCK_SEQPACKET socketpair (the worker's end is its fd 3). A message is one
 * packet: a JSON object of at most GPUX__HP_MAX_MSG bytes, with at most one file descriptor
 * passed alongside (SCM_RIGHTS): a memfd holding the message's bulk data, which the JSON points
 * into as {"offset": N, "size": N}. Tensors are {"name", "dtype" (gpux_dtype number), "shape",
 * "offset", "size"}; request values are {"name", "text" (bool), "offset", "size"}.
 *
 *   worker -> gpux, once started:  {"ok": true, "preprocess": bool, "postprocess": bool}
 *                                  or {"ok": false, "error": "handler.py:3: SyntaxError: ..."}
 *   gpux -> worker:  {"op": "preprocess", "request": [values]}                       + memfd
 *        answer:     {"ok": true, "tensors": [tensors]}                             + memfd
 *   gpux -> worker:  {"op": "postprocess", "request": [values], "tensors": [outputs]} + memfd
 *        answer:     {"ok": true, "result": {"offset", "size"}} (JSON text)          + memfd
 *   any failure:     {"ok": false, "error": "one line naming the handler's file (and line)"}
 * The worker exits when the socket closes. */
#ifndef GPUX_APP_HANDLER_PROTO_H
#define GPUX_APP_HANDLER_PROTO_H

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#define GPUX__HP_MAX_MSG 65536
#define GPUX__HP_FD 3           /* the worker's end of the socketpair */
#define GPUX__HP_ALIGN 64       /* blobs in a memfd start at multiples of this */

/* Sends one message (fd < 0: none). Returns 0 or -1 (errno set). */
static inline int gpux__hp_send(int sock, const char *msg, size_t len, int fd) {
  struct iovec iov = {(void *)msg, len};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } u;
  struct msghdr mh;
  memset(&mh, 0, sizeof mh);
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (fd >= 0) {
    memset(&u, 0, sizeof u);
    mh.msg_control = u.buf;
    mh.msg_controllen = sizeof u.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  ssize_t n;
  do n = sendmsg(sock, &mh, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n == (ssize_t)len ? 0 : -1;
}

/* Receives one message into buf (cap bytes; NUL-terminated, so at most cap - 1 of text) and the
 * descriptor passed with it (*fd = -1 when none). Returns the length, 0 at end of stream, or -1
 * (errno set; EMSGSIZE for a message too large). */
static inline ssize_t gpux__hp_recv(int sock, char *buf, size_t cap, int *fd) {
  struct iovec iov = {buf, cap - 1};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } u;
  struct msghdr mh;
  memset(&mh, 0, sizeof mh);
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = u.buf;
  mh.msg_controllen = sizeof u.buf;
  *fd = -1;
  ssize_t n;
  do n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return -1;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len >= CMSG_LEN(sizeof(int)))
      memcpy(fd, CMSG_DATA(c), sizeof *fd);
  if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
    errno = EMSGSIZE;
    return -1;
  }
  buf[n] = 0;
  return n;
}

#endif
