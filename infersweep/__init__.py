"""infersweep: sweep precision x pruning x runtime x batch size of a summarization model."""
__version__ = "0.1.0"
