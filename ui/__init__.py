"""Streamlit side of Class Mood.

pylibsrtp (streamlit-webrtc's SRTP) crashes the process with a segmentation fault
when it is first imported after TensorFlow (seen with tensorflow 2.21 and
pylibsrtp 1.0); imported first, both work. Every page imports this package
before anything loads TensorFlow, so the order holds however pages are visited.
"""
import pylibsrtp  # noqa: F401  (import order matters, see above)
