"""Preload the stand-in `google.colab`, as a real Colab kernel preloads the real one.

Hand-written test support for tests/test_colab_rehearsal.py: a kernel started with this folder
on its PYTHONPATH sees `"google.colab" in sys.modules`, as the GPU chapter checks on Colab.
"""

import google.colab  # noqa: F401
