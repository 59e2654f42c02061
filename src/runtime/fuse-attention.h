/* fuse-attention.h — the optimizer's scaled-dot-product attention rewrite (fuse-attention.c):
 * MatMul(Q, K^T), scale, additive or Where masks, Softmax and MatMul(., V) as exported by
 * torch.onnx become one Attention node (opset-23 semantics). optimize.c calls it. */
#ifndef GPUX_FUSE_ATTENTION_H
#define GPUX_FUSE_ATTENTION_H

#include "graph/ir.h"

/* Rewrites every exact match in g (the optimizer's copy, whose node `in` and `attrs` arrays may
 * still be the model's: replaced ones come from arena): the nodes it absorbs are marked in
 * dead[], the last MatMul becomes the Attention node. Returns 0 or a negative error. */
int gpux__fuse_attention(gpux__graph *g, gpux__arena *arena, unsigned char *dead);

#endif
