#!/usr/bin/env python3
"""Runs tests/vectors/*.json, and the SQL corpus tests/sql/corpus.json beside it,
through the C ABI (prodguard_evaluate_json) with ctypes.

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
    request = {"facts": case["facts"], "policy": case["policy"]}
    for optional in ("operation", "sql"):  # a case gives operation.kind, or sql (the script is the operation)
        if optional in case:
            request[optional] = case[optional]
    unknown = set(case) - {"name", "facts", "policy", "operation", "sql", "expect"}
    if unknown:
        check(case["name"], sorted(unknown), [])
    status, answer = evaluate(request)
    if status != 0:
        check(case["name"], status, 0)
        continue
    d, decision = answer["detection"], answer["decision"]
    got = {"environment": d["environment"], "tier": d["tier"], "protected": d["protected"],
           "result": decision["result"], "rule": decision["rule"],
           "requirements": [r["kind"] for r in decision["requirements"]],
           "exit_code": decision["exit_code"]}
    check(case["name"], got, case["expect"])

CORPUS_FIELDS = {"dialect", "sql", "kinds", "operation", "tables", "cascades", "note"}
corpus = json.load(open(os.path.join(vectors, "..", "sql", "corpus.json")))
for i, case in enumerate(corpus):
    name = f"corpus case {i} ({case['dialect']}) {case['sql']!r}"
    if set(case) - CORPUS_FIELDS:
        check(name, sorted(set(case) - CORPUS_FIELDS), [])
    status, answer = evaluate({"facts": {"explicit": "development"},
                               "sql": {"script": case["sql"], "dialect": case["dialect"]}})
    if status != 0:
        check(name, (status, answer), 0)
        continue
    statements = answer["sql"]["statements"]
    got = {"kinds": [s["kind"] for s in statements], "operation": answer["sql"]["operation"]}
    want = {"kinds": case["kinds"], "operation": case["operation"]}
    for optional in ("tables", "cascades"):
        if optional in case:
            got[optional] = [s[optional] for s in statements]
            want[optional] = case[optional]
    check(name, got, want)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
