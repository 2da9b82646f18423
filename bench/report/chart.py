"""The performance chart of the README (docs/performance.svg), drawn from bench/results/.

ratios.csv: one line per figure measured against a baseline in the same run
    (figure, target, ratio, baseline, ours, unit, command, date); the ratio is ours over the
    baseline, so higher is better, and the target is the least the issue accepts.
load-*.csv: bench/load/run.sh's lines (scenario, database, connections, rps, p50_us, p99_us,
    errors).
"""

import csv
import glob
import os
import sys

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402

results, out = sys.argv[1], sys.argv[2]
plt.rcParams["svg.hashsalt"] = "auth-performance"  # the same file for the same data
plt.rcParams["font.size"] = 9

ratios = list(csv.DictReader(open(os.path.join(results, "ratios.csv"))))
loads = []
for path in sorted(glob.glob(os.path.join(results, "load-*.csv"))):
    loads += [r for r in csv.DictReader(open(path))]

fig, (left, right) = plt.subplots(
    1, 2, figsize=(12, max(3.5, 0.42 * len(ratios) + 1.2)), gridspec_kw={"width_ratios": [1, 1.25]}
)

# Left: every ratio beside its target.
labels = [r["figure"] for r in ratios][::-1]
values = [float(r["ratio"]) for r in ratios][::-1]
targets = [float(r["target"]) if r["target"] else None for r in ratios][::-1]
colours = ["#2e7d32" if t is None or v >= t else "#c62828" for v, t in zip(values, targets)]
y = range(len(labels))
left.barh(y, values, color=colours, height=0.6)
for i, (v, t) in enumerate(zip(values, targets)):
    if t is not None:
        left.plot([t, t], [i - 0.4, i + 0.4], color="black", linewidth=1.5)
    left.text(v + 0.01, i, f"{v:.2f}", va="center")
left.axvline(1.0, color="grey", linestyle=":", linewidth=1)
left.set_yticks(list(y), labels)
left.set_xlim(0, max(1.2, max(values) + 0.15))
left.set_xlabel("ours ÷ baseline, same run (black tick: target; green met, red not)")
left.set_title("Against the baselines")

# Right: req/s of each operation by connections, per database (log scale: the hash-bound
# operations are a thousand times slower than /verify).
scenarios = list(dict.fromkeys(r["scenario"] for r in loads))
series = sorted({(r["database"], int(r["connections"])) for r in loads})
width = 0.8 / max(1, len(series))
palette = {"sqlite": ["#90caf9", "#42a5f5", "#1565c0"], "postgres": ["#ffcc80", "#ffa726", "#e65100"]}
for k, (database, conns) in enumerate(series):
    xs, ys = [], []
    for i, s in enumerate(scenarios):
        row = next((r for r in loads if r["scenario"] == s and r["database"] == database
                    and int(r["connections"]) == conns), None)
        if row:
            xs.append(i + (k - (len(series) - 1) / 2) * width)
            ys.append(float(row["rps"]))
    shades = palette.get(database, ["#bdbdbd", "#757575", "#212121"])
    conn_list = sorted({c for d, c in series if d == database})
    right.bar(xs, ys, width=width, label=f"{database}, {conns} conn.",
              color=shades[min(conn_list.index(conns), len(shades) - 1)])
right.set_yscale("log")
right.set_xticks(range(len(scenarios)), scenarios, rotation=30, ha="right")
right.set_ylabel("requests/s (log)")
right.set_title("Load (bench/load/run.sh, release, loopback, 2 cores)")
right.legend(fontsize=7, ncol=2)

fig.tight_layout()
fig.savefig(out, metadata={"Date": None})
print(f"written {out}")
