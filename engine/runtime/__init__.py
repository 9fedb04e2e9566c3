"""ivos.runtime: loading and running networks.

* ``model``: ``Model`` and ``ivos.load`` (a bundle on the best backend there is).
* ``bundle``: the bundle folder (card ``model.json``, graphs, artifacts) and its checks.
* ``backends``: ONNX Runtime, TensorRT and torch runners behind one interface.
* ``threads``: how many threads a runner may use.
* ``build_info``: what the native extension was compiled with.
* ``pages``: large scratch arrays on small pages (huge pages are slow to touch on some VMs).
"""
