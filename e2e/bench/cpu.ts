// CPU time per process taking part in a browser benchmark, read from /proc
// (Linux): which process a pipeline's cost lands in, per MB moved. On a
// machine whose cores are all busy, throughput follows the total.
import { readdirSync, readFileSync } from "node:fs";

/** Clock ticks per second of /proc/<pid>/stat's times (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

/** CPU ticks so far, summed per kind of process. */
export type CpuSnapshot = Map<string, number>;

function kindOf(pid: number, cmdline: string): string | null {
  if (pid === process.pid) return "this process (Node peers)";
  if (cmdline.includes("web/server.ts")) return "Trellis server (relay)";
  if (!cmdline.includes("chromium")) return null;
  const type = /--type=([\w-]+)/.exec(cmdline)?.[1];
  if (!type) return "Chromium browser";
  if (type === "utility") return cmdline.includes("NetworkService") ? "Chromium network" : "Chromium utility";
  return `Chromium ${type}`;
}

export function cpuSnapshot(): CpuSnapshot {
  const snap: CpuSnapshot = new Map();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let cmdline: string;
    let stat: string;
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").replaceAll("\0", " ");
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // the process exited between the listing and the read
    }
    const kind = kindOf(Number(entry), cmdline);
    if (!kind) continue;
    if (kind !== "Chromium renderer") {
      snap.set(kind, (snap.get(kind) ?? 0) + ticks(stat));
      continue;
    }
    // A renderer runs the page and the SharedWorker on threads of their own: by thread name.
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${entry}/task`);
    } catch {
      continue;
    }
    for (const tid of tasks) {
      try {
        const name = readFileSync(`/proc/${entry}/task/${tid}/comm`, "utf8").trim();
        const k = `${kind} ${name.replace(/\d+$/, "")}`;
        snap.set(k, (snap.get(k) ?? 0) + ticks(readFileSync(`/proc/${entry}/task/${tid}/stat`, "utf8")));
      } catch {
        // the thread ended
      }
    }
  }
  return snap;
}

/** utime + stime of a /proc stat line (the 12th and 13th fields after the command name, which may hold spaces). */
function ticks(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

/** "kind: ms per MB, …, total: ms per MB" between two snapshots. */
export function cpuPerMB(before: CpuSnapshot, after: CpuSnapshot, mb: number): string {
  const parts: string[] = [];
  let total = 0;
  for (const [kind, ticks] of after) {
    const ms = ((ticks - (before.get(kind) ?? 0)) * 1000) / TICKS_PER_SECOND / mb;
    total += ms;
    if (ms >= 0.5) parts.push(`${kind} ${ms.toFixed(1)}`);
  }
  return `${parts.join(", ")}; total ${total.toFixed(1)} CPU ms/MB`;
}
