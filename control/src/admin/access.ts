// What a user's own machine may open on another: the TCP ports the
// destination's packet filter accepts from it (the filter the destination
// itself enforces, compiled from the policy as for its map), and, for one
// port, whether it is allowed and by which rule. The browser apps use it to
// offer SSH, web and VNC only where the policy allows, and to name the rule
// a refusal would need. A member may ask only from a machine of their own.
import { AccessRequest, type AccessResult } from "@trellis/proto";
import { addrSet, FilterCompiler, type NodeInfo } from "@trellis/policy";
import { requireScope, type Actor } from "../auth/actor";
import { ControlError } from "../errors";
import { parseOr400 } from "../errors-util";
import type { AdminContext } from "./context";
import { byName, explainReach } from "./policy";

const TCP = 6;

/** Merge overlapping or adjacent ranges, sorted. */
function merge(ranges: { first: number; last: number }[]): { first: number; last: number }[] {
  const sorted = [...ranges].sort((a, b) => a.first - b.first);
  const out: { first: number; last: number }[] = [];
  for (const r of sorted) {
    const prev = out[out.length - 1];
    if (prev && r.first <= prev.last + 1) prev.last = Math.max(prev.last, r.last);
    else out.push({ ...r });
  }
  return out;
}

export async function machineAccess(ctx: AdminContext, actor: Actor, body: unknown): Promise<AccessResult> {
  requireScope(actor, "machines:write");
  const req = parseOr400(AccessRequest, body, "invalid access query");
  const [topology, active, domain] = await Promise.all([
    ctx.topology(),
    ctx.policies.current(),
    ctx.dnsDomain(),
  ]);
  const find = (text: string): NodeInfo | undefined =>
    byName(topology, text, domain) ?? topology.nodes.find((n) => n.ipStrs.includes(text));
  const src = find(req.from);
  if (!src || src.tagged || src.user?.email.toLowerCase() !== actor.email.toLowerCase()) {
    throw new ControlError("not_found", 404, `${req.from} is not one of your machines`, [
      { path: "from", message: "not one of your machines" },
    ]);
  }
  const dst = find(req.machine);
  const unknown = () =>
    new ControlError("not_found", 404, `no machine called ${req.machine}`, [
      { path: "machine", message: "no such machine" },
    ]);
  if (!dst) throw unknown();
  const ranges: { first: number; last: number }[] = [];
  const dstAddrs = dst.addrs;
  for (const rule of new FilterCompiler(active.policy, topology).filterFor(dst)) {
    if (!rule.DstPorts?.length) continue;
    if (rule.IPProto?.length && !rule.IPProto.includes(TCP)) continue;
    if (!rule.SrcIPs.some((s) => src.addrs.some(addrSet(s)))) continue;
    for (const d of rule.DstPorts) {
      if (dstAddrs.some(addrSet(d.IP))) ranges.push({ first: d.Ports.First, last: d.Ports.Last });
    }
  }
  // A machine the caller's machine may not reach at all stays unknown to whoever may not read the
  // policy (as it is absent from their map): no probing for names.
  if (ranges.length === 0 && !actor.scopes.has("policy:read")) throw unknown();
  const result: AccessResult = {
    machine: { id: dst.name, name: dst.hostname },
    tcp: merge(ranges),
  };
  if (req.port !== undefined) {
    result.port = await explainReach(ctx, {
      src: src.hostname,
      dst: dst.hostname,
      port: req.port,
      proto: "tcp",
    });
  }
  return result;
}
