#!/usr/bin/env python3
"""Pictures for choosing k, made from kmeans_elbow and kmeans_labels results.

    scripts/plot_elbow.py [--table wus] [--column 'dvs[1:10]'] [--kmin 3] [--kmax 49] [--out docs]

Connects with the libpq environment (PGHOST, PGPORT, PGUSER, PGDATABASE).  When the table does
not exist it is loaded from the seismic profiles in ../shared/data (id, lat, lon, dvs real[19]).
Writes OUT/elbow.png (mean inertia per profile and silhouette against k, the suggested k marked)
and OUT/map.png (every profile at its lat/lon, coloured by its cluster for the suggested k),
and prints the elbow table.  Needs psycopg2 and matplotlib.
"""
import argparse
import os
import sys

import psycopg2

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PROFILES = os.path.join(HERE, "..", "..", "shared", "data", "wus_sh_2010_dvs_profiles.tsv")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", default="wus_profiles")
    ap.add_argument("--column", default="dvs[1:10]")
    ap.add_argument("--kmin", type=int, default=3)
    ap.add_argument("--kmax", type=int, default=49)
    ap.add_argument("--out", default=os.path.join(HERE, "..", "docs"))
    args = ap.parse_args()

    conn = psycopg2.connect("")
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("CREATE EXTENSION IF NOT EXISTS kmeans")
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (args.table,))
    if not cur.fetchone()[0]:
        if not os.path.exists(PROFILES):
            sys.exit(f"table {args.table} does not exist and {PROFILES} is not there to load it from")
        cur.execute(f"CREATE TABLE {args.table} (id bigint, lat float8, lon float8, dvs real[])")
        with open(PROFILES) as f:
            cur.copy_expert(f"COPY {args.table} FROM STDIN", f)

    cur.execute(f"SELECT k, inertia, mean_inertia, n_iter, silhouette, calinski_harabasz, "
                f"davies_bouldin, elbow FROM kmeans_elbow(%s, %s, %s, %s) ORDER BY k",
                (args.table, args.column, args.kmin, args.kmax))
    rows = cur.fetchall()
    print(f"{'k':>3} {'inertia':>12} {'mean':>8} {'n_iter':>6} {'silhouette':>10} "
          f"{'CH':>10} {'DB':>7} elbow")
    for k, inertia, mean, n_iter, sil, ch, db, elbow in rows:
        print(f"{k:>3} {inertia:>12.1f} {mean:>8.3f} {n_iter:>6} {sil:>10.4f} {ch:>10.1f} "
              f"{db:>7.4f} {'<--' if elbow else ''}")
    best = next(r[0] for r in rows if r[7])

    os.makedirs(args.out, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ks = [r[0] for r in rows]
    ax.plot(ks, [r[2] for r in rows], "o-", color="tab:blue", ms=3, label="mean inertia per profile")
    ax.axvline(best, color="tab:red", ls="--", lw=1)
    ax.annotate(f"suggested k = {best}", (best, max(r[2] for r in rows)), xytext=(6, -12),
                textcoords="offset points", color="tab:red")
    ax.set_xlabel("k")
    ax.set_ylabel("mean squared distance to center")
    ax2 = ax.twinx()
    ax2.plot(ks, [r[4] for r in rows], "s-", color="tab:green", ms=2, lw=1, label="silhouette")
    ax2.set_ylabel("silhouette", color="tab:green")
    ax.set_title(f"kmeans_elbow('{args.table}', '{args.column}', {args.kmin}, {args.kmax})", fontsize=9)
    fig.legend(loc="upper right", bbox_to_anchor=(0.88, 0.88), fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "elbow.png"))

    cur.execute(f"SELECT p.lat, p.lon, l.cluster FROM kmeans_labels(%s, %s, %s, id => 'id') l "
                f"JOIN {args.table} p USING (id)", (args.table, args.column, best))
    pts = cur.fetchall()
    fig, ax = plt.subplots(figsize=(7, 5.5), dpi=110)
    sc = ax.scatter([p[1] for p in pts], [p[0] for p in pts], c=[p[2] for p in pts], s=11,
                    marker="s", cmap="tab20", linewidths=0)
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_aspect(1.25)
    ax.set_title(f"kmeans_labels('{args.table}', '{args.column}', {best}) by lat/lon", fontsize=9)
    fig.colorbar(sc, ax=ax, label="cluster", shrink=0.8)
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "map.png"))
    print(f"wrote {os.path.join(args.out, 'elbow.png')} and {os.path.join(args.out, 'map.png')}")


if __name__ == "__main__":
    main()
