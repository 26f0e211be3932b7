"use client";

import "@/apps/shims";
import "@xterm/xterm/css/xterm.css";
import { useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import {
  KnownHosts,
  SshKeyring,
  SshShell,
  generateSshKey,
  importPrivateKey,
  type HostKey,
  type SshAuth,
  type SshKeyInfo,
} from "@trellis/client/apps";
import { KeyStore, type BrowserNodeClient } from "@trellis/client/browser";
import { CopyButton } from "@/components/copy-button";
import { Denied, useAppGate } from "@/apps/gate";
import { connectionProblem, portAllowed } from "@/apps/use-tailnet";

const SSH_PORT = 22;

interface Session {
  id: number;
  title: string;
  shell: SshShell;
}

/** Everything about SSH to one machine: the gate (tailnet, policy), sign-in, and sessions in tabs. */
export function SshApp({
  machine,
  userId,
  email,
  defaultUser,
}: {
  machine: string;
  userId: string;
  /** The signed-in user, as a policy names them (for the rule an admin could add). */
  email: string;
  defaultUser: string;
}) {
  const gate = useAppGate(machine, SSH_PORT, "ssh");
  const store = useMemo(() => (typeof window === "undefined" ? null : KeyStore.browser()), []);
  const [sessions, setSessions] = useState<Session[]>([]);
  const [active, setActive] = useState<number | null>(null);
  const [adding, setAdding] = useState(true);
  const hadSessions = useRef(false);
  if (sessions.length > 0) hadSessions.current = true;

  const denied = gate.ready && (!portAllowed(gate.result, SSH_PORT) || gate.result.port?.allowed === false);
  // The policy changed and no longer allows SSH here: the open sessions end, saying why.
  useEffect(() => {
    if (!denied || sessions.length === 0) return;
    for (const s of sessions) void s.shell.close("the access controls no longer allow SSH to this machine");
    setSessions([]);
  }, [denied, sessions]);

  if (!gate.ready) return gate.view;
  if (denied)
    return (
      <Denied
        testId="ssh"
        title={
          <>
            The access controls do not allow SSH from this browser to {machine}.
            {hadSessions.current ? " Its open sessions were closed." : null}
          </>
        }
        result={gate.result}
      >
        <p className="small">
          An admin could allow it with a rule such as{" "}
          <code className="mono">{`{"action": "accept", "src": ["${email}"], "dst": ["${machine}:22"]}`}</code>
        </p>
      </Denied>
    );

  const opened = (shell: SshShell, title: string) => {
    const id = Date.now();
    setSessions((s) => [...s, { id, title, shell }]);
    setActive(id);
    setAdding(false);
  };
  const closeTab = (id: number) => {
    setSessions((s) => {
      s.find((x) => x.id === id)
        ?.shell.close()
        .catch(() => undefined);
      const rest = s.filter((x) => x.id !== id);
      if (active === id) setActive(rest[rest.length - 1]?.id ?? null);
      if (rest.length === 0) setAdding(true);
      return rest;
    });
  };

  return (
    <>
      {sessions.length > 0 ? (
        <div className="tabs" role="tablist" data-testid="ssh-tabs">
          {sessions.map((s) => (
            <span key={s.id} className="tab-item">
              <button
                type="button"
                role="tab"
                className="link-button"
                aria-selected={!adding && active === s.id}
                onClick={() => (setActive(s.id), setAdding(false))}
              >
                {s.title}
              </button>
              <button
                type="button"
                className="btn btn-ghost btn-sm"
                aria-label={`Close ${s.title}`}
                onClick={() => closeTab(s.id)}
              >
                ×
              </button>
            </span>
          ))}
          <button
            type="button"
            className="btn btn-ghost btn-sm"
            onClick={() => setAdding(true)}
            data-testid="ssh-new-tab"
          >
            + New session
          </button>
        </div>
      ) : null}
      {adding && store ? (
        <SignIn
          machine={machine}
          client={gate.client}
          store={store}
          userId={userId}
          defaultUser={defaultUser}
          onOpen={opened}
        />
      ) : null}
      {sessions.map((s) => (
        <Terminal key={s.id} session={s} visible={!adding && active === s.id} />
      ))}
    </>
  );
}

type HostPrompt = { key: HostKey; resolve: (ok: boolean) => void };

function SignIn({
  machine,
  client,
  store,
  userId,
  defaultUser,
  onOpen,
}: {
  machine: string;
  client: BrowserNodeClient;
  store: KeyStore;
  userId: string;
  defaultUser: string;
  onOpen: (shell: SshShell, title: string) => void;
}) {
  const keyring = useMemo(() => new SshKeyring(store, userId), [store, userId]);
  const known = useMemo(() => new KnownHosts(store, userId), [store, userId]);
  const [username, setUsername] = useState(defaultUser);
  const [method, setMethod] = useState<"password" | "key">("password");
  const [password, setPassword] = useState("");
  const [keys, setKeys] = useState<SshKeyInfo[]>([]);
  const [keyId, setKeyId] = useState<string>("");
  const [error, setError] = useState<string | null>(null);
  const [changed, setChanged] = useState<{ pinned: HostKey; now: HostKey } | null>(null);
  const [prompt, setPrompt] = useState<HostPrompt | null>(null);
  const [busy, setBusy] = useState(false);
  const [pem, setPem] = useState("");
  const [pemPass, setPemPass] = useState("");

  useEffect(() => {
    keyring
      .list()
      .then((k) => {
        setKeys(k);
        setKeyId((cur) => cur || k[0]?.id || "");
        if (k.length > 0) setMethod("key");
      })
      .catch((e: unknown) => setError(`Cannot read this browser's SSH keys: ${String(e)}`));
  }, [keyring]);

  const verifyHostKey = async (key: HostKey): Promise<boolean> => {
    const check = await known.check(machine, key);
    if (check.state === "match") return true;
    if (check.state === "changed") {
      setChanged({ pinned: check.pinned, now: key });
      return false;
    }
    const ok = await new Promise<boolean>((resolve) => setPrompt({ key, resolve }));
    setPrompt(null);
    if (ok) await known.trust(machine, key);
    return ok;
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setChanged(null);
    if (!username.trim()) return setError("Enter the user to sign in as on " + machine + ".");
    let auth: SshAuth;
    if (method === "password") auth = { password };
    else {
      if (!keyId) return setError("Make or import a key first.");
      auth = { keyPair: await keyring.load(keyId) };
    }
    setBusy(true);
    try {
      let conn;
      try {
        conn = await client.connectTcp(machine, SSH_PORT, 10_000);
      } catch (err) {
        throw new Error(connectionProblem(err, machine, SSH_PORT, client.current));
      }
      const shell = await SshShell.open({
        duplex: conn,
        username: username.trim(),
        auth,
        verifyHostKey,
        cols: 100,
        rows: 30,
      });
      setPassword("");
      onOpen(shell, `${username.trim()}@${machine}`);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code !== "host_key_rejected") setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  const makeKey = async (kind: "ecdsa-p256" | "rsa-3072") => {
    setError(null);
    try {
      const info = await keyring.add(await generateSshKey(kind), `trellis-browser`);
      setKeys(await keyring.list());
      setKeyId(info.id);
      setMethod("key");
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  const importKey = async () => {
    setError(null);
    try {
      const info = await keyring.add(await importPrivateKey(pem, pemPass || undefined), "imported");
      setKeys(await keyring.list());
      setKeyId(info.id);
      setMethod("key");
      setPem("");
      setPemPass("");
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  const chosen = keys.find((k) => k.id === keyId);

  return (
    <section className="panel" data-testid="ssh-signin">
      {changed ? (
        <div className="panel-inset alert-warn" role="alert" data-testid="ssh-hostkey-changed">
          <p>
            <strong>Warning: the host key of {machine} has changed.</strong> The connection was stopped before
            signing in. Someone could be intercepting it, or the server was reinstalled. Ask its admin which
            key is right before you trust the new one.
          </p>
          <dl className="props small">
            <dt>Pinned</dt>
            <dd className="mono break">
              {changed.pinned.algorithm} {changed.pinned.fingerprint}
            </dd>
            <dt>Presented now</dt>
            <dd className="mono break">
              {changed.now.algorithm} {changed.now.fingerprint}
            </dd>
          </dl>
          <button
            type="button"
            className="btn btn-secondary btn-sm"
            onClick={() => void known.forget(machine).then(() => setChanged(null))}
            data-testid="ssh-hostkey-forget"
          >
            Forget the pinned key
          </button>
        </div>
      ) : null}
      {prompt ? (
        <div
          className="panel-inset"
          role="alertdialog"
          aria-label="New host key"
          data-testid="ssh-hostkey-prompt"
        >
          <p>
            First connection to <strong>{machine}</strong> from this browser. Its host key is:
          </p>
          <p className="mono break" data-testid="ssh-hostkey-fingerprint">
            {prompt.key.algorithm} {prompt.key.fingerprint}
          </p>
          <p className="small muted">
            Trust it if it matches what the server&apos;s admin gave you; it is pinned for next time.
          </p>
          <div className="form-actions">
            <button
              type="button"
              className="btn btn-primary"
              onClick={() => prompt.resolve(true)}
              data-testid="ssh-hostkey-trust"
            >
              Trust and connect
            </button>
            <button type="button" className="btn btn-ghost" onClick={() => prompt.resolve(false)}>
              Cancel
            </button>
          </div>
        </div>
      ) : null}
      {error ? (
        <p className="error" role="alert" data-testid="ssh-error">
          {error}
        </p>
      ) : null}
      <form className="form-grid" onSubmit={(e) => void submit(e)}>
        <label>
          User on {machine}
          <input
            name="username"
            autoComplete="username"
            value={username}
            onChange={(e) => setUsername(e.target.value)}
            data-testid="ssh-user"
            required
          />
        </label>
        <fieldset className="form-row">
          <legend className="visually-hidden">Sign in with</legend>
          <label className="check">
            <input
              type="radio"
              name="method"
              checked={method === "password"}
              onChange={() => setMethod("password")}
            />
            Password
          </label>
          <label className="check">
            <input
              type="radio"
              name="method"
              checked={method === "key"}
              onChange={() => setMethod("key")}
              data-testid="ssh-method-key"
            />
            A key held by this browser
          </label>
        </fieldset>
        {method === "password" ? (
          <label>
            Password
            <input
              type="password"
              name="password"
              autoComplete="current-password"
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              data-testid="ssh-password"
            />
          </label>
        ) : (
          <div className="panel-inset">
            {keys.length > 0 ? (
              <label>
                Key
                <select value={keyId} onChange={(e) => setKeyId(e.target.value)} data-testid="ssh-key-select">
                  {keys.map((k) => (
                    <option key={k.id} value={k.id}>
                      {k.algorithm} · {k.comment} · {k.created.slice(0, 10)}
                    </option>
                  ))}
                </select>
              </label>
            ) : (
              <p className="muted small">This browser holds no SSH key yet.</p>
            )}
            {chosen ? (
              <div>
                <p className="small">
                  Add this line to <span className="mono">~/.ssh/authorized_keys</span> of{" "}
                  {username || "the user"} on {machine}:
                </p>
                <p className="mono small break" data-testid="ssh-public-key">
                  {chosen.publicKey}
                </p>
                <CopyButton value={chosen.publicKey} what="public key" />
              </div>
            ) : null}
            <div className="form-actions">
              <button
                type="button"
                className="btn btn-secondary btn-sm"
                onClick={() => void makeKey("ecdsa-p256")}
                data-testid="ssh-generate"
              >
                Make an ECDSA key
              </button>
              <button type="button" className="btn btn-ghost btn-sm" onClick={() => void makeKey("rsa-3072")}>
                Make an RSA key
              </button>
            </div>
            <details>
              <summary className="small">Import a private key (PEM)</summary>
              <label>
                Private key
                <textarea
                  rows={4}
                  className="mono small"
                  value={pem}
                  onChange={(e) => setPem(e.target.value)}
                  data-testid="ssh-import-pem"
                />
              </label>
              <label>
                Passphrase (if it has one)
                <input type="password" value={pemPass} onChange={(e) => setPemPass(e.target.value)} />
              </label>
              <button
                type="button"
                className="btn btn-secondary btn-sm"
                onClick={() => void importKey()}
                disabled={!pem.trim()}
              >
                Import
              </button>
            </details>
          </div>
        )}
        <div className="form-actions">
          <button type="submit" className="btn btn-primary" disabled={busy} data-testid="ssh-connect">
            {busy ? "Connecting…" : "Connect"}
          </button>
        </div>
      </form>
    </section>
  );
}

/** One session's terminal: xterm sized to its box, keystrokes to the shell, output to the screen. */
function Terminal({ session, visible }: { session: Session; visible: boolean }) {
  const box = useRef<HTMLDivElement>(null);
  const [ended, setEnded] = useState<string | null>(null);
  const fitRef = useRef<(() => void) | null>(null);
  const [searchOpen, setSearchOpen] = useState(false);
  const searchRef = useRef<((q: string) => void) | null>(null);

  useEffect(() => {
    let disposed = false;
    const cleanup: (() => void)[] = [];
    void (async () => {
      const [{ Terminal: XTerm }, { FitAddon }, { WebLinksAddon }, { SearchAddon }] = await Promise.all([
        import("@xterm/xterm"),
        import("@xterm/addon-fit"),
        import("@xterm/addon-web-links"),
        import("@xterm/addon-search"),
      ]);
      if (disposed || !box.current) return;
      const term = new XTerm({ scrollback: 5000, cursorBlink: true, fontSize: 14, convertEol: false });
      const fit = new FitAddon();
      const search = new SearchAddon();
      term.loadAddon(fit);
      term.loadAddon(search);
      term.loadAddon(
        new WebLinksAddon((_e, uri) => {
          window.open(uri, "_blank", "noopener,noreferrer");
        }),
      );
      term.open(box.current);
      searchRef.current = (q) => void search.findNext(q);
      const shell = session.shell;
      const enc = new TextEncoder();
      cleanup.push(shell.onData((d) => term.write(d)));
      const input = term.onData((d) => void shell.write(enc.encode(d)).catch(() => undefined));
      const resize = term.onResize(({ cols, rows }) => void shell.resize(cols, rows).catch(() => undefined));
      cleanup.push(() => (input.dispose(), resize.dispose()));
      cleanup.push(
        shell.onExit((e) =>
          setEnded(
            e.reason
              ? `Session ended: ${e.reason}`
              : e.signal
                ? `Session ended by signal ${e.signal}`
                : `Session ended${e.status !== undefined ? ` (exit status ${e.status})` : ""}`,
          ),
        ),
      );
      const refit = () => {
        if (box.current && box.current.offsetParent !== null) fit.fit();
      };
      fitRef.current = refit;
      const observer = new ResizeObserver(refit);
      observer.observe(box.current);
      cleanup.push(() => observer.disconnect());
      refit();
      term.focus();
      (window as unknown as { trellisTerminals?: Record<number, unknown> }).trellisTerminals ??= {};
      (window as unknown as { trellisTerminals: Record<number, unknown> }).trellisTerminals[session.id] =
        term;
      cleanup.push(() => term.dispose());
    })();
    return () => {
      disposed = true;
      for (const f of cleanup.reverse()) f();
    };
  }, [session]);

  useEffect(() => {
    if (visible) fitRef.current?.();
  }, [visible]);

  return (
    <section
      className="panel terminal-panel"
      hidden={!visible}
      data-testid="ssh-session"
      data-ended={ended ? "yes" : "no"}
    >
      <div className="terminal-bar">
        <span className="mono small">{session.title}</span>
        <span className="small muted" data-testid="ssh-host-fingerprint">
          {session.shell.hostKey.fingerprint}
        </span>
        <button type="button" className="btn btn-ghost btn-sm" onClick={() => setSearchOpen((o) => !o)}>
          Search
        </button>
      </div>
      {searchOpen ? (
        <input
          type="search"
          placeholder="Find in scrollback"
          aria-label="Find in scrollback"
          onKeyDown={(e) => {
            if (e.key === "Enter") searchRef.current?.((e.target as HTMLInputElement).value);
          }}
        />
      ) : null}
      <div ref={box} className="terminal" data-testid="ssh-terminal" />
      {ended ? (
        <p className="small muted" role="status" data-testid="ssh-ended">
          {ended}
        </p>
      ) : null}
    </section>
  );
}
