"""Checks that every alert in RULES has severity, summary, description and a runbook naming a
heading of DOC, and a test in TESTS where it fires and one where it stays quiet. Run by
scripts/check-deploy.sh: RULES TESTS DOC; prints one summary line on success."""

import re, sys, yaml
rules_file, tests_file, doc = sys.argv[1:]
alerts = [r for g in yaml.safe_load(open(rules_file))["groups"] for r in g["rules"] if "alert" in r]
def anchor(heading):
    # GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens.
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
anchors = {anchor(m) for m in re.findall(r"^#+ (.+)$", open(doc).read(), re.M)}
fires, quiet = set(), set()
for t in yaml.safe_load(open(tests_file))["tests"]:
    for c in t.get("alert_rule_test", []):
        (fires if c.get("exp_alerts") else quiet).add(c["alertname"])
problems = []
for a in alerts:
    name, ann = a["alert"], a.get("annotations", {})
    if a.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
        problems.append(f"{name}: no severity label (critical, warning or info)")
    for key in ("summary", "description", "runbook"):
        if not ann.get(key):
            problems.append(f"{name}: no {key} annotation")
    runbook = ann.get("runbook", "")
    if not runbook.startswith("docs/monitoring.md#") or runbook.split("#", 1)[1] not in anchors:
        problems.append(f"{name}: runbook {runbook!r} is not a heading of {doc}")
    if name not in fires:
        problems.append(f"{name}: no test where it fires in {tests_file}")
    if name not in quiet:
        problems.append(f"{name}: no test where it stays quiet in {tests_file}")
for p in problems:
    print("check-deploy.sh:", p, file=sys.stderr)
if problems:
    sys.exit(1)
print(f"{len(alerts)} alerts, each with severity, summary, description, runbook, and a test where it fires and one where it does not")
