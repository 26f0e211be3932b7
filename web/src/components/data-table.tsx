import type { CSSProperties, ReactNode } from "react";

/** One column: its header and how a row fills its cell. */
export interface Column<Row> {
  header: string;
  /** Keep the header for screen readers only (e.g. a column of action buttons). */
  hideHeader?: boolean;
  /** A number column: header and cells aligned right. */
  num?: boolean;
  /** Class of each cell, e.g. "nowrap". */
  className?: string;
  style?: CSSProperties;
  cell: (row: Row) => ReactNode;
}

/**
 * The console's list table (`table.data` in its scrolling frame). Columns may
 * be `false` or `null`, so a column the viewer may not use is left out inline;
 * with no rows, `empty` is shown instead of the table.
 */
export function DataTable<Row>({
  rows,
  columns,
  rowKey,
  rowTestId,
  empty,
  testId,
  style,
}: {
  rows: readonly Row[];
  columns: readonly (Column<Row> | false | null | undefined)[];
  rowKey: (row: Row) => string | number;
  rowTestId?: (row: Row) => string;
  empty?: ReactNode;
  testId?: string;
  style?: CSSProperties;
}) {
  if (rows.length === 0 && empty !== undefined) return <>{empty}</>;
  const cols = columns.filter((c): c is Column<Row> => Boolean(c));
  return (
    <div className="table-wrap" style={style}>
      <table className="data" data-testid={testId}>
        <thead>
          <tr>
            {cols.map((c) => (
              <th key={c.header} scope="col" className={c.num ? "num" : undefined}>
                {c.hideHeader ? <span className="visually-hidden">{c.header}</span> : c.header}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr key={rowKey(row)} data-testid={rowTestId?.(row)}>
              {cols.map((c) => (
                <td
                  key={c.header}
                  className={[c.num ? "num" : "", c.className ?? ""].filter(Boolean).join(" ") || undefined}
                  style={c.style}
                >
                  {c.cell(row)}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** What a list shows when it has nothing to list. */
export function Empty({ title, children, testId }: { title: string; children?: ReactNode; testId?: string }) {
  return (
    <div className="empty" data-testid={testId}>
      <h2>{title}</h2>
      {children}
    </div>
  );
}
