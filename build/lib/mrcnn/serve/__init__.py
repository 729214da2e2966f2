"""Serving helpers: in-graph pre/post-processing for SavedModel export (:mod:`.graph_io`,
:mod:`.export`) and the web app's predictor (:mod:`.predictor`)."""
