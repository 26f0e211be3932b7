// CPU time of each process taking part in a browser benchmark (Chromium's
// renderers by thread: page, SharedWorker, IPC), read from /proc (Linux):
// where a pipeline's cost lands, per MB moved. On a machine whose cores are
// all busy, throughput follows the total.
import { readdirSync, readFileSync } from "node:fs";

/** Clock ticks per second of /proc/<pid>/stat's times (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

/** CPU ticks so far, summed per kind of process (per thread name in renderers). */
export type CpuSnapshot = Map<string, number>;

function kindOf(pid: number, cmdline: string): string | null {
  if (pid === process.pid) return "this process (Node peers)";
  if (cmdline.includes("web/server.ts")) return "Trellis server (relay)";
  if (cmdline.includes("trellis-ws-forwarder")) return "WebSocket forwarder";
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
    let kind: string | null;
    try {
      kind = kindOf(Number(entry), readFileSync(`/proc/${entry}/cmdline`, "utf8").replaceAll("\0", " "));
      if (kind && kind !== "Chromium renderer") {
        snap.set(kind, (snap.get(kind) ?? 0) + ticks(readFileSync(`/proc/${entry}/stat`, "utf8")));
      }
    } catch {
      continue; // the process exited between the listing and the read
    }
    if (kind !== "Chromium renderer") continue;
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

/** "kind ms, kind ms, …; total ms CPU ms/MB" (CPU ms per MB) between two snapshots; kinds under 0.5 left out. */
export function cpuPerMB(before: CpuSnapshot, after: CpuSnapshot, mb: number): string {
  const parts: string[] = [];
  let total = 0;
  for (const [kind, now] of after) {
    const ms = ((now - (before.get(kind) ?? 0)) * 1000) / TICKS_PER_SECOND / mb;
    total += ms;
    if (ms >= 0.5) parts.push(`${kind} ${ms.toFixed(1)}`);
  }
  return `${parts.join(", ")}; total ${total.toFixed(1)} CPU ms/MB`;
}
