"""Streamlit side of Class Mood.

pylibsrtp (streamlit-webrtc's SRTP) crashes the process with a segmentation fault
when it is first imported after TensorFlow (seen with tensorflow 2.21 and
pylibsrtp 1.0); imported first, both work. Every page imports this package
before anything loads TensorFlow, so the order holds however pages are visited.

The server's console stays readable: TensorFlow's start-up lines (CUDA probes on a machine without
a GPU, oneDNN notices) are silenced before it loads.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pylibsrtp  # noqa: E402,F401  (import order matters, see above)
