// The checked form of a policy: every name resolved to a selector, every port
// list and protocol parsed. Building it is where a policy's meaning is
// validated (undefined groups, tags and hosts, tag owners, bad CIDRs and
// ports); the compiler, the SSH compiler and the evaluator only read it.
import {
  GROUP_RE,
  HOST_RE,
  TAG_RE,
  parseSelector,
  type PolicyNames,
  type Selector,
  type SelectorPlace,
} from "./aliases";
import { parsePrefix, type Prefix } from "@trellis/proto/ip";
import {
  checkProtoPorts,
  parseIpSpec,
  parsePorts,
  parseProto,
  splitHostPorts,
  type Parsed,
  type PortRange,
} from "./ports";
import type { PolicyDocument } from "./types";

/** Which policy entry a compiled rule or an answer comes from, e.g. `acls[3]`. */
export interface RuleRef {
  section: "acls" | "grants" | "ssh";
  index: number;
}

/** One destination of a network rule: a selector, the protocols (null = TCP/UDP/ICMP) and the ports. */
export interface Target {
  sel: Selector;
  protos: number[] | null;
  ports: PortRange[];
}

/** An `acls` entry or a grant: who (src) may reach what (targets), and which app capabilities they get. */
export interface NetRule {
  ref: RuleRef;
  src: Selector[];
  targets: Target[];
  /** Grant `app` capabilities, granted on every `appDst`; a capability without values is null. */
  app?: Record<string, unknown[] | null>;
  appDst: Selector[];
  /** Grant `via` tags: the rule holds only on routers with one of these tags. */
  via?: string[];
  /**
   * Capabilities Tailscale grants back, from the destinations to the
   * sources, alongside some it defines (see {@link COMPANION_CAPS}): rules
   * with the grant's `src` and `dst` swapped and app capabilities only.
   */
  companions?: NetRule[];
}

/**
 * Tailscale's capabilities that come with a companion in the other
 * direction, by the name granted: a node may use the peer relay it was
 * granted only if the relay may serve it (relay-target), and a Taildrive
 * share is only reachable if the sharer knows the peer may access it
 * (drive-sharer). In the order Tailscale emits them, by granted name.
 */
export const COMPANION_CAPS: readonly (readonly [granted: string, companion: string])[] = [
  ["tailscale.com/cap/drive", "tailscale.com/cap/drive-sharer"],
  ["tailscale.com/cap/relay", "tailscale.com/cap/relay-target"],
];

/** An `ssh` entry. */
export interface SshRuleModel {
  ref: RuleRef;
  action: "accept" | "check";
  src: Selector[];
  dst: Selector[];
  /** Local users by name (`root`, `ubuntu`…), in policy order. */
  users: string[];
  /** `autogroup:nonroot` is listed: any local user except root. */
  nonroot: boolean;
  /** For `check`: how long a check lasts, in ms (0 = check every time). */
  checkPeriodMs: number;
  acceptEnv?: string[];
  /**
   * Domains of `localpart:*@<domain>` users: a user of such a domain may log
   * in as the local part of their login (alice@example.com as `alice`).
   */
  localparts: string[];
}

/** A destination in a `tests` entry: `host:port`. */
export interface TestDst {
  text: string;
  sel: Selector;
  port: number;
}

/** A `tests` entry. */
export interface AclTestModel {
  index: number;
  src: Selector;
  /** IANA protocol; tests without `proto` test TCP. */
  proto: number;
  accept: TestDst[];
  deny: TestDst[];
}

/** An `sshTests` entry. */
export interface SshTestModel {
  index: number;
  src: Selector;
  dst: Selector[];
  accept: string[];
  check: string[];
  deny: string[];
}

/** A checked policy, ready for compilation and evaluation. */
export interface Policy {
  readonly names: PolicyNames;
  readonly rules: readonly NetRule[];
  readonly ssh: readonly SshRuleModel[];
  readonly autoApprovers: {
    routes: { prefix: Prefix; approvers: Selector[] }[];
    exitNode: Selector[];
  };
  readonly nodeAttrs: { target: Selector[]; attr: string[] }[];
  readonly tests: readonly AclTestModel[];
  readonly sshTests: readonly SshTestModel[];
}

/** A problem found while building the model, located by document path. */
export interface ModelIssue {
  path: (string | number)[];
  message: string;
}

/**
 * The capabilities in the tailscale.com domain a policy may grant: those
 * Tailscale's own tools read from grants (Taildrive, peer relays, the web
 * client, the Kubernetes operator, tsidp, setec, golink, TailSQL). The rest
 * of the domain is Tailscale's to set (companions such as relay-target,
 * ingress, funnel), and Tailscale refuses them in a policy.
 */
const TAILSCALE_CAPS = new Set(
  ["drive", "relay", "webui", "kubernetes", "tsidp", "secrets", "golink", "tailsql"].map(
    (c) => `tailscale.com/cap/${c}`,
  ),
);

function isSelfSel(s: Selector): boolean {
  return s.kind === "autogroup" && s.name === "self";
}

/** Default `checkPeriod` of `check` SSH rules: 12 hours, as Tailscale. */
export const DEFAULT_CHECK_PERIOD_MS = 12 * 3600 * 1000;

/** Go's duration units, in milliseconds. Longer names first, so "ms" is not read as "m". */
const DURATION_UNITS: readonly (readonly [string, number])[] = [
  ["ns", 1e-6],
  ["us", 1e-3],
  ["\u00b5s", 1e-3],
  ["\u03bcs", 1e-3],
  ["ms", 1],
  ["h", 3600_000],
  ["m", 60_000],
  ["s", 1000],
];

/** Parse a duration as Go's time.ParseDuration does (`12h`, `1h30m`, `30s`, `0`, `-5m`), in milliseconds. */
function parseGoDuration(text: string): number | null {
  let rest = text;
  let sign = 1;
  if (rest.startsWith("-") || rest.startsWith("+")) {
    if (rest[0] === "-") sign = -1;
    rest = rest.slice(1);
  }
  if (rest === "0") return 0;
  if (rest === "") return null;
  let ms = 0;
  while (rest !== "") {
    const num = /^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)/.exec(rest)?.[0];
    if (!num) return null;
    rest = rest.slice(num.length);
    const unit = DURATION_UNITS.find(([u]) => rest.startsWith(u));
    if (!unit) return null;
    rest = rest.slice(unit[0].length);
    ms += Number(num) * unit[1];
  }
  return sign * ms;
}

/** Longest `checkPeriod` Tailscale allows: a week. */
const MAX_CHECK_PERIOD_MS = 168 * 3600_000;

/**
 * Parse a `checkPeriod` as Tailscale does: `always`, or a Go duration from
 * 0 (which, like `always`, checks every time) up to 168h.
 */
export function parseCheckPeriod(text: string): Parsed<number> {
  if (text === "always") return { ok: true, value: 0 };
  const ms = parseGoDuration(text);
  if (ms === null) {
    return {
      ok: false,
      error: `checkPeriod "${text}" is not a duration like 12h, 30m, 1h30m or 30s (or "always")`,
    };
  }
  if (ms < 0) return { ok: false, error: `checkPeriod "${text}" must be a positive duration` };
  if (ms > MAX_CHECK_PERIOD_MS) return { ok: false, error: `checkPeriod "${text}" is above the max (168h)` };
  return { ok: true, value: ms };
}

/** Local user names allowed in ssh `users`: POSIX-ish names, optionally ending in `$` (Samba machine accounts). */
const LOCAL_USER_RE = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/;

/**
 * Check a policy document's meaning and build its model. Returns every
 * problem found, not just the first, so an editor can show them all.
 */
export function buildPolicy(doc: PolicyDocument): { policy: Policy; issues: ModelIssue[] } {
  const issues: ModelIssue[] = [];
  const err = (path: (string | number)[], message: string) => issues.push({ path, message });

  // Names first: everything else refers to them.
  const groups = new Map<string, string[]>();
  for (const [name, members] of Object.entries(doc.groups ?? {})) {
    if (!GROUP_RE.test(name))
      err(["groups", name], `"${name}" is not a group name (groups are named group:<name>)`);
    groups.set(name, members);
  }
  const hosts = new Map<string, Prefix>();
  for (const [name, value] of Object.entries(doc.hosts ?? {})) {
    if (!HOST_RE.test(name)) {
      err(["hosts", name], `"${name}" is not a valid host alias name (letters, digits, ".", "-", "_")`);
      continue;
    }
    const p = parsePrefix(value);
    if (!p) err(["hosts", name], `"${value}" is not an IP address or CIDR`);
    else hosts.set(name, p);
  }
  const tags = new Set<string>();
  for (const name of Object.keys(doc.tagOwners ?? {})) {
    if (!TAG_RE.test(name))
      err(["tagOwners", name], `"${name}" is not a tag name (tag:<letter><letters, digits, ->)`);
    else tags.add(name);
  }
  const names: PolicyNames = { groups, hosts, tags };

  const sel = (text: string, place: SelectorPlace, path: (string | number)[]): Selector | undefined => {
    const r = parseSelector(text, names, place);
    if (!r.ok) {
      err(path, r.error);
      return undefined;
    }
    return r.value;
  };
  const sels = (list: string[], place: SelectorPlace, path: (string | number)[]): Selector[] =>
    list.flatMap((t, i) => sel(t, place, [...path, i]) ?? []);
  // Source and destination lists are read as Tailscale reads them, with
  // surrounding whitespace trimmed ("tag:server " is tag:server); each
  // selector keeps its index for messages.
  const aliases = (list: string[], place: SelectorPlace, path: (string | number)[]) =>
    list.flatMap((t, i) => {
      const s = sel(t.trim(), place, [...path, i]);
      return s ? [{ sel: s, i }] : [];
    });

  // Tailscale narrows autogroup:self to the sources' own devices, so every
  // source must be a user: users, groups, user autogroups (and, in acls
  // only, "*", which it narrows per user). A tag, a host or an address has
  // no user to narrow to.
  const selfSources = (src: { sel: Selector; i: number }[], path: (string | number)[], acl: boolean) => {
    for (const { sel: s, i } of src) {
      const userLike =
        s.kind === "user" ||
        s.kind === "domain" ||
        s.kind === "group" ||
        (s.kind === "any" && acl) ||
        (s.kind === "autogroup" && (s.name === "member" || s.name === "admin" || s.name === "auditor"));
      if (!userLike) {
        err(
          [...path, i],
          `autogroup:self can only be used with users, groups, or supported autogroups, not with "${s.text}"`,
        );
      }
    }
  };

  for (const [name, members] of groups) members.forEach((m, i) => sel(m, "groupMember", ["groups", name, i]));
  for (const [name, owners] of Object.entries(doc.tagOwners ?? {}))
    sels(owners, "tagOwner", ["tagOwners", name]);

  const rules: NetRule[] = [];
  (doc.acls ?? []).forEach((acl, index) => {
    const path = ["acls", index];
    if (acl.action !== "accept") {
      err(
        [...path, "action"],
        `action must be "accept" (everything not accepted is denied), not "${acl.action}"`,
      );
    }
    const protos = parseProto(acl.proto);
    if (!protos.ok) err([...path, "proto"], protos.error);
    const targets: Target[] = [];
    acl.dst.forEach((d, i) => {
      const dpath = [...path, "dst", i];
      const hp = splitHostPorts(d);
      if (!hp.ok) return err(dpath, hp.error);
      if (["tag", "group", "autogroup"].includes(hp.value.host)) {
        return err(dpath, `"${d}" needs ports: write ${d}:* or ${d}:22`);
      }
      const s = sel(hp.value.host, "dst", dpath);
      const ports = parsePorts(hp.value.ports);
      if (!ports.ok) return err(dpath, ports.error);
      if (protos.ok) {
        const bad = checkProtoPorts(protos.value, ports.value);
        if (bad) return err(dpath, bad);
      }
      if (s) targets.push({ sel: s, protos: protos.ok ? protos.value : null, ports: ports.value });
    });
    const src = aliases(acl.src, "src", [...path, "src"]);
    if (targets.some((t) => isSelfSel(t.sel))) selfSources(src, [...path, "src"], true);
    rules.push({ ref: { section: "acls", index }, src: src.map((a) => a.sel), targets, appDst: [] });
  });

  (doc.grants ?? []).forEach((g, index) => {
    const path = ["grants", index];
    if (!g.ip?.length && !(g.app && Object.keys(g.app).length)) err(path, "ip and app can not both be empty");
    const srcAt = aliases(g.src, "src", [...path, "src"]);
    const dstAt = aliases(g.dst, "dst", [...path, "dst"]);
    const src = srcAt.map((a) => a.sel);
    const dst = dstAt.map((a) => a.sel);
    for (const { sel: d, i } of dstAt) {
      if (d.kind === "prefix" && !d.host && d.prefix.bits === 0)
        err(
          [...path, "dst", i],
          `dst "${d.text}": to allow all IP addresses, use "*" or "autogroup:internet"`,
        );
    }
    if (dst.some(isSelfSel)) selfSources(srcAt, [...path, "src"], false);
    const via = g.via?.length ? g.via : undefined;
    if (via) {
      sels(via, "via", [...path, "via"]);
      for (const { sel: d, i } of dstAt) {
        const okVia = d.kind === "prefix" || (d.kind === "autogroup" && d.name === "internet");
        if (!okVia) {
          err(
            [...path, "dst", i],
            `with "via", dst must be IP ranges, host aliases or autogroup:internet, not "${d.text}"`,
          );
        }
      }
    }
    const targets: Target[] = [];
    (g.ip ?? []).forEach((spec, i) => {
      const r = parseIpSpec(spec);
      if (!r.ok) return err([...path, "ip", i], r.error);
      for (const d of dst) targets.push({ sel: d, protos: r.value.protos, ports: r.value.ports });
    });
    let appDst: Selector[] = [];
    if (g.app) {
      for (const cap of Object.keys(g.app)) {
        if (!/^[A-Za-z0-9.-]+\.[A-Za-z]{2,}\/\S+$/.test(cap)) {
          err(
            [...path, "app", cap],
            `capability name must have the form {domain}/{path} (e.g. example.com/cap/admin), not "${cap}"`,
          );
        } else if (cap.startsWith("tailscale.com/") && !TAILSCALE_CAPS.has(cap)) {
          err(
            [...path, "app", cap],
            `capability name must not be in the tailscale.com domain: "${cap}" is not one Tailscale lets a policy grant`,
          );
        }
      }
      appDst = dst.filter((d) => !(d.kind === "autogroup" && d.name === "internet"));
      if (appDst.length !== dst.length)
        err([...path, "dst"], "app capabilities cannot be granted on autogroup:internet");
    }
    const ref = { section: "grants" as const, index };
    const companions: NetRule[] = COMPANION_CAPS.filter(([cap]) => g.app && cap in g.app).map(
      ([, companion]) => ({ ref, src: appDst, targets: [], app: { [companion]: null }, appDst: src }),
    );
    rules.push({ ref, src, targets, app: g.app, appDst, via, ...(companions.length ? { companions } : {}) });
  });

  const ssh: SshRuleModel[] = [];
  (doc.ssh ?? []).forEach((s, index) => {
    const path = ["ssh", index];
    // Tailscale trims the action, the users and the selectors of ssh rules.
    const action = s.action.trim();
    if (action !== "accept" && action !== "check") {
      err([...path, "action"], `ssh action must be "accept" or "check", not "${s.action}"`);
    }
    let checkPeriodMs = DEFAULT_CHECK_PERIOD_MS;
    if (s.checkPeriod !== undefined) {
      if (action !== "check") err([...path, "checkPeriod"], 'checkPeriod only applies to action "check"');
      const p = parseCheckPeriod(s.checkPeriod);
      if (!p.ok) err([...path, "checkPeriod"], p.error);
      else checkPeriodMs = p.value;
    }
    if (s.users.length === 0) err([...path, "users"], "list at least one local user (or autogroup:nonroot)");
    const users: string[] = [];
    const localparts: string[] = [];
    let nonroot = false;
    s.users.forEach((raw, i) => {
      const u = raw.trim();
      if (u === "autogroup:nonroot") nonroot = true;
      else if (u.startsWith("localpart:")) {
        const m = /^localpart:\*@([^@\s*]+)$/.exec(u);
        if (m) localparts.push(m[1]!.toLowerCase());
        else err([...path, "users", i], `invalid localpart format "${u}", must be localpart:*@<domain>`);
      } else if (!LOCAL_USER_RE.test(u)) {
        err([...path, "users", i], `"${u}" is not a local user name (or autogroup:nonroot)`);
      } else users.push(u);
    });
    s.acceptEnv?.forEach((e, i) => {
      if (!/^[A-Za-z_*?][A-Za-z0-9_*?]*$/.test(e))
        err([...path, "acceptEnv", i], `"${e}" is not an environment variable pattern`);
    });
    ssh.push({
      ref: { section: "ssh", index },
      action: action === "check" ? "check" : "accept",
      src: aliases(s.src, "sshSrc", [...path, "src"]).map((a) => a.sel),
      dst: aliases(s.dst, "sshDst", [...path, "dst"]).map((a) => a.sel),
      users: [...new Set(users)],
      nonroot,
      checkPeriodMs,
      acceptEnv: s.acceptEnv ?? undefined,
      localparts: [...new Set(localparts)],
    });
  });

  const routes: Policy["autoApprovers"]["routes"] = [];
  for (const [cidr, approvers] of Object.entries(doc.autoApprovers?.routes ?? {})) {
    const p = parsePrefix(cidr);
    if (!p) err(["autoApprovers", "routes", cidr], `"${cidr}" is not a CIDR prefix`);
    const a = sels(approvers, "autoApprover", ["autoApprovers", "routes", cidr]);
    if (p) routes.push({ prefix: p, approvers: a });
  }
  const exitNode = sels(doc.autoApprovers?.exitNode ?? [], "autoApprover", ["autoApprovers", "exitNode"]);

  const nodeAttrs = (doc.nodeAttrs ?? []).map((na, index) => {
    na.attr.forEach((a, i) => {
      if (a.trim() === "") err(["nodeAttrs", index, "attr", i], "attributes must not be empty");
    });
    return {
      target: aliases(na.target, "nodeAttr", ["nodeAttrs", index, "target"]).map((a) => a.sel),
      attr: na.attr,
    };
  });

  const testDst = (text: string, path: (string | number)[]): TestDst | undefined => {
    const hp = splitHostPorts(text);
    if (!hp.ok) return void err(path, hp.error);
    const port = parsePorts(hp.value.ports);
    if (!port.ok) return void err(path, port.error);
    if (port.value.length !== 1 || port.value[0]!.First !== port.value[0]!.Last) {
      return void err(path, `"${text}" must name one port, like tag:web:443`);
    }
    const s = sel(hp.value.host, "testDst", path);
    return s && { text, sel: s, port: port.value[0]!.First };
  };
  const tests: AclTestModel[] = [];
  (doc.tests ?? []).forEach((t, index) => {
    const path = ["tests", index];
    const src = sel(t.src, "testSrc", [...path, "src"]);
    const proto = parseProto(t.proto);
    if (!proto.ok) err([...path, "proto"], proto.error);
    if (!t.accept?.length && !t.deny?.length) err(path, 'a test needs "accept" or "deny"');
    const accept = (t.accept ?? []).flatMap((d, i) => testDst(d, [...path, "accept", i]) ?? []);
    const deny = (t.deny ?? []).flatMap((d, i) => testDst(d, [...path, "deny", i]) ?? []);
    if (src) tests.push({ index, src, proto: proto.ok && proto.value ? proto.value[0]! : 6, accept, deny });
  });

  const sshTests: SshTestModel[] = [];
  (doc.sshTests ?? []).forEach((t, index) => {
    const path = ["sshTests", index];
    const src = sel(t.src, "testSrc", [...path, "src"]);
    const dst = sels(t.dst, "testDst", [...path, "dst"]);
    for (const key of ["accept", "check", "deny"] as const) {
      (t[key] ?? []).forEach((u, i) => {
        if (!LOCAL_USER_RE.test(u)) err([...path, key, i], `"${u}" is not a local user name`);
      });
    }
    if (!t.accept?.length && !t.check?.length && !t.deny?.length)
      err(path, 'an ssh test needs "accept", "check" or "deny"');
    if (src)
      sshTests.push({ index, src, dst, accept: t.accept ?? [], check: t.check ?? [], deny: t.deny ?? [] });
  });

  return {
    policy: { names, rules, ssh, autoApprovers: { routes, exitNode }, nodeAttrs, tests, sshTests },
    issues,
  };
}
