#!/usr/bin/env python3
"""Runs tests/vectors/*.json through the C ABI (prodguard_evaluate_json) with ctypes.

Usage: vectors.py LIBPRODGUARD VECTORS_DIR. Prints one line per failing case and
'N passed, N failed'; exits 1 on any failure.
"""
import ctypes
import json
import os
import sys

lib = ctypes.CDLL(sys.argv[1])
lib.prodguard_evaluate_json.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
lib.prodguard_evaluate_json.restype = ctypes.c_int
lib.prodguard_string_free.argtypes = [ctypes.c_void_p]
lib.prodguard_last_error.restype = ctypes.c_char_p


def evaluate(request):
    out = ctypes.c_void_p()
    status = lib.prodguard_evaluate_json(json.dumps(request).encode(), ctypes.byref(out))
    if status != 0:
        return status, lib.prodguard_last_error().decode()
    try:
        return 0, json.loads(ctypes.string_at(out.value).decode())
    finally:
        lib.prodguard_string_free(out)


passed = failed = 0
vectors = sys.argv[2]


def check(name, got, want):
    global passed, failed
    if got == want:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {name}: got {got!r}, expected {want!r}")


for case in json.load(open(os.path.join(vectors, "detection.json"))):
    status, answer = evaluate({"facts": case["facts"], "operation": {"kind": "noop"}})
    if status != 0:
        check(case["name"], status, 0)
        continue
    d = answer["detection"]
    got = {"environment": d["environment"], "tier": d["tier"], "protected": d["protected"],
           "decided_by": d["decided_by"], "conflicts": len(d["conflicts"])}
    check(case["name"], got, case["expect"])

for case in json.load(open(os.path.join(vectors, "decisions.json"))):
    status, answer = evaluate({"facts": case["facts"], "policy": case["policy"], "operation": case["operation"]})
    if status != 0:
        check(case["name"], status, 0)
        continue
    d, decision = answer["detection"], answer["decision"]
    got = {"environment": d["environment"], "tier": d["tier"], "protected": d["protected"],
           "result": decision["result"], "rule": decision["rule"],
           "requirements": [r["kind"] for r in decision["requirements"]],
           "exit_code": decision["exit_code"]}
    check(case["name"], got, case["expect"])

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
