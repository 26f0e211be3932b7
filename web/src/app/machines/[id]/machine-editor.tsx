"use client";

import { useRouter } from "next/navigation";
import { useState, type FormEvent } from "react";
import { MachineInfo, NoContent } from "@trellis/proto/admin";
import { ConfirmDialog } from "@/components/confirm-dialog";
import { FieldError, hasFieldError } from "@/components/form";
import { EXIT_ROUTES, isExitRoute } from "@/components/format";
import { Outcome, useMutation } from "@/components/use-mutation";

export interface EditableMachine {
  id: string;
  name: string;
  tags: string[];
  hasUser: boolean;
  authorized: boolean;
  expired: boolean;
  keyExpiryDisabled: boolean;
  advertisedRoutes: string[];
  approvedRoutes: string[];
  exitNodeAdvertised: boolean;
  exitNodeApproved: boolean;
}

/**
 * The machine's actions. The server enforces permissions; this hides what the
 * actor cannot do (members: their own machines; routes and approval: admins).
 */
export function MachineEditor({
  machine: m,
  canWrite,
  isAdmin,
  tagChoices,
}: {
  machine: EditableMachine;
  canWrite: boolean;
  isAdmin: boolean;
  /** Tags the viewer may set (the policy's tagOwners they own; all of them for admins). */
  tagChoices: string[];
}) {
  const base = `/api/v1/machines/${encodeURIComponent(m.id)}`;
  const hasRoutes = m.advertisedRoutes.length > 0;
  if (!canWrite && !hasRoutes) return null;
  return (
    <div>
      {isAdmin && !m.authorized ? <Authorize base={base} /> : null}
      {canWrite ? <Rename base={base} name={m.name} /> : null}
      {canWrite ? <Tags base={base} tags={m.tags} choices={tagChoices} /> : null}
      {hasRoutes ? <Routes base={base} m={m} isAdmin={isAdmin} /> : null}
      {canWrite ? <Expiry base={base} m={m} /> : null}
      {canWrite ? <Remove base={base} name={m.name} /> : null}
    </div>
  );
}

function Authorize({ base }: { base: string }) {
  const mut = useMutation();
  return (
    <section className="panel alert-warn" aria-labelledby="auth-title">
      <h3 id="auth-title">Waiting for approval</h3>
      <p className="small">This machine cannot reach the tailnet until an admin approves it.</p>
      <div className="form-actions">
        <button
          type="button"
          className="btn btn-primary"
          disabled={mut.busy}
          onClick={() =>
            void mut.run("POST", `${base}/authorize`, MachineInfo, undefined, { success: "Approved." })
          }
          data-testid="machine-approve"
        >
          Approve machine
        </button>
      </div>
      <Outcome m={mut} />
    </section>
  );
}

function Rename({ base, name }: { base: string; name: string }) {
  const mut = useMutation();
  const [value, setValue] = useState(name);
  async function submit(e: FormEvent) {
    e.preventDefault();
    await mut.run(
      "PATCH",
      base,
      MachineInfo,
      { name: value.trim() },
      { success: `Renamed to ${value.trim()}.` },
    );
  }
  return (
    <section className="panel" aria-labelledby="rename-title">
      <h3 id="rename-title">Name</h3>
      <form className="inline-form" onSubmit={submit}>
        <label className="visually-hidden" htmlFor="machine-rename">
          Machine name
        </label>
        <input
          id="machine-rename"
          value={value}
          onChange={(e) => setValue(e.target.value)}
          aria-invalid={hasFieldError(mut.issues, "name")}
          aria-describedby="machine-rename-hint"
          autoComplete="off"
          spellCheck={false}
          required
          maxLength={63}
        />
        <button type="submit" className="btn btn-secondary" disabled={mut.busy || value.trim() === name}>
          Rename
        </button>
      </form>
      <p id="machine-rename-hint" className="hint">
        Lowercase letters, digits and hyphens; also its MagicDNS name.
      </p>
      <FieldError issues={mut.issues} path="name" block />
      <Outcome m={mut} fields={["name"]} />
    </section>
  );
}

function Tags({ base, tags, choices }: { base: string; tags: string[]; choices: string[] }) {
  const mut = useMutation();
  const [list, setList] = useState(tags);
  const changed = list.join("\n") !== tags.join("\n");
  const offered = choices.filter((t) => !list.includes(t));
  const [pick, setPick] = useState("");

  return (
    <section className="panel" aria-labelledby="tags-title">
      <h3 id="tags-title">Tags</h3>
      <p className="hint">
        A tagged machine belongs to its tags instead of a user. The tags offered are the policy’s tagOwners
        that you may set.
      </p>
      <ul
        className="chips"
        aria-label="Current tags"
        style={{ listStyle: "none", padding: 0, margin: "0.5rem 0" }}
      >
        {list.length === 0 ? <li className="muted small">No tags</li> : null}
        {list.map((t) => (
          <li className="chip" key={t}>
            {t}
            <button
              type="button"
              aria-label={`Remove tag ${t}`}
              onClick={() => setList(list.filter((x) => x !== t))}
            >
              ×
            </button>
          </li>
        ))}
      </ul>
      {choices.length === 0 ? (
        <p className="hint" data-testid="tags-none">
          The policy defines no tag you may set: an admin declares tags and their owners in tagOwners under
          Access controls.
        </p>
      ) : null}
      <div className="inline-form">
        {offered.length > 0 ? (
          <>
            <label className="visually-hidden" htmlFor="tag-add">
              Add a tag
            </label>
            <select id="tag-add" value={pick} onChange={(e) => setPick(e.target.value)}>
              <option value="">Add a tag…</option>
              {offered.map((t) => (
                <option key={t} value={t}>
                  {t}
                </option>
              ))}
            </select>
            <button
              type="button"
              className="btn btn-secondary"
              disabled={!pick}
              onClick={() => {
                if (pick && !list.includes(pick)) setList([...list, pick]);
                setPick("");
              }}
            >
              Add
            </button>
          </>
        ) : null}
        <button
          type="button"
          className="btn btn-primary"
          disabled={mut.busy || !changed}
          onClick={() => void mut.run("PATCH", base, MachineInfo, { tags: list }, { success: "Tags saved." })}
        >
          Save tags
        </button>
      </div>
      <Outcome m={mut} />
    </section>
  );
}

function Routes({ base, m, isAdmin }: { base: string; m: EditableMachine; isAdmin: boolean }) {
  const mut = useMutation();
  const subnets = m.advertisedRoutes.filter((r) => !isExitRoute(r));
  const [approved, setApproved] = useState(() => new Set(m.approvedRoutes.filter((r) => !isExitRoute(r))));
  const [exit, setExit] = useState(m.exitNodeApproved);

  function toggle(r: string, on: boolean) {
    const next = new Set(approved);
    if (on) next.add(r);
    else next.delete(r);
    setApproved(next);
  }

  function save() {
    const routes = [...subnets.filter((r) => approved.has(r)), ...(exit ? EXIT_ROUTES : [])];
    void mut.run("POST", `${base}/routes`, MachineInfo, { routes }, { success: "Routes saved." });
  }

  return (
    <section className="panel" aria-labelledby="routes-title">
      <h3 id="routes-title">Routes</h3>
      <p className="hint">
        {isAdmin
          ? "Approve the subnets this machine offers to route, and whether it may be used as an exit node."
          : "Only admins approve routes."}
      </p>
      <fieldset disabled={!isAdmin || mut.busy}>
        <legend>Subnet routes</legend>
        {subnets.length === 0 ? <p className="muted small">None advertised.</p> : null}
        <div className="checks">
          {subnets.map((r) => (
            <label className="check" key={r}>
              <input
                type="checkbox"
                checked={approved.has(r)}
                onChange={(e) => toggle(r, e.target.checked)}
                data-testid={`route-${r}`}
              />
              <span className="mono">{r}</span>
              {!m.approvedRoutes.includes(r) ? <span className="badge badge-warn">new</span> : null}
            </label>
          ))}
        </div>
        {m.exitNodeAdvertised ? (
          <label className="check" style={{ marginTop: "0.6rem" }}>
            <input
              type="checkbox"
              checked={exit}
              onChange={(e) => setExit(e.target.checked)}
              data-testid="route-exit-node"
            />
            <span>
              Use as exit node <span className="hint">(0.0.0.0/0 and ::/0)</span>
            </span>
          </label>
        ) : null}
      </fieldset>
      {isAdmin ? (
        <div className="form-actions" style={{ marginTop: "0.75rem" }}>
          <button type="button" className="btn btn-primary" onClick={save} disabled={mut.busy}>
            Save routes
          </button>
        </div>
      ) : null}
      <Outcome m={mut} />
    </section>
  );
}

function Expiry({ base, m }: { base: string; m: EditableMachine }) {
  const mut = useMutation();
  const [confirming, setConfirming] = useState(false);
  return (
    <section className="panel" aria-labelledby="expiry-title">
      <h3 id="expiry-title">Key expiry</h3>
      <label className="check">
        <input
          type="checkbox"
          checked={m.keyExpiryDisabled}
          disabled={mut.busy}
          onChange={(e) =>
            void mut.run(
              "PATCH",
              base,
              MachineInfo,
              { keyExpiryDisabled: e.target.checked },
              { success: e.target.checked ? "Key expiry disabled." : "Key expiry enabled." },
            )
          }
          data-testid="key-expiry-disabled"
        />
        <span>
          Disable key expiry
          <span className="hint" style={{ display: "block" }}>
            When enabled again, the key expires after the tailnet’s default period from now.
          </span>
        </span>
      </label>
      <div className="form-actions" style={{ marginTop: "0.75rem" }}>
        <button
          type="button"
          className="btn btn-secondary"
          onClick={() => {
            mut.reset();
            setConfirming(true);
          }}
          disabled={mut.busy || m.expired}
        >
          Expire key now
        </button>
      </div>
      <Outcome m={confirming ? { ...mut, error: null } : mut} />
      <ConfirmDialog
        open={confirming}
        title="Expire this machine’s key?"
        confirmLabel="Expire key"
        danger
        busy={mut.busy}
        error={mut.error}
        onCancel={() => setConfirming(false)}
        onConfirm={async () => {
          const res = await mut.run("POST", `${base}/expire`, MachineInfo, undefined, {
            success: "Key expired.",
          });
          if (res.ok) setConfirming(false);
        }}
      >
        <p>The machine is disconnected at once and must log in again to rejoin the tailnet.</p>
      </ConfirmDialog>
    </section>
  );
}

function Remove({ base, name }: { base: string; name: string }) {
  const router = useRouter();
  const mut = useMutation();
  const [confirming, setConfirming] = useState(false);
  return (
    <section className="panel" aria-labelledby="remove-title">
      <h3 id="remove-title">Remove machine</h3>
      <p className="hint">The machine leaves the tailnet; to rejoin it needs a new key.</p>
      <button
        type="button"
        className="btn btn-danger"
        onClick={() => {
          mut.reset();
          setConfirming(true);
        }}
        data-testid="machine-remove"
      >
        Remove…
      </button>
      <ConfirmDialog
        open={confirming}
        title={`Remove ${name}?`}
        confirmLabel="Remove machine"
        danger
        busy={mut.busy}
        error={mut.error}
        onCancel={() => setConfirming(false)}
        onConfirm={async () => {
          const res = await mut.run("DELETE", base, NoContent, undefined, { refresh: false });
          if (res.ok) {
            setConfirming(false);
            router.push("/machines");
            router.refresh();
          }
        }}
      >
        <p>
          <strong>{name}</strong> is removed from the tailnet. This cannot be undone.
        </p>
      </ConfirmDialog>
    </section>
  );
}
