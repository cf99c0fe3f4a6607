#!/usr/bin/env python3
"""Fetch and prepare the demo-model corpus: Jane Austen's six novels.

Source: the Debian package `r-cran-janeaustenr` (version 1.0.0-1, Debian 12
"bookworm", section gnu-r). The package (MIT licensed, by Julia Silge) bundles
the full text of the six novels from Project Gutenberg; the novels themselves
are in the public domain (Austen died in 1817). The text lives in the R
lazy-load database `usr/lib/R/site-library/janeaustenr/data/Rdata.{rdx,rdb}`:
one character vector of lines per novel.

Steps (all deterministic):
  1. `apt-get download r-cran-janeaustenr` (needs `apt-get update` once) unless
     a .deb is given with --deb; `dpkg-deb -x` it into data/deb/.
  2. Read Rdata.rdx (gzip) -> offsets; each entry of Rdata.rdb is a 4-byte
     big-endian length + zlib stream of an R serialization (XDR), parsed with
     the PyPI package `rdata`.
  3. Per novel: strip trailing spaces, reflow hard-wrapped lines into one line
     per paragraph (paragraphs are separated by blank lines), join paragraphs
     with "\n\n". Titles / chapter headings stay as their own paragraphs.
  4. Split each novel at a paragraph boundary: first 95% of its bytes -> train,
     last 5% -> held-out. Novels are concatenated in a fixed order with the
     end-of-text token (id 0) between documents.
  5. Tokens: byte b -> id b+1 (World-vocab compatible), id 0 = end-of-text.
     Written as uint16 arrays data/train.u16, data/heldout.u16 (+ .txt copies).
"""
import argparse, glob, gzip, os, struct, subprocess, sys, zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = "r-cran-janeaustenr"
ORDER = ["prideprejudice", "sensesensibility", "mansfieldpark", "emma", "northangerabbey", "persuasion"]
HELDOUT_FRAC = 0.05


def fetch_deb(workdir, deb=None):
    os.makedirs(workdir, exist_ok=True)
    if deb is None:
        debs = sorted(glob.glob(os.path.join(workdir, PKG + "_*.deb")))
        if not debs:
            subprocess.run(["apt-get", "download", PKG], cwd=workdir, check=True)
            debs = sorted(glob.glob(os.path.join(workdir, PKG + "_*.deb")))
        deb = debs[-1]
    root = os.path.join(workdir, "root")
    subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
    return deb, os.path.join(root, "usr/lib/R/site-library/janeaustenr/data")


def read_novels(datadir):
    import rdata
    import warnings
    warnings.filterwarnings("ignore", message="Unknown file type")
    conv = lambda raw: rdata.conversion.convert(rdata.parser.parse_data(raw))
    idx = conv(gzip.decompress(open(os.path.join(datadir, "Rdata.rdx"), "rb").read()))
    rdb = open(os.path.join(datadir, "Rdata.rdb"), "rb").read()
    novels = {}
    for name, (off, ln) in idx["variables"].items():
        blob = rdb[int(off):int(off) + int(ln)]
        n = struct.unpack(">I", blob[:4])[0]
        raw = zlib.decompress(blob[4:])
        assert len(raw) == n
        novels[str(name)] = [str(s) for s in conv(raw)]
    return novels


def reflow(lines):
    paras, cur = [], []
    for line in lines:
        line = line.rstrip()
        if line.strip() == "":
            if cur:
                paras.append(" ".join(cur)); cur = []
        else:
            cur.append(line.strip())
    if cur:
        paras.append(" ".join(cur))
    return paras


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deb", default=None, help="use this r-cran-janeaustenr .deb instead of apt-get download")
    ap.add_argument("--out", default=os.path.join(HERE, "data"))
    args = ap.parse_args()
    deb, datadir = fetch_deb(os.path.join(args.out, "deb"), args.deb)
    print("package:", os.path.basename(deb))
    novels = read_novels(datadir)
    assert sorted(novels) == sorted(ORDER), sorted(novels)
    train_docs, held_docs = [], []
    for name in ORDER:
        paras = reflow(novels[name])
        total = sum(len(p.encode()) + 2 for p in paras)
        acc, cut = 0, len(paras)
        for i, p in enumerate(paras):
            if acc >= (1 - HELDOUT_FRAC) * total:
                cut = i; break
            acc += len(p.encode()) + 2
        train_docs.append("\n\n".join(paras[:cut]) + "\n")
        held_docs.append("\n\n".join(paras[cut:]) + "\n")
        print(f"{name}: {len(paras)} paragraphs, {total} bytes, train {len(train_docs[-1].encode())} / held-out {len(held_docs[-1].encode())}")

    def tok(docs):
        out = []
        for d in docs:
            out.append(np.frombuffer(d.encode("utf-8"), dtype=np.uint8).astype(np.uint16) + 1)
            out.append(np.zeros(1, dtype=np.uint16))  # end-of-text after each document
        return np.concatenate(out)

    os.makedirs(args.out, exist_ok=True)
    for split, docs in (("train", train_docs), ("heldout", held_docs)):
        arr = tok(docs)
        arr.tofile(os.path.join(args.out, f"{split}.u16"))
        with open(os.path.join(args.out, f"{split}.txt"), "w", encoding="utf-8", newline="\n") as f:
            f.write("\n<|endoftext|>\n".join(docs))
        print(f"{split}: {len(arr)} tokens")


if __name__ == "__main__":
    main()
