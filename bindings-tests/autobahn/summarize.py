"""Turns Autobahn|Testsuite's index.json into the golden text: one line per agent and case,
`agent case behavior behaviorClose remoteCloseCode`, sorted, without durations or other
fields that change from run to run (the `ws` agent's behavior too: see RACY_BEHAVIOR). Python 2.7 (it runs with the suite's interpreter).

usage: summarize.py INDEX_JSON OUT_TXT
Prints a count per agent and behavior; exits 1 when an echo case of sections 1-7 or 9 is
neither OK, NON-STRICT nor INFORMATIONAL.
"""
import io
import json
import sys

ACCEPTED = ("OK", "NON-STRICT", "INFORMATIONAL")
# Agents whose `behavior` is left out of the golden text (written `*`): the plain-WebSocket
# endpoint answers `ready` once the token in its URL is verified, and whether that frame
# reaches the suite before or after the case's own frames decides OK or FAILED from run to
# run. Its close behaviour and close codes are recorded as for the others.
RACY_BEHAVIOR = ("ws",)
MUST_PASS = ("1", "2", "3", "4", "5", "6", "7", "9")


def case_key(case_id):
    return [int(part) for part in case_id.split(".")]


def main(index_path, out_path):
    with io.open(index_path, encoding="utf-8") as f:
        index = json.load(f)
    lines = []
    failures = []
    for agent in sorted(index):
        counts = {}
        for case_id in sorted(index[agent], key=case_key):
            r = index[agent][case_id]
            code = r.get("remoteCloseCode")
            behavior = "*" if agent in RACY_BEHAVIOR else r["behavior"]
            lines.append("%s %s %s %s %s" % (
                agent, case_id, behavior, r["behaviorClose"],
                "-" if code is None else code))
            counts[r["behavior"]] = counts.get(r["behavior"], 0) + 1
            if (agent == "echo" and case_id.split(".")[0] in MUST_PASS
                    and r["behavior"] not in ACCEPTED):
                failures.append("%s %s: %s" % (agent, case_id, r["behavior"]))
        summary = ", ".join("%d %s" % (n, b) for b, n in sorted(counts.items()))
        print("autobahn %s: %d cases: %s" % (agent, len(index[agent]), summary))
    with io.open(out_path, "w", encoding="utf-8") as f:
        f.write(u"\n".join(lines) + u"\n")
    for failure in failures:
        print("autobahn: not conformant: " + failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
