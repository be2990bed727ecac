"""Post-training quantization support (not passes): calibration data loading, activation
statistics and range-selection methods, quantization parameter choice, weight encoding,
and error measurement for the report. The IR rewrites are passes in ``nnc/passes``
(``calibrate``, ``quantize``, ``fold-qdq``); the numeric contract of the ops is in
``nnc/ir/ops_quant.py`` and ``docs/quantization.md``.
"""
