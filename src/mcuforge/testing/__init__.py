"""Test tooling shipped with the package: the .tflite fuzzer.

- seeds:   seed models (files on disk, and small graphs from our builder written as .tflite)
- mutate:  the seeded mutation engine (byte-level, flatbuffer-aware in place, IR-level; combinations)
- fuzz:    the outcome of one input under issue 12's promise (clean refusal or bit-exact C, or a defect)
- cbuild:  cheap host builds of many generated libraries (content-cached objects, sanitizers)
See docs/fuzz.md, tests/test_fuzz.py and bench/fuzz.py.
"""
