// @trellis/policy: Tailscale-format access policies with Tailscale's meaning,
// and the per-packet matcher for the filters they compile to. Pure: no
// database, no HTTP, no Node built-ins. The control server compiles and
// checks policies with it, the `trellis` CLI checks policy files offline, and
// nodes match packets with its CompiledFilter.
export {
  PolicyError,
  formatIssue,
  MAX_ISSUES,
  type PolicyErrorKind,
  type PolicyErrorParts,
  type PolicyIssue,
} from "./errors";
export { parseHuJSON, lineCol } from "./hujson";
export { PolicySchema, parsePolicyDocument, type PolicyDocument } from "./types";
export {
  parseTopology,
  TopologySchema,
  EMPTY_TOPOLOGY,
  ROLES,
  type Role,
  type Topology,
  type TopologyInput,
  type NodeInfo,
  type UserInfo,
} from "./topology";
export { parseSelector, type Selector, type SelectorPlace, type AutogroupName } from "./aliases";
export { DEFAULT_CHECK_PERIOD_MS, type Policy, type RuleRef, type NetRule, type SshRuleModel } from "./model";
export { parsePolicy, validatePolicy, runPolicyTests, type ValidateOptions } from "./validate";
export {
  compileFilters,
  FilterCompiler,
  type CapGrant,
  type FilterRule,
  type Filters,
  type NetPortRange,
} from "./compile";
export {
  compileSsh,
  DEFAULT_CHECK_URL,
  type SSHAction,
  type SSHPrincipal,
  type SSHRule,
  type SshOptions,
  type SshPolicies,
} from "./ssh";
export {
  canReach,
  evaluate,
  evaluateSsh,
  nodeParty,
  userParty,
  ReachQueryError,
  type Destination,
  type Party,
  type ReachAnswer,
  type ReachQuery,
  type RuleMatch,
  type SshMatch,
} from "./evaluate";
export { AddrRanges, addrSet, CompiledFilter, FilterSyntaxError, matchFilter, type Packet } from "./match";
export { autoApprovals, autoApprovedRoutes, nodeAttributes } from "./attributes";
export { DEFAULT_PROTOS, PROTOCOLS, type PortRange } from "./ports";
