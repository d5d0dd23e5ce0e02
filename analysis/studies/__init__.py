"""Studies of the kit itself: the calibration study (``make validate``) and the benchmark
(``make bench``). The top layer: it may import every other one.
"""
