"""imagepipe against the bare commands Nova ran: ``python -m benchmarks.run``.

Everything the benchmarks need is built under a work directory (the input
images, a loopback HTTP server serving them, one state_path per case), so a
run touches nothing else on the host. See doc/source/benchmarks.rst.
"""
