"""Serving: in-graph pre/post-processing (:mod:`.graph_io`), the SavedModel (:mod:`.saved_model`), ONNX and
TFLite export (:mod:`.portable`) and their runtimes (:mod:`.runtimes`). The web app's predictor is the
application's (:mod:`facemask.predictor`)."""
