import Link from "next/link";
import { hrefWith } from "./format";

/**
 * Cursor pagination: "Next" carries the page's nextCursor, keeping the current
 * filters; "First page" drops the cursor.
 */
export function Pager({
  path,
  params,
  cursor,
  page,
  noun,
}: {
  path: string;
  /** Current filters (without cursor). */
  params: Record<string, string | undefined>;
  cursor: string | undefined;
  /** The page shown (a list endpoint's answer). */
  page: { items: readonly unknown[]; nextCursor: string | null; total: number };
  noun: string;
}) {
  const { nextCursor, total } = page;
  const shown = page.items.length;
  if (!cursor && !nextCursor) {
    return (
      <div className="pager">
        <span>
          {total} {total === 1 ? noun : `${noun}s`}
        </span>
      </div>
    );
  }
  return (
    <nav className="pager" aria-label="Pagination">
      <span>
        Showing {shown} of {total} {total === 1 ? noun : `${noun}s`}
      </span>
      <span className="row">
        {cursor ? (
          <Link className="btn btn-secondary btn-sm" href={hrefWith(path, params)}>
            First page
          </Link>
        ) : null}
        {nextCursor ? (
          <Link
            className="btn btn-secondary btn-sm"
            href={hrefWith(path, { ...params, cursor: nextCursor })}
            data-testid="next-page"
          >
            Next page
          </Link>
        ) : null}
      </span>
    </nav>
  );
}
