import type { Metadata } from "next";
import Link from "next/link";

export const metadata: Metadata = { title: "Not found" };

export default function NotFound() {
  return (
    <div className="empty" data-testid="not-found">
      <h1>Not found</h1>
      <p>There is nothing here, or it no longer exists (a removed machine, for example).</p>
      <Link className="btn btn-primary" href="/">
        Go to the start page
      </Link>
    </div>
  );
}
