#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Reads the event log that renewal-trace.patch makes a kvelect build write (KVELECT_TRACE_TMP=FILE)
# and splits each renewal of the renewal benchmark into its stages (docs/executor.md, "Profiles of
# the misses"). Lines: "<steady_clock ns> <event> <id>".
import statistics
import sys


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main(path):
    events = sorted((int(t), name, int(i)) for t, name, i in (line.split() for line in open(path)))
    renewals, last_step, publish = {}, None, None
    for t, name, ident in events:
        if name == "step":
            last_step = t
        elif name == "pub0":
            renewals[ident] = {"step": last_step, "pub0": t}
        elif name in ("pub1", "reply", "wd0", "wd1") and ident in renewals:
            renewals[ident][name] = t
        elif name == "echo":
            for r in renewals.values():
                if "pub1" in r and "echo" not in r and "wd1" not in r:
                    r["echo"] = t
        elif name == "pm0":
            publish = {"t": t}
        elif name == "pm1" and publish is not None:
            publish["d"] = t - publish["t"]
        elif name == "ivcs" and publish is not None:
            publish["preempted"] = ident > 0
            for r in renewals.values():
                if "pub1" not in r and "pub0" in r:
                    r["preempted"] = publish["preempted"]
            publish = None
    full = [r for r in renewals.values()
            if all(k in r for k in ("step", "pub0", "pub1", "reply", "wd0", "wd1"))][1:]
    print(f"renewals: {len(full)}")

    def show(label, values):
        us = [v / 1000 for v in values]
        if us:
            print(f"  {label:52s} p50 {pct(us, .5):7.1f} us  p90 {pct(us, .9):7.1f} us  "
                  f"mean {statistics.mean(us):7.1f} us  (n {len(us)})")

    show("timer step start -> publish (OnCampaign, core)", [r["pub0"] - r["step"] for r in full])
    show("publish call (message, header, send)", [r["pub1"] - r["pub0"] for r in full])
    pre = [r for r in full if r.get("preempted")]
    calm = [r for r in full if r.get("preempted") is False]
    show("  of which: publish preempted (involuntary switch)", [r["pub1"] - r["pub0"] for r in pre])
    show("  of which: publish not preempted", [r["pub1"] - r["pub0"] for r in calm])
    show("publish return -> reply on cnats' delivery thread", [r["reply"] - r["pub1"] for r in full])
    show("reply -> campaign thread takes it (hand-off)", [r["wd0"] - r["reply"] for r in full])
    show("core handles the result", [r["wd1"] - r["wd0"] for r in full])
    show("publish start -> result handled", [r["wd1"] - r["pub0"] for r in full])
    echoed = [r for r in full if "echo" in r]
    print(f"  watch echo on the watch thread before the reply: "
          f"{sum(1 for r in echoed if r['echo'] < r['reply'])} of {len(echoed)}")


if __name__ == "__main__":
    main(sys.argv[1])
