import { diffLines } from "diff";

type Line = { kind: "add" | "del" | "ctx" | "gap"; text: string };

/** A unified line diff of two texts, with unchanged stretches beyond `context` lines folded. */
export function unifiedDiff(from: string, to: string, context = 3): Line[] {
  const all: Line[] = [];
  for (const part of diffLines(from, to)) {
    const kind = part.added ? "add" : part.removed ? "del" : "ctx";
    for (const text of part.value.replace(/\n$/, "").split("\n")) all.push({ kind, text });
  }
  const near = (i: number) => {
    for (let d = -context; d <= context; d++) {
      const n = all[i + d];
      if (n && n.kind !== "ctx") return true;
    }
    return false;
  };
  const out: Line[] = [];
  let skipped = 0;
  const fold = () => {
    if (skipped) out.push({ kind: "gap", text: `… ${skipped} unchanged line${skipped === 1 ? "" : "s"}` });
    skipped = 0;
  };
  all.forEach((l, i) => {
    if (l.kind !== "ctx" || near(i)) {
      fold();
      out.push(l);
    } else skipped++;
  });
  fold();
  return out;
}

/** Red/green unified view of `from` → `to`; "No differences." when equal. */
export function DiffView({ from, to, label = "Differences" }: { from: string; to: string; label?: string }) {
  const lines = unifiedDiff(from, to);
  if (lines.every((l) => l.kind === "ctx" || l.kind === "gap"))
    return <p className="muted">No differences.</p>;
  return (
    <div className="diff" role="region" aria-label={label} tabIndex={0}>
      {lines.map((l, i) => (
        <div key={i} className={l.kind}>
          {l.kind === "add" ? "+ " : l.kind === "del" ? "- " : l.kind === "gap" ? "" : "  "}
          {l.text}
        </div>
      ))}
    </div>
  );
}
