"""Plain helpers shared by the tests: no fixtures (those live in the conftest.py files) and no tests.

Test modules import from here (and from tests/onnx_models.py, tests/e2e/deeplesion_items.py), never from
another test module or from a conftest.py.
"""
