"""jobs/lib/collect_sweep.py SWEEP_DIR: the sweep collector's work (see
jobs/collect-sweep): one row per point with its grid values and final
metrics, as CSV and Markdown, and a PNG plot of test accuracy against
sparsity with one line per combination of the other grid values."""
import csv
import json
import os
import sys

METRICS = ("test_top1", "sparsity")


def read_metrics(run_dir):
    """The point's final metrics: results.json, else the last line of
    metrics.jsonl that has every metric; None when neither exists."""
    path = os.path.join(run_dir, "results.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        missing = [k for k in METRICS if k not in data]
        if missing:
            raise ValueError(f"{path}: no {', '.join(missing)}")
        return data
    path = os.path.join(run_dir, "metrics.jsonl")
    if os.path.exists(path):
        found = None
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    row = json.loads(line)
                    if all(k in row for k in METRICS):
                        found = row
        return found
    return None


def main(sweep_dir):
    rows, params = [], []
    with open(os.path.join(sweep_dir, "tasks.tsv"), encoding="utf-8") as f:
        for line in f:
            index, run_dir, point = line.rstrip("\n").split("\t")
            point = json.loads(point)
            for key in point:
                if key not in params:
                    params.append(key)
            try:
                metrics = read_metrics(run_dir)
            except ValueError as e:  # includes malformed JSON
                print(f"collect-sweep: task {index}: {e}", file=sys.stderr)
                metrics = None
            rows.append({"task": int(index), "point": point, "metrics": metrics,
                         "run_dir": run_dir})

    header = ["task"] + params + list(METRICS) + ["status", "run_dir"]
    table = []
    for row in rows:
        m = row["metrics"]
        values = [row["task"]] + [row["point"].get(p, "") for p in params]
        values += [m[k] if m else "" for k in METRICS]
        values += ["ok" if m else "missing", row["run_dir"]]
        table.append(values)

    with open(os.path.join(sweep_dir, "results.csv"), "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(table)
    with open(os.path.join(sweep_dir, "results.md"), "w", encoding="utf-8") as f:
        f.write("| " + " | ".join(header[:-1]) + " |\n")
        f.write("|" + "---|" * (len(header) - 1) + "\n")
        for values in table:
            f.write("| " + " | ".join(str(v) for v in values[:-1]) + " |\n")
    print(f"collect-sweep: {len(rows)} points -> {sweep_dir}/results.csv, results.md")

    status = 0
    missing = [r["task"] for r in rows if not r["metrics"]]
    if missing:
        print(f"collect-sweep: no metrics for task(s) {', '.join(map(str, missing))}",
              file=sys.stderr)
        status = 1

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("collect-sweep: matplotlib not found (Debian: python3-matplotlib): no plot",
              file=sys.stderr)
        return 1
    # One line per combination of the grid values that are not sparsity
    # targets: accuracy falls as sparsity rises along each line.
    others = [p for p in params if "sparsity" not in p]
    series = {}
    for row in rows:
        if row["metrics"]:
            label = ", ".join(f"{p}={row['point'][p]}" for p in others) or "runs"
            series.setdefault(label, []).append(
                (float(row["metrics"]["sparsity"]), float(row["metrics"]["test_top1"])))
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, points in sorted(series.items()):
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    ax.set_xlabel("sparsity")
    ax.set_ylabel("test top-1 (%)")
    ax.set_title(os.path.basename(os.path.abspath(sweep_dir)))
    ax.grid(True, alpha=0.3)
    if series:
        ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(sweep_dir, "results.png"), dpi=100)
    print(f"collect-sweep: plot -> {sweep_dir}/results.png")
    return status


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: collect_sweep.py SWEEP_DIR", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
