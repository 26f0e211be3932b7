// What a user's own machine may open on another: the TCP ports the
// destination's packet filter accepts from it (the filter the destination
// itself enforces, compiled from the policy as for its map), and, for one
// port, whether it is allowed and by which rule. The browser apps use it to
// offer SSH, web and VNC only where the policy allows, and to name the rule
// a refusal would need. A member may ask only from a machine of their own.
// The destination may also be an address on a LAN behind a subnet router
// (an approved route): then the router's filter decides, for that address,
// as the router enforces it on every packet it forwards.
import { AccessRequest, type AccessResult } from "@trellis/proto";
import { parseAddr, prefixContains, type Addr } from "@trellis/proto/ip";
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
  const unknown = () =>
    new ControlError("not_found", 404, `no machine called ${req.machine}`, [
      { path: "machine", message: "no such machine" },
    ]);
  let dst = find(req.machine);
  let dstAddrs: readonly Addr[] | undefined = dst?.addrs;
  let via: NodeInfo | null = null;
  if (!dst) {
    // An address behind a subnet router: the router with the most specific approved route to it.
    const addr = parseAddr(req.machine);
    let best = -1;
    for (const n of addr ? topology.nodes : []) {
      for (const p of n.routes) {
        if (p.bits > best && prefixContains(p, addr!)) {
          best = p.bits;
          via = n;
        }
      }
    }
    if (via) {
      dst = via;
      dstAddrs = [addr!];
    }
  }
  if (!dst || !dstAddrs) throw unknown();
  const ranges: { first: number; last: number }[] = [];
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
    machine: via
      ? { id: via.name, name: `${req.machine} (via ${via.hostname})` }
      : { id: dst.name, name: dst.hostname },
    tcp: merge(ranges),
  };
  if (req.port !== undefined) {
    result.port = await explainReach(ctx, {
      src: src.hostname,
      dst: via ? req.machine : dst.hostname,
      port: req.port,
      proto: "tcp",
    });
  }
  return result;
}
