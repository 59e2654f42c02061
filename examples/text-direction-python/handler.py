# The business rules around text-direction's scores: rotate a line only when the model is sure
# it is upside down, and send unsure lines to a person. gpux runs this file in a worker process.
import numpy as np

SURE = 0.9


def postprocess(outputs, request):
    scores = outputs["softmax_0.tmp_0"][0]          # [p(0 degrees), p(180 degrees)], softmaxed
    best = int(np.argmax(scores))
    confidence = float(scores[best])
    if confidence < SURE:
        action = "review"
    else:
        action = "rotate" if best == 1 else "keep"
    return {"angle": (0, 180)[best], "confidence": round(confidence, 4), "action": action}
