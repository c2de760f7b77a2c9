"""Checks DASHBOARD (Grafana JSON) against RULES and DOC: panel ids unique, panels that do not
overlap, every variable a query uses defined, and every tim_relay_* metric that the dashboard
or the alerts query named in the metric tables of DOC (so a renamed or mistyped metric fails
here, not on a blank panel). Run by scripts/check-deploy.sh: DASHBOARD RULES DOC; prints one
summary line on success."""

import json, re, sys, yaml
dashboard_file, rules_file, doc = sys.argv[1:]
d = json.load(open(dashboard_file))
panels = [p for top in d["panels"] for p in [top, *top.get("panels", [])]]
problems = []

ids = [p["id"] for p in panels]
for dup in sorted({i for i in ids if ids.count(i) > 1}):
    problems.append(f"panel id {dup} is used more than once")

def cells(p):
    g = p["gridPos"]
    return {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
seen = {}
for p in panels:
    for cell in cells(p):
        if cell in seen:
            problems.append(f'panels {seen[cell]} and {p["id"]} overlap')
            break
        seen[cell] = p["id"]

variables = {v["name"] for v in d["templating"]["list"]}
builtin = {"__rate_interval", "__interval", "__range", "__all"}
exprs = [t["expr"] for p in panels for t in p.get("targets", []) if "expr" in t]
exprs += [v["definition"] for v in d["templating"]["list"] if "definition" in v]
for e in exprs:
    for name in re.findall(r"\$\{?(\w+)", e):
        if name not in variables | builtin:
            problems.append(f"${name} is not a variable of the dashboard: {e}")

# The metric tables: rows starting with | `name...`.
documented = set(re.findall(r"^\| `(tim_relay_\w+)", open(doc).read(), re.M))
rules = [r["expr"] for g in yaml.safe_load(open(rules_file))["groups"] for r in g["rules"]]
def metrics(expr):
    return {re.sub(r"_(bucket|count|sum)$", "", m) for m in re.findall(r"\btim_relay_\w+", expr)}
for where, texts in (("dashboard.json", exprs), ("alerts.yaml", rules)):
    for m in sorted(set().union(*(metrics(e) for e in texts)) - documented):
        problems.append(f"{where} queries {m}, which no metric table of {doc} lists")

for p in problems:
    print("check-deploy.sh:", p, file=sys.stderr)
if problems:
    sys.exit(1)
print(f"dashboard.json: {len(panels)} panels with unique ids, none overlapping; every variable defined; "
      "every metric it and alerts.yaml query documented")
