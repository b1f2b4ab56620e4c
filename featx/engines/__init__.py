"""How a model runs: runtimes (ONNX Runtime, OpenVINO, torch), precisions, int8 quantization, the CPU's
capabilities, the fidelity gate against fp32, and the engine ``extract`` builds (``--precision auto`` included).

``backbones/`` says what a model is; this room says how it runs, and only ``extract`` (and ``predict`` through it)
imports it.
"""
