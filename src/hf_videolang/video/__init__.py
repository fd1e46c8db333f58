"""Video decoding, frame sampling, transforms and masking: the input path shared by every method."""

import gc
import os

# PyAV objects caught in reference cycles (frames, reformatters, codec contexts) own FFmpeg thread pools. If a
# DataLoader worker forks before the cycle collector frees them, the child frees them instead, waits on threads that
# do not exist in the child, and hangs or crashes. Collecting before every fork frees them in the parent.
os.register_at_fork(before=gc.collect)
